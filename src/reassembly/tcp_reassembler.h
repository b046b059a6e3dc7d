// TcpReassembler: DNS over TCP (RFC 1035 §4.2.2 / RFC 7766) from captured
// segments, both directions of every connection.
//
// Contract:
//  - add() takes one TCP segment (decode::Segment with transport Tcp) and
//    calls sink.on_message(segment, wire, timestamp_ns) once for every DNS
//    message that the segment completes, in stream order. `wire` excludes
//    the 2-byte length prefix and is valid only during the call.
//    `segment` is the one that completed the message (its addresses/ports
//    give the direction) and timestamp_ns is its time. Exception: messages
//    recovered behind a hole (below) or at close are reported with a
//    synthesized Segment (addresses/ports of their direction, seq of their
//    first byte, no payload) carrying the time of the last segment that
//    brought their bytes.
//  - Framing: 2-byte big-endian length L, then L bytes; several messages per
//    segment; a message or its length prefix (even 1 + 1 byte) split across
//    segments. L < 12 cannot be a DNS message: the direction resynchronises.
//  - Sequence numbers are compared modulo 2^32. SYN and FIN each take one
//    sequence number; data in the SYN (TCP Fast Open) is stream data at
//    ISN + 1. Out-of-order segments are kept (per direction: their span
//    plus any unfinished message within max_stream_bytes, at most
//    max_pending_segments ranges) and delivered when the gap fills; for
//    duplicates and overlaps the bytes received first win (Duplicates /
//    Overlaps). FIN closes its direction, and the connection is released
//    when both are closed; RST closes both directions.
//  - Closing out of order (captures from several CPUs or interfaces reorder
//    packets): a FIN ends its direction at the FIN's sequence number, an
//    RST ends the sender's direction at its sequence number and the other
//    direction at its acknowledgement number (without ACK: where it is).
//    A direction whose data up to that end is all here closes at once;
//    otherwise it waits (ReorderedCloses) until the missing bytes arrive or
//    close_grace_ns passes on the caller's clock — then it closes as
//    before. Bytes beyond the end, and data for a closed direction, are
//    dropped (DataAfterClose). A gap the peer acknowledged (below) waits
//    the same grace: the acknowledgement may have been captured before the
//    data. close_grace_ns = 0: no waiting at all.
//  - A SYN that arrives after data of its own direction, with a sequence
//    number at or just before that data (within max_stream_bytes), is the
//    late SYN of the same connection (LateSyns), not a new one. When none of
//    that data was emitted or skipped yet, the direction starts over at the
//    SYN (trusted), the data held becoming out-of-order data.
//  - Alignment: a direction that started with its SYN is trusted: every
//    length prefix is taken as is (L >= 12). A direction picked up without
//    its SYN (NoSynStreams) or resynchronised after a hole is untrusted:
//    every message start must be plausible — L >= 12, a DNS header with
//    opcode 0-2/4-6, QDCOUNT <= 1, counts that fit in L, RCODE 0 in queries,
//    a standard query with exactly one question, no answer, <= 1 authority
//    and <= 2 additional records, and, when QDCOUNT is 1, a question that
//    parses with class IN/CH/HS/NONE/ANY and a non-zero type.
//    Undecidable for lack of bytes means "wait for more". An implausible
//    start is skipped byte by byte (ResyncSkippedBytes) until a plausible
//    one; after more than max_stream_bytes skipped in a row the direction is
//    given up (NotDns) and its data ignored until the connection ends.
//  - Holes: a gap before buffered data is given up when the peer has
//    acknowledged bytes of the gap (the capture lost them; after
//    close_grace_ns, see below), when the direction's
//    out-of-order storage is full, at FIN, RST, idle timeout, eviction or
//    finish(). The message spanning the hole is dropped (Holes) and the
//    direction resynchronises (untrusted) at the data after the hole.
//  - Closing (FIN/RST/timeout/eviction/finish): complete messages still
//    recoverable are emitted, bytes of an unfinished message are counted
//    (PartialAtClose), then the slot is released (StreamsClosed,
//    StreamsTimedOut, StreamsEvicted, StreamsFlushedAtEnd).
//  - A segment with neither payload nor SYN never creates a connection (the
//    final ACK after both FINs does not resurrect it); a SYN with another
//    ISN on a known tuple replaces the old connection (port reuse).
//  - Connections are keyed by the whole tuple with full equality (both
//    directions share one record, endpoints in canonical order); a seeded
//    hash only picks the bucket.
//  - Bounded: max_streams connection slots and their index are reserved at
//    construction; per-direction buffers come from a recycled pool whose
//    storage (in use + spare) never exceeds max_total_bytes — when it would,
//    spare storage is freed, then the least recently active other
//    connections are evicted (StreamsEvicted), then the data is dropped
//    (StreamBufferFull). A new connection with every slot taken evicts the
//    least recently active one. A message longer than a direction may buffer
//    is skipped by its length (StreamBufferFull), framing kept.
//  - Timers run on the caller's clock (`now`, never going back; the
//    overloads without it use the segment's time): add() closes the least
//    recently active connections idle for more than idle_timeout_ns (cheap:
//    the LRU head only) and the closing directions whose grace has passed
//    (a list in deadline order); expire() does the same for a given time.
//    Message times are always the segments' own times.
//  - No allocation per segment in the steady state; no exceptions on the
//    packet path. The constructor throws util::FatalError when max_streams
//    or max_pending_segments is 0 or max_stream_bytes is below 512.
#pragma once

