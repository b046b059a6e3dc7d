// ExpiryClock: the time every timer of the pipeline runs on (query and
// reorder timeouts, TCP idle and close grace, IP fragment timeouts).
//
// Packet times are wall-clock times written by whoever captured the
// packets: a damaged record can say 2107, the clock of the capturing host
// can be stepped back an hour, packets from several interfaces or CPUs
// arrive slightly out of order. Timers that took packet time as "now"
// stopped on the first of these (nothing is older than a far-future
// high-water mark) or fired wrongly. This clock only moves forward, and
// only by plausible amounts:
//
//  - advance(packet_ns) returns the clock after a packet with that time.
//    The clock starts at 0 with the first packet. It moves forward by the
//    packet's distance ahead of the latest packet time seen so far (the
//    mark of the current time frame) when that distance is at most
//    max_jump_ns.
//  - A packet behind the mark by at most max_jump_ns (reordering) leaves
//    the clock and the mark where they are.
//  - A packet more than max_jump_ns away from the mark, either way, is a
//    discontinuity (counted): the clock does not move and the packet opens
//    a new time frame (its time is the new mark). The next packet decides
//    what it was: within max_jump_ns of the new frame confirms it (a clock
//    step, or a quiet gap longer than max_jump_ns in a replay); back within
//    max_jump_ns of the frame before it means it was one stray record, and
//    the old frame resumes where it was (nothing more is counted). Several
//    stray records in a row keep the last confirmed frame to come back to.
//  - idle(monotonic_ns): a live source that has no packet. The clock moves
//    by the monotonic time since the previous idle() call when no packet
//    came in between (packets carry their time themselves), and the mark
//    moves with it so that the next packet does not count that time again.
//    The first idle() after packets only takes the monotonic reading.
//  - Emitted messages keep their packets' own times; only timers use this
//    clock. Everything is integer arithmetic; no allocation, no exceptions.
#pragma once

#include <cstdint>

namespace sidetap::pipeline {

class ExpiryClock {
public:
    explicit ExpiryClock(std::uint64_t max_jump_ns) : max_jump_(max_jump_ns) {}

    std::uint64_t advance(std::uint64_t packet_ns) {
        packet_since_idle_ = true;
        if (!started_) {
            started_ = true;
            mark_ = packet_ns;
            return now_;
        }
        if (near(packet_ns, mark_)) {
            step_to(packet_ns);
            has_previous_ = false;  // the current frame is confirmed
            return now_;
        }
        if (has_previous_ && near(packet_ns, previous_mark_)) {
            // The frame opened by the last discontinuity held stray records only.
            mark_ = previous_mark_;
            has_previous_ = false;
            step_to(packet_ns);
            return now_;
        }
        ++discontinuities_;
        if (!has_previous_) {
            previous_mark_ = mark_;
            has_previous_ = true;
        }
        mark_ = packet_ns;
        return now_;
    }

    std::uint64_t idle(std::uint64_t monotonic_ns) {
        if (!has_idle_ || packet_since_idle_ || monotonic_ns < last_idle_) {
            has_idle_ = true;
            packet_since_idle_ = false;
            last_idle_ = monotonic_ns;
            return now_;
        }
        const std::uint64_t d = monotonic_ns - last_idle_;
        last_idle_ = monotonic_ns;
        now_ += d;
        if (started_) {
            mark_ += d;
            if (has_previous_) previous_mark_ += d;
        }
        return now_;
    }

    [[nodiscard]] std::uint64_t now() const { return now_; }
    [[nodiscard]] std::uint64_t discontinuities() const { return discontinuities_; }

private:
    [[nodiscard]] bool near(std::uint64_t t, std::uint64_t mark) const {
        return (t >= mark ? t - mark : mark - t) <= max_jump_;
    }
    void step_to(std::uint64_t packet_ns) {
        if (packet_ns > mark_) {
            now_ += packet_ns - mark_;
            mark_ = packet_ns;
        }
    }

    std::uint64_t max_jump_;
    std::uint64_t now_ = 0;
    std::uint64_t mark_ = 0;
    std::uint64_t previous_mark_ = 0;
    std::uint64_t last_idle_ = 0;
    std::uint64_t discontinuities_ = 0;
    bool started_ = false;
    bool has_previous_ = false;
    bool has_idle_ = false;
    bool packet_since_idle_ = false;
};

}  // namespace sidetap::pipeline
