// The one queue between the connection threads (many producers) and the
// relay thread (one consumer). Bounded in frames and in bytes.
//
// Contract:
//  - push() blocks while the queue is full, so a slow relay (a slow stdout
//    reader, an output in block mode) slows the connection threads, which
//    stop reading their sockets: TCP / Unix flow control pushes back to the
//    writers, whose own queues then drop (libfstrm, Unbound, CoreDNS never
//    block the DNS server). Memory stays bounded by the two limits.
//    A frame larger than the byte bound is still accepted into an empty
//    queue, so no frame size can deadlock.
//  - push() returns false once close() was called (the frame is not taken).
//  - pop_all() moves every queued frame into `out` (appending), waiting up to
//    `wait` for the first one.
//  - Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

namespace sidetap::listen {

using Frame = std::vector<std::uint8_t>;

struct FrameQueueStats {
    std::size_t frames = 0;  // queued now
    std::size_t bytes = 0;
    std::uint64_t pushed = 0;
    std::uint64_t blocked_pushes = 0;  // pushes that had to wait for room (backpressure)
    std::size_t peak_frames = 0;
    std::size_t peak_bytes = 0;
};

class FrameQueue {
public:
    FrameQueue(std::size_t max_frames, std::size_t max_bytes);

    bool push(Frame&& frame);
    std::size_t pop_all(std::deque<Frame>& out, std::chrono::milliseconds wait);
    void close();

    [[nodiscard]] FrameQueueStats stats() const;
    [[nodiscard]] std::size_t size() const;

private:
    const std::size_t max_frames_;
    const std::size_t max_bytes_;
    mutable std::mutex mutex_;
    std::condition_variable not_empty_;
    std::condition_variable not_full_;
    std::deque<Frame> frames_;
    std::size_t bytes_ = 0;
    bool closed_ = false;
    FrameQueueStats stats_;
};

}  // namespace sidetap::listen
