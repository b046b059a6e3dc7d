#include "output/frame_queue.h"

#include "framestream/codec.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace sidetap::output {

using framestream::get_be32;
using framestream::put_be32;

namespace {
std::size_t round_up_power_of_two(std::size_t n) {
    std::size_t p = 1;
    while (p < n) p <<= 1;
    return p;
}

void raise_to(std::atomic<std::size_t>& peak, std::size_t value) {
    std::size_t seen = peak.load(std::memory_order_relaxed);
    while (value > seen && !peak.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
    }
}
}  // namespace

FrameQueue::Lane::Lane(std::size_t frames, std::size_t limit, std::size_t low, std::size_t wake_b, std::size_t wake_f)
    : max_frames(frames),
      byte_limit(limit),
      ring_size(round_up_power_of_two(limit)),
      mask(ring_size - 1),
      low_water(low),
      wake_bytes(wake_b),
      wake_frames(wake_f),
      // Not zeroed: pages of a large, mostly idle ring stay unbacked.
      ring(std::make_unique_for_overwrite<std::uint8_t[]>(ring_size)) {}

FrameQueue::FrameQueue(const Options& options) : max_frame_(std::max<std::size_t>(options.max_frame, 1)) {
    const std::size_t lanes = std::max<std::size_t>(options.lanes, 1);
    const std::size_t frames = std::max<std::size_t>((options.max_frames + lanes - 1) / lanes, 2);
    const std::size_t two_frames = 2 * (max_frame_ + kFrameHeader);
    const std::size_t limit = std::max((options.max_bytes + lanes - 1) / lanes, two_frames);
    // An empty lane beyond this offset starts again at 0: what stays resident
    // is about this much plus what the lane really held at its fullest. Until
    // the consumer has passed the padding, the lane holds at most this much
    // (the ring beyond it is still before the consumer's head): a quarter
    // of the lane at least.
    const std::size_t low_water =
        std::min(limit, std::max({two_frames, std::size_t{256} << 10, limit / 4}));
    const std::size_t wake_bytes = std::clamp<std::size_t>(options.wake_bytes, 1, std::max<std::size_t>(limit / 4, 1));
    const std::size_t wake_frames = options.wake_frames == 0 ? std::max<std::size_t>(frames / 4, 1)
                                                              : std::min(options.wake_frames, frames);
    lanes_.reserve(lanes);
    for (std::size_t i = 0; i < lanes; ++i)
        lanes_.push_back(std::make_unique<Lane>(frames, limit, low_water, wake_bytes, wake_frames));
}

FrameQueue::~FrameQueue() = default;

std::size_t FrameQueue::lane_frame_capacity() const { return lanes_.front()->max_frames; }
std::size_t FrameQueue::lane_byte_capacity() const { return lanes_.front()->byte_limit; }

bool FrameQueue::try_reserve(Lane& l, std::size_t need) {
    const std::size_t pushed = l.pushed.load(std::memory_order_relaxed);
    if (pushed - l.cached_popped >= l.max_frames) {
        l.cached_popped = l.popped.load(std::memory_order_acquire);
        if (pushed - l.cached_popped >= l.max_frames) return false;
    }
    const std::size_t tail = l.tail.load(std::memory_order_relaxed);
    const std::size_t offset = tail & l.mask;
    const std::size_t contiguous = l.ring_size - offset;
    std::size_t pad = contiguous < need ? contiguous : 0;
    std::size_t floor = l.floor.load(std::memory_order_relaxed);
    bool restart = false;
    if (pad == 0 && offset >= l.low_water && tail >= l.check_from) {
        // Far into the ring: when the consumer has taken everything, start
        // again at the beginning, so that the same pages are used again
        // instead of the whole ring. Only when empty: with data still
        // queued, going back would leave the rest of the ring unused until
        // the consumer passed it. Looked at once per quarter of the
        // low-water mark, not per frame.
        l.cached_head = l.head.load(std::memory_order_acquire);
        if (l.cached_head == tail) {
            pad = contiguous;
            restart = true;
            floor = tail + pad;  // the padding is not data: it does not count
        } else {
            l.check_from = tail + l.low_water / 4;
        }
    }
    // Two bounds: the data queued (from the floor, after a restart) within
    // byte_limit, and never a lap ahead of the consumer's head (which may
    // still be before the restart's padding marker) in the ring.
    const auto fits = [&] {
        return tail + pad + need - std::max(l.cached_head, floor) <= l.byte_limit &&
               tail + pad + need - l.cached_head <= l.ring_size;
    };
    if (!fits()) {
        l.cached_head = l.head.load(std::memory_order_acquire);
        if (!fits()) return false;
    }
    if (pad >= kFrameHeader) put_be32(l.ring.get() + offset, 0);
    if (restart) l.floor.store(floor, std::memory_order_relaxed);
    l.reserved_at = tail + pad;
    l.unsignalled_bytes += pad;
    return true;
}

