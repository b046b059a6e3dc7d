#include "dnstap/encoder.h"

#include "dnstap.pb.h"

namespace sidetap::dnstap {

namespace {
constexpr std::uint64_t kNanosPerSecond = 1'000'000'000;
}

Encoder::Encoder(Envelope envelope) : envelope_(std::move(envelope)), proto_(std::make_unique<::dnstap::Dnstap>()) {
    buffer_.resize(128 * 1024);
}

Encoder::~Encoder() = default;

std::span<const std::uint8_t> Encoder::encode(const dns::DnsMessage& message, pairing::MessageType type,
                                              std::optional<std::uint64_t> query_time_ns) {
    auto& d = *proto_;
    // Clear() keeps allocated string capacity, so refilling allocates nothing
    // once the buffers have grown to the largest message seen.
    d.Clear();
    d.set_type(::dnstap::Dnstap::MESSAGE);
    if (!envelope_.identity.empty()) d.set_identity(envelope_.identity);
    if (!envelope_.version.empty()) d.set_version(envelope_.version);
    if (envelope_.extra) d.set_extra(*envelope_.extra);

    auto& m = *d.mutable_message();
    m.set_type(static_cast<::dnstap::Message::Type>(type));
    m.set_socket_family(message.client.family == 6 ? ::dnstap::INET6 : ::dnstap::INET);
    m.set_socket_protocol(message.transport == decode::Transport::Tcp ? ::dnstap::TCP : ::dnstap::UDP);
    const auto client = message.client.view();
    const auto server = message.server.view();
    m.set_query_address(client.data(), client.size());
    m.set_response_address(server.data(), server.size());
    m.set_query_port(message.client_port);
    m.set_response_port(message.server_port);

    const auto wire = reinterpret_cast<const char*>(message.wire.data());
    if (message.is_response) {
        if (query_time_ns) {
            m.set_query_time_sec(*query_time_ns / kNanosPerSecond);
            m.set_query_time_nsec(static_cast<std::uint32_t>(*query_time_ns % kNanosPerSecond));
        }
        m.set_response_time_sec(message.timestamp_ns / kNanosPerSecond);
        m.set_response_time_nsec(static_cast<std::uint32_t>(message.timestamp_ns % kNanosPerSecond));
        if (envelope_.include_wire) m.set_response_message(wire, message.wire.size());
    } else {
        m.set_query_time_sec(message.timestamp_ns / kNanosPerSecond);
        m.set_query_time_nsec(static_cast<std::uint32_t>(message.timestamp_ns % kNanosPerSecond));
        if (envelope_.include_wire) m.set_query_message(wire, message.wire.size());
    }

    const auto size = d.ByteSizeLong();
    if (buffer_.size() < size) buffer_.resize(size);
    d.SerializeWithCachedSizesToArray(buffer_.data());
    return {buffer_.data(), size};
}

}  // namespace sidetap::dnstap
