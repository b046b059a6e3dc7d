// Unix stream and TCP transports. Sockets stay O_NONBLOCK after connect and
// every wait is a poll() against a deadline: that is what gives blocking
// semantics with timeouts (a blocking send() of a large buffer could not be
// bounded).
#include "output/fd.h"

#include "output/gather_cursor.h"
#include "output/transport.h"
#include "util/error.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

namespace sidetap::output {

namespace net {

namespace {
int poll_timeout_ms(Clock::time_point deadline) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
}

std::string errno_text(int err) { return std::strerror(err); }

struct AddrinfoDeleter {
    void operator()(addrinfo* ai) const { ::freeaddrinfo(ai); }
};
using AddrinfoPtr = std::unique_ptr<addrinfo, AddrinfoDeleter>;

std::string numeric_address(const sockaddr* sa, socklen_t len, std::uint16_t port) {
    char host[NI_MAXHOST];
    if (::getnameinfo(sa, len, host, sizeof host, nullptr, 0, NI_NUMERICHOST) != 0) return "?";
    return host_port(host, port);
}

// One non-blocking connect attempt; on failure returns an invalid fd and the
// reason (without the address).
UniqueFd connect_one(const addrinfo& ai, Clock::time_point deadline, std::chrono::milliseconds timeout,
                     std::string& reason) {
    UniqueFd fd(::socket(ai.ai_family, ai.ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai.ai_protocol));
    if (!fd) {
        reason = errno_text(errno);
        return {};
    }
    const int on = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    if (::connect(fd.get(), ai.ai_addr, ai.ai_addrlen) != 0) {
        if (errno != EINPROGRESS && errno != EINTR) {
            reason = errno_text(errno);
            return {};
        }
        switch (wait_fd(fd.get(), POLLOUT, deadline)) {
        case Wait::Ready: break;
        case Wait::Timeout: reason = timed_out(timeout); return {};
        case Wait::Error: reason = errno_text(errno); return {};
        }
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        if (err != 0) {
            reason = errno_text(err);
            return {};
        }
    }
    return fd;
}
}  // namespace

Wait wait_fd(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        pollfd p{fd, events, 0};
        const int n = ::poll(&p, 1, poll_timeout_ms(deadline));
        if (n > 0) return Wait::Ready;
        if (n == 0) {
            // poll() may wake a little early by rounding; only give up once
            // the deadline has really passed.
            if (Clock::now() >= deadline) return Wait::Timeout;
            continue;
        }
        if (errno != EINTR) return Wait::Error;
    }
}

std::string host_port(const std::string& host, std::uint16_t port) {
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

std::string timed_out(std::chrono::milliseconds timeout) {
    return "timed out after " + std::to_string(timeout.count()) + " ms";
}

UniqueFd connect_tcp(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout,
                     std::string& error) {
    const std::string where = host_port(host, port);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICSERV;  // no AI_ADDRCONFIG: it hides ::1 when only loopback has IPv6
    addrinfo* raw = nullptr;
    const std::string service = std::to_string(port);
    const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &raw);
    AddrinfoPtr list(raw);
    if (rc != 0) {
        error = "resolve " + where + ": " + (rc == EAI_SYSTEM ? errno_text(errno) : ::gai_strerror(rc));
        return {};
    }
    std::size_t count = 0;
    for (const addrinfo* ai = list.get(); ai != nullptr; ai = ai->ai_next) ++count;

    // The attempts share the timeout like Go's dialer: each gets an equal
    // part of what is left, so one black-holed address cannot starve the
    // next one.
    const auto deadline = Clock::now() + timeout;
    std::string reasons;
    std::size_t index = 0;
    for (const addrinfo* ai = list.get(); ai != nullptr; ai = ai->ai_next, ++index) {
        const auto now = Clock::now();
        if (now >= deadline) {
            if (!reasons.empty()) reasons += "; ";
            reasons += timed_out(timeout);
            break;
        }
        const auto share = (deadline - now) / static_cast<long>(count - index);
        const auto attempt_deadline = now + std::max<Clock::duration>(share, std::min<Clock::duration>(deadline - now, std::chrono::seconds(2)));
        std::string reason;
        const auto attempt_timeout = count == 1 ? timeout
                                                : std::chrono::ceil<std::chrono::milliseconds>(attempt_deadline - now);
        UniqueFd fd = connect_one(*ai, attempt_deadline, attempt_timeout, reason);
        if (fd) return fd;
        if (!reasons.empty()) reasons += "; ";
        if (count > 1) reasons += numeric_address(ai->ai_addr, ai->ai_addrlen, port) + ": ";
        reasons += reason;
    }
    error = "connect to " + where + ": " + reasons;
    return {};
}

}  // namespace net

