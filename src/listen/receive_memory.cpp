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
    if (bytes > (limit_ - reserve_) - shared_used_) return false;
    shared_used_ += bytes;
    peak_ = std::max(peak_, reserve_used_ + shared_used_);
    return true;
}

bool ReceiveMemory::acquire(std::size_t bytes, std::chrono::steady_clock::time_point deadline,
                            const std::function<bool()>& keep_waiting, std::chrono::milliseconds slice) {
    std::unique_lock lock(mutex_);
    const std::size_t shared = limit_ - reserve_;
    for (;;) {
        if (bytes <= shared - shared_used_) {
            shared_used_ += bytes;
            peak_ = std::max(peak_, reserve_used_ + shared_used_);
            return true;
        }
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) return false;
        if (keep_waiting) {
            lock.unlock();
            const bool go_on = keep_waiting();
            lock.lock();
            if (!go_on) return false;
            if (bytes <= shared - shared_used_) continue;
        }
        released_.wait_until(lock, std::min(deadline, now + slice));
    }
}

void ReceiveMemory::release(std::size_t bytes, Part part) noexcept {
    {
        std::lock_guard lock(mutex_);
        std::size_t& used = part == Part::Reserve ? reserve_used_ : shared_used_;
        used -= std::min(bytes, used);
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
                                     const std::function<bool()>& keep_waiting) {
    if (!pool_.acquire(bytes, deadline, keep_waiting)) return false;
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
    if (from_shared != 0) pool_.release(from_shared, Part::Shared);
    if (bytes > from_shared) {
        pool_.release(bytes - from_shared, Part::Reserve);
        reserved_.store(in_reserve - (bytes - from_shared), std::memory_order_relaxed);
    }
}

ReceiveMemoryStats ReceiveMemory::stats() const {
    std::lock_guard lock(mutex_);
    return {limit_, reserve_, reserve_used_ + shared_used_, peak_, waits_, refusals_};
}

}  // namespace sidetap::listen
