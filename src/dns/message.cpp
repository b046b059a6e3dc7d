#include "dns/message.h"

#include <cstring>

namespace sidetap::dns {

namespace {

std::uint16_t be16(std::span<const std::uint8_t> b, std::size_t off) {
    return static_cast<std::uint16_t>((b[off] << 8) | b[off + 1]);
}

}  // namespace

namespace {
// 'A'..'Z' to 'a'..'z' in each byte of `w`, every other byte unchanged
// (SWAR: bit 7 of each byte computes "A <= byte <= Z" without carries
// between bytes, as every byte is first cut to 7 bits).
inline std::uint64_t ascii_lower8(std::uint64_t w) {
    constexpr std::uint64_t kLow7 = 0x7f7f7f7f7f7f7f7fULL;
    constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
    const std::uint64_t low7 = w & kLow7;
    const std::uint64_t above_z = low7 + 0x2525252525252525ULL;  // 0x5b.. reach 0x80
    const std::uint64_t from_a = low7 + 0x3f3f3f3f3f3f3f3fULL;   // 0x41.. reach 0x80
    const std::uint64_t upper = (from_a ^ above_z) & ~w & kHigh;
    return w | (upper >> 2);  // 0x20: clear in 'A'..'Z'
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
        const std::uint8_t* from = wire.data() + pos + 1;
        std::uint8_t* to = out.data() + out_len;
        // Eight bytes at a time when both buffers have room for whole words:
        // the bytes written past the label are overwritten by what follows
        // (the next label, the root label) or lie beyond the name's length.
        const std::size_t words = (std::size_t{len} + 7) / 8 * 8;
        if (words <= wire.size() - pos - 1 && words <= kMaxNameWire - out_len) {
            for (std::size_t i = 0; i < len; i += 8) {
                std::uint64_t w;
                std::memcpy(&w, from + i, 8);
                w = ascii_lower8(w);
                std::memcpy(to + i, &w, 8);
            }
        } else {
            for (std::size_t i = 0; i < len; ++i) {
                const std::uint8_t c = from[i];
                to[i] = static_cast<std::uint8_t>(c + (static_cast<std::uint8_t>(c - 'A') < 26 ? 0x20 : 0));
            }
        }
        out_len += len;
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
