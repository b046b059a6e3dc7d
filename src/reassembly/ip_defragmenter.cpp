#include "reassembly/ip_defragmenter.h"

#include "util/error.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>
#include <random>
#include <string>
#include <vector>

namespace sidetap::reassembly {
namespace {

constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();
constexpr std::uint32_t kMaxDatagram = 65535;
// Buffer blocks are 2 KiB (one Ethernet-MTU first fragment) to 64 KiB (the
// largest datagram), in powers of two, so a growing datagram moves at most
// five times and freed blocks fit the next datagram of the same size class.
constexpr unsigned kMinBlockShift = 11;
constexpr unsigned kMaxBlockShift = 16;
constexpr std::size_t kClasses = kMaxBlockShift - kMinBlockShift + 1;

constexpr std::size_t class_size(std::size_t c) { return std::size_t{1} << (kMinBlockShift + c); }
std::size_t class_for(std::size_t need) {
    std::size_t c = 0;
    while (class_size(c) < need) ++c;
    return c;
}

// Recycled buffer blocks with one free list per size class. Everything ever
// allocated (in use + free) stays within `limit`: when a new block would not
// fit, free blocks of other classes are given back to the system first.
class BlockPool {
public:
    explicit BlockPool(std::size_t limit) : limit_(limit) {}
    ~BlockPool() {
        for (std::size_t c = 0; c < kClasses; ++c)
            while (free_[c] != nullptr) delete[] pop(c);
    }
    BlockPool(const BlockPool&) = delete;
    BlockPool& operator=(const BlockPool&) = delete;

    // A block of class `c`, or nullptr when it would not fit in the limit.
    std::uint8_t* take(std::size_t c) {
        const std::size_t size = class_size(c);
        if (free_[c] != nullptr) {
            in_use_ += size;
            return pop(c);
        }
        while (total_ + size > limit_ && release_one_free()) {
        }
        if (total_ + size > limit_) return nullptr;
        auto* block = new (std::nothrow) std::uint8_t[size];
        if (block == nullptr) return nullptr;
        total_ += size;
        in_use_ += size;
        return block;
    }

    void give(std::uint8_t* block, std::size_t c) {
        // The free list is threaded through the blocks themselves.
        std::memcpy(block, &free_[c], sizeof(std::uint8_t*));
        free_[c] = block;
        in_use_ -= class_size(c);
    }

    [[nodiscard]] std::size_t in_use() const { return in_use_; }

private:
    std::uint8_t* pop(std::size_t c) {
        std::uint8_t* block = free_[c];
        std::memcpy(&free_[c], block, sizeof(std::uint8_t*));
        return block;
    }
    // Largest classes first: fewest frees for the most room.
    bool release_one_free() {
        for (std::size_t c = kClasses; c-- > 0;) {
            if (free_[c] != nullptr) {
                delete[] pop(c);
                total_ -= class_size(c);
                return true;
            }
        }
        return false;
    }