std::uint8_t* FrameQueue::reserve(std::size_t lane, std::size_t size, OverflowPolicy policy, Push& result) {
    if (size == 0 || size > max_frame_ || size > UINT32_MAX) {
        result = Push::TooLarge;
        return nullptr;
    }
    if (closed_.load(std::memory_order_acquire)) {
        result = Push::Closed;
        return nullptr;
    }
    Lane& l = *lanes_[lane];
    const std::size_t need = size + kFrameHeader;
    if (!try_reserve(l, need)) {
        starved_.store(true, std::memory_order_relaxed);
        signal_consumer();
        if (policy == OverflowPolicy::Drop) {
            result = Push::Full;
            return nullptr;
        }
        if (!block_for_room(l, need)) {
            result = Push::Closed;
            return nullptr;
        }
    }
    l.reserved_size = size;
    result = Push::Queued;
    return l.ring.get() + (l.reserved_at & l.mask) + kFrameHeader;
}

void FrameQueue::commit(std::size_t lane) {
    Lane& l = *lanes_[lane];
    if (l.reserved_size == 0) return;
    const std::size_t need = l.reserved_size + kFrameHeader;
    put_be32(l.ring.get() + (l.reserved_at & l.mask), static_cast<std::uint32_t>(l.reserved_size));
    l.reserved_size = 0;
    // Count before publishing, so size() (popped first, then pushed) never
    // sees more frames removed than added.
    const std::size_t pushed = l.pushed.load(std::memory_order_relaxed) + 1;
    const std::size_t tail = l.reserved_at + need;
    l.pushed.store(pushed, std::memory_order_relaxed);
    l.tail.store(tail, std::memory_order_release);
    l.unsignalled_bytes += need;
    if (++l.unsignalled_frames < l.wake_frames && l.unsignalled_bytes < l.wake_bytes) return;
    // Past the threshold since the last signal; but a batch the consumer
    // took after that signal may have taken some of these frames too, and a
    // wake-up for less than its threshold only sends it back to sleep (half
    // of all wake-ups, measured). Signal what is really waiting; otherwise
    // count from it.
    const std::size_t queued_frames = pushed - l.popped.load(std::memory_order_acquire);
    const std::size_t start = std::max(l.head.load(std::memory_order_acquire), l.floor.load(std::memory_order_relaxed));
    const std::size_t queued_bytes = tail > start ? tail - start : 0;
    if (queued_frames >= l.wake_frames || queued_bytes >= l.wake_bytes) {
        l.unsignalled_frames = 0;
        l.unsignalled_bytes = 0;
        signal_consumer();
    } else {
        l.unsignalled_frames = queued_frames;
        l.unsignalled_bytes = queued_bytes;
    }
}

