// BoundedTable: a fixed-capacity hash table with insertion-order (FIFO)
// eviction, for pairing state that must never grow without bound.
//
// Contract:
//  - At most `capacity` entries. Storage is reserved at construction
//    (address space only: pages are touched as entries are first used) and
//    recycled through a free list, so inserting allocates nothing.
//  - The index starts small and doubles (rehashing in place, within the
//    reserved storage) while more than half full, up to twice the capacity:
//    a table that holds a few hundred entries keeps them in a few cache
//    lines instead of spreading them over the whole index (lookups on a
//    live capture find the index cold after every sleep).
//  - Keys are compared in full with operator==; the hash only picks the
//    probe start (open addressing, linear probing, backward-shift delete).
//    Several entries may share a key (insert() does not look): find()
//    returns one of them, for_each_match() visits them all.
//    The Hash object is supplied by the owner (seeded per table, so crafted
//    traffic cannot aim for collisions); each entry caches its hash so
//    deletes never recompute one.
//  - oldest() is the entry inserted first among the live ones; callers use
//    it for timeouts (on packet time) and to evict when full.
//  - Entry indices stay valid until the entry is erased.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

namespace sidetap::pairing {

template <typename Key, typename Value, typename Hash>
class BoundedTable {
public:
    static constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();

    struct Entry {
        Key key;
        Value value;
        std::size_t hash = 0;
        std::uint32_t prev = kNone;  // FIFO order
        std::uint32_t next = kNone;
    };

    explicit BoundedTable(std::size_t capacity, Hash hash = Hash{})
        : hash_(std::move(hash)), capacity_(capacity == 0 ? 1 : capacity) {
        while (max_slots_ < capacity_ * 2) max_slots_ <<= 1;
        // Not zeroed: only the part in use is initialised (and resident).
        index_ = std::make_unique_for_overwrite<std::uint32_t[]>(max_slots_);
        const std::size_t slots = std::min<std::size_t>(max_slots_, kInitialSlots);
        std::fill_n(index_.get(), slots, kNone);
        mask_ = slots - 1;
        entries_.reserve(capacity_);
        free_.reserve(capacity_);
    }

    [[nodiscard]] std::size_t size() const { return size_; }
    [[nodiscard]] bool full() const { return size_ >= capacity_; }
    [[nodiscard]] std::uint32_t oldest() const { return head_; }
    Entry& at(std::uint32_t i) { return entries_[i]; }
    const Entry& at(std::uint32_t i) const { return entries_[i]; }

    [[nodiscard]] std::uint32_t find(const Key& key) const { return find(key, hash_(key)); }
    [[nodiscard]] std::uint32_t find(const Key& key, std::size_t hash) const {
        for (std::size_t slot = hash & mask_;; slot = (slot + 1) & mask_) {
            const auto i = index_[slot];
            if (i == kNone) return kNone;
            if (entries_[i].hash == hash && entries_[i].key == key) return i;
        }
    }
    [[nodiscard]] std::size_t hash_of(const Key& key) const { return hash_(key); }

    // Calls fn(index) for every entry whose key equals `key` (any order).
    // fn must not insert or erase.
    template <typename Fn>
    void for_each_match(const Key& key, std::size_t hash, Fn&& fn) const {
        for (std::size_t slot = hash & mask_;; slot = (slot + 1) & mask_) {
            const auto i = index_[slot];
            if (i == kNone) return;
            if (entries_[i].hash == hash && entries_[i].key == key) fn(i);
        }
    }

    // Inserts a new entry (the caller checked full()). Returns its index.
    std::uint32_t insert(const Key& key, const Value& value) { return insert(key, value, hash_(key)); }
    std::uint32_t insert(const Key& key, const Value& value, std::size_t hash) {
        if ((size_ + 1) * 2 > mask_ + 1 && mask_ + 1 < max_slots_) grow();
        std::uint32_t i;
        if (!free_.empty()) {
            i = free_.back();
            free_.pop_back();
            entries_[i].key = key;
            entries_[i].value = value;
        } else {
            i = static_cast<std::uint32_t>(entries_.size());
            entries_.push_back(Entry{key, value});
        }
        entries_[i].hash = hash;
        std::size_t slot = hash & mask_;
        while (index_[slot] != kNone) slot = (slot + 1) & mask_;
        index_[slot] = i;
        auto& e = entries_[i];
        e.prev = tail_;
        e.next = kNone;
        if (tail_ != kNone) entries_[tail_].next = i;
        tail_ = i;
        if (head_ == kNone) head_ = i;
        ++size_;
        return i;
    }

    void erase(std::uint32_t i) {
        // Remove from the index with backward-shift deletion.
        std::size_t slot = entries_[i].hash & mask_;
        while (index_[slot] != i) slot = (slot + 1) & mask_;
        std::size_t hole = slot;
        for (std::size_t next = (hole + 1) & mask_;; next = (next + 1) & mask_) {
            const auto j = index_[next];
            if (j == kNone) break;
            const std::size_t home = entries_[j].hash & mask_;
            // Move j into the hole if its home is not in (hole, next].
            const bool between = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next);
            if (!between) {
                index_[hole] = j;
                hole = next;
            }
        }
        index_[hole] = kNone;
        auto& e = entries_[i];
        if (e.prev != kNone) entries_[e.prev].next = e.next; else head_ = e.next;
        if (e.next != kNone) entries_[e.next].prev = e.prev; else tail_ = e.prev;
        free_.push_back(i);
        --size_;
    }

private:
    static constexpr std::size_t kInitialSlots = 256;

    // Doubles the index and puts every entry back (oldest first).
    void grow() {
        const std::size_t slots = (mask_ + 1) * 2;
        std::fill_n(index_.get(), slots, kNone);
        mask_ = slots - 1;
        for (std::uint32_t i = head_; i != kNone; i = entries_[i].next) {
            std::size_t slot = entries_[i].hash & mask_;
            while (index_[slot] != kNone) slot = (slot + 1) & mask_;
            index_[slot] = i;
        }
    }

    Hash hash_;
    std::size_t capacity_;
    std::size_t max_slots_ = 1;
    std::size_t mask_ = 0;
    std::unique_ptr<std::uint32_t[]> index_;
    std::vector<Entry> entries_;
    std::vector<std::uint32_t> free_;
    std::uint32_t head_ = kNone;
    std::uint32_t tail_ = kNone;
    std::size_t size_ = 0;
};

}  // namespace sidetap::pairing
