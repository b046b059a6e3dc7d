// capture::build_capture_filter: every expression compiles with libpcap on a
// DLT_EN10MB dead handle and admits/rejects crafted frames as intended
// (pcap_offline_filter), including the traps from DESIGN.md: non-first IP
// fragments and VLAN/QinQ-tagged frames; and tunnelled traffic (GRE,
// IP-in-IP, IPv6-in-IP, VXLAN, Geneve, GTP-U), admitted by default.
#include "capture/capture_filter.h"

#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sidetap::capture {
namespace {

using Bytes = std::vector<std::uint8_t>;

void put16(Bytes& b, std::uint16_t v) {
    b.push_back(static_cast<std::uint8_t>(v >> 8));
    b.push_back(static_cast<std::uint8_t>(v));
}

// Ethernet header with `tags` 802.1Q tags (outer 0x88a8 when two, as QinQ).
Bytes ethernet(std::uint16_t ethertype, int tags = 0) {
    Bytes b = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2};
    for (int i = 0; i < tags; ++i) {
        put16(b, (tags == 2 && i == 0) ? 0x88a8 : 0x8100);
        put16(b, static_cast<std::uint16_t>(100 + i));  // VLAN id
    }
    put16(b, ethertype);
    return b;
}

// IPv4 header (no options) from 10.0.0.1 to 10.0.0.2.
void ipv4(Bytes& b, std::uint8_t proto, std::uint16_t payload_len, std::uint16_t frag_field = 0,
          std::uint8_t src_last = 1) {
    put16(b, 0x4500);
    put16(b, static_cast<std::uint16_t>(20 + payload_len));
    put16(b, 0x1234);       // id
    put16(b, frag_field);   // flags + fragment offset (8-byte units)
    b.push_back(64);
    b.push_back(proto);
    put16(b, 0);            // checksum (not checked by BPF)
    for (std::uint8_t x : {std::uint8_t{10}, std::uint8_t{0}, std::uint8_t{0}, src_last}) b.push_back(x);
    for (int x : {10, 0, 0, 2}) b.push_back(static_cast<std::uint8_t>(x));
}

void ports(Bytes& b, std::uint16_t sport, std::uint16_t dport) {
    put16(b, sport);
    put16(b, dport);
}

Bytes udp4(std::uint16_t sport, std::uint16_t dport, int tags = 0, std::uint8_t src_last = 1) {
    auto b = ethernet(0x0800, tags);
    ipv4(b, 17, 8 + 12, 0, src_last);
    ports(b, sport, dport);
    put16(b, 8 + 12);
    put16(b, 0);
    b.resize(b.size() + 12, 0);  // DNS header
    return b;
}

Bytes tcp4(std::uint16_t sport, std::uint16_t dport) {
    auto b = ethernet(0x0800);
    ipv4(b, 6, 20);
    ports(b, sport, dport);
    b.resize(b.size() + 16, 0);
    b[b.size() - 8] = 0x50;  // data offset 5
    return b;
}

// A non-first IPv4 fragment (offset 185*8 = 1480): no UDP header, just data.
Bytes ipv4_fragment(int tags = 0) {
    auto b = ethernet(0x0800, tags);
    ipv4(b, 17, 64, 185);
    b.resize(b.size() + 64, 0xab);
    return b;
}

// IPv6 packet with a Fragment header (non-first fragment, offset 1448).
Bytes ipv6_fragment() {
    auto b = ethernet(0x86dd);
    put16(b, 0x6000);
    put16(b, 0);
    put16(b, 8 + 64);  // payload length
    b.push_back(44);   // next header: Fragment
    b.push_back(64);
    for (int i = 0; i < 32; ++i) b.push_back(static_cast<std::uint8_t>(i == 15 || i == 31 ? 1 : 0));
    b.push_back(17);   // fragment header: next header UDP
    b.push_back(0);
    put16(b, static_cast<std::uint16_t>(181 << 3));  // offset 181*8, M=0
    put16(b, 0);
    put16(b, 0x4242);
    b.resize(b.size() + 64, 0xcd);
    return b;
}

