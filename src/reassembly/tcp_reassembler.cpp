#include "reassembly/tcp_reassembler.h"

#include "reassembly/dns_tcp_framing.h"

#include "dns/message.h"
#include "util/error.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <random>
#include <vector>

namespace sidetap::reassembly {
namespace {

constexpr std::uint32_t kNil = 0xFFFFFFFFu;

constexpr std::size_t kDecisionBytes = kFramingDecisionBytes;
constexpr std::size_t kProbeBytes = kFramingProbeBytes;

// Sequence numbers compare modulo 2^32 (RFC 793 §3.3): a is before b when
// the signed distance is negative. C++20 makes the conversion well defined.
std::int32_t seq_diff(std::uint32_t a, std::uint32_t b) { return static_cast<std::int32_t>(a - b); }
bool seq_lt(std::uint32_t a, std::uint32_t b) { return seq_diff(a, b) < 0; }
bool seq_leq(std::uint32_t a, std::uint32_t b) { return seq_diff(a, b) <= 0; }
std::uint32_t seq_add(std::uint32_t a, std::size_t n) { return a + static_cast<std::uint32_t>(n); }

std::uint16_t be16(const std::uint8_t* p) { return framing_be16(p); }

// An out-of-order byte range of one direction, with the time of the
// segment that brought it.
struct Range {
    std::uint32_t seq = 0;
    std::uint32_t len = 0;
    std::uint64_t timestamp_ns = 0;
};

// Per-direction storage, recycled through a free list.
struct Buf {
    std::vector<std::uint8_t> msg;  // pending: an unfinished message (framed) or look-ahead (resync)
    std::vector<std::uint8_t> win;  // out-of-order bytes; win[0] is sequence number win_base
    std::uint32_t win_base = 0;
    std::vector<Range> ranges;      // out-of-order ranges: disjoint, in sequence order
    std::uint32_t next_free = kNil;
};

using Mode = FrameMode;

struct Dir {
    std::uint32_t next_seq = 0;   // next expected sequence number
    std::uint32_t isn = 0;        // valid when syn
    std::uint32_t acked = 0;      // highest ACK the peer sent for this direction, valid when acked_valid
    std::uint32_t discard = 0;    // bytes still to skip of a message too long to buffer
    std::uint32_t buf = kNil;     // index into the buffer pool
    std::uint32_t resync_run = 0; // bytes skipped since the last boundary found
    std::uint32_t first_seq = 0;  // first data byte seen, when picked up without SYN
    std::uint32_t fin_seq = 0;    // end of the data, valid when fin (FIN's or RST's sequence number)
    Mode mode = Mode::Idle;
    bool syn = false;
    bool trusted = false;         // framing known from the SYN, no hole since
    bool acked_valid = false;
    bool fin = false;             // FIN (or RST) seen; the direction closes once its data is complete
    bool fin_waited = false;      // ...and it had to wait for data (counted once)
};

struct Key {
    decode::IpAddress a;
    decode::IpAddress b;
    std::uint16_t port_a = 0;
    std::uint16_t port_b = 0;
    friend bool operator==(const Key&, const Key&) = default;
};

struct Conn {
    Key key;
    std::uint64_t last_ns = 0;
    std::uint64_t closing_since = 0; // clock when a direction started waiting for data before its FIN/RST
    std::uint32_t hash_next = kNil;  // bucket chain, or free list when unused
    std::uint32_t lru_prev = kNil;
    std::uint32_t lru_next = kNil;
    std::uint32_t wait_prev = kNil;  // list of connections waiting to close, oldest first
    std::uint32_t wait_next = kNil;
    bool in_use = false;
    bool waiting = false;
    std::array<Dir, 2> dir{};        // 0: a -> b, 1: b -> a
};

bool endpoint_less(const decode::IpAddress& x, std::uint16_t xp, const decode::IpAddress& y, std::uint16_t yp) {
    if (x.family != y.family) return x.family < y.family;
    const int c = std::memcmp(x.bytes.data(), y.bytes.data(), x.bytes.size());
    if (c != 0) return c < 0;
    return xp < yp;
}

std::uint64_t mix(std::uint64_t h, std::uint64_t v) {
    h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
    h *= 0xBF58476D1CE4E5B9ULL;
    return h ^ (h >> 31);
}

}  // namespace

struct TcpReassembler::Impl {
    Impl(const TcpConfig& config, TcpCounters& counters);

    TcpConfig cfg;
    TcpCounters& ctr;
    TcpMessageSink* sink = nullptr;

    std::vector<Conn> conns;  // up to max_streams slots (capacity reserved)
    std::uint32_t free_conn = kNil;
    std::vector<std::uint32_t> buckets;
    std::uint64_t bucket_mask = 0;
    std::uint64_t seed = 0;
    std::uint32_t lru_head = kNil;  // least recently active
    std::uint32_t lru_tail = kNil;
    std::uint32_t wait_head = kNil;  // connections waiting to close, by closing_since
    std::uint32_t wait_tail = kNil;
    std::size_t active = 0;
    std::uint64_t clock_now = 0;  // the caller's clock at the current call

    std::deque<Buf> bufs;  // grows while warming up (references stay valid), then recycled
    std::uint32_t free_buf = kNil;    // spare buffers holding storage
    std::uint32_t free_empty = kNil;  // spare buffers without storage
    std::size_t storage = 0;     // capacity of every msg/win vector, in use or spare
    std::vector<Range> pieces;   // scratch for insert_ooo, reserved

