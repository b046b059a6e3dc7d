#include "listen/receive_memory.h"

#include <algorithm>

namespace sidetap::listen {

bool ReceiveMemory::try_acquire(std::size_t bytes) {
    std::lock_guard lock(mutex_);
    if (bytes > limit_ - used_) return false;
    used_ += bytes;
    peak_ = std::max(peak_, used_);
    return true;
}

bool ReceiveMemory::acquire(std::size_t bytes, std::chrono::steady_clock::time_point deadline,
                            const std::function<bool()>& keep_waiting, std::chrono::milliseconds slice) {
    std::unique_lock lock(mutex_);
    for (;;) {
        if (bytes <= limit_ - used_) {
            used_ += bytes;
            peak_ = std::max(peak_, used_);
            return true;
        }
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) return false;
        if (keep_waiting) {
            lock.unlock();
            const bool go_on = keep_waiting();
            lock.lock();
            if (!go_on) return false;
            if (bytes <= limit_ - used_) continue;
        }
        released_.wait_until(lock, std::min(deadline, now + slice));
    }
}

void ReceiveMemory::release(std::size_t bytes) noexcept {
    {
        std::lock_guard lock(mutex_);
        used_ -= std::min(bytes, used_);
    }
    released_.notify_all();
}

void ReceiveMemory::count_wait() {
    std::lock_guard lock(mutex_);
    ++waits_;
}

void ReceiveMemory::count_refusal() {
    std::lock_guard lock(mutex_);
    ++refusals_;
}

ReceiveMemoryStats ReceiveMemory::stats() const {
    std::lock_guard lock(mutex_);
    return {limit_, used_, peak_, waits_, refusals_};
}

}  // namespace sidetap::listen
