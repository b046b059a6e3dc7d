#include "output/file_output.h"

#include "framestream/codec.h"
#include "util/error.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace sidetap::output {

FileOutput::FileOutput(std::string path, std::size_t buffer_size)
    : path_(std::move(path)), buffer_(std::max<std::size_t>(buffer_size, kMaxFrameSize + 4)) {
    if (path_ == "-") {
        fd_ = STDOUT_FILENO;
    } else {
        fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd_ < 0) throw util::FatalError("cannot open output " + path_ + ": " + std::strerror(errno));
        owns_fd_ = true;
    }
    std::vector<std::uint8_t> start;
    const std::string_view content_type[] = {framestream::kDnstapContentType};
    framestream::append_control(start, framestream::ControlType::Start, content_type);
    std::memcpy(buffer_.data(), start.data(), start.size());
    used_ = start.size();
}

FileOutput::~FileOutput() { close(); }

bool FileOutput::write_all(const std::uint8_t* data, std::size_t size) {
    while (size > 0) {
        const ssize_t n = ::write(fd_, data, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (!failed_) std::fprintf(stderr, "sidetap: write to %s failed: %s\n", path_.c_str(), std::strerror(errno));
            failed_ = true;
            ++stats_.write_errors;
            return false;
        }
        data += n;
        size -= static_cast<std::size_t>(n);
        stats_.bytes_written += static_cast<std::uint64_t>(n);
    }
    return true;
}

void FileOutput::flush() {
    if (used_ == 0 || failed_) return;
    write_all(buffer_.data(), used_);
    used_ = 0;
}

WriteResult FileOutput::write(std::span<const std::uint8_t> frame) {
    if (frame.size() > kMaxFrameSize || frame.empty()) {
        ++stats_.frames_too_large;
        return WriteResult::TooLarge;
    }
    if (failed_ || closed_) {
        ++stats_.frames_dropped;
        return WriteResult::Failed;
    }
    if (buffer_.size() - used_ < frame.size() + 4) flush();
    framestream::put_be32(buffer_.data() + used_, static_cast<std::uint32_t>(frame.size()));
    std::memcpy(buffer_.data() + used_ + 4, frame.data(), frame.size());
    used_ += frame.size() + 4;
    ++stats_.frames_written;
    return WriteResult::Written;
}

void FileOutput::close() {
    if (closed_) return;
    closed_ = true;
    std::vector<std::uint8_t> stop;
    framestream::append_control(stop, framestream::ControlType::Stop);
    if (buffer_.size() - used_ < stop.size()) flush();
    std::memcpy(buffer_.data() + used_, stop.data(), stop.size());
    used_ += stop.size();
    flush();
    if (owns_fd_ && fd_ >= 0) {
        if (::close(fd_) != 0 && !failed_) {
            std::fprintf(stderr, "sidetap: closing %s failed: %s\n", path_.c_str(), std::strerror(errno));
            failed_ = true;
            ++stats_.write_errors;
        }
    }
    fd_ = -1;
}

}  // namespace sidetap::output
