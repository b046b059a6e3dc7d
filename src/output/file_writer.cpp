#include "output/file_writer.h"

#include "framestream/codec.h"
#include "output/gather_cursor.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>
#include <vector>

namespace sidetap::output {

namespace {
using Clock = std::chrono::steady_clock;

// STOP: escape (4) + control length (4) + type (4).
constexpr std::uint64_t kStopSize = 12;
// Room is reserved ahead in chunks of this size: one fallocate() per MiB
// written, not one per batch.
constexpr std::uint64_t kReserveChunk = 1u << 20;

std::string errno_text(const std::string& what, int err) { return what + ": " + std::strerror(err); }

bool is_space_error(int err) { return err == ENOSPC || err == EDQUOT || err == EFBIG; }

// rename() that fails with EEXIST instead of replacing the target.
int rename_noreplace(const char* from, const char* to) {
#ifdef RENAME_NOREPLACE
    if (::renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS) return -1;
#endif
    // File systems without RENAME_NOREPLACE: link() never replaces either.
    if (::link(from, to) != 0) return -1;
    return ::unlink(from);
}

std::vector<std::uint8_t> control_bytes(framestream::ControlType type) {
    std::vector<std::uint8_t> out;
    if (type == framestream::ControlType::Start) {
        const std::string_view content_type[] = {framestream::kDnstapContentType};
        framestream::append_control(out, type, content_type);
    } else {
        framestream::append_control(out, type);
    }
    return out;
}

// The name of the file that `path` leads to: symlinks in the last
// component are followed (up to 40, like the kernel), directories are made
// canonical. `via_proc` is set when the way leads through /proc (/dev/stdout
// → /proc/self/fd/1, /proc/self/fd/N): such "files" are someone else's
// descriptors, never renamed.
std::string resolve_links(const std::string& path, bool& via_proc) {
    via_proc = false;
    std::string p = path;
    for (int i = 0; i < 40; ++i) {
        const auto slash = p.rfind('/');
        const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : p.substr(0, slash));
        const std::string base = slash == std::string::npos ? p : p.substr(slash + 1);
        if (char* real = ::realpath(dir.c_str(), nullptr)) {
            const std::string canonical(real);
            std::free(real);
            if (canonical == "/proc" || canonical.rfind("/proc/", 0) == 0) via_proc = true;
            p = (canonical == "/" ? "" : canonical) + "/" + base;
        }
        struct stat st {};
        if (::lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return p;
        char target[PATH_MAX];
        const ssize_t n = ::readlink(p.c_str(), target, sizeof target - 1);
        if (n <= 0) return p;
        std::string next(target, static_cast<std::size_t>(n));
        if (next.front() != '/') next = p.substr(0, p.rfind('/') + 1) + next;
        p = std::move(next);
    }
    return p;
}

const char* kind_of(const struct stat& st, bool is_stdout) {
    if (is_stdout) return "standard output";
    if (S_ISFIFO(st.st_mode)) return "a pipe (FIFO)";
    if (S_ISCHR(st.st_mode)) return "a character device";
    if (S_ISSOCK(st.st_mode)) return "a socket";
    if (S_ISBLK(st.st_mode)) return "a block device";
    if (S_ISREG(st.st_mode)) return "a descriptor reached through /proc";
    return "not a regular file";
}
}  // namespace

FileWriter::FileWriter(FileWriterOptions options) : options_(std::move(options)), is_stdout_(options_.path == "-") {}

FileWriter::~FileWriter() { close(); }

std::string FileWriter::rotated_name(const std::string& path, std::time_t opened) {
    std::tm tm{};
    ::gmtime_r(&opened, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
    return path + "." + stamp;
}

std::uint64_t FileWriter::room() const {
    return std::max<std::uint64_t>(options_.batch_bytes, kMaxFrameSize + 4);
}

bool FileWriter::open(std::string& error) {
    if (fd_ >= 0) return true;
    if (!opened_before_) return first_open(error);
    if (!rotatable_) {
        // Never reached through QueuedOutput (reopen_after_failure() is false).
        error = options_.path + " cannot be reopened";
        return false;
    }
    if (stalled_) {
        switch (resume(error)) {
        case Resume::Resumed: return true;
        case Resume::NoRoom:
        case Resume::Error: return false;
        case Resume::NotThere: break;  // moved away meanwhile: a new file
        }
    }
    return rotate_open(error);
}

bool FileWriter::first_open(std::string& error) {
    int fd = STDOUT_FILENO;
    if (!is_stdout_) {
        // Only a previous run's file is truncated; our own files are kept.
        fd = ::open(options_.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            error = errno_text("cannot open output " + options_.path, errno);
            return false;
        }
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        error = errno_text("cannot stat output " + options_.path, errno);
        if (!is_stdout_) ::close(fd);
        return false;
    }
    regular_ = S_ISREG(st.st_mode);
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    rotatable_ = false;
    if (regular_ && !is_stdout_) {
        bool via_proc = false;
        current_ = resolve_links(options_.path, via_proc);
        struct stat named {};
        rotatable_ = !via_proc && ::stat(current_.c_str(), &named) == 0 && named.st_dev == st.st_dev &&
                     named.st_ino == st.st_ino;
    }
    base_ = 0;
    if (regular_) {
        // A regular stdout may hold older bytes (>>): the stream starts here.
        const int flags = ::fcntl(fd, F_GETFL);
        const off_t pos = flags >= 0 && (flags & O_APPEND) != 0 ? st.st_size : ::lseek(fd, 0, SEEK_CUR);
        base_ = pos > 0 ? static_cast<std::uint64_t>(pos) : 0;
    }
    if (!rotatable_ && (options_.rotate_size != 0 || options_.rotate_interval.count() > 0))
        std::fprintf(stderr,
                     "sidetap: %s is %s%s: it is never rotated, renamed or reopened "
                     "(--rotate-size and --rotate-interval do not apply)\n",
                     options_.path.c_str(), kind_of(st, is_stdout_), regular_ ? "" : ", not a regular file");
    fd_ = fd;
    if (!write_start(error)) {
        if (!is_stdout_) ::close(fd_);
        fd_ = -1;
        return false;
    }
    opened_before_ = true;
    return true;
}

bool FileWriter::write_start(std::string& error) {
    opened_at_ = Clock::now();
    opened_wall_ = std::time(nullptr);
    file_bytes_ = 0;
    stop_written_ = false;
    stalled_ = false;
    final_error_ = false;
    reserved_to_ = 0;
    const auto start = control_bytes(framestream::ControlType::Start);
    // A new file after a rotation must take at least one batch, or the
    // rotation would only make an empty file.
    const std::uint64_t need = start.size() + (opened_before_ ? room() : 0) + kStopSize;
    bool no_space = false;
    if (regular_ && !reserve(base_ + need, no_space)) {
        error = "cannot write START to " + options_.path + ": " + std::strerror(ENOSPC);
        return false;
    }
    if (!write_all(start.data(), start.size(), error)) {
        error = "cannot write START: " + error;
        return false;
    }
    file_bytes_ = start.size();
    return true;
}

bool FileWriter::rotate_open(std::string& error) {
    bool via_proc = false;
    const std::string target = resolve_links(options_.path, via_proc);
    if (via_proc) {
        error = "output " + options_.path + " now leads through /proc; sidetap does not reopen it";
        return false;
    }
    // Move the file at the path aside (never anything else).
    std::string moved;
    struct stat st {};
    if (::lstat(target.c_str(), &st) == 0) {
        if (!S_ISREG(st.st_mode)) {
            error = "output " + options_.path + " is no longer a regular file; sidetap does not replace it";
            return false;
        }
        // A file we did not write (someone recreated the path) gets its mtime.
        const bool ours = st.st_dev == dev_ && st.st_ino == ino_;
        const std::string base = rotated_name(target, ours ? opened_wall_ : st.st_mtime);
        std::string name = base;
        for (unsigned n = 1; moved.empty(); ++n) {
            if (rename_noreplace(target.c_str(), name.c_str()) == 0) {
                moved = name;
                break;
            }
            if (errno != EEXIST) {
                error = errno_text("cannot rename " + target + " to " + name, errno);
                return false;
            }
            if (n == 100000) {
                error = "cannot rename " + target + ": too many rotated files named " + base + ".*";
                return false;
            }
            name = base + "." + std::to_string(n);
        }
    } else if (errno != ENOENT) {
        error = errno_text("cannot stat output " + options_.path, errno);
        return false;
    }
    const auto put_back = [&] {
        if (!moved.empty() && rename_noreplace(moved.c_str(), target.c_str()) != 0)
            std::fprintf(stderr, "sidetap: cannot rename %s back to %s: %s\n", moved.c_str(), target.c_str(),
                         std::strerror(errno));
        else if (!moved.empty())
            stalled_ = true;  // the previous file is back at the path: the next open() resumes it
        next_room_check_ = Clock::now() + std::chrono::seconds(1);
    };
    const int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        error = errno_text("cannot open output " + options_.path, errno);
        put_back();
        return false;
    }
    struct stat created {};
    (void)::fstat(fd, &created);
    // The previous file's identity stays until the new one has START: a
    // failed rotation resumes the previous file.
    const auto previous = std::tuple(current_, dev_, ino_, base_, file_bytes_, stop_written_, opened_at_, opened_wall_);
    fd_ = fd;
    regular_ = true;
    current_ = target;
    dev_ = created.st_dev;
    ino_ = created.st_ino;
    base_ = 0;
    if (!write_start(error)) {
        ::close(fd_);
        fd_ = -1;
        (void)::unlink(target.c_str());  // never leave an empty file behind
        std::tie(current_, dev_, ino_, base_, file_bytes_, stop_written_, opened_at_, opened_wall_) = previous;
        put_back();
        return false;
    }
    return true;
}

FileWriter::Resume FileWriter::resume(std::string& error) {
    const int fd = ::open(current_.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            stalled_ = false;
            return Resume::NotThere;
        }
        error = errno_text("cannot reopen output " + options_.path, errno);
        return Resume::Error;
    }
    const std::uint64_t end = stream_end();
    struct stat st {};
    const bool same = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_dev == dev_ && st.st_ino == ino_ &&
                      (static_cast<std::uint64_t>(st.st_size) == end ||
                       static_cast<std::uint64_t>(st.st_size) == end + kStopSize);
    if (!same) {
        // Moved away, replaced or appended to by someone else: not ours to
        // continue; the path gets a new file.
        ::close(fd);
        stalled_ = false;
        return Resume::NotThere;
    }
    fd_ = fd;
    reserved_to_ = 0;
    stop_written_ = static_cast<std::uint64_t>(st.st_size) == end + kStopSize;
    bool no_space = false;
    if (!reserve(end + room() + kStopSize, no_space) || (!can_reserve_ && !room_on_file_system(fd, room() + kStopSize))) {
        release_reservation();
        ::close(fd_);
        fd_ = -1;
        error = "no space left for " + options_.path + " (it ends with STOP after the last whole batch)";
        return Resume::NoRoom;
    }
    if (::lseek(fd_, static_cast<off_t>(end), SEEK_SET) < 0) {
        error = errno_text("cannot reopen output " + options_.path, errno);
        ::close(fd_);
        fd_ = -1;
        return Resume::Error;
    }
    stalled_ = false;
    return Resume::Resumed;
}

