// ReferenceEncoder: the same dnstap frames as Encoder, made by libprotobuf
// (the generated dnstap.pb.h). Not on the packet path: it is what the
// hand-written Encoder is checked against, byte for byte, in the unit tests
// and in fuzz/fuzz_encoder.cpp.
//
// Contract: encode() returns the serialized Dnstap for the message, with
// the fields Encoder::prepare() documents, set the way libprotobuf writes
// them (field-number order); the span is valid until the next call.
#pragma once

#include "dns/message.h"
#include "dnstap/encoder.h"
#include "dnstap/message_type.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace dnstap {
class Dnstap;
}

namespace sidetap::dnstap {

class ReferenceEncoder {
public:
    explicit ReferenceEncoder(Envelope envelope);
    ~ReferenceEncoder();
    ReferenceEncoder(const ReferenceEncoder&) = delete;
    ReferenceEncoder& operator=(const ReferenceEncoder&) = delete;

    std::span<const std::uint8_t> encode(const dns::DnsMessage& message, MessageType type,
                                         std::optional<std::uint64_t> query_time_ns = std::nullopt,
                                         bool include_wire = true);

private:
    Envelope envelope_;
    std::unique_ptr<::dnstap::Dnstap> proto_;
    std::vector<std::uint8_t> buffer_;
};

}  // namespace sidetap::dnstap
