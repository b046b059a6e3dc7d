#include "capture/ebpf_record.h"

#include <time.h>

#include <cstring>

namespace sidetap::capture::ebpf {

namespace {

// From the kernel's ring-buffer ABI (include/uapi/linux/bpf.h).
constexpr std::uint32_t kBusyBit = 1u << 31;
constexpr std::uint32_t kDiscardBit = 1u << 30;
constexpr std::uint64_t kHeaderSize = 8;

std::int64_t now_ns(clockid_t clock) {
    timespec ts{};
    ::clock_gettime(clock, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

bool parse_record(std::span<const std::uint8_t> bytes, Record& out) {
    if (bytes.size() < sizeof(sidetap_record)) return false;
    sidetap_record header;
    std::memcpy(&header, bytes.data(), sizeof(header));
    if (header.caplen > SIDETAP_MAX_CAPTURE || header.caplen > bytes.size() - sizeof(header)) return false;
    out.ktime_ns = header.ktime_ns;
    out.ifindex = header.ifindex;
    out.orig_len = header.orig_len < header.caplen ? header.caplen : header.orig_len;
    out.direction = header.direction;
    out.data = bytes.subspan(sizeof(header), header.caplen);
    return true;
}

RingReader::RingReader(std::atomic<std::uint64_t>* consumer, const std::atomic<std::uint64_t>* producer,
                       const std::uint8_t* data, std::uint64_t size, std::uint64_t batch)
    : consumer_(consumer), producer_(producer), data_(data), mask_(size - 1), batch_(batch) {
    position_ = published_ = consumer_->load(std::memory_order_acquire);
}

void RingReader::publish() {
    if (position_ == published_) return;
    consumer_->store(position_, std::memory_order_release);
    published_ = position_;
}

void RingReader::release() {
    holding_ = false;
    publish();
}

bool RingReader::next(std::span<const std::uint8_t>& out) {
    if (holding_) {
        holding_ = false;
        if (position_ - published_ >= batch_) publish();
    }
    const std::uint64_t producer = producer_->load(std::memory_order_acquire);
    while (position_ < producer) {
        const auto* header = reinterpret_cast<const std::atomic<std::uint32_t>*>(data_ + (position_ & mask_));
        const std::uint32_t word = header->load(std::memory_order_acquire);
        if (word & kBusyBit) break;  // reserved, not yet submitted: the order of the ring is kept
        const std::uint32_t length = word & ~(kBusyBit | kDiscardBit);
        const std::uint64_t record_start = position_ + kHeaderSize;
        position_ += (length + kHeaderSize + 7) & ~std::uint64_t{7};
        if (word & kDiscardBit) continue;
        holding_ = true;
        out = std::span<const std::uint8_t>(data_ + (record_start & mask_), length);
        return true;
    }
    publish();
    return false;
}

std::uint64_t RingReader::pending_bytes() const {
    if (!producer_) return 0;
    return producer_->load(std::memory_order_acquire) - consumer_->load(std::memory_order_relaxed);
}

WallClock::WallClock() { refresh(); }

void WallClock::refresh() {
    ClockSample samples[3];
    for (auto& s : samples) {
        s.mono_before_ns = now_ns(CLOCK_MONOTONIC);
        s.real_ns = now_ns(CLOCK_REALTIME);
        s.mono_after_ns = now_ns(CLOCK_MONOTONIC);
    }
    update(samples);
}

void WallClock::update(std::span<const ClockSample> samples) {
    const ClockSample* best = nullptr;
    for (const auto& s : samples)
        if (!best || s.mono_after_ns - s.mono_before_ns < best->mono_after_ns - best->mono_before_ns) best = &s;
    if (!best) return;
    const std::int64_t mono_mid = best->mono_before_ns + (best->mono_after_ns - best->mono_before_ns) / 2;
    offset_ns_ = best->real_ns - mono_mid;
}

}  // namespace sidetap::capture::ebpf