Bytes udp6(std::uint16_t sport, std::uint16_t dport) {
    auto b = ethernet(0x86dd);
    put16(b, 0x6000);
    put16(b, 0);
    put16(b, 8 + 12);
    b.push_back(17);
    b.push_back(64);
    for (int i = 0; i < 32; ++i) b.push_back(static_cast<std::uint8_t>(i == 15 || i == 31 ? 1 : 0));
    ports(b, sport, dport);
    put16(b, 8 + 12);
    put16(b, 0);
    b.resize(b.size() + 12, 0);
    return b;
}

class Filter {
public:
    explicit Filter(const std::string& expr, int dlt = DLT_EN10MB) {
        dead_ = pcap_open_dead(dlt, 262144);
        ok_ = pcap_compile(dead_, &program_, expr.c_str(), 1, PCAP_NETMASK_UNKNOWN) == 0;
        if (!ok_) error_ = pcap_geterr(dead_);
    }
    ~Filter() {
        if (ok_) pcap_freecode(&program_);
        pcap_close(dead_);
    }
    [[nodiscard]] bool ok() const { return ok_; }
    [[nodiscard]] const std::string& error() const { return error_; }
    bool admits(const Bytes& frame) const {
        pcap_pkthdr header{};
        header.caplen = header.len = static_cast<bpf_u_int32>(frame.size());
        return pcap_offline_filter(&program_, &header, frame.data()) != 0;
    }

private:
    pcap_t* dead_ = nullptr;
    bpf_program program_{};
    bool ok_ = false;
    std::string error_;
};

const std::string kTunnelClause =
    "ip proto 47 or ip proto 4 or ip proto 41 or ip6 proto 47 or ip6 proto 4 or ip6 proto 41 or "
    "udp dst port 4789 or udp dst port 6081 or udp dst port 2152";

TEST(CaptureFilter, DefaultText) {
    CaptureFilterSpec spec;
    const auto core = "((port 53 or (ip[6:2] & 0x1fff != 0) or (ip6[6] == 44)) or " + kTunnelClause + ")";
    EXPECT_EQ(build_capture_filter(spec),
              "(" + core + ") or (vlan and ((" + core + ") or (vlan and (" + core + "))))");
    spec.vlan = false;
    EXPECT_EQ(build_capture_filter(spec), core);
    spec.tunnels = false;
    EXPECT_EQ(build_capture_filter(spec), "(port 53 or (ip[6:2] & 0x1fff != 0) or (ip6[6] == 44))");
}

TEST(CaptureFilter, PortsDeduplicatedHostsAndUserFilter) {
    CaptureFilterSpec spec;
    spec.ports = {53, 5353, 53};
    spec.server_addresses = {"10.0.0.2", "::1"};
    spec.user_filter = "not host 10.0.0.9";
    spec.vlan = false;
    spec.tunnels = false;
    EXPECT_EQ(build_capture_filter(spec),
              "(port 53 or port 5353 or (ip[6:2] & 0x1fff != 0) or (ip6[6] == 44)) and (host 10.0.0.2 or host ::1) "
              "and (not host 10.0.0.9)");
    spec.tunnels = true;
    EXPECT_EQ(build_capture_filter(spec),
              "(((port 53 or port 5353 or (ip[6:2] & 0x1fff != 0) or (ip6[6] == 44)) and (host 10.0.0.2 or host ::1)) "
              "or (ip[6:2] & 0x1fff != 0) or (ip6[6] == 44) or " + kTunnelClause + ") and (not host 10.0.0.9)");
}

struct Case {
    const char* name;
    Bytes frame;
    bool admitted;
};

