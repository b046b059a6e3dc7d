// FrameQueue: a bounded single-producer/single-consumer queue of frames
// between the capture thread and one output's I/O thread.
//
// Contract:
//  - Storage is one byte ring reserved at construction: at most
//    `max_frames` frames and `max_bytes` bytes (frame bytes plus a small
//    per-frame header). push() copies the frame in, never blocks, never
//    allocates; it returns false when either bound is reached (the caller
//    drops and counts the frame).
//  - The consumer peeks at the oldest frames without removing them
//    (front()/next), so a batch whose write failed can be sent again on the
//    next connection, and pops them once written.
//  - Exactly one producer thread and one consumer thread; the counters are
//    safe to read from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace sidetap::output {

class FrameQueue {
public:
    FrameQueue(std::size_t max_frames, std::size_t max_bytes);
    ~FrameQueue();
    FrameQueue(const FrameQueue&) = delete;
    FrameQueue& operator=(const FrameQueue&) = delete;

    // Producer.
    bool push(std::span<const std::uint8_t> frame);

    // Consumer: visits up to max_frames queued frames (oldest first) whose
    // total size is at most max_bytes (at least one frame if any is queued),
    // without removing them. Returns how many were visited.
    template <typename Fn>
    std::size_t peek(std::size_t max_frames, std::size_t max_bytes, Fn&& fn) const;
    // Consumer: removes the `count` oldest frames.
    void pop(std::size_t count);

    [[nodiscard]] std::size_t size() const;        // frames queued
    [[nodiscard]] std::size_t bytes() const;       // bytes queued
    [[nodiscard]] std::size_t capacity() const { return max_frames_; }

private:
    std::span<const std::uint8_t> frame_at(std::size_t offset, std::size_t& next_offset) const;

    std::size_t max_frames_;
    std::size_t ring_size_;
    std::unique_ptr<std::uint8_t[]> ring_;
    alignas(64) std::atomic<std::size_t> head_{0};   // consumer position (bytes, monotonic)
    alignas(64) std::atomic<std::size_t> tail_{0};   // producer position (bytes, monotonic)
    alignas(64) std::atomic<std::size_t> frames_{0};
};

}  // namespace sidetap::output
