#include "listen/server.h"

#include "framestream/codec.h"
#include "framestream/reader.h"
#include "listen/stream.h"
#include "util/error.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
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
    kIdleTimeout,
    kOutOfMemory,
    kEvicted,
    kEvictedMemory,
    kRefusedMax,
    kRefusedResources,
    kWrongContentType,
    kHandshakeFailed,
    kHandshakeTimeout,
    kRefusedUnidirectional,
    kClientCertificate,
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

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

Counter counter_for(SessionEnd end) {
    switch (end) {
    case SessionEnd::Finished: return kFinished;
    case SessionEnd::ClosedWithoutStop: return kClosedWithoutStop;
    case SessionEnd::Reset: return kReset;
    case SessionEnd::Truncated: return kTruncated;
    case SessionEnd::TooLarge: return kTooLarge;
    case SessionEnd::ProtocolError: return kProtocolErrors;
    case SessionEnd::Shutdown: return kClosedAtShutdown;
    case SessionEnd::IdleTimeout: return kIdleTimeout;
    case SessionEnd::OutOfMemory: return kOutOfMemory;
    case SessionEnd::WrongContentType: return kWrongContentType;
    case SessionEnd::HandshakeFailed: return kHandshakeFailed;
    case SessionEnd::HandshakeTimeout: return kHandshakeTimeout;
    case SessionEnd::RefusedUnidirectional: return kRefusedUnidirectional;
    case SessionEnd::ClientCertificate: return kClientCertificate;
    }
    return kProtocolErrors;
}

// Normal endings are Info (shown with --verbose); refusals and errors that
// an operator should see are Error (rate-limited).
LogLevel level_for(SessionEnd end) {
    switch (end) {
    case SessionEnd::Finished:
    case SessionEnd::ClosedWithoutStop:
    case SessionEnd::Reset:
    case SessionEnd::Truncated:
    case SessionEnd::Shutdown:
    case SessionEnd::IdleTimeout: return LogLevel::Info;
    default: return LogLevel::Error;
    }
}

std::string seconds_text(std::chrono::milliseconds ms) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(ms.count()) / 1000.0);
    return text;
}

}  // namespace

struct Server::Counters {
    std::atomic<std::uint64_t> values[kCounterCount] = {};
    void add(Counter c, std::uint64_t n = 1) { values[c].fetch_add(n, std::memory_order_relaxed); }
    std::uint64_t get(Counter c) const { return values[c].load(std::memory_order_relaxed); }
};

enum class Eviction : int { None, Slot, Memory };

// One accepted connection. It owns the socket, which its thread closes
// under conns_mutex_ when the session is over, so that evict() may
// shutdown() it from another thread; it is the memory budget of the
// session's reader.
struct Server::Conn final : framestream::BufferBudget {
    explicit Conn(Server& s) : server(&s), memory(s.memory_) {}

    Server* server;
    std::uint64_t id = 0;
    output::UniqueFd fd;
    std::string listener_name;
    bool tls = false;
    bool unix_socket = false;
    pthread_t thread{};
    std::atomic<bool> done{false};
    std::atomic<std::int64_t> last_progress_ns{0};
    ReceiveMemory::Account memory;  // the session reader's buffer
    // Waiting for memory, or for queue room (never evictable then: that
    // wait is ours, not the writer's).
    std::atomic<bool> waiting_memory{false};
    std::atomic<bool> waiting_queue{false};
    // When it last stopped waiting for memory: the wait is not idleness
    // (a writer kept waiting must not be evicted as idle the moment it is
    // served).
    std::atomic<std::int64_t> memory_wait_end_ns{0};
    std::atomic<Eviction> evicted{Eviction::None};

    bool acquire(std::size_t bytes) override {
        if (memory.try_acquire(bytes)) return true;
        ReceiveMemory& pool = server->memory_;
        // Evicted (its socket is shut, its memory is owed to the waiter it
        // was evicted for): no waiting, whatever it still had to read.
        if (evicted.load() != Eviction::None) return false;
        pool.count_wait();
        waiting_memory.store(true);
        const auto deadline = Clock::now() + server->options_.memory_wait;
        // In line by the last completed frame, most recent first (the
        // reverse of the eviction order): a busy writer is served before
        // the stalled ones.
        const std::int64_t priority = last_progress_ns.load(std::memory_order_relaxed);
        const bool granted = memory.acquire(
            bytes, deadline,
            [this](bool first_in_line) {
                if (server->stopping_.load(std::memory_order_relaxed) || evicted.load() != Eviction::None)
                    return false;
                // Only the first in line evicts (what the victim frees is
                // handed to it), one eviction at a time: the victim's
                // buffer is on its way back.
                if (first_in_line && server->evictions_pending_.load() == 0) (void)server->evict(true, this);
                return true;
            },
            priority);
        memory_wait_end_ns.store(now_ns(), std::memory_order_relaxed);
        waiting_memory.store(false);
        if (!granted) pool.count_refusal();
        return granted;
    }

