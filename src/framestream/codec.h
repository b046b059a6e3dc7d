// Frame Streams (fstrm) wire format: pure encode/decode functions.
//
//   data frame:     be32 length N (N > 0), N bytes
//   control frame:  be32 0 (escape), be32 length L, L bytes of payload
//   control payload: be32 control type, then fields:
//                    be32 field type, be32 length, bytes
//
// Control types: ACCEPT=1, START=2, STOP=3, READY=4, FINISH=5. The only
// field type is CONTENT_TYPE=1. Control payloads are at most 512 bytes and a
// content type at most 256 bytes. START carries 0..1 content types,
// READY/ACCEPT any number, STOP/FINISH none.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sidetap::framestream {

inline constexpr std::string_view kDnstapContentType = "protobuf:dnstap.Dnstap";
inline constexpr std::size_t kControlFrameMax = 512;
inline constexpr std::size_t kContentTypeMax = 256;

enum class ControlType : std::uint32_t { Accept = 1, Start = 2, Stop = 3, Ready = 4, Finish = 5 };
inline constexpr std::uint32_t kFieldContentType = 1;

struct ControlFrame {
    ControlType type = ControlType::Stop;
    std::vector<std::string> content_types;
};

// Appends the complete control frame (escape, length, payload) to `out`.
void append_control(std::vector<std::uint8_t>& out, ControlType type,
                    std::span<const std::string_view> content_types = {});

// Writes the 4-byte big-endian data-frame length prefix.
inline void put_be32(std::uint8_t* p, std::uint32_t v) {
    p[0] = static_cast<std::uint8_t>(v >> 24);
    p[1] = static_cast<std::uint8_t>(v >> 16);
    p[2] = static_cast<std::uint8_t>(v >> 8);
    p[3] = static_cast<std::uint8_t>(v);
}
inline std::uint32_t get_be32(const std::uint8_t* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

// Decodes a control payload (the bytes after escape and length). Returns
// nullopt with `error` set when it violates the rules above.
std::optional<ControlFrame> decode_control(std::span<const std::uint8_t> payload, std::string& error);

std::string_view to_string(ControlType type);

}  // namespace sidetap::framestream
