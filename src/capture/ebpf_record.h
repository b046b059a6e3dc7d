// The user-space half of the eBPF ABI (bpf/sidetap_abi.h) that needs no
// libbpf, so that it is built and unit-tested in every configuration:
//
//  - parse_record(): one ring-buffer record -> header fields + packet bytes
//    (validated against the record's length; a record that does not fit is
//    rejected, never read past);
//  - RingReader: the consumer side of a BPF ring buffer (BPF_MAP_TYPE_RINGBUF)
//    over its memory mapping. Zero-copy: next() returns a view into the
//    ring and the space is handed back to the kernel no earlier than the
//    following next() (or release()), so the view stays valid as long as
//    the LiveSource contract needs. Space is handed back in batches (one
//    store to the shared consumer position per `batch` bytes, and whenever
//    the ring is found empty): the kernel reads that position on every
//    record, and a store per record would move its cache line back and
//    forth between the reader's CPU and the producers' for every packet;
//  - WallClock: kernel timestamps (bpf_ktime_get_ns, CLOCK_MONOTONIC) to
//    wall-clock time (CLOCK_REALTIME). The offset between the two clocks is
//    measured (a REALTIME reading bracketed by two MONOTONIC readings; the
//    tightest of three brackets wins) and re-measured whenever the caller
//    asks (the eBPF source does it before each wait and every 1024 records),
//    so a step of the wall clock (settimeofday, an NTP step) is followed
//    within one batch. Slewing changes both clocks alike and needs nothing.
#pragma once

#include "sidetap_abi.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

namespace sidetap::capture::ebpf {

static_assert(sizeof(sidetap_record) == 24, "sidetap_record layout");
static_assert(offsetof(sidetap_record, ktime_ns) == 0);
static_assert(offsetof(sidetap_record, ifindex) == 8);
static_assert(offsetof(sidetap_record, orig_len) == 12);
static_assert(offsetof(sidetap_record, caplen) == 16);
static_assert(offsetof(sidetap_record, direction) == 20);
static_assert(sizeof(sidetap_addr) == 16);
static_assert(sizeof(sidetap_frag_key) == 40, "sidetap_frag_key layout");
static_assert(offsetof(sidetap_frag_key, id) == 32);
static_assert(offsetof(sidetap_frag_key, proto) == 36);
static_assert(SIDETAP_CTR_COUNT <= SIDETAP_CTR_STRIDE, "counters of one CPU fit their cache line");

struct Record {
    std::uint64_t ktime_ns = 0;
    std::uint32_t ifindex = 0;
    std::uint32_t orig_len = 0;
    std::uint8_t direction = 0;
    std::span<const std::uint8_t> data;  // from the IP header, caplen bytes
};

// False when `bytes` (one ring-buffer record) is shorter than its header
// plus caplen, or caplen is larger than SIDETAP_MAX_CAPTURE.
bool parse_record(std::span<const std::uint8_t> bytes, Record& out);

// Ring-buffer memory as the kernel maps it (see kernel/bpf/ringbuf.c):
// a consumer page (read-write, consumer position at offset 0), a producer
// page (producer position at offset 0), then the data area of `size` bytes
// mapped twice in a row (a record that wraps is contiguous in the mapping).
// Each record starts with an 8-byte header: u32 length with the BUSY (bit
// 31: still being written) and DISCARD (bit 30) flags, u32 page offset;
// records are 8-byte aligned.
class RingReader {
public:
    RingReader() = default;
    // consumer/producer: the positions; data: start of the (double-mapped)
    // data area; size: a power of two; batch: bytes consumed before the
    // consumer position is published (0: after every record).
    RingReader(std::atomic<std::uint64_t>* consumer, const std::atomic<std::uint64_t>* producer,
               const std::uint8_t* data, std::uint64_t size, std::uint64_t batch = 0);

    // Is done with the previous record (if any), then returns the next
    // committed record's bytes in `out` (true), or false when none is ready
    // (empty, or the next one is still BUSY; then everything read so far is
    // handed back). Discarded records are skipped.
    bool next(std::span<const std::uint8_t>& out);
    // Hands back the previous record and everything before it.
    void release();
    // Bytes written by the kernel and not yet consumed.
    [[nodiscard]] std::uint64_t pending_bytes() const;

private:
    std::atomic<std::uint64_t>* consumer_ = nullptr;
    const std::atomic<std::uint64_t>* producer_ = nullptr;
    const std::uint8_t* data_ = nullptr;
    std::uint64_t mask_ = 0;
    std::uint64_t batch_ = 0;
    std::uint64_t position_ = 0;   // our consumer position (ahead of *consumer_ while a record is held)
    std::uint64_t published_ = 0;  // last value stored into *consumer_
    bool holding_ = false;

    void publish();
};

// One measurement of the clocks: MONOTONIC before, REALTIME, MONOTONIC after.
struct ClockSample {
    std::int64_t mono_before_ns;
    std::int64_t real_ns;
    std::int64_t mono_after_ns;
};

class WallClock {
public:
    // Measures at once (so that to_wall() is right from the first record).
    WallClock();

    // Re-measures the offset from the system clocks.
    void refresh();
    // Sets the offset from the tightest of these samples (for tests and
    // for refresh()).
    void update(std::span<const ClockSample> samples);

    [[nodiscard]] std::uint64_t to_wall(std::uint64_t ktime_ns) const {
        return static_cast<std::uint64_t>(static_cast<std::int64_t>(ktime_ns) + offset_ns_);
    }
    [[nodiscard]] std::int64_t offset_ns() const { return offset_ns_; }

private:
    std::int64_t offset_ns_ = 0;  // REALTIME - MONOTONIC
};

}  // namespace sidetap::capture::ebpf
