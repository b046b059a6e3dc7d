// Which dnstap messages `sidetap read` / `sidetap listen` show or forward.
//
// Usage:
//
//     sidetap::present::Filter filter;
//     std::string error;
//     if (!filter.add_types("CQ,CLIENT_RESPONSE", error) ||    // --types (dnstap::parse_type_list)
//         !filter.add_qname_suffix("example.com", error) ||     // repeatable
//         !filter.add_client("10.0.0.0/8", error) ||            // repeatable; also "2001:db8::/32", "192.0.2.1"
//         ...)
//         throw util::FatalError(error, util::kExitUsage);
//     ...
//     if (filter.matches(dt)) show(dt);
//
// Semantics: every configured criterion must hold (AND); within one
// criterion any entry may match (OR). An empty Filter matches everything.
//  - types: bit (1 << Message.Type), as parse_type_list returns; 0 = all.
//  - qname suffix: the question name of the DNS message (query_message for
//    *_QUERY, response_message for *_RESPONSE, else whichever is present)
//    equals the suffix or ends with it at a label boundary, compared in
//    wire form, ASCII case-insensitively: "example.com" matches
//    "www.Example.COM." but not "badexample.com.". "." matches any message
//    that has a question. A message without a parseable question never
//    matches.
//  - client: query_address (the initiator, per the dnstap schema; for
//    RESOLVER_*/FORWARDER_* that is the resolver itself) lies in one of the
//    prefixes. An address without /len is a host (/32, /128). IPv4 prefixes
//    also match IPv4-mapped IPv6 addresses (::ffff:a.b.c.d). Host bits set
//    beyond the length are ignored ("10.1.2.3/8" = 10.0.0.0/8). A message
//    without query_address never matches.
//  - A Dnstap without `message` matches only an empty filter.
// matches() does not allocate.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dnstap.pb.h"

namespace sidetap::present {

struct Prefix {
    std::array<std::uint8_t, 16> bytes{};  // IPv4 in bytes[0..3]
    std::uint8_t length = 0;               // bits
    bool v6 = false;

    // `address` as stored in dnstap: 4 or 16 raw bytes.
    [[nodiscard]] bool contains(std::string_view address) const;
};

// "10.0.0.0/8", "2001:db8::/32", "192.0.2.1", "::1".
std::optional<Prefix> parse_prefix(std::string_view text, std::string& error);

// "example.com", "example.com.", "." (escapes \. and \DDD allowed) to a
// lower-case wire-format name.
std::optional<std::string> parse_name(std::string_view text, std::string& error);

struct Filter {
    std::uint32_t types = 0;
    std::vector<std::string> qname_suffixes;  // wire format, lower case
    std::vector<Prefix> client_prefixes;

    bool add_types(std::string_view list, std::string& error);
    bool add_qname_suffix(std::string_view text, std::string& error);
    bool add_client(std::string_view text, std::string& error);

    [[nodiscard]] bool empty() const { return types == 0 && qname_suffixes.empty() && client_prefixes.empty(); }
    [[nodiscard]] bool matches(const ::dnstap::Dnstap& dt) const;
};

}  // namespace sidetap::present
