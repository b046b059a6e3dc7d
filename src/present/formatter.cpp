#include "present/formatter.h"

#include <array>
#include <cstdio>
#include <ctime>
#include <tuple>

#include "present/dns_text.h"

namespace sidetap::present {

namespace {

constexpr char kLowerHex[] = "0123456789abcdef";

// utf8.DecodeRune: (rune, width); invalid sequences give (-1, 1).
std::pair<std::int32_t, std::size_t> decode_rune(std::string_view s, std::size_t i) {
    const auto b = [&](std::size_t k) { return static_cast<std::uint8_t>(s[i + k]); };
    const std::uint8_t b0 = b(0);
    if (b0 < 0x80) return {b0, 1};
    const std::size_t left = s.size() - i;
    auto cont = [&](std::size_t k, std::uint8_t lo = 0x80, std::uint8_t hi = 0xBF) {
        return k < left && b(k) >= lo && b(k) <= hi;
    };
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        if (cont(1)) return {((b0 & 0x1F) << 6) | (b(1) & 0x3F), 2};
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        const std::uint8_t lo = b0 == 0xE0 ? 0xA0 : 0x80;
        const std::uint8_t hi = b0 == 0xED ? 0x9F : 0xBF;
        if (cont(1, lo, hi) && cont(2)) return {((b0 & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F), 3};
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        const std::uint8_t lo = b0 == 0xF0 ? 0x90 : 0x80;
        const std::uint8_t hi = b0 == 0xF4 ? 0x8F : 0xBF;
        if (cont(1, lo, hi) && cont(2) && cont(3))
            return {((b0 & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F), 4};
    }
    return {-1, 1};
}

// unicode.IsPrint for non-ASCII runes, approximated: spaces other than
// U+0020, format and control characters, private use and noncharacters are
// not printable.
bool go_is_print(std::int32_t r) {
    if (r < 0x20 || r == 0x7F) return false;
    if (r < 0x7F) return true;
    if (r <= 0xA0 || r == 0xAD || r == 0x1680 || r == 0x3000 || r == 0xFEFF) return false;
    if (r >= 0x2000 && r <= 0x200F) return false;
    if (r >= 0x2028 && r <= 0x202F) return false;
    if (r >= 0x205F && r <= 0x206F) return false;
    if (r >= 0xD800 && r <= 0xF8FF) return false;  // surrogates, private use
    if (r >= 0xFFF9 && r <= 0xFFFB) return false;
    if ((r & 0xFFFE) == 0xFFFE) return false;  // noncharacters
    if (r >= 0xF0000) return false;             // private use planes
    return true;
}

std::string message_type_name(int type) {
    if (::dnstap::Message_Type_IsValid(type)) return ::dnstap::Message_Type_Name(static_cast<::dnstap::Message_Type>(type));
    return std::to_string(type);
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    std::int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return q;
}

struct Civil {
    std::int64_t year;
    unsigned month, day, hour, minute, second;
};

// Howard Hinnant's civil_from_days.
Civil civil_from_seconds(std::int64_t s) {
    const std::int64_t days = floor_div(s, 86400);
    const std::int64_t rem = s - days * 86400;
    const std::int64_t z = days + 719468;
    const std::int64_t era = floor_div(z, 146097);
    const std::int64_t doe = z - era * 146097;
    const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const std::int64_t mp = (5 * doy + 2) / 153;
    const auto d = static_cast<unsigned>(doy - (153 * mp + 2) / 5 + 1);
    const auto m = static_cast<unsigned>(mp < 10 ? mp + 3 : mp - 9);
    const std::int64_t y = yoe + era * 400 + (m <= 2);
    return {y, m, d, static_cast<unsigned>(rem / 3600), static_cast<unsigned>(rem % 3600 / 60),
            static_cast<unsigned>(rem % 60)};
}

void append_text_time(std::string& out, bool has_sec, std::uint64_t sec, bool has_nsec, std::uint32_t nsec) {
    char buf[32];
    if (has_sec) {
        const auto t = static_cast<std::time_t>(static_cast<std::int64_t>(sec));
        std::tm tm{};
        if (localtime_r(&t, &tm) != nullptr) {
            std::snprintf(buf, sizeof buf, "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
        } else {
            const Civil c = civil_from_seconds(static_cast<std::int64_t>(sec));
            std::snprintf(buf, sizeof buf, "%02u:%02u:%02u", c.hour, c.minute, c.second);
        }
        out += buf;
    } else {
        out += "??:??:??";
    }
    if (has_nsec) {
        std::snprintf(buf, sizeof buf, ".%06u", nsec / 1000);
        out += buf;
    } else {
        out += ".??????";
    }
}

// A wire-format name for display ("example.com."), or nullopt.
std::optional<std::string> wire_name(const std::string& bytes) {
    std::string name, error;
    std::size_t off = 0;
    const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
    if (!unpack_name({data, bytes.size()}, off, name, error) || off != bytes.size()) return std::nullopt;
    return name;
}

// Policy.rule is a wire-format name (RPZ owner); value depends on match.
std::string policy_rule_text(const ::dnstap::Policy& p) {
    if (auto name = wire_name(p.rule())) return *name;
    return p.rule();
}
std::string policy_value_text(const ::dnstap::Policy& p) {
    const std::string& v = p.value();
    if (p.has_match()) {
        switch (p.match()) {
        case ::dnstap::Policy::CLIENT_IP:
        case ::dnstap::Policy::RESPONSE_IP:
        case ::dnstap::Policy::NS_IP:
            if (v.size() == 4 || v.size() == 16) return go_ip_string(v);
            break;
        case ::dnstap::Policy::QNAME:
        case ::dnstap::Policy::NS_NAME:
            if (auto name = wire_name(v)) return *name;
            break;
        }
    }
    return v;
}

std::span<const std::uint8_t> bytes_of(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

void append_indented_message(std::string& out, const char* key, const std::string& wire) {
    std::string text, error;
    if (!message_text(bytes_of(wire), text, error)) {
        out += "  # ";
        out += key;
        out += ": parse failed: " + error + "\n";
        return;
    }
    // strings.TrimSpace, then indent every line by four spaces.
    std::size_t b = 0, e = text.size();
    while (b < e && (text[b] == ' ' || text[b] == '\n' || text[b] == '\t' || text[b] == '\r')) ++b;
    while (e > b && (text[e - 1] == ' ' || text[e - 1] == '\n' || text[e - 1] == '\t' || text[e - 1] == '\r')) --e;
    out += "  ";
    out += key;
    out += ": |\n    ";
    for (std::size_t i = b; i < e; ++i) {
        out += text[i];
        if (text[i] == '\n') out += "    ";
    }
    out += '\n';
}

void append_json_key(std::string& out, std::string_view key) {
    out += ",\"";
    out += key;
    out += "\":";
}

}  // namespace

std::optional<Format> parse_format(std::string_view name) {
    if (name == "text" || name == "q" || name == "quiet") return Format::Text;
    if (name == "yaml" || name == "y") return Format::Yaml;
    if (name == "json" || name == "j") return Format::Json;
    return std::nullopt;
}

bool decode(std::span<const std::uint8_t> frame, ::dnstap::Dnstap& out) {
    if (frame.size() > static_cast<std::size_t>(INT32_MAX)) return false;
    // ParseFromArray would log every missing required field to stderr.
    return out.ParsePartialFromArray(frame.data(), static_cast<int>(frame.size())) && out.IsInitialized();
}

std::string go_ip_string(std::string_view ip) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(ip.data());
    char buf[64];
    if (ip.empty()) return "<nil>";
    if (ip.size() == 4) {
        std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", p[0], p[1], p[2], p[3]);
        return buf;
    }
    if (ip.size() != 16) {
        std::string out = "?";
        for (const char ch : ip) {
            const auto b = static_cast<std::uint8_t>(ch);
            out += kLowerHex[b >> 4];
            out += kLowerHex[b & 15];
        }
        return out;
    }
    bool mapped = p[10] == 0xFF && p[11] == 0xFF;
    for (int i = 0; i < 10 && mapped; ++i) mapped = p[i] == 0;
    if (mapped) {
        std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", p[12], p[13], p[14], p[15]);
        return buf;
    }
    // Longest run of zero groups (first one on a tie), only if >= 2 groups.
    int e0 = -1, e1 = -1;
    for (int i = 0; i < 16; i += 2) {
        int j = i;
        while (j < 16 && p[j] == 0 && p[j + 1] == 0) j += 2;
        if (j > i && j - i > e1 - e0) {
            e0 = i;
            e1 = j;
            i = j;
        }
    }
    if (e1 - e0 <= 2) e0 = e1 = -1;
    std::string out;
    for (int i = 0; i < 16; i += 2) {
        if (i == e0) {
            out += "::";
            i = e1;
            if (i >= 16) break;
        } else if (i > 0) {
            out += ':';
        }
        std::snprintf(buf, sizeof buf, "%x", (unsigned{p[i]} << 8) | p[i + 1]);
        out += buf;
    }
    return out;
}

std::string go_quote(std::string_view s) {
    std::string out = "\"";
    char buf[16];
    for (std::size_t i = 0; i < s.size();) {
        auto [r, width] = decode_rune(s, i);
        if (r < 0) {
            out += "\\x";
            out += kLowerHex[static_cast<std::uint8_t>(s[i]) >> 4];
            out += kLowerHex[static_cast<std::uint8_t>(s[i]) & 15];
            i += 1;
            continue;
        }
        if (r == '"' || r == '\\') {
            out += '\\';
            out += static_cast<char>(r);
        } else if (go_is_print(r)) {
            out.append(s.substr(i, width));
        } else {
            switch (r) {
            case '\a': out += "\\a"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\v': out += "\\v"; break;
            default:
                if (r < ' ' || r == 0x7F) {
                    std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(r));
                } else if (r < 0x10000) {
                    std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(r));
                } else {
                    std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(r));
                }
                out += buf;
            }
        }
        i += width;
    }
    out += '"';
    return out;
}

