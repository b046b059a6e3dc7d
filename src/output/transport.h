// Transports under the Frame Streams socket writer: Unix stream sockets, TCP
// (host names resolved again at every connect) and TLS over TCP (OpenSSL).
//
// Contract:
//  - A Connector knows an endpoint and makes a fresh Connection on every
//    connect() call; it throws nothing: failures return nullptr with
//    `error` set to a one-line reason ("connect to 127.0.0.1:6000: Connection
//    refused", "TLS handshake with collector:6000: certificate verify
//    failed").
//  - connect(timeout) bounds the whole setup: every address tried, and for
//    TLS the handshake too. Host names are resolved (getaddrinfo) at every
//    connect(), so a collector that moved is found again; note that the
//    resolver itself is bounded by resolv.conf's timeouts, not by `timeout`.
//  - A Connection is a connected, blocking byte stream owned by one I/O
//    thread. write_all() writes every byte or fails, waiting at most the
//    write timeout (by default the timeout given to connect(); see
//    set_write_timeout()); read_exact() reads exactly n bytes or fails,
//    waiting at most `timeout`. Both return false with error() set on
//    failure (peer closed, reset, timeout), e.g. "read from 127.0.0.1:6000:
//    timed out after 2000 ms". After a failure the Connection is not usable
//    again: drop it and connect() anew. The destructor closes the socket
//    (TLS: sends close_notify without waiting for the peer's).
//  - TCP: Nagle stays on (TCP_NODELAY off, as CoreDNS): the writer already
//    batches frames into large writes. SO_KEEPALIVE is on, so a collector
//    host that vanished is noticed even when idle.
//  - TLS: TLS 1.2 minimum; the peer certificate is verified against
//    TlsOptions::ca_file or the system store, and its name against the
//    host (IP literals: the IP SAN; names: DNS SAN, and SNI is sent),
//    unless skip_verify. Handshake errors carry OpenSSL's reason
//    ("certificate verify failed: self-signed certificate"). With TLS 1.3
//    a server that rejects our client certificate does so after our side
//    of the handshake has completed: connect() succeeds and the first
//    read_exact() fails with "tlsv13 alert certificate required".
//  - Every handle is RAII; no signal is raised on a dead peer (MSG_NOSIGNAL
//    / SO_NOSIGPIPE; SIGPIPE is also ignored process-wide by the CLI).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

namespace sidetap::output {

class Connection {
public:
    virtual ~Connection() = default;
    virtual bool write_all(std::span<const std::uint8_t> bytes) = 0;
    // The pieces one after the other, as one write where the transport can
    // (sendmsg with an iovec on plain sockets); by default piece by piece.
    virtual bool writev_all(std::span<const std::span<const std::uint8_t>> pieces) {
        for (const auto& piece : pieces)
            if (!write_all(piece)) return false;
        return true;
    }
    virtual bool read_exact(std::span<std::uint8_t> out, std::chrono::milliseconds timeout) = 0;
    // True when the peer has closed or reset the connection, checked without
    // blocking (a collector that went away while we had nothing to send).
    virtual bool peer_closed() = 0;
    [[nodiscard]] virtual const std::string& error() const = 0;
    // Whether the peer *process* has read every byte written so far, when
    // the transport can tell: Unix stream sockets (SIOCOUTQ is 0 once the
    // receiver has read everything: sent buffers are charged to the sender
    // until then). nullopt for TCP and TLS: their send queue only holds what
    // the peer's kernel has not acknowledged, which says nothing about what
    // the collector read. Meaningless once the peer is gone (its unread data
    // is freed then): ask peer_closed() afterwards.
    [[nodiscard]] virtual std::optional<bool> caught_up() { return std::nullopt; }
    // Bounds every later write_all(). Connections made by a Connector start
    // with the connect() timeout; the default implementation ignores it (for
    // test doubles).
    virtual void set_write_timeout(std::chrono::milliseconds /*timeout*/) {}
};

class Connector {
public:
    virtual ~Connector() = default;
    virtual std::unique_ptr<Connection> connect(std::chrono::milliseconds timeout, std::string& error) = 0;
    // "unix:///run/x.sock", "tcp://host:port", "tls://host:port".
    [[nodiscard]] virtual const std::string& describe() const = 0;
};

struct TlsOptions {
    std::string ca_file;          // empty: the system trust store
    bool skip_verify = false;     // CoreDNS's skipverify
    std::string cert_file;        // client certificate for mutual TLS (optional)
    std::string key_file;
    std::string server_name;      // SNI and name check; default: the host of the URI
};

// Factories. Setup problems that can never work (a bad certificate or key
// file, a client certificate without its key, a path too long for
// sockaddr_un) throw util::FatalError with util::kExitUsage at construction.
// The TLS connector builds its SSL_CTX once; each connect() makes one SSL.
// IPv6 literals are given without brackets ("::1").
std::unique_ptr<Connector> make_unix_connector(const std::string& path);
std::unique_ptr<Connector> make_tcp_connector(const std::string& host, std::uint16_t port);
std::unique_ptr<Connector> make_tls_connector(const std::string& host, std::uint16_t port, const TlsOptions& tls);

}  // namespace sidetap::output
