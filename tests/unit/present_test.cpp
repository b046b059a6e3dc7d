// present::Formatter (golang-dnstap text/YAML/JSON layouts), dns_text and
// Filter; plus a field-by-field comparison with the real `dnstap` CLI.
#include "framestream/codec.h"
#include "present/dns_text.h"
#include "present/filter.h"
#include "present/formatter.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dnstap.pb.h"

using namespace sidetap;
using present::Format;
using present::Formatter;
using M = ::dnstap::Message;

namespace {

// --- DNS wire builders -------------------------------------------------

void put16(std::string& s, unsigned v) {
    s += static_cast<char>((v >> 8) & 0xFF);
    s += static_cast<char>(v & 0xFF);
}
std::string wire_name(std::initializer_list<std::string> labels) {
    std::string s;
    for (const auto& l : labels) {
        s += static_cast<char>(l.size());
        s += l;
    }
    s += '\0';
    return s;
}
std::string query(const std::string& qname_wire, unsigned qtype = 1, unsigned qclass = 1, unsigned id = 0x1234,
                  unsigned flags = 0x0100) {
    std::string s;
    put16(s, id);
    put16(s, flags);
    put16(s, 1);
    put16(s, 0);
    put16(s, 0);
    put16(s, 0);
    s += qname_wire;
    put16(s, qtype);
    put16(s, qclass);
    return s;
}
// Response with one A record (compressed owner) and an OPT record.
std::string response_a(const std::string& qname_wire, unsigned id = 0x1234) {
    std::string s;
    put16(s, id);
    put16(s, 0x8180);
    put16(s, 1);
    put16(s, 1);
    put16(s, 0);
    put16(s, 1);
    s += qname_wire;
    put16(s, 1);
    put16(s, 1);
    put16(s, 0xC00C);
    put16(s, 1);
    put16(s, 1);
    put16(s, 0);
    put16(s, 300);
    put16(s, 4);
    s += std::string("\xC0\x00\x02\x01", 4);
    s += '\0';  // OPT
    put16(s, 41);
    put16(s, 1232);
    put16(s, 0);
    put16(s, 0x8000);
    put16(s, 0);
    return s;
}
const std::string kWww = wire_name({"www", "example", "com"});

std::string bytes(std::initializer_list<int> b) {
    std::string s;
    for (int v : b) s += static_cast<char>(v);
    return s;
}
const std::string kV4Client = bytes({192, 0, 2, 10});
const std::string kV4Server = bytes({198, 51, 100, 53});
const std::string kV6Client = bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
const std::string kV6Server = bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53});

constexpr std::uint64_t kSec = 1700000000;  // 2023-11-14 22:13:20 UTC, 07:13:20 in Tokyo

::dnstap::Dnstap make(M::Type type, std::uint32_t nsec = 123456789) {
    ::dnstap::Dnstap dt;
    dt.set_type(::dnstap::Dnstap::MESSAGE);
    dt.set_identity("ns1");
    dt.set_version("sidetap-test");
    M* m = dt.mutable_message();
    m->set_type(type);
    m->set_socket_family(::dnstap::INET);
    m->set_socket_protocol(::dnstap::UDP);
    m->set_query_address(kV4Client);
    m->set_response_address(kV4Server);
    m->set_query_port(40000);
    m->set_response_port(53);
    const bool is_query = (static_cast<int>(type) % 2) == 1;
    if (is_query) {
        m->set_query_time_sec(kSec);
        m->set_query_time_nsec(nsec);
        m->set_query_message(query(kWww));
    } else {
        m->set_response_time_sec(kSec);
        m->set_response_time_nsec(nsec);
        m->set_response_message(response_a(kWww));
    }
    return dt;
}

class ScopedTz {
public:
    explicit ScopedTz(const char* tz) {
        if (const char* old = std::getenv("TZ")) old_ = old, had_ = true;
        ::setenv("TZ", tz, 1);
        ::tzset();
    }
    ~ScopedTz() {
        if (had_)
            ::setenv("TZ", old_.c_str(), 1);
        else
            ::unsetenv("TZ");
        ::tzset();
    }

private:
    std::string old_;
    bool had_ = false;
};

std::string text(const ::dnstap::Dnstap& dt) { return Formatter(Format::Text).format(dt); }
std::string yaml(const ::dnstap::Dnstap& dt) { return Formatter(Format::Yaml).format(dt); }
std::string json(const ::dnstap::Dnstap& dt) { return Formatter(Format::Json).format(dt); }

}  // namespace