#include "decode/packet.h"
#include "util/counters.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace sidetap::reassembly {

class TcpMessageSink {
public:
    virtual ~TcpMessageSink() = default;
    virtual void on_message(const decode::Segment& segment, std::span<const std::uint8_t> wire,
                            std::uint64_t timestamp_ns) = 0;
};

struct TcpConfig {
    std::size_t max_streams = 65536;
    std::size_t max_stream_bytes = 256u << 10;  // per direction: out-of-order data + one partial message
    std::size_t max_total_bytes = 256u << 20;
    std::uint64_t idle_timeout_ns = 60'000'000'000ULL;
    std::size_t max_pending_segments = 64;  // per direction: out-of-order ranges kept
    std::uint64_t close_grace_ns = 100'000'000ULL;  // FIN/RST before the end of the data: wait this long
};

enum class TcpEvent : std::size_t {
    Segments,             // segments with payload handled
    Messages,             // DNS messages emitted
    StreamsOpened,
    StreamsClosed,        // FIN in both directions, RST, or replaced by a new SYN (port reuse)
    StreamsTimedOut,      // idle longer than idle_timeout_ns
    StreamsEvicted,       // dropped to make room (max_streams / max_total_bytes)
    StreamsFlushedAtEnd,  // still open at finish()
    NoSynStreams,         // directions picked up without their SYN (mid-connection)
    ResyncSkippedBytes,   // bytes skipped looking for a message boundary
    Holes,                // gaps from lost segments (message dropped, resync)
    Duplicates,           // segments entirely already received
    Overlaps,             // segments partly overlapping received data
    OutOfOrder,           // segments buffered ahead of a gap
    StreamBufferFull,     // data dropped or hole forced: max_stream_bytes / max_pending_segments / max_total_bytes
    PartialAtClose,       // bytes of an unfinished message at FIN/RST/timeout/end
    NotDns,               // stream given up: no plausible DNS message boundary
    ReorderedCloses,      // FIN/RST seen before the end of its direction's data: waited for it
    DataAfterClose,       // segments with data for a closed direction, or beyond its FIN/RST: dropped
    LateSyns,             // SYNs that arrived after data of their own direction (same connection)
    Count_
};
inline constexpr std::array<std::string_view, static_cast<std::size_t>(TcpEvent::Count_)> kTcpEventNames{
    "tcp_segments",          "tcp_messages",      "tcp_streams_opened",    "tcp_streams_closed",
    "tcp_streams_timed_out", "tcp_streams_evicted", "tcp_streams_flushed_at_end", "tcp_nosyn_streams",   "tcp_resync_skipped_bytes",
    "tcp_holes",             "tcp_duplicates",    "tcp_overlaps",          "tcp_out_of_order",
    "tcp_stream_buffer_full", "tcp_partial_at_close", "tcp_not_dns",
    "tcp_reordered_closes",  "tcp_data_after_close", "tcp_late_syns"};
using TcpCounters = util::CounterSet<TcpEvent, static_cast<std::size_t>(TcpEvent::Count_)>;

class TcpReassembler {
public:
    explicit TcpReassembler(const TcpConfig& config = {});
    ~TcpReassembler();
    TcpReassembler(const TcpReassembler&) = delete;
    TcpReassembler& operator=(const TcpReassembler&) = delete;

    // `now_ns`: the caller's timer clock (never going back).
    void add(const decode::Segment& segment, std::uint64_t now_ns, TcpMessageSink& sink);
    void add(const decode::Segment& segment, TcpMessageSink& sink) { add(segment, segment.timestamp_ns, sink); }
    // Closes streams idle for longer than idle_timeout_ns before now_ns, and
    // closing directions whose close_grace_ns has passed.
    void expire(std::uint64_t now_ns, TcpMessageSink& sink);
    // End of input: flushes what can still be emitted and closes everything.
    void finish(TcpMessageSink& sink);

    [[nodiscard]] const TcpCounters& counters() const { return counters_; }
    [[nodiscard]] std::size_t active_streams() const;
    // Buffer storage held for stream data (in use + spare kept for reuse);
    // never above max_total_bytes. finish() releases all of it.
    [[nodiscard]] std::size_t buffered_bytes() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    TcpCounters counters_;
};

}  // namespace sidetap::reassembly