std::vector<Case> default_cases() {
    return {
        {"udp/53 query", udp4(40000, 53), true},
        {"udp/53 response", udp4(53, 40000), true},
        {"udp6/53", udp6(40000, 53), true},
        {"tcp/53", tcp4(40000, 53), true},
        {"non-first IPv4 fragment", ipv4_fragment(), true},
        {"IPv6 fragment", ipv6_fragment(), true},
        {"vlan udp/53", udp4(40000, 53, 1), true},
        {"qinq udp/53", udp4(40000, 53, 2), true},
        {"vlan non-first IPv4 fragment", ipv4_fragment(1), true},
        {"qinq non-first IPv4 fragment", ipv4_fragment(2), true},
        {"udp/80", udp4(40000, 80), false},
        {"tcp/80", tcp4(40000, 80), false},
        {"udp6/80", udp6(40000, 80), false},
        {"vlan udp/80", udp4(40000, 80, 1), false},
        {"qinq udp/80", udp4(40000, 80, 2), false},
    };
}

TEST(CaptureFilter, DefaultAdmitsDnsFragmentsAndTagsRejectsOthers) {
    Filter filter(build_capture_filter({}));
    ASSERT_TRUE(filter.ok()) << filter.error();
    for (const auto& c : default_cases()) EXPECT_EQ(filter.admits(c.frame), c.admitted) << c.name;
}

TEST(CaptureFilter, PlainUdpPort53IsTheTrap) {
    // Documents why the fragment clauses exist.
    Filter plain("udp port 53");
    ASSERT_TRUE(plain.ok());
    EXPECT_TRUE(plain.admits(udp4(40000, 53)));
    EXPECT_FALSE(plain.admits(ipv4_fragment()));
    EXPECT_FALSE(plain.admits(ipv6_fragment()));
    EXPECT_FALSE(plain.admits(udp4(40000, 53, 1)));
}

TEST(CaptureFilter, FlatQinQAlternativeIsATrap) {
    // `vlan` shifts offsets for the rest of the text: after `(vlan and (F))`
    // a flat `vlan and vlan and (F)` looks for three tags.
    const std::string core = "(port 53)";
    Filter flat("(" + core + ") or (vlan and (" + core + ")) or (vlan and vlan and (" + core + "))");
    ASSERT_TRUE(flat.ok());
    EXPECT_FALSE(flat.admits(udp4(40000, 53, 2)));
}

TEST(CaptureFilter, OtherPortsResolverUpstream) {
    CaptureFilterSpec spec;
    spec.ports = {5300, 53};  // server port + upstream port (role resolver)
    Filter filter(build_capture_filter(spec));
    ASSERT_TRUE(filter.ok()) << filter.error();
    EXPECT_TRUE(filter.admits(udp4(40000, 5300)));
    EXPECT_TRUE(filter.admits(udp4(5300, 40000, 1)));
    EXPECT_TRUE(filter.admits(udp4(33333, 53, 2)));
    EXPECT_FALSE(filter.admits(udp4(40000, 5301)));
}

TEST(CaptureFilter, ServerAddressNarrows) {
    CaptureFilterSpec spec;
    spec.server_addresses = {"10.0.0.1"};
    Filter filter(build_capture_filter(spec));
    ASSERT_TRUE(filter.ok()) << filter.error();
    EXPECT_TRUE(filter.admits(udp4(40000, 53)));               // 10.0.0.1 -> 10.0.0.2
    EXPECT_TRUE(filter.admits(udp4(40000, 53, 1)));
    EXPECT_TRUE(filter.admits(ipv4_fragment()));
    EXPECT_FALSE(filter.admits(udp4(40000, 53, 0, 7)));        // 10.0.0.7 -> 10.0.0.2
    EXPECT_FALSE(filter.admits(udp4(40000, 53, 2, 7)));
}

TEST(CaptureFilter, UserFilterIsAnded) {
    CaptureFilterSpec spec;
    spec.user_filter = "udp";
    Filter filter(build_capture_filter(spec));
    ASSERT_TRUE(filter.ok()) << filter.error();
    EXPECT_TRUE(filter.admits(udp4(40000, 53)));
    EXPECT_TRUE(filter.admits(udp4(40000, 53, 1)));
    EXPECT_FALSE(filter.admits(tcp4(40000, 53)));
}