bool FileWriter::reserve(std::uint64_t end, bool& no_space) {
    no_space = false;
    if (!regular_ || !can_reserve_ || end <= reserved_to_) return true;
    const std::uint64_t from = stream_end();
    const std::uint64_t ahead = std::max(end, from + kReserveChunk);
    for (const std::uint64_t to : {ahead, end}) {
        int rc = 0;
        do rc = ::fallocate(fd_, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(from), static_cast<off_t>(to - from));
        while (rc != 0 && errno == EINTR);
        if (rc == 0) {
            reserved_to_ = to;
            return true;
        }
        if (!is_space_error(errno)) {
            // No fallocate here (EOPNOTSUPP...): go on without reservations.
            can_reserve_ = false;
            return true;
        }
    }
    no_space = true;
    return false;
}

bool FileWriter::room_on_file_system(int fd, std::uint64_t bytes) const {
    struct statvfs vfs {};
    if (::fstatvfs(fd, &vfs) != 0) return true;  // unknown: try
    // root may use the blocks reserved for it (ext4's 5 %).
    const std::uint64_t blocks = ::geteuid() == 0 ? vfs.f_bfree : vfs.f_bavail;
    const std::uint64_t margin = 4 * std::uint64_t{vfs.f_bsize};  // metadata
    // Our own reservation beyond the end is given back when this file closes.
    const std::uint64_t end = stream_end() + kStopSize;
    const std::uint64_t ours = fd == fd_ && reserved_to_ > end ? reserved_to_ - end : 0;
    return blocks * std::uint64_t{vfs.f_frsize} + ours >= bytes + margin;
}

