// Dnstap messages as text, YAML or JSON, in golang-dnstap's layouts (the
// `dnstap -q`, `-y`, `-j` output of golang-dnstap 0.4.0), so that scripts
// written for that tool keep working.
//
// Usage:
//
//     sidetap::present::Formatter formatter(sidetap::present::Format::Yaml);
//     ::dnstap::Dnstap dt;                      // reuse across frames
//     std::string out;                          // reuse across frames
//     std::uint64_t malformed = 0;
//     while (reader.next(frame) == ReadStatus::Frame) {
//         if (!sidetap::present::decode(frame, dt)) { ++malformed; continue; }  // count, skip
//         if (!filter.matches(dt)) continue;
//         out.clear();
//         formatter.append(dt, out);            // whole record, ends with '\n'
//         fwrite(out.data(), 1, out.size(), stdout);
//     }
//
// Layouts (see reference/dnstap-protocol.md §3):
//  - Text (golang-dnstap "quiet text"), one line:
//      HH:MM:SS.uuuuuu TT ADDR PROTO Nb "QNAME" CLASS TYPE
//    time in the process's local time zone (TZ), µs truncated; query time
//    for *_QUERY, response time for *_RESPONSE; "??:??:??" / ".??????" for a
//    missing seconds / nanoseconds field; TT = CQ CR AQ AR RQ RR FQ FR TQ TR
//    UQ UR; STUB_* prints "[unhandled Message.Type]"; ADDR = query_address
//    for CLIENT_* and AUTH_*, else response_address, "MISSING_ADDRESS" if
//    absent; PROTO empty when absent; "X " instead of the question when the
//    message is missing or unparseable. Nothing beyond golang-dnstap.
//  - Yaml: golang-dnstap's keys and order; times `!!timestamp` in UTC with
//    trailing fractional zeros trimmed; strings quoted like Go's
//    strconv.Quote; each record ends with "---".
//  - Json: one object per line; times RFC3339Nano UTC with "Z"; Go's
//    encoding/json escaping (<, >, & as \u003c...); a missing
//    socket_family/socket_protocol is "<nil>"; ports 0 omitted; empty
//    identity/version/zone/messages omitted.
//  - DNS messages (YAML/JSON): dig-like text in miekg/dns's layout, decoded
//    with ldns (see dns_text.h). The exact rdata text may differ from
//    golang-dnstap's.
//  - Additions (FormatterOptions::extensions, on by default), placed where
//    golang-dnstap's readers do not look: YAML/JSON `extra` right after
//    `version`; `http_protocol` and `policy` (type, rule, action, match,
//    value) as the last keys of `message`. The socket protocols DOT, DOH,
//    DNSCryptUDP, DNSCryptTCP and DOQ are shown by name in every format
//    (golang-dnstap 0.4.0 prints 5, 6, 7 for the last three).
//  - A Dnstap without `message` (golang-dnstap panics on it): text prints
//    "[missing Message]", YAML/JSON show a message with type "<nil>".
//
// decode(): strict protobuf parse (required fields included). false means
// a malformed frame; the caller counts and skips it (golang-dnstap stops).
// Unknown enum values (e.g. a future socket protocol) are dropped by the
// protobuf runtime and shown as absent.
//
// Formatter is const after construction: one instance may format from
// several threads. The quiet text reads the time zone with localtime_r.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "dnstap.pb.h"

namespace sidetap::present {

enum class Format { Text, Yaml, Json };

// "text", "yaml", "json" (also golang-dnstap's letters "q", "y", "j").
std::optional<Format> parse_format(std::string_view name);

bool decode(std::span<const std::uint8_t> frame, ::dnstap::Dnstap& out);

struct FormatterOptions {
    bool extensions = true;  // extra, policy, http_protocol in YAML/JSON
};

class Formatter {
public:
    explicit Formatter(Format format, FormatterOptions options = {}) : format_(format), options_(options) {}

    // Appends one complete record (ending with '\n') to `out`.
    void append(const ::dnstap::Dnstap& dt, std::string& out) const;
    [[nodiscard]] std::string format(const ::dnstap::Dnstap& dt) const {
        std::string out;
        append(dt, out);
        return out;
    }
    [[nodiscard]] Format format() const { return format_; }

private:
    void append_text(const ::dnstap::Dnstap& dt, std::string& out) const;
    void append_yaml(const ::dnstap::Dnstap& dt, std::string& out) const;
    void append_json(const ::dnstap::Dnstap& dt, std::string& out) const;

    Format format_;
    FormatterOptions options_;
};

// Helpers with Go's exact behaviour, exposed for tests.
std::string go_ip_string(std::string_view bytes);           // net.IP.String()
std::string go_quote(std::string_view text);                // strconv.Quote
void append_json_string(std::string& out, std::string_view text);  // encoding/json, with quotes
// time.Unix(sec, nsec).UTC().Format(layout), layout "2006-01-02 15:04:05.999999999"
// (separator ' ') or RFC3339Nano (separator 'T', suffix "Z").
std::string go_utc_time(std::uint64_t sec, std::uint32_t nsec, char separator);

}  // namespace sidetap::present
