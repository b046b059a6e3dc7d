// Decoded views of a captured packet: network and transport layers.
//
// Everything here is a view into the captured bytes (no copies); a view is
// valid as long as the bytes it was decoded from.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

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

// Tunnels the decoder removes (decode/tunnel.h). Also the index of the
// decap_<name> counters.
enum class TunnelKind : std::uint8_t {
    Gre,       // GRE carrying IPv4, IPv6 or Ethernet (0x6558, incl. NVGRE)
    Erspan,    // GRE carrying ERSPAN type I, II or III
    Vxlan,     // UDP 4789
    Geneve,    // UDP 6081
    Gtpu,      // GTPv1-U G-PDU, UDP 2152
    IpIp,      // IP protocol 4: IPv4 in IPv4 or IPv6
    Ipv6InIp,  // IP protocol 41: IPv6 in IPv4 (6in4) or IPv6
    Count_
};
inline constexpr std::array<std::string_view, static_cast<std::size_t>(TunnelKind::Count_)> kTunnelKindNames{
    "gre", "erspan", "vxlan", "geneve", "gtpu", "ipip", "ipv6_in_ip"};

// Where a packet came from, kept for per-message annotations (the {vlan} and
// {tunnel} placeholders of a later issue). Fixed size, no allocation.
//  - vlan: the outermost 802.1Q/802.1ad VLAN id of the packet as captured,
//    or, when the captured frame has no tag, the first tag found in a frame
//    carried by a tunnel (outer frames are looked at first).
//  - tunnel, tunnel_id, outer_src/outer_dst: the OUTERMOST tunnel, i.e. the
//    one the capture point received (a mirror session, a VTEP); tunnels
//    nested inside it belong to the observed traffic. Valid when depth > 0.
//  - depth: how many tunnels were removed to reach this packet.
struct Encapsulation {
    IpAddress outer_src;               // IP header that carried the outermost tunnel
    IpAddress outer_dst;
    std::uint32_t tunnel_id = 0;       // VXLAN/Geneve VNI, GRE key, ERSPAN session id, GTP-U TEID
    std::uint16_t vlan = 0;            // 12-bit VLAN id, valid when has_vlan
    bool has_vlan = false;
    bool has_tunnel_id = false;
    TunnelKind tunnel = TunnelKind::Gre;
    std::uint8_t depth = 0;
};

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
    // VLAN and tunnel the packet came through (kept across reassembly: a
    // reassembled datagram has the completing fragment's).
    Encapsulation encap;
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
    // The IP packet's encapsulation (see IpPacket::encap).
    Encapsulation encap;
};

// Member by member, what `= IpPacket{}` / `= Segment{}` would do: GCC
// clears structs of this size with `rep stosq`, whose start-up alone costs
// tens of cycles — with two such clears per packet, several percent of the
// live capture's time per message (measured); these are a few vector stores.
inline void reset(Encapsulation& e) { e = Encapsulation{}; }
inline void reset(IpAddress& a) { a = IpAddress{}; }
inline void reset(IpPacket& p) {
    reset(p.src);
    reset(p.dst);
    p.protocol = 0;
    p.is_fragment = false;
    p.more_fragments = false;
    p.fragment_id = 0;
    p.fragment_offset = 0;
    p.payload = {};
    p.truncated = false;
    reset(p.encap);
}
inline void reset(Segment& s) {
    s.timestamp_ns = 0;
    reset(s.src);
    reset(s.dst);
    s.src_port = 0;
    s.dst_port = 0;
    s.transport = Transport::Udp;
    s.seq = 0;
    s.ack = 0;
    s.tcp_flags = 0;
    s.payload = {};
    reset(s.encap);
}

}  // namespace sidetap::decode
