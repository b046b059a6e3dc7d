// Metrics: a snapshot board filled by the capture (or listen) thread and a
// tiny HTTP/1.0 server that renders it in the Prometheus text format (0.0.4).
//
// Thread safety: the pipeline's counters are plain integers owned by the
// capture thread. That thread builds a vector of Samples (at most about once
// a second, and at exit) and publishes it into the Board (a mutex); the
// server thread only ever renders the Board's latest snapshot.
//
// Names: "sidetap_" + name, counters get "_total"; characters outside
// [a-zA-Z0-9_:] become '_'. Label values are escaped (\\, \", \n).
// Samples with the same name form one family (one # TYPE line), in order of
// first appearance.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace sidetap::metrics {

enum class Kind : std::uint8_t { Counter, Gauge };

struct Sample {
    std::string name;  // without the sidetap_ prefix and _total suffix
    Kind kind = Kind::Counter;
    std::vector<std::pair<std::string, std::string>> labels;
    std::uint64_t value = 0;
};

std::string metric_name(std::string_view name, Kind kind);
std::string render(const std::vector<Sample>& samples);

class Board {
public:
    void publish(std::vector<Sample> samples);
    [[nodiscard]] std::string render() const;
    [[nodiscard]] std::size_t publications() const;

private:
    mutable std::mutex mutex_;
    std::vector<Sample> samples_;
    std::size_t publications_ = 0;
};

struct HttpLimits {
    // Connections served at the same time. When all are taken, a new
    // connection closes the oldest one (a slow or silent client cannot keep
    // scrapes out; a real scrape takes milliseconds).
    std::size_t max_clients = 16;
    // Whole-request deadline, from accept to the last byte of the response:
    // a client that sends its request a byte at a time is cut off then.
    std::chrono::milliseconds request_timeout{5000};
};

// Serves GET /metrics (200, Content-Type: text/plain; version=0.0.4),
// 404 for other paths, 405 for other methods, 400 for a request head over
// 8 KiB; one response per connection (HTTP/1.0, Connection: close).
// One thread multiplexes every connection (non-blocking sockets, poll), so
// one slow client delays nobody else.
class HttpServer {
public:
    // `listen` is HOST:PORT, [V6]:PORT or :PORT (all addresses); port 0
    // picks a free one (see port()). Throws util::FatalError (exit 2 for a
    // malformed address, 1 when it cannot bind).
    HttpServer(const std::string& listen, const Board& board, HttpLimits limits = {});
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    [[nodiscard]] std::uint16_t port() const { return port_; }
    // Idempotent; closes every connection.
    void stop();

    // Connections closed because the deadline passed or a newer one needed
    // the slot.
    [[nodiscard]] std::uint64_t timed_out() const { return timed_out_.load(); }
    [[nodiscard]] std::uint64_t evicted() const { return evicted_.load(); }

private:
    struct Client;
    void run();
    std::string respond(const std::string& request) const;

    const Board& board_;
    HttpLimits limits_;
    int listen_fd_ = -1;
    int wake_fd_ = -1;  // eventfd: stop()
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> timed_out_{0};
    std::atomic<std::uint64_t> evicted_{0};
    std::thread thread_;
};

}  // namespace sidetap::metrics
