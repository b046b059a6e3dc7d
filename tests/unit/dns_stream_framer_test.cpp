// Unit tests for reassembly::DnsStreamFramer: DNS over TLS framing of
// plaintext byte streams (partial reads, pipelining, splits at every byte
// boundary, streams picked up mid-message, gaps, non-DNS streams), and for
// the framing scan it shares with the TCP reassembler.
#include "reassembly/dns_tcp_framing.h"
#include "stream_test_util.h"

#include <gtest/gtest.h>

#include <vector>

namespace sidetap::reassembly {
namespace {

using test_streams::Bytes;
using test_streams::cat;
using test_streams::dns_message;
using test_streams::framed;

struct Collect {
    std::vector<Bytes> messages;
    void operator()(std::span<const std::uint8_t> wire) { messages.emplace_back(wire.begin(), wire.end()); }
};

std::vector<Bytes> push_in_pieces(DnsStreamFramer& framer, const Bytes& stream, std::vector<std::size_t> cuts) {
    Collect out;
    std::size_t at = 0;
    cuts.push_back(stream.size());
    for (auto cut : cuts) {
        framer.push(std::span(stream).subspan(at, cut - at), out);
        at = cut;
    }
    return out.messages;
}

TEST(DnsStreamFramer, SplitsPipelinedMessagesInOneRead) {
    const Bytes q1 = dns_message(1, false, "a"), q2 = dns_message(2, false, "bb"), q3 = dns_message(3, false, "ccc");
    DnsStreamFramer f;
    f.start(true);
    Collect out;
    f.push(cat({framed(q1), framed(q2), framed(q3)}), out);
    ASSERT_EQ(out.messages.size(), 3u);
    EXPECT_EQ(out.messages[0], q1);
    EXPECT_EQ(out.messages[1], q2);
    EXPECT_EQ(out.messages[2], q3);
    EXPECT_EQ(f.pending_bytes(), 0u);
}

TEST(DnsStreamFramer, LengthPrefixAloneThenBodyAsServersRead) {
    const Bytes q = dns_message(7, false);
    const Bytes s = framed(q);
    DnsStreamFramer f;
    f.start(true);
    const auto got = push_in_pieces(f, s, {2});
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], q);
}

TEST(DnsStreamFramer, EverySplitPointOfTwoMessagesGivesBothMessages) {
    for (const bool trusted : {true, false}) {
        const Bytes q = dns_message(1, false, "first"), r = dns_message(2, true, "second", 40);
        const Bytes s = cat({framed(q), framed(r)});
        for (std::size_t cut = 0; cut <= s.size(); ++cut) {
            for (std::size_t cut2 = cut; cut2 <= s.size(); cut2 += 7) {
                DnsStreamFramer f;
                f.start(trusted);
                const auto got = push_in_pieces(f, s, {cut, cut2});
                ASSERT_EQ(got.size(), 2u) << "cuts " << cut << "," << cut2 << " trusted " << trusted;
                EXPECT_EQ(got[0], q);
                EXPECT_EQ(got[1], r);
                EXPECT_EQ(f.pending_bytes(), 0u);
            }
        }
    }
}

TEST(DnsStreamFramer, OneByteReadsGiveEveryMessage) {
    std::vector<Bytes> want;
    Bytes s;
    for (std::uint16_t i = 0; i < 20; ++i) {
        want.push_back(dns_message(i, (i % 2) != 0, "n" + std::to_string(i), i * 13u));
        const auto fr = framed(want.back());
        s.insert(s.end(), fr.begin(), fr.end());
    }
    DnsStreamFramer f;
    f.start(true);
    Collect out;
    for (auto b : s) f.push(std::span(&b, 1), out);
    EXPECT_EQ(out.messages, want);
}

