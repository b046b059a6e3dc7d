#include "streams/base64url.h"

#include <array>

namespace sidetap::streams {

namespace {
constexpr std::array<std::int8_t, 256> make_table() {
    std::array<std::int8_t, 256> t{};
    for (auto& v : t) v = -1;
    const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(abc[i])] = static_cast<std::int8_t>(i);
    return t;
}
constexpr auto kTable = make_table();
}  // namespace

bool decode_base64url(std::string_view text, std::vector<std::uint8_t>& out) {
    out.clear();
    for (;;) {
        if (!text.empty() && text.back() == '=') {
            text.remove_suffix(1);
        } else if (text.size() >= 3 && (text.substr(text.size() - 3) == "%3D" || text.substr(text.size() - 3) == "%3d")) {
            text.remove_suffix(3);
        } else {
            break;
        }
    }
    if (text.size() % 4 == 1) return false;
    out.reserve(text.size() * 3 / 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (const char c : text) {
        const int v = kTable[static_cast<unsigned char>(c)];
        if (v < 0) return false;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<std::uint8_t>(acc >> bits));
        }
    }
    return true;
}

bool query_parameter(std::string_view path, std::string_view name, std::string_view& value) {
    const auto q = path.find('?');
    if (q == std::string_view::npos) return false;
    std::string_view rest = path.substr(q + 1);
    const auto hash = rest.find('#');
    if (hash != std::string_view::npos) rest = rest.substr(0, hash);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view item = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        if (item.size() > name.size() && item.substr(0, name.size()) == name && item[name.size()] == '=') {
            value = item.substr(name.size() + 1);
            return true;
        }
    }
    return false;
}

}  // namespace sidetap::streams
