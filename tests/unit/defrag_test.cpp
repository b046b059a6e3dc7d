// Unit tests for sidetap::reassembly::IpDefragmenter: ordering, duplicates,
// the classic overlap vectors under both policies, IPv6, tuple keying, every
// bound and its counter, a long random stress run, and real captures.
#include "reassembly/ip_defragmenter.h"

#include "capture/pcap_file_source.h"
#include "decode/decoder.h"
#include "util/error.h"
#include "test_data.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sidetap::reassembly {
namespace {

using Bytes = std::vector<std::uint8_t>;
using decode::IpPacket;

std::uint64_t count(const IpDefragmenter& d, DefragEvent e) { return d.counters().get(e); }

decode::IpAddress addr4(std::uint8_t last) {
    decode::IpAddress a;
    a.family = 4;
    a.bytes[0] = 192;
    a.bytes[1] = 0;
    a.bytes[2] = 2;
    a.bytes[3] = last;
    return a;
}

decode::IpAddress addr6(std::uint8_t last) {
    decode::IpAddress a;
    a.family = 6;
    a.bytes[0] = 0x20;
    a.bytes[1] = 0x01;
    a.bytes[2] = 0x0d;
    a.bytes[3] = 0xb8;
    a.bytes[15] = last;
    return a;
}

// One fragment; `data` must outlive the add() call.
struct Frag {
    std::uint32_t offset = 0;
    bool more = true;
    Bytes data;
};

struct Flow {
    decode::IpAddress src = addr4(1);
    decode::IpAddress dst = addr4(2);
    std::uint8_t protocol = 17;
    std::uint32_t id = 0x1234;
};

IpPacket make_packet(const Flow& f, const Frag& frag) {
    IpPacket p;
    p.src = f.src;
    p.dst = f.dst;
    p.protocol = f.protocol;
    p.is_fragment = true;
    p.more_fragments = frag.more;
    p.fragment_id = f.id;
    p.fragment_offset = frag.offset;
    p.payload = frag.data;
    return p;
}

Bytes pattern(std::size_t n, std::uint32_t seed) {
    Bytes b(n);
    std::uint32_t x = seed * 2654435761u + 1;
    for (auto& v : b) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v = static_cast<std::uint8_t>(x);
    }
    return b;
}

// Cuts `datagram` into fragments of `size` bytes (a multiple of 8).
std::vector<Frag> split(const Bytes& datagram, std::size_t size) {
    std::vector<Frag> out;
    for (std::size_t off = 0; off < datagram.size(); off += size) {
        const std::size_t n = std::min(size, datagram.size() - off);
        out.push_back(Frag{static_cast<std::uint32_t>(off), off + n < datagram.size(),
                           Bytes(datagram.begin() + static_cast<std::ptrdiff_t>(off),
                                 datagram.begin() + static_cast<std::ptrdiff_t>(off + n))});
    }
    return out;
}

Bytes fill(char c, std::size_t n) { return Bytes(n, static_cast<std::uint8_t>(c)); }

Bytes to_bytes(const IpPacket& p) { return Bytes(p.payload.begin(), p.payload.end()); }

// Feeds fragments in the given order; returns the datagram if (and only if)
// the last one completed it, failing the test when an earlier one did.
struct Feeder {
    IpDefragmenter& d;
    Flow flow;
    std::uint64_t time = 1'000'000'000;

    bool feed(const Frag& f, IpPacket& out) { return d.add(make_packet(flow, f), time, out); }

    std::optional<Bytes> feed_all(const std::vector<Frag>& frags) {
        IpPacket out;
        for (std::size_t i = 0; i < frags.size(); ++i) {
            const bool done = feed(frags[i], out);
            if (done != (i + 1 == frags.size())) {
                ADD_FAILURE() << "fragment " << i << " of " << frags.size() << (done ? " completed" : " did not complete");
                return std::nullopt;
            }
        }
        EXPECT_FALSE(out.is_fragment);
        EXPECT_EQ(out.src, flow.src);
        EXPECT_EQ(out.dst, flow.dst);
        EXPECT_EQ(out.protocol, flow.protocol);
        return to_bytes(out);
    }
};

