#include "capture/ebpf_object.h"

#include "util/error.h"

#include "sidetap.skel.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>

namespace sidetap::capture::ebpf {

namespace {

// BPF_TCX_INGRESS / BPF_TCX_EGRESS (Linux 6.6): newer than the UAPI headers
// of the build host may be; the values are ABI.
constexpr int kTcxIngress = 46;
// The reader is woken as soon as this much is waiting (or a sixteenth of
// the ring, if smaller): a batch the size of a libpcap TPACKET_V3 block;
// otherwise it finds the records at its next look (EbpfLiveSource: at most
// LiveCaptureOptions::handover_ms later).
constexpr std::uint64_t kWakeupBytes = 256 * 1024;
constexpr int kTcxEgress = 47;
#ifndef SO_ATTACH_BPF
constexpr int SO_ATTACH_BPF = 50;
#endif

std::string program_name(Program program) {
    switch (program) {
        case Program::Socket: return "socket filter";
        case Program::TcIngress: return "tc ingress";
        case Program::TcEgress: return "tc egress";
        case Program::CgroupIngress: return "cgroup_skb ingress";
        case Program::CgroupEgress: return "cgroup_skb egress";
    }
    return "?";
}

bpf_program* program_of(sidetap_bpf* skel, Program program) {
    switch (program) {
        case Program::Socket: return skel->progs.sidetap_socket;
        case Program::TcIngress: return skel->progs.sidetap_tc_ingress;
        case Program::TcEgress: return skel->progs.sidetap_tc_egress;
        case Program::CgroupIngress: return skel->progs.sidetap_cg_ingress;
        case Program::CgroupEgress: return skel->progs.sidetap_cg_egress;
    }
    return nullptr;
}

std::string permission_hint(const std::string& capabilities) {
    std::string missing;
    if (!has_capability(CAP_BPF) && !has_capability(CAP_SYS_ADMIN)) missing += " CAP_BPF";
    if (capabilities.find("CAP_NET_ADMIN") != std::string::npos && !has_capability(CAP_NET_ADMIN))
        missing += " CAP_NET_ADMIN";
    if (capabilities.find("CAP_NET_RAW") != std::string::npos && !has_capability(CAP_NET_RAW))
        missing += " CAP_NET_RAW";
    return ": needs " + capabilities + (missing.empty() ? "" : " (missing:" + missing + ")") +
           "; kernels before 5.8 have no CAP_BPF and need CAP_SYS_ADMIN instead (run as root, or setcap "
           "on the binary)";
}

std::uint64_t round_ring_size(std::uint64_t bytes) {
    std::uint64_t size = 256 * 1024;  // room for a few 64 KiB records
    while (size < bytes && size < (std::uint64_t{1} << 31)) size <<= 1;
    return size;
}

}  // namespace

// libbpf's messages (the verifier log among them) are kept, not printed:
// they go into the error message of a failed step.
namespace {
std::deque<std::string>& libbpf_log() {
    static std::deque<std::string> lines;
    return lines;
}

int keep_libbpf_message(enum libbpf_print_level level, const char* format, va_list args) {
    if (level == LIBBPF_DEBUG) return 0;
    char buffer[1024];
    const int n = std::vsnprintf(buffer, sizeof buffer, format, args);
    if (n <= 0) return 0;
    std::string line(buffer);
    while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
    auto& lines = libbpf_log();
    lines.push_back(std::move(line));
    while (lines.size() > 12) lines.pop_front();
    return 0;
}
}  // namespace

void keep_libbpf_messages() {
    libbpf_set_print(keep_libbpf_message);
    libbpf_log().clear();
}

std::string take_libbpf_log() {
    std::string text;
    for (const auto& line : libbpf_log())
        if (!line.empty()) text += "\n  libbpf: " + line;
    libbpf_log().clear();
    return text;
}

std::string kernel_release() {
    utsname u{};
    if (::uname(&u) != 0) return "?";
    return u.release;
}

void Fd::reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

Mapping::~Mapping() {
    if (address_) ::munmap(address_, length_);
}

Mapping::Mapping(Mapping&& other) noexcept : address_(other.address_), length_(other.length_) {
    other.address_ = nullptr;
    other.length_ = 0;
}

Mapping& Mapping::operator=(Mapping&& other) noexcept {
    if (this != &other) {
        if (address_) ::munmap(address_, length_);
        address_ = other.address_;
        length_ = other.length_;
        other.address_ = nullptr;
        other.length_ = 0;
    }
    return *this;
}

bool has_capability(int capability) {
    __user_cap_header_struct header{};
    header.version = _LINUX_CAPABILITY_VERSION_3;
    header.pid = 0;
    __user_cap_data_struct data[2]{};
    if (::syscall(SYS_capget, &header, data) != 0) return false;
    const int word = capability / 32;
    if (word > 1) return false;
    return (data[word].effective >> (capability % 32)) & 1u;
}

Object::Object(const ObjectConfig& config) : capabilities_(config.capabilities) {
    keep_libbpf_messages();
    const std::string what = "eBPF: ";

    skel_ = sidetap_bpf__open();
    if (!skel_) throw util::FatalError(what + "cannot open the BPF object: " + std::strerror(errno));
    try {
        for (Program p : {Program::Socket, Program::TcIngress, Program::TcEgress, Program::CgroupIngress,
                          Program::CgroupEgress}) {
            bool wanted = false;
            for (Program q : config.programs) wanted = wanted || q == p;
            bpf_program__set_autoload(program_of(skel_, p), wanted);
        }
        skel_->rodata->cfg_l2_len = config.l2_len;
        skel_->rodata->cfg_filter_addrs = config.addresses.empty() ? 0 : 1;
        skel_->rodata->cfg_tunnels = config.tunnels ? 1 : 0;
        skel_->rodata->cfg_skip_out_ifindex = config.skip_out_ifindex;

        const int cpus = libbpf_num_possible_cpus();
        if (cpus <= 0) throw util::FatalError(what + "cannot count the possible CPUs");
        cpus_ = static_cast<unsigned>(cpus);
        shards_ = std::max<unsigned>(config.shards, 1);
        ring_bytes_ = round_ring_size(config.ring_bytes / (cpus_ * shards_));
        skel_->rodata->cfg_shards = shards_;
        skel_->rodata->cfg_cpus = cpus_;
        skel_->rodata->cfg_shard_seed = config.shard_seed;
        skel_->rodata->cfg_wakeup_bytes =
            static_cast<__u32>(std::min<std::uint64_t>(kWakeupBytes, ring_bytes_ / 16));
        // The rings first: the one of CPU 0 is also the template that tells
        // the verifier what "rings" holds.
        create_rings(what);
        if (bpf_map__set_inner_map_fd(skel_->maps.rings, rings_[0].fd.get()) != 0 ||
            bpf_map__set_max_entries(skel_->maps.rings, cpus_ * shards_) != 0 ||
            bpf_map__set_max_entries(skel_->maps.counters, static_cast<__u32>(cpus_ * SIDETAP_CTR_STRIDE)) != 0)
            throw util::FatalError(what + "cannot size the maps");

        if (sidetap_bpf__load(skel_) != 0) {
            const int err = errno;
            if (err == EPERM || (err == EACCES && !has_capability(CAP_BPF) && !has_capability(CAP_SYS_ADMIN)))
                throw util::FatalError(what + "loading the BPF programs: permission denied" +
                                       permission_hint(config.capabilities));
            if (libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr) == 0)
                throw util::FatalError(what + "this kernel (" + kernel_release() +
                                       ") has no BPF ring buffer (Linux 5.8 or later is needed)");
            // Without CAP_PERFMON the verifier adds Spectre mitigations and
            // may refuse what it accepts with it (older kernels more so).
            const std::string perfmon = has_capability(CAP_PERFMON) || has_capability(CAP_SYS_ADMIN)
                                            ? ""
                                            : "; without CAP_PERFMON the verifier is stricter: try adding it";
            throw util::FatalError(what + "loading the BPF programs failed: " + std::strerror(err) + " (kernel " +
                                   kernel_release() + perfmon + ")" + take_libbpf_log());
        }

        // Filter maps.
        const std::uint8_t one = 1;
        for (std::uint16_t port : config.ports) {
            const std::uint32_t key = port;
            if (bpf_map_update_elem(bpf_map__fd(skel_->maps.ports), &key, &one, BPF_ANY) != 0)
                throw util::FatalError(what + "cannot fill the port map: " + std::strerror(errno));
        }
        for (const auto& address : config.addresses)
            if (bpf_map_update_elem(bpf_map__fd(skel_->maps.addrs), &address, &one, BPF_ANY) != 0)
                throw util::FatalError(what + "cannot fill the address map: " + std::strerror(errno) +
                                       " (at most " + std::to_string(SIDETAP_ADDRS_ENTRIES) + " addresses)");

        for (unsigned index = 0; index < rings_.size(); ++index) {
            const int fd = rings_[index].fd.get();
            if (bpf_map_update_elem(bpf_map__fd(skel_->maps.rings), &index, &fd, BPF_ANY) != 0)
                throw util::FatalError(what + "cannot install the ring buffer of CPU " + std::to_string(index % cpus_) +
                                       " (shard " + std::to_string(index / cpus_) + "): " + std::strerror(errno));
        }
        const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
        const std::size_t counter_bytes = (cpus_ * SIDETAP_CTR_STRIDE * sizeof(std::uint64_t) + page - 1) / page * page;
        void* counters = ::mmap(nullptr, counter_bytes, PROT_READ, MAP_SHARED, bpf_map__fd(skel_->maps.counters), 0);
        if (counters == MAP_FAILED)
            throw util::FatalError(what + "cannot map the counters: " + std::strerror(errno));
        counters_ = Mapping(counters, counter_bytes);
    } catch (...) {
        rings_.clear();
        counters_ = Mapping();
        sidetap_bpf__destroy(skel_);
        skel_ = nullptr;
        throw;
    }
}

