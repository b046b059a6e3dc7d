// Fuzz target: the listener's network side — listen::run_session(), the
// code every `sidetap listen` connection runs (Frame Streams handshake,
// data frames, STOP/FINISH, the receive-memory budget), on a real socket.
//
// Input: byte 0 configures the session:
//   bits 0-1  max frame size: 64, 512, 4096, 1 MiB
//   bit  2    accept unidirectional writers
//   bits 3-4  shared receive memory: unlimited, 1 KiB, 8 KiB, 64 KiB (plus
//             one read chunk reserved for the first buffer)
//   bits 5-6  read chunk: 64, 512, 4096, 16384 bytes
// The rest is what the writer sends. It is written into one end of a Unix
// socketpair, which is then half-closed; the session runs on the other end
// through the real socket Stream, wrapped so that every read returns at
// most 1 + (the next input byte % 97) bytes (short reads, as from a slow
// network). The session's replies (ACCEPT, FINISH) are read back.
//
// Checks: delivered frames are no larger than the limit and their count is
// the result's; the session never reads past the input; a session that
// did not get past START delivered nothing and ended with a refusal (or a
// Shutdown), one that did ended with a post-START outcome; the writer
// received exactly ACCEPT when the session went bidirectional (plus FINISH
// when it ended with STOP), and nothing when it was refused before that;
// every byte taken from the budget was given back.
#include "fuzz_common.h"

#include "framestream/codec.h"
#include "listen/receive_memory.h"
#include "listen/session.h"
#include "listen/stream.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

using namespace sidetap;

namespace {

// Short reads over the real socket stream.
class ShortReads final : public listen::Stream {
public:
    ShortReads(listen::Stream& inner, std::span<const std::uint8_t> input) : inner_(inner), input_(input) {}
    listen::Io read_some(void* buffer, std::size_t size, std::size_t& got, listen::Clock::time_point deadline) override {
        const std::size_t chunk = 1 + (consumed_ < input_.size() ? input_[consumed_] % 97u : 0u);
        const listen::Io r = inner_.read_some(buffer, std::min(size, chunk), got, deadline);
        consumed_ += got;
        return r;
    }
    listen::Io wait_readable(listen::Clock::time_point deadline) override { return inner_.wait_readable(deadline); }
    listen::Io write_all(std::span<const std::uint8_t> bytes, listen::Clock::time_point deadline) override {
        return inner_.write_all(bytes, deadline);
    }
    [[nodiscard]] std::size_t consumed() const { return consumed_; }

private:
    listen::Stream& inner_;
    std::span<const std::uint8_t> input_;
    std::size_t consumed_ = 0;
};

// The listener's budget, through the Account every server connection uses
// (its first chunk from the reserve, the rest shared), without the waiting:
// a refusal is immediate here.
class Budget final : public framestream::BufferBudget {
public:
    Budget(std::size_t shared, std::size_t reserve) : pool_(shared + reserve, reserve), account_(pool_) {}
    bool acquire(std::size_t bytes) override { return account_.try_acquire(bytes); }
    void release(std::size_t bytes) noexcept override { account_.release(bytes); }
    [[nodiscard]] std::size_t used() const { return pool_.stats().used; }
    [[nodiscard]] std::size_t held() const { return account_.held(); }

private:
    listen::ReceiveMemory pool_;
    listen::ReceiveMemory::Account account_;
};

class Host final : public listen::SessionHost {
public:
    explicit Host(std::size_t limit) : limit_(limit) {}
    bool deliver(std::span<const std::uint8_t> frame) override {
        FUZZ_CHECK(frame.size() <= limit_);
        (void)fuzz::touch(frame);
        ++frames;
        return true;
    }
    bool stop_reading() override { return false; }
    void started(bool) override { ++starts; }
    void progress() override {}
    std::uint64_t frames = 0;
    int starts = 0;

private:
    std::size_t limit_;
};

bool after_start(listen::SessionEnd e) {
    using E = listen::SessionEnd;
    switch (e) {
    case E::Finished:
    case E::ClosedWithoutStop:
    case E::Reset:
    case E::Truncated:
    case E::TooLarge:
    case E::ProtocolError:
    case E::Shutdown:
    case E::IdleTimeout:
    case E::OutOfMemory: return true;
    default: return false;
    }
}

std::vector<std::uint8_t> read_all(int fd) {
    std::vector<std::uint8_t> out;
    std::uint8_t buffer[4096];
    for (;;) {
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n <= 0) break;
        out.insert(out.end(), buffer, buffer + n);
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1 || size > 65536) return 0;
    static const std::size_t kLimits[] = {64, 512, 4096, 1u << 20};
    static const std::size_t kBudgets[] = {SIZE_MAX / 2, 1024, 8192, 65536};  // shared part; + one chunk reserved
    static const std::size_t kChunks[] = {64, 512, 4096, 16384};
    const std::uint8_t config = data[0];
    listen::SessionOptions options;
    options.max_frame_size = kLimits[config & 3];
    options.accept_unidirectional = (config & 4) != 0;
    options.read_chunk = kChunks[(config >> 5) & 3];
    options.handshake_timeout = std::chrono::milliseconds(2000);
    options.idle_timeout = std::chrono::milliseconds(0);
    const std::span<const std::uint8_t> input(data + 1, size - 1);

    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return 0;
    const int writer = pair[0];
    const int server_side = pair[1];
    // All of it fits in the socket buffers (64 KiB at most), then EOF.
    const int big = 1 << 20;
    ::setsockopt(writer, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    ::setsockopt(server_side, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    std::size_t sent = 0;
    while (sent < input.size()) {
        const ssize_t n = ::send(writer, input.data() + sent, input.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0) break;
        sent += static_cast<std::size_t>(n);
    }
    ::shutdown(writer, SHUT_WR);

    Budget budget(kBudgets[(config >> 3) & 3], options.read_chunk);
    Host host(options.max_frame_size);
    listen::SessionResult result;
    {
        auto socket_stream = listen::make_socket_stream(server_side, -1);
        ShortReads stream(*socket_stream, input.first(sent));
        result = listen::run_session(stream, options, host, &budget);
        FUZZ_CHECK(stream.consumed() <= sent);
    }
    FUZZ_CHECK(budget.used() == 0 && budget.held() == 0);
    FUZZ_CHECK(host.frames == result.frames);
    FUZZ_CHECK(host.starts == (result.started ? 1 : 0));
    FUZZ_CHECK(result.started == after_start(result.end) || result.end == listen::SessionEnd::Shutdown);
    FUZZ_CHECK(result.started || result.frames == 0);
    FUZZ_CHECK(!result.detail.empty());

    const std::vector<std::uint8_t> replies = read_all(writer);
    std::vector<std::uint8_t> accept;
    const std::string_view types[] = {framestream::kDnstapContentType};
    framestream::append_control(accept, framestream::ControlType::Accept, types);
    std::vector<std::uint8_t> finish;
    framestream::append_control(finish, framestream::ControlType::Finish);
    if (result.bidirectional) {
        std::vector<std::uint8_t> expected = accept;
        if (result.end == listen::SessionEnd::Finished) expected.insert(expected.end(), finish.begin(), finish.end());
        FUZZ_CHECK(replies == expected);
    } else if (result.started) {
        FUZZ_CHECK(replies.empty());  // unidirectional: no ACCEPT, no FINISH
    } else {
        FUZZ_CHECK(replies.empty() || replies == accept);  // refused before START, maybe after ACCEPT
    }
    ::close(writer);
    ::close(server_side);
    return 0;
}
