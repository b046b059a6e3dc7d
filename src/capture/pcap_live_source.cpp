#include "capture/pcap_live_source.h"

#include "capture/shard.h"
#include "util/error.h"

#include <linux/filter.h>
#include <linux/if_packet.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>

namespace sidetap::capture {

namespace {

constexpr std::uint64_t kNanosPerSecond = 1'000'000'000;

std::uint32_t dlt_to_linktype(int dlt) {
    switch (dlt) {
        case DLT_RAW: return linktype::kRaw;  // DLT_RAW is 12 or 14 depending on the platform
        default: return static_cast<std::uint32_t>(dlt);
    }
}

std::string activate_error(const std::string& name, pcap_t* p, int rc) {
    const std::string prefix = "capture on " + name + ": ";
    const std::string detail = pcap_geterr(p);
    switch (rc) {
        case PCAP_ERROR_NO_SUCH_DEVICE:
            return prefix + "no such device";
        case PCAP_ERROR_PERM_DENIED:
        case PCAP_ERROR_PROMISC_PERM_DENIED:
            return prefix + "permission denied" + (detail.empty() ? "" : " (" + detail + ")") +
                   ": needs CAP_NET_RAW (run as root, or setcap cap_net_raw=ep on the binary)";
        case PCAP_ERROR_IFACE_NOT_UP:
            return prefix + "interface is not up";
        default:
            return prefix + pcap_statustostr(rc) + (detail.empty() ? "" : ": " + detail);
    }
}

}  // namespace

PcapLiveSource::PcapLiveSource(const LiveCaptureOptions& options) : snaplen_(options.snaplen) {
    if (options.interfaces.empty())
        throw util::FatalError("capture: no interface (-i IFACE, or --ebpf MODE)", util::kExitUsage);
    handles_.reserve(options.interfaces.size());
    try {
        for (const auto& name : options.interfaces) open_handle(name, options);
    } catch (...) {
        close_all();
        throw;
    }
    for (const auto& h : handles_) {
        pollfds_.push_back(pollfd{h.fd, POLLIN, 0});
        LiveChannelStats s;
        s.kind = "interface";
        s.name = h.name;
        s.counters = {{"received", 0, false},
                      {"kernel_dropped", 0, true},
                      {"interface_dropped", 0, true},
                      {"startup_discarded", 0, false}};
        stats_.push_back(std::move(s));
    }
}

PcapLiveSource::~PcapLiveSource() { close_all(); }

void PcapLiveSource::close_all() {
    for (auto& h : handles_)
        if (h.handle) {
            pcap_close(h.handle);
            h.handle = nullptr;
        }
}

void PcapLiveSource::open_handle(const std::string& name, const LiveCaptureOptions& options) {
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    for (const auto& h : handles_)
        if (h.name == name) throw util::FatalError("capture: interface " + name + " given twice", util::kExitUsage);
    pcap_t* p = pcap_create(name.c_str(), errbuf);
    if (!p) throw util::FatalError("capture on " + name + ": " + errbuf);
    Handle h;
    h.name = name;
    h.handle = p;
    handles_.push_back(h);  // closed by close_all() on any error below
    Handle& handle = handles_.back();

    pcap_set_snaplen(p, options.snaplen);
    pcap_set_promisc(p, options.promiscuous ? 1 : 0);
    // Not immediate mode: with it, libpcap falls back to TPACKET_V2, whose
    // ring has one slot per packet sized for the snap length — 256 packets
    // in 16 MiB, which a GRO burst overruns. Without it libpcap uses
    // TPACKET_V3 blocks that hold packets at their real size; a block is
    // handed over when full or after handover_ms, which bounds the latency.
    pcap_set_immediate_mode(p, 0);
    pcap_set_timeout(p, std::max(options.handover_ms, 1));
    if (options.buffer_bytes > 0)
        pcap_set_buffer_size(
            p, static_cast<int>(std::min<std::uint64_t>(options.buffer_bytes, std::numeric_limits<int>::max())));
    // Not every platform/driver offers nanoseconds; microseconds then.
    (void)pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO);

    const int rc = pcap_activate(p);
    if (rc < 0) throw util::FatalError(activate_error(name, p, rc));
    if (rc > 0) {
        const std::string detail = pcap_geterr(p);
        std::fprintf(stderr, "sidetap: capture on %s: warning: %s%s%s\n", name.c_str(), pcap_statustostr(rc),
                     detail.empty() ? "" : ": ", detail.c_str());
    }
    handle.nano = pcap_get_tstamp_precision(p) == PCAP_TSTAMP_PRECISION_NANO;
#ifdef DLT_LINUX_SLL2
    // Cooked capture (-i any): the v2 header names each packet's interface
    // (its ifindex: {interface}), as tcpdump 4.99 chooses it; v1 when this
    // libpcap does not offer v2.
    if (pcap_datalink(p) == DLT_LINUX_SLL) (void)pcap_set_datalink(p, DLT_LINUX_SLL2);
#endif
    handle.dlt = pcap_datalink(p);
    handle.link_type = dlt_to_linktype(handle.dlt);

