#include "util/units.h"

#include <charconv>

namespace sidetap::util {

namespace {
// Splits "12.5ms" into 12.5 and "ms"; rejects empty numbers and negatives.
std::optional<std::pair<double, std::string_view>> split(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
    if (i == 0) return std::nullopt;
    double value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + i, value);
    if (ec != std::errc() || ptr != text.data() + i) return std::nullopt;
    return std::make_pair(value, text.substr(i));
}
}  // namespace

std::optional<std::uint64_t> parse_duration_ns(std::string_view text) {
    auto parts = split(text);
    if (!parts) return std::nullopt;
    const auto [value, unit] = *parts;
    double scale;
    if (unit.empty() || unit == "s") scale = 1e9;
    else if (unit == "ms") scale = 1e6;
    else if (unit == "us") scale = 1e3;
    else if (unit == "ns") scale = 1;
    else if (unit == "m") scale = 60e9;
    else if (unit == "h") scale = 3600e9;
    else return std::nullopt;
    const double ns = value * scale;
    if (ns > 1e18) return std::nullopt;
    return static_cast<std::uint64_t>(ns);
}

std::optional<std::uint64_t> parse_size_bytes(std::string_view text) {
    auto parts = split(text);
    if (!parts) return std::nullopt;
    auto [value, unit] = *parts;
    if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b')) unit.remove_suffix(1);
    if (unit == "i") return std::nullopt;
    if (unit.size() == 2 && unit[1] == 'i') unit.remove_suffix(1);  // KiB, MiB, GiB
    double scale;
    if (unit.empty()) scale = 1;
    else if (unit == "K" || unit == "k") scale = 1024.0;
    else if (unit == "M" || unit == "m") scale = 1024.0 * 1024;
    else if (unit == "G" || unit == "g") scale = 1024.0 * 1024 * 1024;
    else return std::nullopt;
    const double bytes = value * scale;
    if (bytes > 1e15) return std::nullopt;
    return static_cast<std::uint64_t>(bytes);
}

}  // namespace sidetap::util