// --- quiet text ------------------------------------------------------------

TEST(PresentText, GoldenLinesPerMessageType) {
    ScopedTz tz("UTC");
    EXPECT_EQ(text(make(M::CLIENT_QUERY)), "22:13:20.123456 CQ 192.0.2.10 UDP 33b \"www.example.com.\" IN A\n");
    EXPECT_EQ(text(make(M::CLIENT_RESPONSE)), "22:13:20.123456 CR 192.0.2.10 UDP 60b \"www.example.com.\" IN A\n");
    EXPECT_EQ(text(make(M::AUTH_QUERY)), "22:13:20.123456 AQ 192.0.2.10 UDP 33b \"www.example.com.\" IN A\n");
    EXPECT_EQ(text(make(M::AUTH_RESPONSE)), "22:13:20.123456 AR 192.0.2.10 UDP 60b \"www.example.com.\" IN A\n");
    // RESOLVER/FORWARDER/TOOL/UPDATE show the response (server) address.
    EXPECT_EQ(text(make(M::RESOLVER_QUERY)), "22:13:20.123456 RQ 198.51.100.53 UDP 33b \"www.example.com.\" IN A\n");
    EXPECT_EQ(text(make(M::RESOLVER_RESPONSE)),
              "22:13:20.123456 RR 198.51.100.53 UDP 60b \"www.example.com.\" IN A\n");
    EXPECT_EQ(text(make(M::FORWARDER_QUERY)), "22:13:20.123456 FQ 198.51.100.53 UDP 33b \"www.example.com.\" IN A\n");
    EXPECT_EQ(text(make(M::TOOL_RESPONSE)), "22:13:20.123456 TR 198.51.100.53 UDP 60b \"www.example.com.\" IN A\n");
    auto uq = make(M::UPDATE_QUERY);
    uq.mutable_message()->set_query_message(query(wire_name({"example", "com"}), 6, 1, 7, 0x2800));
    uq.mutable_message()->set_socket_protocol(::dnstap::TCP);
    EXPECT_EQ(text(uq), "22:13:20.123456 UQ 198.51.100.53 TCP 29b \"example.com.\" IN SOA\n");
    EXPECT_EQ(text(make(M::STUB_QUERY)), "[unhandled Message.Type]\n");
    EXPECT_EQ(text(make(M::STUB_RESPONSE)), "[unhandled Message.Type]\n");
}

TEST(PresentText, LocalTimeZone) {
    {
        ScopedTz tz("Asia/Tokyo");
        EXPECT_EQ(text(make(M::CLIENT_QUERY)).substr(0, 15), "07:13:20.123456");
    }
    {
        ScopedTz tz("UTC");
        EXPECT_EQ(text(make(M::CLIENT_QUERY, 999)).substr(0, 15), "22:13:20.000000");  // truncated to µs
    }
}

TEST(PresentText, MissingFields) {
    ::dnstap::Dnstap dt;
    dt.set_type(::dnstap::Dnstap::MESSAGE);
    dt.mutable_message()->set_type(M::CLIENT_QUERY);
    EXPECT_EQ(text(dt), "??:??:??.?????? CQ MISSING_ADDRESS  0b X \n");
    ScopedTz tz("UTC");
    dt.mutable_message()->set_query_time_sec(kSec);
    EXPECT_EQ(text(dt), "22:13:20.?????? CQ MISSING_ADDRESS  0b X \n");
    dt.mutable_message()->clear_query_time_sec();
    dt.mutable_message()->set_query_time_nsec(5000);
    EXPECT_EQ(text(dt), "??:??:??.000005 CQ MISSING_ADDRESS  0b X \n");
    // A response without response_address (CoreDNS): RR shows MISSING_ADDRESS.
    auto rr = make(M::RESOLVER_RESPONSE);
    rr.mutable_message()->clear_response_address();
    EXPECT_EQ(text(rr), "22:13:20.123456 RR MISSING_ADDRESS UDP 60b \"www.example.com.\" IN A\n");
    // Unparseable message: size, then X.
    auto bad = make(M::CLIENT_QUERY);
    bad.mutable_message()->set_query_message(std::string("\x12\x34\x01\x00\x00\x01", 6));
    EXPECT_EQ(text(bad), "22:13:20.123456 CQ 192.0.2.10 UDP 6b X \n");
    // Header only (REFUSED without question).
    bad.mutable_message()->set_query_message(query(kWww).substr(0, 12));
    EXPECT_EQ(text(bad), "22:13:20.123456 CQ 192.0.2.10 UDP 12b X \n");
    ::dnstap::Dnstap empty;
    empty.set_type(::dnstap::Dnstap::MESSAGE);
    EXPECT_EQ(text(empty), "[missing Message]\n");
}

