// DNS over TCP framing (RFC 1035 §4.2.2, RFC 7766 §8; DNS over TLS, RFC
// 7858, frames the same way): a 2-byte big-endian length L, then L bytes.
// Shared by the two places that split byte streams into DNS messages:
//
//  - TcpReassembler: captured TCP segments (sequence numbers, holes, its
//    own recycled buffer pool);
//  - DnsStreamFramer (below): byte streams whose bytes arrive in order, such
//    as the plaintext of a TLS connection read by the TLS probes.
//
// Contract of scan_messages(): the framing state machine for one direction.
//  - Framed: the next byte is a length prefix. L < 12 cannot be a DNS
//    message: the direction resynchronises. A trusted direction takes every
//    length as is; an untrusted one (picked up mid-stream, or after a hole)
//    requires every message start to be plausible_boundary().
//  - Resync: looking for a plausible boundary byte by byte (hooks.skipped);
//    after more than max_resync_run bytes skipped in a row the direction is
//    given up: mode becomes Ignore (hooks.gave_up).
//  - It returns how many bytes of `buf` were used up; the rest (an
//    unfinished message, or look-ahead too short to judge a boundary) is for
//    the caller to keep and present again with what follows.
//  - hooks.message(wire) gets each whole message (without its prefix), a view
//    into `buf`. A hook may set state.trusted (DnsStreamFramer trusts a
//    stream once its first boundary is found).
//  - No allocation, no exception.
#pragma once

#include "dns/message.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace sidetap::reassembly {

// Bytes from a candidate boundary that always suffice to judge it: prefix,
// header, the longest name, QTYPE and QCLASS.
inline constexpr std::size_t kFramingDecisionBytes = 2 + dns::kHeaderSize + dns::kMaxNameWire + 4;
// Look-ahead kept while scanning for a boundary; more than
// kFramingDecisionBytes so that a pending look-ahead can always grow.
inline constexpr std::size_t kFramingProbeBytes = 512;
// The longest framed message: prefix + 65535 bytes.
inline constexpr std::size_t kMaxFramedMessage = 2 + 65535;

enum class Boundary : std::uint8_t { Yes, No, NeedMore };

// Does a DNS message plausibly start at `at` (at its length prefix)? Used
// only where the alignment is not known (picked up mid-stream, after a
// hole): L >= 12, opcode 0-2/4-6, QDCOUNT <= 1, counts that fit in L, RCODE
// 0 in queries, a standard query with exactly one question, no answer, <= 1
// authority and <= 2 additional records, and, when QDCOUNT is 1, a question
// that parses with class IN/CH/HS/NONE/ANY and a non-zero type. Loose enough
// for any real message, tight enough that the middle of one rarely passes.
// NeedMore: undecidable for lack of bytes.
Boundary plausible_boundary(std::span<const std::uint8_t> at);

// A direction's framing mode. Idle and Closed belong to the TCP
// reassembler's life cycle; scan_messages() works in Framed and Resync.
enum class FrameMode : std::uint8_t {
    Idle,    // nothing seen yet in this direction
    Framed,  // the next byte continues a known message boundary
    Resync,  // looking for a plausible boundary
    Ignore,  // given up (not DNS): data dropped
    Closed,  // ended
};

inline std::uint16_t framing_be16(const std::uint8_t* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }

// State: any struct with `FrameMode mode`, `bool trusted` and
// `std::uint32_t resync_run`. Hooks: message(span), skipped(n), gave_up().
template <typename State, typename Hooks>
std::size_t scan_messages(State& st, std::span<const std::uint8_t> buf, std::size_t max_resync_run, Hooks&& hooks) {
    std::size_t p = 0;
    for (;;) {
        if (st.mode == FrameMode::Resync) {
            for (;;) {
                if (p >= buf.size()) return p;
                const Boundary v = plausible_boundary(buf.subspan(p));
                if (v == Boundary::Yes) {
                    st.mode = FrameMode::Framed;
                    st.resync_run = 0;
                    break;
                }
                if (v == Boundary::NeedMore) return p;
                ++p;
                hooks.skipped(1);
                if (++st.resync_run > max_resync_run) {
                    hooks.skipped(buf.size() - p);
                    st.mode = FrameMode::Ignore;
                    hooks.gave_up();
                    return buf.size();
                }
            }
        }
        if (st.mode != FrameMode::Framed) return buf.size();
        const std::size_t rem = buf.size() - p;
        if (rem < 2) return p;
        const std::size_t length = framing_be16(buf.data() + p);
        if (length < dns::kHeaderSize) {
            st.mode = FrameMode::Resync;
            st.trusted = false;
            continue;
        }
        if (!st.trusted) {
            const Boundary v = plausible_boundary(buf.subspan(p));
            if (v == Boundary::No) {
                st.mode = FrameMode::Resync;
                continue;
            }
            if (v == Boundary::NeedMore) return p;
        }
        if (rem < length + 2) return p;
        hooks.message(buf.subspan(p + 2, length));
        p += length + 2;
    }
}

