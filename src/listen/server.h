// sidetap listen: a Frame Streams collector. Accepts any number of
// concurrent dnstap writers on Unix and TCP/TLS sockets and serializes their
// data frames onto one consumer thread (the relay is not thread-safe).
//
// Threads:
//  - one acceptor thread polls every listening socket plus a shutdown
//    eventfd; it refuses connections past max_connections (accept, close,
//    count) and reaps finished connection threads;
//  - one thread per connection (small stack) does the handshake under
//    handshake_timeout, then reads data frames with framestream::Reader
//    and pushes copies into the FrameQueue;
//  - the caller's thread runs run(): it pops frames and hands them to the
//    sink (Relay::on_frame) one at a time.
//
// Protocol (per connection):
//  - Bidirectional: READY (must offer "protobuf:dnstap.Dnstap") -> ACCEPT
//    (that content type only) -> START -> data frames -> STOP -> FINISH,
//    then close. A READY without the dnstap content type gets no ACCEPT:
//    the connection is closed and counted (wrong_content_type).
//  - Unidirectional: a writer whose first frame is START (a dnstap file
//    streamed into the socket, e.g. `socat`/`nc`) is accepted when
//    accept_unidirectional (default) and counted; it gets no FINISH.
//  - Anything else first (data, random bytes, ACCEPT...) or no complete
//    handshake within handshake_timeout: closed, counted.
//  - After START there is no timeout: an idle writer is fine. EOF between
//    frames (no STOP) keeps every frame received (closed_without_stop);
//    a reset or EOF inside a frame is counted (reset / truncated).
//  - A data frame over max_frame_size closes that connection (too_large,
//    logged); frames before it are kept.
//  - Payloads are not decoded here: malformed protobuf is the relay's
//    business (counted there, the session goes on).
//
// Slow consumer: backpressure, not drops. The FrameQueue is bounded (frames
// and bytes); when it is full, connection threads wait, stop reading their
// sockets, and the kernel's flow control makes the writers' sends wait;
// dnstap writers (libfstrm, Unbound, CoreDNS, sidetap's own socket output)
// then drop in their own queues and never block the DNS server.
// blocked_pushes counts the waits. Memory: the queue bounds plus one read
// buffer per connection (64 KiB, more only while a larger frame is read).
//
// Shutdown (request_stop(), or tick() returning true): the acceptor stops
// and removes Unix socket files; connection threads read what the kernel
// already holds (at most drain_timeout), push it, and close (no FINISH for
// writers mid-stream); run() delivers everything queued, then returns.
#pragma once

#include "listen/endpoint.h"
#include "listen/frame_queue.h"

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
    std::size_t max_connections = 1000;
    std::chrono::milliseconds handshake_timeout{5000};
    std::size_t max_frame_size = std::size_t{1} << 20;
    bool accept_unidirectional = true;
    std::size_t queue_frames = 10000;
    std::size_t queue_bytes = std::size_t{64} << 20;  // raised to 2 x max_frame_size if smaller
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
    std::uint64_t refused_max_connections = 0;
    std::uint64_t refused_resources = 0;  // no thread could be started
    std::uint64_t wrong_content_type = 0; // READY without protobuf:dnstap.Dnstap
    std::uint64_t handshake_failed = 0;   // garbage, wrong first frame, EOF, TLS failure
    std::uint64_t handshake_timeout = 0;
    std::uint64_t refused_unidirectional = 0;
    std::uint64_t frames = 0;             // data frames received and queued
    std::uint64_t bytes = 0;
    FrameQueueStats queue;
};

struct ConnectionRecord {
    std::uint64_t id = 0;
    std::string listener;  // "unix:/run/x.sock", "tcp://127.0.0.1:6000"
    std::string peer;      // "127.0.0.1:41234", "pid 1234"
    bool unidirectional = false;
    std::uint64_t frames = 0;
    std::uint64_t bytes = 0;
    std::string end;       // "STOP", "closed without STOP", "shutdown", error text
};

class Server {
public:
    using Sink = std::function<void(std::span<const std::uint8_t>)>;

    // Binds every endpoint (throws util::FatalError on failure; sockets bound
    // so far are closed and Unix socket files removed).
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
    FrameQueue queue_;
    std::unique_ptr<Counters> counters_;

    std::thread acceptor_;
    std::atomic<bool> started_{false};
    std::atomic<bool> stopping_{false};
    std::atomic<bool> stop_requested_{false};
    std::atomic<bool> acceptor_done_{false};
    std::atomic<std::int64_t> drain_until_ns_{0};
    std::list<std::unique_ptr<Conn>> conns_;  // acceptor thread only
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
