#include "listen/server.h"

#include "framestream/codec.h"
#include "framestream/reader.h"
#include "listen/stream.h"
#include "util/error.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace sidetap::listen {

namespace fs = framestream;

namespace {

enum Counter : std::size_t {
    kAccepted,
    kActive,
    kPeakActive,
    kBidirectional,
    kUnidirectional,
    kFinished,
    kClosedWithoutStop,
    kReset,
    kTruncated,
    kTooLarge,
    kProtocolErrors,
    kClosedAtShutdown,
    kRefusedMax,
    kRefusedResources,
    kWrongContentType,
    kHandshakeFailed,
    kHandshakeTimeout,
    kRefusedUnidirectional,
    kFrames,
    kBytes,
    kCounterCount
};

std::string peer_name(int fd, bool unix_socket) {
    if (unix_socket) {
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0)
            return "pid " + std::to_string(cred.pid);
        return "unix peer";
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
    char host[NI_MAXHOST];
    char serv[NI_MAXSERV];
    if (::getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof host, serv, sizeof serv,
                      NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return "?";
    return output::net::host_port(host, static_cast<std::uint16_t>(std::atoi(serv)));
}

std::string quoted_list(const std::vector<std::string>& items) {
    if (items.empty()) return "no content type";
    std::string out;
    for (const auto& s : items) {
        if (!out.empty()) out += ", ";
        out += "\"";
        for (const char c : s) out += (c >= 0x20 && c < 0x7f) ? c : '?';
        out += "\"";
    }
    return out;
}

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

}  // namespace

struct Server::Counters {
    std::atomic<std::uint64_t> values[kCounterCount] = {};
    void add(Counter c, std::uint64_t n = 1) { values[c].fetch_add(n, std::memory_order_relaxed); }
    std::uint64_t get(Counter c) const { return values[c].load(std::memory_order_relaxed); }
};

struct Server::Conn {
    Server* server = nullptr;
    std::uint64_t id = 0;
    output::UniqueFd fd;
    const ListeningSocket* listener = nullptr;  // valid while the acceptor runs
    std::string listener_name;
    bool tls = false;
    bool unix_socket = false;
    pthread_t thread{};
    std::atomic<bool> done{false};
};

Server::Server(ServerOptions options, LogFn log)
    : options_(std::move(options)),
      log_(std::move(log)),
      queue_(options_.queue_frames, std::max(options_.queue_bytes, 2 * options_.max_frame_size + 8)),
      counters_(std::make_unique<Counters>()) {
    if (options_.endpoints.empty()) throw util::FatalError("listen: nothing to listen on (give -u PATH or -l HOST:PORT)",
                                                           util::kExitUsage);
    if (options_.max_connections == 0) options_.max_connections = 1;
    const bool any_tls = std::any_of(options_.endpoints.begin(), options_.endpoints.end(),
                                     [](const Endpoint& e) { return e.kind == Endpoint::Tls; });
    if (any_tls) tls_ = std::make_unique<TlsServerContext>(options_.tls_cert, options_.tls_key);
    cancel_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!cancel_) throw util::FatalError(std::string("listen: eventfd: ") + std::strerror(errno));
    for (const auto& endpoint : options_.endpoints) {
        for (auto& socket : bind_endpoint(endpoint, options_.socket_mode)) {
            bound_.push_back(socket.where());
            listeners_.push_back(std::move(socket));
        }
    }
}

Server::~Server() {
    begin_shutdown();
    queue_.close();  // producers blocked on a full queue give up
    if (acceptor_.joinable()) acceptor_.join();
    reap(true);
}

void Server::start() {
    if (started_.exchange(true)) return;
    acceptor_ = std::thread([this] { acceptor_loop(); });
}

void Server::request_stop() { stop_requested_.store(true); }

void Server::begin_shutdown() {
    if (stopping_.exchange(true)) return;
    drain_until_ns_.store(now_ns() + std::chrono::nanoseconds(options_.drain_timeout).count());
    const std::uint64_t one = 1;
    if (cancel_) (void)!::write(cancel_.get(), &one, sizeof one);
}

void Server::log(LogLevel level, const std::string& line) {
    if (!log_) return;
    // Errors: at most 20 lines a second (a port scanner or a reconnect storm
    // must not flood stderr); the suppressed count comes with the next one.
    // Info lines (shown with --verbose only) are not limited.
    std::string text = line;
    if (level == LogLevel::Error) {
        std::lock_guard lock(log_mutex_);
        const auto now = Clock::now();
        if (now - log_window_ >= std::chrono::seconds(1)) {
            log_window_ = now;
            log_lines_ = 0;
        }
        if (++log_lines_ > 20) {
            ++log_suppressed_;
            return;
        }
        if (log_suppressed_ != 0) {
            text += " (" + std::to_string(log_suppressed_) + " earlier lines suppressed)";
            log_suppressed_ = 0;
        }
    }
    log_(level, text);
}

