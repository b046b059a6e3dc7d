// Parsing of durations ("500ms", "10s", "5m", "1h", bare number = seconds)
// and sizes ("64K", "16M", "1G", bare number = bytes) for options.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace sidetap::util {

std::optional<std::uint64_t> parse_duration_ns(std::string_view text);
std::optional<std::uint64_t> parse_size_bytes(std::string_view text);

}  // namespace sidetap::util
