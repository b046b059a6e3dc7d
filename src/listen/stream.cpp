#include "listen/stream.h"

#include "output/tls_util.h"
#include "util/error.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <poll.h>
#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace sidetap::listen {

namespace {

int poll_timeout_ms(Clock::time_point deadline) {
    if (deadline == Clock::time_point::max()) return -1;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
}

// Waits for `events` on fd, or for cancel_fd to become readable.
Io wait(int fd, short events, int cancel_fd, Clock::time_point deadline, std::string& error) {
    for (;;) {
        pollfd p[2] = {{fd, events, 0}, {cancel_fd, POLLIN, 0}};
        const int n = ::poll(p, cancel_fd >= 0 ? 2 : 1, poll_timeout_ms(deadline));
        if (n > 0) {
            if (p[0].revents != 0) return Io::Ok;  // includes HUP/ERR: the next call says why
            return Io::Cancelled;
        }
        if (n == 0) {
            if (Clock::now() >= deadline) return Io::Timeout;
            continue;
        }
        if (errno == EINTR) continue;
        error = std::strerror(errno);
        return Io::Error;
    }
}

class SocketStream final : public Stream {
public:
    SocketStream(output::UniqueFd fd, int cancel_fd) : fd_(std::move(fd)), cancel_fd_(cancel_fd) {}

    Io read_some(void* buffer, std::size_t size, std::size_t& got, Clock::time_point deadline) override {
        got = 0;
        for (;;) {
            const ssize_t n = ::recv(fd_.get(), buffer, size, 0);
            if (n > 0) {
                got = static_cast<std::size_t>(n);
                return Io::Ok;
            }
            if (n == 0) return Io::Eof;
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                error_ = std::strerror(errno);
                return Io::Error;
            }
            if (const Io w = wait(fd_.get(), POLLIN, cancel_fd_, deadline, error_); w != Io::Ok) return w;
        }
    }

    Io wait_readable(Clock::time_point deadline) override {
        return wait(fd_.get(), POLLIN, cancel_fd_, deadline, error_);
    }

    Io write_all(std::span<const std::uint8_t> bytes, Clock::time_point deadline) override {
        while (!bytes.empty()) {
            const ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n >= 0) {
                bytes = bytes.subspan(static_cast<std::size_t>(n));
                continue;
            }
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                error_ = std::strerror(errno);
                return Io::Error;
            }
            // Writes are short control frames: not cancelled.
            if (const Io w = wait(fd_.get(), POLLOUT, -1, deadline, error_); w != Io::Ok) return w;
        }
        return Io::Ok;
    }

private:
    output::UniqueFd fd_;
    int cancel_fd_;
};

// --- TLS -------------------------------------------------------------------

using output::tls::take_openssl_error;

class TlsStream final : public Stream {
public:
    TlsStream(output::UniqueFd fd, SSL* ssl, int cancel_fd) : fd_(std::move(fd)), ssl_(ssl), cancel_fd_(cancel_fd) {}

    ~TlsStream() override {
        if (!ssl_ || broken_) return;
        ERR_clear_error();
        (void)SSL_shutdown(ssl_.get());  // close_notify, best effort, no wait
        ERR_clear_error();
    }

    Io handshake(Clock::time_point deadline) override {
        if (!ssl_) {
            error_ = "TLS setup failed";
            return Io::Error;
        }
        return drive(deadline, true, "TLS handshake: ", [&] { return SSL_accept(ssl_.get()); });
    }

    Io read_some(void* buffer, std::size_t size, std::size_t& got, Clock::time_point deadline) override {
        got = 0;
        return drive(deadline, true, "", [&] { return SSL_read_ex(ssl_.get(), buffer, size, &got); });
    }

    Io wait_readable(Clock::time_point deadline) override {
        if (SSL_pending(ssl_.get()) > 0) return Io::Ok;
        return wait(fd_.get(), POLLIN, cancel_fd_, deadline, error_);
    }