    std::uint32_t current = kNil;  // connection being handled: never evicted for memory
    int closing = 0;               // > 0 while flushing a closing connection: no eviction

    // Table.
    std::uint64_t hash(const Key& k) const;
    std::uint32_t find(const Key& k) const;
    std::uint32_t open(const Key& k, std::uint64_t now);
    void close(std::uint32_t idx, TcpEvent why);
    void lru_unlink(std::uint32_t idx);
    void lru_push(std::uint32_t idx);
    void expire_idle(std::uint64_t now);
    void expire_waiting(std::uint64_t now);
    void wait_unlink(std::uint32_t idx);
    void settle(std::uint32_t idx);

    // Storage.
    Buf& buf_of(Dir& d);
    void release_buf_if_empty(Dir& d);
    void release_buf(Dir& d);
    void free_vector(std::vector<std::uint8_t>& v);
    void drop_spare();
    bool make_room(std::size_t extra);
    bool reserve(std::vector<std::uint8_t>& v, std::size_t wanted, std::size_t at_least);

    // Stream.
    decode::Segment synth(const Conn& c, int d, std::uint32_t seq, std::uint64_t ts) const;
    void on_syn(std::uint32_t& idx, int d, const decode::Segment& seg);
    void on_data(Conn& c, int d, std::uint32_t seq, std::span<const std::uint8_t> data, const decode::Segment& seg);
    void on_fin(Conn& c, int d, std::uint32_t fin_seq);
    void on_rst(Conn& c, int d, const decode::Segment& seg);
    bool complete(const Conn& c, int d) const;
    void close_dir(Conn& c, int d);
    void check_acked_gap(Conn& c, int d);
    void give_up_acked_gaps(Conn& c, int d);
    bool acked_gap(const Conn& c, int d) const;
    bool insert_ooo(Dir& D, std::uint32_t seq, std::span<const std::uint8_t> data, std::uint64_t ts);
    void hole(Conn& c, int d, std::uint32_t target);
    void pull(Conn& c, int d, const decode::Segment* seg);
    void flush_dir(Conn& c, int d);
    void consume(Dir& D, std::span<const std::uint8_t> data, const decode::Segment& rep);
    std::size_t process(Dir& D, std::span<const std::uint8_t> buf, const decode::Segment& rep);
    void stash(Dir& D, std::span<const std::uint8_t> tail);
    void give_up(Dir& D);
};

TcpReassembler::Impl::Impl(const TcpConfig& config, TcpCounters& counters) : cfg(config), ctr(counters) {
    if (cfg.max_streams == 0 || cfg.max_pending_segments == 0 || cfg.max_stream_bytes < kProbeBytes)
        throw util::FatalError("tcp reassembly: max_streams and max_pending_segments must be > 0, "
                               "max_stream_bytes >= 512",
                               util::kExitUsage);
    if (cfg.max_streams >= kNil / 2) throw util::FatalError("tcp reassembly: max_streams too large", util::kExitUsage);
    // Address space for every slot, touched only as slots are first used:
    // a capture with few TCP streams does not pay for max_streams of them
    // (start-up time, resident memory of every capture shard).
    conns.reserve(cfg.max_streams);
    std::size_t nb = 16;
    while (nb < cfg.max_streams * 2) nb <<= 1;
    buckets.assign(nb, kNil);
    bucket_mask = nb - 1;
    // The seed only spreads buckets (keys are compared in full), so a
    // per-instance random seed keeps crafted tuples from piling into one
    // chain without affecting the output.
    std::random_device rd;
    seed = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    pieces.reserve(cfg.max_pending_segments + 1);
}

// ---------------------------------------------------------------- table

std::uint64_t TcpReassembler::Impl::hash(const Key& k) const {
    std::uint64_t h = seed;
    auto addr = [&](const decode::IpAddress& a) {
        std::uint64_t lo = 0, hi = 0;
        std::memcpy(&lo, a.bytes.data(), 8);
        std::memcpy(&hi, a.bytes.data() + 8, 8);
        h = mix(h, a.family);
        h = mix(h, lo);
        h = mix(h, hi);
    };
    addr(k.a);
    addr(k.b);
    h = mix(h, (static_cast<std::uint64_t>(k.port_a) << 16) | k.port_b);
    return h;
}

std::uint32_t TcpReassembler::Impl::find(const Key& k) const {
    for (std::uint32_t i = buckets[hash(k) & bucket_mask]; i != kNil; i = conns[i].hash_next)
        if (conns[i].key == k) return i;
    return kNil;
}

void TcpReassembler::Impl::lru_unlink(std::uint32_t idx) {
    Conn& c = conns[idx];
    if (c.lru_prev != kNil) conns[c.lru_prev].lru_next = c.lru_next; else lru_head = c.lru_next;
    if (c.lru_next != kNil) conns[c.lru_next].lru_prev = c.lru_prev; else lru_tail = c.lru_prev;
    c.lru_prev = c.lru_next = kNil;
}

void TcpReassembler::Impl::lru_push(std::uint32_t idx) {
    Conn& c = conns[idx];
    c.lru_prev = lru_tail;
    c.lru_next = kNil;
    if (lru_tail != kNil) conns[lru_tail].lru_next = idx; else lru_head = idx;
    lru_tail = idx;
}

std::uint32_t TcpReassembler::Impl::open(const Key& k, std::uint64_t now) {
    if (free_conn == kNil && conns.size() < cfg.max_streams) {
        conns.emplace_back();  // within the reserved capacity: no allocation, no move
        free_conn = static_cast<std::uint32_t>(conns.size() - 1);
    }
    if (free_conn == kNil) {
        std::uint32_t victim = lru_head;
        if (victim == current) victim = conns[victim].lru_next;
        if (victim == kNil) return kNil;
        close(victim, TcpEvent::StreamsEvicted);
    }
    const std::uint32_t idx = free_conn;
    Conn& c = conns[idx];
    free_conn = c.hash_next;
    c = Conn{};
    c.key = k;
    c.in_use = true;
    c.last_ns = now;
    std::uint32_t& head = buckets[hash(k) & bucket_mask];
    c.hash_next = head;
    head = idx;
    lru_push(idx);
    ++active;
    ctr.add(TcpEvent::StreamsOpened);
    return idx;
}

void TcpReassembler::Impl::close(std::uint32_t idx, TcpEvent why) {
    Conn& c = conns[idx];
    ++closing;
    flush_dir(c, 0);
    flush_dir(c, 1);
    --closing;
    ctr.add(why);
    for (std::uint32_t* p = &buckets[hash(c.key) & bucket_mask]; *p != kNil; p = &conns[*p].hash_next) {
        if (*p == idx) {
            *p = c.hash_next;
            break;
        }
    }
    lru_unlink(idx);
    wait_unlink(idx);
    c.in_use = false;
    c.hash_next = free_conn;
    free_conn = idx;
    --active;
}

void TcpReassembler::Impl::wait_unlink(std::uint32_t idx) {
    Conn& c = conns[idx];
    if (!c.waiting) return;
    if (c.wait_prev != kNil) conns[c.wait_prev].wait_next = c.wait_next; else wait_head = c.wait_next;
    if (c.wait_next != kNil) conns[c.wait_next].wait_prev = c.wait_prev; else wait_tail = c.wait_prev;
    c.wait_prev = c.wait_next = kNil;
    c.waiting = false;
}

// After a segment: closes the directions whose data is complete up to their
// FIN/RST, releases the connection when both are closed, and keeps it on the
// waiting list while a closing direction lacks data or a direction has a gap
// the peer acknowledged.
void TcpReassembler::Impl::settle(std::uint32_t idx) {
    Conn& c = conns[idx];
    bool incomplete = false;
    for (int d = 0; d < 2; ++d) {
        Dir& D = c.dir[d];
        if (D.mode == Mode::Closed) continue;
        if (!D.fin) {
            incomplete = incomplete || acked_gap(c, d);
            continue;
        }
        if (cfg.close_grace_ns == 0 || complete(c, d)) {
            close_dir(c, d);
        } else {
            incomplete = true;
            if (!D.fin_waited) ctr.add(TcpEvent::ReorderedCloses);
            D.fin_waited = true;
        }
    }
    if (c.dir[0].mode == Mode::Closed && c.dir[1].mode == Mode::Closed) {
        close(idx, TcpEvent::StreamsClosed);
        return;
    }
    if (!incomplete) {
        wait_unlink(idx);
        return;
    }
    if (c.waiting) return;
    c.waiting = true;
    c.closing_since = clock_now;
    c.wait_prev = wait_tail;
    c.wait_next = kNil;
    if (wait_tail != kNil) conns[wait_tail].wait_next = idx; else wait_head = idx;
    wait_tail = idx;
}

// Closing directions that waited close_grace_ns for their missing data
// give it up (holes, partial message counted) and close.
void TcpReassembler::Impl::expire_waiting(std::uint64_t t) {
    while (wait_head != kNil && wait_head != current) {
        const std::uint32_t idx = wait_head;
        Conn& c = conns[idx];
        if (t <= c.closing_since || t - c.closing_since <= cfg.close_grace_ns) break;
        wait_unlink(idx);
        for (int d = 0; d < 2; ++d) {
            if (c.dir[d].mode == Mode::Closed) continue;
            if (c.dir[d].fin)
                close_dir(c, d);
            else
                give_up_acked_gaps(c, d);
        }
        if (c.dir[0].mode == Mode::Closed && c.dir[1].mode == Mode::Closed) {
            close(idx, TcpEvent::StreamsClosed);
        } else {
            release_buf_if_empty(c.dir[0]);
            release_buf_if_empty(c.dir[1]);
        }
    }
}

void TcpReassembler::Impl::expire_idle(std::uint64_t now) {
    while (lru_head != kNil && lru_head != current) {
        const Conn& c = conns[lru_head];
        if (now <= c.last_ns || now - c.last_ns <= cfg.idle_timeout_ns) break;
        close(lru_head, TcpEvent::StreamsTimedOut);
    }
}

// -------------------------------------------------------------- storage

Buf& TcpReassembler::Impl::buf_of(Dir& d) {
    if (d.buf == kNil) {
        if (free_buf != kNil) {
            d.buf = free_buf;
            free_buf = bufs[free_buf].next_free;
        } else if (free_empty != kNil) {
            d.buf = free_empty;
            free_empty = bufs[free_empty].next_free;
        } else {
            // Warm-up only: at most two buffers per connection slot exist.
            d.buf = static_cast<std::uint32_t>(bufs.size());
            // Range storage is reserved on first out-of-order data (and
            // counted in `storage`), not here: most streams never need it.
            bufs.emplace_back();
        }
        bufs[d.buf].next_free = kNil;
    }
    return bufs[d.buf];
}

void TcpReassembler::Impl::release_buf(Dir& d) {
    if (d.buf == kNil) return;
    Buf& b = bufs[d.buf];
    b.msg.clear();
    b.win.clear();
    b.ranges.clear();
    std::uint32_t& list = b.msg.capacity() + b.win.capacity() + b.ranges.capacity() > 0 ? free_buf : free_empty;
    b.next_free = list;
    list = d.buf;
    d.buf = kNil;
}

void TcpReassembler::Impl::release_buf_if_empty(Dir& d) {
    if (d.buf == kNil) return;
    const Buf& b = bufs[d.buf];
    if (b.msg.empty() && b.ranges.empty()) release_buf(d);
}

void TcpReassembler::Impl::free_vector(std::vector<std::uint8_t>& v) {
    storage -= v.capacity();
    std::vector<std::uint8_t>().swap(v);
}

// Frees the storage of one spare buffer.
void TcpReassembler::Impl::drop_spare() {
    const std::uint32_t i = free_buf;
    Buf& b = bufs[i];
    free_buf = b.next_free;
    free_vector(b.msg);
    free_vector(b.win);
    storage -= b.ranges.capacity() * sizeof(Range);
    std::vector<Range>().swap(b.ranges);
    b.next_free = free_empty;
    free_empty = i;
}

// Makes `extra` bytes of storage fit under max_total_bytes: spare storage
// first, then the least recently active other connections.
bool TcpReassembler::Impl::make_room(std::size_t extra) {
    while (storage + extra > cfg.max_total_bytes) {
        if (free_buf != kNil) {
            drop_spare();
            continue;
        }
        if (closing > 0) return false;
        std::uint32_t victim = lru_head;
        if (victim == current) victim = conns[victim].lru_next;
        if (victim == kNil) return false;
        close(victim, TcpEvent::StreamsEvicted);
    }
    return true;
}

// Ensures v.capacity() >= at_least, asking for `wanted` (>= at_least) when it
// fits. Accounts the storage; false when the bound does not allow it.
bool TcpReassembler::Impl::reserve(std::vector<std::uint8_t>& v, std::size_t wanted, std::size_t at_least) {
    if (v.capacity() >= at_least) return true;
    const std::size_t old = v.capacity();
    std::size_t ask = std::max(wanted, at_least);
    if (!make_room(ask - old)) {
        ask = at_least;
        if (!make_room(ask - old)) return false;
    }
    v.reserve(ask);
    storage += v.capacity() - old;
    return true;
}

// --------------------------------------------------------------- stream

decode::Segment TcpReassembler::Impl::synth(const Conn& c, int d, std::uint32_t seq, std::uint64_t ts) const {
    decode::Segment s;
    s.timestamp_ns = ts;
    s.transport = decode::Transport::Tcp;
    s.src = d == 0 ? c.key.a : c.key.b;
    s.dst = d == 0 ? c.key.b : c.key.a;
    s.src_port = d == 0 ? c.key.port_a : c.key.port_b;
    s.dst_port = d == 0 ? c.key.port_b : c.key.port_a;
    s.seq = seq;
    return s;
}

void TcpReassembler::Impl::give_up(Dir& D) {
    D.mode = Mode::Ignore;
    D.discard = 0;
    ctr.add(TcpEvent::NotDns);
}

// Scans `buf` from its start (dns_tcp_framing.h): emits every whole
// message, skips what cannot be a boundary while resynchronising, and
// returns how many bytes were used up; the rest (an unfinished message or
// look-ahead) is for later.
std::size_t TcpReassembler::Impl::process(Dir& D, std::span<const std::uint8_t> buf, const decode::Segment& rep) {
    struct Hooks {
        Impl& impl;
        Dir& dir;
        const decode::Segment& rep;
        void message(std::span<const std::uint8_t> wire) {
            impl.ctr.add(TcpEvent::Messages);
            impl.sink->on_message(rep, wire, rep.timestamp_ns);
        }
        void skipped(std::size_t n) { impl.ctr.add(TcpEvent::ResyncSkippedBytes, n); }
        void gave_up() { impl.give_up(dir); }
    };
    return scan_messages(D, buf, cfg.max_stream_bytes, Hooks{*this, D, rep});
}

// Keeps the unfinished tail of in-order data for the next segment.
void TcpReassembler::Impl::stash(Dir& D, std::span<const std::uint8_t> tail) {
    Buf& b = buf_of(D);
    const std::size_t room = cfg.max_stream_bytes > b.win.size() ? cfg.max_stream_bytes - b.win.size() : 0;
    if (D.mode == Mode::Resync) {
        // tail < kDecisionBytes: the scan stopped for lack of bytes.
        if (tail.size() > room || !reserve(b.msg, std::min(kProbeBytes, std::max(room, tail.size())), tail.size())) {
            ctr.add(TcpEvent::StreamBufferFull);
            ctr.add(TcpEvent::ResyncSkippedBytes, tail.size());
            return;
        }
        b.msg.assign(tail.begin(), tail.end());
        return;
    }
    const std::size_t need = tail.size() < 2 ? 2 : be16(tail.data()) + std::size_t{2};
    const std::size_t hint = tail.size() < 2 ? 64 : need;
    if (need > room || !reserve(b.msg, std::min(hint, room), need)) {
        ctr.add(TcpEvent::StreamBufferFull);
        if (D.trusted && tail.size() >= 2) {
            // Skip the message by its length: the framing stays known.
            D.discard = static_cast<std::uint32_t>(need - tail.size());
        } else {
            D.mode = Mode::Resync;
            D.trusted = false;
            ctr.add(TcpEvent::ResyncSkippedBytes, tail.size());
        }
        return;
    }
    b.msg.assign(tail.begin(), tail.end());
}

// Feeds in-order bytes of one direction.
void TcpReassembler::Impl::consume(Dir& D, std::span<const std::uint8_t> data, const decode::Segment& rep) {
    while (!data.empty()) {
        if (D.mode != Mode::Framed && D.mode != Mode::Resync) return;
        if (D.discard > 0) {
            const std::size_t k = std::min<std::size_t>(D.discard, data.size());
            D.discard -= static_cast<std::uint32_t>(k);
            data = data.subspan(k);
            continue;
        }
        if (D.buf == kNil || bufs[D.buf].msg.empty()) {
            // Fast path: straight from the segment, copy only the tail.
            const std::size_t n = process(D, data, rep);
            data = data.subspan(n);
            if (!data.empty() && (D.mode == Mode::Framed || D.mode == Mode::Resync)) stash(D, data);
            return;
        }
        Buf& b = bufs[D.buf];
        std::size_t want = kProbeBytes;
        if (D.mode == Mode::Framed) {
            if (b.msg.size() < 2) {
                want = 2;
            } else {
                const std::size_t whole = be16(b.msg.data()) + std::size_t{2};
                const std::size_t decide = std::min(whole, kDecisionBytes);
                want = (!D.trusted && b.msg.size() < decide) ? decide : whole;
            }
        }
        const std::size_t take = std::min(data.size(), want - b.msg.size());
        if (b.msg.size() + take > b.msg.capacity()) {
            const std::size_t room =
                cfg.max_stream_bytes > b.win.size() ? cfg.max_stream_bytes - b.win.size() : 0;
            if (want > room || !reserve(b.msg, want, b.msg.size() + take)) {
                ctr.add(TcpEvent::StreamBufferFull);
                if (D.mode == Mode::Framed && D.trusted && b.msg.size() >= 2) {
                    D.discard = static_cast<std::uint32_t>(want - b.msg.size());
                } else {
                    ctr.add(TcpEvent::ResyncSkippedBytes, b.msg.size());
                    D.mode = Mode::Resync;
                    D.trusted = false;
                }
                b.msg.clear();
                continue;
            }
        }
        b.msg.insert(b.msg.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take));
        data = data.subspan(take);
        const std::size_t n = process(D, b.msg, rep);
        if (D.mode == Mode::Ignore) {
            b.msg.clear();
            return;
        }
        b.msg.erase(b.msg.begin(), b.msg.begin() + static_cast<std::ptrdiff_t>(n));
    }
}

