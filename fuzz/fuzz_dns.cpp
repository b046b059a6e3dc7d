// Fuzz target: DNS header + first question (dns::parse_header_question).
//
// Input: one DNS message, as it would sit in a UDP payload.
//
// Checks: the parsed name obeys the limits of the contract (<= 255 bytes
// with the root label, labels <= 63, no upper-case ASCII, exactly one root
// label at the end) and matches an independent straightforward reading of
// the name written from the contract in message.h (backward pointers only,
// at most kMaxPointerJumps, 0x40/0x80 label types refused).
#include "fuzz_common.h"

#include "dns/message.h"

#include <array>
#include <cstring>

namespace {

using namespace sidetap;

// Reference reader: the contract, written plainly. Returns false for a name
// the contract refuses.
bool reference_name(std::span<const std::uint8_t> wire, std::size_t pos, std::array<std::uint8_t, 256>& out,
                    std::size_t& out_len, std::size_t& next) {
    out_len = 0;
    int jumps = 0;
    bool jumped = false;
    while (true) {
        if (pos >= wire.size()) return false;
        const std::uint8_t len = wire[pos];
        if ((len & 0xC0) == 0xC0) {
            if (pos + 1 >= wire.size()) return false;
            const std::size_t target = static_cast<std::size_t>(((len & 0x3F) << 8) | wire[pos + 1]);
            if (target >= pos) return false;
            if (++jumps > dns::kMaxPointerJumps) return false;
            if (!jumped) next = pos + 2;
            jumped = true;
            pos = target;
            continue;
        }
        if ((len & 0xC0) != 0) return false;
        if (out_len + 1 + len > dns::kMaxNameWire) return false;
        out[out_len++] = len;
        if (len == 0) {
            if (!jumped) next = pos + 1;
            return true;
        }
        if (pos + 1 + len > wire.size()) return false;
        for (std::size_t i = 0; i < len; ++i) {
            std::uint8_t c = wire[pos + 1 + i];
            if (c >= 'A' && c <= 'Z') c = static_cast<std::uint8_t>(c - 'A' + 'a');
            out[out_len++] = c;
        }
        pos += 1 + len;
    }
}

void check_name_shape(std::span<const std::uint8_t> name) {
    FUZZ_CHECK(!name.empty() && name.size() <= dns::kMaxNameWire);
    std::size_t i = 0;
    while (true) {
        FUZZ_CHECK(i < name.size());
        const std::uint8_t len = name[i];
        FUZZ_CHECK(len <= 63);
        if (len == 0) break;
        FUZZ_CHECK(i + 1 + len < name.size());  // room for the root label after it
        for (std::size_t k = 0; k < len; ++k) FUZZ_CHECK(!(name[i + 1 + k] >= 'A' && name[i + 1 + k] <= 'Z'));
        i += 1 + len;
    }
    FUZZ_CHECK(i + 1 == name.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> wire(data, size);
    dns::Header header;
    dns::Question question;
    const auto status = dns::parse_header_question(wire, header, question);

    if (size < dns::kHeaderSize) {
        FUZZ_CHECK(status == dns::ParseStatus::TooShort);
        FUZZ_CHECK(!question.present);
        return 0;
    }
    FUZZ_CHECK(status != dns::ParseStatus::TooShort);
    FUZZ_CHECK(header.id == ((data[0] << 8) | data[1]));
    FUZZ_CHECK(header.flags == ((data[2] << 8) | data[3]));
    FUZZ_CHECK(header.qr == ((data[2] & 0x80) != 0));
    FUZZ_CHECK(header.opcode == ((data[2] >> 3) & 0x0F));
    FUZZ_CHECK(header.rcode == (data[3] & 0x0F));
    FUZZ_CHECK(header.qdcount == ((data[4] << 8) | data[5]));
    FUZZ_CHECK(header.arcount == ((data[10] << 8) | data[11]));

    if (header.qdcount == 0) {
        FUZZ_CHECK(status == dns::ParseStatus::Ok);
        FUZZ_CHECK(!question.present);
        return 0;
    }

    std::array<std::uint8_t, 256> ref{};
    std::size_t ref_len = 0;
    std::size_t ref_next = 0;
    const bool ref_ok = reference_name(wire, dns::kHeaderSize, ref, ref_len, ref_next);
    if (!ref_ok) {
        FUZZ_CHECK(status == dns::ParseStatus::BadQuestionName);
        FUZZ_CHECK(!question.present);
        return 0;
    }
    if (ref_next + 4 > size) {
        FUZZ_CHECK(status == dns::ParseStatus::QuestionTruncated);
        FUZZ_CHECK(!question.present);
        return 0;
    }
    FUZZ_CHECK(status == dns::ParseStatus::Ok);
    FUZZ_CHECK(question.present);
    check_name_shape(question.name_view());
    FUZZ_CHECK(question.name_length == ref_len);
    FUZZ_CHECK(std::memcmp(question.name.data(), ref.data(), ref_len) == 0);
    FUZZ_CHECK(question.qtype == ((data[ref_next] << 8) | data[ref_next + 1]));
    FUZZ_CHECK(question.qclass == ((data[ref_next + 2] << 8) | data[ref_next + 3]));

    // read_name() on the same offset agrees with parse_header_question().
    std::array<std::uint8_t, dns::kMaxNameWire> again{};
    std::uint8_t again_len = 0;
    std::size_t again_next = 0;
    FUZZ_CHECK(dns::read_name(wire, dns::kHeaderSize, again, again_len, again_next));
    FUZZ_CHECK(again_len == question.name_length && again_next == ref_next);
    return 0;
}
