#include "dnstap/extra_template.h"

#include <algorithm>
#include <arpa/inet.h>
#include <charconv>
#include <cstring>

namespace sidetap::dnstap {

// ------------------------------------------------------------- NameTable

NameTable::NameTable() : arena_(std::make_unique<char[]>(kArenaBytes)) {}

std::uint16_t NameTable::intern(std::string_view name) {
    if (last_ != dns::Origin::kNoName && this->name(last_) == name.substr(0, kMaxNameBytes)) return last_;
    const auto id = find_or_add(name);
    if (id != dns::Origin::kNoName) last_ = id;
    return id;
}

std::uint16_t NameTable::find_or_add(std::string_view name) {
    name = name.substr(0, kMaxNameBytes);
    for (std::size_t i = 0; i < count_; ++i)
        if (this->name(static_cast<std::uint16_t>(i)) == name) return static_cast<std::uint16_t>(i);
    if (count_ == kMaxNames || used_ + name.size() > kArenaBytes) {
        ++full_;
        return dns::Origin::kNoName;
    }
    std::memcpy(arena_.get() + used_, name.data(), name.size());
    offset_[count_] = static_cast<std::uint32_t>(used_);
    length_[count_] = static_cast<std::uint16_t>(name.size());
    used_ += name.size();
    return static_cast<std::uint16_t>(count_++);
}

std::string_view NameTable::name(std::uint16_t id) const {
    if (id >= count_) return {};
    return {arena_.get() + offset_[id], length_[id]};
}

// ---------------------------------------------------------- ExtraTemplate

std::optional<ExtraTemplate> ExtraTemplate::parse(std::string_view text, std::string& error) {
    ExtraTemplate t;
    t.source_ = std::string(text);
    std::string literal;
    auto flush = [&] {
        if (literal.empty()) return;
        t.pieces_.push_back(Piece{true, Placeholder::Count_, std::move(literal)});
        literal.clear();
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '}') {
            if (i + 1 < text.size() && text[i + 1] == '}') {
                literal += '}';
                ++i;
                continue;
            }
            error = "a lone '}' at position " + std::to_string(i + 1) + " (write '}}' for a literal brace)";
            return std::nullopt;
        }
        if (c != '{') {
            literal += c;
            continue;
        }
        if (i + 1 < text.size() && text[i + 1] == '{') {
            literal += '{';
            ++i;
            continue;
        }
        const auto end = text.find('}', i + 1);
        if (end == std::string_view::npos) {
            error = "unclosed '{' at position " + std::to_string(i + 1) + " (write '{{' for a literal brace)";
            return std::nullopt;
        }
        const auto name = text.substr(i + 1, end - i - 1);
        const auto it = std::find(kPlaceholderNames.begin(), kPlaceholderNames.end(), name);
        if (it == kPlaceholderNames.end()) {
            std::string known;
            for (const auto n : kPlaceholderNames) known += (known.empty() ? "{" : ", {") + std::string(n) + "}";
            error = "unknown placeholder {" + std::string(name) + "} (known: " + known + ")";
            return std::nullopt;
        }
        flush();
        t.pieces_.push_back(
            Piece{false, static_cast<Placeholder>(it - kPlaceholderNames.begin()), std::string()});
        i = end;
    }
    flush();
    return t;
}

ExtraTemplate ExtraTemplate::bind(const TemplateConstants& constants) const {
    ExtraTemplate t;
    t.source_ = source_;
    for (const auto& p : pieces_) {
        std::string value;
        bool is_constant = true;
        if (p.literal) value = p.text;
        else if (p.placeholder == Placeholder::Host) value = constants.host;
        else if (p.placeholder == Placeholder::Cgroup) value = constants.cgroup;
        else if (p.placeholder == Placeholder::Shard) value = std::to_string(constants.shard);
        else is_constant = false;
        if (!is_constant) {
            t.pieces_.push_back(p);
            continue;
        }
        if (!t.pieces_.empty() && t.pieces_.back().literal) t.pieces_.back().text += value;
        else t.pieces_.push_back(Piece{true, Placeholder::Count_, std::move(value)});
    }
    return t;
}

bool ExtraTemplate::constant() const {
    return std::all_of(pieces_.begin(), pieces_.end(), [](const Piece& p) { return p.literal; });
}

std::string ExtraTemplate::text() const {
    std::string out;
    for (const auto& p : pieces_)
        if (p.literal) out += p.text;
    return out.substr(0, kMaxRendered);
}

bool ExtraTemplate::uses(Placeholder placeholder) const {
    return std::any_of(pieces_.begin(), pieces_.end(),
                       [&](const Piece& p) { return !p.literal && p.placeholder == placeholder; });
}

namespace {

// Appends to a fixed buffer, cutting at its end.
struct Writer {
    ExtraTemplate::Buffer& out;
    std::size_t len = 0;
    bool truncated = false;
    void put(const void* data, std::size_t n) {
        const std::size_t room = out.size() - len;
        if (n > room) {
            truncated = true;
            n = room;
        }
        std::memcpy(out.data() + len, data, n);
        len += n;
    }
    void put(std::string_view s) { put(s.data(), s.size()); }
    void put_number(std::uint64_t v) {
        char digits[24];
        const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, v);
        put(digits, static_cast<std::size_t>(end - digits));
    }
    void put_address(const decode::IpAddress& a) {
        char text[INET6_ADDRSTRLEN];
        if (::inet_ntop(a.family == 6 ? AF_INET6 : AF_INET, a.bytes.data(), text, sizeof text) == nullptr) return;
        put(std::string_view(text));
    }
};

}  // namespace

std::size_t ExtraTemplate::render(const dns::Origin& origin, const NameTable& names, Buffer& out,
                                  bool& truncated) const {
    Writer w{out};
    for (const auto& p : pieces_) {
        if (p.literal) {
            w.put(p.text);
            continue;
        }
        switch (p.placeholder) {
        case Placeholder::Interface: w.put(names.name(origin.interface)); break;
        case Placeholder::Comm: w.put(names.name(origin.comm)); break;
        case Placeholder::File: w.put(names.name(origin.file)); break;
        case Placeholder::Vlan:
            if (origin.encap.has_vlan) w.put_number(origin.encap.vlan);
            break;
        case Placeholder::Tunnel:
            if (origin.encap.depth > 0) {
                w.put(decode::kTunnelKindNames[static_cast<std::size_t>(origin.encap.tunnel)]);
                w.put(" ");
                w.put_address(origin.encap.outer_src);
                w.put(">");
                w.put_address(origin.encap.outer_dst);
                if (origin.encap.has_tunnel_id) {
                    w.put(" id=");
                    w.put_number(origin.encap.tunnel_id);
                }
            }
            break;
        case Placeholder::Pid:
            if (origin.pid != 0) w.put_number(origin.pid);
            break;
        case Placeholder::Frame:
            if (origin.frame != 0) w.put_number(origin.frame);
            break;
        // Constants: bind() replaced them; an unbound template leaves them empty.
        case Placeholder::Host:
        case Placeholder::Cgroup:
        case Placeholder::Shard:
        case Placeholder::Count_: break;
        }
    }
    truncated = w.truncated;
    return w.len;
}

}  // namespace sidetap::dnstap
