// Transports under the Frame Streams socket writer: Unix stream sockets, TCP
// (host names resolved again at every connect) and TLS over TCP (OpenSSL).
//
// Contract:
//  - A Connector knows an endpoint and makes a fresh Connection on every
//    connect() call; it throws nothing: failures return nullptr with
//    `error` set to a one-line reason ("connect to 127.0.0.1:6000: Connection
//    refused", "TLS handshake with collector:6000: certificate verify
//    failed").
//  - A Connection is a connected, blocking byte stream owned by one I/O
//    thread. write_all() writes every byte or fails; read_exact() reads
//    exactly n bytes or fails, waiting at most `timeout`. Both return false
//    with error() set on failure (peer closed, reset, timeout). The
//    destructor closes the socket (and sends TLS close_notify).
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
    virtual bool read_exact(std::span<std::uint8_t> out, std::chrono::milliseconds timeout) = 0;
    // True when the peer has closed or reset the connection, checked without
    // blocking (a collector that went away while we had nothing to send).
    virtual bool peer_closed() = 0;
    [[nodiscard]] virtual const std::string& error() const = 0;
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

// Factories. Setup problems that can never work (a bad certificate file, a
// path too long for sockaddr_un) throw util::FatalError at construction.
std::unique_ptr<Connector> make_unix_connector(const std::string& path);
std::unique_ptr<Connector> make_tcp_connector(const std::string& host, std::uint16_t port);
std::unique_ptr<Connector> make_tls_connector(const std::string& host, std::uint16_t port, const TlsOptions& tls);

}  // namespace sidetap::output
