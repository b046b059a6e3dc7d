// Output stack: FrameQueue, QueuedOutput, FileWriter, SocketWriter.
//
// Sockets are exercised against an in-test collector thread on a Unix socket
// (it does the Frame Streams handshake itself) through an in-test Connector,
// so these tests do not depend on the transport implementation.
#include "framestream/codec.h"
#include "output/gather_cursor.h"
#include "output/file_output.h"
#include "output/file_writer.h"
#include "output/frame_queue.h"
#include "output/queued_output.h"
#include "output/socket_writer.h"
#include "output/transport.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <mutex>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <set>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace sidetap;
using namespace std::chrono_literals;
using output::OverflowPolicy;
using output::QueueSettings;
using output::WriteResult;
using Bytes = std::vector<std::uint8_t>;
using Clock = std::chrono::steady_clock;

namespace {

// ---------------------------------------------------------------- helpers

Bytes hex(const std::string& text) {
    Bytes out;
    for (std::size_t i = 0; i + 1 < text.size();) {
        if (text[i] == ' ') { ++i; continue; }
        out.push_back(static_cast<std::uint8_t>(std::stoi(text.substr(i, 2), nullptr, 16)));
        i += 2;
    }
    return out;
}

Bytes read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

// A fresh, empty directory per test.
std::string temp_dir() {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string dir = std::string(::testing::TempDir()) + "/sidetap-out-" + std::to_string(::getpid()) + "-" +
                      std::to_string(counter++) + "-" + info->name();
    if (dir.size() > 80) dir.resize(80);  // leave room in sockaddr_un
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

// Payload i: its index in the first 4 bytes, then a pattern.
Bytes make_frame(std::uint32_t i, std::size_t size = 32) {
    Bytes f(std::max<std::size_t>(size, 4));
    framestream::put_be32(f.data(), i);
    for (std::size_t k = 4; k < f.size(); ++k) f[k] = static_cast<std::uint8_t>(i * 7 + k);
    return f;
}
std::uint32_t index_of(const Bytes& frame) { return framestream::get_be32(frame.data()); }

Bytes framed(const std::vector<Bytes>& frames) {
    Bytes out;
    for (const auto& f : frames) {
        std::uint8_t len[4];
        framestream::put_be32(len, static_cast<std::uint32_t>(f.size()));
        out.insert(out.end(), len, len + 4);
        out.insert(out.end(), f.begin(), f.end());
    }
    return out;
}

Bytes control(framestream::ControlType type, bool with_content_type) {
    Bytes out;
    const std::string_view ct[] = {framestream::kDnstapContentType};
    if (with_content_type) framestream::append_control(out, type, ct);
    else framestream::append_control(out, type);
    return out;
}
const Bytes kStart = control(framestream::ControlType::Start, true);
const Bytes kStop = control(framestream::ControlType::Stop, false);

struct Stream {
    bool valid = true;
    std::vector<framestream::ControlType> controls;  // in order
    std::vector<Bytes> frames;
    bool starts_and_stops() const {
        return valid && controls.size() == 2 && controls[0] == framestream::ControlType::Start &&
               controls[1] == framestream::ControlType::Stop;
    }
};

// Parses a unidirectional stream; STOP must be the last thing in it.
Stream parse_stream(const Bytes& data) {
    Stream s;
    std::size_t pos = 0;
    while (pos < data.size()) {
        if (data.size() - pos < 4) return s.valid = false, s;
        const std::uint32_t len = framestream::get_be32(&data[pos]);
        pos += 4;
        if (len == 0) {
            if (data.size() - pos < 4) return s.valid = false, s;
            const std::uint32_t clen = framestream::get_be32(&data[pos]);
            pos += 4;
            if (data.size() - pos < clen) return s.valid = false, s;
            std::string error;
            auto frame = framestream::decode_control(std::span(&data[pos], clen), error);
            if (!frame) return s.valid = false, s;
            s.controls.push_back(frame->type);
            pos += clen;
            if (frame->type == framestream::ControlType::Stop && pos != data.size()) return s.valid = false, s;
        } else {
            if (data.size() - pos < len) return s.valid = false, s;
            s.frames.emplace_back(data.begin() + static_cast<std::ptrdiff_t>(pos),
                                  data.begin() + static_cast<std::ptrdiff_t>(pos + len));
            pos += len;
        }
    }
    return s;
}

// Rotated files of `path` in the order they were written:
// path.<stamp>, path.<stamp>.1, path.<stamp>.2, ..., later stamps after.
std::vector<std::string> rotated_files(const std::string& path) {
    const std::filesystem::path p(path);
    const std::string prefix = p.filename().string() + ".";
    std::vector<std::pair<std::pair<std::string, unsigned>, std::string>> found;
    for (const auto& entry : std::filesystem::directory_iterator(p.parent_path())) {
        const std::string name = entry.path().filename().string();
        if (name.rfind(prefix, 0) != 0) continue;
        const std::string rest = name.substr(prefix.size());
        const auto dot = rest.find('.');
        const std::string stamp = rest.substr(0, dot);
        const unsigned n = dot == std::string::npos ? 0 : static_cast<unsigned>(std::stoul(rest.substr(dot + 1)));
        found.push_back({{stamp, n}, entry.path().string()});
    }
    std::sort(found.begin(), found.end());
    std::vector<std::string> out;
    for (auto& f : found) out.push_back(f.second);
    return out;
}

QueueSettings fast_settings() {
    QueueSettings s;
    s.queue_frames = 1000;
    s.write_buffer = 4096;
    s.flush_interval = 20ms;
    s.reconnect_initial = 5ms;
    s.reconnect_max = 20ms;
    s.connect_timeout = 500ms;
    s.finish_timeout = 500ms;
    s.drain_timeout = 1000ms;
    s.drop_log_interval = 10000ms;
    return s;
}

void expect_exact_accounting(const output::OutputStats& st, std::uint64_t given) {
    EXPECT_EQ(st.frames_written + st.frames_dropped + st.frames_too_large, given)
        << "written=" << st.frames_written << " dropped=" << st.frames_dropped
        << " too_large=" << st.frames_too_large;
    EXPECT_EQ(st.queue_depth, 0u);
}

// For state that only stats() shows (no event to wait on): checks `pred`
// every millisecond until it holds or `timeout` passes.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 2000ms) {
    const auto deadline = Clock::now() + timeout;
    while (!pred()) {
        if (Clock::now() >= deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

// Waits for `pred` (evaluated under `m`) with a deadline.
template <typename Pred>
bool wait_for(std::mutex& m, std::condition_variable& cv, std::chrono::milliseconds timeout, Pred pred) {
    std::unique_lock lock(m);
    return cv.wait_for(lock, timeout, pred);
}

// One piece of framed bytes, as the I/O thread hands them to a writer.
bool write_framed(output::FrameWriter& writer, const Bytes& bytes, std::string& error) {
    const std::span<const std::uint8_t> piece(bytes);
    return writer.write({&piece, 1}, error);
}

// ------------------------------------------------- FrameWriter test double

// Records what a QueuedOutput does to its writer; open/write can be made to
// fail or to wait on a gate, and every event notifies a condition variable.
struct Script {
    std::mutex m;
    std::condition_variable cv;
    int opens = 0;
    int open_attempts = 0;
    int closes = 0;
    int writes = 0;
    int fail_opens = 0;                 // the next n opens fail
    bool fail_all_opens = false;
    int fail_write_number = -1;         // this write (1-based) fails once
    bool gated = false;                 // writes wait for the gate
    bool gate_open = false;
    bool inside_write = false;
    std::vector<Clock::time_point> open_times;
    std::vector<Bytes> frames;          // every frame written, in order
    bool wants_reopen = false;
    bool reopen_on_request = false;
    bool broken = false;
    bool fail_all_writes = false;
    bool final_failures = false;        // reopen_after_failure() is false
    bool close_result = true;

    void notify() { cv.notify_all(); }
    void open_gate() {
        { std::lock_guard l(m); gate_open = true; }
        cv.notify_all();
    }
};

class ScriptedWriter final : public output::FrameWriter {
public:
    explicit ScriptedWriter(std::shared_ptr<Script> s) : s_(std::move(s)) {}
    bool open(std::string& error) override {
        std::lock_guard l(s_->m);
        ++s_->open_attempts;
        s_->open_times.push_back(Clock::now());
        s_->notify();
        if (s_->fail_all_opens || s_->fail_opens > 0) {
            if (s_->fail_opens > 0) --s_->fail_opens;
            error = "scripted open failure";
            return false;
        }
        ++s_->opens;
        return true;
    }
    bool write(std::span<const std::span<const std::uint8_t>> pieces, std::string& error) override {
        Bytes bytes;
        for (const auto& piece : pieces) bytes.insert(bytes.end(), piece.begin(), piece.end());
        std::unique_lock l(s_->m);
        ++s_->writes;
        s_->inside_write = true;
        s_->notify();
        if (s_->gated) s_->cv.wait(l, [&] { return s_->gate_open; });
        s_->inside_write = false;
        if (s_->writes == s_->fail_write_number || s_->fail_all_writes) {
            error = "scripted write failure";
            s_->notify();
            return false;
        }
        const Stream st = parse_stream(Bytes(bytes.begin(), bytes.end()));
        EXPECT_TRUE(st.valid);
        EXPECT_TRUE(st.controls.empty());
        s_->frames.insert(s_->frames.end(), st.frames.begin(), st.frames.end());
        s_->notify();
        return true;
    }
    bool close() override {
        std::lock_guard l(s_->m);
        ++s_->closes;
        s_->notify();
        return s_->close_result;
    }
    bool reopen_after_failure() override {
        std::lock_guard l(s_->m);
        return !s_->final_failures;
    }
    bool wants_reopen(Clock::time_point) override {
        std::lock_guard l(s_->m);
        return std::exchange(s_->wants_reopen, false);
    }
    bool broken() override {
        std::lock_guard l(s_->m);
        return std::exchange(s_->broken, false);
    }
    bool reopen_on_request() override {
        std::lock_guard l(s_->m);
        return s_->reopen_on_request;
    }
    const std::string& describe() const override { return name_; }

private:
    std::shared_ptr<Script> s_;
    std::string name_ = "scripted";
};

// ------------------------------------------- Connector over a Unix socket

struct ConnectLog {
    std::mutex m;
    std::condition_variable cv;
    int attempts = 0;
};

class UnixTestConnection final : public output::Connection {
public:
    UnixTestConnection(int fd, std::chrono::milliseconds write_timeout) : fd_(fd), write_timeout_(write_timeout) {}
    ~UnixTestConnection() override { ::close(fd_); }
    bool write_all(std::span<const std::uint8_t> bytes) override {
        const auto deadline = Clock::now() + write_timeout_;
        std::size_t done = 0;
        while (done < bytes.size()) {
            const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) { done += static_cast<std::size_t>(n); continue; }
            if (n < 0 && errno != EAGAIN && errno != EINTR) return fail(std::strerror(errno));
            if (!wait(POLLOUT, deadline)) return false;
        }
        return true;
    }
    bool read_exact(std::span<std::uint8_t> out, std::chrono::milliseconds timeout) override {
        const auto deadline = Clock::now() + timeout;
        std::size_t done = 0;
        while (done < out.size()) {
            const ssize_t n = ::recv(fd_, out.data() + done, out.size() - done, MSG_DONTWAIT);
            if (n > 0) { done += static_cast<std::size_t>(n); continue; }
            if (n == 0) return fail("peer closed the connection");
            if (errno != EAGAIN && errno != EINTR) return fail(std::strerror(errno));
            if (!wait(POLLIN, deadline)) return false;
        }
        return true;
    }
    bool peer_closed() override {
        pollfd p{fd_, POLLIN | POLLRDHUP, 0};
        if (::poll(&p, 1, 0) <= 0) return false;
        if (p.revents & (POLLHUP | POLLERR | POLLRDHUP)) return true;
        std::uint8_t byte;
        const ssize_t n = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
    }
    const std::string& error() const override { return error_; }
    void set_write_timeout(std::chrono::milliseconds timeout) override { write_timeout_ = timeout; }

private:
    bool fail(const std::string& why) {
        error_ = why;
        return false;
    }
    bool wait(short events, Clock::time_point deadline) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return fail("timed out");
        pollfd p{fd_, events, 0};
        const int r = ::poll(&p, 1, static_cast<int>(left));
        if (r == 0) return fail("timed out");
        return r > 0 || errno == EINTR || fail(std::strerror(errno));
    }
    int fd_;
    std::chrono::milliseconds write_timeout_;
    std::string error_;
};

class UnixTestConnector final : public output::Connector {
public:
    UnixTestConnector(std::string path, std::shared_ptr<ConnectLog> log, std::chrono::milliseconds write_timeout)
        : path_(std::move(path)), name_("unix://" + path_), log_(std::move(log)), write_timeout_(write_timeout) {}
    std::unique_ptr<output::Connection> connect(std::chrono::milliseconds, std::string& error) override {
        {
            std::lock_guard l(log_->m);
            ++log_->attempts;
        }
        log_->cv.notify_all();
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            error = "connect to " + path_ + ": " + std::strerror(errno);
            ::close(fd);
            return nullptr;
        }
        return std::make_unique<UnixTestConnection>(fd, write_timeout_);
    }
    const std::string& describe() const override { return name_; }

private:
    std::string path_;
    std::string name_;
    std::shared_ptr<ConnectLog> log_;
    std::chrono::milliseconds write_timeout_;
};

std::unique_ptr<output::Connector> test_connector(const std::string& path, std::shared_ptr<ConnectLog> log = nullptr,
                                                  std::chrono::milliseconds write_timeout = 200ms) {
    if (!log) log = std::make_shared<ConnectLog>();
    return std::make_unique<UnixTestConnector>(path, std::move(log), write_timeout);
}

// ------------------------------------------------------- the collector

struct CollectorOptions {
    int bad_accepts = 0;                   // the first n connections get ACCEPT without dnstap
    std::size_t close_first_after = 0;     // connection 0: close after this many frames (0 = never)
    bool never_read = false;               // after START, never read again
    std::size_t park_after = 0;            // after this many frames, stop reading (0 = never)
};

// A Frame Streams receiver on a Unix socket, on its own thread, one
// connection at a time: READY → ACCEPT → START → frames → STOP → FINISH.
class Collector {
public:
    Collector(std::string path, CollectorOptions options) : path_(std::move(path)), options_(options) {
        listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
        ::unlink(path_.c_str());
        if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 16) != 0)
            ADD_FAILURE() << "collector cannot listen on " << path_ << ": " << std::strerror(errno);
        if (::pipe2(stop_pipe_, O_CLOEXEC) != 0) ADD_FAILURE() << "pipe2";
        thread_ = std::thread([this] { run(); });
    }
    ~Collector() {
        (void)!::write(stop_pipe_[1], "x", 1);
        thread_.join();
        kill_parked();
        ::close(listen_fd_);
        ::close(stop_pipe_[0]);
        ::close(stop_pipe_[1]);
        ::unlink(path_.c_str());
    }

    template <typename Pred>
    bool wait(std::chrono::milliseconds timeout, Pred pred) {
        return wait_for(m_, cv_, timeout, [&] { return pred(*this); });
    }

    // Guarded by m_ (read them inside wait() predicates or after the output
    // was closed and the collector saw STOP).
    std::vector<Bytes> raw;            // bytes received, per connection
    std::vector<Bytes> frames;         // data frames over all connections
    int connections = 0;
    int stops = 0;
    int first_closed = 0;              // connection 0 was closed by us (close_first_after)
    int started = 0;                   // connections that got as far as START
    int parked = 0;                    // connections no longer read (park_after)

    // Closes the connections that are no longer read, as a collector that
    // dies does: what they hold unread is gone.
    void kill_parked() {
        std::lock_guard l(m_);
        for (int fd : parked_) ::close(fd);
        parked_.clear();
    }

    std::vector<Bytes> frames_snapshot() {
        std::lock_guard l(m_);
        return frames;
    }
    Bytes raw_snapshot(std::size_t i) {
        std::lock_guard l(m_);
        return i < raw.size() ? raw[i] : Bytes{};
    }

