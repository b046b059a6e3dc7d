// Unit tests for streams::Http2Session (DNS over HTTPS over HTTP/2 with
// HPACK) and base64url: POST and GET requests, responses in several DATA
// frames, streams multiplexed and answered out of order, CONTINUATION,
// padding and priority, the HPACK dynamic table across blocks and its size
// announced in SETTINGS, splits at every byte boundary, and what is not DoH
// or cannot be decoded. Header blocks are made by libnghttp2's HPACK
// deflater, an encoder independent of the decoder under test.
#include "streams/base64url.h"
#include "streams/http2_session.h"
#include "stream_test_util.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sidetap::streams {
namespace {

using namespace sidetap::test_streams;

struct Message {
    bool from_client;
    std::uint32_t stream;
    Bytes wire;
    friend bool operator==(const Message&, const Message&) = default;
};

struct Collect final : DohSink {
    std::vector<Message> messages;
    void on_doh_message(bool from_client, std::uint32_t stream_id, std::span<const std::uint8_t> wire) override {
        messages.push_back({from_client, stream_id, Bytes(wire.begin(), wire.end())});
    }
};

// Both sides of one HTTP/2 connection, as real peers would write them.
struct Conversation {
    Hpack client_hpack;
    Hpack server_hpack;
    Bytes client = cat({text(kPreface), settings()});
    Bytes server = settings({{3, 100}});

    std::vector<std::pair<std::string, std::string>> request_headers(const std::string& method, const std::string& path) {
        return {{":method", method}, {":scheme", "https"}, {":authority", "dns.test"}, {":path", path},
                {"accept", "application/dns-message"}};
    }
    void post(std::uint32_t id, const Bytes& query, std::size_t max_frame = 16384) {
        auto h = request_headers("POST", "/dns-query");
        h.push_back({"content-type", "application/dns-message"});
        h.push_back({"content-length", std::to_string(query.size())});
        client = cat({client, frame(h2::kHeaders, h2::kEndHeaders, id, client_hpack.encode(h))});
        data(client, id, query, max_frame);
    }
    void get(std::uint32_t id, const Bytes& query) {
        client = cat({client, frame(h2::kHeaders, h2::kEndHeaders | h2::kEndStream, id,
                                    client_hpack.encode(request_headers("GET", "/dns-query?dns=" + base64url(query))))});
    }
    void respond(std::uint32_t id, const Bytes& answer, const std::string& status = "200", std::size_t max_frame = 16384) {
        server = cat({server, frame(h2::kHeaders, h2::kEndHeaders, id,
                                    server_hpack.encode({{":status", status},
                                                         {"content-type", "application/dns-message"},
                                                         {"content-length", std::to_string(answer.size())},
                                                         {"cache-control", "max-age=300"}}))});
        data(server, id, answer, max_frame);
    }
    static void data(Bytes& to, std::uint32_t id, const Bytes& body, std::size_t max_frame) {
        std::size_t at = 0;
        do {
            const std::size_t n = std::min(max_frame, body.size() - at);
            const bool last = at + n == body.size();
            to = cat({to, frame(h2::kData, last ? h2::kEndStream : 0, id, Bytes(body.begin() + at, body.begin() + at + n))});
            at += n;
        } while (at < body.size());
    }
};

StreamCounters fresh_counters() { return StreamCounters(kStreamEventNames); }

std::vector<Message> run(Conversation& c, StreamCounters& counters, std::size_t cut = 0) {
    Http2Session s({}, counters);
    Collect out;
    if (cut == 0) {
        s.feed(true, c.client, out);
        s.feed(false, c.server, out);
    } else {
        const std::size_t cc = std::min(cut, c.client.size()), sc = std::min(cut, c.server.size());
        s.feed(true, std::span(c.client).first(cc), out);
        s.feed(true, std::span(c.client).subspan(cc), out);
        s.feed(false, std::span(c.server).first(sc), out);
        s.feed(false, std::span(c.server).subspan(sc), out);
    }
    return out.messages;
}

TEST(DohSession, PostQueryAndItsResponseCarryTheirStream) {
    Conversation c;
    const Bytes q = dns_message(0, false, "post"), r = dns_message(0, true, "post");
    c.post(1, q);
    c.respond(1, r);
    auto counters = fresh_counters();
    const auto got = run(c, counters);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0], (Message{true, 1, q}));
    EXPECT_EQ(got[1], (Message{false, 1, r}));
}

