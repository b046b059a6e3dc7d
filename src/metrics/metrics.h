// Metrics: a snapshot board filled by the capture thread and a tiny
// HTTP/1.0 server that renders it in the Prometheus text format (0.0.4).
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

// Serves GET /metrics (200, Content-Type: text/plain; version=0.0.4),
// 404 for other paths, 405 for other methods; one response per connection,
// connections handled one at a time (2 s read timeout per request).
class HttpServer {
public:
    // `listen` is HOST:PORT, [V6]:PORT or :PORT (all addresses); port 0
    // picks a free one (see port()). Throws util::FatalError (exit 2 for a
    // malformed address, 1 when it cannot bind).
    HttpServer(const std::string& listen, const Board& board);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    [[nodiscard]] std::uint16_t port() const { return port_; }
    void stop();

private:
    void run();
    void serve(int fd);

    const Board& board_;
    int listen_fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace sidetap::metrics
