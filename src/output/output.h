// Output: where encoded dnstap frames go.
//
// Contract:
//  - Frames come in through producer handles (FrameSink): producers() of
//    them, fixed when the output is made, so that several capture threads
//    (shards) feed one output without sharing a lock: each handle is used
//    by one thread at a time, different handles by different threads at
//    once. write() is producer(0).write().
//  - FrameSink::write() takes one serialized Dnstap message (the data-frame
//    payload, without the length prefix), copies it and never blocks the
//    packet path for long (the queue's overflow policy decides). The frame
//    bytes are only borrowed for the call. reserve()/commit() are the same
//    without the copy: the caller encodes straight into the output's queue.
//  - stats() may be called from any thread (periodic stats, metrics).
//  - close() ends the stream properly (STOP for files; STOP/FINISH for
//    sockets) and is idempotent; destructors call it.
//  - Setup errors (cannot open) throw util::FatalError from the factory or
//    constructor; I/O errors during write() are reported as WriteResult and
//    counted.
//  - stats().failed is what the exit code reports: the output gave up
//    (reconnect attempts exhausted, a pipe whose reader went away, a write
//    error on a target that cannot be reopened) or ended with frames it
//    could not deliver (left queued at close, STOP not written).
//  - Frame Streams has no acknowledgements: a frame handed to a socket
//    (frames_written) may still be lost if the collector dies before
//    reading it. frames_unconfirmed counts the frames of connections that
//    ended without FINISH that the collector was not known to have read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace sidetap::output {

// golang-dnstap stops reading a stream at the first data frame larger than
// this (MaxPayloadSize), so no output ever writes one.
inline constexpr std::size_t kMaxFrameSize = 96 * 1024;

enum class WriteResult : std::uint8_t { Written, Dropped, TooLarge, Failed };

struct OutputStats {
    std::uint64_t frames_written = 0;    // handed to the file / socket
    std::uint64_t bytes_written = 0;
    std::uint64_t frames_dropped = 0;    // queue full, given up, or left at shutdown
    std::uint64_t frames_too_large = 0;  // over 96 KiB
    std::uint64_t write_errors = 0;      // failed writes / lost connections
    std::uint64_t reconnects = 0;        // successful (re)opens after the first
    std::uint64_t open_failures = 0;     // failed connects/handshakes/opens (collector absent...)
    // Written to a connection that then ended without FINISH, and not known
    // to have been read by the collector (see socket_writer.h): possibly lost.
    std::uint64_t frames_unconfirmed = 0;
    std::uint64_t queue_depth = 0;       // frames waiting now
    bool connected = false;
    bool failed = false;                 // gave up or lost frames: the exit code reports it
};

// One producer's handle on an output (see the contract above).
class FrameSink {
public:
    virtual ~FrameSink() = default;
    virtual WriteResult write(std::span<const std::uint8_t> frame) = 0;
    // Room for one frame of exactly `size` bytes in the output's own memory,
    // for the caller to fill and then publish with commit(). nullptr when
    // the frame is not taken, with `result` saying why (counted as for
    // write(): Dropped, Failed or TooLarge).
    virtual std::uint8_t* reserve(std::size_t size, WriteResult& result) = 0;
    virtual void commit() = 0;
};

class Output {
public:
    virtual ~Output() = default;
    [[nodiscard]] virtual std::size_t producers() const { return 1; }
    virtual FrameSink& producer(std::size_t index) = 0;
    WriteResult write(std::span<const std::uint8_t> frame) { return producer(0).write(frame); }
    virtual void flush() = 0;
    virtual void close() = 0;
    // A consistent snapshot; safe to call from any thread.
    [[nodiscard]] virtual OutputStats stats() const = 0;
    [[nodiscard]] virtual const std::string& name() const = 0;
    // SIGHUP: reopen files (logrotate). Default: nothing to do.
    virtual void request_reopen() {}
};

}  // namespace sidetap::output
