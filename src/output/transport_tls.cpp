// TLS over TCP with OpenSSL 3. The TCP socket stays non-blocking; every
// SSL_* call is driven by poll() on WANT_READ/WANT_WRITE against a deadline.
#include "output/fd.h"
#include "output/tls_util.h"
#include "output/transport.h"
#include "util/error.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

namespace sidetap::output {
namespace {

using net::Clock;
using net::Wait;

using tls::SslCtxPtr;
using tls::SslPtr;
using tls::take_openssl_error;
using tls::refuse_passphrase;

// One line for a failed SSL_* call; `saved_errno` is errno right after it.
std::string describe_failure(SSL* ssl, int ssl_error, int saved_errno) {
    unsigned long code = 0;
    std::string reason = take_openssl_error(&code);
    // The verify result says why ("self-signed certificate", "hostname
    // mismatch"). Only when verification is what failed: with skip_verify
    // OpenSSL still records a result that did not matter.
    if (ERR_GET_LIB(code) == ERR_LIB_SSL && ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        if (const long verify = SSL_get_verify_result(ssl); verify != X509_V_OK) {
            reason += ": ";
            reason += X509_verify_cert_error_string(verify);
        }
    }
    if (!reason.empty()) return reason;
    switch (ssl_error) {
    case SSL_ERROR_ZERO_RETURN: return "connection closed by peer (close_notify)";
    case SSL_ERROR_SYSCALL:
        return saved_errno != 0 ? std::strerror(saved_errno) : "connection closed by peer";
    default: return "TLS error " + std::to_string(ssl_error);
    }
}

bool is_ip_literal(const std::string& name) {
    const std::string address = name.substr(0, name.find('%'));  // fe80::1%eth0
    in6_addr buf{};
    return ::inet_pton(AF_INET, address.c_str(), &buf) == 1 || ::inet_pton(AF_INET6, address.c_str(), &buf) == 1;
}


class TlsConnection final : public Connection {
public:
    TlsConnection(UniqueFd fd, SslPtr ssl, std::string peer, std::chrono::milliseconds write_timeout)
        : fd_(std::move(fd)), ssl_(std::move(ssl)), peer_(std::move(peer)), write_timeout_(write_timeout) {}

    ~TlsConnection() override {
        if (broken_) return;
        // close_notify, without waiting for the peer's: at most one short
        // wait when the socket buffer is full.
        ERR_clear_error();
        int rc = SSL_shutdown(ssl_.get());
        if (rc < 0 && SSL_get_error(ssl_.get(), rc) == SSL_ERROR_WANT_WRITE &&
            net::wait_fd(fd_.get(), POLLOUT, Clock::now() + std::chrono::milliseconds(100)) == Wait::Ready) {
            (void)SSL_shutdown(ssl_.get());
        }
        ERR_clear_error();
    }

    bool write_all(std::span<const std::uint8_t> bytes) override {
        if (broken_) return fail("write to", error_reason_);
        const auto deadline = Clock::now() + write_timeout_;
        while (!bytes.empty()) {
            std::size_t written = 0;
            std::string reason;
            if (!drive(deadline, write_timeout_, reason,
                       [&] { return SSL_write_ex(ssl_.get(), bytes.data(), bytes.size(), &written); })) {
                return fail("write to", reason);
            }
            bytes = bytes.subspan(written);
        }
        return true;
    }

    bool read_exact(std::span<std::uint8_t> out, std::chrono::milliseconds timeout) override {
        if (broken_) return fail("read from", error_reason_);
        const auto deadline = Clock::now() + timeout;
        while (!out.empty()) {
            std::size_t got = 0;
            std::string reason;
            if (!drive(deadline, timeout, reason,
                       [&] { return SSL_read_ex(ssl_.get(), out.data(), out.size(), &got); })) {
                return fail("read from", reason);
            }
            out = out.subspan(got);
        }
        return true;
    }

