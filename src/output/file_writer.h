// FileWriter: the FrameWriter of file outputs — a unidirectional Frame
// Streams file: START (content type protobuf:dnstap.Dnstap), data frames,
// STOP.
//
// Contract:
//  - What the path names decides what the writer may do with it. Only a
//    regular file that sidetap opened by its name (directly or through
//    ordinary symlinks) is ever rotated, renamed, truncated, reopened or
//    resumed. Everything else — "-" (stdout, whatever it is), a FIFO, a
//    character device (/dev/null), a socket, and any path that leads
//    through /proc (/dev/stdout, /proc/self/fd/N) — is written in place and
//    never renamed, replaced or reopened: --rotate-size, --rotate-interval
//    and SIGHUP do not apply to it (logged once when rotation was asked
//    for), and a write error on it (EPIPE: the reader of a pipe went away)
//    is final: reopen_after_failure() is false and the output gives up.
//  - Descriptors that may be non-blocking (an inherited stdout, a pipe):
//    EAGAIN waits for POLLOUT; it is never an error.
//  - open(), first call: the path is opened with O_CREAT|O_TRUNC (an older
//    file of a previous run is replaced, as before; a FIFO waits for its
//    reader like any writer would), then START is written. Calling open()
//    on an open writer does nothing and returns true (the factory opens once
//    up front so that an unusable path is a setup error).
//  - Later open() calls (rotation, SIGHUP, recovery after a write error)
//    rename the regular file at the path to
//    `<path>.<YYYYmmddTHHMMSS>[.<n>]` — the UTC time the renamed file was
//    opened, n = 1, 2, … when that name exists; never overwriting anything
//    — and create a new file (O_EXCL) with START. After logrotate has moved
//    the file away (rename, then SIGHUP) there is nothing to rename and a
//    fresh file is created. If the new file cannot be created or cannot take
//    START, one batch and STOP (a full disk), it is removed again and the
//    old file is renamed back: a failed rotation leaves no file behind.
//    Something at the path that is not a regular file any more is never
//    renamed: the open fails. logrotate's copytruncate does not work with
//    Frame Streams files (the stream would lose its START); use create +
//    postrotate HUP.
//  - A symlink to a regular file: the file it points to is rotated (renamed
//    next to itself, recreated at the same place); the link is never
//    touched and keeps pointing at the current file.
//  - write() appends already framed bytes. On a regular file, room for the
//    batch and for STOP is reserved first (fallocate(FALLOC_FL_KEEP_SIZE),
//    ahead in chunks), so STOP always fits after the last whole batch. A
//    batch that does not fit (ENOSPC, EDQUOT, EFBIG) is not written; STOP is
//    written instead, so the file stays a complete, decodable stream, and
//    write() fails: the writer is stalled. The next open() resumes that
//    same file (same inode, nothing appended by others) once the file
//    system has room for a batch and STOP again — the next batch overwrites
//    STOP — and fails (an open failure, retried with backoff) while it does
//    not. On file systems without fallocate, a failed write is cut back to
//    the end of the last whole batch and STOP is appended if it fits.
//  - close() writes STOP (unless it is already there, or the target is a
//    pipe that failed), releases the reservation and closes. It returns
//    false when STOP could not be written: every file this writer closes
//    ends with STOP unless it returns false.
//  - wants_reopen(): true once the current file holds rotate_size bytes or
//    is rotate_interval old (0 = off), and the file system has room for a
//    new file (checked at most once a second; a rotation is postponed, not
//    attempted, on a full disk). Sizes are checked between batches, so a
//    file can exceed rotate_size by up to one write buffer.
#pragma once

#include "output/queued_output.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>
#include <sys/types.h>

namespace sidetap::output {

struct FileWriterOptions {
    std::string path;                               // "-" = stdout
    std::uint64_t rotate_size = 0;                  // bytes; 0 = off
    std::chrono::milliseconds rotate_interval{0};   // 0 = off
    // The largest batch write() is given (the queue's write buffer); a
    // stalled or new file is only (re)used when this much fits. 0: one
    // frame of kMaxFrameSize.
    std::size_t batch_bytes = 0;
};

class FileWriter final : public FrameWriter {
public:
    explicit FileWriter(FileWriterOptions options);
    ~FileWriter() override;
    FileWriter(const FileWriter&) = delete;
    FileWriter& operator=(const FileWriter&) = delete;

    bool open(std::string& error) override;
    bool write(std::span<const std::span<const std::uint8_t>> pieces, std::string& error) override;
    bool close() override;
    bool wants_reopen(std::chrono::steady_clock::time_point now) override;
    bool reopen_on_request() override { return rotatable_; }
    bool reopen_after_failure() override { return rotatable_; }
    [[nodiscard]] const std::string& describe() const override { return options_.path; }

    // The name a file opened at `opened` is renamed to (without the .<n>).
    [[nodiscard]] static std::string rotated_name(const std::string& path, std::time_t opened);

private:
    enum class Resume : std::uint8_t { Resumed, NotThere, NoRoom, Error };

    bool first_open(std::string& error);
    bool rotate_open(std::string& error);
    Resume resume(std::string& error);
    bool write_start(std::string& error);
    bool write_all(const std::uint8_t* data, std::size_t size, std::string& error);
    bool write_pieces(std::span<const std::span<const std::uint8_t>> pieces, std::string& error);
    bool write_stop();
    bool reserve(std::uint64_t end, bool& no_space);
    bool room_on_file_system(int fd, std::uint64_t bytes) const;
    void release_reservation();
    [[nodiscard]] std::uint64_t stream_end() const { return base_ + file_bytes_; }
    [[nodiscard]] std::uint64_t room() const;

    FileWriterOptions options_;
    bool is_stdout_;
    int fd_ = -1;
    bool opened_before_ = false;
    bool regular_ = false;       // the target is a regular file (stdout included)
    bool rotatable_ = false;     // ... that sidetap opened by a name it may rename
    bool final_error_ = false;   // a write failed on a target that is not reopened
    bool stop_written_ = false;  // STOP sits at stream_end()
    bool stalled_ = false;       // full disk: the next open() resumes this file
    bool can_reserve_ = true;    // fallocate() works on this file system
    std::string current_;        // the file's own name (symlinks resolved)
    dev_t dev_ = 0;
    ino_t ino_ = 0;
    std::uint64_t base_ = 0;         // offset of START (a regular stdout may hold older bytes)
    std::uint64_t file_bytes_ = 0;   // START + whole batches
    std::uint64_t reserved_to_ = 0;  // offset up to which blocks are reserved
    std::chrono::steady_clock::time_point opened_at_{};
    std::chrono::steady_clock::time_point next_room_check_{};
    std::time_t opened_wall_ = 0;
};

}  // namespace sidetap::output
