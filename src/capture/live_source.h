// LiveSource: packets captured live, by any frontend (libpcap, the eBPF
// socket filter, tc or cgroup_skb hooks), behind one interface, so that
// `capture` knows nothing about the frontend it runs.
//
// Contract:
//  - read(out, timeout_ms) returns
//      Read::Packet  `out` filled: timestamp (ns since the Unix epoch, wall
//                    clock), the link type of this packet (LINKTYPE_*; one
//                    source may mix link types, e.g. libpcap on -i lo -i
//                    eth0), the captured bytes and the length on the wire;
//                    `out.data` stays valid until the next read();
//      Read::Idle    nothing arrived within timeout_ms (or a signal
//                    interrupted the wait): the caller looks at its stop
//                    flag, timers and statistics and calls again;
//      Read::Error   the source cannot go on (interface gone, ring buffer
//                    failed); error() says why, naming the interface/hook.
//                    Later calls return Error again.
//    read() never throws, allocates nothing and does no I/O beyond the
//    frontend's own reads and one wait when nothing is buffered.
//  - stop(): thread- and signal-safe; makes next() (the PacketSource view,
//    which blocks) return End. read() is unaffected: after its stop flag the
//    caller drains with read() what the kernel already captured.
//  - Statistics: update_stats() refreshes (system calls: at most about once
//    a second, and once at the end); stats() has one entry per channel (a
//    libpcap interface, an eBPF ring buffer) with the packets delivered and
//    the frontend's own counters, each named by cause (received,
//    kernel_dropped, ring_full_dropped...). Names are metric-safe
//    (lowercase, '_').
//  - channels() describes each channel for messages ("capturing on ...")
//    and for --write-pcap (the DLT_* of its packets).
//
// Setup (the factory open_live_source, or a frontend's constructor) throws
// util::FatalError naming the interface, cgroup or capability at fault
// (exit 1; exit 2 for option errors such as a libpcap filter that does not
// compile or an option the frontend does not support).
//
//  - dispatch(handler, max, timeout_ms) is read() for a batch: every packet
//    is handed to the handler during the call, in place where the frontend
//    allows it (libpcap with one interface: straight from the kernel's ring,
//    no copy; the eBPF rings are read in place anyway).
//
// Shards (capture --threads N): open_live_sources() returns one source per
// shard, each for one capture thread with its own pipeline, and the kernel
// splits the traffic between them by the unordered pair of IP addresses
// (capture/shard.h: a query, its response, both directions of a TCP
// connection and every fragment of a datagram land in the same shard).
// libpcap: every shard opens its own handle per interface, and the handles
// of one interface join one AF_PACKET fanout group whose classic BPF
// program picks the shard (PACKET_FANOUT_CBPF, Linux 4.2+); packets the
// handles captured before every one of them had joined (dated before that
// moment, within the first second) are discarded and counted
// (startup_discarded), so that none is seen by two shards. eBPF: the
// programs are loaded once and write each packet into its shard's rings.
#pragma once

#include "capture/capture_filter.h"
#include "capture/packet_source.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sidetap::capture {

enum class Frontend {
    Pcap,        // libpcap, one handle per -i
    EbpfSocket,  // AF_PACKET socket with the eBPF program as its filter (-i IFACE or all)
    EbpfTc,      // clsact ingress + egress on -i IFACE
    EbpfCgroup,  // cgroup_skb ingress + egress on a cgroup v2 directory
};

const char* frontend_name(Frontend frontend);

struct LiveCaptureOptions {
    Frontend frontend = Frontend::Pcap;
    std::vector<std::string> interfaces;       // libpcap: one or more; eBPF socket: none (all) or one; tc: one
    std::string cgroup;                        // eBPF cgroup: directory (absolute, or relative to the v2 mount)
    int snaplen = 262144;
    std::uint64_t buffer_bytes = 16ull << 20;  // libpcap: per handle; eBPF: the ring (rounded up to a power of 2)
    bool promiscuous = false;
    CaptureFilterSpec filter;                  // ports, server addresses; user_filter is libpcap only
    // Longest a captured packet may wait in the kernel before it is handed
    // over when traffic is too slow to fill a batch (libpcap: the TPACKET_V3
    // block timeout; eBPF: the reader's look into the rings when no batch
    // woke it). Each hand-over wakes the capture thread, which costs tens of
    // microseconds on a busy or virtualised host: the capture command makes
    // it the outputs' shortest flush interval, at most kMaxHandoverMs (the
    // outputs hold frames that long anyway).
    int handover_ms = kMaxHandoverMs;
    static constexpr int kMaxHandoverMs = 100;
};

struct LiveCounter {
    const char* name;     // e.g. "received", "kernel_dropped"
    std::uint64_t value;
    bool drop;            // a packet lost to this cause (shown in the stats line, checked by tests)
};

struct LiveChannelStats {
    std::string kind;     // "interface" (libpcap) or "ebpf": word in the summary, label key in metrics
    std::string name;     // "eth0", "tc st-srv", "cgroup /sys/fs/cgroup/pod"
    std::uint64_t packets = 0;  // delivered to the caller
    std::vector<LiveCounter> counters;
};

struct LiveChannelInfo {
    std::string name;
    int dlt = 0;              // DLT_* of the channel's packets (for --write-pcap)
    std::string description;  // "lo (EN10MB, ns timestamps), filter: ..."
};

// Receives the packets of LiveSource::dispatch(), one call each; the
// packet's bytes are valid only during the call.
class PacketHandler {
public:
    virtual void on_packet(const Packet& packet) = 0;

protected:
    ~PacketHandler() = default;
};

class LiveSource : public PacketSource {
public:
    enum class Read { Packet, Idle, Error };

    virtual Read read(Packet& out, int timeout_ms) = 0;
    // Up to max_packets packets to `handler`; waits up to timeout_ms for the
    // first. Packet when at least one was delivered, else Idle or Error.
    // Default: read() in a loop.
    virtual Read dispatch(PacketHandler& handler, int max_packets, int timeout_ms);

    // PacketSource: blocks (waking every 100 ms) until a packet arrives,
    // stop() was called (End) or the source failed (Error).
    Status next(Packet& out) override;
    void stop() { stop_.store(true, std::memory_order_relaxed); }

    // Admits no new packet from now on; what the kernel already holds can
    // still be read. Called at stop, before the final drain: the counts
    // read after the drain (received, passed) then cover exactly the
    // packets delivered, with none arriving between the drain's last look
    // and the read. Default: nothing to close.
    virtual void seal() {}

    virtual void update_stats() = 0;
    [[nodiscard]] virtual const std::vector<LiveChannelStats>& stats() const = 0;
    [[nodiscard]] virtual std::vector<LiveChannelInfo> channels() const = 0;
    // Largest packet a record can hold (the pcap snap length for --write-pcap).
    [[nodiscard]] virtual int snaplen() const = 0;

private:
    std::atomic<bool> stop_{false};
};

// Opens the frontend named by options.frontend. eBPF frontends throw a
// FatalError (exit 2) in a build without eBPF support.
std::unique_ptr<LiveSource> open_live_source(const LiveCaptureOptions& options);

// One source per shard (see above); shards == 1 is open_live_source().
// At most kMaxShards shards. `seed` picks the hash (capture/shard.h).
inline constexpr unsigned kMaxShards = 64;
std::vector<std::unique_ptr<LiveSource>> open_live_sources(const LiveCaptureOptions& options, unsigned shards,
                                                           std::uint32_t seed);

// Whether this build has the eBPF frontends (SIDETAP_EBPF).
bool ebpf_supported();

}  // namespace sidetap::capture