Object::~Object() {
    rings_.clear();
    counters_ = Mapping();
    sidetap_bpf__destroy(skel_);
}

void Object::create_rings(const std::string& what) {
    // One ring per shard and CPU: consumer page read-write, producer page +
    // data (twice) read-only.
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    rings_.resize(std::size_t{cpus_} * shards_);
    for (std::size_t index = 0; index < rings_.size(); ++index) {
        Ring& r = rings_[index];
        r.fd = Fd(bpf_map_create(BPF_MAP_TYPE_RINGBUF, "sidetap_ring", 0, 0, static_cast<__u32>(ring_bytes_), nullptr));
        if (!r.fd.valid()) {
            const int err = errno;
            if (err == EPERM)
                throw util::FatalError(what + "creating the ring buffers: permission denied" + permission_hint(capabilities_));
            if (err == EINVAL && libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr) == 0)
                throw util::FatalError(what + "this kernel (" + kernel_release() +
                                       ") has no BPF ring buffer (Linux 5.8 or later is needed)");
            throw util::FatalError(what + "cannot create a ring buffer of " + std::to_string(ring_bytes_ >> 10) +
                                   " KiB: " + std::strerror(err));
        }
        const int fd = r.fd.get();
        void* consumer = ::mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (consumer == MAP_FAILED) throw util::FatalError(what + "cannot map a ring buffer: " + std::strerror(errno));
        r.consumer_page = Mapping(consumer, page);
        const std::size_t length = page + 2 * ring_bytes_;
        void* producer = ::mmap(nullptr, length, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(page));
        if (producer == MAP_FAILED) throw util::FatalError(what + "cannot map a ring buffer: " + std::strerror(errno));
        r.producer_and_data = Mapping(producer, length);
        r.reader = RingReader(reinterpret_cast<std::atomic<std::uint64_t>*>(r.consumer_page.data()),
                              reinterpret_cast<const std::atomic<std::uint64_t>*>(r.producer_and_data.data()),
                              r.producer_and_data.data() + page, ring_bytes_, ring_bytes_ / 16);
    }
}

