// sidetap listen, in process: a Server on a temp Unix socket and on
// 127.0.0.1:0, test writers doing the Frame Streams handshake by hand with
// the framestream codec, frames through a real Relay into a MemoryOutput.
#include "framestream/codec.h"
#include "listen/endpoint.h"
#include "listen/receive_memory.h"
#include "listen/server.h"
#include "output/memory_output.h"
#include "output/transport.h"
#include "relay/relay.h"
#include "util/error.h"

#include "dnstap.pb.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace {

using namespace sidetap;
using namespace std::chrono_literals;
namespace fs = sidetap::framestream;
using Bytes = std::vector<std::uint8_t>;

class TempDir {
public:
    TempDir() {
        std::string tmpl = "/tmp/sidetap-listen-XXXXXX";  // short: sun_path is 108 bytes
        if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir() { std::filesystem::remove_all(path_); }
    [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

// `extra_bytes` > 0 makes a large frame (an `extra` field of that size).
Bytes dnstap_frame(const std::string& identity, std::uint32_t seq, std::size_t extra_bytes = 0) {
    ::dnstap::Dnstap d;
    d.set_type(::dnstap::Dnstap::MESSAGE);
    d.set_identity(identity);
    if (extra_bytes != 0) d.set_extra(std::string(extra_bytes, 'x'));
    auto* m = d.mutable_message();
    m->set_type(::dnstap::Message::CLIENT_QUERY);
    m->set_socket_family(::dnstap::INET);
    m->set_socket_protocol(::dnstap::UDP);
    m->set_query_address(std::string("\x7f\x00\x00\x01", 4));
    m->set_query_port(seq);
    m->set_query_time_sec(1700000000 + seq);
    Bytes out(d.ByteSizeLong());
    d.SerializeToArray(out.data(), static_cast<int>(out.size()));
    return out;
}

std::pair<std::string, std::uint32_t> identify(const Bytes& frame) {
    ::dnstap::Dnstap d;
    if (!d.ParseFromArray(frame.data(), static_cast<int>(frame.size()))) return {"?", 0};
    return {d.identity(), d.message().query_port()};
}

// A writer speaking Frame Streams by hand over a blocking socket.
class Writer {
public:
    static Writer unix_socket(const std::string& path) {
        Writer w(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, path.data(), path.size());
        w.connected_ = ::connect(w.fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
        return w;
    }
    static Writer tcp(std::uint16_t port) {
        Writer w(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        w.connected_ = ::connect(w.fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
        return w;
    }
    Writer(Writer&& o) noexcept : fd_(std::exchange(o.fd_, -1)), connected_(o.connected_) {}
    ~Writer() {
        if (fd_ >= 0) ::close(fd_);
    }
    [[nodiscard]] bool connected() const { return connected_; }
    [[nodiscard]] int fd() const { return fd_; }

    bool send(const Bytes& bytes) {
        std::size_t off = 0;
        while (off < bytes.size()) {
            const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
            if (n <= 0) return false;
            off += static_cast<std::size_t>(n);
        }
        return true;
    }
    bool send_control(fs::ControlType type, std::vector<std::string_view> types = {}) {
        Bytes b;
        fs::append_control(b, type, types);
        return send(b);
    }
    bool send_frame(const Bytes& payload) {
        Bytes b(4);
        fs::put_be32(b.data(), static_cast<std::uint32_t>(payload.size()));
        b.insert(b.end(), payload.begin(), payload.end());
        return send(b);
    }
    // Reads exactly n bytes within `timeout`; false on EOF/error/timeout.
    bool read(Bytes& out, std::size_t n, std::chrono::milliseconds timeout = 5000ms) {
        out.assign(n, 0);
        std::size_t off = 0;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (off < n) {
            pollfd p{fd_, POLLIN, 0};
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
            const ssize_t r = ::recv(fd_, out.data() + off, n - off, 0);
            if (r <= 0) return false;
            off += static_cast<std::size_t>(r);
        }
        return true;
    }
    std::optional<fs::ControlFrame> read_control(std::chrono::milliseconds timeout = 5000ms) {
        Bytes head;
        if (!read(head, 8, timeout) || fs::get_be32(head.data()) != 0) return std::nullopt;
        Bytes payload;
        if (!read(payload, fs::get_be32(head.data() + 4), timeout)) return std::nullopt;
        std::string why;
        return fs::decode_control(payload, why);
    }
    // True when the peer closes (EOF or reset) within `timeout`, having sent nothing.
    bool closed_by_peer(std::chrono::milliseconds timeout = 5000ms) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
        std::uint8_t byte;
        const ssize_t r = ::recv(fd_, &byte, 1, 0);
        return r == 0 || (r < 0 && errno == ECONNRESET);
    }
    bool handshake() {
        if (!send_control(fs::ControlType::Ready, {fs::kDnstapContentType})) return false;
        auto accept = read_control();
        if (!accept || accept->type != fs::ControlType::Accept || accept->content_types.size() != 1 ||
            accept->content_types[0] != fs::kDnstapContentType)
            return false;
        return send_control(fs::ControlType::Start, {fs::kDnstapContentType});
    }
    bool stop_and_finish() {
        if (!send_control(fs::ControlType::Stop)) return false;
        auto finish = read_control();
        return finish && finish->type == fs::ControlType::Finish && closed_by_peer();
    }

private:
    explicit Writer(int fd) : fd_(fd) {}
    int fd_ = -1;
    bool connected_ = false;
};

template <typename Pred>
bool eventually(Pred&& pred, std::chrono::milliseconds timeout = 10000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (pred()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return pred();
}

// A Server with a Unix and a TCP listener, run() on a background thread,
// frames through a Relay (dnstap mode) into a MemoryOutput.
class Harness {
public:
    explicit Harness(listen::ServerOptions options = {}, std::chrono::milliseconds sink_delay = 0ms)
        : sink_delay_(sink_delay) {
        socket_path_ = dir_.file("l.sock");
        if (options.endpoints.empty()) {
            options.endpoints.push_back(listen::unix_endpoint(socket_path_));
            options.endpoints.push_back(listen::parse_network_endpoint("127.0.0.1:0", false));
        }
        server_ = std::make_unique<listen::Server>(std::move(options), [this](listen::LogLevel, const std::string& l) {
            std::lock_guard lock(log_mutex_);
            log_ += l + "\n";
        });
        for (const auto& e : server_->bound())
            if (e.kind != listen::Endpoint::Unix) port_ = e.port;
        auto memory = std::make_unique<output::MemoryOutput>();
        memory_ = memory.get();
        std::vector<output::OutputRoute> routes(1);
        routes[0].output = std::move(memory);
        relay_ = std::make_unique<relay::Relay>(present::Filter{}, std::move(routes));
        thread_ = std::thread([this] {
            server_->run([this](std::span<const std::uint8_t> f) {
                if (sink_delay_.count() > 0) std::this_thread::sleep_for(sink_delay_);
                relay_->on_frame(f);
                delivered_.fetch_add(1);
            });
            relay_->finish();
        });
    }
    ~Harness() { stop(); }

    void stop() {
        if (!thread_.joinable()) return;
        server_->request_stop();
        thread_.join();
    }

    [[nodiscard]] const std::string& socket_path() const { return socket_path_; }
    [[nodiscard]] std::uint16_t port() const { return port_; }
    listen::Server& server() { return *server_; }
    relay::Relay& relay() { return *relay_; }
    // Only after stop() (the MemoryOutput is not thread-safe).
    const std::vector<Bytes>& frames() const { return memory_->frames(); }
    std::uint64_t delivered() const { return delivered_.load(); }
    std::string log() {
        std::lock_guard lock(log_mutex_);
        return log_;
    }

private:
    TempDir dir_;
    std::string socket_path_;
    std::chrono::milliseconds sink_delay_;
    std::unique_ptr<listen::Server> server_;
    std::uint16_t port_ = 0;
    output::MemoryOutput* memory_ = nullptr;
    std::unique_ptr<relay::Relay> relay_;
    std::atomic<std::uint64_t> delivered_{0};
    std::thread thread_;
    std::mutex log_mutex_;
    std::string log_;
};

// --- endpoints ----------------------------------------------------------

TEST(ListenEndpoint, ParsesHostPortForms) {
    auto e = listen::parse_network_endpoint("127.0.0.1:6000", false);
    EXPECT_EQ(e.kind, listen::Endpoint::Tcp);
    EXPECT_EQ(e.host, "127.0.0.1");
    EXPECT_EQ(e.port, 6000);
    e = listen::parse_network_endpoint("[::1]:53", false);
    EXPECT_EQ(e.host, "::1");
    EXPECT_EQ(e.port, 53);
    EXPECT_EQ(listen::to_string(e), "tcp://[::1]:53");
    e = listen::parse_network_endpoint(":6000", true);  // any address, TLS because a cert was given
    EXPECT_EQ(e.kind, listen::Endpoint::Tls);
    EXPECT_EQ(e.host, "");
    e = listen::parse_network_endpoint("tcp://localhost:0", true);  // explicit scheme wins
    EXPECT_EQ(e.kind, listen::Endpoint::Tcp);
    e = listen::parse_network_endpoint("TLS://10.0.0.1:853", false);
    EXPECT_EQ(e.kind, listen::Endpoint::Tls);
    for (const char* bad : {"6000", "::1:6000", "[::1]6000", "host:99999", "host:", "udp://h:1", "[nope]:1"}) {
        try {
            (void)listen::parse_network_endpoint(bad, false);
            ADD_FAILURE() << bad << " parsed";
        } catch (const util::FatalError& err) {
            EXPECT_EQ(err.exit_code(), util::kExitUsage) << bad;
        }
    }
}

TEST(ListenEndpoint, StaleSocketIsReplacedLiveOneAndRegularFileAreNot) {
    TempDir dir;
    const auto path = dir.file("s.sock");
    {
        // A socket file nobody listens on (a crashed collector).
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, path.data(), path.size());
        ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        ::close(fd);
    }
    {
        auto sockets = listen::bind_endpoint(listen::unix_endpoint(path), 0600);
        ASSERT_EQ(sockets.size(), 1u);
        struct stat st {};
        ASSERT_EQ(::stat(path.c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 0777, 0600u);
        // A second collector on the same path is refused; the file stays.
        EXPECT_THROW((void)listen::bind_endpoint(listen::unix_endpoint(path), 0600), util::FatalError);
        EXPECT_TRUE(std::filesystem::exists(path));
    }
    EXPECT_FALSE(std::filesystem::exists(path)) << "socket file removed with its listener";
    std::ofstream(dir.file("plain")) << "data";
    try {
        (void)listen::bind_endpoint(listen::unix_endpoint(dir.file("plain")), 0600);
        ADD_FAILURE() << "bound over a regular file";
    } catch (const util::FatalError& err) {
        EXPECT_NE(std::string(err.what()).find("not a socket"), std::string::npos) << err.what();
    }
    EXPECT_TRUE(std::filesystem::exists(dir.file("plain")));
}

// --- sessions -----------------------------------------------------------

TEST(Listen, NormalSessionOnUnixAndTcp) {
    Harness h;
    ASSERT_NE(h.port(), 0) << "ephemeral port reported";
    for (int i = 0; i < 2; ++i) {
        auto w = i == 0 ? Writer::unix_socket(h.socket_path()) : Writer::tcp(h.port());
        ASSERT_TRUE(w.connected());
        ASSERT_TRUE(w.handshake());
        for (std::uint32_t seq = 0; seq < 5; ++seq) ASSERT_TRUE(w.send_frame(dnstap_frame("w" + std::to_string(i), seq)));
        EXPECT_TRUE(w.stop_and_finish());
    }
    ASSERT_TRUE(eventually([&] { return h.server().stats().finished == 2; }));
    h.stop();
    ASSERT_EQ(h.frames().size(), 10u);
    for (std::uint32_t k = 0; k < 10; ++k) {
        EXPECT_EQ(identify(h.frames()[k]), std::make_pair("w" + std::to_string(k / 5), k % 5));
    }
    const auto s = h.server().stats();
    EXPECT_EQ(s.accepted, 2u);
    EXPECT_EQ(s.bidirectional, 2u);
    EXPECT_EQ(s.frames, 10u);
    const auto records = h.server().records();
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(records[0].end, "STOP");
    EXPECT_EQ(records[0].frames, 5u);
    EXPECT_FALSE(std::filesystem::exists(h.socket_path())) << "socket file removed at shutdown";
}

TEST(Listen, ReadyWithoutDnstapContentTypeGetsNoAccept) {
    Harness h;
    auto w = Writer::unix_socket(h.socket_path());
    ASSERT_TRUE(w.send_control(fs::ControlType::Ready, {"protobuf:other.Thing"}));
    EXPECT_TRUE(w.closed_by_peer()) << "closed without ACCEPT";
    ASSERT_TRUE(eventually([&] { return h.server().stats().wrong_content_type == 1; }));
    EXPECT_NE(h.log().find("READY offers \"protobuf:other.Thing\""), std::string::npos) << h.log();
    // A READY listing several types, dnstap among them, is accepted.
    auto w2 = Writer::tcp(h.port());
    ASSERT_TRUE(w2.send_control(fs::ControlType::Ready, {"x:y", fs::kDnstapContentType}));
    auto accept = w2.read_control();
    ASSERT_TRUE(accept && accept->type == fs::ControlType::Accept);
    EXPECT_EQ(accept->content_types, std::vector<std::string>{std::string(fs::kDnstapContentType)});
}

TEST(Listen, FrameOverTheLimitClosesThatConnectionOnly) {
    listen::ServerOptions o;
    o.max_frame_size = 1024;
    Harness h(o);
    auto w = Writer::tcp(h.port());
    ASSERT_TRUE(w.handshake());
    ASSERT_TRUE(w.send_frame(dnstap_frame("big", 1)));
    ASSERT_TRUE(w.send_frame(Bytes(2000, 0x0a)));
    EXPECT_TRUE(w.closed_by_peer());
    auto other = Writer::unix_socket(h.socket_path());  // the server is fine
    ASSERT_TRUE(other.handshake());
    ASSERT_TRUE(other.send_frame(dnstap_frame("other", 2)));
    EXPECT_TRUE(other.stop_and_finish());
    ASSERT_TRUE(eventually([&] { return h.server().stats().finished == 1; }));
    h.stop();
    EXPECT_EQ(h.server().stats().too_large, 1u);
    EXPECT_EQ(h.frames().size(), 2u) << "the frame before the large one is kept";
    EXPECT_NE(h.log().find("frame of 2000 bytes exceeds the 1 KiB limit (--max-frame-size)"), std::string::npos)
        << h.log();
}

TEST(Listen, MalformedProtobufIsCountedAndTheSessionGoesOn) {
    Harness h;
    auto w = Writer::unix_socket(h.socket_path());
    ASSERT_TRUE(w.handshake());
    ASSERT_TRUE(w.send_frame(dnstap_frame("m", 1)));
    ASSERT_TRUE(w.send_frame(Bytes{0xff, 0xff, 0xff, 0xff, 0x0f}));
    ASSERT_TRUE(w.send_frame(dnstap_frame("m", 2)));
    EXPECT_TRUE(w.stop_and_finish());
    ASSERT_TRUE(eventually([&] { return h.delivered() == 3; }));
    h.stop();
    EXPECT_EQ(h.relay().stats().malformed, 1u);
    EXPECT_EQ(h.relay().stats().relayed, 2u);
    ASSERT_EQ(h.frames().size(), 2u);
    EXPECT_EQ(identify(h.frames()[1]).second, 2u);
}

TEST(Listen, FiftyConcurrentWritersKeepTheirOrder) {
    Harness h;
    constexpr int kWriters = 50;
    constexpr std::uint32_t kFrames = 200;
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kWriters; ++i) {
        threads.emplace_back([&, i] {
            auto w = i % 2 ? Writer::unix_socket(h.socket_path()) : Writer::tcp(h.port());
            if (!w.handshake()) return;
            for (std::uint32_t s = 0; s < kFrames; ++s)
                if (!w.send_frame(dnstap_frame("w" + std::to_string(i), s))) return;
            if (w.stop_and_finish()) ok.fetch_add(1);
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(ok.load(), kWriters);
    h.stop();
    ASSERT_EQ(h.frames().size(), std::size_t{kWriters} * kFrames);
    std::map<std::string, std::uint32_t> next;
    for (const auto& f : h.frames()) {
        const auto [id, seq] = identify(f);
        EXPECT_EQ(seq, next[id]) << id;
        next[id] = seq + 1;
    }
    EXPECT_EQ(next.size(), std::size_t{kWriters});
    EXPECT_EQ(h.server().stats().peak_active <= kWriters, true);
}

long rss_kib() {
    std::ifstream statm("/proc/self/statm");
    long pages = 0, resident = 0;
    statm >> pages >> resident;
    return resident * (::sysconf(_SC_PAGESIZE) / 1024);
}

TEST(Listen, ThousandIdleConnectionsThenRefusalPastTheLimit) {
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur < 2200 && limit.rlim_max >= 2200) {
        limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, 4096);
        ::setrlimit(RLIMIT_NOFILE, &limit);
    }
    if (limit.rlim_cur < 2200) GTEST_SKIP() << "needs 2200 descriptors";
    listen::ServerOptions o;
    o.max_connections = 1000;
    o.evict_after = std::chrono::hours(1);  // refusal, not eviction (see ConnectionsIdleLongEnoughAreEvicted...)
    Harness h(o);
    const long before = rss_kib();
    std::vector<Writer> writers;
    writers.reserve(1001);
    for (int i = 0; i < 1000; ++i) {
        writers.push_back(Writer::unix_socket(h.socket_path()));
        ASSERT_TRUE(writers.back().handshake()) << i;
    }
    ASSERT_TRUE(eventually([&] { return h.server().stats().bidirectional == 1000; }));
    const long grown = rss_kib() - before;
    std::printf("[          ] 1000 idle connections: +%ld KiB resident (both ends in this process)\n", grown);
#if !defined(__SANITIZE_ADDRESS__)  // ASan's shadow of 1000 thread stacks is its own cost
    // A thread stack's touched pages and a socket per writer; no read
    // buffer until an idle writer sends something (~8 MiB measured).
    EXPECT_LT(grown, 64 * 1024) << "KiB for 1000 idle writers";
#endif
    // One more is accepted, closed at once and counted.
    writers.push_back(Writer::unix_socket(h.socket_path()));
    EXPECT_TRUE(writers.back().closed_by_peer());
    EXPECT_EQ(h.server().stats().refused_max_connections, 1u);
    // Idle writers do not hold the shutdown up.
    const auto t0 = std::chrono::steady_clock::now();
    h.stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    EXPECT_EQ(h.server().stats().closed_at_shutdown, 1000u);
    EXPECT_EQ(h.server().stats().active, 0u);
}

TEST(Listen, MaxConnectionsRefusesAndCountsWhenNoConnectionIsIdle) {
    listen::ServerOptions o;
    o.max_connections = 3;
    o.evict_after = std::chrono::hours(1);
    Harness h(o);
    std::vector<Writer> writers;
    for (int i = 0; i < 3; ++i) {
        writers.push_back(Writer::tcp(h.port()));
        ASSERT_TRUE(writers.back().handshake());
    }
    ASSERT_TRUE(eventually([&] { return h.server().stats().bidirectional == 3; }));
    for (int i = 0; i < 2; ++i) {
        auto extra = Writer::tcp(h.port());
        EXPECT_TRUE(extra.closed_by_peer());
    }
    EXPECT_EQ(h.server().stats().refused_max_connections, 2u);
    EXPECT_TRUE(writers[0].stop_and_finish());  // frees a slot
    ASSERT_TRUE(eventually([&] { return h.server().stats().active == 2; }));
    auto again = Writer::tcp(h.port());
    EXPECT_TRUE(again.handshake());
}

TEST(Listen, ConnectionIdleLongestIsEvictedForANewWriterWhenAllSlotsAreTaken) {
    listen::ServerOptions o;
    o.max_connections = 3;
    o.evict_after = 300ms;
    Harness h(o);
    std::vector<Writer> idle;
    for (int i = 0; i < 3; ++i) {
        idle.push_back(Writer::tcp(h.port()));
        ASSERT_TRUE(idle.back().handshake());
        std::this_thread::sleep_for(20ms);  // writer 0 is the longest idle
    }
    ASSERT_TRUE(idle[1].send_frame(dnstap_frame("busy", 1)));  // progress: not a candidate before 0 and 2
    ASSERT_TRUE(eventually([&] { return h.server().stats().frames == 1; }));
    // Too soon: nobody has been idle for evict_after yet.
    auto early = Writer::tcp(h.port());
    EXPECT_TRUE(early.closed_by_peer());
    EXPECT_EQ(h.server().stats().refused_max_connections, 1u);
    std::this_thread::sleep_for(400ms);
    auto fresh = Writer::tcp(h.port());
    ASSERT_TRUE(fresh.handshake()) << "a new writer gets the idle writer's slot";
    for (std::uint32_t k = 0; k < 10; ++k) ASSERT_TRUE(fresh.send_frame(dnstap_frame("fresh", k)));
    EXPECT_TRUE(fresh.stop_and_finish());
    EXPECT_TRUE(idle[0].closed_by_peer()) << "the oldest idle connection was the one evicted";
    EXPECT_FALSE(idle[2].closed_by_peer(100ms));
    EXPECT_FALSE(idle[1].closed_by_peer(100ms));
    ASSERT_TRUE(eventually([&] { return h.server().stats().finished == 1; }));
    h.stop();
    const auto s = h.server().stats();
    EXPECT_EQ(s.evicted, 1u);
    EXPECT_EQ(h.frames().size(), 11u);
    EXPECT_NE(h.log().find("evicted for a new connection"), std::string::npos) << h.log();
}

TEST(Listen, WriterThatCompletesNoFrameForTheIdleTimeoutIsClosed) {
    listen::ServerOptions o;
    o.idle_timeout = 400ms;
    Harness h(o);
    // Idle after START.
    auto idle = Writer::unix_socket(h.socket_path());
    ASSERT_TRUE(idle.handshake());
    ASSERT_TRUE(idle.send_frame(dnstap_frame("idle", 1)));
    // Trickling a frame that never ends: bytes keep coming, frames do not.
    auto trickle = Writer::tcp(h.port());
    ASSERT_TRUE(trickle.handshake());
    Bytes length(4);
    fs::put_be32(length.data(), 1000);
    ASSERT_TRUE(trickle.send(length));
    // A busy writer is not affected.
    auto busy = Writer::tcp(h.port());
    ASSERT_TRUE(busy.handshake());
    const auto t0 = std::chrono::steady_clock::now();
    bool trickle_closed = false;
    for (std::uint32_t k = 0; k < 12; ++k) {
        ASSERT_TRUE(busy.send_frame(dnstap_frame("busy", k)));
        if (!trickle_closed) trickle_closed = !trickle.send(Bytes{0x0a});
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_TRUE(idle.closed_by_peer(100ms));
    EXPECT_TRUE(trickle.closed_by_peer(100ms));
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 400ms);
    EXPECT_TRUE(busy.stop_and_finish());
    ASSERT_TRUE(eventually([&] { return h.server().stats().finished == 1; }));
    h.stop();
    const auto s = h.server().stats();
    EXPECT_EQ(s.idle_timeout, 2u);
    EXPECT_EQ(h.frames().size(), 13u) << "frames before the timeout are kept";
    EXPECT_NE(h.log().find("no complete frame for 400 ms (--idle-timeout)"), std::string::npos) << h.log();
}

// Many writers each holding a half-sent large frame: the read buffers stay
// within max_receive_memory, idle holders are evicted for a writer that
// needs memory, and that writer's frames all arrive.
TEST(Listen, ReceiveMemoryIsOneBudgetForAllConnections) {
    listen::ServerOptions o;
    o.max_connections = 60;  // a 240 KiB reserve of first chunks, 272 KiB shared
    o.max_frame_size = 64 << 10;
    o.read_chunk = 4 << 10;
    o.max_receive_memory = 512 << 10;
    o.evict_after = 200ms;
    o.memory_wait = 3000ms;
    Harness h(o);
    constexpr int kHogs = 40;
    std::vector<Writer> hogs;
    for (int i = 0; i < kHogs; ++i) {
        hogs.push_back(Writer::tcp(h.port()));
        ASSERT_TRUE(hogs.back().handshake());
        Bytes half(4 + 40'000, 0x0a);  // a 60000-byte frame, 40000 bytes of it
        fs::put_be32(half.data(), 60'000);
        hogs.back().send(half);
    }
    // Each hog would need ~40 KiB: 40 of them do not fit in 512 KiB.
    ASSERT_TRUE(eventually([&] { return h.server().stats().memory.waits > 0; }));
    std::this_thread::sleep_for(300ms);
    EXPECT_LE(h.server().stats().memory.used, o.max_receive_memory);
    auto real = Writer::tcp(h.port());
    ASSERT_TRUE(real.handshake());
    for (std::uint32_t k = 0; k < 20; ++k) ASSERT_TRUE(real.send_frame(dnstap_frame("real", k, 50'000)));
    EXPECT_TRUE(real.stop_and_finish());  // FINISH: every frame was read
    ASSERT_TRUE(eventually([&] { return h.server().stats().finished == 1; }));
    const auto s = h.server().stats();
    h.stop();
    std::printf("[          ] %d hogs: memory peak %zu of %zu, waits %llu, evicted_for_memory %llu, "
                "out_of_memory %llu\n",
                kHogs, s.memory.peak, o.max_receive_memory, static_cast<unsigned long long>(s.memory.waits),
                static_cast<unsigned long long>(s.evicted_for_memory),
                static_cast<unsigned long long>(s.out_of_memory));
    EXPECT_LE(s.memory.peak, o.max_receive_memory);
    EXPECT_GT(s.evicted_for_memory + s.out_of_memory, 0u);
    EXPECT_EQ(h.server().stats().memory.used, 0u) << "every buffer went back to the budget";
    std::size_t real_frames = 0;
    for (const auto& f : h.frames()) real_frames += identify(f).first == "real";
    EXPECT_EQ(real_frames, 20u);
}

// Stalled connections hold all the shared memory and none can be evicted:
// a writer of ordinary frames still gets through at once, on its reserved
// first chunk.
TEST(Listen, WriterOfSmallFramesNeverWaitsForMemoryHeldByStalledOnes) {
    listen::ServerOptions o;
    o.max_connections = 20;
    o.max_frame_size = 64 << 10;
    o.read_chunk = 4 << 10;
    o.max_receive_memory = 20 * (4 << 10) + (70 << 10);  // reserve + 70 KiB shared
    o.evict_after = std::chrono::hours(1);
    o.memory_wait = std::chrono::seconds(30);
    Harness h(o);
    std::vector<Writer> hogs;
    for (int i = 0; i < 4; ++i) {
        hogs.push_back(Writer::tcp(h.port()));
        ASSERT_TRUE(hogs.back().handshake());
        Bytes part(4 + 40'000, 0x0a);  // 40000 bytes of a 60000-byte frame
        fs::put_be32(part.data(), 60'000);
        hogs.back().send(part);
    }
    ASSERT_TRUE(eventually([&] { return h.server().stats().memory.waits >= 2; })) << "the shared part is spent";
    const auto t0 = std::chrono::steady_clock::now();
    auto real = Writer::unix_socket(h.socket_path());
    ASSERT_TRUE(real.handshake());
    for (std::uint32_t k = 0; k < 200; ++k) ASSERT_TRUE(real.send_frame(dnstap_frame("real", k)));
    EXPECT_TRUE(real.stop_and_finish());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
    ASSERT_TRUE(eventually([&] { return h.server().stats().finished == 1; }));
    const auto s = h.server().stats();
    EXPECT_EQ(s.evicted_for_memory + s.out_of_memory, 0u);
    hogs.clear();
    h.stop();
    EXPECT_EQ(h.frames().size(), 200u);
    EXPECT_LE(s.memory.peak, o.max_receive_memory);
    EXPECT_EQ(h.server().stats().memory.used, 0u);
}

TEST(Listen, RandomBytesInsteadOfReadyAreRefused) {
    Harness h;
    std::mt19937 rng(42);
    Bytes noise(256);
    for (auto& b : noise) b = static_cast<std::uint8_t>(rng());
    noise[0] = 0x17;  // not an escape
    auto w = Writer::tcp(h.port());
    w.send(noise);
    EXPECT_TRUE(w.closed_by_peer());
    // An escape with an absurd control length.
    auto w2 = Writer::unix_socket(h.socket_path());
    w2.send(Bytes{0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff});
    EXPECT_TRUE(w2.closed_by_peer());
    // A data frame first.
    auto w3 = Writer::unix_socket(h.socket_path());
    w3.send_frame(dnstap_frame("early", 1));
    EXPECT_TRUE(w3.closed_by_peer());
    // ACCEPT from the writer side.
    auto w4 = Writer::unix_socket(h.socket_path());
    w4.send_control(fs::ControlType::Accept, {fs::kDnstapContentType});
    EXPECT_TRUE(w4.closed_by_peer());
    ASSERT_TRUE(eventually([&] { return h.server().stats().handshake_failed == 4; }));
    h.stop();
    EXPECT_EQ(h.delivered(), 0u);
}

TEST(Listen, SilentWriterTimesOutInTheHandshake) {
    listen::ServerOptions o;
    o.handshake_timeout = 200ms;
    Harness h(o);
    auto w = Writer::unix_socket(h.socket_path());
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(w.closed_by_peer(3000ms));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    ASSERT_TRUE(eventually([&] { return h.server().stats().handshake_timeout == 1; }));
    // After START only the idle timeout (5 minutes by default) applies.
    auto idle = Writer::unix_socket(h.socket_path());
    ASSERT_TRUE(idle.handshake());
    EXPECT_FALSE(idle.closed_by_peer(600ms));
}

TEST(Listen, HalfCloseAfterStartEndsCleanlyAndKeepsFrames) {
    Harness h;
    auto w = Writer::tcp(h.port());
    ASSERT_TRUE(w.handshake());
    ASSERT_TRUE(w.send_frame(dnstap_frame("half", 1)));
    ASSERT_TRUE(w.send_frame(dnstap_frame("half", 2)));
    ::shutdown(w.fd(), SHUT_WR);
    EXPECT_TRUE(w.closed_by_peer());
    ASSERT_TRUE(eventually([&] { return h.server().stats().closed_without_stop == 1; }));
    h.stop();
    EXPECT_EQ(h.frames().size(), 2u);
}

TEST(Listen, WriterThatNeverSendsStopKeepsItsFrames) {
    Harness h;
    {
        auto w = Writer::unix_socket(h.socket_path());
        ASSERT_TRUE(w.handshake());
        for (std::uint32_t s = 0; s < 20; ++s) ASSERT_TRUE(w.send_frame(dnstap_frame("nostop", s)));
        // and a partial frame: the writer died mid-write
        Bytes partial(4);
        fs::put_be32(partial.data(), 100);
        partial.push_back(0x0a);
        w.send(partial);
    }  // closed
    ASSERT_TRUE(eventually([&] { return h.server().stats().truncated == 1; }));
    // A TCP reset is counted too, never a crash.
    {
        auto w = Writer::tcp(h.port());
        ASSERT_TRUE(w.handshake());
        ASSERT_TRUE(w.send_frame(dnstap_frame("reset", 1)));
        std::this_thread::sleep_for(50ms);
        linger l{1, 0};
        ::setsockopt(w.fd(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    ASSERT_TRUE(eventually([&] {
        const auto s = h.server().stats();
        return s.reset + s.closed_without_stop == 1;
    }));
    h.stop();
    ASSERT_GE(h.frames().size(), 20u);
    for (std::uint32_t s = 0; s < 20; ++s) EXPECT_EQ(identify(h.frames()[s]), std::make_pair(std::string("nostop"), s));
}

TEST(Listen, UnidirectionalWriterIsAcceptedAndCountedOrRefused) {
    {
        Harness h;
        auto w = Writer::unix_socket(h.socket_path());
        ASSERT_TRUE(w.send_control(fs::ControlType::Start, {fs::kDnstapContentType}));
        ASSERT_TRUE(w.send_frame(dnstap_frame("uni", 7)));
        ASSERT_TRUE(w.send_control(fs::ControlType::Stop));
        EXPECT_TRUE(w.closed_by_peer()) << "no FINISH for a unidirectional writer";
        ASSERT_TRUE(eventually([&] { return h.server().stats().finished == 1; }));
        h.stop();
        EXPECT_EQ(h.server().stats().unidirectional, 1u);
        ASSERT_EQ(h.frames().size(), 1u);
        EXPECT_TRUE(h.server().records().at(0).unidirectional);
    }
    {
        listen::ServerOptions o;
        o.accept_unidirectional = false;
        Harness h(o);
        auto w = Writer::unix_socket(h.socket_path());
        ASSERT_TRUE(w.send_control(fs::ControlType::Start, {fs::kDnstapContentType}));
        ASSERT_TRUE(w.send_frame(dnstap_frame("uni", 7)));
        EXPECT_TRUE(w.closed_by_peer());
        ASSERT_TRUE(eventually([&] { return h.server().stats().refused_unidirectional == 1; }));
        h.stop();
        EXPECT_EQ(h.frames().size(), 0u);
    }
}

TEST(Listen, SlowConsumerAppliesBackpressureWithBoundedQueue) {
    listen::ServerOptions o;
    o.queue_frames = 4;
    Harness h(o, 2ms);  // the relay takes 2 ms a frame
    auto w = Writer::unix_socket(h.socket_path());
    ASSERT_TRUE(w.handshake());
    for (std::uint32_t s = 0; s < 300; ++s) ASSERT_TRUE(w.send_frame(dnstap_frame("slow", s)));
    EXPECT_TRUE(w.stop_and_finish());
    ASSERT_TRUE(eventually([&] { return h.delivered() == 300; }));
    h.stop();
    const auto s = h.server().stats();
    EXPECT_LE(s.queue.peak_frames, 4u);
    EXPECT_GT(s.queue.blocked_pushes, 0u);
    EXPECT_EQ(h.frames().size(), 300u) << "nothing dropped";
}

TEST(Listen, ShutdownDeliversEverythingReceived) {
    Harness h;
    auto w = Writer::tcp(h.port());
    ASSERT_TRUE(w.handshake());
    for (std::uint32_t s = 0; s < 100; ++s) ASSERT_TRUE(w.send_frame(dnstap_frame("mid", s)));
    ASSERT_TRUE(eventually([&] { return h.server().stats().frames == 100; }));
    h.stop();  // the writer is mid-stream: no FINISH, just closed
    EXPECT_TRUE(w.closed_by_peer());
    EXPECT_EQ(h.frames().size(), 100u);
    EXPECT_EQ(h.server().stats().closed_at_shutdown, 1u);
}

TEST(ListenMemory, FirstChunkComesFromTheReserveAndSharedMemoryGoesBackFirst) {
    listen::ReceiveMemory pool(3000, 1000);  // 1000 reserved, 2000 shared
    listen::ReceiveMemory::Account a(pool);
    listen::ReceiveMemory::Account b(pool);
    EXPECT_TRUE(a.try_acquire(500));   // a's first chunk: reserve
    EXPECT_TRUE(a.try_acquire(2000));  // shared
    EXPECT_EQ(a.shared_held(), 2000u);
    EXPECT_FALSE(a.try_acquire(1)) << "shared part spent";
    EXPECT_TRUE(b.try_acquire(500)) << "b's first chunk still fits in the reserve";
    EXPECT_FALSE(b.try_acquire(1));
    a.release(2100);  // all its shared memory and 100 of its first chunk
    EXPECT_EQ(a.held(), 400u);
    EXPECT_EQ(a.shared_held(), 0u);
    EXPECT_EQ(pool.stats().used, 900u);
    EXPECT_TRUE(b.try_acquire(2000));
    // A waiting acquisition gets what a release frees.
    std::thread freer([&] {
        std::this_thread::sleep_for(50ms);
        b.release(1000);
    });
    EXPECT_TRUE(a.acquire(800, std::chrono::steady_clock::now() + 5s, {}));
    freer.join();
    EXPECT_FALSE(a.acquire(5000, std::chrono::steady_clock::now() + 50ms, {})) << "times out";
    EXPECT_EQ(pool.stats().peak, 3000u);
}

// What an evicted connection gives back goes to the waiter it was evicted
// for, even when another waiter is ahead in line; what that waiter leaves
// over goes back to everyone; used and peak count earmarked bytes once.
TEST(ListenMemory, MemoryFreedByAnEvictionIsHandedToTheWaiterItWasEvictedFor) {
    listen::ReceiveMemory pool(3000, 1000);  // 1000 reserved, 2000 shared
    listen::ReceiveMemory::Account victim(pool);
    listen::ReceiveMemory::Account first(pool);
    listen::ReceiveMemory::Account evictor(pool);
    ASSERT_TRUE(victim.try_acquire(500));   // reserve
    ASSERT_TRUE(victim.try_acquire(2000));  // all the shared part
    std::atomic<bool> first_waiting{false};
    std::atomic<bool> first_granted{false};
    // Ahead in line (higher priority), needs 1500.
    std::thread other([&] {
        const bool granted = first.acquire(
            1500, std::chrono::steady_clock::now() + 10s,
            [&](bool) {
                first_waiting = true;
                return true;
            },
            10);
        first_granted = granted;
    });
    ASSERT_TRUE(eventually([&] { return first_waiting.load(); }));
    bool handed = false;
    const bool granted = evictor.acquire(
        1000, std::chrono::steady_clock::now() + 10s,
        [&](bool first_in_line) {
            EXPECT_FALSE(first_in_line);
            if (handed) return true;
            handed = true;
            // The eviction: the victim is marked, then closes.
            victim.earmark_for(evictor);
            victim.release(2500);
            const auto s = pool.stats();
            EXPECT_EQ(s.used, 2000u) << "earmarked bytes stay counted";
            EXPECT_EQ(s.earmarked, 2000u);
            std::this_thread::sleep_for(100ms);  // the other waiter wakes, and gets none of it
            EXPECT_FALSE(first_granted.load());
            return true;
        },
        1);
    EXPECT_TRUE(granted);
    EXPECT_EQ(evictor.held(), 1000u);
    auto s = pool.stats();
    EXPECT_EQ(s.earmarked, 0u);
    EXPECT_EQ(s.used, 1000u) << "the 1000 left over went back";
    std::this_thread::sleep_for(100ms);
    EXPECT_FALSE(first_granted.load()) << "1000 free, 1500 needed";
    evictor.release(500);
    other.join();
    EXPECT_TRUE(first_granted.load());
    s = pool.stats();
    EXPECT_EQ(s.used, 2000u);
    EXPECT_EQ(s.peak, 2500u) << "the hand-off never counted a byte twice";
    first.release(1500);
    evictor.release(500);
    EXPECT_EQ(pool.stats().used, 0u);
    // Released for a waiter that is not waiting: simply free.
    ASSERT_TRUE(victim.try_acquire(500));
    ASSERT_TRUE(victim.try_acquire(2000));
    victim.release(2500);
    EXPECT_EQ(pool.stats().used, 0u);
    EXPECT_EQ(pool.stats().earmarked, 0u);
}

// Waiters are served one at a time, highest priority first: a smaller
// request behind does not take the memory gathering for the first in line,
// nor does an acquisition that does not wait.
TEST(ListenMemory, WaitersAreServedInOrderWithoutOvertaking) {
    listen::ReceiveMemory pool(3000, 1000);
    listen::ReceiveMemory::Account holder(pool);
    listen::ReceiveMemory::Account high(pool);
    listen::ReceiveMemory::Account low(pool);
    ASSERT_TRUE(holder.try_acquire(500));
    ASSERT_TRUE(holder.try_acquire(2000));
    std::atomic<int> waiting{0};
    std::atomic<bool> high_done{false};
    std::atomic<bool> low_done{false};
    std::thread l([&] {
        bool counted = false;
        EXPECT_TRUE(low.acquire(
            500, std::chrono::steady_clock::now() + 10s,
            [&](bool) {
                if (!counted) ++waiting;
                counted = true;
                return true;
            },
            1));
        low_done = true;
    });
    ASSERT_TRUE(eventually([&] { return waiting == 1; }));
    std::thread hi([&] {
        bool counted = false;
        EXPECT_TRUE(high.acquire(
            1500, std::chrono::steady_clock::now() + 10s,
            [&](bool) {
                if (!counted) ++waiting;
                counted = true;
                return true;
            },
            10));
        high_done = true;
    });
    ASSERT_TRUE(eventually([&] { return waiting == 2; }));
    holder.release(600);  // enough for the second in line only
    std::this_thread::sleep_for(100ms);
    EXPECT_FALSE(low_done.load()) << "it would overtake the first in line";
    EXPECT_FALSE(holder.try_acquire(100)) << "no overtaking without waiting either";
    holder.release(1000);
    ASSERT_TRUE(eventually([&] { return high_done.load(); }));
    std::this_thread::sleep_for(50ms);
    EXPECT_FALSE(low_done.load()) << "100 free, 500 needed";
    holder.release(400);
    hi.join();
    l.join();
    EXPECT_TRUE(low_done.load());
    EXPECT_EQ(pool.stats().used, 500u + 1500u + 500u);
    high.release(1500);
    EXPECT_TRUE(holder.try_acquire(100)) << "nobody waits any more";
}

// --- TLS ----------------------------------------------------------------

TEST(Listen, TlsListenerWithSelfSignedCertificate) {
    TempDir dir;
    const std::string script = "cd " + dir.file("") +
                               " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
                               "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout key.pem -out cert.pem "
                               "> openssl.log 2>&1";
    if (std::system(script.c_str()) != 0) GTEST_FAIL() << "openssl CLI failed (scripts/install-deps.sh installs it)";
    listen::ServerOptions o;
    o.endpoints.push_back(listen::parse_network_endpoint("127.0.0.1:0", true));
    o.tls_cert = dir.file("cert.pem");
    o.tls_key = dir.file("key.pem");
    o.handshake_timeout = 2000ms;
    Harness h(o);
    output::TlsOptions tls;
    tls.ca_file = dir.file("cert.pem");
    auto connector = output::make_tls_connector("127.0.0.1", h.port(), tls);
    std::string error;
    auto conn = connector->connect(2000ms, error);
    ASSERT_TRUE(conn) << error;
    Bytes b;
    const std::string_view types[] = {fs::kDnstapContentType};
    fs::append_control(b, fs::ControlType::Ready, types);
    ASSERT_TRUE(conn->write_all(b));
    Bytes accept(8 + 34);
    ASSERT_TRUE(conn->read_exact(accept, 2000ms)) << conn->error();
    EXPECT_EQ(fs::get_be32(accept.data() + 8), static_cast<std::uint32_t>(fs::ControlType::Accept));
    b.clear();
    fs::append_control(b, fs::ControlType::Start, types);
    const auto payload = dnstap_frame("tls", 3);
    b.resize(b.size() + 4);
    fs::put_be32(b.data() + b.size() - 4, static_cast<std::uint32_t>(payload.size()));
    b.insert(b.end(), payload.begin(), payload.end());
    fs::append_control(b, fs::ControlType::Stop);
    ASSERT_TRUE(conn->write_all(b));
    Bytes finish(12);
    ASSERT_TRUE(conn->read_exact(finish, 2000ms)) << conn->error();
    EXPECT_EQ(fs::get_be32(finish.data() + 8), static_cast<std::uint32_t>(fs::ControlType::Finish));
    ASSERT_TRUE(eventually([&] { return h.server().stats().finished == 1; }));
    // A plain-TCP writer on the TLS port fails the TLS handshake, counted.
    auto plain = Writer::tcp(h.port());
    plain.send_control(fs::ControlType::Ready, {fs::kDnstapContentType});
    EXPECT_TRUE(plain.closed_by_peer());
    ASSERT_TRUE(eventually([&] { return h.server().stats().handshake_failed == 1; }));
    h.stop();
    ASSERT_EQ(h.frames().size(), 1u);
    EXPECT_EQ(identify(h.frames()[0]).first, "tls");
}

// Writes a CA, a server certificate for 127.0.0.1, a client certificate
// from that CA and one from another CA into `dir` (openssl CLI).
bool make_pki(const TempDir& dir) {
    const std::string d = dir.file("");
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes ";
    const std::string script =
        "cd " + d + " && (" +
        "openssl req -x509" + ec + "-days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem && " +
        "openssl req -x509" + ec + "-days 2 -subj /CN=other-ca -keyout other-ca.key -out other-ca.pem && " +
        "openssl req -x509" + ec + "-days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
        "-keyout server.key -out server.pem && " +
        "openssl req" + ec + "-subj /CN=writer1 -keyout client.key -out client.csr && "
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out client.pem && "
        "openssl req" + ec + "-subj /CN=intruder -keyout intruder.key -out intruder.csr && "
        "openssl x509 -req -in intruder.csr -CA other-ca.pem -CAkey other-ca.key -CAcreateserial -days 2 "
        "-out intruder.pem) > openssl.log 2>&1";
    return std::system(script.c_str()) == 0;
}

// A TLS writer (sidetap's own TLS transport) that does the handshake and
// sends one frame with STOP; true when FINISH comes back.
bool tls_writer_session(std::uint16_t port, const output::TlsOptions& tls, const std::string& identity,
                        std::string& error) {
    auto connector = output::make_tls_connector("127.0.0.1", port, tls);
    auto conn = connector->connect(2000ms, error);
    if (!conn) return false;
    Bytes b;
    const std::string_view types[] = {fs::kDnstapContentType};
    fs::append_control(b, fs::ControlType::Ready, types);
    Bytes accept(8 + 34);
    if (!conn->write_all(b) || !conn->read_exact(accept, 2000ms)) {
        error = conn->error();
        return false;
    }
    b.clear();
    fs::append_control(b, fs::ControlType::Start, types);
    const auto payload = dnstap_frame(identity, 1);
    b.resize(b.size() + 4);
    fs::put_be32(b.data() + b.size() - 4, static_cast<std::uint32_t>(payload.size()));
    b.insert(b.end(), payload.begin(), payload.end());
    fs::append_control(b, fs::ControlType::Stop);
    Bytes finish(12);
    if (!conn->write_all(b) || !conn->read_exact(finish, 2000ms)) {
        error = conn->error();
        return false;
    }
    return fs::get_be32(finish.data() + 8) == static_cast<std::uint32_t>(fs::ControlType::Finish);
}

TEST(Listen, MutualTlsAdmitsOnlyWritersWithACertificateFromTheClientCa) {
    TempDir dir;
    ASSERT_TRUE(make_pki(dir)) << "openssl CLI failed (scripts/install-deps.sh installs it)";
    listen::ServerOptions o;
    o.endpoints.push_back(listen::parse_network_endpoint("tls://127.0.0.1:0", false));
    o.tls_cert = dir.file("server.pem");
    o.tls_key = dir.file("server.key");
    o.tls_client_ca = dir.file("ca.pem");
    o.handshake_timeout = 2000ms;
    Harness h(o);
    output::TlsOptions tls;
    tls.ca_file = dir.file("server.pem");
    std::string error;
    // No client certificate.
    EXPECT_FALSE(tls_writer_session(h.port(), tls, "anonymous", error));
    // A certificate from another CA.
    tls.cert_file = dir.file("intruder.pem");
    tls.key_file = dir.file("intruder.key");
    EXPECT_FALSE(tls_writer_session(h.port(), tls, "intruder", error));
    // A plain-TCP writer on the TLS port: a TLS failure, not a certificate one.
    auto plain = Writer::tcp(h.port());
    plain.send_control(fs::ControlType::Ready, {fs::kDnstapContentType});
    EXPECT_TRUE(plain.closed_by_peer());
    // The right certificate.
    tls.cert_file = dir.file("client.pem");
    tls.key_file = dir.file("client.key");
    EXPECT_TRUE(tls_writer_session(h.port(), tls, "writer1", error)) << error;
    ASSERT_TRUE(eventually([&] { return h.server().stats().finished == 1; }));
    ASSERT_TRUE(eventually([&] { return h.server().stats().refused_client_certificate == 2; }));
    ASSERT_TRUE(eventually([&] { return h.server().stats().handshake_failed == 1; }));
    h.stop();
    ASSERT_EQ(h.frames().size(), 1u);
    EXPECT_EQ(identify(h.frames()[0]).first, "writer1");
    const std::string log = h.log();
    EXPECT_NE(log.find("TLS client certificate: none sent"), std::string::npos) << log;
    EXPECT_NE(log.find("TLS client certificate: "), std::string::npos) << log;
    bool identity_recorded = false;
    for (const auto& r : h.server().records())
        identity_recorded = identity_recorded || r.peer.find("(CN=writer1)") != std::string::npos;
    EXPECT_TRUE(identity_recorded) << "the verified subject is part of the connection record";
}

TEST(Listen, ClientCaWithoutATlsListenerOrUnreadableIsAUsageError) {
    TempDir dir;
    listen::ServerOptions o;
    o.endpoints.push_back(listen::parse_network_endpoint("tcp://127.0.0.1:0", false));
    o.tls_client_ca = dir.file("missing.pem");
    try {
        listen::Server s(o);
        ADD_FAILURE() << "--tls-client-ca without a TLS listener accepted";
    } catch (const util::FatalError& e) {
        EXPECT_EQ(e.exit_code(), util::kExitUsage);
    }
    ASSERT_TRUE(make_pki(dir));
    o.endpoints[0] = listen::parse_network_endpoint("tls://127.0.0.1:0", false);
    o.tls_cert = dir.file("server.pem");
    o.tls_key = dir.file("server.key");
    try {
        listen::Server s(o);
        ADD_FAILURE() << "missing CA file accepted";
    } catch (const util::FatalError& e) {
        EXPECT_EQ(e.exit_code(), util::kExitUsage);
        EXPECT_NE(std::string(e.what()).find("missing.pem"), std::string::npos) << e.what();
    }
}

TEST(Listen, TlsListenerNeedsCertificateAndKey) {
    listen::ServerOptions o;
    o.endpoints.push_back(listen::parse_network_endpoint("tls://127.0.0.1:0", false));
    try {
        listen::Server s(o);
        ADD_FAILURE() << "no certificate accepted";
    } catch (const util::FatalError& e) {
        EXPECT_EQ(e.exit_code(), util::kExitUsage);
    }
}

}  // namespace
