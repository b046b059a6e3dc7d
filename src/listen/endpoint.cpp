#include "listen/endpoint.h"

#include "output/fd.h"
#include "util/error.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <utility>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace sidetap::listen {

namespace {

[[noreturn]] void usage(const std::string& text, const std::string& why) {
    throw util::FatalError("-l " + text + ": " + why, util::kExitUsage);
}

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

struct AddrinfoDeleter {
    void operator()(addrinfo* ai) const { ::freeaddrinfo(ai); }
};

std::string numeric_host(const sockaddr* sa, socklen_t len, std::uint16_t& port) {
    char host[NI_MAXHOST];
    char serv[NI_MAXSERV];
    if (::getnameinfo(sa, len, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return "?";
    port = static_cast<std::uint16_t>(std::atoi(serv));
    return host;
}

}  // namespace

Endpoint unix_endpoint(const std::string& path) {
    if (path.empty()) throw util::FatalError("-u: empty socket path", util::kExitUsage);
    if (path.size() >= sizeof(sockaddr_un::sun_path))
        throw util::FatalError("-u " + path + ": path too long for a Unix socket (" + std::to_string(path.size()) +
                                   " bytes, at most " + std::to_string(sizeof(sockaddr_un::sun_path) - 1) + ")",
                               util::kExitUsage);
    Endpoint e;
    e.kind = Endpoint::Unix;
    e.path = path;
    return e;
}

Endpoint parse_network_endpoint(const std::string& text, bool tls_default) {
    Endpoint e;
    e.kind = tls_default ? Endpoint::Tls : Endpoint::Tcp;
    std::string rest = text;
    if (const auto scheme = rest.find("://"); scheme != std::string::npos) {
        const auto name = lower(rest.substr(0, scheme));
        if (name == "tcp") {
            e.kind = Endpoint::Tcp;
        } else if (name == "tls") {
            e.kind = Endpoint::Tls;
        } else {
            usage(text, "unknown scheme '" + name + "' (use HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT)");
        }
        rest = rest.substr(scheme + 3);
    }
    std::string port_text;
    if (!rest.empty() && rest.front() == '[') {
        const auto close = rest.find(']');
        if (close == std::string::npos) usage(text, "missing ']' after the IPv6 address");
        e.host = rest.substr(1, close - 1);
        if (close + 1 >= rest.size() || rest[close + 1] != ':') usage(text, "missing :PORT");
        port_text = rest.substr(close + 2);
        in6_addr buf{};
        if (::inet_pton(AF_INET6, e.host.c_str(), &buf) != 1) usage(text, "'" + e.host + "' is not an IPv6 address");
    } else {
        const auto colon = rest.rfind(':');
        if (colon == std::string::npos) usage(text, "missing :PORT (e.g. 127.0.0.1:6000)");
        e.host = rest.substr(0, colon);
        if (e.host.find(':') != std::string::npos) usage(text, "IPv6 addresses go in brackets: [::1]:6000");
        port_text = rest.substr(colon + 1);
    }
    if (e.host == "*") e.host.clear();
    unsigned value = 0;
    const auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (port_text.empty() || ec != std::errc() || ptr != port_text.data() + port_text.size() || value > 65535)
        usage(text, "'" + port_text + "' is not a port (0-65535; 0 picks a free one)");
    e.port = static_cast<std::uint16_t>(value);
    return e;
}

std::string to_string(const Endpoint& endpoint) {
    if (endpoint.kind == Endpoint::Unix) return "unix:" + endpoint.path;
    const std::string host = endpoint.host.empty() ? "*" : endpoint.host;
    return std::string(endpoint.kind == Endpoint::Tls ? "tls://" : "tcp://") +
           output::net::host_port(host, endpoint.port);
}

ListeningSocket::ListeningSocket(output::UniqueFd fd, Endpoint bound, std::string unlink_path, ino_t inode)
    : fd_(std::move(fd)), bound_(std::move(bound)), unlink_path_(std::move(unlink_path)), inode_(inode) {}

ListeningSocket::ListeningSocket(ListeningSocket&& other) noexcept
    : fd_(std::move(other.fd_)),
      bound_(std::move(other.bound_)),
      unlink_path_(std::exchange(other.unlink_path_, std::string())),
      inode_(other.inode_) {}

ListeningSocket::~ListeningSocket() {
    if (unlink_path_.empty()) return;
    struct stat st {};
    // Only our own socket file: another process may have replaced it.
    if (::lstat(unlink_path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == inode_)
        ::unlink(unlink_path_.c_str());
}

namespace {

std::vector<ListeningSocket> bind_unix(const Endpoint& endpoint, unsigned socket_mode, int backlog) {
    const std::string& path = endpoint.path;
    auto fail = [&](const std::string& why) -> std::vector<ListeningSocket> {
        throw util::FatalError("cannot listen on " + path + ": " + why);
    };
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());

    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) return fail("the path exists and is not a socket (not removed)");
        // Stale or alive? Only a socket nobody accepts on is removed.
        output::UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!probe) return fail(std::strerror(errno));
        if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 || errno == EAGAIN)
            return fail("another process is listening on it");
        if (errno != ECONNREFUSED) return fail(std::string("existing socket: ") + std::strerror(errno));
        if (::unlink(path.c_str()) != 0 && errno != ENOENT)
            return fail(std::string("cannot remove the stale socket: ") + std::strerror(errno));
    }
    output::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return fail(std::strerror(errno));
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return fail(std::strerror(errno));
    if (::lstat(path.c_str(), &st) != 0) return fail(std::strerror(errno));
    // From here on the file is ours: the ListeningSocket removes it, also
    // when chmod or listen fail below.
    std::vector<ListeningSocket> out;
    out.emplace_back(std::move(fd), endpoint, path, st.st_ino);
    if (::chmod(path.c_str(), static_cast<mode_t>(socket_mode)) != 0)
        return fail(std::string("chmod: ") + std::strerror(errno));
    if (::listen(out.back().fd(), backlog) != 0) return fail(std::strerror(errno));
    return out;
}

}  // namespace