TEST(PresentText, SocketProtocolNamesAndIpv6) {
    ScopedTz tz("UTC");
    const std::pair<::dnstap::SocketProtocol, const char*> cases[] = {
        {::dnstap::UDP, "UDP"}, {::dnstap::TCP, "TCP"}, {::dnstap::DOT, "DOT"}, {::dnstap::DOH, "DOH"},
        {::dnstap::DNSCryptUDP, "DNSCryptUDP"}, {::dnstap::DNSCryptTCP, "DNSCryptTCP"}, {::dnstap::DOQ, "DOQ"}};
    for (const auto& [proto, name] : cases) {
        auto dt = make(M::CLIENT_QUERY);
        dt.mutable_message()->set_socket_family(::dnstap::INET6);
        dt.mutable_message()->set_query_address(kV6Client);
        dt.mutable_message()->set_socket_protocol(proto);
        EXPECT_EQ(text(dt), std::string("22:13:20.123456 CQ 2001:db8::1 ") + name +
                                " 33b \"www.example.com.\" IN A\n");
    }
}

TEST(PresentText, QuestionNamesTypesAndClassesLikeMiekgDns) {
    ScopedTz tz("UTC");
    auto dt = make(M::CLIENT_QUERY);
    std::string odd = wire_name({"a.b", "x y", std::string("\x01\xc8", 2), "q\"\\"});
    dt.mutable_message()->set_query_message(query(odd, 65, 3));
    EXPECT_EQ(text(dt), "22:13:20.123456 CQ 192.0.2.10 UDP 32b \"a\\.b.x\\ y.\\001\\200.q\\\"\\\\.\" CH HTTPS\n");
    dt.mutable_message()->set_query_message(query(std::string(1, '\0'), 1234, 77));
    EXPECT_EQ(text(dt), "22:13:20.123456 CQ 192.0.2.10 UDP 17b \".\" CLASS77 TYPE1234\n");
}

// --- YAML --------------------------------------------------------------------

TEST(PresentYaml, LayoutKeyOrderAndTimeTrimming) {
    auto dt = make(M::RESOLVER_RESPONSE, 351107920);
    auto* m = dt.mutable_message();
    m->set_query_time_sec(kSec - 1);
    m->set_query_time_nsec(0);
    m->set_query_zone(wire_name({"example", "com"}));
    const std::string out = yaml(dt);
    const std::string head =
        "type: MESSAGE\n"
        "identity: \"ns1\"\n"
        "version: \"sidetap-test\"\n"
        "message:\n"
        "  type: RESOLVER_RESPONSE\n"
        "  query_time: !!timestamp 2023-11-14 22:13:19\n"
        "  response_time: !!timestamp 2023-11-14 22:13:20.35110792\n"
        "  socket_family: INET\n"
        "  socket_protocol: UDP\n"
        "  query_address: 192.0.2.10\n"
        "  response_address: 198.51.100.53\n"
        "  query_port: 40000\n"
        "  response_port: 53\n"
        "  query_zone: \"example.com.\"\n"
        "  response_message: |\n"
        "    ;; opcode: QUERY, status: NOERROR, id: 4660\n"
        "    ;; flags: qr rd ra; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1\n"
        "    \n"
        "    ;; OPT PSEUDOSECTION:\n"
        "    ; EDNS: version 0; flags: do; udp: 1232\n"
        "    \n"
        "    ;; QUESTION SECTION:\n"
        "    ;www.example.com.\tIN\t A\n"
        "    \n"
        "    ;; ANSWER SECTION:\n"
        "    www.example.com.\t300\tIN\tA\t192.0.2.1\n"
        "---\n";
    EXPECT_EQ(out, head);
}