private:
    // Reads n bytes, or false on EOF/error/stop.
    bool read_n(int fd, std::size_t conn, std::uint8_t* out, std::size_t n) {
        std::size_t done = 0;
        while (done < n) {
            pollfd p[2] = {{fd, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
            if (::poll(p, 2, -1) < 0) {
                if (errno == EINTR) continue;
                return false;
            }
            if (p[1].revents) return false;
            const ssize_t r = ::read(fd, out + done, n - done);
            if (r <= 0) return false;
            done += static_cast<std::size_t>(r);
        }
        std::lock_guard l(m_);
        raw[conn].insert(raw[conn].end(), out, out + n);
        return true;
    }

    std::optional<framestream::ControlFrame> read_control(int fd, std::size_t conn, bool escape_read = false) {
        std::uint8_t hdr[8];
        if (!escape_read) {
            if (!read_n(fd, conn, hdr, 4) || framestream::get_be32(hdr) != 0) return std::nullopt;
        }
        if (!read_n(fd, conn, hdr + 4, 4)) return std::nullopt;
        const std::uint32_t len = framestream::get_be32(hdr + 4);
        if (len > framestream::kControlFrameMax) return std::nullopt;
        Bytes payload(len);
        if (len > 0 && !read_n(fd, conn, payload.data(), len)) return std::nullopt;
        std::string error;
        return framestream::decode_control(payload, error);
    }

    static void send_all(int fd, const Bytes& bytes) { (void)!::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL); }

    void serve(int fd, std::size_t conn) {
        auto ready = read_control(fd, conn);
        if (!ready || ready->type != framestream::ControlType::Ready) {
            ADD_FAILURE() << "collector: expected READY";
            ::close(fd);
            return;
        }
        if (static_cast<int>(conn) < options_.bad_accepts) {
            const std::string_view other[] = {"protobuf:other.Thing", "text:plain"};
            Bytes accept;
            framestream::append_control(accept, framestream::ControlType::Accept, other);
            send_all(fd, accept);
            ::close(fd);  // a real collector would now wait for a START that never comes
            return;
        }
        send_all(fd, control(framestream::ControlType::Accept, true));
        auto start = read_control(fd, conn);
        if (!start || start->type != framestream::ControlType::Start) {
            ADD_FAILURE() << "collector: expected START";
            ::close(fd);
            return;
        }
        {
            std::lock_guard l(m_);
            ++started;
        }
        cv_.notify_all();
        if (options_.never_read) {
            std::lock_guard l(m_);
            parked_.push_back(fd);
            return;
        }
        std::size_t in_this_connection = 0;
        std::size_t read_here = 0;
        for (;;) {
            if (options_.park_after != 0 && read_here == options_.park_after) {
                std::lock_guard l(m_);
                parked_.push_back(fd);
                ++parked;
                cv_.notify_all();
                return;
            }
            std::uint8_t len_bytes[4];
            if (!read_n(fd, conn, len_bytes, 4)) break;
            const std::uint32_t len = framestream::get_be32(len_bytes);
            if (len == 0) {
                auto stop = read_control(fd, conn, true);
                EXPECT_TRUE(stop && stop->type == framestream::ControlType::Stop);
                send_all(fd, control(framestream::ControlType::Finish, false));
                std::lock_guard l(m_);
                ++stops;
                break;
            }
            Bytes frame(len);
            if (!read_n(fd, conn, frame.data(), len)) break;
            {
                std::lock_guard l(m_);
                frames.push_back(std::move(frame));
            }
            ++read_here;
            cv_.notify_all();
            if (conn == 0 && options_.close_first_after != 0 && ++in_this_connection == options_.close_first_after) {
                ::close(fd);
                {
                    std::lock_guard l(m_);
                    first_closed = 1;
                }
                cv_.notify_all();
                return;
            }
        }
        ::close(fd);
        cv_.notify_all();
    }

    void run() {
        for (;;) {
            pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
            if (::poll(p, 2, -1) < 0) {
                if (errno == EINTR) continue;
                return;
            }
            if (p[1].revents) return;
            const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) continue;
            std::size_t conn;
            {
                std::lock_guard l(m_);
                conn = static_cast<std::size_t>(connections++);
                raw.emplace_back();
            }
            cv_.notify_all();
            serve(fd, conn);
        }
    }

    std::string path_;
    CollectorOptions options_;
    int listen_fd_ = -1;
    int stop_pipe_[2] = {-1, -1};
    std::vector<int> parked_;
    std::mutex m_;
    std::condition_variable cv_;
    std::thread thread_;
};

std::vector<std::uint32_t> indexes(const std::vector<Bytes>& frames) {
    std::vector<std::uint32_t> out;
    for (const auto& f : frames) out.push_back(index_of(f));
    return out;
}
std::vector<std::uint32_t> iota_n(std::uint32_t n) {
    std::vector<std::uint32_t> out(n);
    for (std::uint32_t i = 0; i < n; ++i) out[i] = i;
    return out;
}

}  // namespace

// ===================================================================== FrameQueue

namespace {

// A queue of `frames` frames and `bytes` bytes per lane, frames up to
// `max_frame` bytes.
output::FrameQueue::Options queue_limits(std::size_t frames, std::size_t bytes, std::size_t lanes = 1,
                                         std::size_t max_frame = 0) {
    output::FrameQueue::Options o;
    o.lanes = lanes;
    o.max_frames = frames * lanes;
    o.max_bytes = bytes * lanes;
    o.max_frame = max_frame != 0 ? max_frame : bytes / 2 - output::FrameQueue::kFrameHeader;
    return o;
}

using Push = output::FrameQueue::Push;

Push push_drop(output::FrameQueue& q, const Bytes& frame, std::size_t lane = 0) {
    return q.push(lane, frame, OverflowPolicy::Drop);
}

// Frames of one collected batch (payloads), and its pieces joined.
std::vector<Bytes> frames_of(const output::FrameQueue& q, const output::FrameQueue::Batch& b) {
    std::vector<Bytes> out;
    q.for_each_frame(b, [&](std::span<const std::uint8_t> f) { out.emplace_back(f.begin(), f.end()); });
    return out;
}

Bytes joined(const output::FrameQueue::Batch& b) {
    Bytes out;
    for (const auto& piece : b.pieces()) out.insert(out.end(), piece.begin(), piece.end());
    return out;
}

}  // namespace

TEST(FrameQueue, KeepsFramesInOrderAndCollectDoesNotRemoveThem) {
    output::FrameQueue q(queue_limits(8, 1024));
    for (std::uint32_t i = 0; i < 5; ++i) ASSERT_EQ(push_drop(q, make_frame(i, 10 + i)), Push::Queued);
    EXPECT_EQ(q.size(), 5u);
    output::FrameQueue::Batch b;
    EXPECT_EQ(q.collect(b, 3 * 18), 3u);  // 3 framed frames of 14..16 bytes fit in 54
    const auto first = frames_of(q, b);
    EXPECT_EQ(q.collect(b, 3 * 18), 3u);  // a failed batch is visible again
    EXPECT_EQ(frames_of(q, b), first);
    for (std::uint32_t i = 0; i < 3; ++i) EXPECT_EQ(first[i], make_frame(i, 10 + i));
    // The pieces are the Frame Streams bytes: length prefix + payload each.
    EXPECT_EQ(joined(b), framed(first));
    q.release(b);
    EXPECT_EQ(q.collect(b, SIZE_MAX), 2u);
    EXPECT_EQ(indexes(frames_of(q, b)), (std::vector<std::uint32_t>{3, 4}));
    q.release(b);
    EXPECT_EQ(q.size(), 0u);
    EXPECT_EQ(q.bytes(), 0u);
    EXPECT_EQ(q.collect(b, SIZE_MAX), 0u);
}

