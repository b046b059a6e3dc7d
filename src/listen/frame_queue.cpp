#include "listen/frame_queue.h"

#include <algorithm>

namespace sidetap::listen {

FrameQueue::FrameQueue(std::size_t max_frames, std::size_t max_bytes)
    : max_frames_(std::max<std::size_t>(max_frames, 1)), max_bytes_(std::max<std::size_t>(max_bytes, 1)) {}

bool FrameQueue::push(Frame&& frame) {
    std::unique_lock lock(mutex_);
    auto full = [&] {
        if (frames_.empty()) return false;
        return frames_.size() >= max_frames_ || bytes_ + frame.size() > max_bytes_;
    };
    if (!closed_ && full()) {
        ++stats_.blocked_pushes;
        not_full_.wait(lock, [&] { return closed_ || !full(); });
    }
    if (closed_) return false;
    bytes_ += frame.size();
    frames_.push_back(std::move(frame));
    ++stats_.pushed;
    stats_.peak_frames = std::max(stats_.peak_frames, frames_.size());
    stats_.peak_bytes = std::max(stats_.peak_bytes, bytes_);
    const bool was_empty = frames_.size() == 1;
    lock.unlock();
    if (was_empty) not_empty_.notify_one();
    return true;
}

std::size_t FrameQueue::pop_all(std::deque<Frame>& out, std::chrono::milliseconds wait) {
    std::unique_lock lock(mutex_);
    if (frames_.empty()) not_empty_.wait_for(lock, wait, [&] { return !frames_.empty() || closed_; });
    const std::size_t n = frames_.size();
    if (n == 0) return 0;
    if (out.empty()) {
        out.swap(frames_);
    } else {
        for (auto& f : frames_) out.push_back(std::move(f));
        frames_.clear();
    }
    bytes_ = 0;
    lock.unlock();
    not_full_.notify_all();
    return n;
}

void FrameQueue::close() {
    {
        std::lock_guard lock(mutex_);
        closed_ = true;
    }
    not_full_.notify_all();
    not_empty_.notify_all();
}

FrameQueueStats FrameQueue::stats() const {
    std::lock_guard lock(mutex_);
    FrameQueueStats s = stats_;
    s.frames = frames_.size();
    s.bytes = bytes_;
    return s;
}

std::size_t FrameQueue::size() const {
    std::lock_guard lock(mutex_);
    return frames_.size();
}

}  // namespace sidetap::listen
