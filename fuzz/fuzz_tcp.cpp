// Fuzz target: DNS-over-TCP stream reassembly (reassembly::TcpReassembler)
// with small limits, so eviction, buffer-full, holes, resync and idle
// timeouts are all reached.
//
// Input: byte 0 = configuration (bit 0: max_stream_bytes 512 / 2048; bit 1:
// max_total_bytes 4 KiB / 64 KiB; bits 2-3: max_streams 1/2/3/4; bit 4:
// max_pending_segments 1 / 4; bit 5: close grace 0 / 100 ms), then records
// of 5 bytes plus a payload:
//   b0  bits 0-1 connection (of 4: two client addresses, IPv4 and IPv6, two
//       client ports), bit 2 direction (1: server -> client), bit 3 SYN,
//       bit 4 FIN, bit 5 RST, bit 6 ACK, bit 7 seq delta scaled by 256
//   b1  seq delta (int8) from the next expected sequence number of the
//       direction (ISNs sit just below 2^32, so sequence numbers wrap)
//   b2  ack delta (int8) from the next expected number of the other direction
//   b3  payload length (0-255), the payload bytes follow in the input
//   b4  time step (x 50 ms; idle timeout 5 s; 255 also calls expire())
//
// Checks: every message handed to the sink is 12..65535 bytes and fits
// max_stream_bytes, is readable, belongs to one of the known tuples, and
// carries a timestamp no later than the current packet time;
// active_streams() <= max_streams and buffered_bytes() <= max_total_bytes
// after every call; finish() releases everything.
#include "fuzz_common.h"

#include "reassembly/tcp_reassembler.h"

#include <array>

namespace {

using namespace sidetap;

struct Endpoint {
    decode::IpAddress addr;
    std::uint16_t port = 0;
};

decode::IpAddress v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
    decode::IpAddress x;
    x.family = 4;
    x.bytes[0] = a;
    x.bytes[1] = b;
    x.bytes[2] = c;
    x.bytes[3] = d;
    return x;
}

decode::IpAddress v6(std::uint8_t last) {
    decode::IpAddress x;
    x.family = 6;
    x.bytes[0] = 0x20;
    x.bytes[1] = 0x01;
    x.bytes[2] = 0x0d;
    x.bytes[3] = 0xb8;
    x.bytes[15] = last;
    return x;
}

struct Conn {
    Endpoint client;
    Endpoint server;
};

const std::array<Conn, 4>& connections() {
    static const std::array<Conn, 4> c{{
        {{v4(10, 0, 0, 1), 40000}, {v4(10, 0, 0, 53), 53}},
        {{v4(10, 0, 0, 1), 40001}, {v4(10, 0, 0, 53), 53}},
        {{v4(10, 0, 0, 2), 40000}, {v4(10, 0, 0, 53), 53}},
        {{v6(1), 40000}, {v6(0x53), 53}},
    }};
    return c;
}

class CheckingSink final : public reassembly::TcpMessageSink {
public:
    explicit CheckingSink(std::size_t max_message) : max_message_(max_message) {}

    void on_message(const decode::Segment& segment, std::span<const std::uint8_t> wire,
                    std::uint64_t timestamp_ns) override {
        FUZZ_CHECK(wire.size() >= 12);
        FUZZ_CHECK(wire.size() <= 65535);
        FUZZ_CHECK(wire.size() <= max_message_);
        fuzz::touch(wire);
        FUZZ_CHECK(segment.transport == decode::Transport::Tcp);
        bool known = false;
        for (const auto& c : connections()) {
            const bool fwd = segment.src == c.client.addr && segment.src_port == c.client.port &&
                             segment.dst == c.server.addr && segment.dst_port == c.server.port;
            const bool rev = segment.src == c.server.addr && segment.src_port == c.server.port &&
                             segment.dst == c.client.addr && segment.dst_port == c.client.port;
            known = known || fwd || rev;
        }
        FUZZ_CHECK(known);
        FUZZ_CHECK(timestamp_ns <= now);
        FUZZ_CHECK(timestamp_ns >= first_time);
        ++messages;
    }

