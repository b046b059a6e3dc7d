#include "metrics/metrics.h"

#include "util/error.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

namespace sidetap::metrics {

std::string metric_name(std::string_view name, Kind kind) {
    std::string out = "sidetap_";
    for (char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                        c == ':';
        out += ok ? c : '_';
    }
    if (kind == Kind::Counter && !(out.size() >= 6 && out.compare(out.size() - 6, 6, "_total") == 0))
        out += "_total";
    return out;
}

namespace {
void append_label_value(std::string& out, const std::string& value) {
    for (char c : value) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
}
}  // namespace

std::string render(const std::vector<Sample>& samples) {
    // Families in order of first appearance; samples of one family together.
    std::vector<std::string> order;
    std::map<std::string, std::vector<const Sample*>> families;
    std::map<std::string, Kind> kinds;
    for (const auto& s : samples) {
        auto name = metric_name(s.name, s.kind);
        auto [it, inserted] = families.try_emplace(name);
        if (inserted) {
            order.push_back(name);
            kinds[name] = s.kind;
        }
        it->second.push_back(&s);
    }
    std::string out;
    for (const auto& name : order) {
        out += "# TYPE " + name + (kinds[name] == Kind::Counter ? " counter\n" : " gauge\n");
        for (const Sample* s : families[name]) {
            out += name;
            if (!s->labels.empty()) {
                out += '{';
                for (std::size_t i = 0; i < s->labels.size(); ++i) {
                    if (i) out += ',';
                    out += metric_name(s->labels[i].first, Kind::Gauge).substr(8);  // same charset, no prefix
                    out += "=\"";
                    append_label_value(out, s->labels[i].second);
                    out += '"';
                }
                out += '}';
            }
            out += ' ';
            out += std::to_string(s->value);
            out += '\n';
        }
    }
    return out;
}

void Board::publish(std::vector<Sample> samples) {
    std::lock_guard lock(mutex_);
    samples_ = std::move(samples);
    ++publications_;
}

std::string Board::render() const {
    std::vector<Sample> copy;
    {
        std::lock_guard lock(mutex_);
        copy = samples_;
    }
    return metrics::render(copy);
}

std::size_t Board::publications() const {
    std::lock_guard lock(mutex_);
    return publications_;
}

namespace {

void split_host_port(const std::string& text, std::string& host, std::string& port) {
    const auto bad = [&] {
        return util::FatalError("--metrics: '" + text + "' is not HOST:PORT (e.g. 127.0.0.1:9153, [::1]:9153, :9153)",
                                util::kExitUsage);
    };
    if (!text.empty() && text[0] == '[') {
        const auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') throw bad();
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string::npos) throw bad();
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string::npos) throw bad();  // IPv6 needs brackets
    }
    if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
        std::stoul(port) > 65535)
        throw bad();
}

}  // namespace

HttpServer::HttpServer(const std::string& listen, const Board& board, HttpLimits limits)
    : board_(board), limits_(limits) {
    if (limits_.max_clients == 0) limits_.max_clients = 1;
    std::string host, port;
    split_host_port(listen, host, port);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* result = nullptr;
    const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &result);
    if (rc != 0) throw util::FatalError("--metrics " + listen + ": " + gai_strerror(rc), util::kExitUsage);
    std::string last_error = "no address";
    // With an empty host prefer the IPv6 wildcard (dual-stack) if present.
    for (addrinfo* ai = result; ai; ai = ai->ai_next) {
        if (host.empty() && ai->ai_family != AF_INET6 && ai->ai_next) continue;
        const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            last_error = std::strerror(errno);
            continue;
        }
        const int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6) {
            const int zero = 0;
            ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        }
        if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, 64) != 0) {
            last_error = std::strerror(errno);
            ::close(fd);
            continue;
        }
        listen_fd_ = fd;
        break;
    }
    ::freeaddrinfo(result);
    if (listen_fd_ < 0) throw util::FatalError("--metrics " + listen + ": cannot listen: " + last_error);
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
    port_ = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                        : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) {
        const int err = errno;
        ::close(listen_fd_);
        listen_fd_ = -1;
        throw util::FatalError(std::string("--metrics: eventfd: ") + std::strerror(err));
    }
    thread_ = std::thread([this] { run(); });
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::stop() {
    if (!stop_.exchange(true) && wake_fd_ >= 0) {
        const std::uint64_t one = 1;
        (void)!::write(wake_fd_, &one, sizeof one);
    }
    if (thread_.joinable()) thread_.join();
    if (listen_fd_ >= 0) {
        ::close(listen_fd_);
        listen_fd_ = -1;
    }
    if (wake_fd_ >= 0) {
        ::close(wake_fd_);
        wake_fd_ = -1;
    }
}

struct HttpServer::Client {
    int fd = -1;
    std::chrono::steady_clock::time_point deadline;
    std::string request;
    std::string response;  // non-empty once the request is complete
    std::size_t sent = 0;
};

