#include "present/filter.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "dnstap/message_type.h"

namespace sidetap::present {

namespace {

std::uint8_t lower(std::uint8_t c) { return (c >= 'A' && c <= 'Z') ? static_cast<std::uint8_t>(c + 32) : c; }

bool prefix_bits_equal(const std::uint8_t* a, const std::uint8_t* b, unsigned bits) {
    const unsigned whole = bits / 8;
    if (std::memcmp(a, b, whole) != 0) return false;
    const unsigned rest = bits % 8;
    if (rest == 0) return true;
    const auto mask = static_cast<std::uint8_t>(0xFF00u >> rest);
    return (a[whole] & mask) == (b[whole] & mask);
}

// The first question name of a DNS message, decompressed into `out` (lower
// case, wire form). Returns its length, 0 when there is none.
std::size_t question_name(const std::string& wire, std::array<std::uint8_t, 256>& out) {
    const auto* msg = reinterpret_cast<const std::uint8_t*>(wire.data());
    const std::size_t size = wire.size();
    if (size < 13) return 0;
    if (((msg[4] << 8) | msg[5]) == 0) return 0;
    std::size_t off = 12, len = 0;
    int jumps = 0;
    while (off < size) {
        const std::uint8_t c = msg[off];
        if (c == 0) {
            out[len++] = 0;
            return len;
        }
        if ((c & 0xC0) == 0xC0) {
            if (off + 1 >= size || ++jumps > 126) return 0;
            off = (std::size_t{c & 0x3Fu} << 8) | msg[off + 1];
            continue;
        }
        if ((c & 0xC0) != 0) return 0;
        if (off + 1 + c > size || len + 1 + c + 1 > out.size()) return 0;
        out[len++] = c;
        for (std::size_t i = 0; i < c; ++i) out[len++] = lower(msg[off + 1 + i]);
        off += 1 + std::size_t{c};
    }
    return 0;
}

}  // namespace

bool Prefix::contains(std::string_view address) const {
    const auto* a = reinterpret_cast<const std::uint8_t*>(address.data());
    if (!v6) {
        if (address.size() == 4) return prefix_bits_equal(a, bytes.data(), length);
        static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
        if (address.size() == 16 && std::memcmp(a, kMapped, 12) == 0)
            return prefix_bits_equal(a + 12, bytes.data(), length);
        return false;
    }
    return address.size() == 16 && prefix_bits_equal(a, bytes.data(), length);
}

std::optional<Prefix> parse_prefix(std::string_view text, std::string& error) {
    Prefix p;
    const auto slash = text.find('/');
    const std::string addr(text.substr(0, slash));
    p.v6 = addr.find(':') != std::string::npos;
    const int family = p.v6 ? AF_INET6 : AF_INET;
    if (inet_pton(family, addr.c_str(), p.bytes.data()) != 1) {
        error = "bad address '" + std::string(text) + "' (use e.g. 10.0.0.0/8, 2001:db8::/32, 192.0.2.1)";
        return std::nullopt;
    }
    const unsigned max_len = p.v6 ? 128 : 32;
    unsigned length = max_len;
    if (slash != std::string_view::npos) {
        const auto digits = text.substr(slash + 1);
        if (digits.empty() || digits.size() > 3 ||
            !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
            (length = static_cast<unsigned>(std::stoul(std::string(digits)))) > max_len) {
            error = "bad prefix length in '" + std::string(text) + "' (0.." + std::to_string(max_len) + ")";
            return std::nullopt;
        }
    }
    p.length = static_cast<std::uint8_t>(length);
    return p;
}

std::optional<std::string> parse_name(std::string_view text, std::string& error) {
    std::string wire;
    std::string label;
    auto bad = [&](const std::string& why) {
        error = "bad name '" + std::string(text) + "': " + why;
        return std::nullopt;
    };
    auto finish_label = [&]() -> bool {
        if (label.empty() || label.size() > 63) return false;
        wire += static_cast<char>(label.size());
        wire += label;
        label.clear();
        return true;
    };
    if (text == ".") text = {};
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '\\') {
            if (i + 1 >= text.size()) return bad("trailing backslash");
            if (i + 3 < text.size() && std::isdigit(static_cast<unsigned char>(text[i + 1])) &&
                std::isdigit(static_cast<unsigned char>(text[i + 2])) &&
                std::isdigit(static_cast<unsigned char>(text[i + 3]))) {
                const int v = (text[i + 1] - '0') * 100 + (text[i + 2] - '0') * 10 + (text[i + 3] - '0');
                if (v > 255) return bad("\\DDD above 255");
                c = static_cast<char>(v);
                i += 3;
            } else {
                c = text[++i];
            }
            label += static_cast<char>(lower(static_cast<std::uint8_t>(c)));
        } else if (c == '.') {
            if (!finish_label()) return bad("empty or over-long label");
        } else {
            label += static_cast<char>(lower(static_cast<std::uint8_t>(c)));
        }
    }
    if (!label.empty() && !finish_label()) return bad("label longer than 63 bytes");
    wire += '\0';
    if (wire.size() > 255) return bad("longer than 255 bytes");
    return wire;
}

bool Filter::add_types(std::string_view list, std::string& error) {
    auto bits = dnstap::parse_type_list(list, error);
    if (!bits) return false;
    types |= *bits;
    return true;
}

bool Filter::add_qname_suffix(std::string_view text, std::string& error) {
    auto wire = parse_name(text, error);
    if (!wire) return false;
    qname_suffixes.push_back(std::move(*wire));
    return true;
}

bool Filter::add_client(std::string_view text, std::string& error) {
    auto prefix = parse_prefix(text, error);
    if (!prefix) return false;
    client_prefixes.push_back(*prefix);
    return true;
}

bool Filter::matches(const ::dnstap::Dnstap& dt) const {
    if (empty()) return true;
    if (!dt.has_message()) return false;
    const ::dnstap::Message& m = dt.message();
    if (types != 0) {
        const int t = m.type();
        if (t < 0 || t > 31 || (types & (1u << t)) == 0) return false;
    }
    if (!client_prefixes.empty()) {
        if (!m.has_query_address()) return false;
        const bool hit = std::any_of(client_prefixes.begin(), client_prefixes.end(),
                                     [&](const Prefix& p) { return p.contains(m.query_address()); });
        if (!hit) return false;
    }
    if (!qname_suffixes.empty()) {
        // Odd types are queries, even ones responses.
        const bool is_query = (m.type() % 2) == 1;
        const std::string* wire = is_query ? &m.query_message() : &m.response_message();
        if (wire->empty()) wire = is_query ? &m.response_message() : &m.query_message();
        std::array<std::uint8_t, 256> name;
        const std::size_t len = question_name(*wire, name);
        if (len == 0) return false;
        bool hit = false;
        for (const std::string& suffix : qname_suffixes) {
            // Walk label starts so the comparison is on a label boundary.
            for (std::size_t i = 0; i < len && !hit; i += 1 + std::size_t{name[i]}) {
                if (len - i == suffix.size() && std::memcmp(name.data() + i, suffix.data(), suffix.size()) == 0)
                    hit = true;
                if (name[i] == 0) break;
            }
            if (hit) break;
        }
        if (!hit) return false;
    }
    return true;
}

}  // namespace sidetap::present
