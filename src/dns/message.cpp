#include "dns/message.h"

namespace sidetap::dns {

namespace {

std::uint16_t be16(std::span<const std::uint8_t> b, std::size_t off) {
    return static_cast<std::uint16_t>((b[off] << 8) | b[off + 1]);
}

}  // namespace

bool read_name(std::span<const std::uint8_t> wire, std::size_t offset, std::array<std::uint8_t, kMaxNameWire>& out,
               std::uint8_t& out_length, std::size_t& next) {
    std::size_t pos = offset;
    std::size_t out_len = 0;
    int jumps = 0;
    bool jumped = false;
    for (;;) {
        if (pos >= wire.size()) return false;
        const std::uint8_t len = wire[pos];
        const std::uint8_t kind = len & 0xC0u;
        if (kind == 0xC0) {
            if (pos + 1 >= wire.size()) return false;
            const std::size_t target = (std::size_t{len & 0x3Fu} << 8) | wire[pos + 1];
            // Only backwards: every jump lands before the pointer, and each
            // pass through a loop adds labels, so the 255-byte limit and the
            // jump count both end a loop.
            if (target >= pos || ++jumps > kMaxPointerJumps) return false;
            if (!jumped) next = pos + 2;
            jumped = true;
            pos = target;
            continue;
        }
        if (kind != 0) return false;  // 0x40 (extended) and 0x80 (reserved) label types
        if (len == 0) {
            if (out_len + 1 > kMaxNameWire) return false;
            out[out_len++] = 0;
            if (!jumped) next = pos + 1;
            out_length = static_cast<std::uint8_t>(out_len);
            return true;
        }
        // Room for this label and the root label that must follow.
        if (out_len + 1 + len + 1 > kMaxNameWire) return false;
        if (len > wire.size() - pos - 1) return false;
        out[out_len++] = len;
        for (std::size_t i = 0; i < len; ++i) {
            std::uint8_t c = wire[pos + 1 + i];
            if (c >= 'A' && c <= 'Z') c = static_cast<std::uint8_t>(c + ('a' - 'A'));
            out[out_len++] = c;
        }
        pos += 1 + std::size_t{len};
    }
}

std::string_view to_string(ParseStatus status) {
    switch (status) {
    case ParseStatus::Ok: return "ok";
    case ParseStatus::TooShort: return "too_short";
    case ParseStatus::BadQuestionName: return "bad_question_name";
    case ParseStatus::QuestionTruncated: return "question_truncated";
    }
    return "unknown";
}

ParseStatus parse_header_question(std::span<const std::uint8_t> wire, Header& header, Question& question) {
    // Not `question = {}`: the 255-byte name buffer needs no clearing.
    question.present = false;
    question.name_length = 0;
    question.qtype = 0;
    question.qclass = 0;
    header = Header{};
    if (wire.size() < kHeaderSize) return ParseStatus::TooShort;

    header.id = be16(wire, 0);
    header.flags = be16(wire, 2);
    header.qr = (header.flags & 0x8000u) != 0;
    header.opcode = static_cast<std::uint8_t>((header.flags >> 11) & 0x0Fu);
    header.tc = (header.flags & 0x0200u) != 0;
    header.rcode = static_cast<std::uint8_t>(header.flags & 0x0Fu);
    header.qdcount = be16(wire, 4);
    header.ancount = be16(wire, 6);
    header.nscount = be16(wire, 8);
    header.arcount = be16(wire, 10);
    if (header.qdcount == 0) return ParseStatus::Ok;

    std::size_t end = 0;
    if (!read_name(wire, kHeaderSize, question.name, question.name_length, end)) {
        question.name_length = 0;
        return ParseStatus::BadQuestionName;
    }
    if (end + 4 > wire.size()) {
        question.name_length = 0;
        return ParseStatus::QuestionTruncated;
    }
    question.qtype = be16(wire, end);
    question.qclass = be16(wire, end + 2);
    question.present = true;
    return ParseStatus::Ok;
}

}  // namespace sidetap::dns
