// StreamDecoder: DNS messages from the plaintext of TLS connections (DNS
// over TLS, RFC 7858; DNS over HTTPS over HTTP/2, RFC 8484), the stream
// entry of the pipeline. It sits where the TCP reassembler hands on its
// byte streams: what it emits goes through the same classification,
// pairing, encoding and outputs as captured DNS.
//
// Contract:
//  - add(chunk, now, sink) takes one capture::StreamChunk. Connections are
//    keyed by (process, TLS object, generation), compared exactly.
//  - Protocol, decided per connection from the first bytes, never the port:
//    a direction that starts with the HTTP/2 client preface is the client
//    of a DoH connection; one that starts with two zero bytes is an HTTP/2
//    server (its SETTINGS frame, which servers may send before they read the
//    preface; no DNS message is that short); "GET "/"POST"/"HEAD"/"PUT " is
//    HTTP/1 (not decoded, counted); anything else is DoT. Until a direction
//    has shown enough bytes to decide (at most the 24-byte preface) they
//    wait in a small per-direction buffer.
//  - DoT: each direction through a reassembly::DnsStreamFramer (the same
//    framing as DNS over TCP); trusted from its first byte. Which side is the
//    client (the probed server, or the probed process as a TLS client of an
//    upstream) follows from the QR bit of the first message; for DoH from the
//    side that sent the preface.
//  - DoH: reassembly of HTTP/2 frames and HPACK per direction
//    (Http2Session); each message carries its HTTP/2 stream id, so that a
//    response pairs with the query of its own stream (DoH queries use DNS
//    ID 0).
//  - Lost bytes (a jump of the chunk offset) are a counted gap: a DoT
//    direction resynchronises, a DoH direction stops decoding.
//  - Addresses: a chunk's tuple (when it has one) replaces what the
//    connection knew. Messages of a connection with no known tuple are not
//    emitted (UnattributedMessages). IPv4-mapped IPv6 addresses are given
//    as IPv4.
//  - Message times are the times of the chunks that complete them.
//  - Bounded: at most max_connections connections (a new one evicts the
//    least recently active) and max_total_bytes of buffers and decoder state
//    in all (the least recently active others are evicted first); a
//    connection idle for idle_timeout_ns (on the caller's clock) is dropped.
//    Evictions, timeouts and closes count what was still unfinished.
//  - No exception; no allocation per chunk once a connection's buffers have
//    grown (HPACK tables allocate inside libnghttp2, bounded by the limits).
#pragma once

#include "capture/tls_source.h"
#include "decode/packet.h"
#include "streams/http2_session.h"
#include "streams/stream_counters.h"

#include <cstdint>
#include <memory>
#include <span>

namespace sidetap::streams {

enum class Protocol : std::uint8_t { Dot, Doh };

// One DNS message from a TLS connection.
struct StreamMessage {
    Protocol protocol = Protocol::Dot;
    decode::IpAddress client;
    decode::IpAddress server;
    std::uint16_t client_port = 0;
    std::uint16_t server_port = 0;
    bool from_client = false;        // sent by the TLS client (normally a query)
    bool process_is_client = false;  // the probed process opened the connection (its upstream traffic)
    std::uint32_t stream_id = 0;     // HTTP/2 stream (DoH); 0 for DoT
    std::uint64_t timestamp_ns = 0;
    std::span<const std::uint8_t> wire;
};

class StreamMessageSink {
public:
    virtual ~StreamMessageSink() = default;
    virtual void on_stream_message(const StreamMessage& message) = 0;
};

struct StreamConfig {
    std::size_t max_connections = 4096;
    std::size_t max_total_bytes = 64u << 20;
    std::uint64_t idle_timeout_ns = 600'000'000'000ULL;
    Http2Limits http2;
};

class StreamDecoder {
public:
    explicit StreamDecoder(const StreamConfig& config = {});
    ~StreamDecoder();
    StreamDecoder(const StreamDecoder&) = delete;
    StreamDecoder& operator=(const StreamDecoder&) = delete;

    void add(const capture::StreamChunk& chunk, std::uint64_t now_ns, StreamMessageSink& sink);
    // Drops connections idle for longer than idle_timeout_ns before now_ns.
    void expire(std::uint64_t now_ns, StreamMessageSink& sink);
    // End of input: every connection ends.
    void finish(StreamMessageSink& sink);

    [[nodiscard]] const StreamCounters& counters() const { return counters_; }
    [[nodiscard]] std::size_t active_connections() const;
    [[nodiscard]] std::size_t memory() const;

private:
    struct Impl;
    StreamCounters counters_;  // before impl_, which counts into it
    std::unique_ptr<Impl> impl_;
};

}  // namespace sidetap::streams
