// ExtraTemplate and NameTable: parsing, constants, per-message rendering.
#include "dnstap/extra_template.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>

using namespace sidetap;
using dnstap::ExtraTemplate;

namespace {
ExtraTemplate parse_ok(std::string_view text) {
    std::string error;
    auto t = ExtraTemplate::parse(text, error);
    EXPECT_TRUE(t.has_value()) << text << ": " << error;
    return t ? *t : ExtraTemplate{};
}
std::string parse_error(std::string_view text) {
    std::string error;
    EXPECT_FALSE(ExtraTemplate::parse(text, error).has_value()) << text;
    return error;
}
std::string render(const ExtraTemplate& t, const dns::Origin& origin, const dnstap::NameTable& names,
                   bool* truncated_out = nullptr) {
    ExtraTemplate::Buffer buffer{};
    bool truncated = false;
    const auto n = t.render(origin, names, buffer, truncated);
    if (truncated_out) *truncated_out = truncated;
    return std::string(reinterpret_cast<const char*>(buffer.data()), n);
}
decode::IpAddress v4(const char* text) {
    decode::IpAddress a;
    a.family = 4;
    inet_pton(AF_INET, text, a.bytes.data());
    return a;
}
decode::IpAddress v6(const char* text) {
    decode::IpAddress a;
    a.family = 6;
    inet_pton(AF_INET6, text, a.bytes.data());
    return a;
}
}  // namespace

TEST(ExtraTemplate, TextWithoutPlaceholdersIsConstantAndUnchanged) {
    const auto t = parse_ok("rack=7, row 3");
    EXPECT_TRUE(t.constant());
    EXPECT_EQ(t.text(), "rack=7, row 3");
    EXPECT_TRUE(parse_ok("").constant());
    EXPECT_EQ(parse_ok("").text(), "");
}

TEST(ExtraTemplate, DoubledBracesAreLiteralBraces) {
    const auto t = parse_ok("{{x}} }}{{ {{{{");
    EXPECT_TRUE(t.constant());
    EXPECT_EQ(t.text(), "{x} }{ {{");
}

TEST(ExtraTemplate, UnknownPlaceholderIsAnErrorNamingIt) {
    const auto e = parse_error("a {interfaces} b");
    EXPECT_NE(e.find("unknown placeholder {interfaces}"), std::string::npos) << e;
    EXPECT_NE(e.find("{interface}"), std::string::npos) << "lists the known ones: " << e;
    EXPECT_NE(parse_error("{}").find("unknown placeholder {}"), std::string::npos);
    EXPECT_NE(parse_error("{File}").find("{File}"), std::string::npos) << "names are case-sensitive";
}

TEST(ExtraTemplate, LoneOrUnclosedBracesAreErrors) {
    EXPECT_NE(parse_error("a{file").find("unclosed '{' at position 2"), std::string::npos);
    EXPECT_NE(parse_error("a}").find("lone '}' at position 2"), std::string::npos);
    EXPECT_NE(parse_error("{file}}").find("lone '}'"), std::string::npos);
}

TEST(ExtraTemplate, BindSubstitutesHostShardAndCgroup) {
    const auto t = parse_ok("{host}/{shard}/{cgroup}");
    EXPECT_FALSE(t.constant()) << "unbound";
    const auto bound = t.bind({"ns1", "/sys/fs/cgroup/pod", 3});
    EXPECT_TRUE(bound.constant());
    EXPECT_EQ(bound.text(), "ns1/3//sys/fs/cgroup/pod");
    const auto mixed = parse_ok("{host}:{frame}").bind({"ns1", "", 0});
    EXPECT_FALSE(mixed.constant());
    EXPECT_TRUE(mixed.uses(dnstap::Placeholder::Frame));
    EXPECT_FALSE(mixed.uses(dnstap::Placeholder::Host));
    dns::Origin o;
    o.frame = 12;
    EXPECT_EQ(render(mixed, o, dnstap::NameTable{}), "ns1:12");
}

TEST(ExtraTemplate, RendersEveryPerMessagePlaceholder) {
    dnstap::NameTable names;
    dns::Origin o;
    o.interface = names.intern("eth1");
    o.file = names.intern("a.pcap");
    o.comm = names.intern("unbound");
    o.pid = 4242;
    o.frame = 99;
    o.encap.has_vlan = true;
    o.encap.vlan = 4094;
    o.encap.depth = 1;
    o.encap.tunnel = decode::TunnelKind::Vxlan;
    o.encap.outer_src = v4("198.51.100.1");
    o.encap.outer_dst = v4("198.51.100.2");
    o.encap.has_tunnel_id = true;
    o.encap.tunnel_id = 5001;
    const auto t = parse_ok("{interface}|{vlan}|{tunnel}|{pid}|{comm}|{file}|{frame}");
    EXPECT_EQ(render(t, o, names), "eth1|4094|vxlan 198.51.100.1>198.51.100.2 id=5001|4242|unbound|a.pcap|99");
    o.encap.tunnel = decode::TunnelKind::Gre;
    o.encap.has_tunnel_id = false;
    o.encap.outer_src = v6("2001:db8:ffff::1");
    o.encap.outer_dst = v6("2001:db8:ffff::2");
    EXPECT_EQ(render(parse_ok("{tunnel}"), o, names), "gre 2001:db8:ffff::1>2001:db8:ffff::2");
}

TEST(ExtraTemplate, PlaceholderWithoutValueIsEmpty) {
    const auto t = parse_ok("[{interface}][{vlan}][{tunnel}][{pid}][{comm}][{file}][{frame}]");
    EXPECT_EQ(render(t, dns::Origin{}, dnstap::NameTable{}), "[][][][][][][]");
    dns::Origin o;
    o.encap.vlan = 0;
    o.encap.has_vlan = true;
    EXPECT_EQ(render(parse_ok("{vlan}"), o, dnstap::NameTable{}), "0") << "VLAN 0 (priority tag) is a value";
}

TEST(ExtraTemplate, LongOutputIsCutAtTheBoundAndReported) {
    dnstap::NameTable names;
    dns::Origin o;
    o.file = names.intern(std::string(200, 'f'));
    std::string text;
    for (int i = 0; i < 30; ++i) text += "{file}";
    bool truncated = false;
    const auto out = render(parse_ok(text), o, names, &truncated);
    EXPECT_TRUE(truncated);
    EXPECT_EQ(out.size(), ExtraTemplate::kMaxRendered);
    EXPECT_FALSE(render(parse_ok("{file}"), o, names, &truncated).empty());
    EXPECT_FALSE(truncated);
}

TEST(NameTable, InternsOnceAndIsBounded) {
    dnstap::NameTable names;
    const auto a = names.intern("eth0");
    const auto b = names.intern("eth1");
    EXPECT_NE(a, b);
    EXPECT_EQ(names.intern("eth0"), a);
    EXPECT_EQ(names.intern("eth1"), b);
    EXPECT_EQ(names.name(a), "eth0");
    EXPECT_EQ(names.name(dns::Origin::kNoName), "");
    for (std::size_t i = 0; i < dnstap::NameTable::kMaxNames; ++i) names.intern("n" + std::to_string(i));
    EXPECT_EQ(names.intern("one too many"), dns::Origin::kNoName);
    EXPECT_GE(names.full(), 1u);
    EXPECT_EQ(names.intern("eth0"), a) << "known names still resolve";
}
