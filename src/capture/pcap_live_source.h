// PcapLiveSource: live capture with libpcap on one or more interfaces,
// polled together from one thread.
//
// Setup (constructor; throws util::FatalError, exit code 1, or 2 for a
// filter that does not compile):
//  - one pcap handle per interface (`any` allowed): snap length 262144 (any
//    DNS message), TPACKET_V3 blocks handed over when full or after 10 ms
//    (not immediate mode), kernel buffer `buffer_bytes`, nanosecond
//    timestamps where the platform offers them (microseconds otherwise),
//    promiscuous mode only when asked, non-blocking;
//  - the capture filter from capture_filter.h, built per handle (VLAN
//    alternatives only on Ethernet link types) and compiled for the handle's
//    link type.
//  - Errors name the interface: "capture on eth9: no such device",
//    "capture on eth0: permission denied (...): needs CAP_NET_RAW (...)"
//    (an AF_PACKET socket needs CAP_NET_RAW only; promiscuous mode and the
//    TPACKET ring of any size work without CAP_NET_ADMIN).
//
// Reading (read(); never throws, no allocation, no I/O except libpcap's
// reads and one poll() when nothing is buffered):
//  - every handle keeps at most one packet read ahead; read() returns the
//    buffered packet with the smallest timestamp, so packets from different
//    interfaces come out in arrival (timestamp) order, each with the link
//    type of its own interface (as a LINKTYPE_* value);
//  - when no handle has a packet, read() polls all selectable fds for up to
//    `timeout_ms` and returns Read::Idle if nothing came (or a signal
//    interrupted the poll), so the caller can check its stop flag, SIGHUP
//    and timers even when the network is quiet;
//  - Packet::data stays valid until the next read()/next() call.
//  - A libpcap read error (interface gone) ends the source: Read::Error,
//    error() names the interface.
//
// dispatch(): with one interface, pcap_dispatch() hands each packet from
// the kernel's ring to the handler in place (pcap_next_ex() copies every
// packet out of a memory-mapped ring first); with several, read() merges
// them by time (one copy per packet).
//
// Shards (open_shards()): N sources, each with a handle per interface; the
// handles of one interface form an AF_PACKET fanout group
// (PACKET_FANOUT_CBPF with capture/shard.h's program, group id chosen by
// the kernel: PACKET_FANOUT_FLAG_UNIQUEID). Until every handle has joined,
// each one receives every packet; those packets (dated before the moment
// the last one joined, and within a second of it) are discarded and
// counted as startup_discarded, so that no packet reaches two shards.
//
// Counters (LiveSource::stats(), one channel per interface, kind
// "interface"): packets delivered and libpcap's pcap_stats: received
// (ps_recv), kernel_dropped (ps_drop: the kernel ring was full),
// interface_dropped (ps_ifdrop: dropped by the interface/driver),
// startup_discarded (shards: see above). With shards, pcap_stats counts
// what the fanout gave each shard's handle.
// update_stats() calls pcap_stats (a system call per handle): call it at
// most about once a second.
#pragma once

#include "capture/capture_filter.h"
#include "capture/interface_names.h"
#include "capture/live_source.h"

#include <poll.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct pcap;
struct pcap_dumper;
struct pcap_pkthdr;

namespace sidetap::capture {

// Uses options.interfaces, snaplen, buffer_bytes, promiscuous and filter
// (.vlan is decided per handle).
class PcapLiveSource final : public LiveSource {
public:
    explicit PcapLiveSource(const LiveCaptureOptions& options);
    ~PcapLiveSource() override;
    PcapLiveSource(const PcapLiveSource&) = delete;
    PcapLiveSource& operator=(const PcapLiveSource&) = delete;

    Read read(Packet& out, int timeout_ms) override;
    Read dispatch(PacketHandler& handler, int max_packets, int timeout_ms) override;
    // `shards` sources in fanout groups (see above); throws FatalError
    // naming the interface when the kernel refuses the group.
    static std::vector<std::unique_ptr<LiveSource>> open_shards(const LiveCaptureOptions& options, unsigned shards,
                                                                std::uint32_t seed);
    [[nodiscard]] const std::string& error() const override { return error_; }

