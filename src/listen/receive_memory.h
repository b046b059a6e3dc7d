// The listener's receive memory: one byte budget (--max-receive-memory)
// shared by the read buffers of every connection, so that a thousand
// writers each holding a half-sent 1 MiB frame cannot take a gigabyte.
//
// The budget has two parts. `reserve` bytes are set aside for the first
// buffer of each connection (max_connections x read_chunk): a connection
// always gets its first chunk, so a writer whose frames fit in one chunk
// (every ordinary dnstap frame) never waits for memory, however many
// connections are stalled holding the rest. Buffers beyond the first
// chunk share the remainder, limit - reserve.
//
// Contract:
//  - Connections use the budget through an Account: its first
//    acquisition comes from the reserve when there is room there (else
//    from the shared part), every later one from the shared part; releases
//    give the shared part back first. The pool's own try_acquire_first(),
//    try_acquire() and acquire() say which part they used (release the
//    same).
//  - acquire() waits (condition variable, woken by release()) until the
//    bytes fit, the deadline passes, or `keep_waiting` (checked at least
//    every `slice`) returns false. It returns whether they were granted.
//  - release() gives bytes back; every granted byte must be released once.
//  - Thread-safe; counters are exact.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>

namespace sidetap::listen {

struct ReceiveMemoryStats {
    std::size_t limit = 0;
    std::size_t reserve = 0;
    std::size_t used = 0;  // both parts
    std::size_t peak = 0;
    std::uint64_t waits = 0;     // acquisitions that could not be granted at once
    std::uint64_t refusals = 0;  // acquisitions that gave up (connection closed)
};

class ReceiveMemory {
public:
    enum class Part { None, Reserve, Shared };

    // reserve <= limit (clamped).
    explicit ReceiveMemory(std::size_t limit, std::size_t reserve = 0)
        : limit_(limit), reserve_(std::min(reserve, limit)) {}

    Part try_acquire_first(std::size_t bytes);
    bool try_acquire(std::size_t bytes);
    bool acquire(std::size_t bytes, std::chrono::steady_clock::time_point deadline,
                 const std::function<bool()>& keep_waiting,
                 std::chrono::milliseconds slice = std::chrono::milliseconds(50));
    void release(std::size_t bytes, Part part = Part::Shared) noexcept;

    // Counts a wait or a refusal decided by the caller (see Server).
    void count_wait();
    void count_refusal();

    [[nodiscard]] ReceiveMemoryStats stats() const;

    // One connection's share. Used by its own thread; held() and
    // shared_held() may be read from any thread. The destructor releases
    // whatever is still held.
    class Account {
    public:
        explicit Account(ReceiveMemory& pool) : pool_(pool) {}
        ~Account() { release(held_.load()); }
        Account(const Account&) = delete;
        Account& operator=(const Account&) = delete;

        // At once, or false.
        bool try_acquire(std::size_t bytes);
        // From the shared part, waiting as ReceiveMemory::acquire() does.
        bool acquire(std::size_t bytes, std::chrono::steady_clock::time_point deadline,
                     const std::function<bool()>& keep_waiting);
        void release(std::size_t bytes) noexcept;

        [[nodiscard]] std::size_t held() const { return held_.load(std::memory_order_relaxed); }
        [[nodiscard]] std::size_t shared_held() const {
            const std::size_t h = held_.load(std::memory_order_relaxed);
            return h - std::min(h, reserved_.load(std::memory_order_relaxed));
        }

    private:
        ReceiveMemory& pool_;
        std::atomic<std::size_t> held_{0};
        std::atomic<std::size_t> reserved_{0};
    };

private:
    const std::size_t limit_;
    const std::size_t reserve_;
    mutable std::mutex mutex_;
    std::condition_variable released_;
    std::size_t reserve_used_ = 0;
    std::size_t shared_used_ = 0;  // at most limit_ - reserve_
    std::size_t peak_ = 0;
    std::uint64_t waits_ = 0;
    std::uint64_t refusals_ = 0;
};

}  // namespace sidetap::listen