TEST(PresentYaml, TimesAndMissingFields) {
    EXPECT_EQ(present::go_utc_time(kSec, 500000000, ' '), "2023-11-14 22:13:20.5");
    EXPECT_EQ(present::go_utc_time(kSec, 1, ' '), "2023-11-14 22:13:20.000000001");
    EXPECT_EQ(present::go_utc_time(kSec, 1500000000, ' '), "2023-11-14 22:13:21.5");  // Go normalises nsec
    EXPECT_EQ(present::go_utc_time(0, 0, 'T'), "1970-01-01T00:00:00Z");
    EXPECT_EQ(present::go_utc_time(951782400, 120, 'T'), "2000-02-29T00:00:00.00000012Z");

    ::dnstap::Dnstap dt;
    dt.set_type(::dnstap::Dnstap::MESSAGE);
    auto* m = dt.mutable_message();
    m->set_type(M::CLIENT_QUERY);
    m->set_query_time_sec(kSec);  // no nsec: no query_time at all
    m->set_query_port(0);         // present port 0 is shown in YAML
    m->set_query_address("");     // present but empty: Go's "<nil>"
    EXPECT_EQ(yaml(dt),
              "type: MESSAGE\nmessage:\n  type: CLIENT_QUERY\n  query_address: <nil>\n  query_port: 0\n---\n");
}