namespace {

using net::Clock;
using net::Wait;

// A connected stream socket (Unix or TCP), O_NONBLOCK, waits via poll().
class SocketConnection final : public Connection {
public:
    SocketConnection(UniqueFd fd, std::string peer, std::chrono::milliseconds write_timeout, bool unix_socket)
        : fd_(std::move(fd)), peer_(std::move(peer)), write_timeout_(write_timeout), unix_socket_(unix_socket) {}

    bool write_all(std::span<const std::uint8_t> bytes) override {
        const std::span<const std::uint8_t> one[] = {bytes};
        return writev_all(one);
    }

    bool writev_all(std::span<const std::span<const std::uint8_t>> pieces) override {
        const auto deadline = Clock::now() + write_timeout_;
        GatherCursor cursor(pieces);
        GatherCursor::Iovecs iov{};
        while (!cursor.done()) {
            const std::size_t count = cursor.fill(iov);
            msghdr msg{};
            msg.msg_iov = iov.data();
            msg.msg_iovlen = count;
            const ssize_t n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
            if (n >= 0) {
                cursor.advance(static_cast<std::size_t>(n));
                continue;
            }
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return fail("write to", errno_text());
            switch (net::wait_fd(fd_.get(), POLLOUT, deadline)) {
            case Wait::Ready: break;
            case Wait::Timeout: return fail("write to", net::timed_out(write_timeout_));
            case Wait::Error: return fail("write to", errno_text());
            }
        }
        return true;
    }

    bool read_exact(std::span<std::uint8_t> out, std::chrono::milliseconds timeout) override {
        const auto deadline = Clock::now() + timeout;
        while (!out.empty()) {
            const ssize_t n = ::recv(fd_.get(), out.data(), out.size(), 0);
            if (n > 0) {
                out = out.subspan(static_cast<std::size_t>(n));
                continue;
            }
            if (n == 0) return fail("read from", "connection closed by peer");
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return fail("read from", errno_text());
            switch (net::wait_fd(fd_.get(), POLLIN, deadline)) {
            case Wait::Ready: break;
            case Wait::Timeout: return fail("read from", net::timed_out(timeout));
            case Wait::Error: return fail("read from", errno_text());
            }
        }
        return true;
    }