// How many bytes the caller should gather before scanning a pending buffer
// again: the prefix, then (untrusted) enough to judge the boundary, then the
// whole message; while resynchronising, a look-ahead.
template <typename State>
std::size_t framing_wanted(const State& st, std::span<const std::uint8_t> pending) {
    if (st.mode != FrameMode::Framed) return kFramingProbeBytes;
    if (pending.size() < 2) return 2;
    const std::size_t whole = framing_be16(pending.data()) + std::size_t{2};
    const std::size_t decide = std::min(whole, kFramingDecisionBytes);
    return (!st.trusted && pending.size() < decide) ? decide : whole;
}

// DnsStreamFramer: one direction of a byte stream whose bytes come in order
// (TLS plaintext: partial reads, several messages per read, a length prefix
// alone in a read). push() calls emit(wire) for every message completed, in
// order; `wire` is valid during the call only.
//  - The stream starts Framed: trusted when the caller knows it sees the
//    stream from its first byte, otherwise untrusted until the first
//    plausible boundary; from then on it is trusted (nothing is lost in
//    between unless the caller says so with gap()).
//  - gap(): bytes were lost; the unfinished message is dropped and the
//    stream resynchronises (untrusted).
//  - Bounded: at most kMaxFramedMessage bytes are kept (one unfinished
//    message), kFramingProbeBytes while resynchronising. After more than
//    max_resync_run bytes without a boundary the stream is given up
//    (not_dns()).
//  - The buffer keeps its capacity (no allocation once it has grown to the
//    largest message); release() frees it.
class DnsStreamFramer {
public:
    struct Counts {
        std::uint64_t messages = 0;
        std::uint64_t resync_skipped = 0;  // bytes skipped looking for a boundary
        std::uint64_t dropped_partial = 0; // bytes of unfinished messages dropped at a gap
        std::uint64_t gave_up = 0;         // streams given up: not DNS
    };

    explicit DnsStreamFramer(std::size_t max_resync_run = 16384) : max_resync_run_(max_resync_run) {}

    void start(bool trusted) {
        st_ = State{};
        st_.mode = FrameMode::Framed;
        st_.trusted = trusted;
        pending_.clear();
    }

    template <typename Emit>
    void push(std::span<const std::uint8_t> data, Emit&& emit);

    void gap() {
        if (st_.mode != FrameMode::Framed && st_.mode != FrameMode::Resync) return;
        counts_.dropped_partial += pending_.size();
        pending_.clear();
        st_.mode = FrameMode::Resync;
        st_.trusted = false;
    }

    [[nodiscard]] bool not_dns() const { return st_.mode == FrameMode::Ignore; }
    [[nodiscard]] std::size_t pending_bytes() const { return pending_.size(); }
    [[nodiscard]] std::size_t capacity() const { return pending_.capacity(); }
    [[nodiscard]] const Counts& counts() const { return counts_; }
    void release() { std::vector<std::uint8_t>().swap(pending_); }

private:
    struct State {
        FrameMode mode = FrameMode::Idle;
        bool trusted = false;
        std::uint32_t resync_run = 0;
    };

    template <typename Emit>
    struct Hooks {
        DnsStreamFramer& f;
        Emit& emit;
        void message(std::span<const std::uint8_t> wire) {
            ++f.counts_.messages;
            f.st_.trusted = true;
            emit(wire);
        }
        void skipped(std::size_t n) { f.counts_.resync_skipped += n; }
        void gave_up() { ++f.counts_.gave_up; }
    };

    State st_;
    std::vector<std::uint8_t> pending_;
    std::size_t max_resync_run_;
    Counts counts_;
};

template <typename Emit>
void DnsStreamFramer::push(std::span<const std::uint8_t> data, Emit&& emit) {
    Hooks<Emit> hooks{*this, emit};
    auto active = [this] { return st_.mode == FrameMode::Framed || st_.mode == FrameMode::Resync; };
    for (;;) {
        if (!active()) {
            pending_.clear();
            return;
        }
        if (pending_.empty()) {
            // Straight from the caller's bytes; only an unfinished tail is copied.
            if (data.empty()) return;
            data = data.subspan(scan_messages(st_, data, max_resync_run_, hooks));
            if (!active() || data.empty()) continue;
        }
        // Gather what the next scan needs (at most one message, or a
        // look-ahead), then scan the pending bytes. Every scan of as many
        // bytes as framing_wanted() asks either uses some up or asks for more.
        for (;;) {
            const std::size_t want = framing_wanted(st_, pending_);
            if (pending_.size() >= want) break;
            if (data.empty()) return;
            if (pending_.capacity() < want) pending_.reserve(want);  // exactly: the bound is the message
            const std::size_t take = std::min(data.size(), want - pending_.size());
            pending_.insert(pending_.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take));
            data = data.subspan(take);
        }
        const std::size_t n = scan_messages(st_, pending_, max_resync_run_, hooks);
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(std::min(n, pending_.size())));
    }
}

}  // namespace sidetap::reassembly