TEST(PresentYaml, GoQuotingOfIdentity) {
    EXPECT_EQ(present::go_quote("plain"), "\"plain\"");
    EXPECT_EQ(present::go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    EXPECT_EQ(present::go_quote("\a\b\f\n\r\t\v"), "\"\\a\\b\\f\\n\\r\\t\\v\"");
    EXPECT_EQ(present::go_quote(std::string("\x01\x7f\xff", 3)), "\"\\x01\\x7f\\xff\"");
    EXPECT_EQ(present::go_quote("caf\xc3\xa9 \xe2\x80\xa8 \xc2\xa0"), "\"caf\xc3\xa9 \\u2028 \\u00a0\"");
    EXPECT_EQ(present::go_quote("\xf0\x9f\x98\x80"), "\"\xf0\x9f\x98\x80\"");
    EXPECT_EQ(present::go_quote("\xed\xa0\x80"), "\"\\xed\\xa0\\x80\"");  // surrogate: invalid UTF-8
}

TEST(PresentYaml, ExtensionsAfterTheGolangKeys) {
    auto dt = make(M::CLIENT_QUERY);
    dt.set_extra("rtt=12");
    auto* m = dt.mutable_message();
    m->clear_query_message();
    m->set_socket_protocol(::dnstap::DOH);
    m->set_http_protocol(::dnstap::HTTP2);
    auto* p = m->mutable_policy();
    p->set_type("RPZ");
    p->set_rule(wire_name({"bad", "rpz"}));
    p->set_action(::dnstap::Policy::NXDOMAIN);
    p->set_match(::dnstap::Policy::CLIENT_IP);
    p->set_value(kV4Client);
    const std::string out = yaml(dt);
    EXPECT_NE(out.find("version: \"sidetap-test\"\nextra: \"rtt=12\"\nmessage:\n"), std::string::npos) << out;
    EXPECT_NE(out.find("  response_port: 53\n  http_protocol: HTTP2\n  policy:\n    type: \"RPZ\"\n"
                       "    rule: \"bad.rpz.\"\n    action: NXDOMAIN\n    match: CLIENT_IP\n"
                       "    value: \"192.0.2.10\"\n---\n"),
              std::string::npos)
        << out;
    const std::string plain = Formatter(Format::Yaml, {.extensions = false}).format(dt);
    EXPECT_EQ(plain.find("extra"), std::string::npos);
    EXPECT_EQ(plain.find("policy"), std::string::npos);
    EXPECT_EQ(plain.find("http_protocol"), std::string::npos);
}

TEST(PresentYaml, UnparseableMessageAndZone) {
    auto dt = make(M::CLIENT_QUERY);
    dt.mutable_message()->set_query_message("\x01\x02");
    dt.mutable_message()->set_query_zone("\x05" "ab");
    const std::string out = yaml(dt);
    EXPECT_NE(out.find("  # query_zone: parse failed: dns: buffer size too small\n"), std::string::npos) << out;
    EXPECT_NE(out.find("  # query_message: parse failed: "), std::string::npos) << out;
}

// --- JSON --------------------------------------------------------------------

TEST(PresentJson, LayoutNilAndOmittedPorts) {
    ::dnstap::Dnstap dt;
    dt.set_type(::dnstap::Dnstap::MESSAGE);
    dt.set_identity("");  // empty: omitted like Go's omitempty
    auto* m = dt.mutable_message();
    m->set_type(M::CLIENT_RESPONSE);
    m->set_query_port(0);
    m->set_response_port(53);
    m->set_response_time_sec(kSec);
    m->set_response_time_nsec(100000);
    EXPECT_EQ(json(dt),
              "{\"type\":\"MESSAGE\",\"message\":{\"type\":\"CLIENT_RESPONSE\","
              "\"response_time\":\"2023-11-14T22:13:20.0001Z\",\"socket_family\":\"\\u003cnil\\u003e\","
              "\"socket_protocol\":\"\\u003cnil\\u003e\",\"response_port\":53}}\n");
}

TEST(PresentJson, FullRecord) {
    auto dt = make(M::RESOLVER_QUERY);
    dt.mutable_message()->set_query_zone(wire_name({"example", "com"}));
    dt.mutable_message()->set_socket_family(::dnstap::INET6);
    dt.mutable_message()->set_query_address(kV6Client);
    dt.mutable_message()->set_response_address(kV6Server);
    const std::string out = json(dt);
    const std::string expected_prefix =
        "{\"type\":\"MESSAGE\",\"identity\":\"ns1\",\"version\":\"sidetap-test\",\"message\":{"
        "\"type\":\"RESOLVER_QUERY\",\"query_time\":\"2023-11-14T22:13:20.123456789Z\","
        "\"socket_family\":\"INET6\",\"socket_protocol\":\"UDP\",\"query_address\":\"2001:db8::1\","
        "\"response_address\":\"2001:db8::53\",\"query_port\":40000,\"response_port\":53,"
        "\"query_zone\":\"example.com.\",\"query_message\":\";; opcode: QUERY, status: NOERROR, id: 4660\\n"
        ";; flags: rd; QUERY: 1, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 0\\n\\n;; QUESTION SECTION:\\n"
        ";www.example.com.\\tIN\\t A\\n\"}}\n";
    EXPECT_EQ(out, expected_prefix);
}

TEST(PresentJson, GoEscapes) {
    std::string out;
    present::append_json_string(out, std::string("a<b>&\"\\\n\r\t\x01\b\f\x7f", 14));
    EXPECT_EQ(out, "\"a\\u003cb\\u003e\\u0026\\\"\\\\\\n\\r\\t\\u0001\\u0008\\u000c\x7f\"");
    out.clear();
    present::append_json_string(out, "\xff \xe2\x80\xa8 \xc3\xa9");
    EXPECT_EQ(out, "\"\\ufffd \\u2028 \xc3\xa9\"");

    auto dt = make(M::CLIENT_QUERY);
    dt.set_identity("<id>");
    dt.set_extra("x&y");
    const std::string s = json(dt);
    EXPECT_NE(s.find("\"identity\":\"\\u003cid\\u003e\",\"version\":\"sidetap-test\",\"extra\":\"x\\u0026y\","),
              std::string::npos)
        << s;
}

TEST(PresentIp, GoNetIpString) {
    EXPECT_EQ(present::go_ip_string(kV4Client), "192.0.2.10");
    EXPECT_EQ(present::go_ip_string(kV6Client), "2001:db8::1");
    EXPECT_EQ(present::go_ip_string(bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})), "::1");
    EXPECT_EQ(present::go_ip_string(std::string(16, '\0')), "::");
    EXPECT_EQ(present::go_ip_string(bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1})), "192.0.2.1");
    EXPECT_EQ(present::go_ip_string(bytes({0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0})), "1:0:1:0:1:0:1:0");
    EXPECT_EQ(present::go_ip_string(bytes({0x20, 1, 0xd, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1})),
              "2001:db8:0:1::1");
    EXPECT_EQ(present::go_ip_string(bytes({1, 2})), "?0102");
    EXPECT_EQ(present::go_ip_string(""), "<nil>");
}

TEST(PresentDecode, RejectsGarbage) {
    ::dnstap::Dnstap dt;
    const std::uint8_t garbage[] = {0xff, 0xff, 0xff};
    EXPECT_FALSE(present::decode(garbage, dt));
    const std::string good = make(M::CLIENT_QUERY).SerializeAsString();
    EXPECT_TRUE(present::decode({reinterpret_cast<const std::uint8_t*>(good.data()), good.size()}, dt));
    EXPECT_EQ(dt.identity(), "ns1");
    EXPECT_EQ(present::parse_format("yaml"), Format::Yaml);
    EXPECT_EQ(present::parse_format("j"), Format::Json);
    EXPECT_FALSE(present::parse_format("xml"));
}