    bool peer_closed() override {
        if (broken_) return true;
        if (SSL_pending(ssl_.get()) > 0) return false;
        pollfd p{fd_.get(), POLLIN | POLLRDHUP, 0};
        int n = 0;
        do n = ::poll(&p, 1, 0);
        while (n < 0 && errno == EINTR);
        if (n <= 0) return false;
        if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return true;
        // Readable: a TLS 1.3 session ticket, a close_notify, an alert, or
        // application data. Let OpenSSL look (SSL_peek consumes only records
        // that are not application data).
        std::uint8_t byte = 0;
        std::size_t got = 0;
        ERR_clear_error();
        errno = 0;
        const int rc = SSL_peek_ex(ssl_.get(), &byte, 1, &got);
        if (rc == 1) return false;
        const int saved_errno = errno;
        const int err = SSL_get_error(ssl_.get(), rc);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return false;
        fail("read from", describe_failure(ssl_.get(), err, saved_errno));
        return true;
    }

    [[nodiscard]] const std::string& error() const override { return error_; }
    void set_write_timeout(std::chrono::milliseconds timeout) override { write_timeout_ = timeout; }

private:
    template <typename Op>
    bool drive(Clock::time_point deadline, std::chrono::milliseconds timeout, std::string& reason, Op&& op) {
        for (;;) {
            ERR_clear_error();
            errno = 0;
            const int rc = op();
            if (rc == 1) return true;
            const int saved_errno = errno;
            const int err = SSL_get_error(ssl_.get(), rc);
            short events = 0;
            if (err == SSL_ERROR_WANT_READ) {
                events = POLLIN;
            } else if (err == SSL_ERROR_WANT_WRITE) {
                events = POLLOUT;
            } else {
                reason = describe_failure(ssl_.get(), err, saved_errno);
                return false;
            }
            switch (net::wait_fd(fd_.get(), events, deadline)) {
            case Wait::Ready: break;
            case Wait::Timeout: reason = net::timed_out(timeout); return false;
            case Wait::Error: reason = std::strerror(errno); return false;
            }
        }
    }

    // After any failure the TLS state is unknown (maybe half a record
    // written): no more I/O and no close_notify.
    bool fail(const char* what, const std::string& reason) {
        broken_ = true;
        error_reason_ = reason;
        error_ = std::string(what) + " " + peer_ + ": " + reason;
        return false;
    }

    UniqueFd fd_;   // declared before ssl_: the SSL (and its BIO) go first
    SslPtr ssl_;
    std::string peer_;
    std::chrono::milliseconds write_timeout_;
    bool broken_ = false;
    std::string error_reason_;
    std::string error_;
};

class TlsConnector final : public Connector {
public:
    TlsConnector(std::string host, std::uint16_t port, TlsOptions options)
        : host_(std::move(host)),
          port_(port),
          options_(std::move(options)),
          describe_("tls://" + net::host_port(host_, port_)) {
        if (host_.empty()) throw util::FatalError("tls destination without a host", util::kExitUsage);
        if (port_ == 0) throw util::FatalError("tls destination " + describe_ + ": port 0", util::kExitUsage);
        if (options_.server_name.empty()) options_.server_name = host_;
        name_is_ip_ = is_ip_literal(options_.server_name);
        ctx_ = make_context();
    }

