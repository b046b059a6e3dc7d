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
#include <openssl/x509.h>

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
    SocketStream(int fd, int cancel_fd) : fd_(fd), cancel_fd_(cancel_fd) {}

    Io read_some(void* buffer, std::size_t size, std::size_t& got, Clock::time_point deadline) override {
        got = 0;
        for (;;) {
            const ssize_t n = ::recv(fd_, buffer, size, 0);
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
            if (const Io w = wait(fd_, POLLIN, cancel_fd_, deadline, error_); w != Io::Ok) return w;
        }
    }

    Io wait_readable(Clock::time_point deadline) override {
        return wait(fd_, POLLIN, cancel_fd_, deadline, error_);
    }

    Io write_all(std::span<const std::uint8_t> bytes, Clock::time_point deadline) override {
        while (!bytes.empty()) {
            const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
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
            if (const Io w = wait(fd_, POLLOUT, -1, deadline, error_); w != Io::Ok) return w;
        }
        return Io::Ok;
    }

private:
    int fd_;
    int cancel_fd_;
};

// --- TLS -------------------------------------------------------------------

using output::tls::take_openssl_error;

class TlsStream final : public Stream {
public:
    TlsStream(int fd, SSL* ssl, int cancel_fd) : fd_(fd), ssl_(ssl), cancel_fd_(cancel_fd) {}

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
        const Io r = drive(deadline, true, "TLS handshake: ", [&] { return SSL_accept(ssl_.get()); });
        if (r == Io::Ok || SSL_get_verify_mode(ssl_.get()) == SSL_VERIFY_NONE) return r;
        // Say which certificate problem it was, rather than OpenSSL's
        // generic "certificate verify failed".
        const long verify = SSL_get_verify_result(ssl_.get());
        if (last_reason_ == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
            rejected_certificate_ = true;
            error_ = "TLS client certificate: none sent (--tls-client-ca requires one)";
        } else if (verify != X509_V_OK || last_reason_ == SSL_R_CERTIFICATE_VERIFY_FAILED) {
            rejected_certificate_ = true;
            error_ = std::string("TLS client certificate: ") +
                     (verify != X509_V_OK ? X509_verify_cert_error_string(verify) : "verification failed");
        }
        return r;
    }

    [[nodiscard]] bool rejected_peer_certificate() const override { return rejected_certificate_; }

    [[nodiscard]] std::string peer_identity() const override {
        X509* cert = SSL_get0_peer_certificate(ssl_.get());
        if (cert == nullptr) return {};
        BIO* bio = BIO_new(BIO_s_mem());
        if (bio == nullptr) return {};
        std::string out;
        if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
            char* data = nullptr;
            const long n = BIO_get_mem_data(bio, &data);
            if (n > 0) out.assign(data, static_cast<std::size_t>(std::min(n, 200L)));
        }
        BIO_free(bio);
        for (char& c : out)
            if (c < 0x20 || c > 0x7e) c = '?';
        return out;
    }

    Io read_some(void* buffer, std::size_t size, std::size_t& got, Clock::time_point deadline) override {
        got = 0;
        return drive(deadline, true, "", [&] { return SSL_read_ex(ssl_.get(), buffer, size, &got); });
    }

    Io wait_readable(Clock::time_point deadline) override {
        if (SSL_pending(ssl_.get()) > 0) return Io::Ok;
        return wait(fd_, POLLIN, cancel_fd_, deadline, error_);
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
                last_reason_ = ERR_GET_REASON(ERR_peek_last_error());
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
            const Io w = wait(fd_, events, cancellable ? cancel_fd_ : -1, deadline, error_);
            if (w != Io::Ok) {
                if (w == Io::Timeout || w == Io::Error) broken_ = true;
                return w;
            }
        }
    }

    int fd_;
    output::tls::SslPtr ssl_;
    int cancel_fd_;
    bool broken_ = false;
    bool rejected_certificate_ = false;
    int last_reason_ = 0;  // OpenSSL reason code of the last failure
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

std::unique_ptr<Stream> make_socket_stream(int fd, int cancel_fd) {
    return std::make_unique<SocketStream>(fd, cancel_fd);
}

struct TlsServerContext::Impl {
    SSL_CTX* ctx = nullptr;  // freed here, also when the constructor throws
    bool verify_clients = false;
    Impl() = default;
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
    ~Impl() {
        if (ctx != nullptr) SSL_CTX_free(ctx);
    }
};

TlsServerContext::TlsServerContext(const std::string& cert_file, const std::string& key_file,
                                   const std::string& client_ca_file)
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
    // RELEASE_BUFFERS: an idle TLS writer holds no 16-34 KiB record buffers
    // (a thousand idle connections would hold tens of MiB outside the
    // --max-receive-memory budget).
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_default_passwd_cb(ctx, output::tls::refuse_passphrase);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1)
        fatal("cannot load certificate " + cert_file);
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) fatal("cannot load key " + key_file);
    if (SSL_CTX_check_private_key(ctx) != 1) fatal("key " + key_file + " does not match certificate " + cert_file);
    if (!client_ca_file.empty()) {
        // Trust exactly these CAs for client certificates (not the system
        // store: a public CA must not let anyone in), send their names in
        // the CertificateRequest, and refuse clients without a certificate.
        if (SSL_CTX_load_verify_locations(ctx, client_ca_file.c_str(), nullptr) != 1)
            fatal("cannot load client CA file " + client_ca_file + " (--tls-client-ca)");
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(client_ca_file.c_str());
        if (names == nullptr) fatal("no CA certificate in " + client_ca_file + " (--tls-client-ca)");
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
        impl_->verify_clients = true;
    }
    if (output::tls::socket_bio_method() == nullptr) fatal("cannot create the socket BIO");
}

bool TlsServerContext::verifies_clients() const { return impl_->verify_clients; }

TlsServerContext::~TlsServerContext() = default;

std::unique_ptr<Stream> TlsServerContext::make_stream(int fd, int cancel_fd) const {
    ERR_clear_error();
    SSL* ssl = SSL_new(impl_->ctx);
    if (ssl != nullptr) {
        if (output::tls::attach_socket(ssl, fd)) {
            SSL_set_accept_state(ssl);
        } else {
            SSL_free(ssl);
            ssl = nullptr;
        }
    }
    ERR_clear_error();
    return std::make_unique<TlsStream>(fd, ssl, cancel_fd);
}

}  // namespace sidetap::listen
