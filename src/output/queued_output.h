// QueuedOutput: the Output every destination uses — a bounded FrameQueue
// with one lane per producer (QueueSettings::producers: the capture shards)
// drained by this output's own I/O thread into a FrameWriter (a file, or a
// Frame Streams socket connection).
//
// Contract:
//  - write() copies the frame into the producer's lane and returns at once;
//    reserve()/commit() let the producer encode straight into it. When the
//    queue is full: with OverflowPolicy::Drop (live capture, listen) the
//    frame is dropped and counted; with OverflowPolicy::Block (replay: never
//    lose data from a file) it waits for room — unless the output has given
//    up (reconnect attempts exhausted), then it drops and counts.
//  - Frames larger than kMaxFrameSize (96 KiB, golang-dnstap's limit) are
//    refused and counted as too_large; they would stop golang-dnstap readers.
//  - The I/O thread writes batches of up to `write_buffer` bytes straight
//    from the queue's rings (FrameWriter::write gets the pieces: writev),
//    when a lane holds a batch's worth or is full, and at least every
//    `flush_interval`. Producers wake it once per batch, not per frame.
//  - When the writer fails (collector absent, connection dropped, write
//    error) the thread reopens it with exponential backoff and full jitter
//    between reconnect_initial and reconnect_max; every new connection gets
//    a fresh handshake and START. Frames of a batch that failed stay queued
//    and are sent again, whole, on the next connection (a collector that
//    read part of that batch before the connection broke gets those frames
//    twice). Frames of earlier batches are not sent again: Frame Streams
//    has no acknowledgements, so what a collector accepted into its socket
//    buffer but never read is lost if it dies — counted as unconfirmed.
//    While disconnected, frames wait in the queue until it is full.
//  - With reconnect_attempts set, the output gives up after that many
//    consecutive failures: it reports an error, counts later frames as
//    dropped, and stats().failed becomes true. Failed opens count, and so
//    does a stream that fails before a single batch got through after it
//    was opened (a file reopened on a disk that is still full); a batch
//    written ends the series.
//  - A writer whose failures are final (reopen_after_failure() false: a
//    pipe whose reader went away, stdout, a device) makes the output give
//    up at the first failed write, without reopening: a stream that was cut
//    cannot be restarted with a second START in the middle.
//  - stats().failed is also set when close() leaves frames undelivered
//    (still queued at the drain deadline, or while disconnected) or the
//    writer could not end its stream (FrameWriter::close() false).
//  - frames_unconfirmed: the writer's unconfirmed_frames() (sockets: frames
//    of connections that ended without FINISH, not known to have been read);
//    each such loss is logged once.
//  - Drops are logged at most every drop_log_interval ("sidetap: dropped N
//    messages for tcp://… in the last 10 s") and are in stats().
//  - request_reopen() (SIGHUP) makes the writer close and reopen between
//    batches when the writer wants that (FrameWriter::reopen_on_request():
//    file outputs, for logrotate; sockets ignore it). Rotation by size/time
//    is the file writer's business (wants_reopen()).
//  - close() drains the queue for at most drain_timeout, ends the stream
//    (STOP; on sockets waits for FINISH, bounded), joins the thread; frames
//    still queued after the timeout are counted as dropped. Idempotent;
//    the destructor calls it. A write in progress on the I/O thread cannot
//    be interrupted, so close() takes at most drain_timeout plus the
//    transport's own write timeout plus finish_timeout.
//  - Accounting: once close() has returned, every frame given to write() is
//    counted exactly once in frames_written, frames_dropped or
//    frames_too_large (empty frames count as too_large: they are not valid
//    data frames). Producers must not race with close() from another
//    thread (close() after every producer has finished); a write after
//    close() drops and counts.
//  - Return values: Written = queued; Dropped = queue full (Drop policy);
//    Failed = the output gave up or is closed; TooLarge = over 96 KiB/empty.
//  - Counters: write_errors counts failed writes and lost connections,
//    failed opens are not write errors (they are logged; after
//    reconnect_attempts they set failed). reconnects counts successful opens
//    after the first (reconnects, rotations and reopens alike).
//  - Logging on stderr, one line per event: the first open failure of an
//    outage (and a changed error), giving up, reconnecting after a logged
//    failure, the first write error of a connection, drop counts.
#pragma once

