#include "output/frame_queue.h"

#include <algorithm>
#include <cstring>

namespace sidetap::output {

using framestream::get_be32;
using framestream::put_be32;

FrameQueue::FrameQueue(std::size_t max_frames, std::size_t max_bytes)
    : max_frames_(std::max<std::size_t>(max_frames, 1)),
      ring_size_(std::max<std::size_t>(max_bytes, 2 * kFrameHeader)),
      // Not zeroed: untouched pages of a large, mostly idle ring stay unbacked.
      ring_(std::make_unique_for_overwrite<std::uint8_t[]>(ring_size_)) {}

FrameQueue::~FrameQueue() = default;

bool FrameQueue::push(std::span<const std::uint8_t> frame) {
    if (frame.empty() || frame.size() > UINT32_MAX) return false;
    const std::size_t need = frame.size() + kFrameHeader;
    if (need > ring_size_) return false;
    if (frames_.load(std::memory_order_acquire) >= max_frames_) return false;
    const std::size_t tail = tail_.load(std::memory_order_relaxed);
    const std::size_t head = head_.load(std::memory_order_acquire);
    const std::size_t offset = tail % ring_size_;
    const std::size_t contiguous = ring_size_ - offset;
    const std::size_t pad = contiguous < need ? contiguous : 0;
    if ((tail - head) + pad + need > ring_size_) return false;
    if (pad >= kFrameHeader) put_be32(ring_.get() + offset, 0);
    std::uint8_t* dst = ring_.get() + (pad != 0 ? 0 : offset);
    put_be32(dst, static_cast<std::uint32_t>(frame.size()));
    std::memcpy(dst + kFrameHeader, frame.data(), frame.size());
    // Count before publishing, so a concurrent size() never underflows when
    // the consumer pops this frame before the count would have caught up.
    frames_.fetch_add(1, std::memory_order_acq_rel);
    tail_.store(tail + pad + need, std::memory_order_release);
    return true;
}

std::span<const std::uint8_t> FrameQueue::frame_at(std::size_t pos, std::size_t& next_offset) const {
    std::size_t offset = pos % ring_size_;
    const std::size_t contiguous = ring_size_ - offset;
    if (contiguous < kFrameHeader || get_be32(ring_.get() + offset) == 0) {
        pos += contiguous;  // padding up to the end of the ring
        offset = 0;
    }
    const std::uint32_t len = get_be32(ring_.get() + offset);
    next_offset = pos + kFrameHeader + len;
    return {ring_.get() + offset + kFrameHeader, len};
}

void FrameQueue::pop(std::size_t count) {
    std::size_t pos = head_.load(std::memory_order_relaxed);
    const std::size_t end = tail_.load(std::memory_order_acquire);
    std::size_t popped = 0;
    while (popped < count && pos != end) {
        std::size_t next = 0;
        (void)frame_at(pos, next);
        pos = next;
        ++popped;
    }
    head_.store(pos, std::memory_order_release);
    frames_.fetch_sub(popped, std::memory_order_acq_rel);
}

std::size_t FrameQueue::size() const { return frames_.load(std::memory_order_acquire); }

std::size_t FrameQueue::bytes() const {
    // head first: the tail read afterwards can only be further ahead.
    const std::size_t head = head_.load(std::memory_order_acquire);
    const std::size_t tail = tail_.load(std::memory_order_acquire);
    return tail - head;
}

}  // namespace sidetap::output