TEST(DohSession, GetQueryComesFromTheBase64urlParameter) {
    Conversation c;
    // Sizes 1, 2 and 0 mod 3: every base64 tail.
    for (std::uint32_t i = 0; i < 3; ++i) {
        const Bytes q = dns_message(0, false, std::string(5 + i, 'g'));
        c.get(1 + 2 * i, q);
        c.respond(1 + 2 * i, dns_message(0, true, std::string(5 + i, 'g')));
    }
    auto counters = fresh_counters();
    const auto got = run(c, counters);
    ASSERT_EQ(got.size(), 6u);
    for (std::uint32_t i = 0; i < 3; ++i) EXPECT_EQ(got[i].wire, dns_message(0, false, std::string(5 + i, 'g')));
}

TEST(DohSession, MultiplexedStreamsAnsweredOutOfOrderPairByStream) {
    Conversation c;
    for (std::uint32_t id : {1u, 3u, 5u}) c.post(id, dns_message(0, false, "s" + std::to_string(id)));
    for (std::uint32_t id : {5u, 1u, 3u}) c.respond(id, dns_message(0, true, "s" + std::to_string(id)));
    auto counters = fresh_counters();
    const auto got = run(c, counters);
    ASSERT_EQ(got.size(), 6u);
    for (const auto& m : got) {
        if (m.from_client) continue;
        EXPECT_EQ(m.wire, dns_message(0, true, "s" + std::to_string(m.stream)));
    }
    EXPECT_EQ(got[3].stream, 5u);
}

TEST(DohSession, AnswerOver16KiBInSeveralDataFrames) {
    Conversation c;
    const Bytes q = dns_message(0, false, "big"), r = dns_message(0, true, "big", 24000);
    c.post(1, q);
    c.respond(1, r, "200", 16384);
    auto counters = fresh_counters();
    const auto got = run(c, counters);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[1].wire, r);
}

TEST(DohSession, EverySplitPointGivesTheSameMessages) {
    Conversation c;
    c.post(1, dns_message(0, false, "one"));
    c.get(3, dns_message(0, false, "two"));
    c.respond(3, dns_message(0, true, "two"));
    c.respond(1, dns_message(0, true, "one", 100));
    auto counters = fresh_counters();
    const auto whole = run(c, counters);
    ASSERT_EQ(whole.size(), 4u);
    for (std::size_t cut = 1; cut < std::max(c.client.size(), c.server.size()); ++cut) {
        auto ctr = fresh_counters();
        ASSERT_EQ(run(c, ctr, cut), whole) << "cut at " << cut;
    }
}

TEST(DohSession, HeaderBlockInContinuationFramesWithPaddingAndPriority) {
    Conversation c;
    const Bytes q = dns_message(0, false, "cont");
    auto h = c.request_headers("POST", "/dns-query");
    h.push_back({"content-type", "application/dns-message"});
    const Bytes block = c.client_hpack.encode(h);
    // HEADERS (padded, with priority) carrying the first 5 bytes, then two CONTINUATIONs.
    Bytes headers_payload{3, 0, 0, 0, 0, 16};  // pad length 3, stream dependency 0, weight 16
    headers_payload.insert(headers_payload.end(), block.begin(), block.begin() + 5);
    headers_payload.insert(headers_payload.end(), {0, 0, 0});
    c.client = cat({c.client, frame(h2::kHeaders, h2::kPadded | h2::kPriorityFlag, 1, headers_payload),
                    frame(h2::kContinuation, 0, 1, Bytes(block.begin() + 5, block.begin() + 7)),
                    frame(h2::kContinuation, h2::kEndHeaders, 1, Bytes(block.begin() + 7, block.end()))});
    Bytes padded_data{2};
    padded_data.insert(padded_data.end(), q.begin(), q.end());
    padded_data.insert(padded_data.end(), {0, 0});
    c.client = cat({c.client, frame(h2::kData, h2::kPadded | h2::kEndStream, 1, padded_data)});
    auto counters = fresh_counters();
    const auto got = run(c, counters);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].wire, q);
}