    std::size_t limit_;
    std::size_t total_ = 0;
    std::size_t in_use_ = 0;
    std::array<std::uint8_t*, kClasses> free_{};
};

// The datagram identity. Address bytes beyond the family's size are zero so
// that defaulted equality compares exactly the tuple.
struct Key {
    std::array<std::uint8_t, 16> src{};
    std::array<std::uint8_t, 16> dst{};
    std::uint32_t id = 0;
    std::uint8_t family = 0;
    std::uint8_t protocol = 0;  // IPv4 only; IPv6 fragments carry it in the first fragment alone
    friend bool operator==(const Key&, const Key&) = default;
};

Key make_key(const decode::IpPacket& p) {
    Key k;
    k.family = p.src.family == 6 ? 6 : 4;
    const std::size_t n = k.family == 6 ? 16 : 4;
    std::memcpy(k.src.data(), p.src.bytes.data(), n);
    std::memcpy(k.dst.data(), p.dst.bytes.data(), n);
    k.id = p.fragment_id;
    k.protocol = k.family == 4 ? p.protocol : 0;
    return k;
}

std::uint64_t mix64(std::uint64_t x) {  // splitmix64 finalizer
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

std::uint64_t hash_key(const Key& k, std::uint64_t seed) {
    std::uint64_t h = seed;
    std::uint64_t w = 0;
    for (std::size_t i = 0; i < 16; i += 8) {
        std::memcpy(&w, k.src.data() + i, 8);
        h = mix64(h ^ w);
        std::memcpy(&w, k.dst.data() + i, 8);
        h = mix64(h ^ w);
    }
    return mix64(h ^ (std::uint64_t{k.id} | std::uint64_t{k.family} << 32 | std::uint64_t{k.protocol} << 40));
}

// A fragment's byte range [start, end) as received; end <= 65535.
struct Range {
    std::uint16_t start;
    std::uint16_t end;
};

struct Tracker {
    Key key;
    std::uint64_t hash = 0;
    std::uint64_t time_ns = 0;  // first fragment (never before the previous tracker's)
    std::uint8_t* block = nullptr;
    std::uint32_t block_class = 0;
    std::uint32_t lru_prev = kNone;
    std::uint32_t lru_next = kNone;
    std::uint32_t chain = kNone;  // next in bucket, or next free slot
    std::uint32_t end = 0;        // datagram length, once the last fragment is known
    std::uint32_t max_end = 0;    // highest fragment end received
    std::uint32_t ranges = 0;
    std::uint8_t protocol = 0;
    bool in_use = false;
    bool has_last = false;
};

}  // namespace

struct IpDefragmenter::Impl {
    Impl(const DefragConfig& cfg, DefragCounters& counter_set)
        : config(cfg), counters(counter_set), pool(cfg.max_bytes) {
        if (cfg.max_datagrams == 0 || cfg.max_datagrams >= kNone / 2)
            throw util::FatalError("defragmenter: max_datagrams must be between 1 and 2^31",
                                   util::kExitUsage);
        if (cfg.max_fragments == 0 ||
            cfg.max_fragments > std::numeric_limits<std::size_t>::max() / sizeof(Range) / cfg.max_datagrams)
            throw util::FatalError("defragmenter: max_fragments must be at least 1 (and max_datagrams * "
                                   "max_fragments must fit in memory)",
                                   util::kExitUsage);
        trackers.resize(cfg.max_datagrams);
        for (std::size_t i = 0; i < trackers.size(); ++i)
            trackers[i].chain = i + 1 < trackers.size() ? static_cast<std::uint32_t>(i + 1) : kNone;
        free_slot = 0;
        std::size_t buckets = 16;
        while (buckets < cfg.max_datagrams * 2) buckets *= 2;
        index.assign(buckets, kNone);
        bucket_mask = buckets - 1;
        // Not value-initialized: pages are touched only by trackers that use them.
        ranges = std::make_unique_for_overwrite<Range[]>(cfg.max_datagrams * cfg.max_fragments);
        // A random seed keeps crafted tuples from piling into one bucket; it
        // does not change any result (eviction follows time, not buckets).
        try {
            std::random_device rd;
            seed = (std::uint64_t{rd()} << 32) ^ rd();
        } catch (...) {
            seed = 0x9e3779b97f4a7c15ULL;
        }
    }

    ~Impl() {
        for (Tracker& t : trackers)
            if (t.block != nullptr) pool.give(t.block, t.block_class);
        release_held();
    }

    Range* ranges_of(std::uint32_t idx) { return ranges.get() + std::size_t{idx} * config.max_fragments; }

    std::uint32_t find(const Key& key, std::uint64_t hash) const {
        for (std::uint32_t i = index[hash & bucket_mask]; i != kNone; i = trackers[i].chain)
            if (trackers[i].hash == hash && trackers[i].key == key) return i;
        return kNone;
    }

    std::uint32_t create(const Key& key, std::uint64_t hash, std::uint64_t time_ns) {
        if (active == trackers.size()) {
            counters.add(DefragEvent::EvictedTableFull);
            drop(lru_head);
        }
        const std::uint32_t idx = free_slot;
        Tracker& t = trackers[idx];
        free_slot = t.chain;
        t.key = key;
        t.hash = hash;
        // Keeping the list ordered by time makes expiry a walk from the head.
        t.time_ns = lru_tail != kNone ? std::max(time_ns, trackers[lru_tail].time_ns) : time_ns;
        t.in_use = true;
        t.lru_prev = lru_tail;
        t.lru_next = kNone;
        if (lru_tail != kNone)
            trackers[lru_tail].lru_next = idx;
        else
            lru_head = idx;
        lru_tail = idx;
        std::uint32_t& bucket = index[hash & bucket_mask];
        t.chain = bucket;
        bucket = idx;
        ++active;
        return idx;
    }