// Stores bytes ahead of next_seq; the bytes already held win. False when
// the direction's bounds do not allow it.
bool TcpReassembler::Impl::insert_ooo(Dir& D, std::uint32_t seq, std::span<const std::uint8_t> data,
                                      std::uint64_t ts) {
    Buf& b = buf_of(D);
    const std::uint32_t end = seq_add(seq, data.size());
    pieces.clear();
    std::uint32_t cur = seq;
    for (const Range& r : b.ranges) {
        if (seq_leq(end, r.seq)) break;
        const std::uint32_t r_end = seq_add(r.seq, r.len);
        if (seq_leq(r_end, cur)) continue;
        if (seq_lt(cur, r.seq)) pieces.push_back({cur, r.seq - cur, ts});
        cur = r_end;
        if (!seq_lt(cur, end)) break;
    }
    if (seq_lt(cur, end)) pieces.push_back({cur, end - cur, ts});
    if (pieces.empty()) {
        ctr.add(TcpEvent::Duplicates);
        return true;
    }
    std::size_t stored = 0;
    for (const Range& p : pieces) stored += p.len;
    if (stored != data.size()) ctr.add(TcpEvent::Overlaps);
    if (b.ranges.size() + pieces.size() > cfg.max_pending_segments) return false;
    if (b.ranges.capacity() < cfg.max_pending_segments) {
        // First out-of-order data of this buffer: its range list comes out
        // of the same byte budget as the data and stays with the buffer.
        const std::size_t bytes = (cfg.max_pending_segments - b.ranges.capacity()) * sizeof(Range);
        if (!make_room(bytes)) return false;
        b.ranges.reserve(cfg.max_pending_segments);
        storage += bytes;
    }

    // The window covers [first range, last range end); bytes before the
    // first range are dead and dropped when the window moves.
    std::uint32_t new_base = pieces.front().seq;
    std::uint32_t new_end = seq_add(pieces.back().seq, pieces.back().len);
    if (!b.ranges.empty()) {
        if (seq_lt(b.ranges.front().seq, new_base)) new_base = b.ranges.front().seq;
        const std::uint32_t old_end = seq_add(b.ranges.back().seq, b.ranges.back().len);
        if (seq_lt(new_end, old_end)) new_end = old_end;
    }
    const std::size_t new_size = new_end - new_base;
    if (new_size + b.msg.size() > cfg.max_stream_bytes) return false;
    const std::size_t limit = cfg.max_stream_bytes - b.msg.size();
    if (!reserve(b.win, std::min(limit, std::max(new_size, 2 * b.win.capacity())), new_size)) return false;

    if (b.ranges.empty()) {
        b.win.resize(new_size);
    } else {
        const std::int32_t shift = seq_diff(b.win_base, new_base);
        if (shift > 0) {
            const std::size_t old_size = b.win.size();
            b.win.resize(new_size);
            std::memmove(b.win.data() + shift, b.win.data(), old_size);
        } else {
            const std::size_t k = static_cast<std::size_t>(-static_cast<std::int64_t>(shift));
            std::memmove(b.win.data(), b.win.data() + k, b.win.size() - k);
            b.win.resize(new_size);
        }
    }
    b.win_base = new_base;
    for (const Range& p : pieces) {
        std::memcpy(b.win.data() + (p.seq - new_base), data.data() + (p.seq - seq), p.len);
        auto at = std::find_if(b.ranges.begin(), b.ranges.end(), [&](const Range& r) { return seq_lt(p.seq, r.seq); });
        b.ranges.insert(at, p);
    }
    ctr.add(TcpEvent::OutOfOrder);
    return true;
}

