// FileWriter: the FrameWriter of file outputs — a unidirectional Frame
// Streams file: START (content type protobuf:dnstap.Dnstap), data frames,
// STOP.
//
// Contract:
//  - open(): "-" is stdout (never closed, never rotated). A path is opened
//    with O_CREAT|O_TRUNC on the first open (an older file of a previous run
//    is replaced, as before) and START is written. Calling open() on an
//    open writer does nothing and returns true (the factory opens once up
//    front so that an unusable path is a setup error).
//  - Every later open() (rotation, SIGHUP, recovery after a write error)
//    first renames a file still at `path` to
//    `<path>.<YYYYmmddTHHMMSS>[.<n>]` — the UTC time the renamed file was
//    opened, n = 1, 2, … when that name exists — and never overwrites or
//    truncates an existing file. After logrotate has moved the file away
//    (rename, then SIGHUP) there is nothing to rename and a fresh file is
//    created. logrotate's copytruncate does not work with Frame Streams
//    files (the stream would lose its START); use create + postrotate HUP.
//  - write() appends already framed bytes with write(2). If a write fails
//    on a regular file, the file is cut back to the end of the last complete
//    batch so that the STOP written by close() follows a whole frame.
//  - close() writes STOP and closes: every file this writer closes ends
//    with STOP (unless the disk refuses even those 12 bytes).
//  - wants_reopen(): true once the current file holds rotate_size bytes or
//    is rotate_interval old (0 = off). Sizes are checked between batches, so
//    a file can exceed rotate_size by up to one write buffer.
//  - reopen_on_request(): true for regular files (SIGHUP), false for stdout.
#pragma once

#include "output/queued_output.h"

#include <chrono>
#include <cstdint>
#include <ctime>
#include <string>

namespace sidetap::output {

struct FileWriterOptions {
    std::string path;                               // "-" = stdout
    std::uint64_t rotate_size = 0;                  // bytes; 0 = off
    std::chrono::milliseconds rotate_interval{0};   // 0 = off
};

class FileWriter final : public FrameWriter {
public:
    explicit FileWriter(FileWriterOptions options);
    ~FileWriter() override;
    FileWriter(const FileWriter&) = delete;
    FileWriter& operator=(const FileWriter&) = delete;

    bool open(std::string& error) override;
    bool write(std::span<const std::uint8_t> framed, std::string& error) override;
    void close() override;
    bool wants_reopen(std::chrono::steady_clock::time_point now) override;
    bool reopen_on_request() override { return !is_stdout_; }
    [[nodiscard]] const std::string& describe() const override { return options_.path; }

    // The name a file opened at `opened` is renamed to (without the .<n>).
    [[nodiscard]] static std::string rotated_name(const std::string& path, std::time_t opened);

private:
    bool write_all(const std::uint8_t* data, std::size_t size, std::string& error);
    bool move_existing_aside(std::string& error);

    FileWriterOptions options_;
    bool is_stdout_;
    int fd_ = -1;
    bool opened_before_ = false;
    bool regular_file_ = false;
    std::uint64_t file_bytes_ = 0;                  // bytes in the current file (good ones)
    std::chrono::steady_clock::time_point opened_at_{};
    std::time_t opened_wall_ = 0;
};

}  // namespace sidetap::output