    void drop(std::uint32_t idx) {
        Tracker& t = trackers[idx];
        std::uint32_t* link = &index[t.hash & bucket_mask];
        while (*link != idx) link = &trackers[*link].chain;
        *link = t.chain;
        if (t.lru_prev != kNone)
            trackers[t.lru_prev].lru_next = t.lru_next;
        else
            lru_head = t.lru_next;
        if (t.lru_next != kNone)
            trackers[t.lru_next].lru_prev = t.lru_prev;
        else
            lru_tail = t.lru_prev;
        if (t.block != nullptr) pool.give(t.block, t.block_class);
        t = Tracker{};
        t.chain = free_slot;
        free_slot = idx;
        --active;
    }

    void expire(std::uint64_t now_ns) {
        while (lru_head != kNone) {
            const std::uint64_t t = trackers[lru_head].time_ns;
            if (now_ns <= t || now_ns - t <= config.timeout_ns) break;
            counters.add(DefragEvent::TimedOut);
            drop(lru_head);
        }
    }

    // A block of class `c`, evicting the oldest datagrams other than `keep`
    // while it does not fit. nullptr when nothing is left to evict.
    std::uint8_t* acquire(std::size_t c, std::uint32_t keep) {
        for (;;) {
            if (std::uint8_t* block = pool.take(c)) return block;
            std::uint32_t victim = lru_head;
            if (victim == keep) victim = trackers[victim].lru_next;
            if (victim == kNone) return nullptr;
            counters.add(DefragEvent::EvictedMemory);
            drop(victim);
        }
    }

    void release_held() {
        if (held_block != nullptr) pool.give(held_block, held_class);
        held_block = nullptr;
    }

    bool add(const decode::IpPacket& frag, std::uint64_t time_ns, decode::IpPacket& out);