// Delivers the out-of-order ranges that now continue the stream. `seg` is
// the segment that filled the gap, or null when a hole was given up (each
// range then reports its own time).
void TcpReassembler::Impl::pull(Conn& c, int d, const decode::Segment* seg) {
    Dir& D = c.dir[d];
    while (D.buf != kNil && (D.mode == Mode::Framed || D.mode == Mode::Resync)) {
        Buf& b = bufs[D.buf];
        if (b.ranges.empty() || seq_lt(D.next_seq, b.ranges.front().seq)) break;
        const Range r = b.ranges.front();
        b.ranges.erase(b.ranges.begin());
        const std::uint32_t r_end = seq_add(r.seq, r.len);
        if (!seq_lt(D.next_seq, r_end)) continue;
        const std::size_t off = D.next_seq - b.win_base;
        const std::size_t len = r_end - D.next_seq;
        const std::span<const std::uint8_t> bytes(b.win.data() + off, len);
        const std::uint32_t at = D.next_seq;
        D.next_seq = r_end;
        if (seg != nullptr) {
            consume(D, bytes, *seg);
        } else {
            const decode::Segment rep = synth(c, d, at, r.timestamp_ns);
            consume(D, bytes, rep);
        }
    }
    if (D.buf != kNil) {
        Buf& b = bufs[D.buf];
        if (D.mode != Mode::Framed && D.mode != Mode::Resync) b.ranges.clear();
        if (b.ranges.empty()) b.win.clear();
    }
}

