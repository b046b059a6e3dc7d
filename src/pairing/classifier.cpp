#include "pairing/classifier.h"

#include <algorithm>

namespace sidetap::pairing {

Classifier::Classifier(const ClassifierConfig& config)
    : server_addresses_(config.server_addresses),
      role_(config.role),
      keep_malformed_(config.keep_malformed),
      skipped_(kSkipNames) {
    for (auto port : config.server_ports) server_ports_.set(port);
    dns_ports_ = server_ports_;
    if (role_ == Role::Resolver)
        for (auto port : config.upstream_ports) dns_ports_.set(port);
}

bool Classifier::is_server_address(const decode::IpAddress& address) const {
    return std::find(server_addresses_.begin(), server_addresses_.end(), address) != server_addresses_.end();
}

bool Classifier::classify(const decode::Segment& segment, std::span<const std::uint8_t> wire,
                          std::uint64_t timestamp_ns, dns::DnsMessage& out) {
    const bool to_server_port = dns_ports_[segment.dst_port];
    const bool from_server_port = dns_ports_[segment.src_port];
    if (!to_server_port && !from_server_port) {
        skipped_.add(Skip::NotServerPort);
        return false;
    }
    bool malformed = false;
    const auto status = dns::parse_header_question(wire, out.header, out.question);
    if (status == dns::ParseStatus::TooShort) {
        skipped_.add(Skip::DnsTooShort);
        if (!keep_malformed_) return false;
        malformed = true;
    } else if (status != dns::ParseStatus::Ok) {
        ++bad_question_;
        if (!keep_malformed_) return false;
        malformed = true;
    }

    // Direction: the ports; between two server ports the configured server
    // addresses, then the QR bit (not for a message too short to have one).
    bool is_response;
    bool by_qr = false;
    if (to_server_port && from_server_port) {
        const bool src_is_server = is_server_address(segment.src);
        const bool dst_is_server = is_server_address(segment.dst);
        if (src_is_server != dst_is_server) {
            is_response = src_is_server;
        } else {
            if (status == dns::ParseStatus::TooShort) return false;  // no direction at all
            is_response = out.header.qr;
            by_qr = true;
        }
    } else {
        is_response = from_server_port;
    }
    if (!by_qr && status != dns::ParseStatus::TooShort && is_response != out.header.qr) {
        skipped_.add(Skip::QrDirectionMismatch);
        if (!keep_malformed_) return false;
        malformed = true;
    }
    if (malformed) ++malformed_kept_;

    out.timestamp_ns = timestamp_ns;
    out.transport = segment.transport;
    out.encryption = dns::Encryption::None;
    out.stream_id = 0;
    out.is_response = is_response;
    out.malformed = malformed;
    out.wire = wire;
    if (is_response) {
        out.client = segment.dst;
        out.client_port = segment.dst_port;
        out.server = segment.src;
        out.server_port = segment.src_port;
    } else {
        out.client = segment.src;
        out.client_port = segment.src_port;
        out.server = segment.dst;
        out.server_port = segment.dst_port;
    }
    out.upstream = false;
    if (role_ == Role::Resolver) {
        out.upstream = server_addresses_.empty()
                           ? !server_ports_[out.server_port]
                           : is_server_address(out.client) && !is_server_address(out.server);
    }
    return true;
}

bool Classifier::classify_directed(const DirectedMessage& in, dns::DnsMessage& out) {
    bool malformed = false;
    const auto status = dns::parse_header_question(in.wire, out.header, out.question);
    if (status == dns::ParseStatus::TooShort) {
        skipped_.add(Skip::DnsTooShort);
        if (!keep_malformed_) return false;
        malformed = true;
    } else if (status != dns::ParseStatus::Ok) {
        ++bad_question_;
        if (!keep_malformed_) return false;
        malformed = true;
    }
    const bool is_response = !in.from_client;
    if (status != dns::ParseStatus::TooShort && is_response != out.header.qr) {
        skipped_.add(Skip::QrDirectionMismatch);
        if (!keep_malformed_) return false;
        malformed = true;
    }
    if (malformed) ++malformed_kept_;
    out.timestamp_ns = in.timestamp_ns;
    out.transport = decode::Transport::Tcp;
    out.encryption = in.encryption;
    out.stream_id = in.stream_id;
    out.is_response = is_response;
    out.malformed = malformed;
    out.wire = in.wire;
    out.client = in.client;
    out.client_port = in.client_port;
    out.server = in.server;
    out.server_port = in.server_port;
    out.upstream = role_ == Role::Resolver && in.upstream;
    return true;
}

dnstap::MessageType Classifier::type_of(const dns::DnsMessage& message) const {
    if (role_ == Role::Auth) return message.is_response ? dnstap::MessageType::AuthResponse : dnstap::MessageType::AuthQuery;
    if (message.upstream) return message.is_response ? dnstap::MessageType::ResolverResponse : dnstap::MessageType::ResolverQuery;
    return message.is_response ? dnstap::MessageType::ClientResponse : dnstap::MessageType::ClientQuery;
}

}  // namespace sidetap::pairing