TEST(CaptureFilter, BadUserFilterDoesNotCompile) {
    CaptureFilterSpec spec;
    spec.user_filter = "port banana";
    Filter filter(build_capture_filter(spec));
    EXPECT_FALSE(filter.ok());
}

TEST(CaptureFilter, NoVlanVariantCompilesForCookedAndRaw) {
    CaptureFilterSpec spec;
    spec.vlan = false;
    for (int dlt : {DLT_LINUX_SLL, DLT_RAW, DLT_NULL}) {
        Filter filter(build_capture_filter(spec), dlt);
        EXPECT_TRUE(filter.ok()) << dlt << ": " << filter.error();
    }
    EXPECT_TRUE(link_type_has_vlan(DLT_EN10MB));
    EXPECT_FALSE(link_type_has_vlan(DLT_LINUX_SLL));
    EXPECT_FALSE(link_type_has_vlan(DLT_RAW));
}

// ---------------------------------------------------------------- tunnels

// IPv4 from 10.0.0.1 to 10.0.0.2 carrying `proto` + `payload`.
Bytes ip4_carrying(std::uint8_t proto, const Bytes& payload, int tags = 0, std::uint16_t frag_field = 0) {
    auto b = ethernet(0x0800, tags);
    ipv4(b, proto, static_cast<std::uint16_t>(payload.size()), frag_field);
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
}

Bytes ip6_carrying(std::uint8_t next_header, const Bytes& payload) {
    auto b = ethernet(0x86dd);
    put16(b, 0x6000);
    put16(b, 0);
    put16(b, static_cast<std::uint16_t>(payload.size()));
    b.push_back(next_header);
    b.push_back(64);
    for (int i = 0; i < 32; ++i) b.push_back(static_cast<std::uint8_t>(i == 15 || i == 31 ? 7 : 0));
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
}

// A DNS query (10.0.0.1 -> 10.0.0.2:53) as the bytes of an inner IPv4 packet.
Bytes inner_dns() {
    auto frame = udp4(40000, 53);
    return Bytes(frame.begin() + 14, frame.end());
}

Bytes udp_header(std::uint16_t sport, std::uint16_t dport, const Bytes& payload) {
    Bytes b;
    ports(b, sport, dport);
    put16(b, static_cast<std::uint16_t>(8 + payload.size()));
    put16(b, 0);
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
}

std::vector<Case> tunnel_cases() {
    const Bytes dns = inner_dns();
    Bytes gre = {0x00, 0x00, 0x08, 0x00};
    gre.insert(gre.end(), dns.begin(), dns.end());
    Bytes vx = {0x08, 0, 0, 0, 0, 0, 1, 0};
    const auto inner_eth = udp4(40000, 53);
    vx.insert(vx.end(), inner_eth.begin(), inner_eth.end());
    Bytes gtp = {0x30, 0xFF, 0, static_cast<std::uint8_t>(dns.size()), 0, 0, 0, 1};
    gtp.insert(gtp.end(), dns.begin(), dns.end());
    return {
        {"GRE in IPv4", ip4_carrying(47, gre), true},
        {"GRE in IPv4 behind a VLAN tag", ip4_carrying(47, gre, 1), true},
        {"GRE in IPv4 behind QinQ", ip4_carrying(47, gre, 2), true},
        {"non-first fragment of GRE", ip4_carrying(47, Bytes(64, 0xab), 0, 185), true},
        {"IP-in-IP", ip4_carrying(4, dns), true},
        {"IPv6-in-IPv4", ip4_carrying(41, Bytes(48, 0x60)), true},
        {"GRE in IPv6", ip6_carrying(47, gre), true},
        {"IPv4-in-IPv6", ip6_carrying(4, dns), true},
        {"IPv6-in-IPv6", ip6_carrying(41, Bytes(48, 0x60)), true},
        {"VXLAN", ip4_carrying(17, udp_header(51000, 4789, vx)), true},
        {"VXLAN behind a VLAN tag", ip4_carrying(17, udp_header(51000, 4789, vx), 1), true},
        {"Geneve", ip4_carrying(17, udp_header(51000, 6081, vx)), true},
        {"GTP-U", ip4_carrying(17, udp_header(2152, 2152, gtp)), true},
        {"VXLAN in IPv6", ip6_carrying(17, udp_header(51000, 4789, vx)), true},
        {"from port 4789 to port 80", ip4_carrying(17, udp_header(4789, 80, vx)), false},
        {"ESP (50)", ip4_carrying(50, Bytes(40, 1)), false},
        {"UDP to 4790 (VXLAN-GPE)", ip4_carrying(17, udp_header(51000, 4790, vx)), false},
    };
}