    CaptureFilterSpec spec = options.filter;
    spec.vlan = link_type_has_vlan(handle.dlt);
    if (!link_type_can_filter(handle.dlt)) {
        // nflog:GROUP: the netfilter rule chose the packets already.
        if (!spec.user_filter.empty())
            throw util::FatalError("capture on " + name + ": --filter cannot be used: libpcap cannot filter link type " +
                                       std::to_string(handle.dlt) + " (NFLOG); select packets in the netfilter rule",
                                   util::kExitUsage);
        handle.filter = "none (link type " + std::to_string(handle.dlt) + " cannot be filtered)";
    } else {
        handle.filter = build_capture_filter(spec);
        bpf_program program{};
        if (pcap_compile(p, &program, handle.filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0)
            throw util::FatalError("capture on " + name + ": filter does not compile: " + pcap_geterr(p) +
                                       " (filter: " + handle.filter + ")",
                                   util::kExitUsage);
        const int set = pcap_setfilter(p, &program);
        pcap_freecode(&program);
        if (set != 0) throw util::FatalError("capture on " + name + ": cannot set filter: " + pcap_geterr(p));
    }

    if (pcap_setnonblock(p, 1, errbuf) != 0)
        throw util::FatalError("capture on " + name + ": cannot make non-blocking: " + errbuf);
    handle.fd = pcap_get_selectable_fd(p);
    if (handle.fd < 0) throw util::FatalError("capture on " + name + ": no selectable file descriptor");
}

void PcapLiveSource::seal() {
    // Straight to the socket: pcap_setfilter() would also flush what the
    // ring already holds, which is still to be read.
    sock_filter refuse_all{BPF_RET | BPF_K, 0, 0, 0};
    sock_fprog program{1, &refuse_all};
    for (const Handle& h : handles_)
        if (h.fd >= 0) (void)::setsockopt(h.fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program);
}

std::string_view PcapLiveSource::interface_of(const Handle& h, const std::uint8_t* data, std::uint32_t caplen) {
    if (h.link_type == linktype::kLinuxSll2 && caplen >= 8) {
        const std::uint32_t ifindex = std::uint32_t{data[4]} << 24 | std::uint32_t{data[5]} << 16 |
                                      std::uint32_t{data[6]} << 8 | data[7];
        if (ifindex != 0) return interface_names_.name(ifindex);
    }
    return h.name;
}

PcapLiveSource::Read PcapLiveSource::read(Packet& out, int timeout_ms) {
    if (failed_) return Read::Error;
    for (int round = 0; round < 2; ++round) {
        // Refill the read-ahead slot of every handle that has none.
        for (auto& h : handles_) {
            if (h.pending) continue;
            pcap_pkthdr* header = nullptr;
            const u_char* data = nullptr;
            const int rc = pcap_next_ex(h.handle, &header, &data);
            if (rc == 1) {
                const auto frac = static_cast<std::uint64_t>(header->ts.tv_usec);
                const std::uint64_t ts = static_cast<std::uint64_t>(header->ts.tv_sec) * kNanosPerSecond +
                                         (h.nano ? frac : frac * 1000);
                if (discarding_ && discarded(static_cast<std::size_t>(&h - handles_.data()), ts)) continue;
                h.pending = true;
                h.pending_ts = ts;
                h.pending_caplen = header->caplen;
                h.pending_len = header->len;
                h.pending_data = data;
            } else if (rc == PCAP_ERROR) {
                error_ = "capture on " + h.name + ": " + pcap_geterr(h.handle);
                failed_ = true;
                return Read::Error;
            }
            // 0: nothing buffered; PCAP_ERROR_BREAK: pcap_breakloop, treated as nothing.
        }
        std::size_t best = handles_.size();
        for (std::size_t i = 0; i < handles_.size(); ++i)
            if (handles_[i].pending && (best == handles_.size() || handles_[i].pending_ts < handles_[best].pending_ts))
                best = i;
        if (best != handles_.size()) {
            auto& h = handles_[best];
            h.pending = false;
            out.timestamp_ns = h.pending_ts;
            out.link_type = h.link_type;
            out.original_length = h.pending_len < h.pending_caplen ? h.pending_caplen : h.pending_len;
            out.data = std::span<const std::uint8_t>(h.pending_data, h.pending_caplen);
            out.interface = interface_of(h, h.pending_data, h.pending_caplen);
            out.frame = 0;
            last_ = best;
            ++stats_[best].packets;
            return Read::Packet;
        }
        if (round == 1 || timeout_ms < 0) break;
        const int n = ::poll(pollfds_.data(), pollfds_.size(), timeout_ms);
        if (n <= 0) return Read::Idle;  // timeout, or EINTR (a signal: let the caller look)
    }
    return Read::Idle;
}

namespace {
std::uint64_t clock_ns(clockid_t clock) {
    timespec t{};
    ::clock_gettime(clock, &t);
    return static_cast<std::uint64_t>(t.tv_sec) * kNanosPerSecond + static_cast<std::uint64_t>(t.tv_nsec);
}

struct DispatchContext {
    PcapLiveSource* self;
    std::size_t handle;
};
}  // namespace

void PcapLiveSource::discard_before(std::uint64_t wall_ns) {
    discarding_ = true;
    discard_before_ns_ = wall_ns;
    discard_until_ns_ = clock_ns(CLOCK_MONOTONIC) + kNanosPerSecond;
}

bool PcapLiveSource::discarded(std::size_t handle, std::uint64_t timestamp_ns) {
    // The window closes after a second (looked at every 64 packets), so a
    // wall clock stepped back later cannot make it drop anything.
    if (++since_clock_check_ >= 64) {
        since_clock_check_ = 0;
        if (clock_ns(CLOCK_MONOTONIC) >= discard_until_ns_) {
            discarding_ = false;
            return false;
        }
    }
    if (timestamp_ns >= discard_before_ns_) return false;
    ++stats_[handle].counters[3].value;
    return true;
}

void PcapLiveSource::on_pcap_packet(unsigned char* user, const ::pcap_pkthdr* header, const unsigned char* data) {
    auto* ctx = reinterpret_cast<DispatchContext*>(user);
    PcapLiveSource& self = *ctx->self;
    const Handle& h = self.handles_[ctx->handle];
    const auto frac = static_cast<std::uint64_t>(header->ts.tv_usec);
    Packet packet;
    packet.timestamp_ns = static_cast<std::uint64_t>(header->ts.tv_sec) * kNanosPerSecond + (h.nano ? frac : frac * 1000);
    if (self.discarding_ && self.discarded(ctx->handle, packet.timestamp_ns)) return;
    packet.link_type = h.link_type;
    packet.original_length = header->len < header->caplen ? header->caplen : header->len;
    packet.data = std::span<const std::uint8_t>(data, header->caplen);
    packet.interface = self.interface_of(h, data, header->caplen);
    ++self.stats_[ctx->handle].packets;
    self.handler_->on_packet(packet);
}

PcapLiveSource::Read PcapLiveSource::dispatch(PacketHandler& handler, int max_packets, int timeout_ms) {
    // Several interfaces are merged by time, which needs one packet of each
    // held back: read() (a copy per packet).
    if (handles_.size() != 1) return LiveSource::dispatch(handler, max_packets, timeout_ms);
    if (failed_) return Read::Error;
    Handle& h = handles_[0];
    DispatchContext ctx{this, 0};
    handler_ = &handler;
    for (int round = 0; round < 2; ++round) {
        const std::uint64_t before = stats_[0].packets;
        const int rc = pcap_dispatch(h.handle, max_packets, &PcapLiveSource::on_pcap_packet,
                                     reinterpret_cast<unsigned char*>(&ctx));
        if (rc == PCAP_ERROR) {
            error_ = "capture on " + h.name + ": " + pcap_geterr(h.handle);
            failed_ = true;
            return Read::Error;
        }
        if (stats_[0].packets != before) {
            last_ = 0;
            return Read::Packet;
        }
        if (round == 1 || timeout_ms < 0) break;
        const int n = ::poll(pollfds_.data(), pollfds_.size(), timeout_ms);
        if (n <= 0) return Read::Idle;  // timeout, or EINTR (a signal: let the caller look)
    }
    return Read::Idle;
}

std::vector<std::unique_ptr<LiveSource>> PcapLiveSource::open_shards(const LiveCaptureOptions& options,
                                                                     unsigned shards, std::uint32_t seed) {
    std::vector<std::unique_ptr<PcapLiveSource>> sources;
    for (unsigned i = 0; i < shards; ++i) sources.push_back(std::make_unique<PcapLiveSource>(options));
    const auto program = fanout_program(seed, shards);
    sock_fprog fprog{};
    fprog.len = static_cast<unsigned short>(program.size());
    fprog.filter = const_cast<sock_filter*>(program.data());
    for (std::size_t i = 0; i < sources[0]->handles_.size(); ++i) {
        const std::string& name = sources[0]->handles_[i].name;
        const std::string what = "capture on " + name + " (--threads " + std::to_string(shards) + "): ";
        // The first handle creates the group; the kernel picks an unused id.
        const int first = pcap_fileno(sources[0]->handles_[i].handle);
        int arg = (PACKET_FANOUT_CBPF | PACKET_FANOUT_FLAG_UNIQUEID) << 16;
        if (::setsockopt(first, SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) != 0)
            throw util::FatalError(what + "cannot create an AF_PACKET fanout group (PACKET_FANOUT_CBPF, Linux 4.2+): " +
                                   std::strerror(errno));
        if (::setsockopt(first, SOL_PACKET, PACKET_FANOUT_DATA, &fprog, sizeof fprog) != 0)
            throw util::FatalError(what + "cannot set the fanout program: " + std::strerror(errno));
        int group = 0;
        socklen_t length = sizeof group;
        if (::getsockopt(first, SOL_PACKET, PACKET_FANOUT, &group, &length) != 0)
            throw util::FatalError(what + "cannot read the fanout group id: " + std::strerror(errno));
        // Members join in shard order: the program's result is the index.
        const int join = (group & 0xffff) | (PACKET_FANOUT_CBPF << 16);
        for (unsigned s = 1; s < shards; ++s)
            if (::setsockopt(pcap_fileno(sources[s]->handles_[i].handle), SOL_PACKET, PACKET_FANOUT, &join, sizeof join) != 0)
                throw util::FatalError(what + "cannot join the fanout group " + std::to_string(group & 0xffff) + ": " +
                                       std::strerror(errno));
    }
    // Until the last handle joined, each one got every packet.
    const std::uint64_t joined = clock_ns(CLOCK_REALTIME);
    std::vector<std::unique_ptr<LiveSource>> out;
    for (auto& source : sources) {
        source->discard_before(joined);
        out.push_back(std::move(source));
    }
    return out;
}

void PcapLiveSource::update_stats() {
    for (std::size_t i = 0; i < handles_.size(); ++i) {
        pcap_stat s{};
        if (pcap_stats(handles_[i].handle, &s) != 0) continue;
        stats_[i].counters[0].value = s.ps_recv;
        stats_[i].counters[1].value = s.ps_drop;
        stats_[i].counters[2].value = s.ps_ifdrop;
    }
}

std::vector<LiveChannelInfo> PcapLiveSource::channels() const {
    std::vector<LiveChannelInfo> out;
    for (const auto& h : handles_) {
        const char* dlt_name = pcap_datalink_val_to_name(h.dlt);
        out.push_back({h.name, h.dlt,
                       h.name + " (" + (dlt_name ? dlt_name : "unknown") + ", " + (h.nano ? "ns" : "us") +
                           " timestamps), filter: " + h.filter});
    }
    return out;
}

PcapDumpFile::PcapDumpFile(const std::string& path, int dlt, int snaplen) : path_(path) {
    dead_ = pcap_open_dead_with_tstamp_precision(dlt, snaplen, PCAP_TSTAMP_PRECISION_NANO);
    if (!dead_) throw util::FatalError("--write-pcap " + path + ": cannot create a pcap handle");
    dumper_ = pcap_dump_open(dead_, path.c_str());
    if (!dumper_) {
        std::string message = "--write-pcap: " + std::string(pcap_geterr(dead_));
        pcap_close(dead_);
        dead_ = nullptr;
        throw util::FatalError(message);
    }
}

PcapDumpFile::~PcapDumpFile() { close(); }

void PcapDumpFile::write(const Packet& packet) {
    if (!dumper_) return;
    pcap_pkthdr header{};
    header.ts.tv_sec = static_cast<time_t>(packet.timestamp_ns / kNanosPerSecond);
    header.ts.tv_usec = static_cast<suseconds_t>(packet.timestamp_ns % kNanosPerSecond);  // nanosecond file
    header.caplen = static_cast<bpf_u_int32>(packet.data.size());
    header.len = packet.original_length;
    pcap_dump(reinterpret_cast<u_char*>(dumper_), &header, packet.data.data());
    ++packets_;
}

bool PcapDumpFile::flush() {
    if (!dumper_) return error_.empty();
    if (pcap_dump_flush(dumper_) != 0 || std::ferror(pcap_dump_file(dumper_))) {
        if (error_.empty()) error_ = "--write-pcap " + path_ + ": write failed";
        return false;
    }
    return error_.empty();
}

bool PcapDumpFile::close() {
    if (!dumper_) return error_.empty();
    const bool ok = flush();
    pcap_dump_close(dumper_);
    pcap_close(dead_);
    dumper_ = nullptr;
    dead_ = nullptr;
    return ok;
}

}  // namespace sidetap::capture
