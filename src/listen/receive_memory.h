// The listener's receive memory: one byte budget (--max-receive-memory)
// shared by the read buffers of every connection, so that a thousand
// writers each holding a half-sent 1 MiB frame cannot take a gigabyte.
//
// Contract:
//  - try_acquire() grants `bytes` if used + bytes <= limit, at once.
//  - acquire() waits (condition variable, woken by release()) until the
//    bytes fit, the deadline passes, or `keep_waiting` (checked at least
//    every `slice`) returns false. It returns whether they were granted.
//  - release() gives bytes back; every granted byte must be released once.
//  - Thread-safe; counters are exact.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>

namespace sidetap::listen {

struct ReceiveMemoryStats {
    std::size_t limit = 0;
    std::size_t used = 0;
    std::size_t peak = 0;
    std::uint64_t waits = 0;     // acquisitions that could not be granted at once
    std::uint64_t refusals = 0;  // acquisitions that gave up (connection closed)
};

class ReceiveMemory {
public:
    explicit ReceiveMemory(std::size_t limit) : limit_(limit) {}

    bool try_acquire(std::size_t bytes);
    bool acquire(std::size_t bytes, std::chrono::steady_clock::time_point deadline,
                 const std::function<bool()>& keep_waiting,
                 std::chrono::milliseconds slice = std::chrono::milliseconds(50));
    void release(std::size_t bytes) noexcept;

    // Counts a wait or a refusal decided by the caller (see Server).
    void count_wait();
    void count_refusal();

    [[nodiscard]] ReceiveMemoryStats stats() const;

private:
    const std::size_t limit_;
    mutable std::mutex mutex_;
    std::condition_variable released_;
    std::size_t used_ = 0;
    std::size_t peak_ = 0;
    std::uint64_t waits_ = 0;
    std::uint64_t refusals_ = 0;
};

}  // namespace sidetap::listen