TEST(DnsStreamFramer, LargestMessageIsKeptWhole) {
    // 65535 bytes: the most a 2-byte length can announce (answers over 16 KiB
    // arrive in several TLS reads).
    const Bytes r = dns_message(9, true, "big", 65535 - dns_message(9, true, "big").size());
    ASSERT_EQ(r.size(), 65535u);
    const Bytes s = framed(r);
    DnsStreamFramer f;
    f.start(true);
    std::vector<std::size_t> cuts;
    for (std::size_t at = 2; at < s.size(); at += 16384) cuts.push_back(at);
    const auto got = push_in_pieces(f, s, cuts);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], r);
    EXPECT_LE(f.capacity(), kMaxFramedMessage);
}

TEST(DnsStreamFramer, UntrustedStreamFindsTheNextMessageAndThenTrustsIt) {
    // Picked up in the middle of a message (sidetap attached mid-connection):
    // the tail of one message, then two whole ones, the second a cookie-only
    // query (QDCOUNT 0) that is implausible on its own but taken once the
    // framing is known.
    const Bytes before = dns_message(5, false, "lost");
    const Bytes q = dns_message(6, false, "found");
    Bytes cookie = dns_message(7, false, "x");
    cookie.resize(12);
    cookie[5] = 0;  // QDCOUNT 0
    const Bytes s = cat({Bytes(before.begin() + 9, before.end()), framed(q), framed(cookie)});
    DnsStreamFramer f;
    f.start(false);
    Collect out;
    f.push(s, out);
    ASSERT_EQ(out.messages.size(), 2u);
    EXPECT_EQ(out.messages[0], q);
    EXPECT_EQ(out.messages[1], cookie);
    EXPECT_GT(f.counts().resync_skipped, 0u);
}

TEST(DnsStreamFramer, GapDropsTheUnfinishedMessageAndResynchronises) {
    const Bytes q1 = dns_message(1, false, "one"), q2 = dns_message(2, false, "two");
    const Bytes f1 = framed(q1);
    DnsStreamFramer f;
    f.start(true);
    Collect out;
    f.push(std::span(f1).first(10), out);
    f.gap();
    EXPECT_EQ(f.counts().dropped_partial, 10u);
    f.push(framed(q2), out);
    ASSERT_EQ(out.messages.size(), 1u);
    EXPECT_EQ(out.messages[0], q2);
}

TEST(DnsStreamFramer, NonDnsStreamIsGivenUpWithinItsBound) {
    DnsStreamFramer f(1000);
    f.start(false);
    Collect out;
    Bytes junk(5000, 0xff);
    f.push(junk, out);
    EXPECT_TRUE(f.not_dns());
    EXPECT_TRUE(out.messages.empty());
    EXPECT_EQ(f.counts().gave_up, 1u);
    EXPECT_EQ(f.pending_bytes(), 0u);
    // More bytes are ignored.
    f.push(framed(dns_message(1, false)), out);
    EXPECT_TRUE(out.messages.empty());
}

TEST(DnsStreamFramer, ShortLengthInTrustedStreamResynchronises) {
    const Bytes q = dns_message(3, false, "after");
    const Bytes s = cat({Bytes{0, 4, 1, 2, 3, 4}, framed(q)});
    DnsStreamFramer f;
    f.start(true);
    Collect out;
    f.push(s, out);
    ASSERT_EQ(out.messages.size(), 1u);
    EXPECT_EQ(out.messages[0], q);
}

TEST(DnsTcpFraming, PlausibleBoundaryJudgesQueriesAndWaitsForBytes) {
    const Bytes q = framed(dns_message(1, false, "www"));
    EXPECT_EQ(plausible_boundary(q), Boundary::Yes);
    EXPECT_EQ(plausible_boundary(std::span(q).first(1)), Boundary::NeedMore);
    EXPECT_EQ(plausible_boundary(std::span(q).first(8)), Boundary::NeedMore);
    Bytes bad = q;
    bad[2 + 5] = 3;  // QDCOUNT 3
    EXPECT_EQ(plausible_boundary(bad), Boundary::No);
    EXPECT_EQ(plausible_boundary(Bytes{0, 3, 1, 2, 3}), Boundary::No);
}

}  // namespace
}  // namespace sidetap::reassembly