// Gives up the bytes before `target`: the message spanning them is lost;
// what follows needs a plausible boundary again.
void TcpReassembler::Impl::hole(Conn& c, int d, std::uint32_t target) {
    Dir& D = c.dir[d];
    ctr.add(TcpEvent::Holes);
    if (D.buf != kNil) {
        Buf& b = bufs[D.buf];
        if (D.mode == Mode::Resync) ctr.add(TcpEvent::ResyncSkippedBytes, b.msg.size());
        b.msg.clear();
    }
    D.discard = 0;
    D.mode = Mode::Resync;
    D.trusted = false;
    D.next_seq = target;
    pull(c, d, nullptr);
}

// The peer acknowledged bytes we never saw while later bytes wait.
bool TcpReassembler::Impl::acked_gap(const Conn& c, int d) const {
    const Dir& D = c.dir[d];
    return D.acked_valid && D.buf != kNil && (D.mode == Mode::Framed || D.mode == Mode::Resync) &&
           !bufs[D.buf].ranges.empty() && seq_lt(D.next_seq, D.acked);
}

// Without a close grace an acknowledged gap is given up at once; with one,
// the acknowledgement may have been captured before the data it covers
// (reordering), so the connection waits (settle) and gives the gap up only
// when the grace passes.
void TcpReassembler::Impl::check_acked_gap(Conn& c, int d) {
    if (cfg.close_grace_ns == 0) give_up_acked_gaps(c, d);
}

