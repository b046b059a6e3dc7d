#include "output/destination.h"

#include "util/error.h"

#include <algorithm>
#include <cctype>
#include <string_view>

#include <arpa/inet.h>
#include <netinet/in.h>

namespace sidetap::output {
namespace {

class Parser {
public:
    explicit Parser(const std::string& text) : text_(text) {}

    [[noreturn]] void fail(const std::string& reason) const {
        throw util::FatalError("invalid destination '" + text_ + "': " + reason, util::kExitUsage);
    }

    std::string decode(std::string_view in, const char* what) const {
        std::string out;
        out.reserve(in.size());
        for (std::size_t i = 0; i < in.size(); ++i) {
            if (in[i] != '%') {
                out += in[i];
                continue;
            }
            if (i + 2 >= in.size() || !std::isxdigit(static_cast<unsigned char>(in[i + 1])) ||
                !std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
                fail(std::string("bad percent-encoding in ") + what + " (use %XX)");
            }
            out += static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        }
        if (out.find('\0') != std::string::npos) fail(std::string("NUL byte in ") + what);
        return out;
    }

    std::map<std::string, std::string> parse_params(std::string_view query) const {
        std::map<std::string, std::string> params;
        if (query.empty()) fail("expected key=value after '?'");
        std::size_t start = 0;
        for (;;) {
            const std::size_t end = std::min(query.find('&', start), query.size());
            const std::string_view item = query.substr(start, end - start);
            const std::size_t eq = item.find('=');
            if (item.empty()) fail("empty parameter (stray '&')");
            if (eq == std::string_view::npos) fail("parameter '" + std::string(item) + "' is not key=value");
            const std::string key = decode(item.substr(0, eq), "a parameter name");
            if (key.empty()) fail("parameter without a name");
            const bool key_ok = std::all_of(key.begin(), key.end(), [](char c) {
                return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
            });
            if (!key_ok) fail("bad parameter name '" + key + "'");
            std::string value = decode(item.substr(eq + 1), "a parameter value");
            if (!params.emplace(key, std::move(value)).second) fail("parameter '" + key + "' given twice");
            if (end == query.size()) break;
            start = end + 1;
        }
        return params;
    }

    std::uint16_t parse_port(std::string_view digits) const {
        if (digits.empty()) fail("missing port (expected host:port)");
        if (digits.size() > 5 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            fail("bad port '" + std::string(digits) + "' (1-65535)");
        }
        const unsigned long port = std::stoul(std::string(digits));
        if (port == 0 || port > 65535) fail("bad port '" + std::string(digits) + "' (1-65535)");
        return static_cast<std::uint16_t>(port);
    }

    // "//host:port", "//[v6]:port" (after "tcp:"/"tls:").
    void parse_authority(std::string_view rest, const std::string& scheme, Destination& out) const {
        const std::string form = scheme + "://host:port";
        if (rest.substr(0, 2) != "//") fail("expected " + form);
        std::string_view authority = rest.substr(2);
        if (const std::size_t slash = authority.find('/'); slash != std::string_view::npos) {
            fail("unexpected path '" + std::string(authority.substr(slash)) + "' (expected " + form + ")");
        }
        if (authority.find('@') != std::string_view::npos) fail("user information is not supported");
        if (authority.empty()) fail("missing host (expected " + form + ")");
        if (authority.front() == '[') {
            const std::size_t close = authority.find(']');
            if (close == std::string_view::npos) fail("missing ']' after the IPv6 address");
            std::string host = decode(authority.substr(1, close - 1), "the IPv6 address");
            const std::string address = host.substr(0, host.find('%'));
            in6_addr buf{};
            if (::inet_pton(AF_INET6, address.c_str(), &buf) != 1) fail("bad IPv6 address '" + host + "'");
            if (host.find('%') != std::string::npos && host.size() == address.size() + 1) fail("empty IPv6 zone");
            const std::string_view after = authority.substr(close + 1);
            if (after.empty()) fail("missing port (expected " + scheme + "://[address]:port)");
            if (after.front() != ':') fail("expected ':' and a port after ']'");
            out.host = std::move(host);
            out.port = parse_port(after.substr(1));
            return;
        }
        const std::size_t colon = authority.rfind(':');
        if (colon == std::string_view::npos) fail("missing port (expected " + form + ")");
        const std::string_view host = authority.substr(0, colon);
        if (host.find(':') != std::string_view::npos) {
            fail("IPv6 addresses need brackets (" + scheme + "://[::1]:6000)");
        }
        if (host.empty()) fail("missing host (expected " + form + ")");
        const bool host_ok = std::all_of(host.begin(), host.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
        });
        if (!host_ok) fail("bad host name '" + std::string(host) + "'");
        out.host = std::string(host);
        out.port = parse_port(authority.substr(colon + 1));
    }

