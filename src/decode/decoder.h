// Packet decoding: link layer -> IP -> UDP/TCP, without copying.
//
// Contract:
//  - decode_link() walks the link header (Ethernet with any number of
//    802.1Q/802.1ad/0x9100 tags and PPPoE session framing, Linux SLL/SLL2,
//    NULL/LOOP, RAW/IPv4/IPv6, NFLOG) and the IP header (IPv4 options, IPv6
//    extension headers skipped, IPv6 Fragment header read) and fills an
//    IpPacket whose payload is cut to the IP length (link padding removed).
//    It returns true for every readable IP packet whatever its protocol
//    (ICMP, ESP ... are left to decode_transport, which counts them), so
//    fragments of any protocol can be handed to the reassembler. The first
//    VLAN tag it passes is kept in `encap` (see packet.h Encapsulation).
//  - A packet whose captured bytes end before its IP length (snaplen, or an
//    IP length larger than what was on the wire) gets `truncated = true`,
//    counts IpSnapped and returns false: the datagram cannot be rebuilt.
//    Addresses/protocol are filled as far as they were read.
//  - decode_transport() parses UDP or TCP from a whole datagram (first
//    fragment reassembled or not fragmented) into a Segment. IPv6 extension
//    headers still at the front of the payload (a reassembled datagram whose
//    Fragment header preceded them) are skipped.
//  - decapsulate() removes one tunnel layer from a whole datagram (see
//    decode/tunnel.h for the formats): GRE (IP protocol 47, incl. ERSPAN
//    I/II/III), IP-in-IP (4), IPv6-in-IP (41), and UDP to the VXLAN, Geneve
//    and GTP-U ports — unless either UDP port is a DNS port (a resolver's
//    upstream query may well leave from port 4789). The inner Ethernet
//    frame or IP packet is decoded like a captured one into `inner`, which
//    inherits `outer.encap` (VLAN, outermost tunnel) with depth + 1. The
//    caller loops: an inner fragment goes to the reassembler, an inner
//    tunnel to decapsulate() again; beyond max_depth tunnels the packet is
//    dropped (TunnelTooDeep), so the loop is bounded.
//  - Neither throws nor allocates. Whatever cannot be parsed is counted as a
//    named anomaly (see Anomaly) and the function returns false.
//  - Every length is checked against the bytes present before it is used;
//    fields are read byte by byte (big-endian), never through struct casts.
#pragma once

#include "capture/packet_source.h"
#include "decode/anomaly.h"
#include "decode/packet.h"
#include "util/counters.h"

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace sidetap::decode {

inline constexpr std::array<std::string_view, static_cast<std::size_t>(TunnelKind::Count_)> kDecapCounterNames{
    "decap_gre", "decap_erspan", "decap_vxlan", "decap_geneve", "decap_gtpu", "decap_ipip", "decap_ipv6_in_ip"};
using DecapCounters = util::CounterSet<TunnelKind, static_cast<std::size_t>(TunnelKind::Count_)>;

struct DecapConfig {
    unsigned max_depth = 4;                        // tunnels removed from one packet at most
    std::uint16_t vxlan_port = 4789;               // UDP destination ports (0 = off)
    std::uint16_t geneve_port = 6081;
    std::uint16_t gtpu_port = 2152;
    std::vector<std::uint16_t> dns_ports{53};      // a datagram from or to one of these is DNS, never a tunnel
};

// What decapsulate() did.
enum class Decap : std::uint8_t {
    None,     // not a tunnel: decode the transport layer of `outer`
    Inner,    // `inner` holds the packet the tunnel carried (maybe a fragment)
    Dropped,  // a tunnel, but malformed / unsupported / too deep (counted)
};

class Decoder {
public:
    explicit Decoder(DecapConfig config = {})
        : anomalies_(kAnomalyNames), decapsulated_(kDecapCounterNames), config_(std::move(config)) {}

    // Link + network layers. Returns false (and counts) when the packet is
    // not an IP packet we can read.
    bool decode_link(const capture::Packet& packet, IpPacket& out);

    // Transport layer of a whole (non-fragmented or reassembled) datagram.
    // `ip.is_fragment` must be false. Returns false (and counts) for
    // protocols other than UDP/TCP and malformed headers.
    // Returns false without counting when called on a fragment or a
    // truncated packet (a caller error, not a property of the traffic).
    bool decode_transport(const IpPacket& ip, std::uint64_t timestamp_ns, Segment& out);

    // One tunnel layer of a whole datagram (`outer.is_fragment` false).
    Decap decapsulate(const IpPacket& outer, IpPacket& inner);

    [[nodiscard]] const AnomalyCounters& anomalies() const { return anomalies_; }
    [[nodiscard]] const DecapCounters& decapsulated() const { return decapsulated_; }
    // Calls fn(name, value) for every anomaly and decap_* counter.
    template <typename Fn>
    void for_each_counter(Fn&& fn) const {
        anomalies_.for_each(fn);
        decapsulated_.for_each(fn);
    }

    // Packets seen per link type, for the stats summary.
    template <typename Fn>
    void for_each_link_type(Fn&& fn) const {
        for (std::size_t i = 0; i < kLinkSlots; ++i)
            if (link_counts_[i] != 0) fn(link_type_name(kLinkValues[i]), link_counts_[i]);
        if (other_link_count_ != 0) fn(std::string_view("other"), other_link_count_);
    }
    // "null", "ethernet", "raw", "loop", "linux_sll", "ipv4", "ipv6",
    // "linux_sll2", "raw_dlt14", "raw_dlt12", "nflog"; "other" for anything else.
    static std::string_view link_type_name(std::uint32_t link_type);
    // Packets seen with this link type (0 for unknown ones, see "other").
    [[nodiscard]] std::uint64_t link_type_count(std::uint32_t link_type) const;

private:
    static constexpr std::size_t kLinkSlots = 11;
    static constexpr std::array<std::uint32_t, kLinkSlots> kLinkValues{
        capture::linktype::kNull,  capture::linktype::kEthernet, capture::linktype::kRaw,
        capture::linktype::kLoop,  capture::linktype::kLinuxSll, capture::linktype::kIpv4,
        capture::linktype::kIpv6,  capture::linktype::kLinuxSll2, capture::linktype::kRawOpenBsd,
        capture::linktype::kRawDlt12, capture::linktype::kNflog,
    };
    void count_link(std::uint32_t link_type);
    // Ethertype-style dispatch after a link header: VLAN tags, PPPoE, IP.
    bool decode_ethertype(std::uint16_t ethertype, std::span<const std::uint8_t> rest, IpPacket& out);
    // `expect_version` 4 or 6 (from the link layer) or 0 (the version nibble decides).
    bool decode_ip(std::span<const std::uint8_t> bytes, int expect_version, IpPacket& out);
    bool decode_ipv4(std::span<const std::uint8_t> bytes, IpPacket& out);
    bool decode_ipv6(std::span<const std::uint8_t> bytes, IpPacket& out);
    bool is_dns_port(std::uint16_t port) const;

    AnomalyCounters anomalies_;
    DecapCounters decapsulated_;
    DecapConfig config_;
    std::array<std::uint64_t, kLinkSlots> link_counts_{};
    std::uint64_t other_link_count_ = 0;
};

}  // namespace sidetap::decode
