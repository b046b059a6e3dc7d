// sidetap listen: a Frame Streams collector. Accepts any number of
// concurrent dnstap writers on Unix and TCP/TLS sockets and serializes their
// data frames onto one consumer thread (the relay is not thread-safe).
//
// Threads:
//  - one acceptor thread polls every listening socket plus a shutdown
//    eventfd; it makes room past max_connections (see Slots), and reaps
//    finished connection threads;
//  - one thread per connection (small stack) runs listen::run_session()
//    (handshake, frames; see session.h for the protocol and what each
//    ending means) and copies the frames into the FrameQueue (one lane,
//    taken in turns under a mutex);
//  - the caller's thread runs run(): it pops frames and hands them to the
//    sink (Relay::on_frame) one at a time.
//
// Who may write: anyone who reaches a Unix socket (its file mode,
// --socket-mode) or a TCP port. TLS listeners encrypt, and authenticate
// writers only with tls_client_ca (mutual TLS): without it any client that
// reaches the port can write. A refused or missing client certificate is
// counted (refused_client_certificate).
//
// Memory is bounded by configuration, whatever the writers do:
//  - read buffers: every connection's buffer comes out of one budget,
//    max_receive_memory (see ReceiveMemory). Nothing is buffered before a
//    writer sends data after START; a buffer starts at read_chunk, taken
//    from a reserve of one chunk per connection slot (so a writer whose
//    frames fit in a chunk never waits for memory), and grows only with
//    bytes that really arrived (a claimed 1 MiB length costs nothing until
//    the bytes come), from the shared rest of the budget. When that is
//    exhausted, the connection that needs more waits (memory_waits) in
//    line, the one that completed a frame most recently first; the first in
//    line evicts the connection that has gone longest without completing a
//    frame (at least evict_after, time spent waiting for memory not
//    counted) and holds shared memory (evicted_for_memory), and gets what
//    it frees (the other waiters do not). When every holder is itself
//    waiting for memory, the one last in line (no frame for at least
//    evict_after) is evicted instead, rather than all of them waiting each
//    other out. If nothing frees up within memory_wait the connection is
//    closed (out_of_memory). Frames it completed before are kept.
//  - the FrameQueue: queue_frames and queue_bytes;
//  - per connection outside the budget: a thread (touched stack pages, a
//    few KiB), handshake buffers (< 1 KiB), the kernel's socket buffers,
//    and with TLS the OpenSSL session (record buffers are released while
//    idle).
//
// Slots: at most max_connections connections at a time. When all are taken,
// a new connection evicts the one that has gone longest without completing
// a frame (or its handshake), if that is at least evict_after (evicted);
// if every connection is busy, the new one is closed at once
// (refused_max_connections). So idle or stalled writers cannot lock a real
// writer out: a writer with data to send always gets a slot while some
// connection is idle. A connection is never evicted for a slot while it is
// waiting for memory or for room in the FrameQueue (that wait is ours, not
// its), nor for memory while it waits for queue room.
//
// Idle writers: idle_timeout (when not zero) closes a session that
// completes no frame for that long after START (idle_timeout); writers such
// as libfstrm, Unbound and sidetap reconnect when they next have data.
//
// Slow consumer: backpressure, not drops. When the FrameQueue is full,
// connection threads wait, stop reading their sockets, and the kernel's
// flow control makes the writers' sends wait; dnstap writers (libfstrm,
// Unbound, CoreDNS, sidetap's own socket output) then drop in their own
// queues and never block the DNS server. blocked_pushes counts the waits.
//
// Shutdown (request_stop(), or tick() returning true): the acceptor stops
// and removes Unix socket files; connection threads read what the kernel
// already holds (at most drain_timeout), push it, and close (no FINISH for
// writers mid-stream); run() delivers everything queued, then returns.
#pragma once

#include "listen/endpoint.h"
#include "listen/receive_memory.h"
#include "listen/session.h"
#include "output/frame_queue.h"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace sidetap::listen {

class TlsServerContext;
class Stream;

struct ServerOptions {
    std::vector<Endpoint> endpoints;
    unsigned socket_mode = 0660;  // Unix socket files
    std::string tls_cert;         // needed when an endpoint is Tls
    std::string tls_key;
    std::string tls_client_ca;    // mutual TLS: clients need a certificate from these CAs
    std::size_t max_connections = 1000;
    std::chrono::milliseconds handshake_timeout{5000};
    std::chrono::milliseconds idle_timeout{std::chrono::minutes(5)};  // 0 = never
    std::size_t max_frame_size = std::size_t{1} << 20;
    bool accept_unidirectional = true;
    std::size_t queue_frames = 10000;
    std::size_t queue_bytes = std::size_t{64} << 20;  // raised to 2 x max_frame_size if smaller
    // All connections' read buffers together: a reserve of read_chunk per
    // connection slot (every connection's first buffer) plus a shared part
    // that must hold one largest frame (the constructor refuses less, exit 2).
    std::size_t max_receive_memory = std::size_t{128} << 20;
    std::size_t read_chunk = std::size_t{16} << 10;
    std::chrono::milliseconds memory_wait{5000};
    std::chrono::milliseconds evict_after{1000};
    std::chrono::milliseconds drain_timeout{2000};
    std::size_t thread_stack = std::size_t{512} << 10;
};

enum class LogLevel { Error, Info };
// Called from any thread, one complete line without "sidetap: " or '\n'.
using LogFn = std::function<void(LogLevel, const std::string&)>;

