// Encoder: one dnstap.Dnstap protobuf per DNS message, written by hand for
// the fixed set of fields sidetap emits, straight into the caller's memory
// (an output's queue).
//
// Contract:
//  - prepare() encodes everything of one message except its DNS bytes,
//    once; size(wire) and write(out, wire) then produce the frame with the
//    DNS message bytes (query_message / response_message) or without them
//    (outputs with wire=no), so outputs that differ only in `wire` share
//    one encoding. write() writes exactly size() bytes.
//  - The bytes are those libprotobuf writes for the same message (fields in
//    field-number order, as native servers write them): checked byte for
//    byte against ReferenceEncoder in the unit tests and in
//    fuzz/fuzz_encoder.cpp.
//  - Fields: Dnstap.identity and .version when not empty, .extra when set
//    (prepare()'s extra, else the envelope's), .message, .type = MESSAGE
//    (always set together). Message.type, socket_family (INET/INET6),
//    socket_protocol (UDP/TCP, DOT/DOH for TLS plaintext), query_address / query_port (the client),
//    response_address / response_port (the server); queries: query_time
//    and query_message; responses: query_time when the pairing stage found
//    the query (native servers leave it out; users ask for it),
//    response_time and response_message; http_protocol = HTTP2 for DOH.
//  - No allocation after construction (encode() grows its own buffer to
//    the largest frame seen), no exception.
#pragma once

#include "dns/message.h"
#include "dnstap/message_type.h"

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace sidetap::dnstap {

struct Envelope {
    std::string identity;
    std::string version;
    std::optional<std::string> extra;
};

class Encoder {
public:
    explicit Encoder(Envelope envelope);

    // `extra`, when given, replaces the envelope's extra for this message;
    // it must stay valid until the last write() of the message.
    void prepare(const dns::DnsMessage& message, MessageType type,
                 std::optional<std::uint64_t> query_time_ns = std::nullopt,
                 std::optional<std::span<const std::uint8_t>> extra = std::nullopt);
    [[nodiscard]] std::size_t size(bool include_wire) const {
        return include_wire ? fixed_size_ + body_size_wire_ + varint_size(body_size_wire_)
                            : fixed_size_ + body_size_nowire_ + varint_size(body_size_nowire_);
    }
    // Writes the prepared message's frame; `out` holds size(include_wire).
    void write(std::uint8_t* out, bool include_wire) const;

    // prepare() + write() into the encoder's own buffer; the span is valid
    // until the next call (tests, tools).
    std::span<const std::uint8_t> encode(const dns::DnsMessage& message, MessageType type,
                                         std::optional<std::uint64_t> query_time_ns = std::nullopt,
                                         bool include_wire = true);

    static constexpr std::size_t varint_size(std::uint64_t v) {
        std::size_t n = 1;
        while (v >= 0x80) {
            v >>= 7;
            ++n;
        }
        return n;
    }

private:
    Envelope envelope_;
    std::vector<std::uint8_t> head_;  // identity and version fields
    std::span<const std::uint8_t> extra_;
    bool has_extra_ = false;
    // The Message fields before the DNS bytes (at most ~90 bytes).
    std::array<std::uint8_t, 128> body_{};
    std::size_t body_len_ = 0;
    std::uint8_t wire_tag_ = 0;
    std::span<const std::uint8_t> wire_;
    // Message fields after the DNS bytes: http_protocol (DoH).
    std::array<std::uint8_t, 4> tail_{};
    std::size_t tail_len_ = 0;
    std::size_t body_size_nowire_ = 0;  // body and tail
    std::size_t body_size_wire_ = 0;    // body, the DNS bytes field and tail
    std::size_t fixed_size_ = 0;      // head, extra, message tag, type field
    std::vector<std::uint8_t> buffer_;
};

}  // namespace sidetap::dnstap