TEST(CaptureFilter, TunnelsAdmittedByDefault) {
    Filter filter(build_capture_filter({}));
    ASSERT_TRUE(filter.ok()) << filter.error();
    for (const auto& c : tunnel_cases()) EXPECT_EQ(filter.admits(c.frame), c.admitted) << c.name;
    for (const auto& c : default_cases()) EXPECT_EQ(filter.admits(c.frame), c.admitted) << c.name;
}

TEST(CaptureFilter, NoTunnelsLeavesThemOut) {
    CaptureFilterSpec spec;
    spec.tunnels = false;
    Filter filter(build_capture_filter(spec));
    ASSERT_TRUE(filter.ok()) << filter.error();
    for (const auto& c : tunnel_cases()) {
        // A non-first fragment is admitted either way (it may be DNS).
        const bool want = std::string(c.name) == "non-first fragment of GRE";
        EXPECT_EQ(filter.admits(c.frame), want) << c.name;
    }
    for (const auto& c : default_cases()) EXPECT_EQ(filter.admits(c.frame), c.admitted) << c.name;
}

TEST(CaptureFilter, ServerAddressDoesNotNarrowTunnels) {
    // The tunnel endpoints are not the DNS server: with --server-addr the
    // tunnel packets and their fragments still pass, plain DNS of other
    // hosts does not.
    CaptureFilterSpec spec;
    spec.server_addresses = {"10.0.0.9"};
    Filter filter(build_capture_filter(spec));
    ASSERT_TRUE(filter.ok()) << filter.error();
    for (const auto& c : tunnel_cases()) EXPECT_EQ(filter.admits(c.frame), c.admitted) << c.name;
    EXPECT_FALSE(filter.admits(udp4(40000, 53)));
    EXPECT_FALSE(filter.admits(udp4(40000, 53, 1)));
    EXPECT_TRUE(filter.admits(ipv4_fragment()));
}

TEST(CaptureFilter, UserFilterAppliesToTunnelsToo) {
    CaptureFilterSpec spec;
    spec.user_filter = "not ip proto 47";
    Filter filter(build_capture_filter(spec));
    ASSERT_TRUE(filter.ok()) << filter.error();
    EXPECT_FALSE(filter.admits(tunnel_cases()[0].frame));
    EXPECT_TRUE(filter.admits(tunnel_cases()[9].frame));  // VXLAN
    EXPECT_TRUE(filter.admits(udp4(40000, 53)));
}

TEST(CaptureFilter, TunnelClauseCompilesForCookedRawAndNull) {
    CaptureFilterSpec spec;
    spec.vlan = false;
    for (int dlt : {DLT_LINUX_SLL, DLT_RAW, DLT_NULL}) {
        Filter filter(build_capture_filter(spec), dlt);
        EXPECT_TRUE(filter.ok()) << dlt << ": " << filter.error();
    }
}

TEST(CaptureFilter, NflogCannotBeFiltered) {
    // libpcap 1.10: "NFLOG link-layer type filtering not implemented".
    EXPECT_FALSE(Filter("port 53", DLT_NFLOG).ok());
    EXPECT_FALSE(link_type_can_filter(DLT_NFLOG));
    EXPECT_TRUE(link_type_can_filter(DLT_EN10MB));
    EXPECT_TRUE(link_type_can_filter(DLT_LINUX_SLL2));
}

}  // namespace
}  // namespace sidetap::capture