void append_json_string(std::string& out, std::string_view s) {
    out += '"';
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<std::uint8_t>(s[i]);
        if (c < 0x80) {
            if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
                out += static_cast<char>(c);
            } else {
                switch (c) {
                case '"': out += "\\\""; break;
                case '\\': out += "\\\\"; break;
                case '\n': out += "\\n"; break;
                case '\r': out += "\\r"; break;
                case '\t': out += "\\t"; break;
                default:  // Go 1.19: \u00XX for other controls and <, >, &
                    out += "\\u00";
                    out += kLowerHex[c >> 4];
                    out += kLowerHex[c & 15];
                }
            }
            ++i;
            continue;
        }
        auto [r, width] = decode_rune(s, i);
        if (r < 0) {
            out += "\\ufffd";
        } else if (r == 0x2028 || r == 0x2029) {
            out += r == 0x2028 ? "\\u2028" : "\\u2029";
        } else {
            out.append(s.substr(i, width));
        }
        i += width;
    }
    out += '"';
}

std::string go_utc_time(std::uint64_t sec, std::uint32_t nsec, char separator) {
    const std::int64_t s = static_cast<std::int64_t>(sec) + nsec / 1000000000u;
    const std::uint32_t ns = nsec % 1000000000u;
    const Civil c = civil_from_seconds(s);
    char buf[80];
    if (c.year >= 0) {
        std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u%c%02u:%02u:%02u", static_cast<long long>(c.year), c.month,
                      c.day, separator, c.hour, c.minute, c.second);
    } else {
        std::snprintf(buf, sizeof buf, "-%04lld-%02u-%02u%c%02u:%02u:%02u", -static_cast<long long>(c.year),
                      c.month, c.day, separator, c.hour, c.minute, c.second);
    }
    std::string out = buf;
    if (ns != 0) {
        std::snprintf(buf, sizeof buf, ".%09u", ns);
        std::string frac = buf;
        while (frac.back() == '0') frac.pop_back();
        out += frac;
    }
    if (separator == 'T') out += 'Z';
    return out;
}

