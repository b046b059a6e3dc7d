#include "listen/receive_memory.h"

namespace sidetap::listen {

ReceiveMemory::Part ReceiveMemory::try_acquire_first(std::size_t bytes) {
    {
        std::lock_guard lock(mutex_);
        if (bytes <= reserve_ - reserve_used_) {
            reserve_used_ += bytes;
            peak_ = std::max(peak_, reserve_used_ + shared_used_);
            return Part::Reserve;
        }
    }
    return try_acquire(bytes) ? Part::Shared : Part::None;
}

bool ReceiveMemory::try_acquire(std::size_t bytes) {
    std::lock_guard lock(mutex_);
    if (waiters_ != nullptr) return false;  // no overtaking those in line
    if (bytes > (limit_ - reserve_) - shared_used_) return false;
    shared_used_ += bytes;
    peak_ = std::max(peak_, reserve_used_ + shared_used_);
    return true;
}

ReceiveMemory::Waiter* ReceiveMemory::find_waiter(std::uint64_t account) const {
    for (Waiter* w = waiters_; w != nullptr; w = w->next)
        if (w->account == account) return w;
    return nullptr;
}

bool ReceiveMemory::acquire(std::size_t bytes, std::chrono::steady_clock::time_point deadline,
                            const KeepWaiting& keep_waiting, std::chrono::milliseconds slice, Waiting who) {
    std::unique_lock lock(mutex_);
    const std::size_t shared = limit_ - reserve_;
    // In line for the whole call (also while keep_waiting() runs: bytes
    // earmarked for this account then are found here). After the waiters
    // of higher or equal priority.
    Waiter self;
    self.account = who.account;
    self.priority = who.priority;
    Waiter** link = &waiters_;
    Waiter* before = nullptr;
    while (*link != nullptr && (*link)->priority >= self.priority) {
        before = *link;
        link = &(*link)->next;
    }
    self.prev = before;
    self.next = *link;
    if (self.next != nullptr) self.next->prev = &self;
    *link = &self;

    const auto fits = [&] {
        return bytes <= self.earmarked || (waiters_ == &self && bytes <= self.earmarked + (shared - shared_used_));
    };
    bool granted = false;
    for (;;) {
        if (fits()) {
            // Earmarked bytes are already counted as used: only the rest is new.
            const std::size_t from_earmark = std::min(bytes, self.earmarked);
            self.earmarked -= from_earmark;
            earmarked_ -= from_earmark;
            shared_used_ += bytes - from_earmark;
            peak_ = std::max(peak_, reserve_used_ + shared_used_);
            granted = true;
            break;
        }
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) break;
        if (keep_waiting) {
            const bool first = waiters_ == &self;
            lock.unlock();
            const bool go_on = keep_waiting(first);
            lock.lock();
            if (!go_on) break;
            if (fits()) continue;
        }
        released_.wait_until(lock, std::min(deadline, now + slice));
    }
    // Out of line; the earmark left over is free for everyone now.
    if (self.prev != nullptr) {
        self.prev->next = self.next;
    } else {
        waiters_ = self.next;
    }
    if (self.next != nullptr) self.next->prev = self.prev;
    shared_used_ -= self.earmarked;
    earmarked_ -= self.earmarked;
    const bool others = waiters_ != nullptr;
    lock.unlock();
    // The next in line may be served now.
    if (others) released_.notify_all();
    return granted;
}

void ReceiveMemory::release(std::size_t bytes, Part part, std::uint64_t for_waiter) noexcept {
    {
        std::lock_guard lock(mutex_);
        std::size_t& used = part == Part::Reserve ? reserve_used_ : shared_used_;
        bytes = std::min(bytes, used);
        if (part == Part::Shared && for_waiter != 0) {
            if (Waiter* w = find_waiter(for_waiter); w != nullptr) {
                // Still used, now the waiter's (it is woken below).
                w->earmarked += bytes;
                earmarked_ += bytes;
                bytes = 0;
            }
        }
        used -= bytes;
    }
    if (part != Part::Reserve) released_.notify_all();
}

void ReceiveMemory::count_wait() {
    std::lock_guard lock(mutex_);
    ++waits_;
}

void ReceiveMemory::count_refusal() {
    std::lock_guard lock(mutex_);
    ++refusals_;
}

bool ReceiveMemory::Account::try_acquire(std::size_t bytes) {
    if (held_.load(std::memory_order_relaxed) == 0) {
        // The first chunk: from the reserve, so that no stalled connection
        // can keep a writer of ordinary frames waiting.
        const Part part = pool_.try_acquire_first(bytes);
        if (part == Part::None) return false;
        if (part == Part::Reserve) reserved_.store(bytes, std::memory_order_relaxed);
    } else if (!pool_.try_acquire(bytes)) {
        return false;
    }
    held_.fetch_add(bytes, std::memory_order_relaxed);
    return true;
}

bool ReceiveMemory::Account::acquire(std::size_t bytes, std::chrono::steady_clock::time_point deadline,
                                     const KeepWaiting& keep_waiting, std::int64_t priority) {
    if (!pool_.acquire(bytes, deadline, keep_waiting, std::chrono::milliseconds(50), {id_, priority})) return false;
    held_.fetch_add(bytes, std::memory_order_relaxed);
    return true;
}

void ReceiveMemory::Account::release(std::size_t bytes) noexcept {
    const std::size_t held = held_.load(std::memory_order_relaxed);
    bytes = std::min(bytes, held);
    if (bytes == 0) return;
    const std::size_t in_reserve = reserved_.load(std::memory_order_relaxed);
    const std::size_t from_shared = std::min(bytes, held - std::min(held, in_reserve));
    held_.store(held - bytes, std::memory_order_relaxed);
    if (from_shared != 0)
        pool_.release(from_shared, Part::Shared, earmark_for_.load(std::memory_order_acquire));
    if (bytes > from_shared) {
        pool_.release(bytes - from_shared, Part::Reserve);
        reserved_.store(in_reserve - (bytes - from_shared), std::memory_order_relaxed);
    }
}

ReceiveMemoryStats ReceiveMemory::stats() const {
    std::lock_guard lock(mutex_);
    return {limit_, reserve_, reserve_used_ + shared_used_, earmarked_, peak_, waits_, refusals_};
}

}  // namespace sidetap::listen