// --- Filter ------------------------------------------------------------------

TEST(PresentFilter, TypesSuffixesAndPrefixes) {
    present::Filter f;
    std::string error;
    EXPECT_TRUE(f.matches(make(M::CLIENT_QUERY)));
    ASSERT_TRUE(f.add_types("CQ,CLIENT_RESPONSE", error)) << error;
    EXPECT_TRUE(f.matches(make(M::CLIENT_QUERY)));
    EXPECT_TRUE(f.matches(make(M::CLIENT_RESPONSE)));
    EXPECT_FALSE(f.matches(make(M::AUTH_QUERY)));
    EXPECT_FALSE(f.add_types("XQ", error));

    present::Filter names;
    ASSERT_TRUE(names.add_qname_suffix("Example.COM", error)) << error;
    EXPECT_TRUE(names.matches(make(M::CLIENT_QUERY)));
    EXPECT_TRUE(names.matches(make(M::CLIENT_RESPONSE)));  // from the response message (compressed answer too)
    auto other = make(M::CLIENT_QUERY);
    other.mutable_message()->set_query_message(query(wire_name({"www", "badexample", "com"})));
    EXPECT_FALSE(names.matches(other));  // label boundary
    other.mutable_message()->set_query_message(query(wire_name({"EXAMPLE", "com"})));
    EXPECT_TRUE(names.matches(other));  // the name itself, any case
    other.mutable_message()->clear_query_message();
    EXPECT_FALSE(names.matches(other));  // no message, no name
    present::Filter root;
    ASSERT_TRUE(root.add_qname_suffix(".", error));
    EXPECT_TRUE(root.matches(make(M::CLIENT_QUERY)));
    present::Filter escaped;
    ASSERT_TRUE(escaped.add_qname_suffix("a\\.b.x\\032y.", error)) << error;
    auto odd = make(M::CLIENT_QUERY);
    odd.mutable_message()->set_query_message(query(wire_name({"w", "a.b", "x y"})));
    EXPECT_TRUE(escaped.matches(odd));
    EXPECT_FALSE(present::Filter{}.add_qname_suffix("a..b", error));
    EXPECT_FALSE(present::Filter{}.add_qname_suffix(std::string(64, 'x'), error));

    present::Filter clients;
    ASSERT_TRUE(clients.add_client("192.0.2.0/24", error)) << error;
    ASSERT_TRUE(clients.add_client("2001:db8::/32", error)) << error;
    EXPECT_TRUE(clients.matches(make(M::CLIENT_QUERY)));
    auto v6 = make(M::CLIENT_QUERY);
    v6.mutable_message()->set_query_address(kV6Client);
    EXPECT_TRUE(clients.matches(v6));
    v6.mutable_message()->set_query_address(bytes({0x20, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
    EXPECT_FALSE(clients.matches(v6));
    v6.mutable_message()->set_query_address(bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 77}));
    EXPECT_TRUE(clients.matches(v6));  // IPv4-mapped
    auto far = make(M::CLIENT_QUERY);
    far.mutable_message()->set_query_address(bytes({192, 0, 3, 1}));
    EXPECT_FALSE(clients.matches(far));
    far.mutable_message()->clear_query_address();
    EXPECT_FALSE(clients.matches(far));

    present::Filter host;
    ASSERT_TRUE(host.add_client("192.0.2.10", error));
    EXPECT_TRUE(host.matches(make(M::CLIENT_QUERY)));
    present::Filter odd_bits;
    ASSERT_TRUE(odd_bits.add_client("192.0.2.200/25", error));  // host bits ignored
    EXPECT_FALSE(odd_bits.matches(make(M::CLIENT_QUERY)));
    ASSERT_TRUE(odd_bits.add_client("192.0.2.0/28", error));
    EXPECT_TRUE(odd_bits.matches(make(M::CLIENT_QUERY)));
    EXPECT_FALSE(present::Filter{}.add_client("10.0.0.0/33", error));
    EXPECT_FALSE(present::Filter{}.add_client("example.com", error));
    EXPECT_FALSE(present::Filter{}.add_client("10.0.0.0/", error));

    // All criteria must hold.
    present::Filter all = f;
    all.qname_suffixes = names.qname_suffixes;
    all.client_prefixes = clients.client_prefixes;
    EXPECT_TRUE(all.matches(make(M::CLIENT_QUERY)));
    EXPECT_FALSE(all.matches(make(M::AUTH_QUERY)));
    ::dnstap::Dnstap no_message;
    no_message.set_type(::dnstap::Dnstap::MESSAGE);
    EXPECT_FALSE(all.matches(no_message));
}

// --- Comparison with golang-dnstap's `dnstap` CLI ---------------------------

namespace {

std::vector<::dnstap::Dnstap> comparison_corpus() {
    std::vector<::dnstap::Dnstap> out;
    for (int t = 1; t <= 14; ++t) {
        auto dt = make(static_cast<M::Type>(t), static_cast<std::uint32_t>(t * 100000000 + (t % 3) * 10));
        if (t % 2 == 0) dt.mutable_message()->set_socket_family(::dnstap::INET6);
        if (t % 2 == 0) dt.mutable_message()->set_query_address(kV6Client);
        if (t % 4 == 0) dt.mutable_message()->set_response_address(kV6Server);
        out.push_back(dt);
    }
    // Socket protocols (0.4.0 prints 5, 6, 7 for the newer ones).
    for (int p = 1; p <= 7; ++p) {
        auto dt = make(M::CLIENT_QUERY);
        dt.mutable_message()->set_socket_protocol(static_cast<::dnstap::SocketProtocol>(p));
        out.push_back(dt);
    }
    // Missing things.
    {
        ::dnstap::Dnstap dt;
        dt.set_type(::dnstap::Dnstap::MESSAGE);
        dt.mutable_message()->set_type(M::CLIENT_QUERY);
        out.push_back(dt);
        dt.mutable_message()->set_query_time_sec(kSec);
        dt.mutable_message()->set_query_port(0);
        dt.mutable_message()->set_response_port(0);
        dt.mutable_message()->set_query_address("");
        dt.set_identity("");
        out.push_back(dt);
        dt.mutable_message()->clear_query_time_sec();
        dt.mutable_message()->set_query_time_nsec(4321000);
        dt.mutable_message()->set_type(M::AUTH_RESPONSE);
        dt.mutable_message()->set_response_time_nsec(0);
        dt.mutable_message()->set_response_time_sec(kSec + 86400 * 400);
        out.push_back(dt);
    }
    // Strings that need escaping; a zone; an odd question; bad messages.
    {
        auto dt = make(M::RESOLVER_QUERY, 1500000000);
        dt.set_identity(std::string("id \"q\" \\ <&> \x01\t\xff caf\xc3\xa9 \xe2\x80\xa8") + std::string(1, '\0'));
        dt.set_version("v\n2");
        dt.mutable_message()->set_query_zone(wire_name({"Example", "com"}));
        out.push_back(dt);
        dt.mutable_message()->set_query_zone(std::string(1, '\0'));
        dt.mutable_message()->set_query_message(
            query(wire_name({"a.b", "x y", std::string("\x01\xc8", 2), "q\"\\"}), 65, 3));
        out.push_back(dt);
        dt.mutable_message()->set_query_message(query(std::string(1, '\0'), 1234, 77));
        dt.mutable_message()->set_query_address(bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3}));
        dt.mutable_message()->set_response_address(bytes({0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0}));
        out.push_back(dt);
        dt.mutable_message()->set_query_message(query(kWww).substr(0, 12));
        out.push_back(dt);
        dt.mutable_message()->set_query_message(query(kWww) + std::string(2, '\0'));  // trailing bytes
        out.push_back(dt);
        auto truncated = make(M::CLIENT_RESPONSE);
        truncated.mutable_message()->set_response_message(response_a(kWww).substr(0, 40));
        out.push_back(truncated);
    }
    return out;
}

