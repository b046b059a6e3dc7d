#include "output/file_writer.h"

#include "framestream/codec.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace sidetap::output {

namespace {
std::string errno_text(const std::string& what, int err) { return what + ": " + std::strerror(err); }

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

bool FileWriter::move_existing_aside(std::string& error) {
    struct stat st {};
    if (::stat(options_.path.c_str(), &st) != 0) {
        if (errno == ENOENT) return true;  // logrotate moved it away already
        error = errno_text("cannot stat output " + options_.path, errno);
        return false;
    }
    // A file we did not write (someone recreated the path) gets its mtime.
    const std::time_t opened = opened_wall_ != 0 ? opened_wall_ : st.st_mtime;
    const std::string base = rotated_name(options_.path, opened);
    std::string target = base;
    for (unsigned n = 1; n < 100000; ++n) {
        if (rename_noreplace(options_.path.c_str(), target.c_str()) == 0) return true;
        if (errno != EEXIST) {
            error = errno_text("cannot rename " + options_.path + " to " + target, errno);
            return false;
        }
        target = base + "." + std::to_string(n);
    }
    error = "cannot rename " + options_.path + ": too many rotated files named " + base + ".*";
    return false;
}

bool FileWriter::open(std::string& error) {
    if (fd_ >= 0) return true;
    if (is_stdout_) {
        fd_ = STDOUT_FILENO;
    } else {
        // Only a previous run's file is truncated; our own files are kept.
        if (opened_before_ && !move_existing_aside(error)) return false;
        const int fd = ::open(options_.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            error = errno_text("cannot open output " + options_.path, errno);
            return false;
        }
        struct stat st {};
        regular_file_ = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
        fd_ = fd;
    }
    opened_before_ = true;
    opened_at_ = std::chrono::steady_clock::now();
    opened_wall_ = std::time(nullptr);
    file_bytes_ = 0;
    std::vector<std::uint8_t> start;
    const std::string_view content_type[] = {framestream::kDnstapContentType};
    framestream::append_control(start, framestream::ControlType::Start, content_type);
    if (!write_all(start.data(), start.size(), error)) {
        close();
        return false;
    }
    file_bytes_ = start.size();
    return true;
}

bool FileWriter::write_all(const std::uint8_t* data, std::size_t size, std::string& error) {
    while (size > 0) {
        const ssize_t n = ::write(fd_, data, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            error = errno_text("write to " + options_.path + " failed", errno);
            return false;
        }
        data += n;
        size -= static_cast<std::size_t>(n);
    }
    return true;
}

bool FileWriter::write(std::span<const std::uint8_t> framed, std::string& error) {
    if (fd_ < 0) {
        error = options_.path + " is not open";
        return false;
    }
    if (!write_all(framed.data(), framed.size(), error)) {
        // Cut a half-written batch off so that STOP follows whole frames; the
        // batch is written again into the next file.
        if (regular_file_ && ::ftruncate(fd_, static_cast<off_t>(file_bytes_)) == 0)
            (void)::lseek(fd_, static_cast<off_t>(file_bytes_), SEEK_SET);
        return false;
    }
    file_bytes_ += framed.size();
    return true;
}

void FileWriter::close() {
    if (fd_ < 0) return;
    std::vector<std::uint8_t> stop;
    framestream::append_control(stop, framestream::ControlType::Stop);
    std::string error;
    if (!write_all(stop.data(), stop.size(), error))
        std::fprintf(stderr, "sidetap: %s: cannot write STOP: %s\n", options_.path.c_str(), error.c_str());
    if (!is_stdout_ && ::close(fd_) != 0)
        std::fprintf(stderr, "sidetap: closing %s failed: %s\n", options_.path.c_str(), std::strerror(errno));
    fd_ = -1;
}

bool FileWriter::wants_reopen(std::chrono::steady_clock::time_point now) {
    if (fd_ < 0 || is_stdout_) return false;
    if (options_.rotate_size != 0 && file_bytes_ >= options_.rotate_size) return true;
    return options_.rotate_interval.count() > 0 && now - opened_at_ >= options_.rotate_interval;
}

}  // namespace sidetap::output
