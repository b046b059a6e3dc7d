// Output: where encoded dnstap frames go.
//
// Contract:
//  - write() takes one serialized Dnstap message (the data-frame payload,
//    without the length prefix) and never blocks the packet path for long:
//    implementations either buffer (files) or queue (sockets, issue 4).
//  - The frame bytes are only borrowed for the call.
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

class Output {
public:
    virtual ~Output() = default;
    virtual WriteResult write(std::span<const std::uint8_t> frame) = 0;
    virtual void flush() = 0;
    virtual void close() = 0;
    // A consistent snapshot; safe to call from any thread.
    [[nodiscard]] virtual OutputStats stats() const = 0;
    [[nodiscard]] virtual const std::string& name() const = 0;
    // SIGHUP: reopen files (logrotate). Default: nothing to do.
    virtual void request_reopen() {}
};

}  // namespace sidetap::output
