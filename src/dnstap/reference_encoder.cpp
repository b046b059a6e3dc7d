#include "dnstap/reference_encoder.h"

#include "dnstap.pb.h"

namespace sidetap::dnstap {

namespace {
constexpr std::uint64_t kNanosPerSecond = 1'000'000'000;

// Assigns into the field's existing std::string so its capacity is reused;
// the generated set_xxx(ptr, size) builds a temporary string each time.
void assign(std::string* field, const void* data, std::size_t size) {
    field->assign(static_cast<const char*>(data), size);
}
}  // namespace

ReferenceEncoder::ReferenceEncoder(Envelope envelope) : envelope_(std::move(envelope)), proto_(std::make_unique<::dnstap::Dnstap>()) {
}

ReferenceEncoder::~ReferenceEncoder() = default;

std::span<const std::uint8_t> ReferenceEncoder::encode(const dns::DnsMessage& message, MessageType type,
                                              std::optional<std::uint64_t> query_time_ns, bool include_wire) {
    auto& d = *proto_;
    // Clear() keeps allocated string capacity, so refilling allocates nothing
    // once the buffers have grown to the largest message seen.
    d.Clear();
    d.set_type(::dnstap::Dnstap::MESSAGE);
    if (!envelope_.identity.empty()) assign(d.mutable_identity(), envelope_.identity.data(), envelope_.identity.size());
    if (!envelope_.version.empty()) assign(d.mutable_version(), envelope_.version.data(), envelope_.version.size());
    if (envelope_.extra) assign(d.mutable_extra(), envelope_.extra->data(), envelope_.extra->size());

    auto& m = *d.mutable_message();
    m.set_type(static_cast<::dnstap::Message::Type>(type));
    m.set_socket_family(message.client.family == 6 ? ::dnstap::INET6 : ::dnstap::INET);
    switch (message.encryption) {
        case dns::Encryption::None:
            m.set_socket_protocol(message.transport == decode::Transport::Tcp ? ::dnstap::TCP : ::dnstap::UDP);
            break;
        case dns::Encryption::Dot: m.set_socket_protocol(::dnstap::DOT); break;
        case dns::Encryption::Doh:
            m.set_socket_protocol(::dnstap::DOH);
            m.set_http_protocol(::dnstap::HTTP2);
            break;
    }
    const auto client = message.client.view();
    const auto server = message.server.view();
    assign(m.mutable_query_address(), client.data(), client.size());
    assign(m.mutable_response_address(), server.data(), server.size());
    m.set_query_port(message.client_port);
    m.set_response_port(message.server_port);

    if (message.is_response) {
        if (query_time_ns) {
            m.set_query_time_sec(*query_time_ns / kNanosPerSecond);
            m.set_query_time_nsec(static_cast<std::uint32_t>(*query_time_ns % kNanosPerSecond));
        }
        m.set_response_time_sec(message.timestamp_ns / kNanosPerSecond);
        m.set_response_time_nsec(static_cast<std::uint32_t>(message.timestamp_ns % kNanosPerSecond));
        if (include_wire) assign(m.mutable_response_message(), message.wire.data(), message.wire.size());
    } else {
        m.set_query_time_sec(message.timestamp_ns / kNanosPerSecond);
        m.set_query_time_nsec(static_cast<std::uint32_t>(message.timestamp_ns % kNanosPerSecond));
        if (include_wire) assign(m.mutable_query_message(), message.wire.data(), message.wire.size());
    }

    const auto size = d.ByteSizeLong();
    if (buffer_.size() < size) buffer_.resize(size);
    d.SerializeWithCachedSizesToArray(buffer_.data());
    return {buffer_.data(), size};
}

}  // namespace sidetap::dnstap