// The peer acknowledged bytes we never saw while later bytes wait: the
// capture lost them, they will not come.
void TcpReassembler::Impl::give_up_acked_gaps(Conn& c, int d) {
    Dir& D = c.dir[d];
    while (D.acked_valid && D.buf != kNil && (D.mode == Mode::Framed || D.mode == Mode::Resync)) {
        const Buf& b = bufs[D.buf];
        if (b.ranges.empty() || !seq_lt(D.next_seq, D.acked)) return;
        const std::uint32_t first = b.ranges.front().seq;
        hole(c, d, seq_lt(first, D.acked) ? first : D.acked);
    }
}

void TcpReassembler::Impl::flush_dir(Conn& c, int d) {
    Dir& D = c.dir[d];
    while (D.buf != kNil && (D.mode == Mode::Framed || D.mode == Mode::Resync) && !bufs[D.buf].ranges.empty())
        hole(c, d, bufs[D.buf].ranges.front().seq);
    if (D.buf != kNil) {
        const std::size_t left = bufs[D.buf].msg.size();
        if (D.mode == Mode::Framed) ctr.add(TcpEvent::PartialAtClose, left);
        if (D.mode == Mode::Resync) ctr.add(TcpEvent::ResyncSkippedBytes, left);
        release_buf(D);
    }
    D.discard = 0;
    D.mode = Mode::Closed;
}