    DefragConfig config;
    DefragCounters& counters;
    BlockPool pool;
    std::vector<Tracker> trackers;
    std::vector<std::uint32_t> index;
    std::size_t bucket_mask = 0;
    std::unique_ptr<Range[]> ranges;
    std::uint32_t free_slot = kNone;
    std::uint32_t lru_head = kNone;
    std::uint32_t lru_tail = kNone;
    std::size_t active = 0;
    std::uint64_t seed = 0;
    std::uint8_t* held_block = nullptr;  // the datagram last returned
    std::size_t held_class = 0;
};

bool IpDefragmenter::Impl::add(const decode::IpPacket& frag, std::uint64_t time_ns, decode::IpPacket& out) {
    release_held();
    expire(time_ns);
    if (!frag.is_fragment) return false;
    counters.add(DefragEvent::Fragments);
    if (frag.truncated) {
        counters.add(DefragEvent::Inconsistent);
        return false;
    }

    const Key key = make_key(frag);
    const std::uint64_t hash = hash_key(key, seed);
    std::uint32_t idx = find(key, hash);
    const std::uint8_t* data = frag.payload.data();
    const std::size_t len = frag.payload.size();
    const std::uint64_t start64 = frag.fragment_offset;
    const std::uint64_t end64 = start64 + len;
    const bool last = !frag.more_fragments;

    auto give_up = [&](DefragEvent why) {
        counters.add(why);
        if (idx != kNone) drop(idx);
        return false;
    };
    if (end64 > kMaxDatagram) return give_up(DefragEvent::TooLarge);
    const auto start = static_cast<std::uint32_t>(start64);
    const auto end = static_cast<std::uint32_t>(end64);
    // Only the last fragment may end off an 8-byte boundary; an empty middle
    // fragment carries nothing and is not something a real stack sends.
    if (!last && (len == 0 || len % 8 != 0)) return give_up(DefragEvent::Inconsistent);
    if (idx != kNone) {
        const Tracker& t = trackers[idx];
        if (last ? (t.has_last ? end != t.end : end < t.max_end) : (t.has_last && end > t.end))
            return give_up(DefragEvent::Inconsistent);
    } else {
        idx = create(key, hash, time_ns);
    }
    Tracker& t = trackers[idx];
    Range* r = ranges_of(idx);
    Range* const r_end = r + t.ranges;
    Range* pos = std::lower_bound(r, r_end, Range{static_cast<std::uint16_t>(start), static_cast<std::uint16_t>(end)},
                                  [](const Range& a, const Range& b) {
                                      return a.start != b.start ? a.start < b.start : a.end < b.end;
                                  });
    const bool same_range = pos != r_end && pos->start == start && pos->end == end;
    if (same_range && (len == 0 || std::memcmp(t.block + start, data, len) == 0)) {
        counters.add(DefragEvent::Duplicates);
        return false;
    }
    if (!same_range && t.ranges == config.max_fragments) return give_up(DefragEvent::TooManyFragments);

    // Size the buffer for the whole datagram once its end is known.
    const std::uint32_t need = last ? end : (t.has_last ? t.end : end);
    if (need > 0 && (t.block == nullptr || class_size(t.block_class) < need)) {
        const std::size_t c = class_for(need);
        std::uint8_t* block = acquire(c, idx);
        if (block == nullptr) return give_up(DefragEvent::EvictedMemory);
        if (t.block != nullptr) {
            std::memcpy(block, t.block, t.max_end);
            pool.give(t.block, t.block_class);
        }
        t.block = block;
        t.block_class = static_cast<std::uint32_t>(c);
    }

    auto copy = [&](std::uint32_t from, std::uint32_t to) {
        std::memcpy(t.block + from, data + (from - start), to - from);
    };
    const bool overlaps = len > 0 && std::any_of(r, r_end, [&](const Range& q) {
                              return q.start < end && start < q.end;
                          });
    if (!overlaps) {
        if (len > 0) copy(start, end);
    } else {
        counters.add(DefragEvent::Overlaps);
        if (config.overlap == OverlapPolicy::Last) {
            copy(start, end);
        } else {
            // First: bytes already received win; fill only the holes.
            std::uint32_t at = start;
            for (const Range* q = r; q != r_end && q->start < end && at < end; ++q) {
                if (q->end <= at) continue;
                if (q->start > at) copy(at, q->start);
                at = std::max<std::uint32_t>(at, q->end);
            }
            if (at < end) copy(at, end);
        }
    }
    if (!same_range) {
        std::copy_backward(pos, r_end, r_end + 1);
        *pos = Range{static_cast<std::uint16_t>(start), static_cast<std::uint16_t>(end)};
        ++t.ranges;
    }
    t.max_end = std::max(t.max_end, end);
    if (last) {
        t.has_last = true;
        t.end = end;
    }
    if (start == 0) t.protocol = frag.protocol;
    if (!t.has_last) return false;

    std::uint32_t covered = 0;
    for (const Range* q = r; q != r + t.ranges && q->start <= covered; ++q) covered = std::max<std::uint32_t>(covered, q->end);
    if (covered < t.end) return false;

    out = decode::IpPacket{};
    out.src.family = key.family;
    out.src.bytes = key.src;
    out.dst.family = key.family;
    out.dst.bytes = key.dst;
    out.protocol = t.protocol;
    out.fragment_id = key.id;
    out.payload = std::span<const std::uint8_t>(t.block, t.end);
    held_block = t.block;
    held_class = t.block_class;
    t.block = nullptr;
    drop(idx);
    counters.add(DefragEvent::Reassembled);
    return true;
}

IpDefragmenter::IpDefragmenter(const DefragConfig& config)
    : counters_(kDefragEventNames), impl_(std::make_unique<Impl>(config, counters_)) {}

IpDefragmenter::~IpDefragmenter() = default;

bool IpDefragmenter::add(const decode::IpPacket& fragment, std::uint64_t timestamp_ns, decode::IpPacket& out) {
    return impl_->add(fragment, timestamp_ns, out);
}

void IpDefragmenter::expire(std::uint64_t now_ns) {
    impl_->release_held();
    impl_->expire(now_ns);
}

void IpDefragmenter::finish() {
    impl_->release_held();
    while (impl_->lru_head != kNone) {
        counters_.add(DefragEvent::Incomplete);
        impl_->drop(impl_->lru_head);
    }
}

std::size_t IpDefragmenter::active_datagrams() const { return impl_->active; }

std::size_t IpDefragmenter::buffered_bytes() const { return impl_->pool.in_use(); }

}  // namespace sidetap::reassembly
