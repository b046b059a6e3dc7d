// The libpcap filter for live capture, built from the server ports and
// addresses.
//
// Traps it avoids (see DESIGN.md):
//  - `udp port 53` drops non-first IP fragments (they carry no UDP header):
//    the filter also admits every non-first IPv4 fragment
//    (`ip[6:2] & 0x1fff != 0`) and every IPv6 packet whose first extension
//    header is a Fragment header (`ip6[6] == 44`, first and later fragments);
//    the reassembler drops what is not DNS.
//  - a fixed ethertype offset misses VLAN-tagged frames: for Ethernet the
//    expression is repeated behind one and two tags. libpcap's `vlan` keyword
//    shifts every later offset by 4 bytes for the rest of the expression
//    text (even across `or` and parentheses), so the alternatives nest:
//        (F) or (vlan and ((F) or (vlan and (F))))
//    untagged, one tag (802.1Q), two tags (QinQ, outer 0x88a8/0x8100/0x9100).
//    The flat `(F) or (vlan and (F)) or (vlan and vlan and (F))` would look
//    for a third tag in its last alternative (unit-tested against crafted
//    frames).
//
//  - tunnelled DNS (a traffic mirror, an overlay network) arrives inside
//    GRE/ERSPAN, IP-in-IP, IPv6-in-IP or UDP tunnels whose outer headers
//    carry neither the DNS port nor the server's address: with `tunnels`
//    (the default) the filter admits those whole (T below) and the decoder
//    drops what is not DNS inside (counted as not_dns_port). libpcap cannot
//    look behind a GRE or VXLAN header portably (its `vxlan` keyword needs
//    libpcap 1.11; Debian 12 has 1.10), so the choice is all or nothing.
//
// The core F is
//     (port P1 or port P2 ... or (ip[6:2] & 0x1fff != 0) or (ip6[6] == 44))
//     [and (host A1 or host A2 ...)]        when server addresses are given
//     [or T or (fragments)]                 when tunnels is set (fragments of
//                                           tunnel packets are between other hosts)
//     [and (USER)]                          when --filter is given
// with T = ip proto 47 / 4 / 41, ip6 proto 47 / 4 / 41, and UDP to the
// VXLAN (4789), Geneve (6081) and GTP-U (2152) ports.
// `port` covers TCP and UDP, both directions. For role resolver the upstream
// ports are added to the server ports.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sidetap::capture {

struct CaptureFilterSpec {
    std::vector<std::uint16_t> ports{53};            // server ports (+ upstream ports for role resolver)
    std::vector<std::string> server_addresses;       // empty: any host
    std::string user_filter;                         // --filter EXPR, ANDed; empty: none
    bool vlan = true;                                // add the VLAN / QinQ alternatives (Ethernet only)
    bool tunnels = true;                             // admit GRE, IP-in-IP, VXLAN, Geneve, GTP-U (clause T)
};

// Pure: builds the expression text. Ports are deduplicated (first order
// kept); an empty port list keeps only the fragment clauses.
std::string build_capture_filter(const CaptureFilterSpec& spec);

// Whether libpcap can compile a filter for this link type at all (it cannot
// for DLT_NFLOG: an `nflog:GROUP` capture takes what the netfilter rules
// sent to the group, unfiltered).
bool link_type_can_filter(int dlt);

// Whether libpcap's `vlan` keyword is usable for this DLT_* link type
// (Ethernet-like only; `any` (SLL/SLL2) and raw IP have no tags in the data).
bool link_type_has_vlan(int dlt);

}  // namespace sidetap::capture
