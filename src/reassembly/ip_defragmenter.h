// IpDefragmenter: rebuilds IPv4 and IPv6 datagrams from their fragments.
//
// Contract:
//  - add() takes one fragment (IpPacket with is_fragment = true) and its
//    packet time. When that fragment completes its datagram, add() returns
//    true and fills `out` with the whole datagram: src/dst/protocol of the
//    datagram (protocol from the offset-0 fragment; for IPv6 the next header
//    after the Fragment header), is_fragment = false, more_fragments = false,
//    fragment_offset = 0, fragment_id kept, payload = the rebuilt bytes in an
//    internal buffer that stays valid until the next call to add(), expire()
//    or finish() (it is then recycled). A packet that is not a fragment
//    returns false and is not counted (a caller error).
//  - Datagrams are keyed by the whole tuple with full equality (IPv4:
//    family, source, destination, protocol, 16-bit id; IPv6: family,
//    source, destination, 32-bit id) — a hash only picks the bucket.
//  - A datagram is complete when its last fragment (MF = 0) is known and
//    [0, end) is covered by the fragments received.
//  - Fragments may come in any order. A fragment whose range was received
//    before and whose bytes are already in the buffer is a Duplicate and is
//    ignored. A fragment touching bytes received before is an Overlap: with
//    OverlapPolicy::First (default; Linux/BSD-like) the bytes already
//    received win and the fragment only fills holes; with Last the new bytes
//    overwrite. The classic Sturges/Novak overlap vectors in the unit tests
//    document both. Overlaps are counted either way.
//  - Malformed fragments drop their whole datagram (if one is open):
//    end > 65535 -> TooLarge; a second last fragment with a different end,
//    data beyond a known end, a last fragment ending before data already
//    received, or a non-last fragment whose length is 0 or not a multiple
//    of 8 -> Inconsistent. A truncated fragment (captured short) counts
//    Inconsistent and is ignored without dropping its datagram.
//  - Bounded: at most max_datagrams open datagrams, max_bytes of buffer
//    memory in total (open datagrams, the returned datagram and the recycled
//    free blocks together), max_fragments distinct fragment ranges per
//    datagram. When a new datagram finds the table full, the oldest open
//    datagram (by first-fragment time) is dropped (EvictedTableFull); when a
//    buffer does not fit in max_bytes, the oldest other datagrams are dropped
//    until it does (EvictedMemory) — if it cannot fit at all, its own
//    datagram is dropped (EvictedMemory). One fragment more than
//    max_fragments drops its datagram (TooManyFragments).
//  - Timeouts on the caller's clock (the time passed to add() and expire():
//    the pipeline's expiry clock, which never goes back and ignores damaged
//    timestamps and clock steps; only timers use it): add() and expire()
//    first drop every datagram whose first fragment is more than timeout_ns
//    older than the given time (TimedOut). Datagrams are kept in first-fragment order; a fragment
//    whose time goes backwards is filed with the newest datagram's time.
//  - Memory for trackers, their fragment ranges and the index is reserved at
//    construction; datagram buffers are power-of-two blocks (2 KiB..64 KiB)
//    from a recycled pool, so the steady state allocates nothing.
//  - No exceptions on the packet path. The constructor throws
//    util::FatalError for a configuration with max_datagrams or
//    max_fragments = 0.
#pragma once

#include "decode/packet.h"
#include "util/counters.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace sidetap::reassembly {

enum class OverlapPolicy : std::uint8_t { First, Last };

struct DefragConfig {
    std::size_t max_datagrams = 8192;     // open datagrams (trackers)
    std::size_t max_bytes = 64u << 20;    // 64 MiB of buffer blocks, all datagrams together
    std::size_t max_fragments = 128;      // distinct fragment ranges per datagram
    std::uint64_t timeout_ns = 30'000'000'000ULL;  // packet time since the first fragment
    OverlapPolicy overlap = OverlapPolicy::First;
};

enum class DefragEvent : std::size_t {
    Fragments,          // fragments handed to add()
    Reassembled,        // datagrams completed
    Duplicates,         // fragments with a range already received and the same bytes: ignored
    Overlaps,           // fragments overlapping earlier data (policy applied)
    TimedOut,           // incomplete datagrams dropped after timeout_ns
    EvictedTableFull,   // incomplete datagrams dropped: max_datagrams reached
    EvictedMemory,      // incomplete datagrams dropped: max_bytes reached
    TooManyFragments,   // datagram dropped: more than max_fragments
    TooLarge,           // datagram dropped: fragment end beyond 65535 bytes
    Inconsistent,       // datagram dropped: conflicting last fragment / end, bad middle length;
                        // also truncated fragments (ignored)
    Incomplete,         // datagrams still incomplete at the end (counted by finish())
    Count_
};
inline constexpr std::array<std::string_view, static_cast<std::size_t>(DefragEvent::Count_)> kDefragEventNames{
    "defrag_fragments",  "defrag_reassembled",         "defrag_duplicates",      "defrag_overlaps",
    "defrag_timed_out",  "defrag_evicted_table_full",  "defrag_evicted_memory",  "defrag_too_many_fragments",
    "defrag_too_large",  "defrag_inconsistent",        "defrag_incomplete_at_end"};
using DefragCounters = util::CounterSet<DefragEvent, static_cast<std::size_t>(DefragEvent::Count_)>;

class IpDefragmenter {
public:
    explicit IpDefragmenter(const DefragConfig& config = {});
    ~IpDefragmenter();
    IpDefragmenter(const IpDefragmenter&) = delete;
    IpDefragmenter& operator=(const IpDefragmenter&) = delete;

    bool add(const decode::IpPacket& fragment, std::uint64_t timestamp_ns, decode::IpPacket& out);
    // Drops datagrams whose first fragment is more than timeout_ns before
    // `now_ns` (TimedOut).
    void expire(std::uint64_t now_ns);
    // End of input: counts every tracker still open as Incomplete and drops it.
    void finish();

    [[nodiscard]] const DefragCounters& counters() const { return counters_; }
    // Open (incomplete) datagrams.
    [[nodiscard]] std::size_t active_datagrams() const;
    // Buffer bytes held for open datagrams and the datagram last returned
    // (block sizes, so >= the bytes received); never above max_bytes.
    [[nodiscard]] std::size_t buffered_bytes() const;

private:
    struct Impl;
    DefragCounters counters_;  // before impl_: Impl keeps a reference to it
    std::unique_ptr<Impl> impl_;
};

}  // namespace sidetap::reassembly