struct ServerStats {
    std::uint64_t accepted = 0;           // connections accepted and served
    std::uint64_t active = 0;
    std::uint64_t peak_active = 0;
    std::uint64_t bidirectional = 0;      // completed READY/ACCEPT/START
    std::uint64_t unidirectional = 0;     // began with START
    std::uint64_t finished = 0;           // STOP received, FINISH sent (or unidirectional STOP)
    std::uint64_t closed_without_stop = 0;
    std::uint64_t reset = 0;              // read errors (reset by peer, TLS errors) after START
    std::uint64_t truncated = 0;          // EOF inside a frame
    std::uint64_t too_large = 0;          // frame over max_frame_size: connection closed
    std::uint64_t protocol_errors = 0;    // bad control frame after START, START content type, ...
    std::uint64_t closed_at_shutdown = 0;
    std::uint64_t idle_timeout = 0;       // no complete frame for idle_timeout after START
    std::uint64_t out_of_memory = 0;      // could not get read buffer within memory_wait
    std::uint64_t evicted = 0;            // closed to make room for a new connection
    std::uint64_t evicted_for_memory = 0; // closed to free read buffer for a busy one
    std::uint64_t refused_max_connections = 0;
    std::uint64_t refused_resources = 0;  // no thread could be started
    std::uint64_t wrong_content_type = 0; // READY without protobuf:dnstap.Dnstap
    std::uint64_t handshake_failed = 0;   // garbage, wrong first frame, EOF, TLS failure
    std::uint64_t handshake_timeout = 0;
    std::uint64_t refused_unidirectional = 0;
    std::uint64_t refused_client_certificate = 0;  // TLS client without a valid certificate
    std::uint64_t frames = 0;             // data frames received and queued
    std::uint64_t bytes = 0;
    output::FrameQueueStats queue;
    ReceiveMemoryStats memory;
};

struct ConnectionRecord {
    std::uint64_t id = 0;
    std::string listener;  // "unix:/run/x.sock", "tcp://127.0.0.1:6000"
    std::string peer;      // "127.0.0.1:41234", "pid 1234", "127.0.0.1:41234 (CN=writer1)"
    bool unidirectional = false;
    std::uint64_t frames = 0;
    std::uint64_t bytes = 0;
    std::string end;       // "STOP", "closed without STOP", "shutdown", error text
    SessionEnd how = SessionEnd::HandshakeFailed;
    bool evicted = false;  // `how` is what the session saw; the server closed it
};

class Server {
public:
    using Sink = std::function<void(std::span<const std::uint8_t>)>;

    // Binds every endpoint (throws util::FatalError on failure; sockets bound
    // so far are closed and Unix socket files removed). Inconsistent options
    // (receive memory smaller than a frame, TLS without certificate) throw
    // with exit code 2.
    explicit Server(ServerOptions options, LogFn log = {});
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // What was bound, one entry per socket (TCP port 0 resolved).
    [[nodiscard]] const std::vector<Endpoint>& bound() const { return bound_; }

    // Starts the acceptor thread (run() does it if not done yet).
    void start();
    // The consumer loop; returns after shutdown, with every received frame
    // delivered. `tick` runs on this thread at least every 100 ms and after
    // each batch: returning true starts the shutdown. `idle` runs when the
    // queue has just run empty after frames (flush text output).
    void run(const Sink& sink, const std::function<bool()>& tick = {}, const std::function<void()>& idle = {});
    // Thread-safe; makes run() shut down.
    void request_stop();

    [[nodiscard]] ServerStats stats() const;
    // Closed connections, in closing order (the first kMaxRecords).
    [[nodiscard]] std::vector<ConnectionRecord> records() const;
    // One summary line plus one line per closed connection (at most `max_lines`).
    void report(std::FILE* out, std::size_t max_lines = 50) const;

    static constexpr std::size_t kMaxRecords = 1000;

private:
    struct Conn;
    struct Counters;

    void acceptor_loop();
    void accept_from(std::size_t index);
    void reap(bool all);
    void serve(Conn& conn);
    // Closes (shutdown()) the connection that has gone longest without
    // progress, at least evict_after; for memory, only one holding shared
    // memory other than `self`, whose freed memory is earmarked for `self`,
    // or failing that the memory waiter last in line behind `self`. False
    // when there is none.
    bool evict(bool for_memory, const Conn* self);
    void begin_shutdown();
    void log(LogLevel level, const std::string& line);
    void record(ConnectionRecord record);
    static void* thread_main(void* arg);

    ServerOptions options_;
    LogFn log_;
    std::vector<ListeningSocket> listeners_;  // owned by the acceptor once started
    std::vector<Endpoint> bound_;
    std::unique_ptr<TlsServerContext> tls_;
    output::UniqueFd cancel_;                 // eventfd, readable once shutting down
    output::FrameQueue queue_;  // one lane, shared by the connection threads
    std::mutex push_mutex_;     // ... which take turns with it
    ReceiveMemory memory_;
    SessionOptions session_;
    std::unique_ptr<Counters> counters_;
    std::atomic<std::uint64_t> evictions_pending_{0};  // evicted, thread not finished

    std::thread acceptor_;
    std::atomic<bool> started_{false};
    std::atomic<bool> stopping_{false};
    std::atomic<bool> stop_requested_{false};
    std::atomic<bool> acceptor_done_{false};
    std::atomic<std::int64_t> drain_until_ns_{0};
    std::mutex conns_mutex_;                  // conns_ changes (acceptor) and evict() (any thread)
    std::list<std::unique_ptr<Conn>> conns_;
    std::uint64_t next_id_ = 1;

    mutable std::mutex records_mutex_;
    std::vector<ConnectionRecord> records_;
    std::uint64_t records_dropped_ = 0;

    std::mutex log_mutex_;
    std::chrono::steady_clock::time_point log_window_{};
    unsigned log_lines_ = 0;
    std::uint64_t log_suppressed_ = 0;
};

}  // namespace sidetap::listen
