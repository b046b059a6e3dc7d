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
//    bytes can be granted, the deadline passes, or `keep_waiting` (called
//    at least every `slice`) returns false. It returns whether they were
//    granted.
//  - Order: waiters are served one at a time, highest `priority` first
//    (equal priorities first come, first served). Only the first in line
//    takes free shared bytes, and try_acquire() takes none while anyone
//    waits, so that freed memory gathers for one waiter instead of being
//    spread over all of them in pieces too small for any (each then
//    holding part of the budget while waiting for the rest, and nobody
//    progressing). keep_waiting(first) says whether the caller is first in
//    line (the Server evicts only then).
//  - Hand-off: a waiter that frees memory by evicting another connection
//    gets what that connection gives back. The victim's Account is marked
//    (earmark_for(waiter)); the shared bytes it then releases are
//    earmarked for the waiter while the waiter is inside acquire(): still
//    counted as used (the limit and the peak stay exact), free for no one
//    else. The waiter takes its earmark first (wherever it is in line),
//    then, if first in line, free bytes; when acquire() returns (granted,
//    refused or timed out) the earmark left over becomes free and the
//    other waiters are woken. Bytes released for a waiter that is not in
//    acquire() (gone, or already served) are simply free.
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
    std::size_t used = 0;  // both parts, earmarked bytes included
    std::size_t earmarked = 0;  // freed by evicted connections, kept for their waiter
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
    // keep_waiting(first_in_line); may be empty.
    using KeepWaiting = std::function<bool(bool first_in_line)>;
    // Where a waiter stands: `account` (an Account id, 0 = none) receives
    // the bytes earmarked for it; higher `priority` is served first.
    struct Waiting {
        std::uint64_t account;
        std::int64_t priority;
    };
    bool acquire(std::size_t bytes, std::chrono::steady_clock::time_point deadline, const KeepWaiting& keep_waiting,
                 std::chrono::milliseconds slice = std::chrono::milliseconds(50), Waiting who = {0, 0});
    // Shared bytes released `for_waiter` (an Account id) are earmarked for
    // it if it is waiting in acquire(), else free.
    void release(std::size_t bytes, Part part = Part::Shared, std::uint64_t for_waiter = 0) noexcept;

    // Wakes every waiter, to call keep_waiting() again (what it checks has
    // changed).
    void wake() noexcept { released_.notify_all(); }

    // Counts a wait or a refusal decided by the caller (see Server).
    void count_wait();
    void count_refusal();

    [[nodiscard]] ReceiveMemoryStats stats() const;

    // One connection's share. Used by its own thread; held() and
    // shared_held() may be read from any thread. The destructor releases
    // whatever is still held.
    class Account {
    public:
        explicit Account(ReceiveMemory& pool) : pool_(pool), id_(pool.next_account_.fetch_add(1)) {}
        ~Account() { release(held_.load()); }
        Account(const Account&) = delete;
        Account& operator=(const Account&) = delete;

        // At once, or false.
        bool try_acquire(std::size_t bytes);
        // From the shared part, waiting as ReceiveMemory::acquire() does,
        // in line at `priority`, receiving what is earmarked for this account.
        bool acquire(std::size_t bytes, std::chrono::steady_clock::time_point deadline,
                     const KeepWaiting& keep_waiting, std::int64_t priority = 0);
        void release(std::size_t bytes) noexcept;
        // From now on the shared bytes this account releases go to `waiter`
        // while it waits in acquire() (see the hand-off above). Any thread.
        void earmark_for(const Account& waiter) noexcept {
            earmark_for_.store(waiter.id_, std::memory_order_release);
        }

        [[nodiscard]] std::size_t held() const { return held_.load(std::memory_order_relaxed); }
        [[nodiscard]] std::size_t shared_held() const {
            const std::size_t h = held_.load(std::memory_order_relaxed);
            return h - std::min(h, reserved_.load(std::memory_order_relaxed));
        }

    private:
        ReceiveMemory& pool_;
        const std::uint64_t id_;  // unique in the pool, never 0
        std::atomic<std::uint64_t> earmark_for_{0};
        std::atomic<std::size_t> held_{0};
        std::atomic<std::size_t> reserved_{0};
    };

private:
    // A caller inside acquire(); on its stack, linked under mutex_.
    struct Waiter {
        std::uint64_t account = 0;
        std::int64_t priority = 0;
        std::size_t earmarked = 0;  // part of shared_used_
        Waiter* prev = nullptr;
        Waiter* next = nullptr;
    };
    Waiter* find_waiter(std::uint64_t account) const;

    const std::size_t limit_;
    const std::size_t reserve_;
    mutable std::mutex mutex_;
    std::condition_variable released_;
    std::size_t reserve_used_ = 0;
    std::size_t shared_used_ = 0;  // at most limit_ - reserve_; earmarks included
    std::size_t earmarked_ = 0;    // sum of the waiters' earmarks
    Waiter* waiters_ = nullptr;    // in line: the first is served first
    std::atomic<std::uint64_t> next_account_{1};
    std::size_t peak_ = 0;
    std::uint64_t waits_ = 0;
    std::uint64_t refusals_ = 0;
};

}  // namespace sidetap::listen