void TcpReassembler::Impl::on_syn(std::uint32_t& idx, int d, const decode::Segment& seg) {
    Dir* D = &conns[idx].dir[d];
    if (D->syn && D->isn == seg.seq) return;  // retransmitted SYN
    if (!D->syn && !D->fin && (D->mode == Mode::Framed || D->mode == Mode::Resync || D->mode == Mode::Ignore) &&
        seq_leq(seg.seq + 1, D->first_seq) && D->first_seq - (seg.seq + 1) <= cfg.max_stream_bytes) {
        // Data of this direction came before its SYN (reordered): the same
        // connection.
        ctr.add(TcpEvent::LateSyns);
        D->syn = true;
        D->isn = seg.seq;
        const std::size_t held = D->buf == kNil ? 0 : bufs[D->buf].msg.size();
        if ((D->mode == Mode::Framed || D->mode == Mode::Resync) && D->discard == 0 &&
            D->next_seq - D->first_seq == held) {
            // Nothing of it was emitted or skipped yet: start over at the SYN,
            // trusted, with the bytes held so far as out-of-order data (the
            // bytes between the SYN and them may still come).
            bool ok = true;
            if (held > 0) {
                Buf& b = bufs[D->buf];
                ok = insert_ooo(*D, D->first_seq, std::span<const std::uint8_t>(b.msg.data(), held), seg.timestamp_ns);
                if (ok) b.msg.clear();
            }
            if (ok) {
                D->mode = Mode::Framed;
                D->trusted = true;
                D->next_seq = seg.seq + 1;
                pull(conns[idx], d, nullptr);
            }
        }
        // Otherwise its alignment stays as found.
        return;
    }
    if (D->syn || D->mode != Mode::Idle) {
        // A new connection on the same tuple (port reuse).
        const Key key = conns[idx].key;
        close(idx, TcpEvent::StreamsClosed);
        current = kNil;
        idx = open(key, seg.timestamp_ns);
        current = idx;
        if (idx == kNil) return;
        D = &conns[idx].dir[d];
    }
    D->syn = true;
    D->isn = seg.seq;
    D->next_seq = seg.seq + 1;
    D->mode = Mode::Framed;
    D->trusted = true;
}

void TcpReassembler::Impl::on_data(Conn& c, int d, std::uint32_t seq, std::span<const std::uint8_t> data,
                                   const decode::Segment& seg) {
    Dir& D = c.dir[d];
    if (D.mode == Mode::Closed) {
        ctr.add(TcpEvent::DataAfterClose);
        return;
    }
    if (D.fin) {
        // Nothing follows a FIN/RST in its direction.
        if (!seq_lt(seq, D.fin_seq)) {
            ctr.add(TcpEvent::DataAfterClose);
            return;
        }
        const std::uint32_t room = D.fin_seq - seq;
        if (data.size() > room) {
            ctr.add(TcpEvent::DataAfterClose);
            data = data.first(room);
        }
    }
    if (D.mode == Mode::Idle) {
        // Picked up mid-connection: the first byte is only a candidate.
        ctr.add(TcpEvent::NoSynStreams);
        D.mode = Mode::Resync;
        D.trusted = false;
        D.next_seq = seq;
        D.first_seq = seq;
    }
    if (D.mode != Mode::Framed && D.mode != Mode::Resync) return;
    for (;;) {
        const std::int32_t diff = seq_diff(seq, D.next_seq);
        if (diff > 0) {
            if (insert_ooo(D, seq, data, seg.timestamp_ns)) {
                check_acked_gap(c, d);
                return;
            }
            // No room to wait for the gap: give it up and try again.
            ctr.add(TcpEvent::StreamBufferFull);
            std::uint32_t target = seq;
            if (D.buf != kNil && !bufs[D.buf].ranges.empty() && seq_lt(bufs[D.buf].ranges.front().seq, seq))
                target = bufs[D.buf].ranges.front().seq;
            hole(c, d, target);
            if (D.mode != Mode::Framed && D.mode != Mode::Resync) return;
            continue;
        }
        if (diff < 0) {
            const std::size_t old = static_cast<std::size_t>(-static_cast<std::int64_t>(diff));
            if (old >= data.size()) {
                ctr.add(TcpEvent::Duplicates);
                return;
            }
            ctr.add(TcpEvent::Overlaps);
            data = data.subspan(old);
            seq = D.next_seq;
        }
        // In order. Bytes already waiting out of order win over these.
        if (D.buf != kNil && !bufs[D.buf].ranges.empty()) {
            const std::uint32_t first = bufs[D.buf].ranges.front().seq;
            if (seq_lt(first, seq_add(seq, data.size()))) {
                ctr.add(TcpEvent::Overlaps);
                data = data.first(first - seq);
            }
        }
        D.next_seq = seq_add(seq, data.size());
        consume(D, data, seg);
        pull(c, d, &seg);
        check_acked_gap(c, d);
        return;
    }
}

// Everything before the direction's FIN/RST is here, or cannot come any more.
bool TcpReassembler::Impl::complete(const Conn& c, int d) const {
    const Dir& D = c.dir[d];
    if (D.mode == Mode::Closed || D.mode == Mode::Ignore) return true;
    if (D.mode == Mode::Idle) return false;  // none of its data seen yet: it may still come
    // (Even when the peer acknowledged the end: its acknowledgement may have
    // been captured before the data. The grace decides.)
    return !seq_lt(D.next_seq, D.fin_seq);
}

// Data still missing before the FIN/RST is given up; the direction closes.
void TcpReassembler::Impl::close_dir(Conn& c, int d) {
    Dir& D = c.dir[d];
    if (D.mode == Mode::Closed) return;
    flush_dir(c, d);
    if (D.fin) D.next_seq = D.fin_seq + 1;
}

void TcpReassembler::Impl::on_fin(Conn& c, int d, std::uint32_t fin_seq) {
    Dir& D = c.dir[d];
    if (D.mode == Mode::Closed || D.fin) return;
    D.fin = true;
    D.fin_seq = fin_seq;
}

