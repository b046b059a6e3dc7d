// DNS message header and question parsing for the hot path, plus the
// DnsMessage that flows from reassembly to pairing.
//
// Contract: parse_header_question() reads the 12-byte header and, when
// QDCOUNT >= 1, the first question: the name in wire form, ASCII A-Z
// lower-cased, into a fixed buffer, then QTYPE and QCLASS. Compression
// pointers are followed only backwards (to an offset before the pointer),
// at most kMaxPointerJumps times; the name is at most 255 bytes, labels at
// most 63; label types 0x40/0x80 are refused. It never allocates or throws;
// `header` is filled whenever the status is not TooShort, `question.present`
// is true only when the status is Ok and QDCOUNT >= 1 (QDCOUNT 0 is Ok with
// no question).
#pragma once

#include "decode/packet.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <span>
#include <string_view>

namespace sidetap::dns {

inline constexpr std::size_t kHeaderSize = 12;
inline constexpr std::size_t kMaxNameWire = 255;
inline constexpr int kMaxPointerJumps = 128;

struct Header {
    std::uint16_t id = 0;
    std::uint16_t flags = 0;   // the raw flags word (QR .. RCODE)
    bool qr = false;           // true: response
    std::uint8_t opcode = 0;
    std::uint8_t rcode = 0;
    bool tc = false;
    std::uint16_t qdcount = 0;
    std::uint16_t ancount = 0;
    std::uint16_t nscount = 0;
    std::uint16_t arcount = 0;
};

struct Question {
    bool present = false;
    std::uint8_t name_length = 0;                      // wire length, incl. root label
    std::array<std::uint8_t, kMaxNameWire> name{};     // wire form, ASCII lower-cased
    std::uint16_t qtype = 0;
    std::uint16_t qclass = 0;

    [[nodiscard]] std::span<const std::uint8_t> name_view() const { return {name.data(), name_length}; }
    friend bool operator==(const Question& a, const Question& b) {
        return a.present == b.present && a.qtype == b.qtype && a.qclass == b.qclass &&
               std::equal(a.name_view().begin(), a.name_view().end(), b.name_view().begin(), b.name_view().end());
    }
};

enum class ParseStatus : std::uint8_t {
    Ok,
    TooShort,          // fewer than 12 bytes
    BadQuestionName,   // label runs past the end, name > 255, bad label type, pointer loop
    QuestionTruncated, // qtype/qclass missing
};

// Reads the name at `offset` of the message `wire` into `out` in wire form,
// ASCII lower-cased, with the rules above (backward pointers only, at most
// kMaxPointerJumps of them, <= 255 bytes, no 0x40/0x80 label types). On
// success sets `out_length` (>= 1, root label included) and `next` (the
// offset just past the name where it sits: after its first pointer, or
// after its root label) and returns true. Usable for any name in a message.
bool read_name(std::span<const std::uint8_t> wire, std::size_t offset, std::array<std::uint8_t, kMaxNameWire>& out,
               std::uint8_t& out_length, std::size_t& next);

// "ok", "too_short", "bad_question_name", "question_truncated".
std::string_view to_string(ParseStatus status);

ParseStatus parse_header_question(std::span<const std::uint8_t> wire, Header& header, Question& question);

// DNS read inside an encrypted session rather than from packets: the
// plaintext of DNS over TLS and DNS over HTTPS connections (streams/).
enum class Encryption : std::uint8_t { None, Dot, Doh };

// Where a message was seen, for the extra templates (dnstap/extra_template.h).
// Names are ids in the pipeline's NameTable (kNoName: none); zero values
// mean "not known". Fixed size: copied with the message (pairing holds).
//  - Packets: the packet that completed the message (the last segment of a
//    DNS-over-TCP message, the fragment that completed an IP datagram);
//    messages released by a timer or at the end of the input (a TCP gap given
//    up) have no packet facts.
//  - TLS plaintext: the chunk that completed the message (pid, comm).
struct Origin {
    static constexpr std::uint16_t kNoName = 0xffff;
    decode::Encapsulation encap;      // {vlan}, {tunnel}
    std::uint64_t frame = 0;          // {frame}: packet number in its file, from 1
    std::uint32_t pid = 0;            // {pid}: the TLS-probed process
    std::uint16_t interface = kNoName;  // {interface}
    std::uint16_t comm = kNoName;       // {comm}
    std::uint16_t file = kNoName;       // {file}
};

// `= Origin{}` member by member: GCC builds that in a stack temporary with
// overlapping stores and copies it with a wider load, which cannot be
// forwarded from them (a stall per packet: 12% of a --extra replay).
inline void reset(Origin& o) {
    decode::reset(o.encap);
    o.frame = 0;
    o.pid = 0;
    o.interface = Origin::kNoName;
    o.comm = Origin::kNoName;
    o.file = Origin::kNoName;
}

// A DNS message as observed on the wire, direction known.
struct DnsMessage {
    std::uint64_t timestamp_ns = 0;  // time of the packet that completed it
    decode::IpAddress client;        // the initiator (query sender)
    decode::IpAddress server;        // the responder
    std::uint16_t client_port = 0;
    std::uint16_t server_port = 0;
    decode::Transport transport = decode::Transport::Udp;
    Encryption encryption = Encryption::None;  // dnstap socket_protocol DOT/DOH instead of TCP
    std::uint32_t stream_id = 0;               // DoH: the HTTP/2 stream (its query and response pair on it)
    bool is_response = false;
    bool upstream = false;  // the local server is the client (role resolver)
    bool malformed = false; // kept although not well-formed (too short, QR bit against its direction, bad question)
    Header header;
    Question question;
    std::span<const std::uint8_t> wire;  // the DNS message bytes
    Origin origin;                       // filled only when an extra template asks
};

}  // namespace sidetap::dns