    void release(std::size_t bytes) noexcept override { memory.release(bytes); }

    bool deliver(std::span<const std::uint8_t> frame) {
        waiting_queue.store(true);
        // Connection threads share the queue's one lane: their pushes are
        // serialised here (a copy into the ring; a wait when it is full).
        bool queued = false;
        {
            std::lock_guard lock(server->push_mutex_);
            queued = server->queue_.push(0, frame, output::OverflowPolicy::Block) == output::FrameQueue::Push::Queued;
        }
        waiting_queue.store(false);
        if (!queued) return false;
        server->counters_->add(kFrames);
        server->counters_->add(kBytes, frame.size());
        return true;
    }

    bool stop_reading() const {
        return server->stopping_.load(std::memory_order_relaxed) && now_ns() > server->drain_until_ns_.load();
    }

    void progress() { last_progress_ns.store(now_ns(), std::memory_order_relaxed); }
};

namespace {
ServerOptions normalized(ServerOptions o) {
    o.max_connections = std::max<std::size_t>(o.max_connections, 1);
    o.read_chunk = std::clamp<std::size_t>(o.read_chunk, 64, o.max_frame_size + 4);
    return o;
}

output::FrameQueue::Options queue_options(const ServerOptions& o) {
    output::FrameQueue::Options q;
    q.lanes = 1;
    q.max_frames = o.queue_frames;
    q.max_bytes = std::max(o.queue_bytes, 2 * (o.max_frame_size + output::FrameQueue::kFrameHeader));
    q.max_frame = o.max_frame_size;
    // Every frame wakes the relay thread if it sleeps: a listener forwards
    // at once (the connection threads take a lock per frame anyway).
    q.wake_bytes = 1;
    q.wake_frames = 1;
    return q;
}
}  // namespace

Server::Server(ServerOptions options, LogFn log)
    : options_(normalized(std::move(options))),
      log_(std::move(log)),
      queue_(queue_options(options_)),
      memory_(options_.max_receive_memory, options_.max_connections * options_.read_chunk),
      counters_(std::make_unique<Counters>()) {
    if (options_.endpoints.empty()) throw util::FatalError("listen: nothing to listen on (give -u PATH or -l HOST:PORT)",
                                                           util::kExitUsage);
    const std::size_t needed = options_.max_connections * options_.read_chunk + options_.max_frame_size + 4;
    if (options_.max_receive_memory < needed)
        throw util::FatalError("listen: --max-receive-memory " + fs::describe_size(options_.max_receive_memory) +
                                   " cannot hold the first " + fs::describe_size(options_.read_chunk) +
                                   " of each of --max-connections " + std::to_string(options_.max_connections) +
                                   " connections plus one frame of --max-frame-size " +
                                   fs::describe_size(options_.max_frame_size) + " (give at least " +
                                   std::to_string((needed + (1u << 20) - 1) >> 20) + "M)",
                               util::kExitUsage);
    session_.handshake_timeout = options_.handshake_timeout;
    session_.idle_timeout = options_.idle_timeout;
    session_.max_frame_size = options_.max_frame_size;
    session_.read_chunk = options_.read_chunk;
    session_.accept_unidirectional = options_.accept_unidirectional;
    const bool any_tls = std::any_of(options_.endpoints.begin(), options_.endpoints.end(),
                                     [](const Endpoint& e) { return e.kind == Endpoint::Tls; });
    if (any_tls) {
        tls_ = std::make_unique<TlsServerContext>(options_.tls_cert, options_.tls_key, options_.tls_client_ca);
    } else if (!options_.tls_client_ca.empty()) {
        throw util::FatalError("listen: --tls-client-ca needs a TLS listener (-l tls://HOST:PORT, or -l HOST:PORT "
                               "with --tls-cert and --tls-key)",
                               util::kExitUsage);
    }
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
    if (conn->evicted.load() != Eviction::None) {
        server->evictions_pending_.fetch_sub(1);
        server->memory_.wake();  // the first in line may evict the next one now
    }
    server->counters_->values[kActive].fetch_sub(1, std::memory_order_relaxed);
    conn->done.store(true, std::memory_order_release);
    return nullptr;
}

void Server::reap(bool all) {
    // Out of the list under the lock (evict() must not see them any more),
    // joined outside it (a connection thread may be in evict()).
    std::list<std::unique_ptr<Conn>> finished;
    {
        std::lock_guard lock(conns_mutex_);
        for (auto it = conns_.begin(); it != conns_.end();) {
            auto next = std::next(it);
            if (all || (*it)->done.load(std::memory_order_acquire)) finished.splice(finished.end(), conns_, it);
            it = next;
        }
    }
    for (auto& c : finished) ::pthread_join(c->thread, nullptr);
}