    std::unique_ptr<Connection> connect(std::chrono::milliseconds timeout, std::string& error) override {
        const auto deadline = Clock::now() + timeout;
        const std::string where = net::host_port(host_, port_);
        UniqueFd fd = net::connect_tcp(host_, port_, timeout, error);
        if (!fd) return nullptr;

        auto fail = [&](const std::string& reason) {
            error = "TLS handshake with " + where + ": " + reason;
            return nullptr;
        };
        ERR_clear_error();
        SslPtr ssl(SSL_new(ctx_.get()));
        if (!ssl) return fail(take_openssl_error());
        if (!tls::attach_socket(ssl.get(), fd.get())) return fail(take_openssl_error());

        const char* name = options_.server_name.c_str();
        if (!options_.skip_verify) {
            const int ok = name_is_ip_ ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), name)
                                       : SSL_set1_host(ssl.get(), name);
            if (ok != 1) return fail("cannot check the peer name " + options_.server_name + ": " + take_openssl_error());
            SSL_set_hostflags(ssl.get(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        }
        // SNI carries host names only (RFC 6066); it is sent even with
        // skip_verify so virtual-hosted collectors pick the right certificate.
        if (!name_is_ip_ && SSL_set_tlsext_host_name(ssl.get(), const_cast<char*>(name)) != 1) {
            return fail("cannot set SNI " + options_.server_name + ": " + take_openssl_error());
        }
        SSL_set_connect_state(ssl.get());

        for (;;) {
            ERR_clear_error();
            errno = 0;
            const int rc = SSL_connect(ssl.get());
            if (rc == 1) break;
            const int saved_errno = errno;
            const int err = SSL_get_error(ssl.get(), rc);
            short events = 0;
            if (err == SSL_ERROR_WANT_READ) {
                events = POLLIN;
            } else if (err == SSL_ERROR_WANT_WRITE) {
                events = POLLOUT;
            } else {
                return fail(describe_failure(ssl.get(), err, saved_errno));
            }
            switch (net::wait_fd(fd.get(), events, deadline)) {
            case Wait::Ready: break;
            case Wait::Timeout: return fail(net::timed_out(timeout));
            case Wait::Error: return fail(std::strerror(errno));
            }
        }
        return std::make_unique<TlsConnection>(std::move(fd), std::move(ssl), where, timeout);
    }

    [[nodiscard]] const std::string& describe() const override { return describe_; }

private:
    [[noreturn]] void fatal(const std::string& what) const {
        std::string reason = take_openssl_error();
        throw util::FatalError(describe_ + ": " + what + (reason.empty() ? "" : ": " + reason), util::kExitUsage);
    }

    SslCtxPtr make_context() const {
        ERR_clear_error();
        SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
        if (!ctx) fatal("cannot create a TLS context");
        if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1) fatal("cannot require TLS 1.2");
        SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        // An encrypted key must fail here, not prompt on the terminal.
        SSL_CTX_set_default_passwd_cb(ctx.get(), refuse_passphrase);
        SSL_CTX_set_verify(ctx.get(), options_.skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, nullptr);

        // A CA file is loaded (and its errors reported) even with
        // skip_verify: a typo should not wait for the day verification is on.
        if (!options_.ca_file.empty()) {
            if (SSL_CTX_load_verify_locations(ctx.get(), options_.ca_file.c_str(), nullptr) != 1) {
                fatal("cannot load CA file " + options_.ca_file);
            }
        } else if (!options_.skip_verify && SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
            fatal("cannot load the system trust store");
        }

        if (options_.cert_file.empty() != options_.key_file.empty()) {
            throw util::FatalError(describe_ + ": a client certificate needs both a certificate file and a key file",
                                   util::kExitUsage);
        }
        if (!options_.cert_file.empty()) {
            if (SSL_CTX_use_certificate_chain_file(ctx.get(), options_.cert_file.c_str()) != 1) {
                fatal("cannot load client certificate " + options_.cert_file);
            }
            if (SSL_CTX_use_PrivateKey_file(ctx.get(), options_.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
                fatal("cannot load client key " + options_.key_file);
            }
            if (SSL_CTX_check_private_key(ctx.get()) != 1) {
                fatal("client key " + options_.key_file + " does not match certificate " + options_.cert_file);
            }
        }
        return ctx;
    }

    std::string host_;
    std::uint16_t port_;
    TlsOptions options_;
    std::string describe_;
    bool name_is_ip_ = false;
    SslCtxPtr ctx_;
};

}  // namespace

std::unique_ptr<Connector> make_tls_connector(const std::string& host, std::uint16_t port, const TlsOptions& tls) {
    return std::make_unique<TlsConnector>(host, port, tls);
}

}  // namespace sidetap::output
