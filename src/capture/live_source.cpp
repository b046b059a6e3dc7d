#include "capture/live_source.h"

#include "capture/pcap_live_source.h"
#include "util/error.h"

#ifdef SIDETAP_HAVE_EBPF
#include "capture/ebpf_live_source.h"
#endif

namespace sidetap::capture {

const char* frontend_name(Frontend frontend) {
    switch (frontend) {
        case Frontend::Pcap: return "libpcap";
        case Frontend::EbpfSocket: return "ebpf socket";
        case Frontend::EbpfTc: return "ebpf tc";
        case Frontend::EbpfCgroup: return "ebpf cgroup";
    }
    return "?";
}

PacketSource::Status LiveSource::next(Packet& out) {
    for (;;) {
        if (stop_.load(std::memory_order_relaxed)) return Status::End;
        switch (read(out, 100)) {
            case Read::Packet: return Status::Packet;
            case Read::Error: return Status::Error;
            case Read::Idle: break;
        }
    }
}

LiveSource::Read LiveSource::dispatch(PacketHandler& handler, int max_packets, int timeout_ms) {
    Packet packet;
    int delivered = 0;
    while (delivered < max_packets) {
        const Read r = read(packet, delivered == 0 ? timeout_ms : 0);
        if (r == Read::Error) return delivered != 0 ? Read::Packet : Read::Error;
        if (r == Read::Idle) break;
        handler.on_packet(packet);
        ++delivered;
    }
    return delivered != 0 ? Read::Packet : Read::Idle;
}

bool ebpf_supported() {
#ifdef SIDETAP_HAVE_EBPF
    return true;
#else
    return false;
#endif
}

std::unique_ptr<LiveSource> open_live_source(const LiveCaptureOptions& options) {
    if (options.frontend == Frontend::Pcap) return std::make_unique<PcapLiveSource>(options);
#ifdef SIDETAP_HAVE_EBPF
    return std::make_unique<EbpfLiveSource>(options);
#else
    throw util::FatalError(std::string("--ebpf: this sidetap was built without eBPF support (-DSIDETAP_EBPF=OFF); "
                                       "use libpcap capture (-i IFACE without --ebpf)"),
                           util::kExitUsage);
#endif
}

std::vector<std::unique_ptr<LiveSource>> open_live_sources(const LiveCaptureOptions& options, unsigned shards,
                                                           std::uint32_t seed) {
    if (shards == 0 || shards > kMaxShards)
        throw util::FatalError("--threads: between 1 and " + std::to_string(kMaxShards), util::kExitUsage);
    if (shards == 1) {
        std::vector<std::unique_ptr<LiveSource>> one;
        one.push_back(open_live_source(options));
        return one;
    }
    if (options.frontend == Frontend::Pcap) return PcapLiveSource::open_shards(options, shards, seed);
#ifdef SIDETAP_HAVE_EBPF
    return EbpfLiveSource::open_shards(options, shards, seed);
#else
    (void)open_live_source(options);  // throws: no eBPF in this build
    return {};
#endif
}

}  // namespace sidetap::capture
