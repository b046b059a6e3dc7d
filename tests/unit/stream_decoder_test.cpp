// Unit tests for the stream entry of the pipeline: streams::StreamDecoder
// (protocol decided from the first bytes, who is the client, attribution,
// gaps, TLS objects reused for new connections, bounds), the pipeline's
// process_stream() (DOT/DOH frames, query_time per HTTP/2 stream), the
// TLS probes' record parser and the /proc parsing that finds TLS libraries.
#include "capture/tls_processes.h"
#include "capture/tls_record.h"
#include "dnstap.pb.h"
#include "output/memory_output.h"
#include "pipeline/pipeline.h"
#include "streams/stream_decoder.h"
#include "stream_test_util.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>

namespace sidetap {
namespace {

using namespace sidetap::test_streams;
using streams::StreamEvent;

constexpr std::uint64_t kMs = 1'000'000ULL;

// One TLS connection of a probed process, as the probes report it.
struct Conn {
    std::uint32_t pid = 100;
    std::uint64_t object = 0x5000;
    std::uint64_t generation = 1;
    std::uint8_t family = 4;
    std::array<std::uint8_t, 16> local{127, 0, 0, 3};
    std::array<std::uint8_t, 16> remote{127, 0, 0, 1};
    std::uint16_t local_port = 853;
    std::uint16_t remote_port = 40000;
    bool from_start = true;
    std::array<std::uint64_t, 2> offset{};
    std::uint64_t time = 1'700'000'000'000'000'000ULL;

