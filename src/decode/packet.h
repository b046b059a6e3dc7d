// Decoded views of a captured packet: network and transport layers.
//
// Everything here is a view into the captured bytes (no copies); a view is
// valid as long as the bytes it was decoded from.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <span>

namespace sidetap::decode {

// An IPv4 or IPv6 address, compared by value. IPv4 uses bytes[0..3].
struct IpAddress {
    std::uint8_t family = 0;  // 4 or 6; 0 = unset
    std::array<std::uint8_t, 16> bytes{};

    [[nodiscard]] std::size_t size() const { return family == 6 ? 16 : 4; }
    [[nodiscard]] std::span<const std::uint8_t> view() const { return {bytes.data(), size()}; }
    friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

enum class Transport : std::uint8_t { Udp = 17, Tcp = 6 };

// The network layer: an IP datagram, or one fragment of it.
struct IpPacket {
    IpAddress src;
    IpAddress dst;
    std::uint8_t protocol = 0;  // next header after all skipped extension headers
    // Fragment information; `is_fragment` is false for whole datagrams.
    bool is_fragment = false;
    bool more_fragments = false;
    std::uint32_t fragment_id = 0;      // IPv4: 16-bit id, IPv6: 32-bit id
    std::uint32_t fragment_offset = 0;  // in bytes
    // Transport bytes (whole datagram), or the fragment's data. Cut to the IP
    // length (link padding removed) and to what was captured.
    std::span<const std::uint8_t> payload;
    // True when the capture cut this packet short of its IP length.
    bool truncated = false;
};

namespace tcpflag {
inline constexpr std::uint8_t kFin = 0x01;
inline constexpr std::uint8_t kSyn = 0x02;
inline constexpr std::uint8_t kRst = 0x04;
inline constexpr std::uint8_t kPsh = 0x08;
inline constexpr std::uint8_t kAck = 0x10;
}  // namespace tcpflag

// The transport layer: a UDP datagram or a TCP segment.
struct Segment {
    std::uint64_t timestamp_ns = 0;
    IpAddress src;
    IpAddress dst;
    std::uint16_t src_port = 0;
    std::uint16_t dst_port = 0;
    Transport transport = Transport::Udp;
    // TCP only.
    std::uint32_t seq = 0;
    std::uint32_t ack = 0;
    std::uint8_t tcp_flags = 0;
    // UDP payload (cut to the UDP length) or TCP payload.
    std::span<const std::uint8_t> payload;
};

}  // namespace sidetap::decode