    // "///abs", "//rel" (CoreDNS strips "unix://"), or "/abs".
    std::string parse_path(std::string_view rest, const std::string& scheme) const {
        std::string_view raw;
        if (rest.substr(0, 2) == "//") {
            raw = rest.substr(2);
        } else if (!rest.empty() && rest.front() == '/') {
            raw = rest;
        } else {
            fail("expected " + scheme + ":///absolute/path or " + scheme + ":/absolute/path");
        }
        std::string path = decode(raw, "the path");
        if (path.empty()) fail("empty path");
        return path;
    }

private:
    const std::string& text_;
};

// "tcp", "unix", ... when `base` starts with "scheme:"; empty otherwise.
std::string scheme_of(std::string_view base) {
    if (base.empty() || !std::isalpha(static_cast<unsigned char>(base.front()))) return {};
    for (std::size_t i = 1; i < base.size(); ++i) {
        const char c = base[i];
        if (c == ':') {
            std::string scheme(base.substr(0, i));
            std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                           [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
            return scheme;
        }
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') return {};
    }
    return {};
}

std::string bracket_host(const std::string& host) {
    return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

}  // namespace

Destination parse_destination(const std::string& text) {
    const Parser parser(text);
    if (text.empty()) parser.fail("empty destination");

    Destination out;
    const std::size_t question = text.find('?');
    const std::string_view base = std::string_view(text).substr(0, question);
    if (question != std::string::npos) out.params = parser.parse_params(std::string_view(text).substr(question + 1));

    const std::string scheme = scheme_of(base);
    const std::string_view rest = scheme.empty() ? std::string_view() : base.substr(scheme.size() + 1);
    if (scheme == "file") {
        out.kind = Destination::File;
        out.path = parser.parse_path(rest, scheme);
    } else if (scheme == "unix") {
        out.kind = Destination::Unix;
        out.path = parser.parse_path(rest, scheme);
    } else if (scheme == "tcp" || scheme == "tls") {
        out.kind = scheme == "tcp" ? Destination::Tcp : Destination::Tls;
        parser.parse_authority(rest, scheme, out);
    } else if (!scheme.empty() && rest.substr(0, 2) == "//") {
        parser.fail("unknown scheme '" + scheme + "://' (expected a path, -, file://, unix://, tcp:// or tls://)");
    } else if (base == "-") {
        out.kind = Destination::Stdout;
    } else {
        if (base.empty()) parser.fail("empty path");
        out.kind = Destination::File;
        out.path = std::string(base);
    }
    return out;
}

std::string to_string(const Destination& destination) {
    switch (destination.kind) {
    case Destination::Stdout: return "-";
    case Destination::File: return destination.path;
    case Destination::Unix: return "unix://" + destination.path;
    case Destination::Tcp: return "tcp://" + bracket_host(destination.host) + ":" + std::to_string(destination.port);
    case Destination::Tls: return "tls://" + bracket_host(destination.host) + ":" + std::to_string(destination.port);
    }
    return destination.path;
}

}  // namespace sidetap::output