TEST(FrameQueue, RefusesFramesBeyondTheFrameBoundOrTheByteBound) {
    output::FrameQueue by_frames(queue_limits(3, 4096));
    for (std::uint32_t i = 0; i < 3; ++i) EXPECT_EQ(push_drop(by_frames, make_frame(i)), Push::Queued);
    EXPECT_EQ(push_drop(by_frames, make_frame(3)), Push::Full);
    output::FrameQueue::Batch b;
    by_frames.collect(b, 1);
    by_frames.release(b);
    EXPECT_EQ(push_drop(by_frames, make_frame(3)), Push::Queued);

    output::FrameQueue by_bytes(queue_limits(100, 100, 1, 40));  // 36 bytes per 32-byte frame
    EXPECT_EQ(push_drop(by_bytes, make_frame(0)), Push::Queued);
    EXPECT_EQ(push_drop(by_bytes, make_frame(1)), Push::Queued);
    EXPECT_EQ(push_drop(by_bytes, make_frame(2)), Push::Full);
    EXPECT_EQ(push_drop(by_bytes, make_frame(9, 200)), Push::TooLarge);  // never fits
    EXPECT_EQ(by_bytes.size(), 2u);
    EXPECT_EQ(by_bytes.bytes(), 72u);
}

TEST(FrameQueue, RefusesEmptyFramesAndFramesOverTheLargest) {
    output::FrameQueue q(queue_limits(4, 4096, 1, 100));
    EXPECT_EQ(push_drop(q, {}), Push::TooLarge);
    EXPECT_EQ(push_drop(q, Bytes(101, 1)), Push::TooLarge);
    EXPECT_EQ(push_drop(q, Bytes(100, 1)), Push::Queued);
    EXPECT_EQ(q.size(), 1u);
}

TEST(FrameQueue, EachLaneHoldsTwoOfTheLargestFramesWhateverTheBoundSays) {
    output::FrameQueue q(queue_limits(100, 10, 2, 1000));
    EXPECT_GE(q.lane_byte_capacity(), 2 * (1000 + output::FrameQueue::kFrameHeader));
    EXPECT_EQ(push_drop(q, Bytes(1000, 7), 0), Push::Queued);
    EXPECT_EQ(push_drop(q, Bytes(1000, 7), 1), Push::Queued);
}

TEST(FrameQueue, CollectStopsAtTheByteBudgetButAlwaysYieldsOneFrame) {
    output::FrameQueue q(queue_limits(16, 4096));
    for (std::uint32_t i = 0; i < 4; ++i) ASSERT_EQ(push_drop(q, make_frame(i, 96)), Push::Queued);  // 100 framed
    output::FrameQueue::Batch b;
    EXPECT_EQ(q.collect(b, 250), 2u);
    EXPECT_EQ(b.bytes(), 200u);
    EXPECT_EQ(q.collect(b, 200), 2u);
    EXPECT_EQ(q.collect(b, 10), 1u);
}

TEST(FrameQueue, ReserveAndCommitPublishOnlyWhatWasCommitted) {
    output::FrameQueue q(queue_limits(8, 1024));
    Push r = Push::Full;
    std::uint8_t* dst = q.reserve(0, 5, OverflowPolicy::Drop, r);
    ASSERT_NE(dst, nullptr);
    EXPECT_EQ(r, Push::Queued);
    std::memcpy(dst, "hello", 5);
    EXPECT_EQ(q.size(), 0u) << "nothing before commit()";
    q.commit(0);
    output::FrameQueue::Batch b;
    ASSERT_EQ(q.collect(b, SIZE_MAX), 1u);
    EXPECT_EQ(joined(b), hex("00000005 68656c6c6f"));
}

TEST(FrameQueue, WrapsAroundTheRingWithoutCorruptingFrames) {
    // A ring of 100 bytes with frames of varying size: the write position
    // passes the end of the ring many times, with and without room for a
    // padding marker; batches then come out in two pieces.
    output::FrameQueue q(queue_limits(4, 100, 1, 46));
    std::uint32_t next_in = 0, next_out = 0;
    std::size_t two_pieces = 0;
    for (int round = 0; round < 2000; ++round) {
        while (push_drop(q, make_frame(next_in, 4 + (next_in * 13) % 40)) == Push::Queued) ++next_in;
        output::FrameQueue::Batch b;
        const std::size_t n = q.collect(b, 1 + (round % 3) * 40);
        ASSERT_GT(n, 0u);
        const auto seen = frames_of(q, b);
        ASSERT_EQ(joined(b), framed(seen));
        two_pieces += b.pieces().size() > 1;
        for (const auto& f : seen) {
            ASSERT_EQ(f, make_frame(next_out, 4 + (next_out * 13) % 40)) << "frame " << next_out;
            ++next_out;
        }
        q.release(b);
    }
    EXPECT_GT(next_in, 2000u);
    EXPECT_GT(two_pieces, 0u);
}

TEST(FrameQueue, AnEmptyLaneStartsAgainAtTheBeginningOfItsRing) {
    // 4 MiB ring, drained after every frame: the write position comes back
    // to the start instead of walking the whole ring (resident memory).
    output::FrameQueue q(queue_limits(1000, 4u << 20, 1, 1000));
    output::FrameQueue::Batch b;
    const std::uint8_t* lowest = nullptr;
    const std::uint8_t* highest = nullptr;
    for (std::uint32_t i = 0; i < 20000; ++i) {
        ASSERT_EQ(push_drop(q, make_frame(i, 500)), Push::Queued);
        ASSERT_EQ(q.collect(b, SIZE_MAX), 1u);
        const auto* p = b.pieces()[0].data();
        if (!lowest || p < lowest) lowest = p;
        if (!highest || p > highest) highest = p;
        ASSERT_EQ(frames_of(q, b)[0], make_frame(i, 500));
        q.release(b);
        ASSERT_EQ(q.bytes(), 0u);
    }
    // 20000 frames of 504 bytes are 10 MB: without going back, the whole
    // ring would have been used; with it, a quarter of it.
    EXPECT_LE(static_cast<std::size_t>(highest - lowest), q.lane_byte_capacity() / 4 + 1024);
}

TEST(FrameQueue, AfterGoingBackToTheStartASlowConsumerStillGetsEveryFrameIntact) {
    // The producer goes back to the start of an empty ring, then fills the
    // lane while the consumer sleeps: it must not write over the padding
    // marker the consumer has yet to read, and every frame comes out whole.
    output::FrameQueue q(queue_limits(100000, 1u << 20, 1, 1000));
    output::FrameQueue::Batch b;
    std::uint32_t in = 0, out = 0;
    // Walk past the low-water mark, draining as we go (the lane is empty at
    // every check), until a frame lands back at the start of the ring.
    const std::uint8_t* previous = nullptr;
    for (;;) {
        Push r = Push::Full;
        std::uint8_t* dst = q.reserve(0, 300, OverflowPolicy::Drop, r);
        ASSERT_NE(dst, nullptr);
        const auto f = make_frame(in++, 300);
        std::memcpy(dst, f.data(), f.size());
        q.commit(0);
        if (previous && dst < previous) break;  // went back; the consumer has not seen it yet
        previous = dst;
        ASSERT_EQ(q.collect(b, SIZE_MAX), 1u);
        ASSERT_EQ(frames_of(q, b)[0], make_frame(out++, 300));
        q.release(b);
        ASSERT_LT(in, 100000u) << "never went back to the start";
    }
    // Now the consumer sleeps: fill until full.
    std::size_t queued = 0;
    while (push_drop(q, make_frame(in, 300)) == Push::Queued) {
        ++in;
        ++queued;
    }
    EXPECT_GE(queued * 304 + 1024, q.lane_byte_capacity() / 4) << "about a quarter of the lane at least";
    while (q.collect(b, 4096) != 0) {
        for (const auto& f : frames_of(q, b)) ASSERT_EQ(f, make_frame(out++, 300)) << "frame " << out;
        q.release(b);
    }
    EXPECT_EQ(out, in);
    // Past the marker, the whole lane is there again.
    queued = 0;
    while (push_drop(q, make_frame(in, 300)) == Push::Queued) {
        ++in;
        ++queued;
    }
    EXPECT_GE(queued * 304, q.lane_byte_capacity() * 9 / 10);
    while (q.collect(b, 4096) != 0) {
        for (const auto& f : frames_of(q, b)) ASSERT_EQ(f, make_frame(out++, 300)) << "frame " << out;
        q.release(b);
    }
    EXPECT_EQ(out, in);
}

TEST(FrameQueue, BlockPolicyWaitsForRoomAndCloseReleasesWaitingProducers) {
    output::FrameQueue q(queue_limits(2, 4096));
    EXPECT_EQ(q.push(0, make_frame(0), OverflowPolicy::Block), Push::Queued);
    EXPECT_EQ(q.push(0, make_frame(1), OverflowPolicy::Block), Push::Queued);
    std::atomic<int> result{-1};
    std::thread producer([&] { result = static_cast<int>(q.push(0, make_frame(2), OverflowPolicy::Block)); });
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(result.load(), -1) << "waits while full";
    EXPECT_TRUE(q.take_starved()) << "a full lane asks the consumer to write now";
    output::FrameQueue::Batch b;
    EXPECT_EQ(q.collect(b, SIZE_MAX), 2u);
    q.release(b);
    producer.join();
    EXPECT_EQ(result.load(), static_cast<int>(Push::Queued));
    EXPECT_EQ(q.push(0, make_frame(3), OverflowPolicy::Block), Push::Queued);
    std::thread blocked([&] { result = static_cast<int>(q.push(0, make_frame(4), OverflowPolicy::Block)); });
    std::this_thread::sleep_for(20ms);
    q.close();
    blocked.join();
    EXPECT_EQ(result.load(), static_cast<int>(Push::Closed));
    EXPECT_EQ(q.push(0, make_frame(5), OverflowPolicy::Drop), Push::Closed);
    EXPECT_EQ(q.size(), 2u) << "what was queued stays for the consumer";
    EXPECT_GE(q.stats().blocked_pushes, 2u);
}

TEST(FrameQueue, ConsumerSleepsUntilALaneHoldsABatchOrItsDeadline) {
    auto o = queue_limits(1000, 1u << 20);
    o.wake_bytes = 1000;
    output::FrameQueue q(o);
    ASSERT_EQ(push_drop(q, make_frame(0, 100)), Push::Queued);
    // Below the threshold: sleeps to the deadline.
    auto t0 = Clock::now();
    q.wait(t0 + 100ms, true, [] { return false; });
    EXPECT_GE(Clock::now() - t0, 90ms);
    // A producer reaching the threshold wakes it long before.
    std::thread producer([&] {
        std::this_thread::sleep_for(30ms);
        for (std::uint32_t i = 1; i <= 10; ++i) (void)push_drop(q, make_frame(i, 100));
    });
    t0 = Clock::now();
    q.wait(t0 + 5s, true, [] { return false; });
    EXPECT_LT(Clock::now() - t0, 2s);
    producer.join();
}

TEST(FrameQueue, SeveralProducersDeliverEveryFrameOnceAndEachLaneInOrder) {
    // One lane per producer thread, one consumer; small rings (many
    // wraparounds); at most 500 ms of pushing.
    constexpr std::size_t kProducers = 4;
    output::FrameQueue q(queue_limits(64, 2048, kProducers, 512));
    std::atomic<std::uint32_t> done{0};
    std::array<std::atomic<std::uint32_t>, kProducers> totals{};
    std::vector<std::thread> producers;
    for (std::size_t p = 0; p < kProducers; ++p) {
        producers.emplace_back([&, p] {
            const auto deadline = Clock::now() + 500ms;
            std::uint32_t i = 0;
            while (i < 100000 && Clock::now() < deadline) {
                // Frame: 4-byte producer id, then make_frame's index.
                Bytes f = make_frame(i, 4 + i % 61);
                f.insert(f.begin(), {0, 0, 0, static_cast<std::uint8_t>(p)});
                if (q.push(p, f, i % 2 ? OverflowPolicy::Block : OverflowPolicy::Drop) == Push::Queued) ++i;
                else std::this_thread::yield();
            }
            totals[p] = i;
            ++done;
        });
    }
    std::array<std::uint32_t, kProducers> expected{};
    bool ok = true;
    output::FrameQueue::Batch b;
    for (;;) {
        const bool finished = done.load() == kProducers;
        const std::size_t n = q.collect(b, 512);
        q.for_each_frame(b, [&](std::span<const std::uint8_t> f) {
            const std::size_t p = f[3];
            const Bytes rest(f.begin() + 4, f.end());
            if (p >= kProducers || rest != make_frame(expected[p], 4 + expected[p] % 61)) ok = false;
            else ++expected[p];
        });
        q.release(b);
        if (n == 0 && finished) break;
        if (n == 0) q.wait(Clock::now() + 10ms, true, [] { return false; });
    }
    for (auto& t : producers) t.join();
    EXPECT_TRUE(ok);
    for (std::size_t p = 0; p < kProducers; ++p) {
        EXPECT_EQ(expected[p], totals[p].load()) << "producer " << p;
        EXPECT_GT(expected[p], 100u);
    }
    EXPECT_EQ(q.size(), 0u);
    EXPECT_EQ(q.bytes(), 0u);
}