void Formatter::append(const ::dnstap::Dnstap& dt, std::string& out) const {
    switch (format_) {
    case Format::Text: append_text(dt, out); break;
    case Format::Yaml: append_yaml(dt, out); break;
    case Format::Json: append_json(dt, out); break;
    }
}

void Formatter::append_text(const ::dnstap::Dnstap& dt, std::string& out) const {
    if (!dt.has_message()) {
        out += "[missing Message]\n";
        return;
    }
    using M = ::dnstap::Message;
    const M& m = dt.message();
    bool is_query = false;
    char letter = '?';
    switch (m.type()) {
    case M::CLIENT_QUERY: is_query = true; letter = 'C'; break;
    case M::CLIENT_RESPONSE: letter = 'C'; break;
    case M::AUTH_QUERY: is_query = true; letter = 'A'; break;
    case M::AUTH_RESPONSE: letter = 'A'; break;
    case M::RESOLVER_QUERY: is_query = true; letter = 'R'; break;
    case M::RESOLVER_RESPONSE: letter = 'R'; break;
    case M::FORWARDER_QUERY: is_query = true; letter = 'F'; break;
    case M::FORWARDER_RESPONSE: letter = 'F'; break;
    case M::TOOL_QUERY: is_query = true; letter = 'T'; break;
    case M::TOOL_RESPONSE: letter = 'T'; break;
    case M::UPDATE_QUERY: is_query = true; letter = 'U'; break;
    case M::UPDATE_RESPONSE: letter = 'U'; break;
    default:
        out += "[unhandled Message.Type]\n";
        return;
    }
    if (is_query) {
        append_text_time(out, m.has_query_time_sec(), m.query_time_sec(), m.has_query_time_nsec(), m.query_time_nsec());
    } else {
        append_text_time(out, m.has_response_time_sec(), m.response_time_sec(), m.has_response_time_nsec(),
                         m.response_time_nsec());
    }
    out += ' ';
    out += letter;
    out += is_query ? "Q " : "R ";
    const bool client_side = letter == 'C' || letter == 'A';
    const bool has_address = client_side ? m.has_query_address() : m.has_response_address();
    out += has_address ? go_ip_string(client_side ? m.query_address() : m.response_address()) : "MISSING_ADDRESS";
    out += ' ';
    if (m.has_socket_protocol()) out += ::dnstap::SocketProtocol_Name(m.socket_protocol());
    out += ' ';
    const std::string& wire = is_query ? m.query_message() : m.response_message();
    out += std::to_string(wire.size());
    out += "b ";
    Question q;
    if (!first_question(bytes_of(wire), q)) {
        out += "X ";
    } else {
        out += '"';
        out += q.name;
        out += "\" ";
        out += class_name(q.qclass);
        out += ' ';
        out += type_name(q.qtype);
    }
    out += '\n';
}