    capture::StreamChunk chunk(bool outgoing, std::span<const std::uint8_t> data) {
        capture::StreamChunk c;
        c.pid = pid;
        c.object = object;
        c.generation = generation;
        c.outgoing = outgoing;
        c.from_start = from_start;
        c.family = family;
        c.local = local;
        c.remote = remote;
        c.local_port = local_port;
        c.remote_port = remote_port;
        c.attribution = family ? capture::StreamChunk::Attribution::Fd : capture::StreamChunk::Attribution::None;
        c.offset = offset[outgoing];
        offset[outgoing] += data.size();
        time += kMs;
        c.timestamp_ns = time;
        c.data = data;
        return c;
    }
    capture::StreamChunk close() {
        capture::StreamChunk c = chunk(false, {});
        c.kind = capture::StreamChunk::Kind::Close;
        return c;
    }
};

struct Got {
    streams::Protocol protocol;
    std::string client;
    std::uint16_t client_port;
    std::string server;
    std::uint16_t server_port;
    bool from_client;
    bool process_is_client;
    std::uint32_t stream;
    Bytes wire;
};

std::string text_of(const decode::IpAddress& a) {
    std::string s;
    for (std::size_t i = 0; i < a.size(); ++i) s += (i ? "." : "") + std::to_string(a.bytes[i]);
    return (a.family == 6 ? "6:" : "") + s;
}

struct Sink final : streams::StreamMessageSink {
    std::vector<Got> got;
    void on_stream_message(const streams::StreamMessage& m) override {
        got.push_back({m.protocol, text_of(m.client), m.client_port, text_of(m.server), m.server_port, m.from_client,
                       m.process_is_client, m.stream_id, Bytes(m.wire.begin(), m.wire.end())});
    }
};

TEST(StreamDecoder, DotServerReadsQueriesAndWritesResponses) {
    streams::StreamDecoder dec;
    Sink sink;
    Conn c;
    const Bytes q = framed(dns_message(7, false)), r = framed(dns_message(7, true));
    dec.add(c.chunk(false, std::span(q).first(2)), 0, sink);  // the length alone, as servers read it
    dec.add(c.chunk(false, std::span(q).subspan(2)), 0, sink);
    dec.add(c.chunk(true, r), 0, sink);
    ASSERT_EQ(sink.got.size(), 2u);
    EXPECT_EQ(sink.got[0].protocol, streams::Protocol::Dot);
    EXPECT_TRUE(sink.got[0].from_client);
    EXPECT_FALSE(sink.got[0].process_is_client);
    EXPECT_EQ(sink.got[0].client, "127.0.0.1");
    EXPECT_EQ(sink.got[0].client_port, 40000);
    EXPECT_EQ(sink.got[0].server, "127.0.0.3");
    EXPECT_EQ(sink.got[0].server_port, 853);
    EXPECT_FALSE(sink.got[1].from_client);
    EXPECT_EQ(sink.got[1].wire, dns_message(7, true));
    EXPECT_EQ(dec.counters().get(StreamEvent::DotConnections), 1u);
}

TEST(StreamDecoder, ProcessThatWritesTheQueryIsTheClient) {
    // A resolver forwarding over DoT: it writes queries and reads answers.
    streams::StreamDecoder dec;
    Sink sink;
    Conn c;
    c.local_port = 50000;
    c.remote_port = 853;
    const Bytes q = framed(dns_message(1, false)), r = framed(dns_message(1, true));
    dec.add(c.chunk(true, q), 0, sink);
    dec.add(c.chunk(false, r), 0, sink);
    ASSERT_EQ(sink.got.size(), 2u);
    EXPECT_TRUE(sink.got[0].process_is_client);
    EXPECT_TRUE(sink.got[0].from_client);
    EXPECT_EQ(sink.got[0].client, "127.0.0.3");
    EXPECT_EQ(sink.got[0].client_port, 50000);
    EXPECT_EQ(sink.got[0].server_port, 853);
}

Bytes doh_client_bytes(Hpack& h, std::uint32_t id, const Bytes& query) {
    return cat({frame(h2::kHeaders, h2::kEndHeaders, id,
                      h.encode({{":method", "POST"}, {":scheme", "https"}, {":authority", "d"}, {":path", "/dns-query"},
                                {"content-type", "application/dns-message"}})),
                frame(h2::kData, h2::kEndStream, id, query)});
}
Bytes doh_server_bytes(Hpack& h, std::uint32_t id, const Bytes& answer) {
    return cat({frame(h2::kHeaders, h2::kEndHeaders, id, h.encode({{":status", "200"}})),
                frame(h2::kData, h2::kEndStream, id, answer)});
}

TEST(StreamDecoder, DohFromTheClientPrefaceWhateverTheServerWroteFirst) {
    for (const bool server_first : {false, true}) {
        for (std::size_t cut = 1; cut < kPreface.size(); cut += 5) {
            streams::StreamDecoder dec;
            Sink sink;
            Conn c;
            c.local_port = 443;
            Hpack ch, sh;
            const Bytes client = cat({text(kPreface), settings(), doh_client_bytes(ch, 1, dns_message(0, false))});
            const Bytes server = cat({settings(), doh_server_bytes(sh, 1, dns_message(0, true))});
            if (server_first) dec.add(c.chunk(true, std::span(server).first(15)), 0, sink);  // SETTINGS
            dec.add(c.chunk(false, std::span(client).first(cut)), 0, sink);  // the preface in pieces
            dec.add(c.chunk(false, std::span(client).subspan(cut)), 0, sink);
            dec.add(c.chunk(true, std::span(server).subspan(server_first ? 15 : 0)), 0, sink);
            ASSERT_EQ(sink.got.size(), 2u) << "cut " << cut << " server first " << server_first;
            EXPECT_EQ(sink.got[0].protocol, streams::Protocol::Doh);
            EXPECT_EQ(sink.got[0].stream, 1u);
            EXPECT_TRUE(sink.got[0].from_client);
            EXPECT_EQ(sink.got[0].server_port, 443);
            EXPECT_EQ(dec.counters().get(StreamEvent::DohConnections), 1u);
        }
    }
}

TEST(StreamDecoder, Http1IsCountedNotDecoded) {
    streams::StreamDecoder dec;
    Sink sink;
    Conn c;
    const Bytes get = text("GET /dns-query?dns=AAAB HTTP/1.1\r\nHost: d\r\n\r\n");
    dec.add(c.chunk(false, std::span(get).first(2)), 0, sink);
    dec.add(c.chunk(false, std::span(get).subspan(2)), 0, sink);
    EXPECT_TRUE(sink.got.empty());
    EXPECT_EQ(dec.counters().get(StreamEvent::Http1Connections), 1u);
}

TEST(StreamDecoder, MessagesOfAnUnattributedConnectionAreCountedNotEmitted) {
    streams::StreamDecoder dec;
    Sink sink;
    Conn c;
    c.family = 0;
    const Bytes q = framed(dns_message(1, false));
    dec.add(c.chunk(false, q), 0, sink);
    EXPECT_TRUE(sink.got.empty());
    EXPECT_EQ(dec.counters().get(StreamEvent::UnattributedMessages), 1u);
    EXPECT_EQ(dec.counters().get(StreamEvent::UnattributedBytes), q.size());
    c.family = 4;  // a later call found the connection
    dec.add(c.chunk(true, framed(dns_message(1, true))), 0, sink);
    ASSERT_EQ(sink.got.size(), 1u);
    EXPECT_EQ(sink.got[0].client_port, 40000);
}

TEST(StreamDecoder, ObjectReusedForANewConnectionIsANewConnection) {
    streams::StreamDecoder dec;
    Sink sink;
    Conn a;
    Hpack ch, sh;
    // First a DoH connection ...
    dec.add(a.chunk(false, cat({text(kPreface), settings(), doh_client_bytes(ch, 1, dns_message(0, false))})), 0,
            sink);
    dec.add(a.chunk(true, cat({settings(), doh_server_bytes(sh, 1, dns_message(0, true))})), 0, sink);
    dec.add(a.close(), 0, sink);
    // ... then a DoT connection from another client port on the same object.
    Conn b = a;
    b.generation = 2;
    b.offset = {};
    b.remote_port = 40001;
    dec.add(b.chunk(false, framed(dns_message(9, false))), 0, sink);
    ASSERT_EQ(sink.got.size(), 3u);
    EXPECT_EQ(sink.got[2].protocol, streams::Protocol::Dot);
    EXPECT_EQ(sink.got[2].client_port, 40001);
    EXPECT_EQ(dec.counters().get(StreamEvent::ObjectReuses), 1u);
    EXPECT_EQ(dec.counters().get(StreamEvent::ConnectionsClosed), 1u);
}

TEST(StreamDecoder, LostBytesAreAGapAndDotResynchronises) {
    streams::StreamDecoder dec;
    Sink sink;
    Conn c;
    const Bytes q1 = framed(dns_message(1, false, "first")), q2 = framed(dns_message(2, false, "second"));
    dec.add(c.chunk(false, std::span(q1).first(6)), 0, sink);
    c.offset[0] += 10;  // a record lost in the ring
    dec.add(c.chunk(false, q2), 0, sink);
    ASSERT_EQ(sink.got.size(), 1u);
    EXPECT_EQ(sink.got[0].wire, dns_message(2, false, "second"));
    EXPECT_EQ(dec.counters().get(StreamEvent::Gaps), 1u);
}

TEST(StreamDecoder, MidConnectionStreamWithoutHandshakeFindsItsFirstMessage) {
    streams::StreamDecoder dec;
    Sink sink;
    Conn c;
    c.from_start = false;
    const Bytes tail = framed(dns_message(3, false, "cut"));
    dec.add(c.chunk(false, cat({Bytes(tail.begin() + 20, tail.end()), framed(dns_message(4, false, "whole"))})), 0,
            sink);
    ASSERT_EQ(sink.got.size(), 1u);
    EXPECT_EQ(sink.got[0].wire, dns_message(4, false, "whole"));
}

TEST(StreamDecoder, Ipv4MappedAddressesAreGivenAsIpv4) {
    streams::StreamDecoder dec;
    Sink sink;
    Conn c;
    c.family = 6;
    c.local = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
    c.remote = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7};
    dec.add(c.chunk(false, framed(dns_message(1, false))), 0, sink);
    ASSERT_EQ(sink.got.size(), 1u);
    EXPECT_EQ(sink.got[0].client, "198.51.100.7");
    EXPECT_EQ(sink.got[0].server, "192.0.2.1");
}

TEST(StreamDecoder, ConnectionsAreBoundedAndTimeOut) {
    streams::StreamConfig config;
    config.max_connections = 3;
    config.idle_timeout_ns = 10 * kMs;
    streams::StreamDecoder dec(config);
    Sink sink;
    for (std::uint64_t i = 0; i < 5; ++i) {
        Conn c;
        c.object = 0x1000 + i;
        const Bytes q = framed(dns_message(1, false));
        dec.add(c.chunk(false, std::span(q).first(5)), i, sink);
    }
    EXPECT_EQ(dec.active_connections(), 3u);
    EXPECT_EQ(dec.counters().get(StreamEvent::ConnectionsEvicted), 2u);
    EXPECT_EQ(dec.counters().get(StreamEvent::PartialAtClose), 10u);
    dec.expire(100 * kMs, sink);
    EXPECT_EQ(dec.active_connections(), 0u);
    EXPECT_EQ(dec.counters().get(StreamEvent::ConnectionsTimedOut), 3u);
}

TEST(StreamDecoder, MemoryBudgetEvictsTheLeastRecentlyActive) {
    streams::StreamConfig config;
    config.max_total_bytes = 300u << 10;
    streams::StreamDecoder dec(config);
    Sink sink;
    for (std::uint64_t i = 0; i < 8; ++i) {
        Conn c;
        c.object = 0x2000 + i;
        const Bytes r = framed(dns_message(1, true, "big", 60000));
        dec.add(c.chunk(false, std::span(r).first(40000)), i, sink);  // an unfinished 60 KB message each
    }
    EXPECT_LE(dec.memory(), config.max_total_bytes);
    EXPECT_GT(dec.counters().get(StreamEvent::ConnectionsEvicted), 0u);
}

// ------------------------------------------------------------ pipeline

TEST(PipelineStreams, DohAndDotBecomeFramesPairedPerStream) {
    pipeline::PipelineConfig config;
    config.envelope.identity = "t";
    auto out = std::make_unique<output::MemoryOutput>(true);
    auto* mem = out.get();
    std::vector<output::OutputRoute> routes;  // outlives the pipeline
    routes.push_back({std::move(out)});
    pipeline::Pipeline p(config, routes);

    Conn doh;
    doh.local_port = 443;
    Hpack ch, sh;
    // Two streams with the same question (and DNS ID 0), asked at different
    // times and answered in reverse order: each answer pairs with its own
    // stream's query, not with the oldest one.
    p.process_stream(doh.chunk(false, cat({text(kPreface), settings(), doh_client_bytes(ch, 1, dns_message(0, false))})));
    const std::uint64_t time1 = doh.time;
    p.process_stream(doh.chunk(false, doh_client_bytes(ch, 3, dns_message(0, false))));
    const std::uint64_t time3 = doh.time;
    p.process_stream(doh.chunk(true, cat({settings(), doh_server_bytes(sh, 3, dns_message(0, true, "www", 3))})));
    p.process_stream(doh.chunk(true, doh_server_bytes(sh, 1, dns_message(0, true, "www", 1))));
    Conn dot;
    dot.object = 0x7000;
    dot.remote = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    dot.local = dot.remote;
    dot.family = 6;
    p.process_stream(dot.chunk(false, framed(dns_message(5, false))));
    p.process_stream(dot.chunk(true, framed(dns_message(5, true))));
    p.finish();

    std::vector<::dnstap::Dnstap> frames;
    for (const auto& f : mem->frames()) {
        ::dnstap::Dnstap d;
        ASSERT_TRUE(d.ParseFromArray(f.data(), static_cast<int>(f.size())));
        frames.push_back(d);
    }
    ASSERT_EQ(frames.size(), 6u);
    int doh_responses = 0;
    for (const auto& d : frames) {
        const auto& m = d.message();
        if (m.response_port() == 443) {
            EXPECT_EQ(m.socket_protocol(), ::dnstap::DOH);
            EXPECT_EQ(m.http_protocol(), ::dnstap::HTTP2);
            if (m.type() == ::dnstap::Message::CLIENT_RESPONSE) {
                ++doh_responses;
                const auto pad = m.response_message().size() - dns_message(0, true).size();
                EXPECT_EQ(m.query_time_sec() * 1'000'000'000ULL + m.query_time_nsec(), pad == 1 ? time1 : time3);
            }
        } else {
            EXPECT_EQ(m.socket_protocol(), ::dnstap::DOT);
            EXPECT_EQ(m.socket_family(), ::dnstap::INET6);
            EXPECT_FALSE(m.has_http_protocol());
            if (m.type() == ::dnstap::Message::CLIENT_RESPONSE) {
                EXPECT_TRUE(m.has_query_time_sec());
            }
        }
    }
    EXPECT_EQ(doh_responses, 2);
    std::map<std::string, std::uint64_t> counters;
    p.for_each_counter([&](std::string_view n, std::uint64_t v) { counters[std::string(n)] = v; });
    EXPECT_EQ(counters["paired"], 3u);
    EXPECT_EQ(counters["unsolicited_responses"], 0u);
    EXPECT_EQ(counters["doh_messages"], 4u);
    EXPECT_EQ(counters["dot_messages"], 2u);
}

// ------------------------------------------------------------ probes' records and /proc

TEST(TlsRecord, ParsesAValidRecordAndRejectsBadOnes) {
    sidetap_tls_record r{};
    r.ktime_ns = 42;
    r.object = 0xabc;
    r.offset = 7;
    r.generation = 9;
    r.tgid = 1234;
    r.len = 3;
    r.call_len = 3;
    r.kind = SIDETAP_TLS_DATA;
    r.direction = SIDETAP_TLS_WRITE;
    r.attribution = SIDETAP_TLS_ATTR_LAST_RECV;
    r.flags = SIDETAP_TLS_FLAG_HANDSHAKE;
    r.tuple.family = 6;
    r.tuple.local_port = 853;
    r.tuple.remote_port = 41000;
    r.tuple.local[15] = 1;
    Bytes bytes(sizeof r + 3);
    std::memcpy(bytes.data(), &r, sizeof r);
    bytes[sizeof r] = 'a';
    capture::StreamChunk c;
    ASSERT_TRUE(capture::parse_tls_record(bytes, c));
    EXPECT_EQ(c.pid, 1234u);
    EXPECT_EQ(c.object, 0xabcu);
    EXPECT_EQ(c.generation, 9u);
    EXPECT_TRUE(c.outgoing);
    EXPECT_TRUE(c.from_start);
    EXPECT_EQ(c.attribution, capture::StreamChunk::Attribution::LastRecv);
    EXPECT_EQ(c.family, 6);
    EXPECT_EQ(c.local[15], 1);
    EXPECT_EQ(c.local_port, 853);
    EXPECT_EQ(c.offset, 7u);
    EXPECT_EQ(c.data.size(), 3u);
    EXPECT_EQ(c.data[0], 'a');
    EXPECT_FALSE(capture::parse_tls_record(std::span(bytes).first(bytes.size() - 1), c));  // shorter than len
    auto bad = bytes;
    reinterpret_cast<sidetap_tls_record*>(bad.data())->kind = 7;
    EXPECT_FALSE(capture::parse_tls_record(bad, c));
    bad = bytes;
    reinterpret_cast<sidetap_tls_record*>(bad.data())->tuple.family = 5;
    EXPECT_FALSE(capture::parse_tls_record(bad, c));
    bad = bytes;
    reinterpret_cast<sidetap_tls_record*>(bad.data())->len = SIDETAP_TLS_CHUNK + 1;
    EXPECT_FALSE(capture::parse_tls_record(bad, c));
}

TEST(TlsProcesses, FindsTlsLibrariesInMaps) {
    const std::string maps =
        "7f0971604000-7f0971623000 r--p 00000000 fe:00 333427   /usr/lib/x86_64-linux-gnu/libssl.so.3\n"
        "7f0971623000-7f0971680000 r-xp 0001f000 fe:00 333427   /usr/lib/x86_64-linux-gnu/libssl.so.3\n"
        "7f0971700000-7f0971800000 r-xp 00000000 fe:00 333500   /usr/lib/x86_64-linux-gnu/libssl3.so\n"
        "7f0972000000-7f0972100000 r-xp 00000000 fe:00 333600   /opt/x/libgnutls.so.30.34.3 (deleted)\n"
        "7f0973000000-7f0973100000 rw-p 00000000 00:00 0 \n"
        "7ffd000000-7ffd001000 r-xp 00000000 00:00 0    [vdso]\n";
    const auto libs = capture::tls::tls_libraries_in_maps(maps);
    ASSERT_EQ(libs.size(), 2u);
    EXPECT_EQ(libs[0].library, capture::tls::Library::OpenSsl);
    EXPECT_EQ(libs[0].path, "/usr/lib/x86_64-linux-gnu/libssl.so.3");
    EXPECT_FALSE(libs[0].deleted);
    EXPECT_EQ(libs[1].library, capture::tls::Library::GnuTls);
    EXPECT_EQ(libs[1].path, "/opt/x/libgnutls.so.30.34.3");
    EXPECT_TRUE(libs[1].deleted);
}

TEST(TlsProcesses, ParsesStatWithAnyCommAndMatchesNames) {
    const auto p = capture::tls::parse_stat(
        77, "77 (a (b) c) S 1 77 77 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 3 0 123456 1000 10 18446744073709551615");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->comm, "a (b) c");
    EXPECT_EQ(p->start_time, 123456u);
    EXPECT_FALSE(capture::tls::parse_stat(1, "1 (x) S 1"));
    capture::tls::ProcessInfo named{1, "named", 5};
    EXPECT_TRUE(capture::tls::name_matches(named, "named"));
    EXPECT_FALSE(capture::tls::name_matches(named, "name"));
    EXPECT_FALSE(capture::tls::name_matches(named, "named2"));
}

TEST(TlsProcesses, ThisProcessIsStillRunningAndItsStartTimeIsKnown) {
    const auto me = capture::tls::read_process(static_cast<int>(::getpid()));
    ASSERT_TRUE(me);
    EXPECT_GT(me->start_time, 0u);
    EXPECT_TRUE(capture::tls::still_running(*me));
    auto other = *me;
    other.start_time += 1;  // the same PID, another process
    EXPECT_FALSE(capture::tls::still_running(other));
}

}  // namespace
}  // namespace sidetap