// ===================================================================== FileWriter

TEST(FileWriter, WritesStartFramesAndStopBytes) {
    const auto path = temp_dir() + "/out.dnstap";
    output::FileWriter writer({path, 0, {}});
    std::string error;
    ASSERT_TRUE(writer.open(error)) << error;
    const std::vector<Bytes> frames = {make_frame(1, 3), make_frame(2, 5000)};
    ASSERT_TRUE(write_framed(writer, framed(frames), error)) << error;
    writer.close();
    Bytes expected = hex("00000000 00000022 00000002 00000001 00000016");
    expected.insert(expected.end(), framestream::kDnstapContentType.begin(), framestream::kDnstapContentType.end());
    EXPECT_EQ(expected, kStart);
    const Bytes data_frames = framed(frames);
    expected.insert(expected.end(), data_frames.begin(), data_frames.end());
    const Bytes stop = hex("00000000 00000004 00000003");
    expected.insert(expected.end(), stop.begin(), stop.end());
    EXPECT_EQ(read_file(path), expected);
}

TEST(FileWriter, WritesABatchGivenInManyPiecesAsOneStream) {
    // The I/O thread hands over runs of several lanes and both ends of a
    // ring: more pieces than one writev() takes, some empty.
    const auto path = temp_dir() + "/pieces.dnstap";
    output::FileWriter writer({path, 0, {}});
    std::string error;
    ASSERT_TRUE(writer.open(error)) << error;
    std::vector<Bytes> frames;
    for (std::uint32_t i = 0; i < 150; ++i) frames.push_back(make_frame(i, 3 + i % 50));
    std::vector<Bytes> owned;
    for (const auto& f : frames) owned.push_back(framed({f}));
    std::vector<std::span<const std::uint8_t>> pieces;
    for (std::size_t i = 0; i < owned.size(); ++i) {
        pieces.emplace_back(owned[i]);
        if (i % 40 == 0) pieces.emplace_back();  // empty pieces are skipped
    }
    ASSERT_TRUE(writer.write(pieces, error)) << error;
    writer.close();
    const Stream st = parse_stream(read_file(path));
    ASSERT_TRUE(st.valid);
    EXPECT_EQ(st.frames, frames);
}

TEST(FileWriter, UnopenablePathIsAnErrorWithTheReason) {
    output::FileWriter writer({"/nonexistent-dir/x.dnstap", 0, {}});
    std::string error;
    EXPECT_FALSE(writer.open(error));
    EXPECT_EQ(error, "cannot open output /nonexistent-dir/x.dnstap: No such file or directory");
}

TEST(FileWriter, RotatesBySizeIntoFilesThatEachEndWithStopAndKeepEveryFrameInOrder) {
    const auto path = temp_dir() + "/rot.dnstap";
    output::FileWriter writer({path, 200, {}});
    std::string error;
    ASSERT_TRUE(writer.open(error)) << error;
    const auto now = Clock::now();
    int reopens = 0;
    for (std::uint32_t i = 0; i < 20; ++i) {
        if (writer.wants_reopen(now)) {
            writer.close();
            ASSERT_TRUE(writer.open(error)) << error;
            ++reopens;
        }
        ASSERT_TRUE(write_framed(writer, framed({make_frame(i, 40)}), error)) << error;
    }
    writer.close();
    EXPECT_GE(reopens, 4);
    auto files = rotated_files(path);
    EXPECT_EQ(files.size(), static_cast<std::size_t>(reopens));
    files.push_back(path);  // the newest file stays at the path
    std::vector<Bytes> all;
    for (const auto& f : files) {
        const Stream s = parse_stream(read_file(f));
        EXPECT_TRUE(s.starts_and_stops()) << f;
        EXPECT_FALSE(s.frames.empty()) << f;
        all.insert(all.end(), s.frames.begin(), s.frames.end());
    }
    EXPECT_EQ(indexes(all), iota_n(20));
}

TEST(FileWriter, RotatesByIntervalAndNamesFilesByTheirUtcStartTime) {
    const auto dir = temp_dir();
    const auto path = dir + "/t.dnstap";
    output::FileWriter writer({path, 0, 60000ms});
    std::string error;
    ASSERT_TRUE(writer.open(error)) << error;
    const std::time_t opened = std::time(nullptr);
    const auto now = Clock::now();
    EXPECT_FALSE(writer.wants_reopen(now));
    ASSERT_TRUE(write_framed(writer, framed({make_frame(0)}), error));
    EXPECT_TRUE(writer.wants_reopen(now + 61s));
    writer.close();
    ASSERT_TRUE(writer.open(error)) << error;
    ASSERT_TRUE(write_framed(writer, framed({make_frame(1)}), error));
    writer.close();
    const auto files = rotated_files(path);
    ASSERT_EQ(files.size(), 1u);
    // The stamp is the UTC open time (allow the second to have ticked).
    EXPECT_TRUE(files[0] == output::FileWriter::rotated_name(path, opened) ||
                files[0] == output::FileWriter::rotated_name(path, opened - 1))
        << files[0];
    EXPECT_EQ(output::FileWriter::rotated_name("/x/y", 0), "/x/y.19700101T000000");
    EXPECT_EQ(indexes(parse_stream(read_file(files[0])).frames), (std::vector<std::uint32_t>{0}));
    EXPECT_EQ(indexes(parse_stream(read_file(path)).frames), (std::vector<std::uint32_t>{1}));
}

TEST(FileWriter, ReopenNeverOverwritesAnExistingRotatedFile) {
    const auto path = temp_dir() + "/n.dnstap";
    output::FileWriter writer({path, 0, {}});
    std::string error;
    ASSERT_TRUE(writer.open(error));
    // Three reopens within (almost certainly) the same second.
    for (std::uint32_t i = 0; i < 4; ++i) {
        ASSERT_TRUE(write_framed(writer, framed({make_frame(i)}), error));
        writer.close();
        if (i < 3) {
            ASSERT_TRUE(writer.open(error)) << error;
        }
    }
    auto files = rotated_files(path);
    ASSERT_EQ(files.size(), 3u);
    files.push_back(path);
    std::vector<std::uint32_t> order;
    for (const auto& f : files) {
        const Stream s = parse_stream(read_file(f));
        EXPECT_TRUE(s.starts_and_stops()) << f;
        for (auto i : indexes(s.frames)) order.push_back(i);
    }
    EXPECT_EQ(order, iota_n(4));
}

TEST(FileWriter, ReopenAfterLogrotateMovedTheFileStartsAFreshFile) {
    const auto dir = temp_dir();
    const auto path = dir + "/lr.dnstap";
    output::FileWriter writer({path, 0, {}});
    std::string error;
    ASSERT_TRUE(writer.open(error));
    ASSERT_TRUE(write_framed(writer, framed({make_frame(0)}), error));
    ASSERT_EQ(std::rename(path.c_str(), (dir + "/lr.dnstap.1").c_str()), 0);  // logrotate
    EXPECT_TRUE(writer.reopen_on_request());
    writer.close();  // STOP goes to the moved file
    ASSERT_TRUE(writer.open(error));
    ASSERT_TRUE(write_framed(writer, framed({make_frame(1)}), error));
    writer.close();
    const Stream old_file = parse_stream(read_file(dir + "/lr.dnstap.1"));
    const Stream new_file = parse_stream(read_file(path));
    EXPECT_TRUE(old_file.starts_and_stops());
    EXPECT_TRUE(new_file.starts_and_stops());
    EXPECT_EQ(indexes(old_file.frames), (std::vector<std::uint32_t>{0}));
    EXPECT_EQ(indexes(new_file.frames), (std::vector<std::uint32_t>{1}));
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 2);  // nothing else renamed
}

// ------------------------------------------- targets that are not regular files

// Reads everything from a FIFO on a thread (opening it unblocks the writer's
// open), or stops after `limit` bytes and closes: a reader that goes away.
class FifoReader {
public:
    explicit FifoReader(std::string path, std::size_t limit = SIZE_MAX)
        : thread_([this, path = std::move(path), limit] {
              const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
              if (fd < 0) return;
              std::uint8_t buf[4096];
              while (data_.size() < limit) {
                  const ssize_t n = ::read(fd, buf, std::min(sizeof buf, limit - data_.size()));
                  if (n <= 0) break;
                  data_.insert(data_.end(), buf, buf + n);
              }
              ::close(fd);
          }) {}
    ~FifoReader() {
        if (thread_.joinable()) thread_.join();
    }
    Bytes take() {
        thread_.join();
        return data_;
    }

private:
    Bytes data_;
    std::thread thread_;
};

std::size_t entries_in(const std::string& dir) {
    return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator(dir), {}));
}

void ignore_sigpipe() { std::signal(SIGPIPE, SIG_IGN); }  // as the CLI does

TEST(FileWriter, AFifoIsWrittenInPlaceAndNeverRotatedRenamedOrReopened) {
    const auto dir = temp_dir();
    const auto path = dir + "/out.fifo";
    ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
    FifoReader reader(path);
    output::FileWriter writer({path, 100, 1ms});  // rotation asked for: it must not apply
    std::string error;
    testing::internal::CaptureStderr();
    ASSERT_TRUE(writer.open(error)) << error;
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find(path + " is a pipe (FIFO), not a regular file: it is never rotated, renamed or reopened"),
              std::string::npos)
        << log;
    EXPECT_FALSE(writer.reopen_on_request());
    EXPECT_FALSE(writer.reopen_after_failure());
    for (std::uint32_t i = 0; i < 20; ++i) {
        EXPECT_FALSE(writer.wants_reopen(Clock::now() + 1h));
        ASSERT_TRUE(write_framed(writer, framed({make_frame(i, 60)}), error)) << error;
    }
    EXPECT_TRUE(writer.close());
    const Stream s = parse_stream(reader.take());
    EXPECT_TRUE(s.starts_and_stops());
    EXPECT_EQ(indexes(s.frames), iota_n(20));
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
    EXPECT_EQ(entries_in(dir), 1u);  // nothing renamed, nothing created
}

TEST(FileWriter, AFifoWhoseReaderWentAwayIsAFinalFailureAndStaysAFifo) {
    ignore_sigpipe();
    const auto dir = temp_dir();
    const auto path = dir + "/gone.fifo";
    ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
    FifoReader reader(path, kStart.size());  // reads START, then goes away
    output::FileWriter writer({path, 0, {}});
    std::string error;
    ASSERT_TRUE(writer.open(error)) << error;
    EXPECT_EQ(reader.take(), kStart);
    bool failed = false;
    for (std::uint32_t i = 0; i < 100 && !failed; ++i) failed = !write_framed(writer, framed({make_frame(i, 1000)}), error);
    ASSERT_TRUE(failed);
    EXPECT_EQ(error, "write to " + path + " failed: Broken pipe (its reader went away)");
    EXPECT_FALSE(writer.reopen_after_failure());
    EXPECT_FALSE(writer.close());  // no STOP: the stream was cut
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
    EXPECT_EQ(entries_in(dir), 1u);
}

