// FileOutput: a unidirectional Frame Streams file (START, data frames, STOP).
//
// Contract:
//  - The constructor opens the path ("-" = stdout) and writes START with the
//    dnstap content type; it throws util::FatalError if the file cannot be
//    opened.
//  - write() appends one data frame into an in-memory buffer of
//    `buffer_size` bytes, written out with one write(2) when full; no
//    allocation per frame. Frames larger than kMaxFrameSize are refused
//    (WriteResult::TooLarge, counted) because golang-dnstap stops reading a
//    stream at the first frame over 96 KiB.
//  - close() flushes and writes STOP; it is called by the destructor, so a
//    file always ends with STOP unless the process is killed with SIGKILL.
//  - A write(2) error is reported once on stderr, counted in write_errors,
//    and further frames are counted as dropped.
#pragma once

#include "output/output.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sidetap::output {


class FileOutput final : public Output {
public:
    explicit FileOutput(std::string path, std::size_t buffer_size = 256 * 1024);
    ~FileOutput() override;
    FileOutput(const FileOutput&) = delete;
    FileOutput& operator=(const FileOutput&) = delete;

    WriteResult write(std::span<const std::uint8_t> frame) override;
    void flush() override;
    void close() override;
    [[nodiscard]] OutputStats stats() const override { return stats_; }
    [[nodiscard]] const std::string& name() const override { return path_; }
    [[nodiscard]] bool failed() const { return failed_; }

private:
    bool write_all(const std::uint8_t* data, std::size_t size);

    std::string path_;
    int fd_ = -1;
    bool owns_fd_ = false;
    bool failed_ = false;
    bool closed_ = false;
    std::vector<std::uint8_t> buffer_;
    std::size_t used_ = 0;
    OutputStats stats_;
};

}  // namespace sidetap::output
