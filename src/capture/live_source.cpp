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

}  // namespace sidetap::capture