TEST(FileWriter, ASymlinkToDevNullIsNeverReplacedOrRotated) {
    const auto dir = temp_dir();
    const auto link = dir + "/null.dnstap";
    ASSERT_EQ(::symlink("/dev/null", link.c_str()), 0);
    output::FileWriter writer({link, 50, {}});
    std::string error;
    testing::internal::CaptureStderr();
    ASSERT_TRUE(writer.open(error)) << error;
    EXPECT_NE(testing::internal::GetCapturedStderr().find("is a character device"), std::string::npos);
    EXPECT_FALSE(writer.reopen_on_request());  // SIGHUP: nothing to do
    for (std::uint32_t i = 0; i < 10; ++i) {
        EXPECT_FALSE(writer.wants_reopen(Clock::now()));
        ASSERT_TRUE(write_framed(writer, framed({make_frame(i, 40)}), error)) << error;
    }
    EXPECT_TRUE(writer.close());
    char target[64] = {};
    ASSERT_GT(::readlink(link.c_str(), target, sizeof target - 1), 0);
    EXPECT_STREQ(target, "/dev/null");
    struct stat st {};
    ASSERT_EQ(::stat("/dev/null", &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    EXPECT_EQ(entries_in(dir), 1u);
}

TEST(FileWriter, DevFullIsAFinalFailureNotAFileToReplace) {
    // Through a link of our own: a writer that did rename its path must not
    // be able to touch the system's /dev.
    const auto link = temp_dir() + "/full.dnstap";
    ASSERT_EQ(::symlink("/dev/full", link.c_str()), 0);
    output::FileWriter writer({link, 0, {}});
    std::string error;
    EXPECT_FALSE(writer.open(error));  // START does not fit
    EXPECT_EQ(error, "cannot write START: write to " + link + " failed: No space left on device");
    struct stat st {};
    ASSERT_EQ(::stat("/dev/full", &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
}

TEST(FileWriter, ARegularFileReachedThroughProcIsNeverRotated) {
    const auto dir = temp_dir();
    const auto file = dir + "/held.dnstap";
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    const auto link = dir + "/fd.dnstap";
    ASSERT_EQ(::symlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), link.c_str()), 0);
    {
        output::FileWriter writer({link, 50, {}});
        std::string error;
        testing::internal::CaptureStderr();
        ASSERT_TRUE(writer.open(error)) << error;
        EXPECT_NE(testing::internal::GetCapturedStderr().find("is a descriptor reached through /proc"),
                  std::string::npos);
        EXPECT_FALSE(writer.reopen_on_request());
        for (std::uint32_t i = 0; i < 10; ++i) {
            EXPECT_FALSE(writer.wants_reopen(Clock::now()));
            ASSERT_TRUE(write_framed(writer, framed({make_frame(i, 40)}), error)) << error;
        }
        EXPECT_TRUE(writer.close());
    }
    ::close(fd);
    const Stream s = parse_stream(read_file(file));
    EXPECT_TRUE(s.starts_and_stops());
    EXPECT_EQ(indexes(s.frames), iota_n(10));
    EXPECT_EQ(entries_in(dir), 2u);  // the file and the link, nothing rotated
}

TEST(FileWriter, ASymlinkToARegularFileRotatesTheFileItPointsToAndKeepsTheLink) {
    const auto dir = temp_dir();
    std::filesystem::create_directories(dir + "/data");
    const auto link = dir + "/current.dnstap";
    ASSERT_EQ(::symlink("data/real.dnstap", link.c_str()), 0);  // relative, dangling until opened
    output::FileWriter writer({link, 150, {}});
    std::string error;
    ASSERT_TRUE(writer.open(error)) << error;
    EXPECT_TRUE(writer.reopen_on_request());
    int reopens = 0;
    for (std::uint32_t i = 0; i < 12; ++i) {
        if (writer.wants_reopen(Clock::now())) {
            EXPECT_TRUE(writer.close());
            ASSERT_TRUE(writer.open(error)) << error;
            ++reopens;
        }
        ASSERT_TRUE(write_framed(writer, framed({make_frame(i, 40)}), error)) << error;
    }
    EXPECT_TRUE(writer.close());
    EXPECT_GE(reopens, 3);
    char target[64] = {};
    ASSERT_GT(::readlink(link.c_str(), target, sizeof target - 1), 0);
    EXPECT_STREQ(target, "data/real.dnstap");
    EXPECT_EQ(entries_in(dir), 2u);  // the link and data/
    auto files = rotated_files(dir + "/data/real.dnstap");
    EXPECT_EQ(files.size(), static_cast<std::size_t>(reopens));
    files.push_back(dir + "/data/real.dnstap");
    std::vector<Bytes> all;
    for (const auto& f : files) {
        const Stream s = parse_stream(read_file(f));
        EXPECT_TRUE(s.starts_and_stops()) << f;
        all.insert(all.end(), s.frames.begin(), s.frames.end());
    }
    EXPECT_EQ(indexes(all), iota_n(12));
}

// ------------------------------------------------------------- full disk

// RLIMIT_FSIZE makes writes past `bytes` fail with EFBIG — a full disk for
// this process's files — for the lifetime of the object.
class FileSizeLimit {
public:
    explicit FileSizeLimit(std::uint64_t bytes) {
        ::getrlimit(RLIMIT_FSIZE, &old_);
        old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
        set(bytes);
    }
    ~FileSizeLimit() {
        ::setrlimit(RLIMIT_FSIZE, &old_);
        std::signal(SIGXFSZ, old_handler_);
    }
    void set(std::uint64_t bytes) {
        rlimit limit = old_;
        limit.rlim_cur = static_cast<rlim_t>(bytes);
        ::setrlimit(RLIMIT_FSIZE, &limit);
    }
    void lift() { ::setrlimit(RLIMIT_FSIZE, &old_); }

private:
    rlimit old_{};
    void (*old_handler_)(int) = SIG_DFL;
};

TEST(FileWriter, AFullFileEndsWithStopAfterTheLastWholeBatchAndIsResumedWhenThereIsRoom) {
    const auto dir = temp_dir();
    const auto path = dir + "/full.dnstap";
    const std::size_t framed_size = 4 + 100;
    // START, three frames and 20 bytes: the fourth frame does not fit, STOP does.
    FileSizeLimit limit(kStart.size() + 3 * framed_size + 20);
    output::FileWriter writer({path, 0, {}});
    std::string error;
    ASSERT_TRUE(writer.open(error)) << error;
    for (std::uint32_t i = 0; i < 3; ++i) ASSERT_TRUE(write_framed(writer, framed({make_frame(i, 100)}), error)) << error;
    EXPECT_FALSE(write_framed(writer, framed({make_frame(3, 100)}), error));
    EXPECT_NE(error.find("File too large"), std::string::npos) << error;
    EXPECT_TRUE(writer.reopen_after_failure());
    EXPECT_TRUE(writer.close());
    Stream s = parse_stream(read_file(path));
    EXPECT_TRUE(s.starts_and_stops());  // decodable, with every whole frame
    EXPECT_EQ(indexes(s.frames), iota_n(3));

    // Room again: the same file goes on (its STOP overwritten), no new file.
    limit.lift();
    ASSERT_TRUE(writer.open(error)) << error;
    ASSERT_TRUE(write_framed(writer, framed({make_frame(3, 100)}), error)) << error;
    ASSERT_TRUE(write_framed(writer, framed({make_frame(4, 3)}), error)) << error;  // shorter than STOP
    EXPECT_TRUE(writer.close());
    s = parse_stream(read_file(path));
    EXPECT_TRUE(s.starts_and_stops());
    EXPECT_EQ(indexes(s.frames), iota_n(5));
    EXPECT_EQ(entries_in(dir), 1u);
}

TEST(FileWriter, ARotationThatCannotStartANewFileRemovesItAndPutsThePreviousOneBack) {
    const auto dir = temp_dir();
    const auto path = dir + "/rot.dnstap";
    output::FileWriter writer({path, 0, {}});
    std::string error;
    ASSERT_TRUE(writer.open(error)) << error;
    ASSERT_TRUE(write_framed(writer, framed({make_frame(0, 100)}), error)) << error;
    EXPECT_TRUE(writer.close());
    {
        FileSizeLimit limit(20);  // not even START fits into a new file
        EXPECT_FALSE(writer.open(error));
        EXPECT_NE(error.find("cannot write START"), std::string::npos) << error;
        EXPECT_EQ(entries_in(dir), 1u) << "an empty or START-only file was left behind";
    }
    // The previous file is back at the path, whole, and is continued.
    EXPECT_EQ(indexes(parse_stream(read_file(path)).frames), iota_n(1));
    ASSERT_TRUE(writer.open(error)) << error;
    ASSERT_TRUE(write_framed(writer, framed({make_frame(1, 100)}), error)) << error;
    EXPECT_TRUE(writer.close());
    EXPECT_EQ(entries_in(dir), 1u);
    const Stream s = parse_stream(read_file(path));
    EXPECT_TRUE(s.starts_and_stops());
    EXPECT_EQ(indexes(s.frames), iota_n(2));
}

TEST(FileOutput, AFullFileIsGivenUpWithAStopTerminatedFileAndExactCounts) {
    const auto dir = temp_dir();
    const auto path = dir + "/full.dnstap";
    auto settings = fast_settings();
    settings.overflow = OverflowPolicy::Block;
    settings.write_buffer = 1024;
    settings.reconnect_attempts = 3;
    constexpr std::uint32_t kFrames = 200;
    output::OutputStats st;
    {
        // Batches end on whole 104-byte frames, so STOP (12) always fits in the last 50 bytes.
        FileSizeLimit limit(kStart.size() + 70 * 104 + 50);
        testing::internal::CaptureStderr();
        output::FileOutput out({path, 0, {}}, settings);
        for (std::uint32_t i = 0; i < kFrames; ++i) (void)out.write(make_frame(i, 100));
        out.close();
        const std::string log = testing::internal::GetCapturedStderr();
        EXPECT_NE(log.find("giving up on " + path + " after 3 failed attempts"), std::string::npos) << log;
        st = out.stats();
    }
    EXPECT_TRUE(st.failed);
    expect_exact_accounting(st, kFrames);
    EXPECT_GT(st.frames_dropped, 0u);
    const Stream s = parse_stream(read_file(path));
    EXPECT_TRUE(s.starts_and_stops());
    EXPECT_EQ(s.frames.size(), st.frames_written);
    EXPECT_EQ(indexes(s.frames), iota_n(static_cast<std::uint32_t>(st.frames_written)));
    EXPECT_EQ(entries_in(dir), 1u);  // no trail of rotated files
}

// ===================================================================== FileOutput (queued)

TEST(FileOutput, QueuedFileRotatesBySizeAndKeepsEveryFrameInOrder) {
    const auto path = temp_dir() + "/q.dnstap";
    auto settings = fast_settings();
    settings.write_buffer = 100;  // a batch of two 46-byte frames
    settings.overflow = OverflowPolicy::Block;
    {
        output::FileOutput out({path, 300, {}}, settings);
        for (std::uint32_t i = 0; i < 50; ++i) ASSERT_EQ(out.write(make_frame(i, 42)), WriteResult::Written);
        out.close();
        const auto st = out.stats();
        EXPECT_EQ(st.frames_written, 50u);
        EXPECT_EQ(st.bytes_written, 50u * 46);
        EXPECT_EQ(st.write_errors, 0u);
        expect_exact_accounting(st, 50);
    }
    auto files = rotated_files(path);
    EXPECT_GE(files.size(), 5u);
    files.push_back(path);
    std::vector<Bytes> all;
    for (const auto& f : files) {
        const Stream s = parse_stream(read_file(f));
        EXPECT_TRUE(s.starts_and_stops()) << f;
        all.insert(all.end(), s.frames.begin(), s.frames.end());
    }
    EXPECT_EQ(indexes(all), iota_n(50));
}

TEST(FileOutput, RequestReopenMovesOnToAFreshFileBetweenBatches) {
    const auto dir = temp_dir();
    const auto path = dir + "/hup.dnstap";
    auto settings = fast_settings();
    settings.overflow = OverflowPolicy::Block;
    output::FileOutput out({path, 0, {}}, settings);
    ASSERT_EQ(out.write(make_frame(0)), WriteResult::Written);
    out.flush();
    ASSERT_TRUE(eventually([&] { return out.stats().frames_written == 1; }));
    ASSERT_EQ(std::rename(path.c_str(), (dir + "/hup.old").c_str()), 0);  // logrotate
    out.request_reopen();
    ASSERT_TRUE(eventually([&] { return out.stats().reconnects == 1; }));
    ASSERT_EQ(out.write(make_frame(1)), WriteResult::Written);
    out.close();
    const Stream old_file = parse_stream(read_file(dir + "/hup.old"));
    const Stream new_file = parse_stream(read_file(path));
    EXPECT_TRUE(old_file.starts_and_stops());
    EXPECT_TRUE(new_file.starts_and_stops());
    EXPECT_EQ(indexes(old_file.frames), (std::vector<std::uint32_t>{0}));
    EXPECT_EQ(indexes(new_file.frames), (std::vector<std::uint32_t>{1}));
}

TEST(FileOutput, UnwritablePathThrowsAtConstruction) {
    EXPECT_THROW(output::FileOutput("/nonexistent-dir/y.dnstap"), std::runtime_error);
}

// ===================================================================== QueuedOutput

TEST(QueuedOutput, RefusesFramesOver96KiBAndEmptyFramesAndCountsThem) {
    auto script = std::make_shared<Script>();
    output::QueuedOutput out(std::make_unique<ScriptedWriter>(script), fast_settings());
    EXPECT_EQ(out.write(Bytes(96 * 1024 + 1, 1)), WriteResult::TooLarge);
    EXPECT_EQ(out.write({}), WriteResult::TooLarge);
    EXPECT_EQ(out.write(make_frame(0, 96 * 1024)), WriteResult::Written);  // exactly the limit is fine
    out.close();
    const auto st = out.stats();
    EXPECT_EQ(st.frames_too_large, 2u);
    EXPECT_EQ(st.frames_written, 1u);
    expect_exact_accounting(st, 3);
    EXPECT_EQ(script->frames.size(), 1u);
    EXPECT_EQ(script->closes, 1);
}

TEST(QueuedOutput, FlushIntervalWritesAPartialBatchWithoutBeingAsked) {
    auto script = std::make_shared<Script>();
    auto settings = fast_settings();
    settings.write_buffer = 1 << 20;
    output::QueuedOutput out(std::make_unique<ScriptedWriter>(script), settings);
    for (std::uint32_t i = 0; i < 3; ++i) ASSERT_EQ(out.write(make_frame(i)), WriteResult::Written);
    EXPECT_TRUE(wait_for(script->m, script->cv, 1000ms, [&] { return script->frames.size() == 3; }));
    out.close();
}

TEST(QueuedOutput, AFullWriteBufferIsWrittenBeforeTheFlushInterval) {
    auto script = std::make_shared<Script>();
    auto settings = fast_settings();
    settings.flush_interval = 60000ms;
    settings.write_buffer = 360;  // ten 36-byte framed frames
    output::QueuedOutput out(std::make_unique<ScriptedWriter>(script), settings);
    for (std::uint32_t i = 0; i < 10; ++i) ASSERT_EQ(out.write(make_frame(i)), WriteResult::Written);
    EXPECT_TRUE(wait_for(script->m, script->cv, 1000ms, [&] { return script->frames.size() == 10; }));
    out.close();
}

TEST(QueuedOutput, AFailedBatchIsSentAgainAfterReopeningWithoutLossOrDuplicates) {
    auto script = std::make_shared<Script>();
    script->fail_write_number = 2;
    auto settings = fast_settings();
    settings.write_buffer = 72;  // two frames per batch
    settings.overflow = OverflowPolicy::Block;
    output::QueuedOutput out(std::make_unique<ScriptedWriter>(script), settings);
    for (std::uint32_t i = 0; i < 20; ++i) ASSERT_EQ(out.write(make_frame(i)), WriteResult::Written);
    out.close();
    const auto st = out.stats();
    EXPECT_EQ(indexes(script->frames), iota_n(20));
    EXPECT_EQ(st.write_errors, 1u);
    EXPECT_EQ(st.reconnects, 1u);
    EXPECT_EQ(script->opens, 2);
    EXPECT_EQ(script->closes, 2);
    expect_exact_accounting(st, 20);
}

TEST(QueuedOutput, ReconnectsWithGrowingJitteredBackoffBetweenInitialAndMax) {
    auto script = std::make_shared<Script>();
    script->fail_opens = 6;
    auto settings = fast_settings();
    settings.reconnect_initial = 10ms;
    settings.reconnect_max = 40ms;
    output::QueuedOutput out(std::make_unique<ScriptedWriter>(script), settings);
    ASSERT_TRUE(wait_for(script->m, script->cv, 1500ms, [&] { return script->opens == 1; }));
    std::vector<Clock::time_point> times;
    {
        std::lock_guard l(script->m);
        times = script->open_times;
    }
    ASSERT_EQ(times.size(), 7u);
    for (std::size_t i = 1; i < times.size(); ++i) {
        const auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(times[i] - times[i - 1]);
        EXPECT_GE(gap.count(), 10) << "attempt " << i;
        EXPECT_LE(gap.count(), 40 + 30) << "attempt " << i;  // max plus scheduling slack
    }
    out.close();
    EXPECT_EQ(out.stats().reconnects, 0u);  // the first successful open is not a reconnect
    EXPECT_EQ(out.stats().write_errors, 0u);
}

TEST(QueuedOutput, GivesUpAfterReconnectAttemptsAndDropsLaterFrames) {
    auto script = std::make_shared<Script>();
    script->fail_all_opens = true;
    auto settings = fast_settings();
    settings.reconnect_attempts = 3;
    testing::internal::CaptureStderr();
    output::QueuedOutput out(std::make_unique<ScriptedWriter>(script), settings);
    ASSERT_EQ(out.write(make_frame(0)), WriteResult::Written);
    ASSERT_TRUE(wait_for(script->m, script->cv, 1000ms, [&] { return script->open_attempts == 3; }));
    // failed is set right after the third attempt returns.
    EXPECT_TRUE(eventually([&] { return out.stats().failed; }));
    EXPECT_EQ(out.write(make_frame(1)), WriteResult::Failed);
    out.close();
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find("sidetap: giving up on scripted after 3 failed attempts: scripted open failure"),
              std::string::npos)
        << log;
    EXPECT_NE(log.find("sidetap: dropped 2 messages for scripted in the last"), std::string::npos) << log;
    const auto st = out.stats();
    EXPECT_EQ(st.frames_dropped, 2u);
    EXPECT_FALSE(st.connected);
    expect_exact_accounting(st, 2);
    EXPECT_EQ(script->open_attempts, 3);
}

TEST(QueuedOutput, BlockPolicyWaitsForRoomInsteadOfDropping) {
    auto script = std::make_shared<Script>();
    script->gated = true;
    auto settings = fast_settings();
    settings.queue_frames = 4;
    settings.write_buffer = 36;  // one frame per batch
    settings.overflow = OverflowPolicy::Block;
    output::QueuedOutput out(std::make_unique<ScriptedWriter>(script), settings);
    auto producer = std::async(std::launch::async, [&] {
        for (std::uint32_t i = 0; i < 12; ++i)
            if (out.write(make_frame(i)) != WriteResult::Written) return false;
        return true;
    });
    // The I/O thread is stuck in the first write and the queue is full:
    // the producer must be waiting, not dropping.
    ASSERT_TRUE(wait_for(script->m, script->cv, 1000ms, [&] { return script->inside_write; }));
    EXPECT_EQ(producer.wait_for(50ms), std::future_status::timeout);
    EXPECT_EQ(out.stats().frames_dropped, 0u);
    EXPECT_EQ(out.stats().queue_depth, 4u);
    script->open_gate();
    EXPECT_TRUE(producer.get());
    out.close();
    EXPECT_EQ(indexes(script->frames), iota_n(12));
    expect_exact_accounting(out.stats(), 12);
    EXPECT_EQ(out.stats().frames_dropped, 0u);
}

TEST(QueuedOutput, BlockPolicyStopsWaitingWhenTheOutputGivesUp) {
    auto script = std::make_shared<Script>();
    script->fail_all_opens = true;
    auto settings = fast_settings();
    settings.queue_frames = 4;
    settings.reconnect_attempts = 3;
    settings.overflow = OverflowPolicy::Block;
    testing::internal::CaptureStderr();
    output::QueuedOutput out(std::make_unique<ScriptedWriter>(script), settings);
    const auto start = Clock::now();
    std::vector<WriteResult> results;
    for (std::uint32_t i = 0; i < 10; ++i) results.push_back(out.write(make_frame(i)));
    EXPECT_LT(Clock::now() - start, 1500ms);
    out.close();
    testing::internal::GetCapturedStderr();
    EXPECT_EQ(std::count(results.begin(), results.end(), WriteResult::Written), 4);
    EXPECT_EQ(std::count(results.begin(), results.end(), WriteResult::Failed), 6);
    const auto st = out.stats();
    EXPECT_TRUE(st.failed);
    EXPECT_EQ(st.frames_dropped, 10u);
    expect_exact_accounting(st, 10);
}

TEST(QueuedOutput, DropPolicyDropsAndCountsWhenTheQueueIsFull) {
    auto script = std::make_shared<Script>();
    script->gated = true;
    auto settings = fast_settings();
    settings.queue_frames = 8;
    output::QueuedOutput out(std::make_unique<ScriptedWriter>(script), settings);
    int dropped = 0;
    for (std::uint32_t i = 0; i < 100; ++i)
        if (out.write(make_frame(i)) == WriteResult::Dropped) ++dropped;
    EXPECT_GE(dropped, 100 - 8 - 1);  // at most one batch left the queue before the gate
    EXPECT_EQ(out.stats().frames_dropped, static_cast<std::uint64_t>(dropped));
    script->open_gate();
    out.close();
    const auto st = out.stats();
    EXPECT_EQ(st.frames_written, 100u - static_cast<std::uint64_t>(dropped));
    expect_exact_accounting(st, 100);
}

TEST(QueuedOutput, RequestReopenReopensOnlyWritersThatWantIt) {
    auto script = std::make_shared<Script>();
    output::QueuedOutput out(std::make_unique<ScriptedWriter>(script), fast_settings());
    ASSERT_TRUE(wait_for(script->m, script->cv, 1000ms, [&] { return script->opens == 1; }));
    out.request_reopen();  // reopen_on_request() is false: nothing happens
    {
        std::lock_guard l(script->m);
        script->reopen_on_request = true;
    }
    out.request_reopen();
    EXPECT_TRUE(wait_for(script->m, script->cv, 1000ms, [&] { return script->opens == 2; }));
    out.close();
    EXPECT_EQ(script->opens, 2);
    EXPECT_EQ(script->closes, 2);
    EXPECT_EQ(out.stats().reconnects, 1u);
}

TEST(QueuedOutput, CloseIsIdempotentAndWritesAfterCloseAreCounted) {
    auto script = std::make_shared<Script>();
    output::QueuedOutput out(std::make_unique<ScriptedWriter>(script), fast_settings());
    ASSERT_EQ(out.write(make_frame(0)), WriteResult::Written);
    out.close();
    out.close();
    EXPECT_EQ(out.write(make_frame(1)), WriteResult::Failed);
    const auto st = out.stats();
    EXPECT_EQ(st.frames_written, 1u);
    EXPECT_EQ(st.frames_dropped, 1u);
    EXPECT_EQ(script->closes, 1);
    EXPECT_EQ(out.name(), "scripted");
}

TEST(QueuedOutput, AccountingIsExactUnderConcurrentStatsReadsAndRandomFailures) {
    auto script = std::make_shared<Script>();
    script->fail_write_number = 5;
    auto settings = fast_settings();
    settings.queue_frames = 32;
    settings.write_buffer = 200;
    output::QueuedOutput out(std::make_unique<ScriptedWriter>(script), settings);
    std::atomic<bool> done{false};
    std::thread reader([&] {
        while (!done) {
            const auto st = out.stats();
            EXPECT_LE(st.queue_depth, 32u);
            std::this_thread::yield();
        }
    });
    std::uint64_t given = 0;
    for (std::uint32_t i = 0; i < 5000; ++i, ++given) {
        const std::size_t size = i % 500 == 0 ? 100 * 1024 : 20 + i % 50;
        (void)out.write(make_frame(i, size));
    }
    out.close();
    done = true;
    reader.join();
    const auto st = out.stats();
    expect_exact_accounting(st, given);
    EXPECT_EQ(st.frames_too_large, 10u);
    EXPECT_EQ(st.frames_written, script->frames.size());
    // What was written is in order, without duplicates.
    const auto got = indexes(script->frames);
    EXPECT_TRUE(std::is_sorted(got.begin(), got.end()));
    EXPECT_EQ(std::adjacent_find(got.begin(), got.end()), got.end());
}

TEST(QueuedOutput, AWriterWhoseFailuresAreFinalGivesUpAtOnceWithoutReopening) {
    auto script = std::make_shared<Script>();
    script->fail_write_number = 1;
    script->final_failures = true;
    auto settings = fast_settings();
    settings.overflow = OverflowPolicy::Block;  // and still no hang
    testing::internal::CaptureStderr();
    output::QueuedOutput out(std::make_unique<ScriptedWriter>(script), settings);
    for (std::uint32_t i = 0; i < 10; ++i) (void)out.write(make_frame(i));
    out.flush();
    EXPECT_TRUE(eventually([&] { return out.stats().failed; }));
    out.close();
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find("sidetap: scripted failed: scripted write failure; further messages are dropped"),
              std::string::npos)
        << log;
    EXPECT_EQ(log.find("retrying"), std::string::npos) << log;
    const auto st = out.stats();
    EXPECT_TRUE(st.failed);
    EXPECT_EQ(st.frames_written, 0u);
    EXPECT_EQ(st.frames_dropped, 10u);
    expect_exact_accounting(st, 10);
    EXPECT_EQ(script->opens, 1);  // never reopened: no second START
    EXPECT_EQ(script->closes, 1);
}