#include "output/frame_queue.h"
#include "output/output.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

namespace sidetap::output {

struct QueueSettings {
    std::size_t producers = 1;                  // threads that write at once (capture shards): one lane each
    std::size_t queue_frames = 10000;           // --queue (CoreDNS's default), all lanes together
    std::size_t queue_bytes = 64u << 20;         // hard memory bound of the rings, all lanes together
    std::size_t write_buffer = 64u << 10;        // --write-buffer: bytes per write (batch)
    std::chrono::milliseconds flush_interval{1000};
    std::chrono::milliseconds reconnect_initial{100};
    std::chrono::milliseconds reconnect_max{30000};
    std::optional<std::uint32_t> reconnect_attempts;  // consecutive failed opens; unset: retry forever
    std::chrono::milliseconds connect_timeout{5000};   // also bounds the handshake
    std::chrono::milliseconds finish_timeout{2000};    // wait for FINISH after STOP
    // Sockets: the bidirectional handshake (READY/ACCEPT, STOP/FINISH);
    // false (?handshake=none): a unidirectional stream, START … STOP.
    bool handshake = true;
    std::chrono::milliseconds drain_timeout{5000};     // at close()
    std::chrono::milliseconds drop_log_interval{10000};
    OverflowPolicy overflow = OverflowPolicy::Drop;
};

// The far end of a QueuedOutput, used only by its I/O thread (describe()
// excepted: any thread). No method throws.
class FrameWriter {
public:
    virtual ~FrameWriter() = default;
    // Opens the stream: a file is (re)opened and gets START; a socket is
    // connected and does READY → ACCEPT (checked) → START. On failure returns
    // false with `error` set; the caller retries with backoff.
    virtual bool open(std::string& error) = 0;
    // Writes already framed bytes (4-byte length + payload, repeated), in
    // pieces that each hold whole frames (one writev).
    virtual bool write(std::span<const std::span<const std::uint8_t>> pieces, std::string& error) = 0;
    // Ends the stream: STOP (and FINISH for sockets), then closes. Returns
    // false when the stream could not be ended as it must be (a file without
    // its STOP): the output then counts as failed.
    virtual bool close() = 0;
    // Called between batches; true when the writer wants close()+open()
    // (file rotation by size or time).
    virtual bool wants_reopen(std::chrono::steady_clock::time_point /*now*/) { return false; }
    // True when a connected peer has gone away while idle. Checked before
    // every batch and when idle, so a collector that closed after reading
    // everything is noticed before the next batch goes into a dead socket.
    virtual bool broken() { return false; }
    // request_reopen() (SIGHUP) reached the I/O thread: true when the writer
    // wants close()+open() for it (regular files, for logrotate).
    virtual bool reopen_on_request() { return false; }
    // False when a failed write is final (a pipe whose reader went away, a
    // device): the output gives up at once instead of reopening.
    virtual bool reopen_after_failure() { return true; }
    // Frames written on streams that ended without the peer confirming them
    // (sockets: no FINISH), and not known to have been read: a running total.
    [[nodiscard]] virtual std::uint64_t unconfirmed_frames() const { return 0; }
    [[nodiscard]] virtual const std::string& describe() const = 0;
};

class QueuedOutput final : public Output {
public:
    QueuedOutput(std::unique_ptr<FrameWriter> writer, const QueueSettings& settings);
    ~QueuedOutput() override;
    QueuedOutput(const QueuedOutput&) = delete;
    QueuedOutput& operator=(const QueuedOutput&) = delete;

    [[nodiscard]] std::size_t producers() const override;
    FrameSink& producer(std::size_t index) override;
    void flush() override;   // asks the I/O thread to flush now
    void close() override;
    [[nodiscard]] OutputStats stats() const override;
    [[nodiscard]] const std::string& name() const override;
    void request_reopen() override;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sidetap::output
