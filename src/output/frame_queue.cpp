#include "output/frame_queue.h"

#include <algorithm>
#include <cstring>

namespace sidetap::output {

using framestream::get_be32;
using framestream::put_be32;

namespace {
std::size_t round_up_power_of_two(std::size_t n) {
    std::size_t p = 1;
    while (p < n) p <<= 1;
    return p;
}
}  // namespace

FrameQueue::FrameQueue(std::size_t max_frames, std::size_t max_bytes)
    : max_frames_(std::max<std::size_t>(max_frames, 1)),
      byte_limit_(std::max<std::size_t>(max_bytes, 2 * kFrameHeader)),
      ring_size_(round_up_power_of_two(byte_limit_)),
      mask_(ring_size_ - 1),
      // Not zeroed: untouched pages of a large, mostly idle ring stay unbacked.
      ring_(std::make_unique_for_overwrite<std::uint8_t[]>(ring_size_)) {}

FrameQueue::~FrameQueue() = default;

bool FrameQueue::push(std::span<const std::uint8_t> frame) {
    if (frame.empty() || frame.size() > UINT32_MAX) return false;
    const std::size_t need = frame.size() + kFrameHeader;
    if (need > byte_limit_) return false;
    const std::size_t pushed = pushed_.load(std::memory_order_relaxed);
    if (pushed - cached_popped_ >= max_frames_) {
        cached_popped_ = popped_.load(std::memory_order_acquire);
        if (pushed - cached_popped_ >= max_frames_) return false;
    }
    const std::size_t tail = tail_.load(std::memory_order_relaxed);
    const std::size_t offset = tail & mask_;
    const std::size_t contiguous = ring_size_ - offset;
    const std::size_t pad = contiguous < need ? contiguous : 0;
    if ((tail - cached_head_) + pad + need > byte_limit_) {
        cached_head_ = head_.load(std::memory_order_acquire);
        if ((tail - cached_head_) + pad + need > byte_limit_) return false;
    }
    if (pad >= kFrameHeader) put_be32(ring_.get() + offset, 0);
    std::uint8_t* dst = ring_.get() + (pad != 0 ? 0 : offset);
    put_be32(dst, static_cast<std::uint32_t>(frame.size()));
    std::memcpy(dst + kFrameHeader, frame.data(), frame.size());
    // Count before publishing, so size() (popped first, then pushed) never
    // sees more frames removed than added.
    pushed_.store(pushed + 1, std::memory_order_relaxed);
    tail_.store(tail + pad + need, std::memory_order_release);
    return true;
}

std::span<const std::uint8_t> FrameQueue::frame_at(std::size_t pos, std::size_t& next_offset) const {
    std::size_t offset = pos & mask_;
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
    popped_.store(popped_.load(std::memory_order_relaxed) + popped, std::memory_order_release);
    head_.store(pos, std::memory_order_release);
}

std::size_t FrameQueue::size() const {
    const std::size_t popped = popped_.load(std::memory_order_acquire);
    const std::size_t pushed = pushed_.load(std::memory_order_acquire);
    return pushed - popped;
}

std::size_t FrameQueue::bytes() const {
    // head first: the tail read afterwards can only be further ahead.
    const std::size_t head = head_.load(std::memory_order_acquire);
    const std::size_t tail = tail_.load(std::memory_order_acquire);
    return tail - head;
}

}  // namespace sidetap::output
