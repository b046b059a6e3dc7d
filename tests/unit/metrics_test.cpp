// metrics: the Prometheus text renderer, the snapshot board, and the
// HTTP/1.0 server on 127.0.0.1:0.
#include "metrics/metrics.h"
#include "util/error.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace sidetap::metrics {
namespace {

TEST(Metrics, Names) {
    EXPECT_EQ(metric_name("packets", Kind::Counter), "sidetap_packets_total");
    EXPECT_EQ(metric_name("queue_depth", Kind::Gauge), "sidetap_queue_depth");
    EXPECT_EQ(metric_name("link.ethernet-2", Kind::Counter), "sidetap_link_ethernet_2_total");
    EXPECT_EQ(metric_name("x_total", Kind::Counter), "sidetap_x_total");
}

TEST(Metrics, RenderGroupsFamiliesAndEscapesLabels) {
    std::vector<Sample> samples = {
        {"packets", Kind::Counter, {}, 42},
        {"output_frames_dropped", Kind::Counter, {{"output", "file:a"}}, 1},
        {"output_queue_depth", Kind::Gauge, {{"output", "file:a"}}, 7},
        {"output_frames_dropped", Kind::Counter, {{"output", "tcp://h:1 \"x\"\\\n"}}, 2},
        {"capture_kernel_dropped", Kind::Counter, {{"interface", "eth0"}}, 3},
    };
    const std::string text = render(samples);
    EXPECT_EQ(text,
              "# TYPE sidetap_packets_total counter\n"
              "sidetap_packets_total 42\n"
              "# TYPE sidetap_output_frames_dropped_total counter\n"
              "sidetap_output_frames_dropped_total{output=\"file:a\"} 1\n"
              "sidetap_output_frames_dropped_total{output=\"tcp://h:1 \\\"x\\\"\\\\\\n\"} 2\n"
              "# TYPE sidetap_output_queue_depth gauge\n"
              "sidetap_output_queue_depth{output=\"file:a\"} 7\n"
              "# TYPE sidetap_capture_kernel_dropped_total counter\n"
              "sidetap_capture_kernel_dropped_total{interface=\"eth0\"} 3\n");
    EXPECT_EQ(render({}), "");
}

TEST(Metrics, BoardKeepsTheLatestSnapshot) {
    Board board;
    EXPECT_EQ(board.render(), "");
    board.publish({{"packets", Kind::Counter, {}, 1}});
    board.publish({{"packets", Kind::Counter, {}, 2}});
    EXPECT_EQ(board.render(), "# TYPE sidetap_packets_total counter\nsidetap_packets_total 2\n");
    EXPECT_EQ(board.publications(), 2u);
}

std::string http(std::uint16_t port, const std::string& request) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return "connect failed";
    }
    ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::string response;
    char buffer[4096];
    ssize_t n;
    while ((n = ::recv(fd, buffer, sizeof buffer, 0)) > 0) response.append(buffer, static_cast<std::size_t>(n));
    ::close(fd);
    return response;
}

