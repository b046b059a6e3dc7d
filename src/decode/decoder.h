// Packet decoding: link layer -> IP -> UDP/TCP, without copying.
//
// Contract:
//  - decode_link() walks the link header (Ethernet with any number of
//    802.1Q/802.1ad/0x9100 tags and PPPoE session framing, Linux SLL/SLL2,
//    NULL/LOOP, RAW/IPv4/IPv6) and the IP header (IPv4 options, IPv6
//    extension headers skipped, IPv6 Fragment header read) and fills an
//    IpPacket whose payload is cut to the IP length (link padding removed).
//    It returns true for every readable IP packet whatever its protocol
//    (ICMP, ESP ... are left to decode_transport, which counts them), so
//    fragments of any protocol can be handed to the reassembler.
//  - A packet whose captured bytes end before its IP length (snaplen, or an
//    IP length larger than what was on the wire) gets `truncated = true`,
//    counts IpSnapped and returns false: the datagram cannot be rebuilt.
//    Addresses/protocol are filled as far as they were read.
//  - decode_transport() parses UDP or TCP from a whole datagram (first
//    fragment reassembled or not fragmented) into a Segment. IPv6 extension
//    headers still at the front of the payload (a reassembled datagram whose
//    Fragment header preceded them) are skipped.
//  - Neither throws nor allocates. Whatever cannot be parsed is counted as a
//    named anomaly (see Anomaly) and the function returns false.
//  - Every length is checked against the bytes present before it is used;
//    fields are read byte by byte (big-endian), never through struct casts.
#pragma once

#include "capture/packet_source.h"
#include "decode/packet.h"
#include "util/counters.h"

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

namespace sidetap::decode {

enum class Anomaly : std::size_t {
    UnknownLinkType,      // link type we do not decode
    LinkTruncated,        // packet shorter than its link header
    NotIp,                // ethertype / AF / PPP protocol is not IPv4 or IPv6; > 8 VLAN tags
    IpTruncated,          // shorter than the IP header
    IpBadVersion,         // version nibble not the link's claim (or neither 4 nor 6 on RAW)
    IpBadHeaderLength,    // IPv4 IHL < 5 (an IHL beyond the bytes is IpSnapped/IpBadTotalLength)
    IpBadTotalLength,     // IP length field smaller than the header
    IpSnapped,            // captured bytes end before the IP length (snaplen, or a length
                          // larger than the wire had); IpPacket.truncated is set
    Ipv6BadExtension,     // extension header runs past the payload, or more than 16 of them
    NotUdpTcp,            // ICMP, ESP, No Next Header ... (counted, not an error)
    UdpTruncated,         // shorter than the UDP header
    UdpBadLength,         // UDP length < 8 or beyond the IP payload
    TcpTruncated,         // shorter than the TCP header
    TcpBadOffset,         // data offset < 5 or beyond the payload
    Count_
};

inline constexpr std::array<std::string_view, static_cast<std::size_t>(Anomaly::Count_)> kAnomalyNames{
    "unknown_link_type", "link_truncated",     "not_ip",         "ip_truncated",
    "ip_bad_version",    "ip_bad_header_length", "ip_bad_total_length", "ip_snapped",
    "ipv6_bad_extension", "not_udp_tcp",       "udp_truncated",  "udp_bad_length",
    "tcp_truncated",     "tcp_bad_offset",
};

using AnomalyCounters = util::CounterSet<Anomaly, static_cast<std::size_t>(Anomaly::Count_)>;

class Decoder {
public:
    Decoder() : anomalies_(kAnomalyNames) {}

    // Link + network layers. Returns false (and counts) when the packet is
    // not an IP packet we can read.
    bool decode_link(const capture::Packet& packet, IpPacket& out);

    // Transport layer of a whole (non-fragmented or reassembled) datagram.
    // `ip.is_fragment` must be false. Returns false (and counts) for
    // protocols other than UDP/TCP and malformed headers.
    // Returns false without counting when called on a fragment or a
    // truncated packet (a caller error, not a property of the traffic).
    bool decode_transport(const IpPacket& ip, std::uint64_t timestamp_ns, Segment& out);

    [[nodiscard]] const AnomalyCounters& anomalies() const { return anomalies_; }

    // Packets seen per link type, for the stats summary.
    template <typename Fn>
    void for_each_link_type(Fn&& fn) const {
        for (std::size_t i = 0; i < kLinkSlots; ++i)
            if (link_counts_[i] != 0) fn(link_type_name(kLinkValues[i]), link_counts_[i]);
        if (other_link_count_ != 0) fn(std::string_view("other"), other_link_count_);
    }
    // "null", "ethernet", "raw", "loop", "linux_sll", "ipv4", "ipv6",
    // "linux_sll2", "raw_dlt14", "raw_dlt12"; "other" for anything else.
    static std::string_view link_type_name(std::uint32_t link_type);
    // Packets seen with this link type (0 for unknown ones, see "other").
    [[nodiscard]] std::uint64_t link_type_count(std::uint32_t link_type) const;

private:
    static constexpr std::size_t kLinkSlots = 10;
    static constexpr std::array<std::uint32_t, kLinkSlots> kLinkValues{
        capture::linktype::kNull,  capture::linktype::kEthernet, capture::linktype::kRaw,
        capture::linktype::kLoop,  capture::linktype::kLinuxSll, capture::linktype::kIpv4,
        capture::linktype::kIpv6,  capture::linktype::kLinuxSll2, capture::linktype::kRawOpenBsd,
        capture::linktype::kRawDlt12,
    };
    void count_link(std::uint32_t link_type);
    // Ethertype-style dispatch after a link header: VLAN tags, PPPoE, IP.
    bool decode_ethertype(std::uint16_t ethertype, std::span<const std::uint8_t> rest, IpPacket& out);
    // `expect_version` 4 or 6 (from the link layer) or 0 (the version nibble decides).
    bool decode_ip(std::span<const std::uint8_t> bytes, int expect_version, IpPacket& out);
    bool decode_ipv4(std::span<const std::uint8_t> bytes, IpPacket& out);
    bool decode_ipv6(std::span<const std::uint8_t> bytes, IpPacket& out);

    AnomalyCounters anomalies_;
    std::array<std::uint64_t, kLinkSlots> link_counts_{};
    std::uint64_t other_link_count_ = 0;
};

}  // namespace sidetap::decode