TEST(DohSession, DynamicTableAcrossBlocksAndStreamsWeDoNotFollow) {
    // A non-DoH request first: its header block still feeds the HPACK table the
    // next (DoH) request's block refers to.
    Conversation c;
    c.client = cat({c.client, frame(h2::kHeaders, h2::kEndHeaders | h2::kEndStream, 1,
                                    c.client_hpack.encode(c.request_headers("GET", "/index.html")))});
    c.server = cat({c.server, frame(h2::kHeaders, h2::kEndHeaders, 1,
                                    c.server_hpack.encode({{":status", "200"}, {"content-type", "text/html"}})),
                    frame(h2::kData, h2::kEndStream, 1, text("<html/>"))});
    c.post(3, dns_message(0, false, "after"));
    c.respond(3, dns_message(0, true, "after"));
    auto counters = fresh_counters();
    const auto got = run(c, counters);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].stream, 3u);
    EXPECT_EQ(counters.get(StreamEvent::DohStreamsNotDns), 1u);
    EXPECT_EQ(counters.get(StreamEvent::DohHeaderErrors), 0u);
}

TEST(DohSession, TableSizeAnnouncedInSettingsIsAccepted) {
    for (const bool announce : {true, false}) {
        Conversation c;
        if (announce) c.client = cat({c.client, settings({{1, 16384}})});  // SETTINGS_HEADER_TABLE_SIZE
        // The server's encoder uses the larger table the client allowed: it
        // says so (a size update) at the start of its next block.
        nghttp2_hd_deflater* d = nullptr;
        ASSERT_EQ(nghttp2_hd_deflate_new(&d, 16384), 0);
        ASSERT_EQ(nghttp2_hd_deflate_change_table_size(d, 16384), 0);
        std::vector<nghttp2_nv> nva;
        std::string k1 = ":status", v1 = "200", k2 = "content-type", v2 = "application/dns-message";
        nva.push_back({reinterpret_cast<std::uint8_t*>(k1.data()), reinterpret_cast<std::uint8_t*>(v1.data()), k1.size(),
                       v1.size(), NGHTTP2_NV_FLAG_NONE});
        nva.push_back({reinterpret_cast<std::uint8_t*>(k2.data()), reinterpret_cast<std::uint8_t*>(v2.data()), k2.size(),
                       v2.size(), NGHTTP2_NV_FLAG_NONE});
        Bytes block(nghttp2_hd_deflate_bound(d, nva.data(), nva.size()));
        const auto n = nghttp2_hd_deflate_hd(d, block.data(), block.size(), nva.data(), nva.size());
        nghttp2_hd_deflate_del(d);
        ASSERT_GT(n, 0);
        block.resize(static_cast<std::size_t>(n));
        const Bytes q = dns_message(0, false, "tbl"), r = dns_message(0, true, "tbl");
        c.post(1, q);
        c.server = cat({c.server, frame(h2::kHeaders, h2::kEndHeaders, 1, block), frame(h2::kData, h2::kEndStream, 1, r)});
        auto counters = fresh_counters();
        const auto got = run(c, counters);
        if (announce) {
            ASSERT_EQ(got.size(), 2u);
            EXPECT_EQ(got[1].wire, r);
        } else {
            // Without the announcement the size update is a decoding error.
            EXPECT_EQ(got.size(), 1u);
            EXPECT_EQ(counters.get(StreamEvent::DohHeaderErrors), 1u);
        }
    }
}

TEST(DohSession, ErrorAnswersAndResetStreamsAreNotMessages) {
    Conversation c;
    c.post(1, dns_message(0, false, "err"));
    c.respond(1, text("bad request"), "400");
    c.post(3, dns_message(0, false, "rst"));
    c.server = cat({c.server, frame(h2::kRstStream, 0, 3, Bytes{0, 0, 0, 8})});
    auto counters = fresh_counters();
    const auto got = run(c, counters);
    EXPECT_EQ(got.size(), 2u);  // the two queries
    EXPECT_EQ(counters.get(StreamEvent::DohStreamsNotDns), 1u);
    EXPECT_EQ(counters.get(StreamEvent::DohStreamsReset), 1u);
}

