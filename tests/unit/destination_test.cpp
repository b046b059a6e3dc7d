#include "output/destination.h"
#include "util/error.h"

#include <gtest/gtest.h>

#include <string>

using namespace sidetap;
using output::Destination;
using output::parse_destination;

namespace {

// The message of the usage error parse_destination() throws ("" if none).
std::string rejection(const std::string& text) {
    try {
        parse_destination(text);
    } catch (const util::FatalError& e) {
        EXPECT_EQ(e.exit_code(), util::kExitUsage) << text;
        return e.what();
    }
    return "";
}

#define EXPECT_REJECTED(text, fragment)                                                   \
    do {                                                                                  \
        const std::string message_ = rejection(text);                                     \
        EXPECT_NE(message_, "") << "accepted: " << (text);                                \
        EXPECT_NE(message_.find(fragment), std::string::npos) << (text) << " -> " << message_; \
        EXPECT_NE(message_.find(std::string("'") + (text) + "'"), std::string::npos) << message_; \
    } while (0)

TEST(Destination, PlainPathsAreFiles) {
    for (const std::string path : {"out.dnstap", "/var/log/dnstap/out.dnstap", "./rel/x", "out:1.dnstap", "C:x"}) {
        const Destination d = parse_destination(path);
        EXPECT_EQ(d.kind, Destination::File) << path;
        EXPECT_EQ(d.path, path);
        EXPECT_TRUE(d.params.empty());
        EXPECT_EQ(output::to_string(d), path);
    }
}

TEST(Destination, PlainPathsAreNotPercentDecoded) {
    EXPECT_EQ(parse_destination("out%20x.dnstap").path, "out%20x.dnstap");
}

TEST(Destination, DashIsStdout) {
    const Destination d = parse_destination("-");
    EXPECT_EQ(d.kind, Destination::Stdout);
    EXPECT_EQ(output::to_string(d), "-");
    const Destination with = parse_destination("-?types=cq");
    EXPECT_EQ(with.kind, Destination::Stdout);
    EXPECT_EQ(with.params.at("types"), "cq");
}

TEST(Destination, FileUris) {
    EXPECT_EQ(parse_destination("file:///var/out.dnstap").path, "/var/out.dnstap");
    EXPECT_EQ(parse_destination("file:///var/out.dnstap").kind, Destination::File);
    EXPECT_EQ(parse_destination("file:/var/out.dnstap").path, "/var/out.dnstap");
    EXPECT_EQ(parse_destination("FILE:///a%20b%3Fc").path, "/a b?c");
}

TEST(Destination, UnixUris) {
    Destination d = parse_destination("unix:///run/dnstap.sock");
    EXPECT_EQ(d.kind, Destination::Unix);
    EXPECT_EQ(d.path, "/run/dnstap.sock");
    EXPECT_EQ(output::to_string(d), "unix:///run/dnstap.sock");
    d = parse_destination("unix:/run/dnstap.sock");
    EXPECT_EQ(d.kind, Destination::Unix);
    EXPECT_EQ(d.path, "/run/dnstap.sock");
    // CoreDNS strips "unix://": what follows is the path, relative here.
    EXPECT_EQ(parse_destination("unix://dnstap.sock").path, "dnstap.sock");
}

TEST(Destination, TcpWithIpv4NameAndIpv6) {
    Destination d = parse_destination("tcp://127.0.0.1:6000");
    EXPECT_EQ(d.kind, Destination::Tcp);
    EXPECT_EQ(d.host, "127.0.0.1");
    EXPECT_EQ(d.port, 6000);
    EXPECT_TRUE(d.path.empty());
    d = parse_destination("tcp://collector.example.org:65535");
    EXPECT_EQ(d.host, "collector.example.org");
    EXPECT_EQ(d.port, 65535);
    d = parse_destination("tcp://[::1]:6000");
    EXPECT_EQ(d.host, "::1");
    EXPECT_EQ(d.port, 6000);
    EXPECT_EQ(output::to_string(d), "tcp://[::1]:6000");
    d = parse_destination("TCP://[2001:db8::53]:1");
    EXPECT_EQ(d.host, "2001:db8::53");
    EXPECT_EQ(d.port, 1);
    d = parse_destination("tcp://[fe80::1%25eth0]:6000");
    EXPECT_EQ(d.host, "fe80::1%eth0");
}

TEST(Destination, TlsUris) {
    Destination d = parse_destination("tls://collector:6000");
    EXPECT_EQ(d.kind, Destination::Tls);
    EXPECT_EQ(d.host, "collector");
    EXPECT_EQ(d.port, 6000);
    EXPECT_EQ(output::to_string(d), "tls://collector:6000");
    d = parse_destination("tls://[::1]:853");
    EXPECT_EQ(d.kind, Destination::Tls);
    EXPECT_EQ(d.host, "::1");
    EXPECT_EQ(d.port, 853);
}

TEST(Destination, ParametersAreSplitAndPercentDecoded) {
    Destination d = parse_destination("tcp://127.0.0.1:6000?types=cq,cr&wire=on&queue=20000");
    EXPECT_EQ(d.params.size(), 3u);
    EXPECT_EQ(d.params.at("types"), "cq,cr");
    EXPECT_EQ(d.params.at("wire"), "on");
    EXPECT_EQ(d.params.at("queue"), "20000");
    d = parse_destination("tls://c:1?ca=%2Fetc%2Fca%20file.pem&empty=&plus=a+b");
    EXPECT_EQ(d.params.at("ca"), "/etc/ca file.pem");
    EXPECT_EQ(d.params.at("empty"), "");
    EXPECT_EQ(d.params.at("plus"), "a+b");
    d = parse_destination("out.dnstap?rotate=1h");
    EXPECT_EQ(d.kind, Destination::File);
    EXPECT_EQ(d.path, "out.dnstap");
    EXPECT_EQ(d.params.at("rotate"), "1h");
    d = parse_destination("unix:///run/x.sock?a=1&b=2");
    EXPECT_EQ(d.path, "/run/x.sock");
    EXPECT_EQ(d.params.size(), 2u);
    // A value may contain '=' and '?'.
    EXPECT_EQ(parse_destination("-?x=a=b?c").params.at("x"), "a=b?c");
}

TEST(Destination, RejectsEmptyInputsAndPaths) {
    EXPECT_REJECTED("", "empty destination");
    EXPECT_REJECTED("?a=b", "empty path");
    EXPECT_REJECTED("file://", "empty path");
    EXPECT_REJECTED("unix://", "empty path");
    EXPECT_REJECTED("unix:", "expected unix:///");
    EXPECT_REJECTED("unix:run/x.sock", "expected unix:///");
    EXPECT_REJECTED("unix://%00x", "NUL");
}

TEST(Destination, RejectsUnknownSchemes) {
    EXPECT_REJECTED("udp://127.0.0.1:6000", "unknown scheme 'udp://'");
    EXPECT_REJECTED("http://collector/", "unknown scheme");
    EXPECT_REJECTED("dnstap+tls://x:1", "unknown scheme");
}

TEST(Destination, RejectsBadHostsAndPorts) {
    EXPECT_REJECTED("tcp://127.0.0.1", "missing port");
    EXPECT_REJECTED("tcp://127.0.0.1:", "missing port");
    EXPECT_REJECTED("tls://collector", "missing port");
    EXPECT_REJECTED("tcp://[::1]", "missing port");
    EXPECT_REJECTED("tcp://[::1]6000", "expected ':'");
    EXPECT_REJECTED("tcp://127.0.0.1:0", "bad port");
    EXPECT_REJECTED("tcp://127.0.0.1:65536", "bad port");
    EXPECT_REJECTED("tcp://127.0.0.1:99999999999999999999", "bad port");
    EXPECT_REJECTED("tcp://127.0.0.1:-1", "bad port");
    EXPECT_REJECTED("tcp://127.0.0.1:60a", "bad port");
    EXPECT_REJECTED("tcp://:6000", "missing host");
    EXPECT_REJECTED("tcp://", "missing host");
    EXPECT_REJECTED("tcp://::1:6000", "IPv6 addresses need brackets");
    EXPECT_REJECTED("tcp://[::1:6000", "missing ']'");
    EXPECT_REJECTED("tcp://[not-v6]:6000", "bad IPv6 address");
    EXPECT_REJECTED("tcp://[127.0.0.1]:6000", "bad IPv6 address");
    EXPECT_REJECTED("tcp://host:6000/path", "unexpected path");
    EXPECT_REJECTED("tcp://user@host:6000", "user information");
    EXPECT_REJECTED("tcp://bad host:6000", "bad host name");
    EXPECT_REJECTED("tcp:host:6000", "expected tcp://host:port");
    EXPECT_REJECTED("tls:/host:6000", "expected tls://host:port");
}

TEST(Destination, RejectsMalformedParameters) {
    EXPECT_REJECTED("out.dnstap?", "expected key=value");
    EXPECT_REJECTED("out.dnstap?types", "not key=value");
    EXPECT_REJECTED("out.dnstap?=cq", "without a name");
    EXPECT_REJECTED("out.dnstap?a=1&&b=2", "empty parameter");
    EXPECT_REJECTED("out.dnstap?a=1&", "empty parameter");
    EXPECT_REJECTED("out.dnstap?a=1&a=2", "given twice");
    EXPECT_REJECTED("out.dnstap?a=%zz", "percent-encoding");
    EXPECT_REJECTED("out.dnstap?a=%4", "percent-encoding");
    EXPECT_REJECTED("out.dnstap?b%20c=1", "bad parameter name");
}

}  // namespace
