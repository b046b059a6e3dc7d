// FrameQueue: the one bounded queue of frames between the threads that make
// them (producers) and the one thread that consumes them — an output's I/O
// thread (capture shards, replay, read, listen's relay), or listen's relay
// thread (the connection threads are the producers).
//
// Contract:
//  - Lanes: one single-producer ring per producer (unbound's per-worker
//    queues). A lane is used by one producer thread at a time (callers that
//    share a lane between threads serialise their pushes themselves); one
//    consumer thread takes from every lane, in turn. Producers never touch
//    each other's memory, so lanes need no lock between them; frames of one
//    lane stay in order, frames of different lanes have no order.
//  - Bounds: at most max_frames frames and max_bytes bytes (frame bytes plus
//    a 4-byte header each, and wrap-around padding) in the whole queue,
//    divided evenly among the lanes; each lane's rings holds at least two
//    frames of max_frame bytes, so one large frame can never wedge a lane.
//    Storage is reserved at construction and never grows. Frames of 0 bytes
//    or more than max_frame are refused (TooLarge).
//  - Overflow: push()/reserve() with OverflowPolicy::Drop return Full at
//    once; with Block they wait for room, until close() (then Closed).
//  - Zero copy: reserve() hands out ring memory for one frame of a known
//    size, commit() publishes it. Between the two the lane is the caller's;
//    push() is reserve() + memcpy + commit().
//  - Ring layout: every frame is its 4-byte big-endian length (the Frame
//    Streams data-frame prefix) followed by the payload, contiguous, so the
//    consumer writes runs of framed bytes straight from the ring (writev):
//    collect() returns them as pieces. A frame that does not fit before the
//    end of the ring is preceded by padding up to the end (a zero length
//    word when at least 4 bytes remain). Positions are monotonic byte
//    counters; the ring size is a power of two.
//  - Resident memory follows what is queued, not the ring size: pages are
//    committed as the write position first passes them, and a producer
//    beyond a low-water mark that finds its lane empty starts again at the
//    beginning of the ring (padding the rest, as at the ring's end, without
//    counting it), so a ring that is often drained touches only its first
//    pages; a lane that stays busy uses its whole ring.
//  - Wake-ups are batched: a producer wakes a sleeping consumer only when it
//    has queued wake_bytes or wake_frames since its last wake-up (one memory
//    fence then, none per frame), or when its lane is full. The consumer
//    sleeps in wait() until a lane holds that much, a lane was full, its own
//    predicate holds, close(), or a deadline (its flush interval): a frame
//    below the thresholds waits at most until that deadline.
//  - Peeking: collect() gathers frames without removing them; release()
//    removes exactly what was collected. A batch whose write failed is
//    collected again, whole, on the next attempt.
//  - Counters may be read from any thread (stats(), size(), bytes()): never
//    torn or negative, at most a frame stale.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

namespace sidetap::output {

enum class OverflowPolicy : std::uint8_t { Drop, Block };

struct FrameQueueStats {
    std::size_t frames = 0;  // queued now
    std::size_t bytes = 0;   // ring bytes in use (headers and padding included)
    std::uint64_t pushed = 0;
    std::uint64_t blocked_pushes = 0;  // pushes that had to wait for room (Block policy)
    std::size_t peak_frames = 0;       // most frames the consumer found queued at once
    std::size_t peak_bytes = 0;
};

class FrameQueue {
public:
    // Per-frame overhead in a ring (the length word).
    static constexpr std::size_t kFrameHeader = 4;

    struct Options {
        std::size_t lanes = 1;             // producers
        std::size_t max_frames = 10000;    // the whole queue
        std::size_t max_bytes = 8u << 20;  // the whole queue
        std::size_t max_frame = 96 * 1024; // largest frame accepted
        std::size_t wake_bytes = 64 << 10; // batch size worth waking the consumer for
        std::size_t wake_frames = 0;       // 0: a quarter of a lane's frames
    };

    enum class Push : std::uint8_t { Queued, Full, Closed, TooLarge };

    // What collect() gathered: for each lane a run of whole frames, as
    // pieces of framed bytes (length word + payload, repeated).
    class Batch {
    public:
        [[nodiscard]] std::size_t frames() const { return frames_; }
        [[nodiscard]] std::size_t bytes() const { return bytes_; }
        [[nodiscard]] bool empty() const { return frames_ == 0; }
        [[nodiscard]] std::span<const std::span<const std::uint8_t>> pieces() const { return pieces_; }

    private:
        friend class FrameQueue;
        struct Part {
            std::size_t lane = 0;
            std::size_t begin = 0;  // positions
            std::size_t end = 0;
            std::size_t frames = 0;
        };
        std::vector<Part> parts_;
        std::vector<std::span<const std::uint8_t>> pieces_;
        std::size_t frames_ = 0;
        std::size_t bytes_ = 0;
    };

    explicit FrameQueue(const Options& options);
    ~FrameQueue();
    FrameQueue(const FrameQueue&) = delete;
    FrameQueue& operator=(const FrameQueue&) = delete;

    // ---- producer of lane `lane` ----
    Push push(std::size_t lane, std::span<const std::uint8_t> frame, OverflowPolicy policy);
    // Room for one frame of exactly `size` bytes, to be filled and then
    // published with commit(lane); nullptr with `result` set (Full, Closed,
    // TooLarge) when there is none.
    std::uint8_t* reserve(std::size_t lane, std::size_t size, OverflowPolicy policy, Push& result);
    void commit(std::size_t lane);

