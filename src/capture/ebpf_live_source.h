// EbpfLiveSource: the eBPF frontends (capture --ebpf socket|tc|cgroup)
// behind the LiveSource interface.
//
// Setup (constructor, throws util::FatalError; exit 2 for option errors):
//  - loads bpf/sidetap.bpf.c (ebpf::Object) with the filter: ports (the -p
//    ports, plus the upstream ports for --role resolver) and the
//    --server-addr addresses go into kernel maps; --filter (libpcap syntax)
//    is refused;
//  - attaches by mode:
//      socket  an AF_PACKET socket, the program as its filter, on -i IFACE
//              or on every interface of the network namespace; on loopback
//              the outgoing copy of each packet is skipped (each packet
//              once, as libpcap does); --promisc needs -i;
//      tc      ingress and egress of -i IFACE (tcx links, or clsact through
//              netlink on kernels before 6.6); on a loopback interface only
//              ingress (every packet passes it once); Ethernet, loopback
//              and raw-IP devices (tun, wireguard);
//      cgroup  cgroup_skb ingress and egress on --cgroup PATH (a directory
//              of the cgroup v2 hierarchy; a relative PATH is taken below
//              the v2 mount, found in /proc/self/mountinfo: /sys/fs/cgroup
//              or /sys/fs/cgroup/unified...). Sees the traffic of every
//              process in that cgroup and its children, whatever network
//              namespace they are in: egress before IP fragmentation,
//              ingress after reassembly (whole datagrams). Traffic between
//              two processes of the same cgroup is seen twice (sent and
//              received).
//  - capabilities: CAP_BPF (loading; CAP_SYS_ADMIN before Linux 5.8), plus
//    CAP_NET_RAW for socket, CAP_NET_ADMIN for tc and cgroup. Attaching
//    happens here, so --user drops privileges afterwards; reading the ring
//    and the counters needs no system call that a capability guards.
//
// Reading: records come from one BPF ring buffer per CPU (-B bytes in all;
// per ring a power of two, at least 256 KiB), zero-copy; each is one packet
// from its IP header (link type LINKTYPE_RAW), with the kernel's monotonic
// time converted to wall-clock time (ebpf::WallClock, re-measured before
// each wait and every 1024 records). Each ring is in the order its CPU saw
// the packets; read() returns the oldest of the rings' next records, looking
// into every ring at least every 16 records (so packets of different CPUs
// may come out of time order by that much, never a ring's own). The kernel wakes the
// reader only when 64 KiB (or a sixteenth of the ring) are waiting; read()
// waits in slices of 10 ms, so a record waits at most that long on a quiet
// link (no wakeup, and no system call, per packet).
//
// Shards (capture --threads N, open_shards()): the programs are loaded and
// attached once; the kernel puts each packet into the rings of one shard
// (by the unordered address pair, bpf/sidetap_abi.h), and each shard's
// source reads only its own rings (one per CPU). The object and the
// attachments live until the last shard's source is gone.
//
// Counters (one channel, kind "ebpf", name "socket:IFACE|any",
// "tc:IFACE", "cgroup:PATH"): kernel_seen, kernel_passed,
// fragments_followed, fragments_unknown (not delivered: no wanted first
// fragment), ring_full_dropped, truncated, copy_failed, bad_records (user
// side). Delivered packets = kernel_passed - ring_full_dropped -
// copy_failed. The kernel's counters are the whole capture's: with shards,
// shard 0's source reports them and the others report 0 (the sums over
// shards are right; packets and bad_records are each shard's own).
#pragma once

#include "capture/ebpf_object.h"
#include "capture/interface_names.h"
#include "capture/live_source.h"

#include <poll.h>

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sidetap::capture {

class EbpfLiveSource final : public LiveSource {
public:
    explicit EbpfLiveSource(const LiveCaptureOptions& options);
    ~EbpfLiveSource() override;
    // `shards` sources (at most SIDETAP_MAX_SHARDS), shard i reading the
    // rings the kernel fills with sidetap_shard_of(..., seed, shards) == i.
    static std::vector<std::unique_ptr<LiveSource>> open_shards(const LiveCaptureOptions& options, unsigned shards,
                                                                std::uint32_t seed);
    EbpfLiveSource(const EbpfLiveSource&) = delete;
    EbpfLiveSource& operator=(const EbpfLiveSource&) = delete;

    Read read(Packet& out, int timeout_ms) override;
    // Detaches the program from its hooks (once for all shards): the rings
    // keep what they hold, the kernel counters stop.
    void seal() override;
    [[nodiscard]] const std::string& error() const override { return error_; }
    void update_stats() override;
    [[nodiscard]] const std::vector<LiveChannelStats>& stats() const override { return stats_; }
    [[nodiscard]] std::vector<LiveChannelInfo> channels() const override;
    [[nodiscard]] int snaplen() const override { return SIDETAP_MAX_CAPTURE; }

private:
    struct Capture;  // the loaded object and its attachments, shared by the shards

    EbpfLiveSource(std::shared_ptr<Capture> capture, unsigned shard);

    std::shared_ptr<Capture> capture_;
    unsigned shard_ = 0;
    std::size_t first_ring_ = 0;       // this shard's rings: first_ring_ .. + heads_.size()
    ebpf::WallClock clock_;
    struct Head {
        bool valid = false;
        ebpf::Record record;
    };
    bool refill(std::size_t ring);
    [[nodiscard]] std::size_t oldest_head() const;

    std::vector<Head> heads_;          // per ring: the next record, read ahead
    std::vector<pollfd> pollfds_;
    std::size_t last_ring_ = 0;        // the ring of the packet last returned (heads_.size(): none)
    unsigned since_scan_ = 0;
    unsigned since_refresh_ = 0;
    std::uint64_t bad_records_ = 0;
    std::vector<LiveChannelStats> stats_;
    std::string error_;
    InterfaceNames interface_names_;  // Packet::interface from the record's ifindex
    bool failed_ = false;
};

}  // namespace sidetap::capture