TEST(QueuedOutput, FramesStillQueuedAtCloseMakeTheOutputFailed) {
    auto script = std::make_shared<Script>();
    script->fail_all_opens = true;  // a collector that never comes; no attempt limit
    auto settings = fast_settings();
    settings.drain_timeout = 50ms;
    testing::internal::CaptureStderr();
    output::QueuedOutput out(std::make_unique<ScriptedWriter>(script), settings);
    for (std::uint32_t i = 0; i < 5; ++i) ASSERT_EQ(out.write(make_frame(i)), WriteResult::Written);
    out.close();
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find("sidetap: scripted: 5 messages could not be delivered before exit"), std::string::npos) << log;
    const auto st = out.stats();
    EXPECT_TRUE(st.failed);
    EXPECT_EQ(st.frames_dropped, 5u);
    expect_exact_accounting(st, 5);
}

TEST(QueuedOutput, NothingQueuedAtCloseIsNotAFailureEvenAfterOutages) {
    auto script = std::make_shared<Script>();
    script->fail_opens = 2;
    output::QueuedOutput out(std::make_unique<ScriptedWriter>(script), fast_settings());
    testing::internal::CaptureStderr();
    for (std::uint32_t i = 0; i < 5; ++i) ASSERT_EQ(out.write(make_frame(i)), WriteResult::Written);
    out.close();
    testing::internal::GetCapturedStderr();
    EXPECT_FALSE(out.stats().failed);
    EXPECT_EQ(out.stats().frames_written, 5u);
}

