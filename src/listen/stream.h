// The accepted side of one writer's connection: a plain socket (Unix, TCP)
// or TLS over TCP (OpenSSL, server role). The socket is non-blocking; every
// wait is a poll() against a deadline that also watches a cancel descriptor
// (the listener's shutdown eventfd), so a connection thread blocked on an
// idle writer wakes up at shutdown.
//
// Contract:
//  - read_some() returns what is available at once (it tries the socket
//    before looking at the cancel descriptor, so bytes already received
//    are still read during shutdown), else waits for data, EOF, the
//    deadline or cancellation.
//  - write_all() writes every byte or fails by the deadline.
//  - After Error/Timeout the stream is not used again; error() says why
//    ("connection reset by peer", "TLS handshake: wrong version number").
//  - No SIGPIPE (MSG_NOSIGNAL, also inside TLS through a custom BIO).
//  - The stream does not own the socket: the caller keeps it open for the
//    stream's lifetime (the Server closes it after the connection thread
//    ends, so that another thread may shutdown() it to evict the writer).
#pragma once

#include "output/fd.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace sidetap::listen {

using Clock = std::chrono::steady_clock;

enum class Io { Ok, Eof, Timeout, Cancelled, Error };

class Stream {
public:
    virtual ~Stream() = default;
    // TLS: the server handshake. Plain sockets: nothing to do.
    virtual Io handshake(Clock::time_point /*deadline*/) { return Io::Ok; }
    virtual Io read_some(void* buffer, std::size_t size, std::size_t& got, Clock::time_point deadline) = 0;
    // Waits until read_some() would not block (data, EOF, error) or cancel.
    virtual Io wait_readable(Clock::time_point deadline) = 0;
    virtual Io write_all(std::span<const std::uint8_t> bytes, Clock::time_point deadline) = 0;
    [[nodiscard]] const std::string& error() const { return error_; }
    // After a failed handshake(): true when it failed because the client
    // sent no certificate or one that does not verify (--tls-client-ca).
    [[nodiscard]] virtual bool rejected_peer_certificate() const { return false; }
    // After handshake(): the verified client certificate's subject
    // ("CN=writer1,O=example"), empty without one.
    [[nodiscard]] virtual std::string peer_identity() const { return {}; }

protected:
    std::string error_;
};

// Reads exactly out.size() bytes (Eof if the stream ends first).
Io read_exact(Stream& stream, std::span<std::uint8_t> out, Clock::time_point deadline);

// Far enough away to mean "no deadline".
inline Clock::time_point no_deadline() { return Clock::time_point::max(); }

std::unique_ptr<Stream> make_socket_stream(int fd, int cancel_fd);

// One server certificate for all TLS listeners; SSL_CTX built once.
// With `client_ca_file` (PEM, one or more CA certificates) every client must
// present a certificate that chains to one of them (mutual TLS); without it,
// clients are not asked for one.
class TlsServerContext {
public:
    // Throws util::FatalError(kExitUsage) when the certificate, key or CA
    // file cannot be loaded or the key does not match.
    TlsServerContext(const std::string& cert_file, const std::string& key_file,
                     const std::string& client_ca_file = {});
    ~TlsServerContext();
    TlsServerContext(const TlsServerContext&) = delete;
    TlsServerContext& operator=(const TlsServerContext&) = delete;

    std::unique_ptr<Stream> make_stream(int fd, int cancel_fd) const;
    [[nodiscard]] bool verifies_clients() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sidetap::listen