int Object::program_fd(Program program) const { return bpf_program__fd(program_of(skel_, program)); }

std::array<std::uint64_t, SIDETAP_CTR_COUNT> Object::counters() const {
    std::array<std::uint64_t, SIDETAP_CTR_COUNT> sums{};
    const auto* values = reinterpret_cast<const std::uint64_t*>(counters_.data());
    for (unsigned cpu = 0; cpu < cpus_; ++cpu)
        for (unsigned i = 0; i < SIDETAP_CTR_COUNT; ++i)
            sums[i] += __atomic_load_n(&values[cpu * SIDETAP_CTR_STRIDE + i], __ATOMIC_RELAXED);
    return sums;
}

Fd attach_socket(const Object& object, unsigned ifindex, bool promiscuous, const std::string& what) {
    // Protocol 0 first: the socket receives nothing until bind() names a
    // protocol, by which time the filter is in place.
    Fd fd(::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        if (errno == EPERM)
            throw util::FatalError(what + ": cannot open an AF_PACKET socket: permission denied: needs CAP_NET_RAW");
        throw util::FatalError(what + ": cannot open an AF_PACKET socket: " + std::strerror(errno));
    }
    const int prog = object.program_fd(Program::Socket);
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_ATTACH_BPF, &prog, sizeof prog) != 0)
        throw util::FatalError(what + ": cannot attach the socket filter: " + std::strerror(errno));
    // Nothing is ever queued (the filter returns 0): the smallest buffer.
    const int small = 1;
    (void)::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_ll address{};
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_ALL);
    address.sll_ifindex = static_cast<int>(ifindex);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
        throw util::FatalError(what + ": cannot bind the AF_PACKET socket: " + std::strerror(errno));
    if (promiscuous) {
        packet_mreq request{};
        request.mr_ifindex = static_cast<int>(ifindex);
        request.mr_type = PACKET_MR_PROMISC;
        if (::setsockopt(fd.get(), SOL_PACKET, PACKET_ADD_MEMBERSHIP, &request, sizeof request) != 0)
            throw util::FatalError(what + ": cannot set promiscuous mode: " + std::strerror(errno));
    }
    return fd;
}