TEST(QueuedOutput, AStreamThatCouldNotBeEndedMakesTheOutputFailed) {
    auto script = std::make_shared<Script>();
    script->close_result = false;  // e.g. a file whose STOP could not be written
    output::QueuedOutput out(std::make_unique<ScriptedWriter>(script), fast_settings());
    ASSERT_EQ(out.write(make_frame(0)), WriteResult::Written);
    out.close();
    EXPECT_TRUE(out.stats().failed);
    EXPECT_EQ(out.stats().frames_written, 1u);
}

TEST(QueuedOutput, OpensThatNeverGetABatchThroughCountTowardGivingUp) {
    auto script = std::make_shared<Script>();
    script->fail_all_writes = true;  // opens work, every write fails (a disk still full)
    auto settings = fast_settings();
    settings.reconnect_attempts = 3;
    settings.overflow = OverflowPolicy::Block;
    testing::internal::CaptureStderr();
    output::QueuedOutput out(std::make_unique<ScriptedWriter>(script), settings);
    for (std::uint32_t i = 0; i < 5; ++i) (void)out.write(make_frame(i));
    out.flush();
    ASSERT_TRUE(eventually([&] { return out.stats().failed; }));
    out.close();
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find("giving up on scripted after 3 failed attempts: scripted write failure"), std::string::npos)
        << log;
    EXPECT_EQ(script->opens, 3);
    expect_exact_accounting(out.stats(), 5);
    EXPECT_EQ(out.stats().frames_dropped, 5u);
}

// ===================================================================== several producers

TEST(QueuedOutput, ShardsWritingIntoOneFileLoseAndDuplicateNothing) {
    // Four capture shards, each with its own producer lane of one file
    // output, write at once (block: nothing may be lost); half of them
    // encode in place (reserve/commit). The file holds every frame exactly
    // once, each shard's in its order.
    constexpr std::uint32_t kShards = 4;
    constexpr std::uint32_t kFrames = 20000;
    const auto path = temp_dir() + "/shards.dnstap";
    auto settings = fast_settings();
    settings.producers = kShards;
    settings.queue_frames = 64;  // small lanes: producers wait for room often
    settings.queue_bytes = 64 << 10;
    settings.write_buffer = 4096;
    settings.overflow = OverflowPolicy::Block;
    {
        output::FileOutput out({path, 0, {}}, settings);
        ASSERT_EQ(out.producers(), kShards);
        std::vector<std::thread> shards;
        for (std::uint32_t s = 0; s < kShards; ++s) {
            shards.emplace_back([&, s] {
                output::FrameSink& sink = out.producer(s);
                for (std::uint32_t i = 0; i < kFrames; ++i) {
                    const Bytes f = make_frame(s << 24 | i, 8 + (i * 31 + s) % 300);
                    if (s % 2 == 0) {
                        ASSERT_EQ(sink.write(f), WriteResult::Written);
                        continue;
                    }
                    WriteResult r = WriteResult::Failed;
                    std::uint8_t* dst = sink.reserve(f.size(), r);
                    ASSERT_NE(dst, nullptr);
                    std::memcpy(dst, f.data(), f.size());
                    sink.commit();
                }
            });
        }
        for (auto& t : shards) t.join();
        out.close();
        expect_exact_accounting(out.stats(), kShards * kFrames);
        EXPECT_EQ(out.stats().frames_written, kShards * kFrames);
    }
    const Stream st = parse_stream(read_file(path));
    ASSERT_TRUE(st.valid);
    ASSERT_EQ(st.frames.size(), kShards * kFrames);
    std::array<std::uint32_t, kShards> next{};
    for (const auto& f : st.frames) {
        const std::uint32_t id = index_of(f);
        const std::uint32_t s = id >> 24, i = id & 0xffffff;
        ASSERT_LT(s, kShards);
        ASSERT_EQ(i, next[s]) << "shard " << s << ": lost, duplicated or reordered";
        ASSERT_EQ(f, make_frame(id, 8 + (i * 31 + s) % 300));
        ++next[s];
    }
}

TEST(QueuedOutput, ShardsThatOverrunTheirLanesDropAndCountWithoutDuplicates) {
    // Drop policy, a writer slower than the producers: every frame is either
    // in the file once or counted as dropped.
    constexpr std::uint32_t kShards = 3;
    constexpr std::uint32_t kFrames = 5000;
    auto script = std::make_shared<Script>();
    auto settings = fast_settings();
    settings.producers = kShards;
    settings.queue_frames = 30;
    settings.write_buffer = 1024;
    output::QueuedOutput out(std::make_unique<ScriptedWriter>(script), settings);
    std::vector<std::thread> shards;
    std::array<std::uint64_t, kShards> dropped{};
    for (std::uint32_t s = 0; s < kShards; ++s)
        shards.emplace_back([&, s] {
            for (std::uint32_t i = 0; i < kFrames; ++i)
                if (out.producer(s).write(make_frame(s << 24 | i, 40)) == WriteResult::Dropped) ++dropped[s];
        });
    for (auto& t : shards) t.join();
    out.close();
    const auto stats = out.stats();
    expect_exact_accounting(stats, kShards * kFrames);
    EXPECT_EQ(stats.frames_dropped, dropped[0] + dropped[1] + dropped[2]);
    std::lock_guard l(script->m);
    EXPECT_EQ(script->frames.size(), stats.frames_written);
    std::set<std::uint32_t> seen;
    std::array<std::int64_t, kShards> last{-1, -1, -1};
    for (const auto& f : script->frames) {
        const std::uint32_t id = index_of(f);
        EXPECT_TRUE(seen.insert(id).second) << "duplicate " << id;
        const std::uint32_t s = id >> 24;
        ASSERT_LT(s, kShards);
        EXPECT_GT(static_cast<std::int64_t>(id & 0xffffff), last[s]) << "shard " << s << " out of order";
        last[s] = id & 0xffffff;
    }
}

// ===================================================================== SocketWriter / socket outputs

TEST(SocketWriter, HandshakeDataStopAndFinishBytesAreExact) {
    const auto sock = temp_dir() + "/c.sock";
    Collector collector(sock, {});
    auto settings = fast_settings();
    settings.finish_timeout = 5000ms;  // close() returning early proves FINISH arrived
    output::SocketWriter writer(test_connector(sock), settings);
    EXPECT_EQ(writer.describe(), "unix://" + sock);
    std::string error;
    ASSERT_TRUE(writer.open(error)) << error;
    const std::vector<Bytes> frames = {make_frame(0, 10), make_frame(1, 300)};
    ASSERT_TRUE(write_framed(writer, framed(frames), error)) << error;
    EXPECT_FALSE(writer.broken());
    const auto start = Clock::now();
    writer.close();
    EXPECT_LT(Clock::now() - start, 2000ms);
    ASSERT_TRUE(collector.wait(2000ms, [](Collector& c) { return c.stops == 1; }));
    Bytes expected = hex("00000000 00000022 00000004 00000001 00000016");  // READY
    expected.insert(expected.end(), framestream::kDnstapContentType.begin(), framestream::kDnstapContentType.end());
    expected.insert(expected.end(), kStart.begin(), kStart.end());
    const Bytes data = framed(frames);
    expected.insert(expected.end(), data.begin(), data.end());
    expected.insert(expected.end(), kStop.begin(), kStop.end());
    EXPECT_EQ(collector.raw_snapshot(0), expected);
}

TEST(SocketWriter, AcceptWithoutTheDnstapContentTypeIsAnError) {
    const auto sock = temp_dir() + "/c.sock";
    Collector collector(sock, {.bad_accepts = 1});
    output::SocketWriter writer(test_connector(sock), fast_settings());
    std::string error;
    EXPECT_FALSE(writer.open(error));
    EXPECT_EQ(error, "collector accepted content types [protobuf:other.Thing, text:plain] but not "
                     "protobuf:dnstap.Dnstap");
}

TEST(SocketWriter, NoCollectorIsAnErrorFromTheConnector) {
    const auto sock = temp_dir() + "/none.sock";
    output::SocketWriter writer(test_connector(sock), fast_settings());
    std::string error;
    EXPECT_FALSE(writer.open(error));
    EXPECT_NE(error.find("connect to " + sock), std::string::npos) << error;
}