    std::uint64_t now = 0;
    std::uint64_t first_time = 0;
    std::uint64_t messages = 0;

private:
    std::size_t max_message_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Reader in(data, size);
    const std::uint8_t cfg_byte = in.u8();
    reassembly::TcpConfig config;
    config.max_stream_bytes = (cfg_byte & 1) ? 2048 : 512;
    config.max_total_bytes = (cfg_byte & 2) ? (64u << 10) : (4u << 10);
    config.max_streams = 1 + ((cfg_byte >> 2) & 3);
    config.max_pending_segments = (cfg_byte & 0x10) ? 4 : 1;
    config.idle_timeout_ns = 5'000'000'000ULL;
    config.close_grace_ns = (cfg_byte & 0x20) ? 100'000'000ULL : 0;

    reassembly::TcpReassembler tcp(config);
    CheckingSink sink(config.max_stream_bytes);
    std::uint64_t now = 1'000'000'000'000ULL;
    sink.now = now;
    sink.first_time = now;

    // Next expected sequence number per connection and direction.
    std::array<std::array<std::uint32_t, 2>, 4> next{};
    for (std::size_t c = 0; c < next.size(); ++c) {
        next[c][0] = 0xFFFFFF00u + static_cast<std::uint32_t>(c) * 16u;  // client ISN + 1 wraps soon
        next[c][1] = 0x7FFFFFF0u + static_cast<std::uint32_t>(c) * 16u;
    }

    auto check_bounds = [&] {
        FUZZ_CHECK(tcp.active_streams() <= config.max_streams);
        FUZZ_CHECK(tcp.buffered_bytes() <= config.max_total_bytes);
    };

    while (in.remaining() >= 5) {
        const std::uint8_t b0 = in.u8();
        const auto seq_delta = static_cast<std::int8_t>(in.u8());
        const auto ack_delta = static_cast<std::int8_t>(in.u8());
        const std::uint8_t length = in.u8();
        const std::uint8_t step = in.u8();
        const auto payload = in.bytes(length);

        const std::size_t c = b0 & 3;
        const std::size_t dir = (b0 >> 2) & 1;
        const Conn& conn = connections()[c];
        decode::Segment seg;
        seg.transport = decode::Transport::Tcp;
        const Endpoint& from = dir == 0 ? conn.client : conn.server;
        const Endpoint& to = dir == 0 ? conn.server : conn.client;
        seg.src = from.addr;
        seg.dst = to.addr;
        seg.src_port = from.port;
        seg.dst_port = to.port;
        seg.tcp_flags = static_cast<std::uint8_t>(((b0 & 0x08) ? decode::tcpflag::kSyn : 0) |
                                                  ((b0 & 0x10) ? decode::tcpflag::kFin : 0) |
                                                  ((b0 & 0x20) ? decode::tcpflag::kRst : 0) |
                                                  ((b0 & 0x40) ? decode::tcpflag::kAck : 0));
        const std::int32_t delta = (b0 & 0x80) ? seq_delta * 256 : seq_delta;
        // A SYN carries the ISN: one before the first data byte.
        const std::uint32_t base = (b0 & 0x08) ? next[c][dir] - 1u : next[c][dir];
        seg.seq = base + static_cast<std::uint32_t>(delta);
        seg.ack = next[c][1 - dir] + static_cast<std::uint32_t>(static_cast<std::int32_t>(ack_delta));
        seg.payload = payload;

        now += std::uint64_t{step} * 50'000'000ULL;
        seg.timestamp_ns = now;
        sink.now = now;
        if (step == 255) {
            tcp.expire(now, sink);
            check_bounds();
        }
        tcp.add(seg, sink);
        check_bounds();

        const std::uint32_t end = seg.seq + ((b0 & 0x08) ? 1u : 0u) + static_cast<std::uint32_t>(payload.size()) +
                                  ((b0 & 0x10) ? 1u : 0u);
        if (static_cast<std::int32_t>(end - next[c][dir]) > 0) next[c][dir] = end;
    }
    tcp.finish(sink);
    FUZZ_CHECK(tcp.active_streams() == 0);
    FUZZ_CHECK(tcp.buffered_bytes() == 0);
    return 0;
}
