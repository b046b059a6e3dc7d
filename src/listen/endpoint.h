// Where `sidetap listen` accepts Frame Streams writers: Unix stream sockets
// and TCP (optionally TLS) host:port pairs, and the listening sockets made
// from them.
//
// Accepted forms for -l (network endpoints):
//   HOST:PORT, [V6]:PORT, :PORT     TCP, or TLS when a certificate is given
//                                   (tls_default = true)
//   tcp://HOST:PORT                 always plain TCP
//   tls://HOST:PORT                 always TLS (needs --tls-cert/--tls-key)
// HOST is an IPv4/IPv6 literal or a name (every address it resolves to is
// bound); an empty host or "*" means every address (0.0.0.0 and ::). PORT 0
// asks the kernel for a free port (see ListeningSocket::where).
//
// Contract:
//  - parse_network_endpoint() checks syntax only and throws
//    util::FatalError(kExitUsage) naming the input.
//  - bind_endpoint() returns one listening, non-blocking, CLOEXEC socket per
//    bound address, or throws util::FatalError(kExitRuntime)
//    ("cannot listen on 127.0.0.1:6000: Address already in use").
//  - Unix: a stale socket file (nobody accepts on it) is removed first; a
//    live one (another collector) or a path that is not a socket is an
//    error, never deleted. The socket gets `socket_mode` (chmod). The
//    ListeningSocket removes its socket file on destruction if the file is
//    still the one it created (same inode).
#pragma once

#include "output/fd.h"

#include <cstdint>
#include <string>
#include <sys/types.h>
#include <vector>

namespace sidetap::listen {

struct Endpoint {
    enum Kind { Unix, Tcp, Tls };
    Kind kind = Unix;
    std::string path;  // Unix
    std::string host;  // Tcp, Tls (IPv6 without brackets; empty = any)
    std::uint16_t port = 0;
};

Endpoint unix_endpoint(const std::string& path);
Endpoint parse_network_endpoint(const std::string& text, bool tls_default);

// "unix:/run/x.sock", "tcp://127.0.0.1:6000", "tls://[::1]:6000".
std::string to_string(const Endpoint& endpoint);

class ListeningSocket {
public:
    ListeningSocket(output::UniqueFd fd, Endpoint bound, std::string unlink_path, ino_t inode);
    ListeningSocket(ListeningSocket&& other) noexcept;
    ListeningSocket& operator=(ListeningSocket&&) = delete;
    ~ListeningSocket();

    [[nodiscard]] int fd() const { return fd_.get(); }
    // The address actually bound (the kernel's port when 0 was asked).
    [[nodiscard]] const Endpoint& where() const { return bound_; }
    [[nodiscard]] bool tls() const { return bound_.kind == Endpoint::Tls; }

private:
    output::UniqueFd fd_;
    Endpoint bound_;
    std::string unlink_path_;  // Unix: removed on destruction
    ino_t inode_ = 0;
};

std::vector<ListeningSocket> bind_endpoint(const Endpoint& endpoint, unsigned socket_mode, int backlog = 1024);

}  // namespace sidetap::listen