TEST(IpDefragmenter, InOrderFragmentsRebuildTheDatagram) {
    IpDefragmenter d;
    const Bytes datagram = pattern(3000, 1);
    Feeder f{d, {}};
    EXPECT_EQ(f.feed_all(split(datagram, 1480)), datagram);
    EXPECT_EQ(count(d, DefragEvent::Fragments), 3u);
    EXPECT_EQ(count(d, DefragEvent::Reassembled), 1u);
    EXPECT_EQ(count(d, DefragEvent::Overlaps), 0u);
    EXPECT_EQ(d.active_datagrams(), 0u);
}

TEST(IpDefragmenter, ReversedFragmentsRebuildTheDatagram) {
    IpDefragmenter d;
    const Bytes datagram = pattern(4001, 2);
    auto frags = split(datagram, 1024);
    std::reverse(frags.begin(), frags.end());
    Feeder f{d, {}};
    EXPECT_EQ(f.feed_all(frags), datagram);
    EXPECT_EQ(count(d, DefragEvent::Reassembled), 1u);
}

TEST(IpDefragmenter, ShuffledFragmentsOfRandomSizesRebuildTheDatagram) {
    std::mt19937 rng(42);
    IpDefragmenter d;
    for (std::uint32_t round = 0; round < 200; ++round) {
        const Bytes datagram = pattern(1 + rng() % 9000, round);
        std::vector<Frag> frags;
        for (std::size_t off = 0; off < datagram.size();) {
            const std::size_t n = std::min<std::size_t>(8 * (1 + rng() % 64), datagram.size() - off);
            frags.push_back(Frag{static_cast<std::uint32_t>(off), off + n < datagram.size(),
                                 Bytes(datagram.begin() + static_cast<std::ptrdiff_t>(off),
                                       datagram.begin() + static_cast<std::ptrdiff_t>(off + n))});
            off += n;
        }
        std::shuffle(frags.begin(), frags.end(), rng);
        Feeder f{d, Flow{.id = round}};
        EXPECT_EQ(f.feed_all(frags), datagram) << "round " << round;
    }
    EXPECT_EQ(count(d, DefragEvent::Reassembled), 200u);
    EXPECT_EQ(d.active_datagrams(), 0u);
}

TEST(IpDefragmenter, ExactDuplicatesAreIgnoredAndCounted) {
    IpDefragmenter d;
    const Bytes datagram = pattern(3000, 3);
    const auto frags = split(datagram, 1000);
    Feeder f{d, {}};
    IpPacket out;
    EXPECT_FALSE(f.feed(frags[0], out));
    EXPECT_FALSE(f.feed(frags[0], out));
    EXPECT_FALSE(f.feed(frags[2], out));
    EXPECT_FALSE(f.feed(frags[2], out));
    EXPECT_TRUE(f.feed(frags[1], out));
    EXPECT_EQ(to_bytes(out), datagram);
    EXPECT_EQ(count(d, DefragEvent::Duplicates), 2u);
    EXPECT_EQ(count(d, DefragEvent::Overlaps), 0u);
    // A copy arriving after completion opens a new datagram, which never completes.
    EXPECT_FALSE(f.feed(frags[1], out));
    EXPECT_EQ(d.active_datagrams(), 1u);
    d.finish();
    EXPECT_EQ(count(d, DefragEvent::Incomplete), 1u);
}

TEST(IpDefragmenter, SameRangeWithDifferentBytesIsAnOverlap) {
    for (const OverlapPolicy policy : {OverlapPolicy::First, OverlapPolicy::Last}) {
        IpDefragmenter d(DefragConfig{.overlap = policy});
        Feeder f{d, {}};
        IpPacket out;
        EXPECT_FALSE(f.feed(Frag{0, true, fill('a', 8)}, out));
        EXPECT_FALSE(f.feed(Frag{0, true, fill('b', 8)}, out));
        EXPECT_TRUE(f.feed(Frag{8, false, fill('c', 3)}, out));
        const std::string expected = policy == OverlapPolicy::First ? "aaaaaaaaccc" : "bbbbbbbbccc";
        EXPECT_EQ(std::string(out.payload.begin(), out.payload.end()), expected);
        EXPECT_EQ(count(d, DefragEvent::Overlaps), 1u);
        EXPECT_EQ(count(d, DefragEvent::Duplicates), 0u);
    }
}