    // ---- consumer ----
    // Gathers up to max_bytes (at least one frame when any is queued) from
    // the lanes in turn, without removing anything. Returns the frames.
    std::size_t collect(Batch& batch, std::size_t max_bytes);
    // Calls fn(payload) for every frame of the batch, in lane order.
    template <typename Fn>
    void for_each_frame(const Batch& batch, Fn&& fn) const;
    // Removes what `batch` collected (nothing else); wakes blocked producers.
    void release(const Batch& batch);
    // Removes everything queued now; returns the number of frames.
    std::size_t discard_all();
    // Sleeps until a lane passed its wake threshold or was full (when
    // `wake_on_frames`), `ready()` holds (evaluated under the queue's lock;
    // a thread that changes what it looks at calls wake_consumer(); close()
    // does), or `deadline`.
    template <typename Pred>
    void wait(std::chrono::steady_clock::time_point deadline, bool wake_on_frames, Pred&& ready);
    void wake_consumer();
    // True (once) when a producer found its lane full since the last call:
    // the consumer should write everything now.
    bool take_starved();

    // ---- any thread ----
    // Refuses every later push (Closed) and wakes blocked producers and the
    // consumer; what is queued stays for the consumer. Idempotent.
    void close();
    [[nodiscard]] bool closed() const { return closed_.load(std::memory_order_acquire); }
    [[nodiscard]] std::size_t size() const;   // frames queued
    [[nodiscard]] std::size_t bytes() const;  // ring bytes in use
    [[nodiscard]] FrameQueueStats stats() const;
    [[nodiscard]] std::size_t lanes() const { return lanes_.size(); }
    [[nodiscard]] std::size_t lane_frame_capacity() const;
    [[nodiscard]] std::size_t lane_byte_capacity() const;

private:
    struct Lane;

    bool try_reserve(Lane& lane, std::size_t need);
    bool block_for_room(Lane& lane, std::size_t need);
    void signal_consumer();
    void wake_producers();
    [[nodiscard]] bool over_threshold() const;
    std::span<const std::uint8_t> frame_at(const Lane& lane, std::size_t pos, std::size_t& next) const;

    std::vector<std::unique_ptr<Lane>> lanes_;
    const std::size_t max_frame_;
    std::size_t next_lane_ = 0;  // consumer: where collect() starts

    std::atomic<bool> closed_{false};
    std::atomic<bool> starved_{false};
    std::atomic<bool> consumer_waiting_{false};
    std::atomic<std::size_t> space_waiters_{0};
    std::atomic<std::uint64_t> blocked_pushes_{0};
    std::atomic<std::size_t> peak_frames_{0};
    std::atomic<std::size_t> peak_bytes_{0};
    mutable std::mutex mutex_;  // only for the condition variables
    std::condition_variable consumer_cv_;
    std::condition_variable space_cv_;
};

// A lane of one frame queue: a single-producer/single-consumer byte ring.
struct FrameQueue::Lane {
    Lane(std::size_t max_frames, std::size_t byte_limit, std::size_t low_water, std::size_t wake_bytes,
         std::size_t wake_frames);

    const std::size_t max_frames;
    const std::size_t byte_limit;  // the bound callers asked for
    const std::size_t ring_size;   // byte_limit rounded up to a power of two
    const std::size_t mask;
    const std::size_t low_water;   // beyond it, an empty lane starts again at 0
    const std::size_t wake_bytes;
    const std::size_t wake_frames;
    std::unique_ptr<std::uint8_t[]> ring;
    // Consumer-owned.
    alignas(64) std::atomic<std::size_t> head{0};    // position (bytes, monotonic)
    std::atomic<std::size_t> popped{0};              // frames removed
    // Producer-owned.
    alignas(64) std::atomic<std::size_t> tail{0};    // position (bytes, monotonic)
    std::atomic<std::size_t> pushed{0};              // frames added
    std::atomic<std::size_t> floor{0};               // data starts here at the earliest (after a restart)
    std::size_t cached_head = 0;
    std::size_t cached_popped = 0;
    std::size_t check_from = 0;     // next position at which to look for an empty lane
    std::size_t unsignalled_bytes = 0;
    std::size_t unsignalled_frames = 0;
    std::size_t reserved_at = 0;    // position of the frame being filled (after padding)
    std::size_t reserved_size = 0;  // its payload size; 0: nothing reserved
};

template <typename Fn>
void FrameQueue::for_each_frame(const Batch& batch, Fn&& fn) const {
    for (const auto& part : batch.parts_) {
        const Lane& lane = *lanes_[part.lane];
        std::size_t pos = part.begin;
        for (std::size_t i = 0; i < part.frames; ++i) {
            std::size_t next = 0;
            fn(frame_at(lane, pos, next));
            pos = next;
        }
    }
}

template <typename Pred>
void FrameQueue::wait(std::chrono::steady_clock::time_point deadline, bool wake_on_frames, Pred&& ready) {
    std::unique_lock lock(mutex_);
    consumer_waiting_.store(true, std::memory_order_relaxed);
    // Pairs with the fence in signal_consumer(): either the producer sees
    // us waiting, or we see what it queued.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    consumer_cv_.wait_until(lock, deadline, [&] {
        if (ready()) return true;
        return wake_on_frames && (starved_.load(std::memory_order_relaxed) || over_threshold());
    });
    consumer_waiting_.store(false, std::memory_order_relaxed);
}

}  // namespace sidetap::output
