// Fuzz target: the stream decoders (streams::StreamDecoder: protocol
// detection, DoT framing through reassembly::DnsStreamFramer, HTTP/2 + HPACK
// + DoH through streams::Http2Session) with small limits, so eviction, the
// memory budget, stream limits, oversized frames and header blocks, gaps and
// object reuse are all reached.
//
// Input: byte 0 = configuration (bits 0-1: max connections 1-4; bit 2:
// memory budget 64 KiB / 1 MiB; bits 3-4: HTTP/2 streams per connection
// 1/2/4/8; bit 5: max frame 1 KiB / 64 KiB; bit 6: max header block 256 B /
// 16 KiB), then records of 3 bytes plus data:
//   b0  bits 0-1 connection (of 4: two processes, IPv4 and IPv6, one of them
//       IPv4-mapped), bit 2 outgoing (written by the process), bit 3 close
//       (SSL_free: no data), bit 4 unattributed, bit 5 handshake seen, bit 6
//       gap (offset jumps by 7 first), bit 7 new generation (the object is
//       reused for a new connection)
//   b1  data length (0-255), the data follows in the input
//   b2  time step (x 10 ms; idle timeout 2 s; 255 also calls expire())
//
// Checks: every message is 1..65535 bytes and readable; DoT messages are at
// least 12 bytes (L < 12 is not framed) and have stream id 0, DoH messages an
// odd (client-initiated) stream id; client and server addresses of one
// family (4 or 6, mapped IPv4 given as IPv4), ports as the connection has
// them (client and server sides as decided); messages handed on = dot_messages + doh_messages;
// active_connections() <= max connections, memory() <=
// the budget plus what one connection may hold; finish() releases
// everything.
#include "fuzz_common.h"

#include "reassembly/dns_tcp_framing.h"
#include "streams/stream_decoder.h"

#include <array>
#include <cstring>

namespace {

using namespace sidetap;

struct Endpoints {
    std::uint32_t pid;
    std::uint64_t object;
    std::uint8_t family;
    std::array<std::uint8_t, 16> local;
    std::array<std::uint8_t, 16> remote;
    std::uint16_t local_port;
    std::uint16_t remote_port;
};

const std::array<Endpoints, 4>& endpoints() {
    static const std::array<Endpoints, 4> e{{
        {100, 0x5000, 4, {192, 0, 2, 53}, {192, 0, 2, 1}, 853, 40000},
        {100, 0x6000, 4, {192, 0, 2, 53}, {192, 0, 2, 2}, 443, 40001},
        {200, 0x5000, 6, {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53},
         {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 853, 40002},
        {200, 0x7000, 6, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 53},
         {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 3}, 443, 50000},
    }};
    return e;
}

class CheckingSink final : public streams::StreamMessageSink {
public:
    void on_stream_message(const streams::StreamMessage& m) override {
        FUZZ_CHECK(!m.wire.empty() && m.wire.size() <= 65535);
        fuzz::touch(m.wire);
        if (m.protocol == streams::Protocol::Dot) {
            FUZZ_CHECK(m.wire.size() >= 12);
            FUZZ_CHECK(m.stream_id == 0);
        } else {
            FUZZ_CHECK((m.stream_id & 1u) == 1u);
        }
        FUZZ_CHECK(m.client.family == m.server.family);
        FUZZ_CHECK(m.client.family == 4 || m.client.family == 6);
        bool known = false;
        for (const auto& e : endpoints()) {
            const std::uint16_t pc = m.process_is_client ? e.local_port : e.remote_port;
            const std::uint16_t ps = m.process_is_client ? e.remote_port : e.local_port;
            known = known || (m.client_port == pc && m.server_port == ps);
        }
        FUZZ_CHECK(known);
        ++messages;
    }
    std::uint64_t messages = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Reader in(data, size);
    const std::uint8_t cfg = in.u8();
    streams::StreamConfig config;
    config.max_connections = 1u + (cfg & 3u);
    config.max_total_bytes = (cfg & 4u) ? (1u << 20) : (64u << 10);
    config.idle_timeout_ns = 2'000'000'000ULL;
    config.http2.max_streams = std::size_t{1} << ((cfg >> 3) & 3u);
    config.http2.max_frame_bytes = (cfg & 0x20u) ? (64u << 10) : 1024u;
    config.http2.max_header_block = (cfg & 0x40u) ? (16u << 10) : 256u;
    config.http2.max_table_bytes = 8192;
    // What one connection may hold beyond the budget (the one being handled
    // is never evicted for memory): both framers, both frame and header-block
    // buffers, the streams' bodies and paths, HPACK tables, bookkeeping.
    const std::size_t one_connection =
        2 * reassembly::kMaxFramedMessage + 2 * (config.http2.max_frame_bytes + 9) +
        2 * config.http2.max_header_block + config.http2.max_streams * (2 * 65535 + 8193 + 512) +
        2 * (config.http2.max_table_bytes + 1024) + 65536 + 4096;

    streams::StreamDecoder decoder(config);
    CheckingSink sink;
    std::array<std::uint64_t, 4> generation{1, 1, 1, 1};
    std::array<std::array<std::uint64_t, 2>, 4> offset{};
    std::uint64_t now = 1'000'000'000ULL;

    while (!in.empty()) {
        const std::uint8_t b0 = in.u8();
        const std::size_t length = in.u8();
        const std::uint8_t step = in.u8();
        const auto payload = in.bytes(length);
        const std::size_t c = b0 & 3u;
        const bool outgoing = (b0 & 4u) != 0;
        if (b0 & 0x80u) {
            ++generation[c];
            offset[c] = {};
        }
        if (b0 & 0x40u) offset[c][outgoing] += 7;
        const auto& e = endpoints()[c];
        capture::StreamChunk chunk;
        chunk.kind = (b0 & 8u) ? capture::StreamChunk::Kind::Close : capture::StreamChunk::Kind::Data;
        chunk.pid = e.pid;
        chunk.object = e.object;
        chunk.generation = generation[c];
        chunk.outgoing = outgoing;
        chunk.from_start = (b0 & 0x20u) != 0;
        if (!(b0 & 0x10u)) {
            chunk.family = e.family;
            chunk.local = e.local;
            chunk.remote = e.remote;
            chunk.local_port = e.local_port;
            chunk.remote_port = e.remote_port;
            chunk.attribution = capture::StreamChunk::Attribution::Fd;
        }
        now += std::uint64_t{step} * 10'000'000ULL;
        chunk.timestamp_ns = now;
        if (chunk.kind == capture::StreamChunk::Kind::Data) {
            chunk.offset = offset[c][outgoing];
            chunk.data = payload;
            offset[c][outgoing] += payload.size();
        }
        decoder.add(chunk, now, sink);
        if (step == 255) decoder.expire(now, sink);
        FUZZ_CHECK(decoder.active_connections() <= config.max_connections);
        FUZZ_CHECK(decoder.memory() <= config.max_total_bytes + one_connection);
    }
    decoder.finish(sink);
    FUZZ_CHECK(decoder.active_connections() == 0);
    FUZZ_CHECK(decoder.memory() == 0);
    FUZZ_CHECK(decoder.counters().get(streams::StreamEvent::DotMessages) +
                   decoder.counters().get(streams::StreamEvent::DohMessages) ==
               sink.messages);
    return 0;
}
