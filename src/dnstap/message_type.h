// dnstap message types (dnstap.proto Message.Type) and their names: the
// full names (CLIENT_QUERY) and golang-dnstap's mnemonics (CQ).
//
// Contract: pure functions, no allocation except parse_type_list()'s error
// text. An unknown value's names are "UNKNOWN" / "??".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sidetap::dnstap {

// Values are the dnstap Message.Type numbers.
enum class MessageType : std::uint8_t {
    AuthQuery = 1,
    AuthResponse = 2,
    ResolverQuery = 3,
    ResolverResponse = 4,
    ClientQuery = 5,
    ClientResponse = 6,
    ForwarderQuery = 7,
    ForwarderResponse = 8,
    StubQuery = 9,
    StubResponse = 10,
    ToolQuery = 11,
    ToolResponse = 12,
    UpdateQuery = 13,
    UpdateResponse = 14,
};

// A set of message types as a bit mask: bit (1 << type value).
inline constexpr std::uint32_t kAllMessageTypes = 0xffffffffu;
inline constexpr std::uint32_t type_bit(MessageType type) { return 1u << static_cast<unsigned>(type); }

std::string_view to_string(MessageType type);
std::string_view short_name(MessageType type);

// Parses a comma-separated list of message types — full names
// (CLIENT_QUERY) or golang-dnstap's mnemonics (CQ), any case — into a bit
// set (bit 1 << type value). nullopt with `error` set for an unknown name
// or an empty list.
std::optional<std::uint32_t> parse_type_list(std::string_view text, std::string& error);

}  // namespace sidetap::dnstap