TEST(DohSession, StatusMustBeThreeDigits) {
    for (const std::string status : {"2000000000", "20", "2x0", "200 "}) {
        Conversation c;
        c.post(1, dns_message(0, false, "st"));
        c.respond(1, dns_message(0, true, "st"), status);
        auto counters = fresh_counters();
        const auto got = run(c, counters);
        EXPECT_EQ(got.size(), 1u) << status;  // the query only
        EXPECT_EQ(counters.get(StreamEvent::DohStreamsNotDns), 1u) << status;
    }
}

TEST(DohSession, LostBytesStopThatDirectionOnly) {
    Conversation c;
    c.post(1, dns_message(0, false, "a"));
    c.respond(1, dns_message(0, true, "a"));
    auto counters = fresh_counters();
    Http2Session s({}, counters);
    Collect out;
    s.feed(true, c.client, out);
    s.gap(true);
    s.feed(true, frame(h2::kData, h2::kEndStream, 9, text("junk")), out);
    s.feed(false, c.server, out);
    ASSERT_EQ(out.messages.size(), 2u);  // the query before the gap, the response after it
    EXPECT_TRUE(s.dead(true));
    EXPECT_FALSE(s.dead(false));
    EXPECT_EQ(counters.get(StreamEvent::DohHeaderErrors), 1u);
}

TEST(DohSession, BadInputIsCountedNeverThrown) {
    auto counters = fresh_counters();
    Http2Session s({}, counters);
    Collect out;
    s.feed(true, text("PRI * HTTP/1.1\r\n\r\n"), out);  // not the preface
    EXPECT_TRUE(s.dead(true));
    Conversation c;
    c.get(1, dns_message(0, false, "x"));
    // A GET whose dns parameter is not base64url.
    c.client = cat({c.client, frame(h2::kHeaders, h2::kEndHeaders | h2::kEndStream, 3,
                                    c.client_hpack.encode(c.request_headers("GET", "/dns-query?dns=!!!")))});
    auto ctr2 = fresh_counters();
    const auto got = run(c, ctr2);
    EXPECT_EQ(got.size(), 1u);
    EXPECT_EQ(ctr2.get(StreamEvent::DohStreamsUndecodable), 1u);
}

TEST(DohSession, StreamsBeyondTheLimitEvictTheOldest) {
    Conversation c;
    for (std::uint32_t i = 0; i < 6; ++i) c.post(1 + 2 * i, dns_message(0, false, "e" + std::to_string(i)));
    auto counters = fresh_counters();
    Http2Limits limits;
    limits.max_streams = 4;
    Http2Session s(limits, counters);
    Collect out;
    s.feed(true, c.client, out);
    EXPECT_EQ(out.messages.size(), 6u);
    EXPECT_LE(s.open_streams(), 4u);
    EXPECT_EQ(counters.get(StreamEvent::DohStreamsEvicted), 2u);
}

TEST(Base64url, DecodesWithAndWithoutPadding) {
    std::vector<std::uint8_t> out;
    ASSERT_TRUE(decode_base64url("AAABAAAB", out));
    EXPECT_EQ(out, (std::vector<std::uint8_t>{0, 0, 1, 0, 0, 1}));
    ASSERT_TRUE(decode_base64url("_-8", out));
    EXPECT_EQ(out, (std::vector<std::uint8_t>{0xff, 0xef}));
    ASSERT_TRUE(decode_base64url("_-8=", out));
    EXPECT_EQ(out.size(), 2u);
    ASSERT_TRUE(decode_base64url("_-8%3D", out));
    EXPECT_EQ(out.size(), 2u);
    EXPECT_FALSE(decode_base64url("a+b/", out));  // base64, not base64url
    EXPECT_FALSE(decode_base64url("abcde", out));
    std::string_view v;
    ASSERT_TRUE(query_parameter("/dns-query?ct=x&dns=AAAB#frag", "dns", v));
    EXPECT_EQ(v, "AAAB");
    EXPECT_FALSE(query_parameter("/dns-query?dnsx=AAAB", "dns", v));
    EXPECT_FALSE(query_parameter("/dns-query", "dns", v));
}

}  // namespace
}  // namespace sidetap::streams