bool Server::evict(bool for_memory, const Conn* self) {
    const std::int64_t now = now_ns();
    const std::int64_t min_idle = std::chrono::nanoseconds(options_.evict_after).count();
    std::lock_guard lock(conns_mutex_);
    // First choice: the connection idle longest (no frame completed, not
    // counting time it spent waiting for memory), at least evict_after.
    // For memory, when none is idle and everything is held by connections
    // waiting for memory (each holding part of what it needs, none able to
    // go on), the one last in line (completed no frame for longest, at least
    // evict_after, behind `self`) gives way rather than all of them waiting
    // out memory_wait.
    Conn* victim = nullptr;
    std::int64_t victim_since = 0;
    Conn* waiter = nullptr;
    const std::int64_t self_progress =
        self != nullptr ? self->last_progress_ns.load(std::memory_order_relaxed) : 0;
    for (auto& c : conns_) {
        if (c.get() == self || !c->fd || c->done.load(std::memory_order_acquire) ||
            c->evicted.load() != Eviction::None || c->waiting_queue.load())
            continue;
        // Evicting for memory helps only if the victim holds shared memory.
        if (for_memory && c->memory.shared_held() == 0) continue;
        const std::int64_t progress = c->last_progress_ns.load(std::memory_order_relaxed);
        if (c->waiting_memory.load()) {
            if (for_memory && self != nullptr && now - progress >= min_idle && progress < self_progress &&
                (waiter == nullptr || progress < waiter->last_progress_ns.load(std::memory_order_relaxed)))
                waiter = c.get();
            continue;
        }
        const std::int64_t since = std::max(progress, c->memory_wait_end_ns.load(std::memory_order_relaxed));
        if (now - since < min_idle) continue;
        if (victim == nullptr || since < victim_since) {
            victim = c.get();
            victim_since = since;
        }
    }
    if (victim == nullptr) victim = waiter;
    if (victim == nullptr) return false;
    victim->evicted.store(for_memory ? Eviction::Memory : Eviction::Slot);
    // What the victim gives back is for the connection it is evicted for,
    // not for whichever of the other waiters wakes first.
    if (for_memory && self != nullptr) victim->memory.earmark_for(self->memory);
    evictions_pending_.fetch_add(1);
    // Wakes the victim's thread wherever it waits on the socket (read
    // returns EOF) or for memory (it stops waiting); its frames so far are
    // kept. The thread closes the descriptor under this lock, so this never
    // hits a reused number.
    ::shutdown(victim->fd.get(), SHUT_RDWR);
    if (victim == waiter) memory_.wake();
    return true;
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
        // Slots held by evicted connections that are still closing are free.
        const std::uint64_t in_use = counters_->get(kActive) - std::min(counters_->get(kActive), evictions_pending_.load());
        if (in_use >= options_.max_connections && !evict(false, nullptr)) {
            counters_->add(kRefusedMax);
            log(LogLevel::Error, "listen: connection " + std::to_string(id) + " on " + to_string(l.where()) +
                                     " refused: already " + std::to_string(options_.max_connections) +
                                     " connections (--max-connections), none idle for " +
                                     seconds_text(options_.evict_after));
            continue;  // fd closed
        }
        auto conn = std::make_unique<Conn>(*this);
        conn->id = id;
        conn->unix_socket = l.where().kind == Endpoint::Unix;
        conn->tls = l.tls();
        conn->listener_name = to_string(l.where());
        conn->fd = std::move(fd);
        conn->last_progress_ns.store(now_ns());

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
        std::lock_guard lock(conns_mutex_);
        conns_.push_back(std::move(conn));
    }
}

