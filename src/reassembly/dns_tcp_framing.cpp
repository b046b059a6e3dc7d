#include "reassembly/dns_tcp_framing.h"

namespace sidetap::reassembly {

namespace {
bool known_class(std::uint16_t qclass) {
    return qclass == 1 || qclass == 3 || qclass == 4 || qclass == 254 || qclass == 255;
}
}  // namespace

Boundary plausible_boundary(std::span<const std::uint8_t> at) {
    if (at.size() < 2) return Boundary::NeedMore;
    const std::size_t length = framing_be16(at.data());
    if (length < dns::kHeaderSize) return Boundary::No;
    const std::size_t avail = std::min(at.size() - 2, length);
    if (avail < dns::kHeaderSize) return Boundary::NeedMore;

    const std::uint8_t* h = at.data() + 2;
    const std::uint16_t flags = framing_be16(h + 2);
    const bool qr = (flags & 0x8000) != 0;
    const unsigned opcode = (flags >> 11) & 0xF;
    const unsigned rcode = flags & 0xF;
    const std::size_t qd = framing_be16(h + 4), an = framing_be16(h + 6), ns = framing_be16(h + 8),
                      ar = framing_be16(h + 10);
    if (opcode == 3 || opcode > 6) return Boundary::No;
    if (qd > 1) return Boundary::No;
    if (!qr) {
        if (rcode != 0) return Boundary::No;
        // A standard query: one question, no answers, at most an SOA in
        // authority (IXFR) and OPT + TSIG in additional.
        if (opcode == 0 && (qd != 1 || an != 0 || ns > 1 || ar > 2)) return Boundary::No;
    }
    // Smallest possible question 5 bytes, RR 11 bytes.
    if (dns::kHeaderSize + qd * 5 + (an + ns + ar) * 11 > length) return Boundary::No;
    if (qd == 0) return Boundary::Yes;

    dns::Header header;
    dns::Question question;
    const auto status = dns::parse_header_question(std::span(h, avail), header, question);
    if (status == dns::ParseStatus::Ok && question.present)
        return question.qtype != 0 && known_class(question.qclass) ? Boundary::Yes : Boundary::No;
    // The name or its type/class may run past the bytes we have so far.
    if (avail < length && 2 + avail < kFramingDecisionBytes) return Boundary::NeedMore;
    return Boundary::No;
}

}  // namespace sidetap::reassembly
