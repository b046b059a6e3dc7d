// Frame Streams pull reader: turns a byte stream (a dnstap file, or the part
// of a socket stream after the READY/ACCEPT handshake) into data frames.
//
// Usage (file):
//
//     int fd = ::open(path, O_RDONLY | O_CLOEXEC);       // caller owns fd
//     sidetap::framestream::Reader reader(fd, {.max_frame_size = limit});
//     std::span<const std::uint8_t> frame;
//     for (;;) {
//         auto status = reader.next(frame);
//         if (status == sidetap::framestream::ReadStatus::Frame) { handle(frame); continue; }
//         if (status == sidetap::framestream::ReadStatus::Error)
//             fail(path + ": " + reader.error());           // frames before it were all yielded
//         break;                                           // End: STOP, or EOF between frames
//     }
//
// Usage (any source): pass a callable `std::ptrdiff_t(void* buf, std::size_t size)`
// that returns the number of bytes read (> 0), 0 at end of stream, or < 0 on
// error with errno set:  `Reader reader([&](void* b, std::size_t n) { ... });`
//
// Contract:
//  - The stream must begin with a START control frame. Its content type, if
//    present, must equal `options.content_type` (default
//    "protobuf:dnstap.Dnstap"; an empty option accepts any). A START without a
//    content type is accepted (as golang-dnstap does); content_type() is then
//    empty. Anything else first (a data frame, READY, ...) is an error.
//  - Data frames are yielded as spans into the reader's own buffer, valid
//    until the next call to next(). The buffer grows to the largest frame
//    seen and is reused: no allocation per frame after warm-up.
//  - Memory follows the bytes that arrived, not the lengths they claim: the
//    buffer starts at `read_chunk` (allocated at the first read) and grows,
//    at most doubling, only when it is full of received bytes, so a length
//    prefix of 1 MiB followed by 10 bytes costs one chunk. With a
//    `budget`, every byte of buffer is acquired from it first (and released
//    when the buffer shrinks or the reader is destroyed); after a frame
//    larger than the chunk, the buffer shrinks back to one chunk as soon as
//    it is empty. A refused acquisition is an error (failure() =
//    OutOfMemory); the frames before it were all yielded.
//  - STOP ends the stream (saw_stop() = true); bytes after it are not read.
//    EOF right after a complete frame (no STOP) is also a normal End.
//  - Errors (ReadStatus::Error, message in error(); next() keeps returning
//    Error afterwards):
//      "frame of N bytes exceeds the 1 MiB limit (--max-frame-size)"
//      "truncated frame at offset X (...)"   EOF inside a frame; every
//                                            complete frame before it was yielded
//      "content type \"...\" is not \"protobuf:dnstap.Dnstap\""
//      "not a Frame Streams stream: ..."     missing START / empty input
//      "unexpected <TYPE> control frame at offset X", "bad control frame ...",
//      "read error: <strerror>"
//      "out of receive memory: ..."          the budget refused to grow
//    failure() tells them apart without parsing the message.
//  - The reader never decodes the protobuf: a malformed Dnstap payload is
//    still a frame (see present::decode()).
//  - Not thread-safe; one reader per stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "framestream/codec.h"

namespace sidetap::framestream {

inline constexpr std::size_t kDefaultMaxFrameSize = std::size_t{1} << 20;  // libfstrm's default

// Memory that several readers share (the listener's --max-receive-memory).
// acquire() may wait (the listener frees memory held by idle connections);
// false means refused. Called from the reader's thread; implementations are
// thread-safe when readers run on several threads.
class BufferBudget {
public:
    virtual bool acquire(std::size_t bytes) = 0;
    virtual void release(std::size_t bytes) noexcept = 0;

protected:
    ~BufferBudget() = default;
};

struct ReaderOptions {
    // Largest data frame accepted (payload bytes, without the 4-byte length).
    std::size_t max_frame_size = kDefaultMaxFrameSize;
    // Content type START must carry (when it carries one). Empty = any.
    std::string_view content_type = kDnstapContentType;
    // Initial buffer size and the most asked of the source at once while
    // the buffer holds no partial frame.
    std::size_t read_chunk = std::size_t{64} << 10;
    // Optional; must outlive the reader.
    BufferBudget* budget = nullptr;
};

enum class ReadStatus { Frame, End, Error };

// Why next() returned Error.
enum class ReadFailure { None, TooLarge, Truncated, OutOfMemory, ReadError, Format };

class Reader {
public:
    // Returns bytes read (> 0), 0 at end of stream, < 0 on error (errno set).
    using Source = std::function<std::ptrdiff_t(void* buffer, std::size_t size)>;

    explicit Reader(Source source, ReaderOptions options = {});
    // Reads from a file descriptor (retries EINTR). Does not take ownership.
    explicit Reader(int fd, ReaderOptions options = {});
    ~Reader();
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;

    // Next data frame into `frame`. See the contract above.
    ReadStatus next(std::span<const std::uint8_t>& frame);

    [[nodiscard]] const std::string& error() const { return error_; }
    [[nodiscard]] ReadFailure failure() const { return failure_; }
    // Bytes of buffer held now (what the budget has granted).
    [[nodiscard]] std::size_t buffer_size() const { return capacity_; }
    [[nodiscard]] const std::string& content_type() const { return content_type_; }
    [[nodiscard]] bool saw_stop() const { return saw_stop_; }
    [[nodiscard]] std::uint64_t frames() const { return frames_; }
    // Stream offset of the next unread frame (bytes consumed so far).
    [[nodiscard]] std::uint64_t offset() const { return consumed_; }

private:
    enum class State { Start, Data, Done, Failed };
    enum class Fill { Ok, Eof, Error };

    Fill fill(std::size_t need);  // make `need` bytes available at pos_
    bool resize_buffer(std::size_t size);  // false: the budget refused
    ReadStatus fail(std::string message, ReadFailure kind = ReadFailure::Format);
    ReadStatus fail_fill();  // after Fill::Error: keeps the reason fill() set
    ReadStatus read_start();
    ReadStatus read_control_in_data(std::uint64_t frame_offset);
    void consume(std::size_t n);

    Source source_;
    ReaderOptions options_;
    // Not a vector: no zero-filling of bytes about to be read over, and the
    // size is exactly what was asked (vector growth may double it).
    std::unique_ptr<std::uint8_t[]> buffer_;
    std::size_t capacity_ = 0;
    std::size_t pos_ = 0;  // first unconsumed byte in buffer_
    std::size_t end_ = 0;  // one past the last valid byte in buffer_
    bool eof_ = false;
    State state_ = State::Start;
    std::string error_;
    ReadFailure failure_ = ReadFailure::None;
    ReadFailure fill_failure_ = ReadFailure::None;
    std::string content_type_;
    bool saw_stop_ = false;
    std::uint64_t frames_ = 0;
    std::uint64_t consumed_ = 0;
};

// "1 MiB", "96 KiB", "1000 bytes": how the limit is named in errors.
std::string describe_size(std::size_t bytes);

}  // namespace sidetap::framestream
