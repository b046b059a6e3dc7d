#include "dnstap/encoder.h"

#include <cstring>

namespace sidetap::dnstap {

namespace {
constexpr std::uint64_t kNanosPerSecond = 1'000'000'000;

// Tags: (field number << 3) | wire type (0 varint, 2 length-delimited,
// 5 fixed32).
constexpr std::uint8_t kIdentity = (1 << 3) | 2;
constexpr std::uint8_t kVersion = (2 << 3) | 2;
constexpr std::uint8_t kExtra = (3 << 3) | 2;
constexpr std::uint8_t kMessage = (14 << 3) | 2;
constexpr std::uint8_t kType = (15 << 3) | 0;
constexpr std::uint8_t kDnstapMessage = 1;  // Dnstap.Type MESSAGE

constexpr std::uint8_t kMsgType = (1 << 3) | 0;
constexpr std::uint8_t kSocketFamily = (2 << 3) | 0;
constexpr std::uint8_t kSocketProtocol = (3 << 3) | 0;
constexpr std::uint8_t kQueryAddress = (4 << 3) | 2;
constexpr std::uint8_t kResponseAddress = (5 << 3) | 2;
constexpr std::uint8_t kQueryPort = (6 << 3) | 0;
constexpr std::uint8_t kResponsePort = (7 << 3) | 0;
constexpr std::uint8_t kQueryTimeSec = (8 << 3) | 0;
constexpr std::uint8_t kQueryTimeNsec = (9 << 3) | 5;
constexpr std::uint8_t kQueryMessage = (10 << 3) | 2;
constexpr std::uint8_t kResponseTimeSec = (12 << 3) | 0;
constexpr std::uint8_t kResponseTimeNsec = (13 << 3) | 5;
constexpr std::uint8_t kResponseMessage = (14 << 3) | 2;

constexpr std::uint8_t kInet = 1, kInet6 = 2;
constexpr std::uint8_t kUdp = 1, kTcp = 2, kDot = 3, kDoh = 4;
// http_protocol = 16: a two-byte tag, written after the DNS bytes (field 14).
constexpr std::uint8_t kHttpProtocolTag[2] = {((16 << 3) & 0x7f) | 0x80, (16 << 3) >> 7};
constexpr std::uint8_t kHttp2 = 2;

inline std::uint8_t* put_varint(std::uint8_t* p, std::uint64_t v) {
    while (v >= 0x80) {
        *p++ = static_cast<std::uint8_t>(v | 0x80);
        v >>= 7;
    }
    *p++ = static_cast<std::uint8_t>(v);
    return p;
}

inline std::uint8_t* put_fixed32(std::uint8_t* p, std::uint32_t v) {
    p[0] = static_cast<std::uint8_t>(v);
    p[1] = static_cast<std::uint8_t>(v >> 8);
    p[2] = static_cast<std::uint8_t>(v >> 16);
    p[3] = static_cast<std::uint8_t>(v >> 24);
    return p + 4;
}

inline std::uint8_t* put_bytes(std::uint8_t* p, std::uint8_t tag, const void* data, std::size_t size) {
    *p++ = tag;
    p = put_varint(p, size);
    if (size != 0) std::memcpy(p, data, size);
    return p + size;
}

void append_field(std::vector<std::uint8_t>& out, std::uint8_t tag, const std::string& value) {
    std::uint8_t prefix[11];
    prefix[0] = tag;
    std::uint8_t* end = put_varint(prefix + 1, value.size());
    out.insert(out.end(), &prefix[0], end);
    out.insert(out.end(), value.begin(), value.end());
}
}  // namespace

Encoder::Encoder(Envelope envelope) : envelope_(std::move(envelope)) {
    if (!envelope_.identity.empty()) append_field(head_, kIdentity, envelope_.identity);
    if (!envelope_.version.empty()) append_field(head_, kVersion, envelope_.version);
}

void Encoder::prepare(const dns::DnsMessage& message, MessageType type, std::optional<std::uint64_t> query_time_ns,
                      std::optional<std::span<const std::uint8_t>> extra) {
    if (extra) {
        extra_ = *extra;
        has_extra_ = true;
    } else if (envelope_.extra) {
        extra_ = {reinterpret_cast<const std::uint8_t*>(envelope_.extra->data()), envelope_.extra->size()};
        has_extra_ = true;
    } else {
        extra_ = {};
        has_extra_ = false;
    }

    std::uint8_t* p = body_.data();
    *p++ = kMsgType;
    p = put_varint(p, static_cast<std::uint8_t>(type));
    *p++ = kSocketFamily;
    *p++ = message.client.family == 6 ? kInet6 : kInet;
    *p++ = kSocketProtocol;
    tail_len_ = 0;
    switch (message.encryption) {
        case dns::Encryption::None: *p++ = message.transport == decode::Transport::Tcp ? kTcp : kUdp; break;
        case dns::Encryption::Dot: *p++ = kDot; break;
        case dns::Encryption::Doh:
            *p++ = kDoh;
            tail_[0] = kHttpProtocolTag[0];
            tail_[1] = kHttpProtocolTag[1];
            tail_[2] = kHttp2;
            tail_len_ = 3;
            break;
    }
    const auto client = message.client.view();
    const auto server = message.server.view();
    p = put_bytes(p, kQueryAddress, client.data(), client.size());
    p = put_bytes(p, kResponseAddress, server.data(), server.size());
    *p++ = kQueryPort;
    p = put_varint(p, message.client_port);
    *p++ = kResponsePort;
    p = put_varint(p, message.server_port);
    if (message.is_response) {
        if (query_time_ns) {
            *p++ = kQueryTimeSec;
            p = put_varint(p, *query_time_ns / kNanosPerSecond);
            *p++ = kQueryTimeNsec;
            p = put_fixed32(p, static_cast<std::uint32_t>(*query_time_ns % kNanosPerSecond));
        }
        *p++ = kResponseTimeSec;
        p = put_varint(p, message.timestamp_ns / kNanosPerSecond);
        *p++ = kResponseTimeNsec;
        p = put_fixed32(p, static_cast<std::uint32_t>(message.timestamp_ns % kNanosPerSecond));
        wire_tag_ = kResponseMessage;
    } else {
        *p++ = kQueryTimeSec;
        p = put_varint(p, message.timestamp_ns / kNanosPerSecond);
        *p++ = kQueryTimeNsec;
        p = put_fixed32(p, static_cast<std::uint32_t>(message.timestamp_ns % kNanosPerSecond));
        wire_tag_ = kQueryMessage;
    }
    body_len_ = static_cast<std::size_t>(p - body_.data());
    wire_ = message.wire;
    body_size_nowire_ = body_len_ + tail_len_;
    body_size_wire_ = body_size_nowire_ + 1 + varint_size(wire_.size()) + wire_.size();
    fixed_size_ = head_.size() + (has_extra_ ? 1 + varint_size(extra_.size()) + extra_.size() : 0) + 1 + 2;
}

void Encoder::write(std::uint8_t* out, bool include_wire) const {
    std::uint8_t* p = out;
    if (!head_.empty()) {
        std::memcpy(p, head_.data(), head_.size());
        p += head_.size();
    }
    if (has_extra_) p = put_bytes(p, kExtra, extra_.data(), extra_.size());
    *p++ = kMessage;
    p = put_varint(p, include_wire ? body_size_wire_ : body_size_nowire_);
    std::memcpy(p, body_.data(), body_len_);
    p += body_len_;
    if (include_wire) p = put_bytes(p, wire_tag_, wire_.data(), wire_.size());
    if (tail_len_ != 0) {
        std::memcpy(p, tail_.data(), tail_len_);
        p += tail_len_;
    }
    *p++ = kType;
    *p = kDnstapMessage;
}

std::span<const std::uint8_t> Encoder::encode(const dns::DnsMessage& message, MessageType type,
                                              std::optional<std::uint64_t> query_time_ns, bool include_wire) {
    prepare(message, type, query_time_ns);
    const std::size_t n = size(include_wire);
    if (buffer_.size() < n) buffer_.resize(n);
    write(buffer_.data(), include_wire);
    return {buffer_.data(), n};
}

}  // namespace sidetap::dnstap
