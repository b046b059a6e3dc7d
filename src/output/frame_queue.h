// FrameQueue: a bounded single-producer/single-consumer queue of frames
// between the capture thread and one output's I/O thread.
//
// Contract:
//  - Storage is one byte ring reserved at construction: at most
//    `max_frames` frames and `max_bytes` bytes (frame bytes plus a small
//    per-frame header). push() copies the frame in, never blocks, never
//    allocates; it returns false when either bound is reached (the caller
//    drops and counts the frame). Empty frames are refused too (a zero
//    length is the Frame Streams escape, never a data frame).
//  - The consumer peeks at the oldest frames without removing them
//    (peek()), so a batch whose write failed can be sent again on the
//    next connection, and pops them once written.
//  - The ring is not zeroed, so pages are committed as the write position
//    first passes them: resident memory grows to max_bytes over time (the
//    position cycles through the whole ring) — size max_bytes accordingly.
//  - Exactly one producer thread and one consumer thread; the counters are
//    safe to read from any thread (size()/bytes() may be one frame stale
//    while a push or pop is in progress, never torn or negative).
//
// Ring layout: every frame is stored as its 4-byte big-endian length (the
// Frame Streams data-frame prefix) followed by the payload, contiguously. A
// frame that does not fit before the end of the ring is preceded by padding
// up to the end: a zero length word when at least 4 bytes remain, nothing
// when fewer do. Positions are monotonic byte counters; the ring size is a
// power of two, so index = pos & mask.
//
// Each side keeps its own counters on its own cache line (the producer's
// tail and pushed count, the consumer's head and popped count) and a cached
// copy of the other side's, refreshed only when the queue looks full: in the
// common case push() touches no line the consumer writes.
#pragma once

#include "framestream/codec.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace sidetap::output {

class FrameQueue {
public:
    // Per-frame overhead in the ring (the length word).
    static constexpr std::size_t kFrameHeader = 4;

    FrameQueue(std::size_t max_frames, std::size_t max_bytes);
    ~FrameQueue();
    FrameQueue(const FrameQueue&) = delete;
    FrameQueue& operator=(const FrameQueue&) = delete;

    // Producer.
    bool push(std::span<const std::uint8_t> frame);

    // Consumer: visits up to max_frames queued frames (oldest first) whose
    // total size (payload + kFrameHeader each) is at most max_bytes (at
    // least one frame if any is queued), without removing them. `fn` gets
    // each payload as std::span<const std::uint8_t>, valid until pop().
    // Returns how many were visited.
    template <typename Fn>
    std::size_t peek(std::size_t max_frames, std::size_t max_bytes, Fn&& fn) const;
    // Consumer: removes the `count` oldest frames (at most size()).
    void pop(std::size_t count);

    [[nodiscard]] std::size_t size() const;        // frames queued
    [[nodiscard]] std::size_t bytes() const;       // ring bytes in use (headers and padding included)
    [[nodiscard]] std::size_t capacity() const { return max_frames_; }
    [[nodiscard]] std::size_t byte_capacity() const { return byte_limit_; }

private:
    std::span<const std::uint8_t> frame_at(std::size_t offset, std::size_t& next_offset) const;

    std::size_t max_frames_;
    std::size_t byte_limit_;  // max_bytes: the bound callers asked for
    std::size_t ring_size_;   // byte_limit_ rounded up to a power of two
    std::size_t mask_;
    std::unique_ptr<std::uint8_t[]> ring_;
    // Consumer-owned.
    alignas(64) std::atomic<std::size_t> head_{0};    // position (bytes, monotonic)
    std::atomic<std::size_t> popped_{0};              // frames removed
    // Producer-owned.
    alignas(64) std::atomic<std::size_t> tail_{0};    // position (bytes, monotonic)
    std::atomic<std::size_t> pushed_{0};              // frames added
    std::size_t cached_head_ = 0;                     // last head_ seen by the producer
    std::size_t cached_popped_ = 0;                   // last popped_ seen by the producer
};

template <typename Fn>
std::size_t FrameQueue::peek(std::size_t max_frames, std::size_t max_bytes, Fn&& fn) const {
    std::size_t pos = head_.load(std::memory_order_relaxed);
    const std::size_t end = tail_.load(std::memory_order_acquire);
    std::size_t visited = 0;
    std::size_t total = 0;
    while (pos != end && visited < max_frames) {
        std::size_t next = 0;
        const auto frame = frame_at(pos, next);
        const std::size_t framed = frame.size() + kFrameHeader;
        if (visited > 0 && framed > max_bytes - total) break;
        fn(frame);
        total += framed;
        ++visited;
        pos = next;
        if (total >= max_bytes) break;
    }
    return visited;
}

}  // namespace sidetap::output