// --- The classic overlap vectors -------------------------------------------
//
// Sturges & Novak, "Target-Based Fragmentation Reassembly" (2005), as used by
// Suricata's defrag tests: nine fragments laying out a 192-byte datagram with
// holes, then eight fragments overlapping them in every way (spanning a hole,
// exact repeat, straddling two, contained, left- and right-aligned), sent in
// this order; the last one (Q) closes the datagram.
const std::vector<Frag>& sturges_novak() {
    static const std::vector<Frag> frags{
        {0, true, fill('A', 24)},   {32, true, fill('B', 16)},  {48, true, fill('C', 24)},
        {80, true, fill('D', 8)},   {104, true, fill('E', 16)}, {120, true, fill('F', 24)},
        {144, true, fill('G', 16)}, {160, true, fill('H', 16)}, {176, true, fill('I', 8)},
        {8, true, fill('J', 32)},   {48, true, fill('K', 24)},  {72, true, fill('L', 24)},
        {96, true, fill('M', 24)},  {128, true, fill('N', 8)},  {152, true, fill('O', 8)},
        {160, true, fill('P', 8)},  {176, false, fill('Q', 16)},
    };
    return frags;
}

// One letter per 8-byte block.
Bytes blocks(const std::string& letters) {
    Bytes b;
    for (const char c : letters) b.insert(b.end(), 8, static_cast<std::uint8_t>(c));
    return b;
}

struct OverlapCase {
    OverlapPolicy policy;
    std::uint8_t family;
};

class OverlapVectors : public ::testing::TestWithParam<OverlapCase> {
protected:
    Flow flow() const {
        Flow f;
        if (GetParam().family == 6) {
            f.src = addr6(1);
            f.dst = addr6(2);
            f.id = 0x80000001;
        }
        f.protocol = 1;  // ICMP, as in the original vectors
        return f;
    }
};

TEST_P(OverlapVectors, SturgesNovakSeventeenFragments) {
    IpDefragmenter d(DefragConfig{.overlap = GetParam().policy});
    Feeder f{d, flow()};
    const auto result = f.feed_all(sturges_novak());
    // First: what arrived first stays (the holes are filled by J, L and M).
    // Last: every overlapping fragment overwrites.
    const Bytes expected = GetParam().policy == OverlapPolicy::First ? blocks("AAAJBBCCCLDLMEEFFFGGHHIQ")
                                                                     : blocks("AJJJJBKKKLLLMMMFNFGOPHQQ");
    ASSERT_TRUE(result.has_value());
    EXPECT_EQ(std::string(result->begin(), result->end()), std::string(expected.begin(), expected.end()));
    EXPECT_EQ(count(d, DefragEvent::Overlaps), 8u);
    EXPECT_EQ(count(d, DefragEvent::Duplicates), 0u);
}

// Six fragments in the style of Shankar & Paxson's Active Mapping probe:
//   1 [0,16)  2 [32,40)  3 [48,64)         -- holes at 16..32 and 40..48
//   4 [8,40)   tail of 1, hole, head of 2
//   5 [40,56)  hole, head of 3
//   6 [56,72)  tail of 3, new data, last fragment
TEST_P(OverlapVectors, SixFragmentPattern) {
    IpDefragmenter d(DefragConfig{.overlap = GetParam().policy});
    Feeder f{d, flow()};
    const auto result = f.feed_all({{0, true, fill('1', 16)},
                                    {32, true, fill('2', 8)},
                                    {48, true, fill('3', 16)},
                                    {8, true, fill('4', 32)},
                                    {40, true, fill('5', 16)},
                                    {56, false, fill('6', 16)}});
    const Bytes expected =
        GetParam().policy == OverlapPolicy::First ? blocks("114425336") : blocks("144445566");
    ASSERT_TRUE(result.has_value());
    EXPECT_EQ(std::string(result->begin(), result->end()), std::string(expected.begin(), expected.end()));
    EXPECT_EQ(count(d, DefragEvent::Overlaps), 3u);
}

INSTANTIATE_TEST_SUITE_P(Policies, OverlapVectors,
                         ::testing::Values(OverlapCase{OverlapPolicy::First, 4}, OverlapCase{OverlapPolicy::Last, 4},
                                           OverlapCase{OverlapPolicy::First, 6}, OverlapCase{OverlapPolicy::Last, 6}),
                         [](const ::testing::TestParamInfo<OverlapCase>& param_info) {
                             return std::string(param_info.param.policy == OverlapPolicy::First ? "First" : "Last") +
                                    (param_info.param.family == 6 ? "Ipv6" : "Ipv4");
                         });