    [[nodiscard]] std::size_t interface_count() const { return handles_.size(); }
    [[nodiscard]] const std::string& interface_name(std::size_t i) const { return handles_[i].name; }
    [[nodiscard]] int datalink(std::size_t i) const { return handles_[i].dlt; }         // DLT_*
    [[nodiscard]] const std::string& filter_text(std::size_t i) const { return handles_[i].filter; }
    [[nodiscard]] bool nanosecond_timestamps(std::size_t i) const { return handles_[i].nano; }
    [[nodiscard]] int snaplen() const override { return snaplen_; }
    // Index of the interface of the packet last returned.
    [[nodiscard]] std::size_t last_interface() const { return last_; }

    // A filter that admits nothing replaces each handle's filter in the
    // kernel (a packet it refuses is not counted as received).
    void seal() override;
    void update_stats() override;
    [[nodiscard]] const std::vector<LiveChannelStats>& stats() const override { return stats_; }
    [[nodiscard]] std::vector<LiveChannelInfo> channels() const override;

private:
    struct Handle {
        std::string name;
        ::pcap* handle = nullptr;
        int fd = -1;
        int dlt = 0;
        std::uint32_t link_type = 0;
        bool nano = false;
        std::string filter;
        bool pending = false;
        std::uint64_t pending_ts = 0;
        std::uint32_t pending_caplen = 0;
        std::uint32_t pending_len = 0;
        const std::uint8_t* pending_data = nullptr;
    };

    void open_handle(const std::string& name, const LiveCaptureOptions& options);
    // Packet::interface: the handle's interface, or for LINUX_SLL2 (-i any)
    // the interface named by the header's ifindex.
    std::string_view interface_of(const Handle& h, const std::uint8_t* data, std::uint32_t caplen);
    InterfaceNames interface_names_;
    void close_all();
    // Drops packets dated before `wall_ns` for the next second (shards).
    void discard_before(std::uint64_t wall_ns);
    // True when a packet with this time is to be dropped (startup).
    bool discarded(std::size_t handle, std::uint64_t timestamp_ns);
    static void on_pcap_packet(unsigned char* user, const ::pcap_pkthdr* header, const unsigned char* data);

    std::vector<Handle> handles_;
    std::vector<LiveChannelStats> stats_;
    std::vector<struct pollfd> pollfds_;
    std::size_t last_ = 0;
    int snaplen_ = 262144;
    bool discarding_ = false;
    std::uint64_t discard_before_ns_ = 0;   // wall clock
    std::uint64_t discard_until_ns_ = 0;    // CLOCK_MONOTONIC
    unsigned since_clock_check_ = 0;
    PacketHandler* handler_ = nullptr;      // during dispatch()
    std::string error_;
    bool failed_ = false;
};

// Raw packets into a pcap file (--write-pcap): nanosecond pcap, one link
// type (DLT_*) for the whole file. Buffered by libpcap (stdio); write() is
// per-packet I/O on the capture thread when the buffer fills, accepted
// because the user asked for the copy.
class PcapDumpFile {
public:
    // Throws util::FatalError when the file cannot be created.
    PcapDumpFile(const std::string& path, int dlt, int snaplen);
    ~PcapDumpFile();
    PcapDumpFile(const PcapDumpFile&) = delete;
    PcapDumpFile& operator=(const PcapDumpFile&) = delete;

    void write(const Packet& packet);
    // Flushes; false (and error() set) when a write failed.
    bool flush();
    // Flush and close; false when a write failed. Idempotent.
    bool close();
    [[nodiscard]] const std::string& error() const { return error_; }
    [[nodiscard]] std::uint64_t packets() const { return packets_; }

private:
    std::string path_;
    ::pcap* dead_ = nullptr;
    ::pcap_dumper* dumper_ = nullptr;
    std::uint64_t packets_ = 0;
    std::string error_;
};

}  // namespace sidetap::capture