TEST(Metrics, HttpServerServesTheBoard) {
    Board board;
    board.publish({{"packets", Kind::Counter, {}, 5}, {"output_connected", Kind::Gauge, {{"output", "o"}}, 1}});
    HttpServer server("127.0.0.1:0", board);
    ASSERT_NE(server.port(), 0);

    const auto ok = http(server.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(ok.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << ok;
    EXPECT_NE(ok.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << ok;
    EXPECT_NE(ok.find("\r\n\r\n# TYPE sidetap_packets_total counter\nsidetap_packets_total 5\n"), std::string::npos)
        << ok;
    EXPECT_NE(ok.find("sidetap_output_connected{output=\"o\"} 1\n"), std::string::npos) << ok;

    // A new snapshot is served on the next request.
    board.publish({{"packets", Kind::Counter, {}, 6}});
    EXPECT_NE(http(server.port(), "GET /metrics?x=1 HTTP/1.0\r\n\r\n").find("sidetap_packets_total 6\n"),
              std::string::npos);

    EXPECT_EQ(http(server.port(), "GET / HTTP/1.0\r\n\r\n").rfind("HTTP/1.0 404", 0), 0u);
    EXPECT_EQ(http(server.port(), "POST /metrics HTTP/1.0\r\n\r\n").rfind("HTTP/1.0 405", 0), 0u);
    const auto head = http(server.port(), "HEAD /metrics HTTP/1.0\r\n\r\n");
    EXPECT_EQ(head.rfind("HTTP/1.0 200", 0), 0u);
    EXPECT_EQ(head.find("sidetap_packets_total"), std::string::npos);

    // A client that connects and says nothing does not stop the server for good.
    const int idle = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(server.port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(idle, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(http(server.port(), "GET /metrics HTTP/1.0\r\n\r\n").rfind("HTTP/1.0 200", 0), 0u);
    ::close(idle);
    server.stop();
    server.stop();  // idempotent
}

int connect_to(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// One client dribbling a request a byte at a time (slowloris) and a few that
// connect and say nothing: 100 scrapes next to them all succeed, each
// quickly, and the slow client is cut off at the request deadline.
TEST(Metrics, SlowClientsDoNotBlockScrapes) {
    Board board;
    board.publish({{"packets", Kind::Counter, {}, 7}});
    HttpServer server("127.0.0.1:0", board, {.max_clients = 16, .request_timeout = std::chrono::milliseconds(1500)});
    const int slow = connect_to(server.port());
    ASSERT_GE(slow, 0);
    std::vector<int> silent;
    for (int i = 0; i < 5; ++i) silent.push_back(connect_to(server.port()));
    std::atomic<bool> done{false};
    std::atomic<bool> slow_cut_off{false};
    std::thread dribble([&] {
        const std::string request = "GET /metrics HTTP/1.0\r\nX-Padding: " + std::string(200, 'a') + "\r\n\r\n";
        for (std::size_t i = 0; i < request.size() && !done.load(); ++i) {
            if (::send(slow, &request[i], 1, MSG_NOSIGNAL) != 1) {
                slow_cut_off = true;
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    });
    std::chrono::milliseconds worst{0};
    int ok = 0;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 100; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto response = http(server.port(), "GET /metrics HTTP/1.0\r\n\r\n");
        worst = std::max(worst, std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0));
        ok += response.rfind("HTTP/1.0 200 OK\r\n", 0) == 0 && response.find("sidetap_packets_total 7\n") != std::string::npos;
    }
    const auto scrapes_took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(ok, 100);
    EXPECT_LT(worst, std::chrono::milliseconds(500)) << "no scrape waits for the slow client";
    EXPECT_LT(scrapes_took, std::chrono::milliseconds(1500)) << "all while the slow client is still dribbling";
    // The slow client is closed at its deadline.
    pollfd p{slow, POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 3000), 1);
    char byte;
    EXPECT_LE(::recv(slow, &byte, 1, 0), 0) << "closed without a response";
    done = true;
    dribble.join();
    EXPECT_GE(server.timed_out(), 1u);
    ::close(slow);
    for (int fd : silent) ::close(fd);
}

TEST(Metrics, FullTableClosesTheOldestConnectionForANewOne) {
    Board board;
    board.publish({{"packets", Kind::Counter, {}, 1}});
    HttpServer server("127.0.0.1:0", board, {.max_clients = 4, .request_timeout = std::chrono::seconds(30)});
    std::vector<int> silent;
    for (int i = 0; i < 10; ++i) silent.push_back(connect_to(server.port()));
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(http(server.port(), "GET /metrics HTTP/1.0\r\n\r\n").rfind("HTTP/1.0 200", 0), 0u);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
    EXPECT_GE(server.evicted(), 7u);
    for (int fd : silent) ::close(fd);
}

TEST(Metrics, OversizedRequestHeadIsABadRequest) {
    Board board;
    HttpServer server("127.0.0.1:0", board);
    EXPECT_EQ(http(server.port(), "GET /metrics HTTP/1.0\r\nX: " + std::string(10000, 'a')).rfind("HTTP/1.0 400", 0), 0u);
}

TEST(Metrics, BadListenAddresses) {
    Board board;
    for (const char* bad : {"9153", "127.0.0.1", "127.0.0.1:x", "::1:9153", "[::1]9153", "1.2.3.4:70000"}) {
        try {
            HttpServer server(bad, board);
            ADD_FAILURE() << bad << " accepted";
        } catch (const util::FatalError& e) {
            EXPECT_EQ(e.exit_code(), util::kExitUsage) << bad << ": " << e.what();
        }
    }
    HttpServer v6("[::1]:0", board);
    EXPECT_NE(v6.port(), 0);
}

}  // namespace
}  // namespace sidetap::metrics