void Server::record(ConnectionRecord r) {
    std::lock_guard lock(records_mutex_);
    if (records_.size() < kMaxRecords) {
        records_.push_back(std::move(r));
    } else {
        ++records_dropped_;
    }
}

void* Server::thread_main(void* arg) {
    auto* conn = static_cast<Conn*>(arg);
    Server* server = conn->server;
    server->serve(*conn);
    server->counters_->values[kActive].fetch_sub(1, std::memory_order_relaxed);
    conn->done.store(true, std::memory_order_release);
    return nullptr;
}

void Server::reap(bool all) {
    for (auto it = conns_.begin(); it != conns_.end();) {
        Conn& c = **it;
        if (all || c.done.load(std::memory_order_acquire)) {
            ::pthread_join(c.thread, nullptr);
            it = conns_.erase(it);
        } else {
            ++it;
        }
    }
}

void Server::acceptor_loop() {
    std::vector<pollfd> fds;
    for (const auto& l : listeners_) fds.push_back({l.fd(), POLLIN, 0});
    fds.push_back({cancel_.get(), POLLIN, 0});
    while (!stopping_.load()) {
        for (auto& p : fds) p.revents = 0;
        const int n = ::poll(fds.data(), fds.size(), 1000);
        if (n < 0 && errno != EINTR) {
            log(LogLevel::Error, std::string("listen: poll: ") + std::strerror(errno));
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        reap(false);
        if (stopping_.load()) break;
        for (std::size_t i = 0; i + 1 < fds.size(); ++i)
            if (fds[i].revents != 0) accept_from(i);
    }
    // Stop accepting: close the listeners (Unix socket files are removed),
    // then wait for every connection thread (they see the eventfd).
    listeners_.clear();
    reap(true);
    acceptor_done_.store(true);
}

void Server::accept_from(std::size_t index) {
    const ListeningSocket& l = listeners_[index];
    for (int burst = 0; burst < 64; ++burst) {
        output::UniqueFd fd(::accept4(l.fd(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!fd) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
            log(LogLevel::Error, "listen: accept on " + to_string(l.where()) + ": " + std::strerror(errno));
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                std::this_thread::sleep_for(std::chrono::milliseconds(100));  // no busy loop
            return;
        }
        const std::uint64_t id = next_id_++;
        if (counters_->get(kActive) >= options_.max_connections) {
            counters_->add(kRefusedMax);
            log(LogLevel::Error, "listen: connection " + std::to_string(id) + " on " + to_string(l.where()) +
                                     " refused: already " + std::to_string(options_.max_connections) +
                                     " connections (--max-connections)");
            continue;  // fd closed
        }
        auto conn = std::make_unique<Conn>();
        conn->server = this;
        conn->id = id;
        conn->unix_socket = l.where().kind == Endpoint::Unix;
        conn->tls = l.tls();
        conn->listener_name = to_string(l.where());
        conn->fd = std::move(fd);

        pthread_attr_t attr;
        ::pthread_attr_init(&attr);
        ::pthread_attr_setstacksize(&attr, std::max<std::size_t>(options_.thread_stack, PTHREAD_STACK_MIN));
        const auto active = counters_->values[kActive].fetch_add(1) + 1;
        const int rc = ::pthread_create(&conn->thread, &attr, &Server::thread_main, conn.get());
        ::pthread_attr_destroy(&attr);
        if (rc != 0) {
            counters_->values[kActive].fetch_sub(1);
            counters_->add(kRefusedResources);
            log(LogLevel::Error, "listen: connection " + std::to_string(id) + " refused: cannot start a thread: " +
                                     std::strerror(rc));
            continue;
        }
        counters_->add(kAccepted);
        auto peak = counters_->get(kPeakActive);
        while (active > peak && !counters_->values[kPeakActive].compare_exchange_weak(peak, active)) {
        }
        conns_.push_back(std::move(conn));
    }
}

namespace {

// Reads one control frame (escape, length, payload) during the handshake.
// Returns Ok with `control` and the raw bytes in `raw`, or sets `why`.
enum class Handshake { Ok, Garbage, Timeout, Eof, Cancelled, IoError };

Handshake read_control(Stream& stream, Clock::time_point deadline, std::vector<std::uint8_t>& raw,
                       fs::ControlFrame& control, std::string& why) {
    auto io = [&](Io r) {
        switch (r) {
        case Io::Timeout: why = "timed out"; return Handshake::Timeout;
        case Io::Eof: why = "connection closed"; return Handshake::Eof;
        case Io::Cancelled: why = "shutdown"; return Handshake::Cancelled;
        default: why = stream.error(); return Handshake::IoError;
        }
    };
    raw.assign(8, 0);
    if (const Io r = read_exact(stream, raw, deadline); r != Io::Ok) return io(r);
    const std::uint32_t escape = fs::get_be32(raw.data());
    const std::uint32_t length = fs::get_be32(raw.data() + 4);
    if (escape != 0) {
        why = "not a Frame Streams control frame (first bytes " + std::to_string(escape) + ")";
        return Handshake::Garbage;
    }
    if (length < 4 || length > fs::kControlFrameMax) {
        why = "bad control frame length " + std::to_string(length);
        return Handshake::Garbage;
    }
    raw.resize(8 + length);
    if (const Io r = read_exact(stream, {raw.data() + 8, length}, deadline); r != Io::Ok) return io(r);
    auto decoded = fs::decode_control({raw.data() + 8, length}, why);
    if (!decoded) {
        why = "bad control frame: " + why;
        return Handshake::Garbage;
    }
    control = std::move(*decoded);
    return Handshake::Ok;
}

bool offers_dnstap(const fs::ControlFrame& control) {
    return std::find(control.content_types.begin(), control.content_types.end(), fs::kDnstapContentType) !=
           control.content_types.end();
}

}  // namespace

void Server::serve(Conn& conn) {
    ConnectionRecord rec;
    rec.id = conn.id;
    rec.listener = conn.listener_name;
    rec.peer = peer_name(conn.fd.get(), conn.unix_socket);
    const std::string who = "connection " + std::to_string(conn.id) + " from " + rec.peer + " on " + rec.listener;
    const int cancel = cancel_.get();
    std::unique_ptr<Stream> stream =
        conn.tls ? tls_->make_stream(std::move(conn.fd), cancel) : make_socket_stream(std::move(conn.fd), cancel);

    auto finish = [&](Counter c, std::string end, LogLevel level) {
        counters_->add(c);
        rec.end = std::move(end);
        log(level, who + ": " + rec.end + " (" + std::to_string(rec.frames) + " frames)");
        record(std::move(rec));
    };
    auto handshake_failed = [&](Handshake h, const std::string& why) {
        if (h == Handshake::Cancelled) return finish(kClosedAtShutdown, "shutdown during handshake", LogLevel::Info);
        if (h == Handshake::Timeout)
            return finish(kHandshakeTimeout,
                          "handshake timed out after " + std::to_string(options_.handshake_timeout.count()) +
                              " ms (--handshake-timeout)",
                          LogLevel::Error);
        finish(kHandshakeFailed, "handshake failed: " + why, LogLevel::Error);
    };

    // --- handshake -----------------------------------------------------
    const auto deadline = Clock::now() + options_.handshake_timeout;
    if (const Io r = stream->handshake(deadline); r != Io::Ok) {
        return handshake_failed(r == Io::Timeout ? Handshake::Timeout
                                : r == Io::Cancelled ? Handshake::Cancelled
                                                     : Handshake::IoError,
                                r == Io::Eof ? "connection closed during the TLS handshake" : stream->error());
    }
    std::vector<std::uint8_t> raw;
    fs::ControlFrame control;
    std::string why;
    if (const auto h = read_control(*stream, deadline, raw, control, why); h != Handshake::Ok)
        return handshake_failed(h, why);

    bool bidirectional = false;
    std::vector<std::uint8_t> prefix;  // replayed to the Reader: the START frame
    if (control.type == fs::ControlType::Ready) {
        if (!offers_dnstap(control)) {
            return finish(kWrongContentType,
                          "refused: READY offers " + quoted_list(control.content_types) + ", not \"" +
                              std::string(fs::kDnstapContentType) + "\" (no ACCEPT sent)",
                          LogLevel::Error);
        }
        std::vector<std::uint8_t> accept;
        const std::string_view types[] = {fs::kDnstapContentType};
        fs::append_control(accept, fs::ControlType::Accept, types);
        if (const Io r = stream->write_all(accept, deadline); r != Io::Ok)
            return handshake_failed(r == Io::Timeout ? Handshake::Timeout : Handshake::IoError,
                                    "sending ACCEPT: " + (r == Io::Timeout ? std::string("timed out") : stream->error()));
        if (const auto h = read_control(*stream, deadline, raw, control, why); h != Handshake::Ok)
            return handshake_failed(h, why + " (after ACCEPT)");
        if (control.type != fs::ControlType::Start)
            return handshake_failed(Handshake::Garbage,
                                    "expected START after ACCEPT, got " + std::string(fs::to_string(control.type)));
        if (!control.content_types.empty() && control.content_types.front() != fs::kDnstapContentType)
            return finish(kWrongContentType, "refused: START content type " + quoted_list(control.content_types),
                          LogLevel::Error);
        bidirectional = true;
        prefix = std::move(raw);
    } else if (control.type == fs::ControlType::Start) {
        if (!options_.accept_unidirectional)
            return finish(kRefusedUnidirectional, "refused: unidirectional writer (START without READY)",
                          LogLevel::Error);
        if (!control.content_types.empty() && control.content_types.front() != fs::kDnstapContentType)
            return finish(kWrongContentType, "refused: START content type " + quoted_list(control.content_types),
                          LogLevel::Error);
        rec.unidirectional = true;
        prefix = std::move(raw);
    } else {
        return handshake_failed(Handshake::Garbage,
                                "expected READY (or START), got " + std::string(fs::to_string(control.type)));
    }
    counters_->add(bidirectional ? kBidirectional : kUnidirectional);
    log(LogLevel::Info, who + ": " + (bidirectional ? "bidirectional" : "unidirectional (START without READY)") +
                            " session started");

    // --- data frames ---------------------------------------------------
    // An idle writer costs no read buffer until it sends something.
    // (Cancelled means shutdown with nothing received: bytes already in the
    // kernel make the socket readable and are still read below.)
    if (stream->wait_readable(no_deadline()) == Io::Cancelled)
        return finish(kClosedAtShutdown, "shutdown", LogLevel::Info);
    enum class End { None, Cancelled, Error } io_end = End::None;
    std::size_t prefix_pos = 0;
    fs::Reader reader(
        [&](void* buffer, std::size_t size) -> std::ptrdiff_t {
            if (prefix_pos < prefix.size()) {
                const std::size_t n = std::min(size, prefix.size() - prefix_pos);
                std::memcpy(buffer, prefix.data() + prefix_pos, n);
                prefix_pos += n;
                return static_cast<std::ptrdiff_t>(n);
            }
            // At shutdown, keep reading only what the kernel already holds,
            // and only for drain_timeout.
            if (stopping_.load(std::memory_order_relaxed) && now_ns() > drain_until_ns_.load()) {
                io_end = End::Cancelled;
                errno = ECANCELED;
                return -1;
            }
            std::size_t got = 0;
            switch (stream->read_some(buffer, size, got, no_deadline())) {
            case Io::Ok: return static_cast<std::ptrdiff_t>(got);
            case Io::Eof: return 0;
            case Io::Cancelled:
                io_end = End::Cancelled;
                errno = ECANCELED;
                return -1;
            default:
                io_end = End::Error;
                errno = EIO;
                return -1;
            }
        },
        {.max_frame_size = options_.max_frame_size});

    std::span<const std::uint8_t> frame;
    fs::ReadStatus status;
    while ((status = reader.next(frame)) == fs::ReadStatus::Frame) {
        ++rec.frames;
        rec.bytes += frame.size();
        counters_->add(kFrames);
        counters_->add(kBytes, frame.size());
        if (!queue_.push(Frame(frame.begin(), frame.end()))) {
            --rec.frames;  // not delivered
            return finish(kClosedAtShutdown, "shutdown", LogLevel::Info);
        }
    }
    if (status == fs::ReadStatus::End) {
        if (!reader.saw_stop()) return finish(kClosedWithoutStop, "closed without STOP", LogLevel::Info);
        if (bidirectional) {
            std::vector<std::uint8_t> fin;
            fs::append_control(fin, fs::ControlType::Finish);
            if (stream->write_all(fin, Clock::now() + options_.handshake_timeout) != Io::Ok)
                return finish(kFinished, "STOP (FINISH not delivered: " + stream->error() + ")", LogLevel::Info);
        }
        return finish(kFinished, "STOP", LogLevel::Info);
    }
    if (io_end == End::Cancelled) return finish(kClosedAtShutdown, "shutdown", LogLevel::Info);
    if (io_end == End::Error) return finish(kReset, stream->error(), LogLevel::Info);
    const std::string& error = reader.error();
    if (error.rfind("frame of ", 0) == 0) return finish(kTooLarge, error + ": connection closed", LogLevel::Error);
    if (error.rfind("truncated frame", 0) == 0) return finish(kTruncated, error, LogLevel::Info);
    finish(kProtocolErrors, error + ": connection closed", LogLevel::Error);
}

void Server::run(const Sink& sink, const std::function<bool()>& tick, const std::function<void()>& idle) {
    start();
    std::deque<Frame> batch;
    bool delivered = false;
    for (;;) {
        batch.clear();
        const std::size_t n = queue_.pop_all(batch, std::chrono::milliseconds(100));
        for (const auto& f : batch) sink(f);
        if (n != 0) {
            delivered = true;
        } else if (delivered) {
            delivered = false;
            if (idle) idle();
        }
        if (!stopping_.load() && ((tick && tick()) || stop_requested_.load())) begin_shutdown();
        if (stopping_.load() && acceptor_done_.load() && queue_.size() == 0) break;
    }
    if (acceptor_.joinable()) acceptor_.join();
    if (delivered && idle) idle();
}

ServerStats Server::stats() const {
    ServerStats s;
    const auto& c = *counters_;
    s.accepted = c.get(kAccepted);
    s.active = c.get(kActive);
    s.peak_active = c.get(kPeakActive);
    s.bidirectional = c.get(kBidirectional);
    s.unidirectional = c.get(kUnidirectional);
    s.finished = c.get(kFinished);
    s.closed_without_stop = c.get(kClosedWithoutStop);
    s.reset = c.get(kReset);
    s.truncated = c.get(kTruncated);
    s.too_large = c.get(kTooLarge);
    s.protocol_errors = c.get(kProtocolErrors);
    s.closed_at_shutdown = c.get(kClosedAtShutdown);
    s.refused_max_connections = c.get(kRefusedMax);
    s.refused_resources = c.get(kRefusedResources);
    s.wrong_content_type = c.get(kWrongContentType);
    s.handshake_failed = c.get(kHandshakeFailed);
    s.handshake_timeout = c.get(kHandshakeTimeout);
    s.refused_unidirectional = c.get(kRefusedUnidirectional);
    s.frames = c.get(kFrames);
    s.bytes = c.get(kBytes);
    s.queue = queue_.stats();
    return s;
}

std::vector<ConnectionRecord> Server::records() const {
    std::lock_guard lock(records_mutex_);
    return records_;
}

void Server::report(std::FILE* out, std::size_t max_lines) const {
    const auto s = stats();
    auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
    std::fprintf(out,
                 "sidetap: listen connections=%llu peak=%llu bidirectional=%llu unidirectional=%llu finished=%llu "
                 "closed_without_stop=%llu reset=%llu truncated=%llu closed_at_shutdown=%llu too_large=%llu "
                 "protocol_errors=%llu wrong_content_type=%llu handshake_failed=%llu handshake_timeout=%llu "
                 "refused_max_connections=%llu refused_resources=%llu refused_unidirectional=%llu "
                 "frames_received=%llu bytes_received=%llu queue_peak=%llu queue_waits=%llu\n",
                 u(s.accepted), u(s.peak_active), u(s.bidirectional), u(s.unidirectional), u(s.finished),
                 u(s.closed_without_stop), u(s.reset), u(s.truncated), u(s.closed_at_shutdown), u(s.too_large),
                 u(s.protocol_errors), u(s.wrong_content_type), u(s.handshake_failed), u(s.handshake_timeout),
                 u(s.refused_max_connections), u(s.refused_resources), u(s.refused_unidirectional), u(s.frames),
                 u(s.bytes), u(s.queue.peak_frames), u(s.queue.blocked_pushes));
    std::lock_guard lock(records_mutex_);
    std::size_t shown = 0;
    for (const auto& r : records_) {
        if (shown == max_lines) break;
        // Connections that never got past the handshake are in the counters.
        if (r.frames == 0 && r.end.rfind("STOP", 0) != 0 && r.end != "closed without STOP") continue;
        std::fprintf(out, "sidetap: connection %llu %s %s%s frames=%llu bytes=%llu end=%s\n", u(r.id),
                     r.listener.c_str(), r.peer.c_str(), r.unidirectional ? " unidirectional" : "", u(r.frames),
                     u(r.bytes), r.end.c_str());
        ++shown;
    }
    std::size_t sessions = 0;
    for (const auto& r : records_)
        if (!(r.frames == 0 && r.end.rfind("STOP", 0) != 0 && r.end != "closed without STOP")) ++sessions;
    if (sessions > shown || records_dropped_ != 0)
        std::fprintf(out, "sidetap: ... %llu more connections not listed\n",
                     u(sessions - shown + records_dropped_));
}

}  // namespace sidetap::listen
