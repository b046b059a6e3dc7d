// Http2Session: the DNS messages of one DNS over HTTPS connection (RFC 8484)
// from the plaintext of its two directions: HTTP/2 framing (RFC 9113) and
// HPACK header decompression (RFC 7541, libnghttp2's inflater).
//
// Contract:
//  - feed(from_client, bytes) takes each direction's bytes in order, in
//    pieces of any size (a frame header split across reads, several frames
//    in one). The client's direction starts with the 24-byte connection
//    preface. Frames are gathered whole (up to max_frame_bytes; a larger
//    DATA frame is skipped and its stream counted undecodable, a larger
//    header frame loses the direction's HPACK state).
//  - Header blocks (HEADERS / PUSH_PROMISE + CONTINUATION) of each direction
//    all go through that direction's HPACK decoder, in order, whatever the
//    stream: the dynamic table must see every block. SETTINGS_HEADER_TABLE_SIZE
//    announced by one side raises the table limit of the other side's
//    decoder (never lowers it: a lower limit takes effect only once the
//    encoder has said so in a block).
//  - A request is DoH when it is GET with a `dns` parameter in its :path
//    (base64url, the query; emitted when its header block ends) or POST
//    without a content-type other than application/dns-message (the body,
//    emitted at END_STREAM). A response is emitted at END_STREAM when its
//    request was DoH, its :status is 200 and its content-type, if any, is
//    application/dns-message. sink.on_doh_message(from_client, stream id,
//    wire) gets each, wire valid during the call only.
//  - Per connection at most max_streams streams are open (the oldest is
//    evicted, DohStreamsEvicted); bodies are at most 65535 bytes (a DNS
//    message), a larger one makes its stream undecodable.
//  - gap(direction): bytes of that direction were lost: its framing and
//    HPACK state are gone; nothing more is decoded from it
//    (DohHeaderErrors). The other direction goes on.
//  - Malformed input never throws: it is counted and the direction stops.
//    nghttp2's HPACK tables allocate (bounded by the table sizes the peers
//    announce, at most max_table_bytes each); bodies and buffers keep their
//    capacity for the next stream.
#pragma once

#include "streams/stream_counters.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace sidetap::streams {

class DohSink {
public:
    virtual ~DohSink() = default;
    virtual void on_doh_message(bool from_client, std::uint32_t stream_id, std::span<const std::uint8_t> wire) = 0;
};

struct Http2Limits {
    std::size_t max_streams = 128;              // open streams per connection
    std::size_t max_frame_bytes = 1u << 20;     // gathered whole; the protocol's own limit is 16 MiB
    std::size_t max_header_block = 256u << 10;  // HEADERS + CONTINUATION of one block
    std::size_t max_table_bytes = 64u << 10;    // HPACK dynamic table a peer may ask for
};

class Http2Session {
public:
    Http2Session(const Http2Limits& limits, StreamCounters& counters);
    ~Http2Session();
    Http2Session(const Http2Session&) = delete;
    Http2Session& operator=(const Http2Session&) = delete;

    void feed(bool from_client, std::span<const std::uint8_t> data, DohSink& sink);
    void gap(bool from_client);
    // The connection ended: streams still open are counted as undecodable
    // when their DNS message was still expected.
    void finish();

    [[nodiscard]] bool dead(bool from_client) const;
    // Bytes held (buffers, bodies, an estimate of the HPACK tables).
    [[nodiscard]] std::size_t memory() const;
    [[nodiscard]] std::size_t open_streams() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sidetap::streams
