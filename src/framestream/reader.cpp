#include "framestream/reader.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace sidetap::framestream {

std::string describe_size(std::size_t bytes) {
    if (bytes >= (std::size_t{1} << 30) && bytes % (std::size_t{1} << 30) == 0)
        return std::to_string(bytes >> 30) + " GiB";
    if (bytes >= (std::size_t{1} << 20) && bytes % (std::size_t{1} << 20) == 0)
        return std::to_string(bytes >> 20) + " MiB";
    if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes >> 10) + " KiB";
    return std::to_string(bytes) + " bytes";
}

Reader::Reader(Source source, ReaderOptions options) : source_(std::move(source)), options_(options) {
    if (options_.read_chunk < 16) options_.read_chunk = 16;
}

Reader::Reader(int fd, ReaderOptions options)
    : Reader(
          [fd](void* buf, std::size_t size) -> std::ptrdiff_t {
              for (;;) {
                  ssize_t n = ::read(fd, buf, size);
                  if (n >= 0 || errno != EINTR) return n;
              }
          },
          options) {}

Reader::~Reader() {
    if (options_.budget != nullptr && capacity_ != 0) options_.budget->release(capacity_);
}

bool Reader::resize_buffer(std::size_t size) {
    if (size == capacity_) return true;
    if (size > capacity_ && options_.budget != nullptr && !options_.budget->acquire(size - capacity_)) return false;
    auto bigger = std::make_unique_for_overwrite<std::uint8_t[]>(size);
    if (end_ > pos_) std::memcpy(bigger.get(), buffer_.get() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
    buffer_ = std::move(bigger);
    if (size < capacity_ && options_.budget != nullptr) options_.budget->release(capacity_ - size);
    capacity_ = size;
    return true;
}

Reader::Fill Reader::fill(std::size_t need) {
    if (end_ - pos_ >= need) return Fill::Ok;
    if (pos_ == end_) {
        pos_ = end_ = 0;
        // Give a large frame's memory back to the budget once it is consumed.
        if (options_.budget != nullptr && capacity_ > options_.read_chunk) resize_buffer(options_.read_chunk);
    } else if (pos_ > 0) {  // compact: keep the partial frame at the front
        std::memmove(buffer_.get(), buffer_.get() + pos_, end_ - pos_);
        end_ -= pos_;
        pos_ = 0;
    }
    while (end_ < need) {
        if (eof_) return Fill::Eof;
        if (end_ == capacity_) {
            // Full of bytes that really arrived: grow, at most doubling and
            // never past what this frame needs. A claimed length alone
            // allocates nothing.
            const std::size_t size = capacity_ == 0 ? options_.read_chunk : std::min(need, capacity_ * 2);
            if (!resize_buffer(size)) {
                error_ = "out of receive memory: no room to buffer " + std::to_string(need) + " bytes (holding " +
                         std::to_string(end_) + ")";
                fill_failure_ = ReadFailure::OutOfMemory;
                return Fill::Error;
            }
        }
        std::ptrdiff_t n = source_(buffer_.get() + end_, capacity_ - end_);
        if (n < 0) {
            error_ = std::string("read error: ") + std::strerror(errno);
            fill_failure_ = ReadFailure::ReadError;
            return Fill::Error;
        }
        if (n == 0) {
            eof_ = true;
            return Fill::Eof;
        }
        end_ += static_cast<std::size_t>(n);
    }
    return Fill::Ok;
}

void Reader::consume(std::size_t n) {
    pos_ += n;
    consumed_ += n;
}

ReadStatus Reader::fail(std::string message, ReadFailure kind) {
    error_ = std::move(message);
    failure_ = kind;
    state_ = State::Failed;
    return ReadStatus::Error;
}

ReadStatus Reader::fail_fill() { return fail(error_, fill_failure_); }

ReadStatus Reader::read_start() {
    switch (fill(8)) {
    case Fill::Ok:
        break;
    case Fill::Error:
        return fail_fill();
    case Fill::Eof:
        return fail(end_ == pos_ ? "not a Frame Streams stream: empty input"
                                 : "not a Frame Streams stream: truncated START control frame at offset 0");
    }
    const std::uint8_t* p = buffer_.get() + pos_;
    if (get_be32(p) != 0) return fail("not a Frame Streams stream: it does not begin with a START control frame");
    std::uint32_t length = get_be32(p + 4);
    if (length > kControlFrameMax)
        return fail("bad control frame at offset 0: length " + std::to_string(length) + " exceeds " +
                    std::to_string(kControlFrameMax));
    switch (fill(8 + std::size_t{length})) {
    case Fill::Ok:
        break;
    case Fill::Error:
        return fail_fill();
    case Fill::Eof:
        return fail("truncated frame at offset 0 (START control frame)", ReadFailure::Truncated);
    }
    std::string why;
    auto control = decode_control({buffer_.get() + pos_ + 8, length}, why);
    if (!control) return fail("bad control frame at offset 0: " + why);
    if (control->type != ControlType::Start)
        return fail("not a Frame Streams stream: first control frame is " + std::string(to_string(control->type)) +
                    ", not START");
    if (!control->content_types.empty()) {
        content_type_ = control->content_types.front();
        if (!options_.content_type.empty() && content_type_ != options_.content_type)
            return fail("content type \"" + content_type_ + "\" is not \"" + std::string(options_.content_type) +
                        "\"");
    }
    consume(8 + std::size_t{length});
    state_ = State::Data;
    return ReadStatus::Frame;  // internal: "go on"
}

ReadStatus Reader::read_control_in_data(std::uint64_t frame_offset) {
    const std::string where = " at offset " + std::to_string(frame_offset);
    switch (fill(8)) {
    case Fill::Ok:
        break;
    case Fill::Error:
        return fail_fill();
    case Fill::Eof:
        return fail("truncated frame" + where + " (control frame header)", ReadFailure::Truncated);
    }
    std::uint32_t length = get_be32(buffer_.get() + pos_ + 4);
    if (length > kControlFrameMax)
        return fail("bad control frame" + where + ": length " + std::to_string(length) + " exceeds " +
                    std::to_string(kControlFrameMax));
    switch (fill(8 + std::size_t{length})) {
    case Fill::Ok:
        break;
    case Fill::Error:
        return fail_fill();
    case Fill::Eof:
        return fail("truncated frame" + where + " (control frame of " + std::to_string(length) + " bytes)",
                    ReadFailure::Truncated);
    }
    std::string why;
    auto control = decode_control({buffer_.get() + pos_ + 8, length}, why);
    if (!control) return fail("bad control frame" + where + ": " + why);
    consume(8 + std::size_t{length});
    if (control->type == ControlType::Stop) {
        saw_stop_ = true;
        state_ = State::Done;
        return ReadStatus::End;
    }
    return fail("unexpected " + std::string(to_string(control->type)) + " control frame" + where);
}

ReadStatus Reader::next(std::span<const std::uint8_t>& frame) {
    frame = {};
    if (state_ == State::Failed) return ReadStatus::Error;
    if (state_ == State::Done) return ReadStatus::End;
    if (state_ == State::Start) {
        if (read_start() == ReadStatus::Error) return ReadStatus::Error;
    }
    const std::uint64_t frame_offset = consumed_;
    switch (fill(4)) {
    case Fill::Ok:
        break;
    case Fill::Error:
        return fail_fill();
    case Fill::Eof:
        if (end_ == pos_) {  // EOF between frames: a file without STOP
            state_ = State::Done;
            return ReadStatus::End;
        }
        return fail("truncated frame at offset " + std::to_string(frame_offset) + " (" +
                        std::to_string(end_ - pos_) + " of 4 length bytes)",
                    ReadFailure::Truncated);
    }
    const std::uint32_t length = get_be32(buffer_.get() + pos_);
    if (length == 0) return read_control_in_data(frame_offset);
    if (length > options_.max_frame_size)
        return fail("frame of " + std::to_string(length) + " bytes exceeds the " +
                    describe_size(options_.max_frame_size) + " limit (--max-frame-size) at offset " +
                    std::to_string(frame_offset),
                    ReadFailure::TooLarge);
    switch (fill(4 + std::size_t{length})) {
    case Fill::Ok:
        break;
    case Fill::Error:
        return fail_fill();
    case Fill::Eof:
        return fail("truncated frame at offset " + std::to_string(frame_offset) + " (" + std::to_string(length) +
                        "-byte frame, " + std::to_string(end_ - pos_ - 4) + " bytes before end of input)",
                    ReadFailure::Truncated);
    }
    frame = {buffer_.get() + pos_ + 4, length};
    consume(4 + std::size_t{length});
    ++frames_;
    return ReadStatus::Frame;
}

}  // namespace sidetap::framestream
