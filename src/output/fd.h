// An owned file descriptor, and the few socket helpers that the Unix, TCP
// and TLS transports share (implemented in transport_socket.cpp).
//
// Contract:
//  - UniqueFd closes its descriptor exactly once (destructor or reset());
//    it is move-only. -1 means "no descriptor".
//  - The helpers never throw and never raise SIGPIPE; they report failures
//    as one-line strings.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include <unistd.h>

namespace sidetap::output {

class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) reset(std::exchange(other.fd_, -1));
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    [[nodiscard]] int get() const { return fd_; }
    [[nodiscard]] bool valid() const { return fd_ >= 0; }
    explicit operator bool() const { return valid(); }
    int release() { return std::exchange(fd_, -1); }
    // close(2) is not retried on EINTR: on Linux the descriptor is gone anyway.
    void reset(int fd = -1) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

namespace net {

using Clock = std::chrono::steady_clock;

enum class Wait : std::uint8_t { Ready, Timeout, Error };

// poll()s one descriptor for `events` until `deadline`, restarting on EINTR
// with the remaining time. Ready also covers POLLHUP/POLLERR (the next
// read/write reports the reason). Error leaves errno set.
Wait wait_fd(int fd, short events, Clock::time_point deadline);

// "127.0.0.1:6000", "[::1]:6000", "collector.example:6000".
std::string host_port(const std::string& host, std::uint16_t port);

// Resolves `host` (getaddrinfo at every call: a collector may move) and tries
// each address in order with a non-blocking connect; all of them share
// `timeout`. Returns a connected, non-blocking, CLOEXEC stream socket with
// SO_KEEPALIVE on, or an invalid UniqueFd with `error` set
// ("connect to 127.0.0.1:6000: Connection refused").
UniqueFd connect_tcp(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout,
                     std::string& error);

// "timed out after 200 ms".
std::string timed_out(std::chrono::milliseconds timeout);

}  // namespace net
}  // namespace sidetap::output