void Formatter::append_yaml(const ::dnstap::Dnstap& dt, std::string& out) const {
    out += "type: " + ::dnstap::Dnstap_Type_Name(dt.type()) + "\n";
    if (dt.has_identity()) out += "identity: " + go_quote(dt.identity()) + "\n";
    if (dt.has_version()) out += "version: " + go_quote(dt.version()) + "\n";
    if (options_.extensions && dt.has_extra()) out += "extra: " + go_quote(dt.extra()) + "\n";
    out += "message:\n";
    const ::dnstap::Message& m = dt.message();
    out += "  type: " + (m.has_type() ? message_type_name(m.type()) : std::string("<nil>")) + "\n";
    if (m.has_query_time_sec() && m.has_query_time_nsec())
        out += "  query_time: !!timestamp " + go_utc_time(m.query_time_sec(), m.query_time_nsec(), ' ') + "\n";
    if (m.has_response_time_sec() && m.has_response_time_nsec())
        out += "  response_time: !!timestamp " + go_utc_time(m.response_time_sec(), m.response_time_nsec(), ' ') +
               "\n";
    if (m.has_socket_family()) out += "  socket_family: " + ::dnstap::SocketFamily_Name(m.socket_family()) + "\n";
    if (m.has_socket_protocol())
        out += "  socket_protocol: " + ::dnstap::SocketProtocol_Name(m.socket_protocol()) + "\n";
    if (m.has_query_address()) out += "  query_address: " + go_ip_string(m.query_address()) + "\n";
    if (m.has_response_address()) out += "  response_address: " + go_ip_string(m.response_address()) + "\n";
    if (m.has_query_port()) out += "  query_port: " + std::to_string(m.query_port()) + "\n";
    if (m.has_response_port()) out += "  response_port: " + std::to_string(m.response_port()) + "\n";
    if (m.has_query_zone()) {
        std::string name, error;
        std::size_t off = 0;
        if (unpack_name(bytes_of(m.query_zone()), off, name, error))
            out += "  query_zone: " + go_quote(name) + "\n";
        else
            out += "  # query_zone: parse failed: " + error + "\n";
    }
    if (m.has_query_message()) append_indented_message(out, "query_message", m.query_message());
    if (m.has_response_message()) append_indented_message(out, "response_message", m.response_message());
    if (options_.extensions) {
        if (m.has_http_protocol()) out += "  http_protocol: " + ::dnstap::HttpProtocol_Name(m.http_protocol()) + "\n";
        if (m.has_policy()) {
            const ::dnstap::Policy& p = m.policy();
            out += "  policy:\n";
            if (p.has_type()) out += "    type: " + go_quote(p.type()) + "\n";
            if (p.has_rule()) out += "    rule: " + go_quote(policy_rule_text(p)) + "\n";
            if (p.has_action()) out += "    action: " + ::dnstap::Policy_Action_Name(p.action()) + "\n";
            if (p.has_match()) out += "    match: " + ::dnstap::Policy_Match_Name(p.match()) + "\n";
            if (p.has_value()) out += "    value: " + go_quote(policy_value_text(p)) + "\n";
        }
    }
    out += "---\n";
}

