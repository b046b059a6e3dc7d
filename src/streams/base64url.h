// base64url (RFC 4648 §5) as DNS over HTTPS GET requests carry the query
// (RFC 8484 §4.1: `?dns=`, without padding).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace sidetap::streams {

// Decodes `text` into `out` (replacing its contents). Padding ('=' or its
// percent-encoding %3D) at the end is accepted and ignored. False for any
// other character, or a length that no encoding produces (1 mod 4).
bool decode_base64url(std::string_view text, std::vector<std::uint8_t>& out);

// The value of parameter `name` in the query string of an HTTP :path
// ("/dns-query?ct&dns=AAAB..."); false when the path has no such parameter.
bool query_parameter(std::string_view path, std::string_view name, std::string_view& value);

}  // namespace sidetap::streams