namespace {
constexpr std::size_t kMaxRequestHead = 8192;

bool head_complete(const std::string& request) {
    return request.find("\r\n\r\n") != std::string::npos || request.find("\n\n") != std::string::npos;
}
}  // namespace

void HttpServer::run() {
    using SteadyClock = std::chrono::steady_clock;
    std::vector<Client> clients;
    clients.reserve(limits_.max_clients);
    std::vector<pollfd> fds;
    auto close_client = [&](std::size_t i) {
        ::close(clients[i].fd);
        clients.erase(clients.begin() + static_cast<std::ptrdiff_t>(i));
    };
    while (!stop_.load()) {
        // Deadlines first: whatever is late is closed, whatever it was doing.
        const auto now = SteadyClock::now();
        for (std::size_t i = clients.size(); i-- > 0;) {
            if (clients[i].deadline <= now) {
                timed_out_.fetch_add(1);
                close_client(i);
            }
        }
        fds.clear();
        fds.push_back({wake_fd_, POLLIN, 0});
        fds.push_back({listen_fd_, POLLIN, 0});
        int timeout_ms = -1;
        for (const auto& c : clients) {
            fds.push_back({c.fd, static_cast<short>(c.response.empty() ? POLLIN : POLLOUT), 0});
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(c.deadline - now).count();
            timeout_ms = timeout_ms < 0 ? static_cast<int>(left) : std::min(timeout_ms, static_cast<int>(left));
        }
        const int n = ::poll(fds.data(), fds.size(), timeout_ms < 0 ? -1 : std::max(timeout_ms, 1));
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (fds[0].revents != 0) break;
        // Existing clients (from the back: close_client shifts the rest).
        for (std::size_t i = clients.size(); i-- > 0;) {
            const short revents = fds[i + 2].revents;
            if (revents == 0) continue;
            Client& c = clients[i];
            if (c.response.empty()) {
                char buffer[2048];
                const ssize_t got = ::recv(c.fd, buffer, sizeof buffer, 0);
                if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
                if (got <= 0) {  // closed before a whole request: nothing to answer
                    close_client(i);
                    continue;
                }
                c.request.append(buffer, static_cast<std::size_t>(got));
                if (head_complete(c.request) || c.request.size() >= kMaxRequestHead) {
                    c.response = respond(c.request);
                    c.request.clear();
                    c.request.shrink_to_fit();
                }
                if (c.response.empty()) continue;
            }
            // Write what the socket takes now; the rest when it is writable.
            while (c.sent < c.response.size()) {
                const ssize_t put = ::send(c.fd, c.response.data() + c.sent, c.response.size() - c.sent, MSG_NOSIGNAL);
                if (put > 0) {
                    c.sent += static_cast<std::size_t>(put);
                    continue;
                }
                if (put < 0 && errno == EINTR) continue;
                break;
            }
            const bool blocked = c.sent < c.response.size() && (errno == EAGAIN || errno == EWOULDBLOCK);
            if (!blocked) close_client(i);  // all sent, or the client went away
        }
        // New connections: as many as are waiting; a full table closes the oldest.
        if (fds[1].revents != 0) {
            for (;;) {
                const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0) break;
                if (clients.size() >= limits_.max_clients) {
                    std::size_t oldest = 0;
                    for (std::size_t i = 1; i < clients.size(); ++i)
                        if (clients[i].deadline < clients[oldest].deadline) oldest = i;
                    evicted_.fetch_add(1);
                    close_client(oldest);
                }
                clients.push_back({fd, SteadyClock::now() + limits_.request_timeout, {}, {}, 0});
            }
        }
    }
    for (auto& c : clients) ::close(c.fd);
}

std::string HttpServer::respond(const std::string& request) const {
    const auto line_end = request.find_first_of("\r\n");
    const std::string line = request.substr(0, line_end);
    const auto sp1 = line.find(' ');
    const auto sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
    const std::string method = line.substr(0, sp1);
    std::string path = sp1 == std::string::npos ? "" : line.substr(sp1 + 1, sp2 == std::string::npos ? std::string::npos : sp2 - sp1 - 1);
    if (const auto q = path.find('?'); q != std::string::npos) path.resize(q);

    std::string status, type = "text/plain; charset=utf-8", body;
    if (!head_complete(request)) {
        status = "400 Bad Request";
        body = "request head over 8 KiB\n";
    } else if (method != "GET" && method != "HEAD") {
        status = "405 Method Not Allowed";
        body = "only GET\n";
    } else if (path != "/metrics") {
        status = "404 Not Found";
        body = "try /metrics\n";
    } else {
        status = "200 OK";
        type = "text/plain; version=0.0.4; charset=utf-8";
        body = board_.render();
    }
    std::string response = "HTTP/1.0 " + status + "\r\nContent-Type: " + type +
                           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    if (method != "HEAD") response += body;
    return response;
}

}  // namespace sidetap::metrics
