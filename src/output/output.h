// Output: where encoded dnstap frames go.
//
// Contract:
//  - write() takes one serialized Dnstap message (the data-frame payload,
//    without the length prefix) and never blocks the packet path for long:
//    implementations either buffer (files) or queue (sockets, issue 4).
//  - The frame bytes are only borrowed for the call.
//  - close() ends the stream properly (STOP for files; STOP/FINISH for
//    sockets) and is idempotent; destructors call it.
//  - Setup errors (cannot open) throw util::FatalError from the factory or
//    constructor; I/O errors during write() are reported as WriteResult and
//    counted.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace sidetap::output {

enum class WriteResult : std::uint8_t { Written, Dropped, TooLarge, Failed };

struct OutputStats {
    std::uint64_t frames_written = 0;
    std::uint64_t bytes_written = 0;
    std::uint64_t frames_dropped = 0;
    std::uint64_t frames_too_large = 0;
    std::uint64_t write_errors = 0;
};

class Output {
public:
    virtual ~Output() = default;
    virtual WriteResult write(std::span<const std::uint8_t> frame) = 0;
    virtual void flush() = 0;
    virtual void close() = 0;
    [[nodiscard]] virtual const OutputStats& stats() const = 0;
    [[nodiscard]] virtual const std::string& name() const = 0;
};

}  // namespace sidetap::output
