#include "output/text_stream.h"

#include "util/error.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <poll.h>
#include <unistd.h>

namespace sidetap::output {

namespace {
// The first write error of the process's text stream (there is one).
std::atomic<int> first_error{0};

ssize_t write_waiting(void* cookie, const char* data, std::size_t size) {
    const int fd = *static_cast<int*>(cookie);
    std::size_t done = 0;
    while (done < size) {
        const ssize_t n = ::write(fd, data + done, size - done);
        if (n > 0) {
            done += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pollfd p{fd, POLLOUT, 0};
            (void)::poll(&p, 1, -1);  // POLLERR/POLLHUP: the next write says why
            continue;
        }
        int expected = 0;
        first_error.compare_exchange_strong(expected, n < 0 ? errno : EIO);
        break;  // fewer bytes than asked: stdio sets the error indicator
    }
    return static_cast<ssize_t>(done);
}

int close_cookie(void* cookie) {
    delete static_cast<int*>(cookie);
    return 0;
}

char buffer[1 << 16];
}  // namespace

std::FILE* open_text_stream(const std::string& name) {
    std::FILE* stream = nullptr;
    if (name == "-") {
        cookie_io_functions_t io{};
        io.write = write_waiting;
        io.close = close_cookie;
        auto* fd = new int(STDOUT_FILENO);
        stream = ::fopencookie(fd, "w", io);
        if (!stream) {
            delete fd;
            throw util::FatalError(std::string("cannot write to standard output: ") + std::strerror(errno));
        }
    } else {
        stream = std::fopen(name.c_str(), "w");
        if (!stream) throw util::FatalError("cannot open " + name + ": " + std::strerror(errno));
    }
    std::setvbuf(stream, buffer, _IOFBF, sizeof buffer);
    return stream;
}

bool close_text_stream(std::FILE* stream) {
    if (!stream) return true;
    errno = 0;
    bool ok = std::fflush(stream) == 0 && std::ferror(stream) == 0;
    int err = errno;
    if (std::fclose(stream) != 0) {
        ok = false;
        if (err == 0) err = errno;
    }
    if (!ok) {
        if (const int first = first_error.load(); first != 0) err = first;
        std::fprintf(stderr, "sidetap: text output failed: %s; what followed was not written\n",
                     std::strerror(err != 0 ? err : EIO));
    }
    return ok;
}

}  // namespace sidetap::output