    Io write_all(std::span<const std::uint8_t> bytes, Clock::time_point deadline) override {
        while (!bytes.empty()) {
            std::size_t written = 0;
            const Io r = drive(deadline, false, "",
                               [&] { return SSL_write_ex(ssl_.get(), bytes.data(), bytes.size(), &written); });
            if (r != Io::Ok) return r;
            bytes = bytes.subspan(written);
        }
        return Io::Ok;
    }

private:
    template <typename Op>
    Io drive(Clock::time_point deadline, bool cancellable, const char* what, Op&& op) {
        for (;;) {
            ERR_clear_error();
            errno = 0;
            const int rc = op();
            if (rc == 1) return Io::Ok;
            const int saved_errno = errno;
            const int err = SSL_get_error(ssl_.get(), rc);
            short events = 0;
            if (err == SSL_ERROR_WANT_READ) {
                events = POLLIN;
            } else if (err == SSL_ERROR_WANT_WRITE) {
                events = POLLOUT;
            } else if (err == SSL_ERROR_ZERO_RETURN) {
                return Io::Eof;  // close_notify
            } else {
                broken_ = true;
                std::string reason = take_openssl_error();
                if (reason.empty() && err == SSL_ERROR_SYSCALL)
                    reason = saved_errno != 0 ? std::strerror(saved_errno) : "";
                if (reason.empty() || reason == "unexpected eof while reading") {
                    if (*what == '\0') return Io::Eof;  // EOF without close_notify: a plain close
                    reason = "connection closed by peer";
                }
                error_ = std::string(what) + reason;
                return Io::Error;
            }
            const Io w = wait(fd_.get(), events, cancellable ? cancel_fd_ : -1, deadline, error_);
            if (w != Io::Ok) {
                if (w == Io::Timeout || w == Io::Error) broken_ = true;
                return w;
            }
        }
    }

    output::UniqueFd fd_;  // before ssl_: the SSL and its BIO go first
    output::tls::SslPtr ssl_;
    int cancel_fd_;
    bool broken_ = false;
};

}  // namespace

Io read_exact(Stream& stream, std::span<std::uint8_t> out, Clock::time_point deadline) {
    while (!out.empty()) {
        std::size_t got = 0;
        const Io r = stream.read_some(out.data(), out.size(), got, deadline);
        if (r != Io::Ok) return r;
        out = out.subspan(got);
    }
    return Io::Ok;
}

std::unique_ptr<Stream> make_socket_stream(output::UniqueFd fd, int cancel_fd) {
    return std::make_unique<SocketStream>(std::move(fd), cancel_fd);
}

struct TlsServerContext::Impl {
    SSL_CTX* ctx = nullptr;
};

TlsServerContext::TlsServerContext(const std::string& cert_file, const std::string& key_file)
    : impl_(std::make_unique<Impl>()) {
    auto fatal = [](const std::string& what) {
        const std::string reason = take_openssl_error();
        throw util::FatalError("TLS listener: " + what + (reason.empty() ? "" : ": " + reason), util::kExitUsage);
    };
    if (cert_file.empty() || key_file.empty())
        throw util::FatalError("TLS listener: needs both --tls-cert and --tls-key", util::kExitUsage);
    ERR_clear_error();
    impl_->ctx = SSL_CTX_new(TLS_server_method());
    if (impl_->ctx == nullptr) fatal("cannot create a TLS context");
    SSL_CTX* ctx = impl_->ctx;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) fatal("cannot require TLS 1.2");
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_default_passwd_cb(ctx, output::tls::refuse_passphrase);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1)
        fatal("cannot load certificate " + cert_file);
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) fatal("cannot load key " + key_file);
    if (SSL_CTX_check_private_key(ctx) != 1) fatal("key " + key_file + " does not match certificate " + cert_file);
    if (output::tls::socket_bio_method() == nullptr) fatal("cannot create the socket BIO");
}

TlsServerContext::~TlsServerContext() {
    if (impl_ && impl_->ctx) SSL_CTX_free(impl_->ctx);
}

std::unique_ptr<Stream> TlsServerContext::make_stream(output::UniqueFd fd, int cancel_fd) const {
    ERR_clear_error();
    SSL* ssl = SSL_new(impl_->ctx);
    if (ssl != nullptr) {
        if (output::tls::attach_socket(ssl, fd.get())) {
            SSL_set_accept_state(ssl);
        } else {
            SSL_free(ssl);
            ssl = nullptr;
        }
    }
    ERR_clear_error();
    return std::make_unique<TlsStream>(std::move(fd), ssl, cancel_fd);
}

}  // namespace sidetap::listen
