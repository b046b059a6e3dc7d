#include "capture/ebpf_live_source.h"

#include "util/error.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if_arp.h>
#include <net/if.h>
#include <pcap/dlt.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

namespace sidetap::capture {

namespace {

#ifndef ARPHRD_RAWIP
constexpr int ARPHRD_RAWIP = 519;
#endif
constexpr long kCgroup2Magic = 0x63677270;  // CGROUP2_SUPER_MAGIC
constexpr unsigned kRefreshEvery = 1024;    // records between two clock measurements under load
constexpr unsigned kScanEvery = 16;         // records between two looks into every CPU's ring

std::vector<sidetap_addr> parse_addresses(const std::vector<std::string>& texts) {
    std::vector<sidetap_addr> out;
    for (const auto& text : texts) {
        sidetap_addr a{};
        in_addr v4{};
        if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) {
            a.bytes[10] = 0xff;
            a.bytes[11] = 0xff;
            std::memcpy(a.bytes + 12, &v4, 4);
        } else if (::inet_pton(AF_INET6, text.c_str(), a.bytes) != 1) {
            throw util::FatalError("--server-addr: '" + text + "' is not an IPv4 or IPv6 address", util::kExitUsage);
        }
        out.push_back(a);
    }
    return out;
}

// ARPHRD_* of an interface, or -1.
int link_type(const std::string& name) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    ifreq request{};
    std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
    const int rc = ::ioctl(fd, SIOCGIFHWADDR, &request);
    ::close(fd);
    return rc == 0 ? request.ifr_hwaddr.sa_family : -1;
}

unsigned interface_index(const std::string& name, const std::string& what) {
    const unsigned index = ::if_nametoindex(name.c_str());
    if (index == 0) throw util::FatalError(what + ": no such interface: " + name);
    return index;
}

std::string unescape_mountinfo(const std::string& field) {
    std::string out;
    for (std::size_t i = 0; i < field.size(); ++i) {
        if (field[i] == '\\' && i + 3 < field.size()) {
            const std::string octal = field.substr(i + 1, 3);
            if (octal.size() == 3 && octal.find_first_not_of("01234567") == std::string::npos) {
                out += static_cast<char>(std::stoi(octal, nullptr, 8));
                i += 3;
                continue;
            }
        }
        out += field[i];
    }
    return out;
}

// Mount point of the cgroup v2 hierarchy in this mount namespace, or "".
std::string cgroup2_mount() {
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
        const auto dash = line.find(" - ");
        if (dash == std::string::npos) continue;
        std::istringstream after(line.substr(dash + 3));
        std::string fstype;
        after >> fstype;
        if (fstype != "cgroup2") continue;
        std::istringstream before(line.substr(0, dash));
        std::string id, parent, device, root, mount_point;
        before >> id >> parent >> device >> root >> mount_point;
        return unescape_mountinfo(mount_point);
    }
    return "";
}

std::string mib(std::uint64_t bytes) {
    if (bytes >= (1u << 20)) return std::to_string(bytes >> 20) + " MiB";
    return std::to_string(bytes >> 10) + " KiB";
}

std::string filter_text(const LiveCaptureOptions& options, const std::vector<std::uint16_t>& ports) {
    std::string text = "in-kernel filter: ports";
    for (auto p : ports) text += " " + std::to_string(p);
    if (!options.filter.server_addresses.empty()) {
        text += ", addresses";
        for (const auto& a : options.filter.server_addresses) text += " " + a;
    }
    return text + ", following fragments";
}

}  // namespace

struct EbpfLiveSource::Capture {
    Capture(const LiveCaptureOptions& options, unsigned shards, std::uint32_t seed);
    ~Capture() { detach(); }
    // No new records; the object (rings, counters) stays. Once, whichever
    // shard asks first.
    void detach() {
        std::call_once(detached_, [this] {
            socket_.reset();
            tc_.clear();
            cgroup_links_.clear();
        });
    }
    Capture(const Capture&) = delete;
    Capture& operator=(const Capture&) = delete;

    Frontend frontend_;
    std::string target_;       // interface, or cgroup path
    std::string description_;  // for "capturing on"
    std::string channel_;      // the stats channel's name
    int handover_ms_;          // longest a record waits in a ring when the link is slow
    std::unique_ptr<ebpf::Object> object_;
    ebpf::Fd socket_;
    std::vector<std::unique_ptr<ebpf::TcAttachment>> tc_;
    ebpf::Fd cgroup_dir_;
    std::vector<ebpf::Fd> cgroup_links_;
    std::once_flag detached_;
};