std::string run(const std::string& command) {
    std::string out;
    FILE* p = ::popen(command.c_str(), "r");
    if (p == nullptr) return out;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
    return out;
}

std::vector<std::string> split(const std::string& s, const std::string& sep) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    for (;;) {
        const auto next = s.find(sep, pos);
        if (next == std::string::npos) {
            if (pos < s.size()) out.push_back(s.substr(pos));
            return out;
        }
        out.push_back(s.substr(pos, next - pos + sep.size()));
        pos = next + sep.size();
    }
}

// YAML record without the DNS message text (indented block lines and the
// text after "parse failed:").
std::string yaml_without_messages(const std::string& record) {
    std::string out;
    for (const auto& line : split(record, "\n")) {
        if (line.rfind("    ", 0) == 0) continue;
        const auto pf = line.find("_message: parse failed:");
        out += pf == std::string::npos ? line : line.substr(0, pf) + "_message: parse failed: ...\n";
    }
    return out;
}

// JSON line with the values of query_message/response_message replaced.
std::string json_without_messages(std::string line) {
    for (const char* key : {"\"query_message\":\"", "\"response_message\":\""}) {
        auto pos = line.find(key);
        if (pos == std::string::npos) continue;
        pos += std::strlen(key);
        auto end = pos;
        while (end < line.size() && line[end] != '"') end += line[end] == '\\' ? 2 : 1;
        line.replace(pos, end - pos, "...");
    }
    return line;
}