void Formatter::append_json(const ::dnstap::Dnstap& dt, std::string& out) const {
    out += "{\"type\":";
    append_json_string(out, ::dnstap::Dnstap_Type_Name(dt.type()));
    if (!dt.identity().empty()) {
        append_json_key(out, "identity");
        append_json_string(out, dt.identity());
    }
    if (!dt.version().empty()) {
        append_json_key(out, "version");
        append_json_string(out, dt.version());
    }
    if (options_.extensions && !dt.extra().empty()) {
        append_json_key(out, "extra");
        append_json_string(out, dt.extra());
    }
    const ::dnstap::Message& m = dt.message();
    out += ",\"message\":{\"type\":";
    append_json_string(out, m.has_type() ? message_type_name(m.type()) : std::string("<nil>"));
    if (m.has_query_time_sec() && m.has_query_time_nsec()) {
        append_json_key(out, "query_time");
        append_json_string(out, go_utc_time(m.query_time_sec(), m.query_time_nsec(), 'T'));
    }
    if (m.has_response_time_sec() && m.has_response_time_nsec()) {
        append_json_key(out, "response_time");
        append_json_string(out, go_utc_time(m.response_time_sec(), m.response_time_nsec(), 'T'));
    }
    append_json_key(out, "socket_family");
    append_json_string(out, m.has_socket_family() ? ::dnstap::SocketFamily_Name(m.socket_family()) : "<nil>");
    append_json_key(out, "socket_protocol");
    append_json_string(out, m.has_socket_protocol() ? ::dnstap::SocketProtocol_Name(m.socket_protocol()) : "<nil>");
    // net.IP's MarshalText: "" for an empty address.
    if (m.has_query_address()) {
        append_json_key(out, "query_address");
        append_json_string(out, m.query_address().empty() ? std::string() : go_ip_string(m.query_address()));
    }
    if (m.has_response_address()) {
        append_json_key(out, "response_address");
        append_json_string(out, m.response_address().empty() ? std::string() : go_ip_string(m.response_address()));
    }
    if (m.query_port() != 0) {
        append_json_key(out, "query_port");
        out += std::to_string(m.query_port());
    }
    if (m.response_port() != 0) {
        append_json_key(out, "response_port");
        out += std::to_string(m.response_port());
    }
    if (m.has_query_zone()) {
        std::string name, error;
        std::size_t off = 0;
        append_json_key(out, "query_zone");
        if (unpack_name(bytes_of(m.query_zone()), off, name, error))
            append_json_string(out, name);
        else
            append_json_string(out, "parse failed: " + error);
    }
    std::string text, error;
    const std::tuple<const char*, bool, const std::string*> messages[] = {
        {"query_message", m.has_query_message(), &m.query_message()},
        {"response_message", m.has_response_message(), &m.response_message()}};
    for (const auto& [key, present, wire] : messages) {
        if (!present) continue;
        append_json_key(out, key);
        if (message_text(bytes_of(*wire), text, error))
            append_json_string(out, text);
        else
            append_json_string(out, "parse failed: " + error);
    }
    if (options_.extensions) {
        if (m.has_http_protocol()) {
            append_json_key(out, "http_protocol");
            append_json_string(out, ::dnstap::HttpProtocol_Name(m.http_protocol()));
        }
        if (m.has_policy()) {
            const ::dnstap::Policy& p = m.policy();
            append_json_key(out, "policy");
            out += '{';
            bool first = true;
            auto field = [&](const char* key, const std::string& value) {
                out += first ? "\"" : ",\"";
                first = false;
                out += key;
                out += "\":";
                append_json_string(out, value);
            };
            if (p.has_type()) field("type", p.type());
            if (p.has_rule()) field("rule", policy_rule_text(p));
            if (p.has_action()) field("action", ::dnstap::Policy_Action_Name(p.action()));
            if (p.has_match()) field("match", ::dnstap::Policy_Match_Name(p.match()));
            if (p.has_value()) field("value", policy_value_text(p));
            out += '}';
        }
    }
    out += "}}\n";
}

}  // namespace sidetap::present