std::vector<ListeningSocket> bind_endpoint(const Endpoint& endpoint, unsigned socket_mode, int backlog) {
    if (endpoint.kind == Endpoint::Unix) return bind_unix(endpoint, socket_mode, backlog);

    const std::string where = to_string(endpoint);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* raw = nullptr;
    const std::string service = std::to_string(endpoint.port);
    const int rc = ::getaddrinfo(endpoint.host.empty() ? nullptr : endpoint.host.c_str(), service.c_str(), &hints, &raw);
    std::unique_ptr<addrinfo, AddrinfoDeleter> list(raw);
    if (rc != 0)
        throw util::FatalError("cannot listen on " + where + ": " +
                               (rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc)));
    std::vector<ListeningSocket> out;
    for (const addrinfo* ai = list.get(); ai != nullptr; ai = ai->ai_next) {
        output::UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
        std::uint16_t port = 0;
        const std::string host = numeric_host(ai->ai_addr, ai->ai_addrlen, port);
        auto fail = [&](const std::string& why) {
            throw util::FatalError("cannot listen on " + output::net::host_port(host, endpoint.port) + ": " + why);
        };
        if (!fd) fail(std::strerror(errno));
        const int on = 1;
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        // "::" and "0.0.0.0" both come back for the wildcard: bind each
        // family on its own.
        if (ai->ai_family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
        if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) fail(std::strerror(errno));
        if (::listen(fd.get(), backlog) != 0) fail(std::strerror(errno));
        sockaddr_storage bound{};
        socklen_t len = sizeof bound;
        Endpoint e = endpoint;
        if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len) == 0)
            e.host = numeric_host(reinterpret_cast<const sockaddr*>(&bound), len, e.port);
        out.emplace_back(std::move(fd), std::move(e), std::string(), 0);
    }
    if (out.empty()) throw util::FatalError("cannot listen on " + where + ": no address");
    return out;
}

}  // namespace sidetap::listen
