#include "present/dns_text.h"

#include <ldns/ldns.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

namespace sidetap::present {

namespace {

constexpr std::size_t kMaxNameWire = 255;
constexpr int kMaxPointers = (kMaxNameWire + 1) / 2 - 2;

bool label_special(std::uint8_t b) {
    switch (b) {
    case '.': case ' ': case '\'': case '@': case ';': case '(': case ')': case '"': case '\\':
        return true;
    default:
        return false;
    }
}

std::string_view opcode_name(unsigned opcode) {
    switch (opcode) {
    case 0: return "QUERY";
    case 1: return "IQUERY";
    case 2: return "STATUS";
    case 4: return "NOTIFY";
    case 5: return "UPDATE";
    default: return {};
    }
}

std::string rcode_name(unsigned rcode) {
    static constexpr std::array<std::string_view, 24> names{
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
        "NXRRSET", "NOTAUTH", "NOTZONE",  "",         "",        "",        "",         "",
        "BADSIG",  "BADKEY",  "BADTIME",  "BADMODE",  "BADNAME", "BADALG",  "BADTRUNC", "BADCOOKIE"};
    if (rcode < names.size() && !names[rcode].empty()) return std::string(names[rcode]);
    return std::to_string(rcode);
}

void append_hex(std::string& out, std::span<const std::uint8_t> bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    for (std::uint8_t b : bytes) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
}

std::uint16_t be16(const std::uint8_t* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }

std::string name_of(const ldns_rdf* rdf) {
    if (rdf == nullptr) return ".";
    std::string out, error;
    std::size_t off = 0;
    if (!unpack_name({ldns_rdf_data(rdf), ldns_rdf_size(rdf)}, off, out, error)) return "?";
    return out;
}

std::string rr_text(const ldns_rr* rr) {
    char* text = ldns_rr2str_fmt(ldns_output_format_nocomments, rr);
    if (text == nullptr) return {};
    std::string out(text);
    std::free(text);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

// EDNS options in miekg's OPT.String() wording (the common ones).
void append_edns_options(std::string& s, std::span<const std::uint8_t> data) {
    std::size_t pos = 0;
    while (data.size() - pos >= 4) {
        const std::uint16_t code = be16(data.data() + pos);
        const std::uint16_t len = be16(data.data() + pos + 2);
        pos += 4;
        if (len > data.size() - pos) break;
        auto value = data.subspan(pos, len);
        pos += len;
        switch (code) {
        case 3:
            s += "\n; NSID: ";
            append_hex(s, value);
            s += "  ";
            for (std::uint8_t b : value) {
                s += '(';
                s += static_cast<char>(b);
                s += ')';
            }
            break;
        case 8: {
            s += "\n; SUBNET: ";
            if (value.size() < 4) {
                append_hex(s, value);
                break;
            }
            const std::uint16_t family = be16(value.data());
            std::array<std::uint8_t, 16> addr{};
            auto bytes = value.subspan(4);
            char text[64] = "";
            if (family == 1) {
                std::copy_n(bytes.begin(), std::min<std::size_t>(bytes.size(), 4), addr.begin());
                std::snprintf(text, sizeof text, "%u.%u.%u.%u", addr[0], addr[1], addr[2], addr[3]);
            } else {
                std::copy_n(bytes.begin(), std::min<std::size_t>(bytes.size(), 16), addr.begin());
                ldns_rdf* rdf = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_AAAA, 16, addr.data());
                if (rdf != nullptr) {
                    char* str = ldns_rdf2str(rdf);
                    if (str != nullptr) std::snprintf(text, sizeof text, "[%s]", str);
                    std::free(str);
                    ldns_rdf_deep_free(rdf);
                }
            }
            s += text;
            s += '/' + std::to_string(value[2]) + '/' + std::to_string(value[3]);
            break;
        }
        case 10:
            s += "\n; COOKIE: ";
            append_hex(s, value);
            break;
        case 12:
            s += "\n; PADDING: ";
            append_hex(s, value);
            break;
        case 15:
            s += "\n; EDE: ";
            if (value.size() >= 2) {
                static constexpr const char* kEde[] = {
                    "Other", "Unsupported DNSKEY Algorithm", "Unsupported DS Digest Type", "Stale Answer",
                    "Forged Answer", "DNSSEC Indeterminate", "DNSSEC Bogus", "Signature Expired",
                    "Signature Not Yet Valid", "DNSKEY Missing", "RRSIGs Missing", "No Zone Key Bit Set",
                    "NSEC Missing", "Cached Error", "Not Ready", "Blocked", "Censored", "Filtered", "Prohibited",
                    "Stale NXDOMAIN Answer", "Not Authoritative", "Not Supported", "No Reachable Authority",
                    "Network Error", "Invalid Data"};
                const std::uint16_t info = be16(value.data());
                s += std::to_string(info) + " (" +
                     (info < std::size(kEde) ? std::string(kEde[info]) : std::string()) + "): (";
                s.append(reinterpret_cast<const char*>(value.data() + 2), value.size() - 2);
                s += ')';
            }
            break;
        default:
            s += "\n; LOCAL OPT: " + std::to_string(code) + ":0x";
            append_hex(s, value);
            break;
        }
    }
}

}  // namespace

bool unpack_name(std::span<const std::uint8_t> wire, std::size_t& offset, std::string& out, std::string& error) {
    out.clear();
    std::size_t off = offset;
    std::size_t after = 0;  // offset after the name as stored (before the first pointer)
    int pointers = 0;
    int budget = static_cast<int>(kMaxNameWire);
    for (;;) {
        if (off >= wire.size()) {
            error = "dns: buffer size too small";
            return false;
        }
        const std::uint8_t c = wire[off++];
        if ((c & 0xC0) == 0) {
            if (c == 0) break;
            if (off + c > wire.size()) {
                error = "dns: buffer size too small";
                return false;
            }
            budget -= c + 1;
            if (budget <= 0) {
                error = "dns: domain name exceeded 255 wire-format octets";
                return false;
            }
            for (std::size_t i = off; i < off + c; ++i) {
                const std::uint8_t b = wire[i];
                if (label_special(b)) {
                    out += '\\';
                    out += static_cast<char>(b);
                } else if (b < ' ' || b > '~') {
                    char esc[5];
                    std::snprintf(esc, sizeof esc, "\\%03u", b);
                    out += esc;
                } else {
                    out += static_cast<char>(b);
                }
            }
            out += '.';
            off += c;
        } else if ((c & 0xC0) == 0xC0) {
            if (off >= wire.size()) {
                error = "dns: buffer size too small";
                return false;
            }
            const std::uint8_t c1 = wire[off++];
            if (pointers == 0) after = off;
            if (++pointers > kMaxPointers) {
                error = "dns: too many compression pointers";
                return false;
            }
            off = (std::size_t{c & 0x3Fu} << 8) | c1;
        } else {
            error = "dns: bad rdata";
            return false;
        }
    }
    offset = pointers == 0 ? off : after;
    if (out.empty()) out.push_back('.');  // not `out = "."`: GCC 12 -Wrestrict false positive at -O3
    return true;
}

namespace {

// What miekg's Msg.Unpack sees of a message's structure: the sections as
// far as they are present (counts may overstate at the end of the message,
// trailing bytes are ignored). Rdata content is not checked.
struct Layout {
    std::uint16_t counts[4] = {0, 0, 0, 0};  // entries actually present
    std::size_t end = 0;                     // offset after the last entry
    Question first;
};

bool walk(std::span<const std::uint8_t> wire, Layout& layout) {
    if (wire.size() < 12) return false;
    const std::uint16_t counts[4] = {be16(wire.data() + 4), be16(wire.data() + 6), be16(wire.data() + 8),
                                     be16(wire.data() + 10)};
    std::size_t off = 12;
    std::string name, error;
    for (unsigned i = 0; i < counts[0] && off < wire.size(); ++i) {
        if (!unpack_name(wire, off, name, error)) return false;
        std::uint16_t qtype = 0, qclass = 0;
        if (off < wire.size()) {
            if (wire.size() - off < 2) return false;
            qtype = be16(wire.data() + off);
            off += 2;
        }
        if (off < wire.size()) {
            if (wire.size() - off < 2) return false;
            qclass = be16(wire.data() + off);
            off += 2;
        }
        if (layout.counts[0]++ == 0) layout.first = {name, qtype, qclass};
    }
    for (int section = 1; section < 4; ++section) {
        for (unsigned i = 0; i < counts[section] && off < wire.size(); ++i) {
            if (!unpack_name(wire, off, name, error)) return false;
            if (wire.size() - off < 10) return false;
            const std::size_t rdlength = be16(wire.data() + off + 8);
            off += 10;
            if (rdlength > wire.size() - off) return false;
            off += rdlength;
            ++layout.counts[section];
        }
    }
    layout.end = off;
    return true;
}

}  // namespace

bool first_question(std::span<const std::uint8_t> wire, Question& out) {
    Layout layout;
    if (!walk(wire, layout) || layout.counts[0] == 0) return false;
    out = std::move(layout.first);
    return true;
}

std::string type_name(std::uint16_t type) {
    struct Entry {
        std::uint16_t value;
        const char* name;
    };
    // miekg/dns TypeToString.
    static constexpr Entry kTypes[] = {
        {0, "None"},      {1, "A"},          {2, "NS"},       {3, "MD"},          {4, "MF"},
        {5, "CNAME"},     {6, "SOA"},        {7, "MB"},       {8, "MG"},          {9, "MR"},
        {10, "NULL"},     {12, "PTR"},       {13, "HINFO"},     {14, "MINFO"},   {15, "MX"},         {16, "TXT"},
        {17, "RP"},       {18, "AFSDB"},     {19, "X25"},     {20, "ISDN"},       {21, "RT"},
        {23, "NSAP-PTR"}, {24, "SIG"},       {25, "KEY"},     {26, "PX"},         {27, "GPOS"},
        {28, "AAAA"},     {29, "LOC"},       {30, "NXT"},     {31, "EID"},        {32, "NIMLOC"},
        {33, "SRV"},      {34, "ATMA"},      {35, "NAPTR"},   {36, "KX"},         {37, "CERT"},
        {39, "DNAME"},    {41, "OPT"},       {42, "APL"},     {43, "DS"},         {44, "SSHFP"},
        {45, "IPSECKEY"}, {46, "RRSIG"},     {47, "NSEC"},    {48, "DNSKEY"},     {49, "DHCID"},
        {50, "NSEC3"},    {51, "NSEC3PARAM"}, {52, "TLSA"},   {53, "SMIMEA"},     {55, "HIP"},
        {56, "NINFO"},    {57, "RKEY"},      {58, "TALINK"},  {59, "CDS"},        {60, "CDNSKEY"},
        {61, "OPENPGPKEY"}, {62, "CSYNC"},   {63, "ZONEMD"},  {64, "SVCB"},       {65, "HTTPS"},
        {99, "SPF"},      {100, "UINFO"},    {101, "UID"},    {102, "GID"},       {103, "UNSPEC"},
        {104, "NID"},     {105, "L32"},      {106, "L64"},    {107, "LP"},        {108, "EUI48"},
        {109, "EUI64"},   {249, "TKEY"},     {250, "TSIG"},   {251, "IXFR"},      {252, "AXFR"},
        {253, "MAILB"},   {254, "MAILA"},    {255, "ANY"},    {256, "URI"},       {257, "CAA"},
        {258, "AVC"},     {32768, "TA"},     {32769, "DLV"},  {65535, "Reserved"},
    };
    for (const auto& e : kTypes)
        if (e.value == type) return e.name;
    return "TYPE" + std::to_string(type);
}

std::string class_name(std::uint16_t klass) {
    switch (klass) {
    case 1: return "IN";
    case 2: return "CS";
    case 3: return "CH";
    case 4: return "HS";
    case 254: return "NONE";
    case 255: return "ANY";
    default: return "CLASS" + std::to_string(klass);
    }
}

bool message_text(std::span<const std::uint8_t> wire, std::string& out, std::string& error) {
    out.clear();
    // ldns refuses overstated counts and trailing bytes, which miekg/dns
    // (golang-dnstap) accepts: hand ldns the message as miekg sees it.
    Layout layout;
    std::vector<std::uint8_t> patched;
    if (walk(wire, layout) && wire.size() >= 12) {
        bool differs = layout.end != wire.size();
        for (int i = 0; i < 4; ++i) differs |= layout.counts[i] != be16(wire.data() + 4 + 2 * i);
        if (differs) {
            patched.assign(wire.begin(), wire.begin() + static_cast<std::ptrdiff_t>(layout.end));
            for (int i = 0; i < 4; ++i) {
                patched[static_cast<std::size_t>(4 + 2 * i)] = static_cast<std::uint8_t>(layout.counts[i] >> 8);
                patched[static_cast<std::size_t>(5 + 2 * i)] = static_cast<std::uint8_t>(layout.counts[i]);
            }
        }
    }
    const std::span<const std::uint8_t> parse = patched.empty() ? wire : std::span<const std::uint8_t>(patched);
    ldns_pkt* raw = nullptr;
    const ldns_status status = ldns_wire2pkt(&raw, parse.data(), parse.size());
    if (status != LDNS_STATUS_OK || raw == nullptr || wire.size() < 12) {
        if (raw != nullptr) ldns_pkt_free(raw);
        error = status != LDNS_STATUS_OK ? ldns_get_errorstr_by_id(status) : "message shorter than a header";
        return false;
    }
    std::unique_ptr<ldns_pkt, decltype(&ldns_pkt_free)> pkt(raw, &ldns_pkt_free);

    const std::uint8_t b2 = wire[2], b3 = wire[3];
    const unsigned opcode = (b2 >> 3) & 0xFu;
    const bool edns = ldns_pkt_edns(pkt.get());
    unsigned rcode = b3 & 0xFu;
    if (edns) rcode |= unsigned{ldns_pkt_edns_extended_rcode(pkt.get())} << 4;

    std::string& s = out;
    s += ";; opcode: ";
    s += opcode_name(opcode);
    s += ", status: " + rcode_name(rcode) + ", id: " + std::to_string(be16(wire.data())) + "\n";
    s += ";; flags:";
    if (b2 & 0x80) s += " qr";
    if (b2 & 0x04) s += " aa";
    if (b2 & 0x02) s += " tc";
    if (b2 & 0x01) s += " rd";
    if (b3 & 0x80) s += " ra";
    if (b3 & 0x40) s += " z";
    if (b3 & 0x20) s += " ad";
    if (b3 & 0x10) s += " cd";
    s += "; ";

    const ldns_rr_list* sections[4] = {ldns_pkt_question(pkt.get()), ldns_pkt_answer(pkt.get()),
                                       ldns_pkt_authority(pkt.get()), ldns_pkt_additional(pkt.get())};
    std::size_t counts[4];
    for (int i = 0; i < 4; ++i) counts[i] = sections[i] ? ldns_rr_list_rr_count(sections[i]) : 0;
    const bool update = false;  // 0.4.0's miekg/dns names UPDATE sections like QUERY ones
    static constexpr const char* kLabels[2][4] = {{"QUERY", "ANSWER", "AUTHORITY", "ADDITIONAL"},
                                                  {"ZONE", "PREREQ", "UPDATE", "ADDITIONAL"}};
    for (int i = 0; i < 4; ++i) {
        s += kLabels[update][i];
        s += ": " + std::to_string(counts[i] + (i == 3 && edns ? 1 : 0));
        s += i < 3 ? ", " : "\n";
    }
    if (edns) {
        const std::uint16_t z = ldns_pkt_edns_z(pkt.get());
        s += "\n;; OPT PSEUDOSECTION:\n; EDNS: version " + std::to_string(ldns_pkt_edns_version(pkt.get())) + "; ";
        s += "flags: ";  // golang-dnstap 0.4.0's miekg/dns: "flags: do; " / "flags: ; "
        if (ldns_pkt_edns_do(pkt.get())) s += "do";
        s += "; ";
        if ((z & 0x7FFF) != 0) {
            char mbz[24];
            std::snprintf(mbz, sizeof mbz, "MBZ: 0x%04x, ", z & 0x7FFF);
            s += mbz;
        }
        s += "udp: " + std::to_string(ldns_pkt_edns_udp_size(pkt.get()));
        if (const ldns_rdf* data = ldns_pkt_edns_data(pkt.get()))
            append_edns_options(s, {ldns_rdf_data(data), ldns_rdf_size(data)});
        s += "\n";
    }
    static constexpr const char* kHeadings[2][4] = {
        {"QUESTION SECTION", "ANSWER SECTION", "AUTHORITY SECTION", "ADDITIONAL SECTION"},
        {"ZONE SECTION", "PREREQUISITE SECTION", "UPDATE SECTION", "ADDITIONAL SECTION"}};
    for (int i = 0; i < 4; ++i) {
        if (counts[i] == 0) continue;
        s += "\n;; ";
        s += kHeadings[update][i];
        s += ":\n";
        for (std::size_t j = 0; j < counts[i]; ++j) {
            const ldns_rr* rr = ldns_rr_list_rr(sections[i], j);
            if (i == 0) {
                s += ';' + name_of(ldns_rr_owner(rr)) + '\t' +
                     class_name(static_cast<std::uint16_t>(ldns_rr_get_class(rr))) + "\t " +
                     type_name(static_cast<std::uint16_t>(ldns_rr_get_type(rr))) + "\n";
            } else {
                s += rr_text(rr) + "\n";
            }
        }
    }
    return true;
}

}  // namespace sidetap::present