// --- IPv6 and keying -------------------------------------------------------

TEST(IpDefragmenter, Ipv6UsesThe32BitIdAndTheFirstFragmentsProtocol) {
    IpDefragmenter d;
    const Bytes a = pattern(2000, 10);
    const Bytes b = pattern(2000, 11);
    const auto fa = split(a, 1232);
    const auto fb = split(b, 1232);
    // Two datagrams whose ids differ only in the upper 16 bits.
    Flow flow_a{addr6(1), addr6(2), 17, 0x00010007};
    Flow flow_b{addr6(1), addr6(2), 17, 0x00020007};
    Feeder feed_a{d, flow_a};
    Feeder feed_b{d, flow_b};
    IpPacket out;
    // Later fragments report another next header: the key must not use it.
    Feeder feed_a_other{d, Flow{addr6(1), addr6(2), 60, 0x00010007}};
    EXPECT_FALSE(feed_a_other.feed(fa[1], out));
    EXPECT_FALSE(feed_b.feed(fb[1], out));
    EXPECT_EQ(d.active_datagrams(), 2u);
    ASSERT_TRUE(feed_a.feed(fa[0], out));
    EXPECT_EQ(to_bytes(out), a);
    EXPECT_EQ(out.protocol, 17);
    EXPECT_EQ(out.src, addr6(1));
    EXPECT_EQ(out.fragment_id, 0x00010007u);
    ASSERT_TRUE(feed_b.feed(fb[0], out));
    EXPECT_EQ(to_bytes(out), b);
    EXPECT_EQ(d.active_datagrams(), 0u);
}

TEST(IpDefragmenter, EqualIdsWithDifferentTuplesNeverMerge) {
    IpDefragmenter d;
    const std::vector<Flow> flows{
        {addr4(1), addr4(2), 17, 99}, {addr4(3), addr4(2), 17, 99}, {addr4(1), addr4(3), 17, 99},
        {addr4(2), addr4(1), 17, 99}, {addr4(1), addr4(2), 6, 99},  {addr6(1), addr6(2), 17, 99},
    };
    std::vector<Bytes> datagrams;
    std::vector<std::vector<Frag>> frags;
    for (std::size_t i = 0; i < flows.size(); ++i) {
        datagrams.push_back(pattern(2500, static_cast<std::uint32_t>(100 + i)));
        frags.push_back(split(datagrams.back(), 1000));
    }
    IpPacket out;
    // Interleave: every flow's fragment k before any flow's fragment k+1.
    for (std::size_t k = 0; k < 3; ++k) {
        for (std::size_t i = 0; i < flows.size(); ++i) {
            Feeder f{d, flows[i]};
            const bool done = f.feed(frags[i][k], out);
            ASSERT_EQ(done, k == 2) << "flow " << i;
            if (done) {
                EXPECT_EQ(to_bytes(out), datagrams[i]) << "flow " << i;
                EXPECT_EQ(out.src, flows[i].src);
                EXPECT_EQ(out.dst, flows[i].dst);
                EXPECT_EQ(out.protocol, flows[i].protocol);
            }
        }
    }
    EXPECT_EQ(count(d, DefragEvent::Reassembled), flows.size());
    EXPECT_EQ(count(d, DefragEvent::Overlaps), 0u);
}

TEST(IpDefragmenter, Ipv4KeyIgnoresStaleBytesBeyondTheAddress) {
    // An IpPacket reused after an IPv6 packet may keep bytes past the first four.
    IpDefragmenter d;
    const auto frags = split(pattern(1600, 5), 800);
    Flow dirty;
    dirty.src.bytes[9] = 0xAA;
    Feeder clean_feed{d, Flow{}};
    Feeder dirty_feed{d, dirty};
    IpPacket out;
    EXPECT_FALSE(clean_feed.feed(frags[0], out));
    EXPECT_TRUE(dirty_feed.feed(frags[1], out));
    EXPECT_EQ(out.src, addr4(1));
}