// RST ends the sender's direction at its sequence number and the other one
// at the acknowledgement number; without ACK, or never heard from, the other
// direction ends where it is.
void TcpReassembler::Impl::on_rst(Conn& c, int d, const decode::Segment& seg) {
    Dir& D = c.dir[d];
    Dir& P = c.dir[1 - d];
    if (D.mode != Mode::Closed && !D.fin) {
        D.fin = true;
        D.fin_seq = seg.seq;
    }
    if (P.mode != Mode::Closed && !P.fin) {
        P.fin = true;
        const bool ack = (seg.tcp_flags & decode::tcpflag::kAck) != 0;
        if (ack && P.mode != Mode::Idle) {
            P.fin_seq = seg.ack;
        } else {
            P.fin_seq = P.next_seq;
            if (P.mode == Mode::Idle) P.mode = Mode::Closed;
        }
    }
}

// ---------------------------------------------------------------- public

TcpReassembler::TcpReassembler(const TcpConfig& config)
    : impl_(std::make_unique<Impl>(config, counters_)), counters_(kTcpEventNames) {}

TcpReassembler::~TcpReassembler() = default;

void TcpReassembler::add(const decode::Segment& seg, std::uint64_t now, TcpMessageSink& sink) {
    if (seg.transport != decode::Transport::Tcp) return;
    Impl& m = *impl_;
    m.sink = &sink;
    m.clock_now = now;
    m.current = kNil;
    m.expire_waiting(now);
    m.expire_idle(now);

    const std::uint8_t flags = seg.tcp_flags;
    const bool syn = (flags & decode::tcpflag::kSyn) != 0;
    const bool fin = (flags & decode::tcpflag::kFin) != 0;
    const bool rst = (flags & decode::tcpflag::kRst) != 0;
    const bool ack = (flags & decode::tcpflag::kAck) != 0;
    const bool has_data = !seg.payload.empty();
    if (has_data) counters_.add(TcpEvent::Segments);

    Key key;
    int d = 0;
    if (endpoint_less(seg.src, seg.src_port, seg.dst, seg.dst_port)) {
        key = {seg.src, seg.dst, seg.src_port, seg.dst_port};
    } else {
        key = {seg.dst, seg.src, seg.dst_port, seg.src_port};
        d = 1;
    }
    std::uint32_t idx = m.find(key);
    if (idx == kNil) {
        // Only a SYN or data opens a connection: a lone ACK, FIN or RST
        // (e.g. the last ACK after both FINs) does not.
        if (rst || (!has_data && !syn)) return;
        idx = m.open(key, now);
        if (idx == kNil) return;
    }
    m.current = idx;
    {
        Conn& c = m.conns[idx];
        c.last_ns = std::max(c.last_ns, now);
        m.lru_unlink(idx);
        m.lru_push(idx);
    }
    if (rst) {
        if (m.cfg.close_grace_ns == 0) {
            m.close(idx, TcpEvent::StreamsClosed);
        } else {
            m.on_rst(m.conns[idx], d, seg);
            m.settle(idx);
        }
        m.current = kNil;
        return;
    }
    if (syn) {
        m.on_syn(idx, d, seg);
        if (idx == kNil) return;
    }
    Conn& c = m.conns[idx];
    if (ack) {
        Dir& peer = c.dir[1 - d];
        if (!peer.acked_valid || seq_lt(peer.acked, seg.ack)) {
            peer.acked = seg.ack;
            peer.acked_valid = true;
            m.check_acked_gap(c, 1 - d);
        }
    }
    const std::uint32_t data_seq = syn ? seg.seq + 1 : seg.seq;
    if (has_data) m.on_data(c, d, data_seq, seg.payload, seg);
    if (fin) m.on_fin(c, d, seq_add(data_seq, seg.payload.size()));

    // A closing direction closes once its data is complete (or its grace
    // passes); the connection is released when both directions are closed.
    // A direction never heard from may still answer a half-closed
    // connection (idle timeout then).
    if (c.waiting || c.dir[0].fin || c.dir[1].fin || m.acked_gap(c, 0) || m.acked_gap(c, 1)) {
        m.settle(idx);
        if (!c.in_use) {
            m.current = kNil;
            return;
        }
    }
    m.release_buf_if_empty(c.dir[0]);
    m.release_buf_if_empty(c.dir[1]);
    m.current = kNil;
}

void TcpReassembler::expire(std::uint64_t now_ns, TcpMessageSink& sink) {
    impl_->sink = &sink;
    impl_->current = kNil;
    impl_->clock_now = now_ns;
    impl_->expire_waiting(now_ns);
    impl_->expire_idle(now_ns);
}

void TcpReassembler::finish(TcpMessageSink& sink) {
    Impl& m = *impl_;
    m.sink = &sink;
    m.current = kNil;
    while (m.lru_head != kNil) {
        const Conn& c = m.conns[m.lru_head];
        // Both directions ended (FIN/RST) but waited for reordered data.
        const bool ended = c.dir[0].fin && c.dir[1].fin;
        m.close(m.lru_head, ended ? TcpEvent::StreamsClosed : TcpEvent::StreamsFlushedAtEnd);
    }
    while (m.free_buf != kNil) m.drop_spare();
}

std::size_t TcpReassembler::active_streams() const { return impl_->active; }
std::size_t TcpReassembler::buffered_bytes() const { return impl_->storage; }

}  // namespace sidetap::reassembly