TcAttachment::TcAttachment(const Object& object, Program program, unsigned ifindex, const std::string& interface)
    : ifindex_(ifindex), ingress_(program == Program::TcIngress) {
    const std::string what = "--ebpf tc on " + interface + " (" + program_name(program) + ")";
    const int prog = object.program_fd(program);
    // SIDETAP_EBPF_NO_TCX=1 takes the netlink path even where tcx exists
    // (the root tests use it to check that path on a new kernel).
    const char* no_tcx = std::getenv("SIDETAP_EBPF_NO_TCX");
    if (!no_tcx || std::string(no_tcx) != "1") {
        const int fd = bpf_link_create(prog, static_cast<int>(ifindex),
                                       static_cast<bpf_attach_type>(ingress_ ? kTcxIngress : kTcxEgress), nullptr);
        if (fd >= 0) {
            link_ = Fd(fd);
            return;
        }
        const int err = -fd;
        if (err == EPERM)
            throw util::FatalError(what + ": permission denied: needs CAP_NET_ADMIN (and CAP_BPF)");
        if (err == ENODEV || err == ENXIO) throw util::FatalError(what + ": no such interface");
    }
    // EINVAL: this kernel has no tcx (before 6.6): a clsact qdisc and a
    // cls_bpf filter through netlink.
    bpf_tc_hook hook{};
    hook.sz = sizeof hook;
    hook.ifindex = static_cast<int>(ifindex);
    hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
    int rc = bpf_tc_hook_create(&hook);
    if (rc == 0) {
        created_qdisc_ = true;
    } else if (rc != -EEXIST) {
        throw util::FatalError(what + ": cannot add a clsact qdisc: " + std::strerror(-rc) +
                               (rc == -EPERM ? " (needs CAP_NET_ADMIN)" : ""));
    }
    hook.attach_point = ingress_ ? BPF_TC_INGRESS : BPF_TC_EGRESS;
    bpf_tc_opts opts{};
    opts.sz = sizeof opts;
    opts.prog_fd = prog;
    rc = bpf_tc_attach(&hook, &opts);
    if (rc != 0) {
        if (created_qdisc_) {
            hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
            bpf_tc_hook_destroy(&hook);
        }
        throw util::FatalError(what + ": cannot attach a tc filter: " + std::strerror(-rc));
    }
    netlink_ = true;
    handle_ = opts.handle;
    priority_ = opts.priority;
}

TcAttachment::~TcAttachment() {
    if (!netlink_) return;  // a tcx link goes with its fd
    bpf_tc_hook hook{};
    hook.sz = sizeof hook;
    hook.ifindex = static_cast<int>(ifindex_);
    hook.attach_point = ingress_ ? BPF_TC_INGRESS : BPF_TC_EGRESS;
    bpf_tc_opts opts{};
    opts.sz = sizeof opts;
    opts.handle = handle_;
    opts.priority = priority_;
    bpf_tc_detach(&hook, &opts);
    if (created_qdisc_) {
        hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
        bpf_tc_hook_destroy(&hook);
    }
}

Fd attach_cgroup(const Object& object, Program program, int cgroup_fd, const std::string& path) {
    const std::string what = "--ebpf cgroup on " + path + " (" + program_name(program) + ")";
    const auto type = program == Program::CgroupIngress ? BPF_CGROUP_INET_INGRESS : BPF_CGROUP_INET_EGRESS;
    const int fd = bpf_link_create(object.program_fd(program), cgroup_fd, type, nullptr);
    if (fd >= 0) return Fd(fd);
    const int err = -fd;
    if (err == EPERM) throw util::FatalError(what + ": permission denied: needs CAP_NET_ADMIN (and CAP_BPF)");
    if (err == EINVAL)
        throw util::FatalError(what + ": the kernel (" + kernel_release() +
                               ") cannot link a program to a cgroup (BPF links on cgroups need Linux 5.7+)");
    throw util::FatalError(what + ": cannot attach: " + std::strerror(err));
}

}  // namespace sidetap::capture::ebpf