void Server::serve(Conn& conn) {
    ConnectionRecord rec;
    rec.id = conn.id;
    rec.listener = conn.listener_name;
    rec.peer = peer_name(conn.fd.get(), conn.unix_socket);
    const int cancel = cancel_.get();
    std::unique_ptr<Stream> stream = conn.tls ? tls_->make_stream(conn.fd.get(), cancel)
                                              : make_socket_stream(conn.fd.get(), cancel);

    struct Host final : SessionHost {
        Server& server;
        Conn& conn;
        Stream& stream;
        ConnectionRecord& rec;
        Host(Server& s, Conn& c, Stream& st, ConnectionRecord& r) : server(s), conn(c), stream(st), rec(r) {}
        bool deliver(std::span<const std::uint8_t> frame) override { return conn.deliver(frame); }
        bool stop_reading() override { return conn.stop_reading(); }
        void started(bool bidirectional) override {
            server.counters_->add(bidirectional ? kBidirectional : kUnidirectional);
            if (const std::string identity = stream.peer_identity(); !identity.empty())
                rec.peer += " (" + identity + ")";
            server.log(LogLevel::Info, "connection " + std::to_string(conn.id) + " from " + rec.peer + " on " +
                                           rec.listener + ": " +
                                           (bidirectional ? "bidirectional" : "unidirectional (START without READY)") +
                                           " session started");
            conn.progress();
        }
        void progress() override { conn.progress(); }
    } host(*this, conn, *stream, rec);

    SessionResult result = run_session(*stream, session_, host, &conn);
    stream.reset();  // TLS close_notify while the socket is still ours
    {
        // Closed now (the writer sees it at once), under the lock that
        // evict() holds while it calls shutdown() on the descriptor.
        std::lock_guard lock(conns_mutex_);
        conn.fd.reset();
    }

    const std::string who = "connection " + std::to_string(conn.id) + " from " + rec.peer + " on " + rec.listener;
    rec.unidirectional = result.started && !result.bidirectional;
    rec.frames = result.frames;
    rec.bytes = result.bytes;
    rec.how = result.end;
    Counter counter = counter_for(result.end);
    LogLevel level = level_for(result.end);
    rec.end = std::move(result.detail);
    // An evicted connection saw EOF or a reset; say what really happened.
    if (const Eviction e = conn.evicted.load(); e != Eviction::None && result.end != SessionEnd::Finished) {
        rec.evicted = true;
        counter = e == Eviction::Slot ? kEvicted : kEvictedMemory;
        level = LogLevel::Error;
        rec.end = e == Eviction::Slot
                      ? "evicted for a new connection (all " + std::to_string(options_.max_connections) +
                            " slots taken, --max-connections; this one had completed no frame for at least " +
                            seconds_text(options_.evict_after) + ")"
                      : "evicted to free receive memory for a busy connection (--max-receive-memory; this one had "
                        "completed no frame for at least " +
                            seconds_text(options_.evict_after) + ")";
    }
    counters_->add(counter);
    log(level, who + ": " + rec.end + " (" + std::to_string(rec.frames) + " frames)");
    record(std::move(rec));
}

void Server::run(const Sink& sink, const std::function<bool()>& tick, const std::function<void()>& idle) {
    start();
    output::FrameQueue::Batch batch;
    bool delivered = false;
    for (;;) {
        if (queue_.size() == 0)
            queue_.wait(std::chrono::steady_clock::now() + std::chrono::milliseconds(100), true,
                        [&] { return queue_.closed(); });
        // In slices, so that connection threads waiting for room get it
        // while the relay works.
        const std::size_t n = queue_.collect(batch, std::size_t{1} << 20);
        queue_.for_each_frame(batch, [&](std::span<const std::uint8_t> f) { sink(f); });
        queue_.release(batch);
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
    s.idle_timeout = c.get(kIdleTimeout);
    s.out_of_memory = c.get(kOutOfMemory);
    s.evicted = c.get(kEvicted);
    s.evicted_for_memory = c.get(kEvictedMemory);
    s.refused_max_connections = c.get(kRefusedMax);
    s.refused_resources = c.get(kRefusedResources);
    s.wrong_content_type = c.get(kWrongContentType);
    s.handshake_failed = c.get(kHandshakeFailed);
    s.handshake_timeout = c.get(kHandshakeTimeout);
    s.refused_unidirectional = c.get(kRefusedUnidirectional);
    s.refused_client_certificate = c.get(kClientCertificate);
    s.frames = c.get(kFrames);
    s.bytes = c.get(kBytes);
    s.queue = queue_.stats();
    s.memory = memory_.stats();
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
                 "protocol_errors=%llu idle_timeout=%llu evicted=%llu evicted_for_memory=%llu out_of_memory=%llu "
                 "wrong_content_type=%llu handshake_failed=%llu handshake_timeout=%llu "
                 "refused_max_connections=%llu refused_resources=%llu refused_unidirectional=%llu "
                 "refused_client_certificate=%llu frames_received=%llu bytes_received=%llu queue_peak=%llu "
                 "queue_waits=%llu memory_peak=%llu memory_waits=%llu\n",
                 u(s.accepted), u(s.peak_active), u(s.bidirectional), u(s.unidirectional), u(s.finished),
                 u(s.closed_without_stop), u(s.reset), u(s.truncated), u(s.closed_at_shutdown), u(s.too_large),
                 u(s.protocol_errors), u(s.idle_timeout), u(s.evicted), u(s.evicted_for_memory), u(s.out_of_memory),
                 u(s.wrong_content_type), u(s.handshake_failed), u(s.handshake_timeout),
                 u(s.refused_max_connections), u(s.refused_resources), u(s.refused_unidirectional),
                 u(s.refused_client_certificate), u(s.frames), u(s.bytes), u(s.queue.peak_frames),
                 u(s.queue.blocked_pushes), u(s.memory.peak), u(s.memory.waits));
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
