#include "framestream/codec.h"

namespace sidetap::framestream {

namespace {
void append_be32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    std::uint8_t b[4];
    put_be32(b, v);
    out.insert(out.end(), b, b + 4);
}
}  // namespace

void append_control(std::vector<std::uint8_t>& out, ControlType type,
                    std::span<const std::string_view> content_types) {
    std::uint32_t payload_len = 4;
    for (auto ct : content_types) payload_len += 8 + static_cast<std::uint32_t>(ct.size());
    append_be32(out, 0);  // escape: a zero "length" marks a control frame
    append_be32(out, payload_len);
    append_be32(out, static_cast<std::uint32_t>(type));
    for (auto ct : content_types) {
        append_be32(out, kFieldContentType);
        append_be32(out, static_cast<std::uint32_t>(ct.size()));
        out.insert(out.end(), ct.begin(), ct.end());
    }
}

std::optional<ControlFrame> decode_control(std::span<const std::uint8_t> payload, std::string& error) {
    if (payload.size() > kControlFrameMax) {
        error = "control frame of " + std::to_string(payload.size()) + " bytes exceeds 512";
        return std::nullopt;
    }
    if (payload.size() < 4) {
        error = "control frame shorter than its type";
        return std::nullopt;
    }
    const std::uint32_t raw_type = get_be32(payload.data());
    if (raw_type < 1 || raw_type > 5) {
        error = "unknown control frame type " + std::to_string(raw_type);
        return std::nullopt;
    }
    ControlFrame frame;
    frame.type = static_cast<ControlType>(raw_type);
    std::size_t pos = 4;
    while (pos < payload.size()) {
        if (payload.size() - pos < 8) {
            error = "control field header truncated";
            return std::nullopt;
        }
        const std::uint32_t field_type = get_be32(payload.data() + pos);
        const std::uint32_t field_len = get_be32(payload.data() + pos + 4);
        pos += 8;
        if (field_type != kFieldContentType) {
            error = "unknown control field type " + std::to_string(field_type);
            return std::nullopt;
        }
        if (field_len > kContentTypeMax || field_len > payload.size() - pos) {
            error = "content type field length " + std::to_string(field_len) + " out of range";
            return std::nullopt;
        }
        frame.content_types.emplace_back(reinterpret_cast<const char*>(payload.data() + pos), field_len);
        pos += field_len;
    }
    const bool none_allowed = frame.type == ControlType::Stop || frame.type == ControlType::Finish;
    if (none_allowed && !frame.content_types.empty()) {
        error = std::string(to_string(frame.type)) + " must not carry a content type";
        return std::nullopt;
    }
    if (frame.type == ControlType::Start && frame.content_types.size() > 1) {
        error = "START carries more than one content type";
        return std::nullopt;
    }
    return frame;
}

std::string_view to_string(ControlType type) {
    switch (type) {
        case ControlType::Accept: return "ACCEPT";
        case ControlType::Start: return "START";
        case ControlType::Stop: return "STOP";
        case ControlType::Ready: return "READY";
        case ControlType::Finish: return "FINISH";
    }
    return "UNKNOWN";
}

}  // namespace sidetap::framestream