TEST(SocketOutput, WrongContentTypeIsRetriedUntilTheCollectorAcceptsDnstap) {
    const auto sock = temp_dir() + "/c.sock";
    Collector collector(sock, {.bad_accepts = 2});
    testing::internal::CaptureStderr();
    auto out = output::make_socket_output(test_connector(sock), fast_settings());
    for (std::uint32_t i = 0; i < 5; ++i) ASSERT_EQ(out->write(make_frame(i)), WriteResult::Written);
    out->close();
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find("collector accepted content types [protobuf:other.Thing, text:plain] but not "
                       "protobuf:dnstap.Dnstap; retrying"),
              std::string::npos)
        << log;
    ASSERT_TRUE(collector.wait(1000ms, [](Collector& c) { return c.stops == 1; }));
    EXPECT_EQ(indexes(collector.frames_snapshot()), iota_n(5));
    EXPECT_EQ(collector.connections, 3);
    const auto st = out->stats();
    EXPECT_EQ(st.frames_written, 5u);
    EXPECT_EQ(st.reconnects, 0u);
    expect_exact_accounting(st, 5);
}

TEST(SocketOutput, CollectorAbsentAtStartIsRetriedAndGetsEverythingWhenItAppears) {
    const auto sock = temp_dir() + "/late.sock";
    auto log = std::make_shared<ConnectLog>();
    testing::internal::CaptureStderr();
    auto out = output::make_socket_output(test_connector(sock, log), fast_settings());
    for (std::uint32_t i = 0; i < 10; ++i) ASSERT_EQ(out->write(make_frame(i)), WriteResult::Written);
    ASSERT_TRUE(wait_for(log->m, log->cv, 1000ms, [&] { return log->attempts >= 2; }));
    EXPECT_FALSE(out->stats().connected);
    EXPECT_EQ(out->stats().queue_depth, 10u);
    Collector collector(sock, {});
    ASSERT_TRUE(collector.wait(1000ms, [](Collector& c) { return c.started == 1; }));
    out->close();
    const std::string stderr_text = testing::internal::GetCapturedStderr();
    // The first connection is not a "reconnect"; the failed attempts are counted.
    EXPECT_NE(stderr_text.find(": connected\n"), std::string::npos) << stderr_text;
    ASSERT_TRUE(collector.wait(1000ms, [](Collector& c) { return c.stops == 1; }));
    EXPECT_EQ(indexes(collector.frames_snapshot()), iota_n(10));
    expect_exact_accounting(out->stats(), 10);
    EXPECT_EQ(out->stats().frames_written, 10u);
    EXPECT_EQ(out->stats().reconnects, 0u);
    EXPECT_GE(out->stats().open_failures, 1u);  // the 2nd attempt may race with the collector start
}

TEST(SocketOutput, CollectorClosingMidStreamGetsAFreshHandshakeAndNoFrameIsLostOrDuplicated) {
    const auto sock = temp_dir() + "/mid.sock";
    Collector collector(sock, {.close_first_after = 10});
    testing::internal::CaptureStderr();
    auto out = output::make_socket_output(test_connector(sock), fast_settings());
    for (std::uint32_t i = 0; i < 10; ++i) ASSERT_EQ(out->write(make_frame(i)), WriteResult::Written);
    out->flush();
    // The collector reads all ten frames, then hangs up.
    ASSERT_TRUE(collector.wait(1000ms, [](Collector& c) { return c.first_closed == 1; }));
    for (std::uint32_t i = 10; i < 20; ++i) ASSERT_EQ(out->write(make_frame(i)), WriteResult::Written);
    out->close();
    testing::internal::GetCapturedStderr();
    ASSERT_TRUE(collector.wait(1000ms, [](Collector& c) { return c.stops == 1; }));
    EXPECT_EQ(indexes(collector.frames_snapshot()), iota_n(20));
    EXPECT_EQ(collector.connections, 2);
    // The second connection starts with its own READY and START.
    const Bytes second = collector.raw_snapshot(1);
    const Bytes ready_start = [] {
        Bytes b = control(framestream::ControlType::Ready, true);
        b.insert(b.end(), kStart.begin(), kStart.end());
        return b;
    }();
    ASSERT_GE(second.size(), ready_start.size());
    EXPECT_TRUE(std::equal(ready_start.begin(), ready_start.end(), second.begin()));
    const auto st = out->stats();
    EXPECT_EQ(st.frames_written, 20u);
    EXPECT_EQ(st.reconnects, 1u);
    EXPECT_EQ(st.write_errors, 1u);
    expect_exact_accounting(st, 20);
}

TEST(SocketOutput, CollectorThatNeverReadsFillsTheQueueAndWritesStayFast) {
    const auto sock = temp_dir() + "/stuck.sock";
    Collector collector(sock, {.never_read = true});
    auto settings = fast_settings();
    settings.queue_frames = 64;
    settings.drain_timeout = 200ms;
    settings.finish_timeout = 100ms;
    testing::internal::CaptureStderr();
    auto out = output::make_socket_output(test_connector(sock, nullptr, 100ms), settings);
    ASSERT_TRUE(collector.wait(1000ms, [](Collector& c) { return c.started == 1; }));
    auto slowest = Clock::duration::zero();
    std::uint64_t dropped = 0;
    constexpr std::uint32_t kFrames = 20000;
    for (std::uint32_t i = 0; i < kFrames; ++i) {
        const auto t0 = Clock::now();
        if (out->write(make_frame(i, 1000)) == WriteResult::Dropped) ++dropped;
        slowest = std::max(slowest, Clock::now() - t0);
    }
    EXPECT_GT(dropped, 0u);
    // A producer held up by the stuck collector would wait until close();
    // the bound only leaves room for a loaded machine or a sanitizer build.
    EXPECT_LT(slowest, 500ms);
    const auto t0 = Clock::now();
    out->close();
    // drain_timeout + the transport's write timeout + finish_timeout, plus slack.
    EXPECT_LT(Clock::now() - t0, 800ms);
    testing::internal::GetCapturedStderr();
    const auto st = out->stats();
    EXPECT_GE(st.frames_dropped, dropped);
    expect_exact_accounting(st, kFrames);
}

TEST(SocketOutput, CloseWithAStuckCollectorReturnsWithinTheDrainTimeout) {
    const auto sock = temp_dir() + "/stuck2.sock";
    Collector collector(sock, {.never_read = true});
    auto settings = fast_settings();
    settings.overflow = OverflowPolicy::Block;
    settings.queue_frames = 100000;
    settings.drain_timeout = 300ms;
    settings.finish_timeout = 100ms;
    testing::internal::CaptureStderr();
    auto out = output::make_socket_output(test_connector(sock, nullptr, 100ms), settings);
    // Far more than the socket buffers hold: the queue cannot drain.
    for (std::uint32_t i = 0; i < 5000; ++i) ASSERT_EQ(out->write(make_frame(i, 2000)), WriteResult::Written);
    const auto t0 = Clock::now();
    out->close();
    const auto took = Clock::now() - t0;
    testing::internal::GetCapturedStderr();
    EXPECT_LT(took, 300ms + 100ms + 100ms + 300ms);
    const auto st = out->stats();
    EXPECT_GT(st.frames_dropped, 0u);  // what was left at the deadline
    expect_exact_accounting(st, 5000);
}

TEST(SocketOutput, ACollectorThatDiesMidStreamLeavesWhatItHadNotReadUnconfirmed) {
    const auto sock = temp_dir() + "/dies.sock";
    Collector collector(sock, {.park_after = 7});
    auto settings = fast_settings();
    settings.write_buffer = 36;  // one 32-byte frame per batch
    settings.reconnect_attempts = 2;
    testing::internal::CaptureStderr();
    // The real Unix transport: it can tell what the collector has read.
    auto out = output::make_socket_output(output::make_unix_connector(sock), settings);
    // Seven frames, all read: the collector has caught up...
    for (std::uint32_t i = 0; i < 7; ++i) ASSERT_EQ(out->write(make_frame(i)), WriteResult::Written);
    ASSERT_TRUE(collector.wait(1000ms, [](Collector& c) { return c.parked == 1; }));
    // ... then hangs: thirteen more go into its socket buffer, unread.
    for (std::uint32_t i = 7; i < 20; ++i) ASSERT_EQ(out->write(make_frame(i)), WriteResult::Written);
    ASSERT_TRUE(eventually([&] { return out->stats().frames_written == 20; }));
    collector.kill_parked();  // and dies with them
    ASSERT_TRUE(eventually([&] { return out->stats().frames_unconfirmed != 0; }));
    out->close();
    const std::string log = testing::internal::GetCapturedStderr();
    const auto st = out->stats();
    EXPECT_EQ(st.frames_written, 20u);
    EXPECT_EQ(st.frames_unconfirmed, 13u);
    EXPECT_EQ(collector.frames_snapshot().size(), 7u);
    EXPECT_NE(log.find("13 messages written before the connection ended were not confirmed as read by the "
                       "collector (Frame Streams has no acknowledgements): they may be lost"),
              std::string::npos)
        << log;
}

TEST(SocketOutput, AStreamThatEndsWithFinishLeavesNothingUnconfirmed) {
    const auto sock = temp_dir() + "/fin.sock";
    Collector collector(sock, {});
    auto out = output::make_socket_output(output::make_unix_connector(sock), fast_settings());
    for (std::uint32_t i = 0; i < 50; ++i) ASSERT_EQ(out->write(make_frame(i)), WriteResult::Written);
    out->close();
    ASSERT_TRUE(collector.wait(1000ms, [](Collector& c) { return c.stops == 1; }));
    EXPECT_EQ(out->stats().frames_written, 50u);
    EXPECT_EQ(out->stats().frames_unconfirmed, 0u);
    EXPECT_FALSE(out->stats().failed);
}

TEST(SocketOutput, WithoutReadConfirmationsEveryFrameOfABrokenConnectionIsUnconfirmed) {
    // The in-test connection cannot tell what was read (like TCP and TLS).
    const auto sock = temp_dir() + "/mid2.sock";
    Collector collector(sock, {.close_first_after = 10});
    testing::internal::CaptureStderr();
    auto out = output::make_socket_output(test_connector(sock), fast_settings());
    for (std::uint32_t i = 0; i < 10; ++i) ASSERT_EQ(out->write(make_frame(i)), WriteResult::Written);
    out->flush();
    ASSERT_TRUE(collector.wait(1000ms, [](Collector& c) { return c.first_closed == 1; }));
    ASSERT_TRUE(eventually([&] { return out->stats().frames_unconfirmed == 10; }));
    out->close();
    testing::internal::GetCapturedStderr();
    EXPECT_EQ(out->stats().frames_unconfirmed, 10u);  // an upper bound: this collector did read them
}

// Partial writes: every byte of every piece is described exactly once, in
// order, whatever the sizes a writer's calls take; empty pieces are skipped.
TEST(GatherCursor, DescribesEveryByteOnceAcrossPartialWritesAndEmptyPieces) {
    std::vector<std::vector<std::uint8_t>> storage = {{}, {1, 2, 3}, {}, {4}, {5, 6, 7, 8, 9}, {}};
    for (std::size_t step = 1; step <= 10; ++step) {
        std::vector<std::span<const std::uint8_t>> pieces(storage.begin(), storage.end());
        output::GatherCursor cursor(pieces);
        output::GatherCursor::Iovecs iov{};
        std::vector<std::uint8_t> written;
        while (!cursor.done()) {
            const std::size_t count = cursor.fill(iov);
            ASSERT_GT(count, 0u);
            std::size_t take = step;  // the call takes at most `step` bytes
            for (std::size_t k = 0; k < count && take > 0; ++k) {
                const auto* p = static_cast<const std::uint8_t*>(iov[k].iov_base);
                const std::size_t n = std::min(take, iov[k].iov_len);
                written.insert(written.end(), p, p + n);
                take -= n;
            }
            cursor.advance(step - take);  // what the call took
        }
        EXPECT_EQ(written, (std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6, 7, 8, 9})) << "step " << step;
    }
    std::vector<std::span<const std::uint8_t>> none(3);
    EXPECT_TRUE(output::GatherCursor(none).done());
}