FrameQueue::Push FrameQueue::push(std::size_t lane, std::span<const std::uint8_t> frame, OverflowPolicy policy) {
    Push result = Push::Queued;
    std::uint8_t* dst = reserve(lane, frame.size(), policy, result);
    if (!dst) return result;
    std::memcpy(dst, frame.data(), frame.size());
    commit(lane);
    return Push::Queued;
}

bool FrameQueue::block_for_room(Lane& l, std::size_t need) {
    blocked_pushes_.fetch_add(1, std::memory_order_relaxed);
    std::unique_lock lock(mutex_);
    space_waiters_.fetch_add(1, std::memory_order_relaxed);
    // Pairs with the fence in wake_producers().
    std::atomic_thread_fence(std::memory_order_seq_cst);
    bool ok = false;
    for (;;) {
        if (closed_.load(std::memory_order_acquire)) break;
        if (try_reserve(l, need)) {
            ok = true;
            break;
        }
        starved_.store(true, std::memory_order_relaxed);
        consumer_cv_.notify_one();
        // The timeout is only a safety net; releases and close() notify.
        space_cv_.wait_for(lock, std::chrono::milliseconds(100));
    }
    space_waiters_.fetch_sub(1, std::memory_order_relaxed);
    return ok;
}

void FrameQueue::signal_consumer() {
    // One fence per wake-up, not per frame (see the header).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (consumer_waiting_.load(std::memory_order_relaxed)) wake_consumer();
}

void FrameQueue::wake_consumer() {
    { std::lock_guard lock(mutex_); }
    consumer_cv_.notify_one();
}

void FrameQueue::wake_producers() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (space_waiters_.load(std::memory_order_relaxed) != 0) {
        std::lock_guard lock(mutex_);
        space_cv_.notify_all();
    }
}

bool FrameQueue::take_starved() { return starved_.exchange(false, std::memory_order_relaxed); }

bool FrameQueue::over_threshold() const {
    for (const auto& lp : lanes_) {
        const Lane& l = *lp;
        const std::size_t popped = l.popped.load(std::memory_order_acquire);
        if (l.pushed.load(std::memory_order_acquire) - popped >= l.wake_frames) return true;
        const std::size_t head = l.head.load(std::memory_order_acquire);
        const std::size_t tail = l.tail.load(std::memory_order_acquire);
        const std::size_t start = std::max(head, l.floor.load(std::memory_order_relaxed));
        if (tail > start && tail - start >= l.wake_bytes) return true;
    }
    return false;
}

std::span<const std::uint8_t> FrameQueue::frame_at(const Lane& l, std::size_t pos, std::size_t& next) const {
    std::size_t offset = pos & l.mask;
    const std::size_t contiguous = l.ring_size - offset;
    if (contiguous < kFrameHeader || get_be32(l.ring.get() + offset) == 0) {
        pos += contiguous;  // padding up to the end of the ring
        offset = 0;
    }
    const std::uint32_t len = get_be32(l.ring.get() + offset);
    next = pos + kFrameHeader + len;
    return {l.ring.get() + offset + kFrameHeader, len};
}