    bool peer_closed() override {
        pollfd p{fd_.get(), POLLIN | POLLRDHUP, 0};
        int n = 0;
        do n = ::poll(&p, 1, 0);
        while (n < 0 && errno == EINTR);
        if (n <= 0) return false;
        if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return true;
        // Readable: either EOF/reset (recv gives 0 / an error) or bytes the
        // collector sent unasked (left in place for read_exact()).
        std::uint8_t byte = 0;
        ssize_t r = 0;
        do r = ::recv(fd_.get(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        while (r < 0 && errno == EINTR);
        if (r == 0) return true;
        return r < 0 && errno != EAGAIN && errno != EWOULDBLOCK;
    }

    [[nodiscard]] const std::string& error() const override { return error_; }
    void set_write_timeout(std::chrono::milliseconds timeout) override { write_timeout_ = timeout; }

    std::optional<bool> caught_up() override {
        if (!unix_socket_) return std::nullopt;
        // Unix sockets report the memory of unread buffers (not their byte
        // count): only 0 has a precise meaning.
        int queued = 0;
        if (::ioctl(fd_.get(), SIOCOUTQ, &queued) != 0) return std::nullopt;
        return queued == 0;
    }

private:
    static std::string errno_text() { return std::strerror(errno); }
    bool fail(const char* what, const std::string& reason) {
        error_ = std::string(what) + " " + peer_ + ": " + reason;
        return false;
    }

    UniqueFd fd_;
    std::string peer_;
    std::chrono::milliseconds write_timeout_;
    bool unix_socket_;
    std::string error_;
};

class UnixConnector final : public Connector {
public:
    explicit UnixConnector(std::string path) : path_(std::move(path)), describe_("unix://" + path_) {
        if (path_.empty()) throw util::FatalError("unix socket path is empty", util::kExitUsage);
        if (path_.size() >= sizeof(sockaddr_un::sun_path)) {
            throw util::FatalError("unix socket path too long (" + std::to_string(path_.size()) + " bytes, at most " +
                                       std::to_string(sizeof(sockaddr_un::sun_path) - 1) + "): " + path_,
                                   util::kExitUsage);
        }
    }

    std::unique_ptr<Connection> connect(std::chrono::milliseconds timeout, std::string& error) override {
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, path_.data(), path_.size());
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!fd) {
            error = "connect to " + path_ + ": " + std::strerror(errno);
            return nullptr;
        }
        // A non-blocking connect on a Unix socket never returns EINPROGRESS:
        // when the listener's backlog is full it fails at once with EAGAIN.
        // A blocking connect with SO_SNDTIMEO waits for room instead, bounded
        // by the timeout (then EAGAIN too).
        const auto deadline = Clock::now() + timeout;
        for (;;) {
            const auto left = std::chrono::ceil<std::chrono::microseconds>(deadline - Clock::now());
            if (left.count() <= 0) {
                error = "connect to " + path_ + ": " + net::timed_out(timeout);
                return nullptr;
            }
            timeval tv{};
            tv.tv_sec = static_cast<time_t>(left.count() / 1000000);
            tv.tv_usec = static_cast<suseconds_t>(left.count() % 1000000);
            ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) break;
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EINPROGRESS) {
                error = "connect to " + path_ + ": " + net::timed_out(timeout);
            } else {
                error = "connect to " + path_ + ": " + std::strerror(errno);
            }
            return nullptr;
        }
        const timeval none{};
        ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
        if (::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK) != 0) {
            error = "connect to " + path_ + ": " + std::strerror(errno);
            return nullptr;
        }
        return std::make_unique<SocketConnection>(std::move(fd), path_, timeout, true);
    }

    [[nodiscard]] const std::string& describe() const override { return describe_; }

private:
    std::string path_;
    std::string describe_;
};

class TcpConnector final : public Connector {
public:
    TcpConnector(std::string host, std::uint16_t port)
        : host_(std::move(host)), port_(port), describe_("tcp://" + net::host_port(host_, port_)) {
        if (host_.empty()) throw util::FatalError("tcp destination without a host", util::kExitUsage);
        if (port_ == 0) throw util::FatalError("tcp destination " + describe_ + ": port 0", util::kExitUsage);
    }

    std::unique_ptr<Connection> connect(std::chrono::milliseconds timeout, std::string& error) override {
        UniqueFd fd = net::connect_tcp(host_, port_, timeout, error);
        if (!fd) return nullptr;
        return std::make_unique<SocketConnection>(std::move(fd), net::host_port(host_, port_), timeout, false);
    }

    [[nodiscard]] const std::string& describe() const override { return describe_; }

private:
    std::string host_;
    std::uint16_t port_;
    std::string describe_;
};

}  // namespace

std::unique_ptr<Connector> make_unix_connector(const std::string& path) {
    return std::make_unique<UnixConnector>(path);
}

std::unique_ptr<Connector> make_tcp_connector(const std::string& host, std::uint16_t port) {
    return std::make_unique<TcpConnector>(host, port);
}

}  // namespace sidetap::output