std::string newer_protocols_as_numbers(std::string s) {
    for (auto [name, number] : {std::pair{"DNSCryptUDP", "5"}, {"DNSCryptTCP", "6"}, {"DOQ", "7"}}) {
        for (std::size_t pos; (pos = s.find(name)) != std::string::npos;) s.replace(pos, std::strlen(name), number);
    }
    return s;
}

class GolangDnstapComparison : public ::testing::Test {
protected:
    void SetUp() override {
        if (::access("/usr/bin/dnstap", X_OK) != 0) GTEST_FAIL() << "golang-dnstap's dnstap CLI not installed (scripts/install-deps.sh)";
        path_ = std::string(::testing::TempDir()) + "/present-cmp-" + std::to_string(::getpid()) + ".fstrm";
        corpus_ = comparison_corpus();
        std::vector<std::uint8_t> data;
        const std::string_view ct[] = {framestream::kDnstapContentType};
        framestream::append_control(data, framestream::ControlType::Start, ct);
        for (const auto& dt : corpus_) {
            const std::string payload = dt.SerializeAsString();
            std::uint8_t len[4];
            framestream::put_be32(len, static_cast<std::uint32_t>(payload.size()));
            data.insert(data.end(), len, len + 4);
            data.insert(data.end(), payload.begin(), payload.end());
        }
        framestream::append_control(data, framestream::ControlType::Stop);
        std::ofstream out(path_, std::ios::binary);
        out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    }
    void TearDown() override {
        if (!path_.empty()) std::remove(path_.c_str());
    }
    std::string ours(Format format) const {
        std::string out;
        Formatter f(format, {.extensions = false});
        for (const auto& dt : corpus_) f.append(dt, out);
        return out;
    }
    std::string path_;
    std::vector<::dnstap::Dnstap> corpus_;
};

}  // namespace

TEST_F(GolangDnstapComparison, QuietTextInTwoTimeZones) {
    for (const char* zone : {"UTC", "Asia/Tokyo"}) {
        ScopedTz tz(zone);
        const std::string theirs = run(std::string("TZ=") + zone + " /usr/bin/dnstap -r " + path_ + " 2>/dev/null");
        const auto want = split(theirs, "\n");
        const auto got = split(newer_protocols_as_numbers(ours(Format::Text)), "\n");
        ASSERT_EQ(got.size(), corpus_.size());
        ASSERT_EQ(want.size(), got.size()) << theirs;
        for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i]) << zone << " record " << i;
    }
}

TEST_F(GolangDnstapComparison, YamlFieldByField) {
    const std::string theirs = run("TZ=Asia/Tokyo /usr/bin/dnstap -r " + path_ + " -y 2>/dev/null");
    const auto want = split(theirs, "---\n");
    const auto got = split(newer_protocols_as_numbers(ours(Format::Yaml)), "---\n");
    ASSERT_EQ(got.size(), corpus_.size());
    ASSERT_EQ(want.size(), got.size()) << theirs;
    for (std::size_t i = 0; i < got.size(); ++i)
        EXPECT_EQ(yaml_without_messages(got[i]), yaml_without_messages(want[i])) << "record " << i;
}

TEST_F(GolangDnstapComparison, JsonFieldByField) {
    const std::string theirs = run("TZ=Asia/Tokyo /usr/bin/dnstap -r " + path_ + " -j 2>/dev/null");
    const auto want = split(theirs, "\n");
    const auto got = split(newer_protocols_as_numbers(ours(Format::Json)), "\n");
    ASSERT_EQ(got.size(), corpus_.size());
    ASSERT_EQ(want.size(), got.size()) << theirs;
    for (std::size_t i = 0; i < got.size(); ++i)
        EXPECT_EQ(json_without_messages(got[i]), json_without_messages(want[i])) << "record " << i;
}
