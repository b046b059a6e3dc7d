#include "metrics/metrics.h"

#include "util/error.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

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

void send_all(int fd, const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
        const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        sent += static_cast<std::size_t>(n);
    }
}

}  // namespace

HttpServer::HttpServer(const std::string& listen, const Board& board) : board_(board) {
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
        const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
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
        if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, 16) != 0) {
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
    thread_ = std::thread([this] { run(); });
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    if (listen_fd_ >= 0) {
        ::close(listen_fd_);
        listen_fd_ = -1;
    }
}

void HttpServer::run() {
    while (!stop_.load()) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        serve(fd);
        ::close(fd);
    }
}

void HttpServer::serve(int fd) {
    timeval timeout{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    std::string request;
    char buffer[2048];
    while (request.size() < 8192 && request.find("\r\n\r\n") == std::string::npos &&
           request.find("\n\n") == std::string::npos) {
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        request.append(buffer, static_cast<std::size_t>(n));
    }
    const auto line_end = request.find_first_of("\r\n");
    const std::string line = request.substr(0, line_end);
    const auto sp1 = line.find(' ');
    const auto sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
    const std::string method = line.substr(0, sp1);
    std::string path = sp1 == std::string::npos ? "" : line.substr(sp1 + 1, sp2 == std::string::npos ? std::string::npos : sp2 - sp1 - 1);
    if (const auto q = path.find('?'); q != std::string::npos) path.resize(q);

    std::string status, type = "text/plain; charset=utf-8", body;
    if (method != "GET" && method != "HEAD") {
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
    send_all(fd, response);
}

}  // namespace sidetap::metrics