std::size_t FrameQueue::collect(Batch& batch, std::size_t max_bytes) {
    batch.parts_.clear();
    batch.pieces_.clear();
    batch.frames_ = 0;
    batch.bytes_ = 0;
    const std::size_t n = lanes_.size();
    bool stop = false;
    std::size_t queued_frames = 0;
    std::size_t queued_bytes = 0;
    for (std::size_t k = 0; k < n && !stop; ++k) {
        const std::size_t index = (next_lane_ + k) % n;
        const Lane& l = *lanes_[index];
        std::size_t pos = l.head.load(std::memory_order_relaxed);
        const std::size_t end = l.tail.load(std::memory_order_acquire);
        queued_frames += l.pushed.load(std::memory_order_acquire) - l.popped.load(std::memory_order_relaxed);
        queued_bytes += end - pos;
        if (pos == end) continue;
        Batch::Part part{index, pos, pos, 0};
        const std::uint8_t* piece = nullptr;
        std::size_t piece_len = 0;
        while (pos != end) {
            // The frames were just written on the producer's core: each
            // header read is a cache miss, and the walk from one to the next
            // serialises them. Asking for the lines ahead in the ring lets
            // those misses overlap (frames are contiguous, bar the wrap).
            // Never past the committed end: a line the producer is still to
            // write would be pulled away from it.
            if (end - pos > 512) __builtin_prefetch(l.ring.get() + ((pos + 512) & l.mask));
            std::size_t next = 0;
            const auto payload = frame_at(l, pos, next);
            const std::size_t framed = payload.size() + kFrameHeader;
            if (batch.frames_ > 0 && framed > max_bytes - batch.bytes_) {
                stop = true;
                break;
            }
            const std::uint8_t* start = payload.data() - kFrameHeader;
            if (piece && piece + piece_len == start) {
                piece_len += framed;
            } else {
                if (piece) batch.pieces_.emplace_back(piece, piece_len);
                piece = start;
                piece_len = framed;
            }
            pos = next;
            ++part.frames;
            ++batch.frames_;
            batch.bytes_ += framed;
            if (batch.bytes_ >= max_bytes) {
                stop = true;
                break;
            }
        }
        if (piece) batch.pieces_.emplace_back(piece, piece_len);
        part.end = pos;
        if (part.frames != 0) batch.parts_.push_back(part);
    }
    next_lane_ = (next_lane_ + 1) % n;
    raise_to(peak_frames_, queued_frames);
    raise_to(peak_bytes_, queued_bytes);
    return batch.frames_;
}

void FrameQueue::release(const Batch& batch) {
    for (const auto& part : batch.parts_) {
        Lane& l = *lanes_[part.lane];
        l.popped.store(l.popped.load(std::memory_order_relaxed) + part.frames, std::memory_order_release);
        l.head.store(part.end, std::memory_order_release);
    }
    if (!batch.parts_.empty()) wake_producers();
}

std::size_t FrameQueue::discard_all() {
    Batch batch;
    std::size_t total = 0;
    // Once over every lane: frames a producer adds meanwhile stay.
    collect(batch, std::numeric_limits<std::size_t>::max());
    total = batch.frames();
    release(batch);
    return total;
}

void FrameQueue::close() {
    {
        std::lock_guard lock(mutex_);
        closed_.store(true, std::memory_order_release);
    }
    space_cv_.notify_all();
    consumer_cv_.notify_all();
}

std::size_t FrameQueue::size() const {
    std::size_t total = 0;
    for (const auto& l : lanes_) {
        const std::size_t popped = l->popped.load(std::memory_order_acquire);
        total += l->pushed.load(std::memory_order_acquire) - popped;
    }
    return total;
}

std::size_t FrameQueue::bytes() const {
    std::size_t total = 0;
    for (const auto& l : lanes_) {
        // head first: the tail read afterwards can only be further ahead.
        const std::size_t head = l->head.load(std::memory_order_acquire);
        const std::size_t tail = l->tail.load(std::memory_order_acquire);
        const std::size_t start = std::max(head, l->floor.load(std::memory_order_relaxed));
        total += tail > start ? tail - start : 0;
    }
    return total;
}

FrameQueueStats FrameQueue::stats() const {
    FrameQueueStats s;
    s.frames = size();
    s.bytes = bytes();
    for (const auto& l : lanes_) s.pushed += l->pushed.load(std::memory_order_relaxed);
    s.blocked_pushes = blocked_pushes_.load(std::memory_order_relaxed);
    s.peak_frames = std::max(peak_frames_.load(std::memory_order_relaxed), s.frames);
    s.peak_bytes = std::max(peak_bytes_.load(std::memory_order_relaxed), s.bytes);
    return s;
}

}  // namespace sidetap::output
