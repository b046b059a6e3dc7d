#include "capture/capture_filter.h"

#include <pcap/pcap.h>

#include <algorithm>

namespace sidetap::capture {

std::string build_capture_filter(const CaptureFilterSpec& spec) {
    std::vector<std::uint16_t> ports;
    for (auto p : spec.ports)
        if (std::find(ports.begin(), ports.end(), p) == ports.end()) ports.push_back(p);

    static constexpr const char* kFragments = "(ip[6:2] & 0x1fff != 0) or (ip6[6] == 44)";
    static constexpr const char* kTunnels =
        "ip proto 47 or ip proto 4 or ip proto 41 or ip6 proto 47 or ip6 proto 4 or ip6 proto 41 or "
        "udp dst port 4789 or udp dst port 6081 or udp dst port 2152";
    std::string core = "(";
    for (auto p : ports) core += "port " + std::to_string(p) + " or ";
    core += std::string(kFragments) + ")";
    if (!spec.server_addresses.empty()) {
        core += " and (";
        for (std::size_t i = 0; i < spec.server_addresses.size(); ++i) {
            if (i) core += " or ";
            core += "host " + spec.server_addresses[i];
        }
        core += ")";
        // Fragments of tunnel packets travel between the tunnel endpoints.
        if (spec.tunnels) core = "(" + core + ") or " + kFragments;
    }
    if (spec.tunnels) core = "(" + core + " or " + kTunnels + ")";
    if (!spec.user_filter.empty()) core += " and (" + spec.user_filter + ")";
    if (!spec.vlan) return core;
    // Nested, not `... or (vlan and vlan and (F))`: the offsets a `vlan`
    // shifts stay shifted for the rest of the text, so a third alternative
    // after `(vlan and (F))` would look for a third tag.
    return "(" + core + ") or (vlan and ((" + core + ") or (vlan and (" + core + "))))";
}

bool link_type_can_filter(int dlt) {
#ifdef DLT_NFLOG
    if (dlt == DLT_NFLOG) return false;
#endif
    return true;
}

bool link_type_has_vlan(int dlt) {
    switch (dlt) {
        case DLT_EN10MB:
#ifdef DLT_NETANALYZER
        case DLT_NETANALYZER:
#endif
#ifdef DLT_NETANALYZER_TRANSPARENT
        case DLT_NETANALYZER_TRANSPARENT:
#endif
            return true;
        default:
            return false;
    }
}

}  // namespace sidetap::capture
