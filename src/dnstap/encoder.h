// Encoder: one dnstap.Dnstap protobuf per DNS message.
//
// Contract:
//  - One Encoder reuses a single dnstap::Dnstap object and one output
//    buffer: after the first few messages, encode() allocates nothing
//    (protobuf keeps string capacity across Clear()).
//  - The returned span points into the encoder's buffer and is valid until
//    the next encode() call.
//  - Queries carry query_time and query_message; responses carry
//    response_time and response_message, and query_time when the pairing
//    stage found the query (native servers leave it out; users ask for it).
//  - Dnstap.message is always set together with type = MESSAGE.
#pragma once

#include "dns/message.h"
#include "dnstap/message_type.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace dnstap {
class Dnstap;
}

namespace sidetap::dnstap {

struct Envelope {
    std::string identity;
    std::string version;
    std::optional<std::string> extra;
};

class Encoder {
public:
    explicit Encoder(Envelope envelope);
    ~Encoder();
    Encoder(const Encoder&) = delete;
    Encoder& operator=(const Encoder&) = delete;

    // include_wire: put the DNS message bytes in (query_message or
    // response_message); without it the frame has only the metadata.
    std::span<const std::uint8_t> encode(const dns::DnsMessage& message, MessageType type,
                                         std::optional<std::uint64_t> query_time_ns = std::nullopt,
                                         bool include_wire = true);

private:
    Envelope envelope_;
    std::unique_ptr<::dnstap::Dnstap> proto_;
    std::vector<std::uint8_t> buffer_;
};

}  // namespace sidetap::dnstap