void FileWriter::release_reservation() {
    const std::uint64_t end = stream_end() + (stop_written_ ? kStopSize : 0);
    if (!regular_ || reserved_to_ <= end) {
        reserved_to_ = 0;
        return;
    }
    // Blocks reserved beyond the end stay allocated after close() unless
    // they are given back.
    if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(end),
                    static_cast<off_t>(reserved_to_ - end)) != 0 &&
        !is_stdout_)
        (void)::ftruncate(fd_, static_cast<off_t>(end));
    reserved_to_ = 0;
}

bool FileWriter::write_all(const std::uint8_t* data, std::size_t size, std::string& error) {
    const std::span<const std::uint8_t> piece(data, size);
    return write_pieces({&piece, 1}, error);
}

bool FileWriter::write_pieces(std::span<const std::span<const std::uint8_t>> pieces, std::string& error) {
    // writev() straight from the queue's rings: no copy into a buffer.
    GatherCursor cursor(pieces);
    GatherCursor::Iovecs iov{};
    while (!cursor.done()) {
        const std::size_t count = cursor.fill(iov);
        const ssize_t n = ::writev(fd_, iov.data(), static_cast<int>(count));
        if (n > 0) {
            cursor.advance(static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            // A non-blocking descriptor (an inherited stdout, a pipe): wait
            // for room. POLLERR/POLLHUP end the wait; the next write says why.
            pollfd p{fd_, POLLOUT, 0};
            if (::poll(&p, 1, -1) < 0 && errno != EINTR) {
                error = errno_text("waiting to write to " + options_.path, errno);
                return false;
            }
            continue;
        }
        const int err = n < 0 ? errno : EIO;  // write() of 0 bytes: nothing moves
        error = errno_text("write to " + options_.path + " failed", err);
        if (err == EPIPE) error += " (its reader went away)";
        errno = err;
        return false;
    }
    return true;
}

bool FileWriter::write_stop() {
    const auto stop = control_bytes(framestream::ControlType::Stop);
    std::string ignored;
    return write_all(stop.data(), stop.size(), ignored);
}

bool FileWriter::write(std::span<const std::span<const std::uint8_t>> pieces, std::string& error) {
    std::size_t size = 0;
    for (const auto& piece : pieces) size += piece.size();
    if (fd_ < 0) {
        error = options_.path + " is not open";
        return false;
    }
    const std::uint64_t end = stream_end();
    bool no_space = false;
    if (regular_ && !reserve(end + size + kStopSize, no_space)) {
        // Not written at all: the file ends with STOP after the last whole
        // batch (its room was reserved with that batch).
        error = "write to " + options_.path + " failed: " + std::strerror(ENOSPC) +
                " (the file ends with STOP after the last whole batch)";
        if (!stop_written_) stop_written_ = write_stop();
        stalled_ = rotatable_;
        final_error_ = !rotatable_;
        return false;
    }
    if (!write_pieces(pieces, error)) {
        const int err = errno;
        if (regular_) {
            // Cut a half-written batch off so that STOP follows whole frames;
            // the batch is written again later.
            if (::ftruncate(fd_, static_cast<off_t>(end)) == 0) (void)::lseek(fd_, static_cast<off_t>(end), SEEK_SET);
            reserved_to_ = 0;
            stop_written_ = write_stop();
            stalled_ = rotatable_ && is_space_error(err);
        }
        final_error_ = !rotatable_;
        return false;
    }
    file_bytes_ += size;
    if (stop_written_) {
        // The batch went over the STOP of a resumed file.
        stop_written_ = false;
        if (size < kStopSize) (void)::ftruncate(fd_, static_cast<off_t>(stream_end()));
    }
    return true;
}

bool FileWriter::close() {
    if (fd_ < 0) return true;
    bool ok = true;
    if (!stop_written_) {
        if (final_error_) {
            ok = false;  // a pipe whose reader went away: nowhere to put STOP
        } else if (write_stop()) {
            stop_written_ = true;
        } else {
            std::fprintf(stderr, "sidetap: %s: cannot write STOP: %s\n", options_.path.c_str(), std::strerror(errno));
            ok = false;
        }
    }
    release_reservation();
    if (!is_stdout_ && ::close(fd_) != 0) {
        std::fprintf(stderr, "sidetap: closing %s failed: %s\n", options_.path.c_str(), std::strerror(errno));
        ok = false;
    }
    fd_ = -1;
    return ok;
}

bool FileWriter::wants_reopen(std::chrono::steady_clock::time_point now) {
    if (fd_ < 0 || !rotatable_) return false;
    const bool due = (options_.rotate_size != 0 && file_bytes_ >= options_.rotate_size) ||
                     (options_.rotate_interval.count() > 0 && now - opened_at_ >= options_.rotate_interval);
    if (!due || now < next_room_check_) return false;
    // A rotation on a full disk could only fail: postpone it.
    if (!room_on_file_system(fd_, 64 + room() + kStopSize)) {
        next_room_check_ = now + std::chrono::seconds(1);
        return false;
    }
    return true;
}

}  // namespace sidetap::output