TEST(IpDefragmenter, WholeDatagramsAreNotTakenOrCounted) {
    IpDefragmenter d;
    IpPacket whole;
    const Bytes data = pattern(100, 1);
    whole.payload = data;
    IpPacket out;
    EXPECT_FALSE(d.add(whole, 0, out));
    EXPECT_EQ(count(d, DefragEvent::Fragments), 0u);
}

// --- Bounds ------------------------------------------------------------------

TEST(IpDefragmenter, TimeoutFollowsPacketTime) {
    IpDefragmenter d(DefragConfig{.timeout_ns = 1000});
    const auto frags = split(pattern(3000, 6), 1000);
    Feeder f{d, {}};
    IpPacket out;
    f.time = 10'000;
    EXPECT_FALSE(f.feed(frags[0], out));
    f.time = 11'000;  // exactly timeout_ns later: still open
    EXPECT_FALSE(f.feed(frags[1], out));
    EXPECT_EQ(count(d, DefragEvent::TimedOut), 0u);
    f.time = 11'001;  // older than timeout_ns: dropped first, this fragment starts anew
    EXPECT_FALSE(f.feed(frags[2], out));
    EXPECT_EQ(count(d, DefragEvent::TimedOut), 1u);
    EXPECT_EQ(d.active_datagrams(), 1u);
    // expire() alone, with packet time going on.
    d.expire(12'001);
    EXPECT_EQ(d.active_datagrams(), 1u);
    d.expire(12'002);
    EXPECT_EQ(d.active_datagrams(), 0u);
    EXPECT_EQ(count(d, DefragEvent::TimedOut), 2u);
    EXPECT_EQ(d.buffered_bytes(), 0u);
}

TEST(IpDefragmenter, TimeGoingBackwardsKeepsExpiryOrdered) {
    IpDefragmenter d(DefragConfig{.timeout_ns = 1000});
    const auto frags = split(pattern(3000, 7), 1000);
    IpPacket out;
    Feeder a{d, Flow{.id = 1}, 5000};
    Feeder b{d, Flow{.id = 2}, 4000};  // earlier than a: filed with a's time
    EXPECT_FALSE(a.feed(frags[0], out));
    EXPECT_FALSE(b.feed(frags[0], out));
    d.expire(6000);
    EXPECT_EQ(d.active_datagrams(), 2u);
    d.expire(6001);
    EXPECT_EQ(d.active_datagrams(), 0u);
}

TEST(IpDefragmenter, FullTableEvictsTheOldestDatagram) {
    IpDefragmenter d(DefragConfig{.max_datagrams = 4});
    const auto frags = split(pattern(2000, 8), 1000);
    IpPacket out;
    for (std::uint32_t id = 0; id < 5; ++id) {
        Feeder f{d, Flow{.id = id}, 1000 + id};
        EXPECT_FALSE(f.feed(frags[0], out));
        EXPECT_LE(d.active_datagrams(), 4u);
    }
    EXPECT_EQ(count(d, DefragEvent::EvictedTableFull), 1u);
    // id 0 was the oldest: its second fragment opens a new datagram (evicting id 1).
    Feeder f0{d, Flow{.id = 0}, 2000};
    EXPECT_FALSE(f0.feed(frags[1], out));
    EXPECT_EQ(count(d, DefragEvent::EvictedTableFull), 2u);
    for (std::uint32_t id = 2; id < 5; ++id) {
        Feeder f{d, Flow{.id = id}, 2000};
        EXPECT_TRUE(f.feed(frags[1], out)) << "id " << id;
    }
}

TEST(IpDefragmenter, MemoryCapEvictsTheOldestDatagrams) {
    // Four 2 KiB blocks fit in 8 KiB.
    IpDefragmenter d(DefragConfig{.max_bytes = 8192});
    const auto frags = split(pattern(2960, 9), 1480);
    IpPacket out;
    for (std::uint32_t id = 0; id < 4; ++id) {
        Feeder f{d, Flow{.id = id}, 1000 + id};
        EXPECT_FALSE(f.feed(frags[0], out));
    }
    EXPECT_EQ(d.buffered_bytes(), 8192u);
    EXPECT_EQ(count(d, DefragEvent::EvictedMemory), 0u);
    // Completing id 3 needs a 4 KiB block: ids 0 and 1 go.
    Feeder f3{d, Flow{.id = 3}, 2000};
    ASSERT_TRUE(f3.feed(frags[1], out));
    EXPECT_EQ(out.payload.size(), 2960u);
    EXPECT_EQ(count(d, DefragEvent::EvictedMemory), 2u);
    EXPECT_EQ(d.active_datagrams(), 1u);  // id 2
    EXPECT_LE(d.buffered_bytes(), 8192u);
    // A datagram that cannot fit at all drops itself.
    Feeder big{d, Flow{.id = 77}, 3000};
    EXPECT_FALSE(big.feed(Frag{16000, false, fill('x', 8)}, out));
    EXPECT_EQ(count(d, DefragEvent::EvictedMemory), 4u);  // id 2, then itself
    EXPECT_EQ(d.active_datagrams(), 0u);
    EXPECT_EQ(d.buffered_bytes(), 0u);
}

TEST(IpDefragmenter, TooManyFragmentsDropsTheDatagram) {
    IpDefragmenter d(DefragConfig{.max_fragments = 4});
    const auto frags = split(pattern(80, 10), 16);  // 5 fragments
    Feeder f{d, {}};
    IpPacket out;
    for (std::size_t i = 0; i < 4; ++i) EXPECT_FALSE(f.feed(frags[i], out));
    EXPECT_FALSE(f.feed(frags[0], out));  // a duplicate does not count
    EXPECT_EQ(count(d, DefragEvent::Duplicates), 1u);
    EXPECT_EQ(d.active_datagrams(), 1u);
    EXPECT_FALSE(f.feed(frags[4], out));
    EXPECT_EQ(count(d, DefragEvent::TooManyFragments), 1u);
    EXPECT_EQ(d.active_datagrams(), 0u);
    // Four fragments are fine.
    Feeder g{d, Flow{.id = 2}};
    EXPECT_TRUE(g.feed_all(split(pattern(64, 11), 16)).has_value());
}

TEST(IpDefragmenter, FragmentEndingPast65535DropsTheDatagram) {
    IpDefragmenter d;
    Feeder f{d, {}};
    IpPacket out;
    EXPECT_FALSE(f.feed(Frag{0, true, fill('a', 1480)}, out));
    EXPECT_EQ(d.active_datagrams(), 1u);
    EXPECT_FALSE(f.feed(Frag{65528, false, fill('b', 8)}, out));  // ends at 65536
    EXPECT_EQ(count(d, DefragEvent::TooLarge), 1u);
    EXPECT_EQ(d.active_datagrams(), 0u);
    // Ending exactly at 65535 is allowed.
    Feeder g{d, Flow{.id = 5}};
    EXPECT_FALSE(g.feed(Frag{65528, false, fill('c', 7)}, out));
    EXPECT_EQ(d.active_datagrams(), 1u);
}

TEST(IpDefragmenter, InconsistentFragmentsDropTheDatagram) {
    IpPacket out;
    {  // two different last fragments
        IpDefragmenter d;
        Feeder f{d, {}};
        EXPECT_FALSE(f.feed(Frag{16, false, fill('a', 8)}, out));
        EXPECT_FALSE(f.feed(Frag{16, false, fill('a', 9)}, out));
        EXPECT_EQ(count(d, DefragEvent::Inconsistent), 1u);
        EXPECT_EQ(d.active_datagrams(), 0u);
    }
    {  // data beyond the known end
        IpDefragmenter d;
        Feeder f{d, {}};
        EXPECT_FALSE(f.feed(Frag{16, false, fill('a', 8)}, out));
        EXPECT_FALSE(f.feed(Frag{16, true, fill('b', 16)}, out));
        EXPECT_EQ(count(d, DefragEvent::Inconsistent), 1u);
        EXPECT_EQ(d.active_datagrams(), 0u);
    }
    {  // a last fragment ending before data already received
        IpDefragmenter d;
        Feeder f{d, {}};
        EXPECT_FALSE(f.feed(Frag{64, true, fill('a', 8)}, out));
        EXPECT_FALSE(f.feed(Frag{16, false, fill('b', 8)}, out));
        EXPECT_EQ(count(d, DefragEvent::Inconsistent), 1u);
        EXPECT_EQ(d.active_datagrams(), 0u);
    }
    {  // a middle fragment whose length is not a multiple of 8, or 0
        IpDefragmenter d;
        Feeder f{d, {}};
        EXPECT_FALSE(f.feed(Frag{0, true, fill('a', 16)}, out));
        EXPECT_FALSE(f.feed(Frag{16, true, fill('b', 12)}, out));
        EXPECT_FALSE(f.feed(Frag{0, true, fill('a', 16)}, out));
        EXPECT_FALSE(f.feed(Frag{16, true, Bytes{}}, out));
        EXPECT_EQ(count(d, DefragEvent::Inconsistent), 2u);
        EXPECT_EQ(d.active_datagrams(), 0u);
    }
    {  // a truncated fragment is ignored; its datagram stays
        IpDefragmenter d;
        Feeder f{d, {}};
        EXPECT_FALSE(f.feed(Frag{0, true, fill('a', 16)}, out));
        IpPacket cut = make_packet(Flow{}, Frag{16, false, fill('b', 4)});
        cut.truncated = true;
        EXPECT_FALSE(d.add(cut, f.time, out));
        EXPECT_EQ(count(d, DefragEvent::Inconsistent), 1u);
        EXPECT_EQ(d.active_datagrams(), 1u);
        EXPECT_TRUE(f.feed(Frag{16, false, fill('b', 4)}, out));
    }
}

TEST(IpDefragmenter, FinishCountsIncompleteDatagrams) {
    IpDefragmenter d;
    const auto frags = split(pattern(3000, 12), 1000);
    IpPacket out;
    for (std::uint32_t id = 0; id < 3; ++id) {
        Feeder f{d, Flow{.id = id}};
        EXPECT_FALSE(f.feed(frags[id], out));
    }
    Feeder done{d, Flow{.id = 9}};
    EXPECT_TRUE(done.feed_all(frags).has_value());
    EXPECT_EQ(d.active_datagrams(), 3u);
    d.finish();
    EXPECT_EQ(count(d, DefragEvent::Incomplete), 3u);
    EXPECT_EQ(d.active_datagrams(), 0u);
    EXPECT_EQ(d.buffered_bytes(), 0u);
}

TEST(IpDefragmenter, ReturnedBufferIsRecycledOnTheNextCall) {
    IpDefragmenter d;
    Feeder f{d, {}};
    ASSERT_TRUE(f.feed_all(split(pattern(3000, 13), 1480)).has_value());
    EXPECT_EQ(d.buffered_bytes(), 4096u);  // still owned by the caller's `out`
    d.expire(f.time);
    EXPECT_EQ(d.buffered_bytes(), 0u);
}

TEST(IpDefragmenter, RejectsZeroLimits) {
    EXPECT_THROW(IpDefragmenter(DefragConfig{.max_datagrams = 0}), util::FatalError);
    EXPECT_THROW(IpDefragmenter(DefragConfig{.max_fragments = 0}), util::FatalError);
}

TEST(IpDefragmenter, MillionRandomFragmentsStayWithinEveryBound) {
    const DefragConfig config{.max_datagrams = 64, .max_bytes = 256 * 1024, .max_fragments = 8, .timeout_ns = 50'000};
    IpDefragmenter d(config);
    std::mt19937_64 rng(7);
    // Every fragment carries the bytes of this one datagram at its offset, so
    // whatever completes must be a prefix of it, whatever the overlaps.
    Bytes data(65536 + 64);  // fragments may end past 65535 (TooLarge)
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 31 + i / 251);
    IpPacket out;
    std::uint64_t completed = 0;
    std::uint64_t time = 0;
    for (int i = 0; i < 1'000'000; ++i) {
        time += rng() % 100;
        if (rng() % 20'000 == 0) time += 100'000;  // a quiet spell: everything times out
        IpPacket p;
        const auto host = static_cast<std::uint8_t>(rng() % 4);
        p.src = (rng() & 1) != 0 ? addr4(host) : addr6(host);
        p.dst = p.src.family == 4 ? addr4(200) : addr6(200);
        p.protocol = 17;
        p.is_fragment = true;
        p.fragment_id = static_cast<std::uint32_t>(rng() % 12);
        // Mostly small datagrams (that complete), sometimes huge offsets.
        const auto unit = static_cast<std::uint32_t>(rng() % 64 == 0 ? rng() % 8192 : rng() % 6);
        p.fragment_offset = unit * 8;
        p.more_fragments = rng() % 6 != 0;
        std::size_t len = 8 * (1 + rng() % 4);
        if (!p.more_fragments) len -= rng() % 8;
        if (rng() % 5000 == 0) len -= 1;  // a bad middle fragment now and then
        p.payload = std::span<const std::uint8_t>(data.data() + p.fragment_offset, len);
        if (d.add(p, time, out)) {
            ++completed;
            ASSERT_FALSE(out.is_fragment);
            ASSERT_LE(out.payload.size(), 65535u);
            ASSERT_TRUE(std::equal(out.payload.begin(), out.payload.end(), data.begin()));
        }
        ASSERT_LE(d.active_datagrams(), config.max_datagrams);
        ASSERT_LE(d.buffered_bytes(), config.max_bytes);
    }
    d.finish();
    EXPECT_EQ(count(d, DefragEvent::Fragments), 1'000'000u);
    EXPECT_EQ(count(d, DefragEvent::Reassembled), completed);
    EXPECT_GT(completed, 10'000u);
    EXPECT_EQ(d.active_datagrams(), 0u);
    EXPECT_EQ(d.buffered_bytes(), 0u);
    // Every way of giving up was taken at least once.
    for (const DefragEvent e : {DefragEvent::Duplicates, DefragEvent::Overlaps, DefragEvent::TimedOut,
                                DefragEvent::EvictedTableFull, DefragEvent::EvictedMemory,
                                DefragEvent::TooManyFragments, DefragEvent::TooLarge, DefragEvent::Inconsistent,
                                DefragEvent::Incomplete})
        EXPECT_GT(count(d, e), 0u) << kDefragEventNames[static_cast<std::size_t>(e)];
    d.counters().for_each([](std::string_view name, std::uint64_t v) { std::cout << "  " << name << " " << v << "\n"; });
}

// --- Real captures -------------------------------------------------------------

struct CaptureResult {
    std::uint64_t fragments = 0;
    std::uint64_t udp_datagrams = 0;
};

std::uint16_t be16(std::span<const std::uint8_t> b, std::size_t at) {
    return static_cast<std::uint16_t>(b[at] << 8 | b[at + 1]);
}

CaptureResult replay(const std::string& name) {
    CaptureResult r;
    const std::string path = test_data::public_capture(name);
    std::unique_ptr<capture::PacketSource> src = capture::open_capture_file(path);
    decode::Decoder decoder;
    IpDefragmenter defrag;
    capture::Packet packet;
    while (src->next(packet) == capture::PacketSource::Status::Packet) {
        IpPacket ip;
        if (!decoder.decode_link(packet, ip) || !ip.is_fragment) continue;
        ++r.fragments;
        IpPacket whole;
        if (!defrag.add(ip, packet.timestamp_ns, whole)) continue;
        decode::Segment seg;
        if (!decoder.decode_transport(whole, packet.timestamp_ns, seg) || seg.transport != decode::Transport::Udp)
            continue;
        ++r.udp_datagrams;
        // No extension headers in these captures: the UDP header opens the payload.
        EXPECT_EQ(whole.payload.size(), be16(whole.payload, 4)) << name;
        EXPECT_EQ(seg.payload.size(), be16(whole.payload, 4) - 8u) << name;
    }
    EXPECT_EQ(src->error(), "") << name;
    defrag.finish();
    EXPECT_EQ(defrag.counters().get(DefragEvent::Incomplete), 0u) << name;
    EXPECT_EQ(defrag.counters().get(DefragEvent::Inconsistent), 0u) << name;
    EXPECT_EQ(defrag.counters().get(DefragEvent::TooLarge), 0u) << name;
    return r;
}

TEST(IpDefragmenterCaptures, RebuildsEveryUdpDatagramOfRealCaptures) {
    const CaptureResult frags = replay("dnscap-frags.pcap");
    EXPECT_EQ(frags.fragments, 495u);
    EXPECT_EQ(frags.udp_datagrams, 82u);
    EXPECT_EQ(replay("derived-dnscollector-ip4-frags-reversed.pcap").udp_datagrams, 1u);
    EXPECT_EQ(replay("derived-dnscollector-ip6-frags-reversed.pcap").udp_datagrams, 1u);
}

}  // namespace
}  // namespace sidetap::reassembly