EbpfLiveSource::Capture::Capture(const LiveCaptureOptions& options, unsigned shards, std::uint32_t seed)
    : frontend_(options.frontend), handover_ms_(std::max(options.handover_ms, 1)) {
    const std::string mode = frontend_name(frontend_);
    if (!options.filter.user_filter.empty())
        throw util::FatalError("--filter: a libpcap expression; --ebpf filters in the kernel by -p, --upstream-port and "
                               "--server-addr only",
                               util::kExitUsage);

    ebpf::ObjectConfig config;
    config.ring_bytes = options.buffer_bytes;
    config.shards = shards;
    config.shard_seed = seed;
    for (auto p : options.filter.ports) {
        bool seen = false;
        for (auto q : config.ports) seen = seen || q == p;
        if (!seen) config.ports.push_back(p);
    }
    config.addresses = parse_addresses(options.filter.server_addresses);
    config.tunnels = options.filter.tunnels;
    std::string hooks;
    unsigned ifindex = 0;

    switch (frontend_) {
        case Frontend::EbpfSocket: {
            if (options.interfaces.size() > 1)
                throw util::FatalError("--ebpf socket: at most one -i (none: every interface)", util::kExitUsage);
            target_ = options.interfaces.empty() || options.interfaces[0] == "any" ? "any" : options.interfaces[0];
            if (target_ != "any") ifindex = interface_index(target_, "--ebpf socket");
            if (options.promiscuous && ifindex == 0)
                throw util::FatalError("--promisc: needs -i IFACE with --ebpf socket", util::kExitUsage);
            config.programs = {ebpf::Program::Socket};
            config.skip_out_ifindex = ::if_nametoindex("lo");
            config.capabilities = "CAP_BPF and CAP_NET_RAW";
            hooks = "socket filter";
            break;
        }
        case Frontend::EbpfTc: {
            if (options.interfaces.size() != 1)
                throw util::FatalError("--ebpf tc: needs exactly one -i IFACE", util::kExitUsage);
            if (options.promiscuous)
                throw util::FatalError("--promisc: libpcap and --ebpf socket only", util::kExitUsage);
            target_ = options.interfaces[0];
            ifindex = interface_index(target_, "--ebpf tc");
            const int type = link_type(target_);
            if (type == ARPHRD_ETHER || type == ARPHRD_LOOPBACK) {
                config.l2_len = 14;
            } else if (type == ARPHRD_NONE || type == ARPHRD_RAWIP) {
                config.l2_len = 0;
            } else {
                throw util::FatalError("--ebpf tc on " + target_ + ": link type " + std::to_string(type) +
                                       " is not supported (Ethernet, loopback and raw IP are); use --ebpf socket");
            }
            if (type == ARPHRD_LOOPBACK) {
                config.programs = {ebpf::Program::TcIngress};
                hooks = "tc ingress";
            } else {
                config.programs = {ebpf::Program::TcIngress, ebpf::Program::TcEgress};
                hooks = "tc ingress+egress";
            }
            config.capabilities = "CAP_BPF and CAP_NET_ADMIN";
            break;
        }
        case Frontend::EbpfCgroup: {
            if (!options.interfaces.empty())
                throw util::FatalError("--ebpf cgroup: no -i (the cgroup's traffic on every interface is seen)",
                                       util::kExitUsage);
            if (options.promiscuous)
                throw util::FatalError("--promisc: libpcap and --ebpf socket only", util::kExitUsage);
            if (options.cgroup.empty())
                throw util::FatalError("--ebpf cgroup: needs --cgroup PATH (a cgroup v2 directory)", util::kExitUsage);
            const std::string mount = cgroup2_mount();
            target_ = options.cgroup;
            if (target_.front() != '/') {
                if (mount.empty())
                    throw util::FatalError("--cgroup " + target_ +
                                           ": no cgroup v2 hierarchy is mounted (cgroup_skb programs attach to cgroup "
                                           "v2 only; e.g. mount -t cgroup2 none /sys/fs/cgroup/unified)");
                target_ = mount + "/" + target_;
            }
            struct statfs fs {};
            if (::statfs(target_.c_str(), &fs) != 0)
                throw util::FatalError("--cgroup " + target_ + ": " + std::strerror(errno) +
                                       (errno == ENOENT ? " (no such cgroup)" : ""));
            if (static_cast<long>(fs.f_type) != kCgroup2Magic)
                throw util::FatalError("--cgroup " + target_ + ": not a cgroup v2 directory (" +
                                       (mount.empty() ? std::string("no cgroup v2 hierarchy is mounted here")
                                                      : "the cgroup v2 hierarchy is mounted at " + mount) +
                                       ")");
            cgroup_dir_ = ebpf::Fd(::open(target_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
            if (!cgroup_dir_.valid())
                throw util::FatalError("--cgroup " + target_ + ": " + std::strerror(errno));
            config.programs = {ebpf::Program::CgroupIngress, ebpf::Program::CgroupEgress};
            config.capabilities = "CAP_BPF and CAP_NET_ADMIN";
            hooks = "cgroup_skb ingress+egress";
            break;
        }
        case Frontend::Pcap:
            throw util::FatalError("EbpfLiveSource: not an eBPF frontend");
    }

    object_ = std::make_unique<ebpf::Object>(config);

    std::string via;
    switch (frontend_) {
        case Frontend::EbpfSocket:
            socket_ = ebpf::attach_socket(*object_, ifindex, options.promiscuous, "--ebpf socket on " + target_);
            via = "AF_PACKET";
            break;
        case Frontend::EbpfTc:
            for (auto program : config.programs)
                tc_.push_back(std::make_unique<ebpf::TcAttachment>(*object_, program, ifindex, target_));
            via = tc_.front()->via_tcx() ? "tcx links"
                                         : (tc_.front()->created_qdisc() ? "clsact (added by sidetap), netlink"
                                                                         : "existing clsact, netlink");
            break;
        case Frontend::EbpfCgroup:
            for (auto program : config.programs)
                cgroup_links_.push_back(ebpf::attach_cgroup(*object_, program, cgroup_dir_.get(), target_));
            via = "BPF links";
            break;
        case Frontend::Pcap: break;
    }

    const unsigned cpus = object_->cpus();
    description_ = (frontend_ == Frontend::EbpfCgroup ? "cgroup " : "") + target_ + " (ebpf " + hooks + " via " + via +
                   ", RAW, ns timestamps), rings " + std::to_string(object_->ring_count()) + " x " +
                   mib(object_->ring_bytes()) +
                   (object_->shards() > 1 ? " (one per CPU and shard: " + std::to_string(object_->shards()) + " x " +
                                                std::to_string(cpus) + ")"
                                          : std::string(" (one per CPU)")) +
                   ", " + filter_text(options, config.ports);
    channel_ = std::string(frontend_ == Frontend::EbpfSocket ? "socket:" : frontend_ == Frontend::EbpfTc ? "tc:" : "cgroup:") +
               target_;
}

EbpfLiveSource::EbpfLiveSource(const LiveCaptureOptions& options)
    : EbpfLiveSource(std::make_shared<Capture>(options, 1, 0), 0) {}

std::vector<std::unique_ptr<LiveSource>> EbpfLiveSource::open_shards(const LiveCaptureOptions& options,
                                                                     unsigned shards, std::uint32_t seed) {
    if (shards == 0 || shards > SIDETAP_MAX_SHARDS)
        throw util::FatalError("--threads: at most " + std::to_string(SIDETAP_MAX_SHARDS) + " with --ebpf",
                               util::kExitUsage);
    auto capture = std::make_shared<Capture>(options, shards, seed);
    std::vector<std::unique_ptr<LiveSource>> out;
    for (unsigned i = 0; i < shards; ++i) out.push_back(std::unique_ptr<LiveSource>(new EbpfLiveSource(capture, i)));
    return out;
}

EbpfLiveSource::EbpfLiveSource(std::shared_ptr<Capture> capture, unsigned shard)
    : capture_(std::move(capture)), shard_(shard) {
    ebpf::Object& object = *capture_->object_;
    const std::size_t cpus = object.cpus();
    first_ring_ = shard_ * cpus;
    heads_.resize(cpus);
    for (std::size_t i = 0; i < cpus; ++i) pollfds_.push_back(pollfd{object.ring_fd(first_ring_ + i), POLLIN, 0});
    last_ring_ = heads_.size();

    LiveChannelStats s;
    s.kind = "ebpf";
    s.name = capture_->channel_;
    s.counters = {{"kernel_seen", 0, false},       {"kernel_passed", 0, false},  {"fragments_followed", 0, false},
                  {"fragments_unknown", 0, false}, {"ring_full_dropped", 0, true}, {"truncated", 0, true},
                  {"copy_failed", 0, true},        {"bad_records", 0, true},     {"tunnels_passed", 0, false}};
    stats_.push_back(std::move(s));
    clock_.refresh();
}

EbpfLiveSource::~EbpfLiveSource() = default;

bool EbpfLiveSource::refill(std::size_t ring) {
    std::span<const std::uint8_t> bytes;
    while (capture_->object_->ring(first_ring_ + ring).next(bytes)) {
        if (ebpf::parse_record(bytes, heads_[ring].record)) {
            heads_[ring].valid = true;
            return true;
        }
        ++bad_records_;
    }
    return false;
}

std::size_t EbpfLiveSource::oldest_head() const {
    std::size_t best = heads_.size();
    for (std::size_t i = 0; i < heads_.size(); ++i)
        if (heads_[i].valid && (best == heads_.size() || heads_[i].record.ktime_ns < heads_[best].record.ktime_ns))
            best = i;
    return best;
}

LiveSource::Read EbpfLiveSource::read(Packet& out, int timeout_ms) {
    if (failed_) return Read::Error;
    int remaining = timeout_ms < 0 ? 0 : timeout_ms;
    for (bool first = true;; first = false) {
        // The ring just read from gets its next head at once; the others
        // (whose heads are older than theirs may be now) every few records
        // and whenever nothing is at hand: looking into every CPU's ring for
        // every packet would cost a cache miss per CPU per packet.
        if (last_ring_ < heads_.size()) refill(last_ring_);
        std::size_t best = oldest_head();
        if (best == heads_.size() || ++since_scan_ >= kScanEvery) {
            since_scan_ = 0;
            for (std::size_t i = 0; i < heads_.size(); ++i)
                if (!heads_[i].valid) refill(i);
            best = oldest_head();
        }
        if (best != heads_.size()) {
            const ebpf::Record& record = heads_[best].record;
            heads_[best].valid = false;
            last_ring_ = best;
            if (++since_refresh_ >= kRefreshEvery) {
                clock_.refresh();
                since_refresh_ = 0;
            }
            out.timestamp_ns = clock_.to_wall(record.ktime_ns);
            out.link_type = linktype::kRaw;
            out.original_length = record.orig_len;
            out.data = record.data;  // valid until ring `best` is read again: the next read() at the earliest
            out.interface = record.ifindex != 0 ? interface_names_.name(record.ifindex) : std::string_view();
            out.frame = 0;
            ++stats_[0].packets;
            return Read::Packet;
        }
        last_ring_ = heads_.size();
        if (remaining <= 0) return Read::Idle;
        // About to sleep: the moment to follow a step of the wall clock.
        if (first) {
            clock_.refresh();
            since_refresh_ = 0;
        }
        // The kernel wakes us only for a batch (ebpf_object.cpp); single
        // records are picked up when a slice of the wait ends, as libpcap's
        // TPACKET_V3 blocks are by their timeout.
        const int slice = std::min(remaining, capture_->handover_ms_);
        const int n = ::poll(pollfds_.data(), pollfds_.size(), slice);
        if (n < 0 && errno != EINTR) {
            error_ = "--ebpf " + capture_->target_ + ": waiting for the ring buffers: " + std::strerror(errno);
            failed_ = true;
            return Read::Error;
        }
        if (n < 0) return Read::Idle;  // a signal: let the caller look
        remaining -= slice;            // a wakeup counts as a whole slice: the wait stays bounded
    }
}

void EbpfLiveSource::seal() { capture_->detach(); }

void EbpfLiveSource::update_stats() {
    auto& counters = stats_[0].counters;
    counters[7].value = bad_records_;
    if (shard_ != 0) return;  // the kernel's counters are reported once, by shard 0
    const auto c = capture_->object_->counters();
    counters[0].value = c[SIDETAP_CTR_SEEN];
    counters[1].value = c[SIDETAP_CTR_PASSED];
    counters[2].value = c[SIDETAP_CTR_FRAG_FOLLOWED];
    counters[3].value = c[SIDETAP_CTR_FRAG_UNKNOWN];
    counters[4].value = c[SIDETAP_CTR_RING_FULL];
    counters[5].value = c[SIDETAP_CTR_TRUNCATED];
    counters[6].value = c[SIDETAP_CTR_COPY_FAILED];
    counters[8].value = c[SIDETAP_CTR_TUNNEL];
}

std::vector<LiveChannelInfo> EbpfLiveSource::channels() const {
    // libpcap writes DLT_RAW as LINKTYPE_RAW.
    return {{stats_[0].name, DLT_RAW, capture_->description_}};
}

}  // namespace sidetap::capture
