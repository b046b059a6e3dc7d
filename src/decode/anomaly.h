// Named anomalies of the decode stage, and what was decapsulated.
//
// Contract: every packet the decoder cannot take further is counted under
// exactly one Anomaly (the first problem found, at the outermost layer that
// has it). Decapsulated tunnel layers are counted per kind (DecapKind),
// whether or not what they carry turns out to be DNS.
#pragma once

#include "util/counters.h"

#include <array>
#include <cstddef>
#include <string_view>

namespace sidetap::decode {

enum class Anomaly : std::size_t {
    UnknownLinkType,      // link type we do not decode
    LinkTruncated,        // packet shorter than its link header (also an inner Ethernet header)
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
    // Tunnels (decode/tunnel.h). "Unsupported" = a well-formed header of a
    // variant sidetap does not decapsulate; the packet is dropped.
    GreTruncated,         // shorter than the GRE header its flags announce
    GreUnsupported,       // version != 0 (PPTP), routing / strict source route bits, or a
                          // protocol type other than IPv4, IPv6, 0x6558 and ERSPAN
    ErspanTruncated,      // shorter than the ERSPAN header (+ optional subheader)
    ErspanUnsupported,    // version other than 1 (type II) or 2 (type III); type III frame type
                          // other than Ethernet (0) or IP (2)
    VxlanTruncated,       // shorter than the 8-byte VXLAN header
    VxlanBadFlags,        // I flag (valid VNI) clear
    GeneveTruncated,      // shorter than the Geneve header + its options
    GeneveUnsupported,    // version != 0, or protocol type not Ethernet / IPv4 / IPv6
    GeneveBadOptions,     // option lengths do not add up to the header's option length
    GtpuTruncated,        // shorter than the GTP header, or than its length field
    GtpuUnsupported,      // not GTPv1 (version != 1 or GTP' protocol type)
    GtpuNotGpdu,          // echo, error indication, end marker ...: no user packet (counted, not an error)
    GtpuBadExtension,     // extension header of length 0, beyond the message, or more than 16
    TunnelTooDeep,        // more nested tunnels than DecapConfig::max_depth
    NflogBadTlv,          // NFLOG TLV shorter than 4 bytes or beyond the packet; byte order not found
    NflogNoPayload,       // NFLOG record without an NFULA_PAYLOAD TLV
    Count_
};

inline constexpr std::array<std::string_view, static_cast<std::size_t>(Anomaly::Count_)> kAnomalyNames{
    "unknown_link_type",  "link_truncated",     "not_ip",           "ip_truncated",
    "ip_bad_version",     "ip_bad_header_length", "ip_bad_total_length", "ip_snapped",
    "ipv6_bad_extension", "not_udp_tcp",        "udp_truncated",    "udp_bad_length",
    "tcp_truncated",      "tcp_bad_offset",     "gre_truncated",    "gre_unsupported",
    "erspan_truncated",   "erspan_unsupported", "vxlan_truncated",  "vxlan_bad_flags",
    "geneve_truncated",   "geneve_unsupported", "geneve_bad_options", "gtpu_truncated",
    "gtpu_unsupported",   "gtpu_not_gpdu",      "gtpu_bad_extension", "tunnel_too_deep",
    "nflog_bad_tlv",      "nflog_no_payload",
};

using AnomalyCounters = util::CounterSet<Anomaly, static_cast<std::size_t>(Anomaly::Count_)>;

}  // namespace sidetap::decode
