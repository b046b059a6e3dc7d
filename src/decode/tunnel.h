// Tunnel and capture-header analyzers: one function per layer, in the manner
// of Zeek's packet analysis — bounds-check the header, annotate (kind, id),
// and forward the bytes it carries with what they are (Ethernet or IP).
//
// Contract (every parse_* function):
//  - Pure: reads only `in`, writes only `out` / `why`; no allocation, no
//    exception. Fields are read byte by byte (big-endian unless said).
//  - Returns true and fills `out` (a view into `in`) when the header is
//    well-formed and carries something sidetap can decode further.
//  - Returns false and sets `why` to the one anomaly that describes the
//    first problem; `out` is then unspecified.
//  - Checksums (GRE C bit, UDP) are not verified: a mirror copies what it
//    saw, and tshark does not verify them either by default.
//
// Wire formats (offsets from the start of `in`):
//  GRE (RFC 2784, RFC 2890): flags+version (C 0x8000, R 0x4000, K 0x2000,
//    S 0x1000, s 0x0800, version 0x0007), protocol type; then checksum +
//    reserved (C), key (K), sequence number (S), 4 bytes each, in that order.
//    Protocol 0x0800 IPv4, 0x86DD IPv6, 0x6558 Ethernet (transparent
//    bridging, NVGRE), 0x88BE ERSPAN type I (no S bit: Ethernet directly) or
//    type II (S bit: an ERSPAN header), 0x22EB ERSPAN type III.
//  ERSPAN (draft-foschiano-erspan): the version nibble decides, as in
//    Wireshark. Version 1 (type II): 8 bytes (VLAN, session id in the low 10
//    bits of bytes 2-3, index), then Ethernet. Version 2 (type III): 12
//    bytes (VLAN, session id, timestamp, SGT, P/FT/HW/D/Gra/O in bytes
//    10-11), + 8 bytes of platform-specific subheader when O (bit 0 of byte
//    11) is set; frame type FT (bits 14..10 of bytes 10-11) 0 = Ethernet,
//    2 = IP.
//  VXLAN (RFC 7348): flags (I = 0x08 must be set), 3 reserved, VNI (24
//    bits), 1 reserved; then Ethernet.
//  Geneve (RFC 8926): version (2 bits, 0) + option length (6 bits, 4-byte
//    units), O/C flags, protocol type, VNI (24 bits), reserved; options
//    (class 16, type 8, 3 reserved bits + length 5 bits in 4-byte units,
//    data) filling exactly the option length. Protocol 0x6558 Ethernet,
//    0x0800 IPv4, 0x86DD IPv6.
//  GTP-U (3GPP TS 29.281): flags (version 3 bits = 1, PT = 1, E, S, PN),
//    message type (0xFF = G-PDU), length (bytes after the first 8), TEID;
//    when any of E/S/PN: sequence number (2), N-PDU number (1), next
//    extension header type (1); with E, extension headers (length byte in
//    4-byte units including itself, content, next type) until type 0. The
//    user packet is IPv4 or IPv6 (version nibble). Bytes after `length` are
//    ignored.
//  NFLOG (LINKTYPE_NFLOG 239): family (u8; AF_INET 2, AF_INET6 10), version
//    (u8), resource id (u16 BE), then TLVs: length (u16, includes the 4-byte
//    TLV header), type (u16, low 15 bits), value; each TLV starts on a 4-byte
//    boundary. Length and type are in the capturing host's byte order, which
//    the record does not state: the first TLV whose type is small (1..255)
//    when read one way decides, big-endian tried first (Wireshark's rule).
//    NFULA_PAYLOAD (9) carries the IP packet. A payload TLV longer than the
//    captured bytes (snaplen) is passed on as far as it was captured.
#pragma once

#include "decode/anomaly.h"
#include "decode/packet.h"

#include <cstdint>
#include <span>

namespace sidetap::decode::tunnel {

using Bytes = std::span<const std::uint8_t>;

// What the bytes after a header are.
enum class Next : std::uint8_t {
    Ethernet,  // an Ethernet II frame (may carry VLAN tags)
    Ipv4,
    Ipv6,
    Ip,        // IPv4 or IPv6: the version nibble decides
};

struct Layer {
    TunnelKind kind = TunnelKind::Gre;
    Next next = Next::Ip;
    Bytes payload;
    std::uint32_t id = 0;  // VNI, GRE key, ERSPAN session id, TEID
    bool has_id = false;
};

// Well-known UDP destination ports.
inline constexpr std::uint16_t kVxlanPort = 4789;
inline constexpr std::uint16_t kGenevePort = 6081;
inline constexpr std::uint16_t kGtpuPort = 2152;

// GRE, and ERSPAN behind it (kind Erspan).
bool parse_gre(Bytes in, Layer& out, Anomaly& why);
// The ERSPAN header after GRE (types II and III).
bool parse_erspan(Bytes in, Layer& out, Anomaly& why);
// UDP payloads.
bool parse_vxlan(Bytes in, Layer& out, Anomaly& why);
bool parse_geneve(Bytes in, Layer& out, Anomaly& why);
bool parse_gtpu(Bytes in, Layer& out, Anomaly& why);

// A LINKTYPE_NFLOG record. On success `payload` is the NFULA_PAYLOAD value
// and `ip_version` 4 or 6 from the family (0 for another family: the caller
// counts NotIp).
bool parse_nflog(Bytes in, Bytes& payload, int& ip_version, Anomaly& why);

}  // namespace sidetap::decode::tunnel
