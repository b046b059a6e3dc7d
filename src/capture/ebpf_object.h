// The one RAII wrapper around libbpf: loads sidetap's BPF programs (the
// skeleton built from bpf/sidetap.bpf.c), fills the filter maps, maps the
// ring buffer and the counters into memory, and attaches programs to
// sockets, tc hooks and cgroups. Nothing else in sidetap includes libbpf.
//
// Lifetime: Object owns the programs and maps; each attachment (a packet
// socket, a BPF link, a netlink tc filter) is a separate RAII value whose
// destructor detaches it. The kernel keeps a program alive while anything
// is attached to it, so the order of destruction does not matter. When the
// process dies without running destructors (SIGKILL, crash), the kernel
// closes every file descriptor: sockets and BPF links (tcx, cgroup) go with
// them; only a netlink tc filter (kernels without tcx, before 6.6) stays
// attached, and with it the clsact qdisc if sidetap created it (remove with
// `tc qdisc del dev IFACE clsact`).
//
// Errors (all util::FatalError, exit 1) name what failed and, for EPERM,
// the capabilities the step needs; a kernel that lacks a feature (ring
// buffers: 5.8; BPF links on cgroups: 5.7) is named as such.
#pragma once

#include "capture/ebpf_record.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

struct sidetap_bpf;
struct bpf_program;

namespace sidetap::capture::ebpf {

// A file descriptor, closed by the destructor.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() { reset(); }
    Fd(Fd&& other) noexcept : fd_(other.release()) {}
    Fd& operator=(Fd&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = other.release();
        }
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    [[nodiscard]] int get() const { return fd_; }
    [[nodiscard]] bool valid() const { return fd_ >= 0; }
    int release() {
        const int fd = fd_;
        fd_ = -1;
        return fd;
    }
    void reset();

private:
    int fd_ = -1;
};

// A memory mapping, unmapped by the destructor.
class Mapping {
public:
    Mapping() = default;
    Mapping(void* address, std::size_t length) : address_(address), length_(length) {}
    ~Mapping();
    Mapping(Mapping&& other) noexcept;
    Mapping& operator=(Mapping&& other) noexcept;
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    [[nodiscard]] std::uint8_t* data() const { return static_cast<std::uint8_t*>(address_); }
    [[nodiscard]] std::size_t size() const { return length_; }

private:
    void* address_ = nullptr;
    std::size_t length_ = 0;
};

enum class Program { Socket, TcIngress, TcEgress, CgroupIngress, CgroupEgress };

struct ObjectConfig {
    std::vector<Program> programs;             // only these are loaded
    std::uint64_t ring_bytes = 16ull << 20;    // all rings together; per ring a power of two, at least 256 KiB
    std::uint32_t shards = 1;                  // rings per CPU: one per shard (capture --threads)
    std::uint32_t shard_seed = 0;              // sidetap_shard_of() seed
    std::uint32_t l2_len = 0;                  // tc: bytes before the IP header
    std::uint32_t skip_out_ifindex = 0;        // socket: loopback's ifindex (each packet once)
    std::vector<std::uint16_t> ports;          // server (and upstream) ports
    std::vector<sidetap_addr> addresses;       // empty: any address
    bool tunnels = true;                       // admit tunnel packets (GRE, IP-in-IP, VXLAN, Geneve, GTP-U)
    std::string capabilities;                  // for messages: "CAP_BPF and CAP_NET_ADMIN"
};

class Object {
public:
    // Opens, configures, loads (verifier) and fills the maps; creates one
    // ring buffer per shard and possible CPU (index shard * cpus() + CPU)
    // and maps them and the counters.
    explicit Object(const ObjectConfig& config);
    ~Object();
    Object(const Object&) = delete;
    Object& operator=(const Object&) = delete;

    [[nodiscard]] int program_fd(Program program) const;
    [[nodiscard]] std::size_t ring_count() const { return rings_.size(); }
    [[nodiscard]] unsigned cpus() const { return cpus_; }
    [[nodiscard]] unsigned shards() const { return shards_; }
    [[nodiscard]] int ring_fd(std::size_t i) const { return rings_[i].fd.get(); }
    // Bytes of one ring.
    [[nodiscard]] std::uint64_t ring_bytes() const { return ring_bytes_; }
    // The consumer of ring i (one reader per ring).
    RingReader& ring(std::size_t i) { return rings_[i].reader; }
    // Sums over CPUs, indexed by sidetap_counter. No system call.
    [[nodiscard]] std::array<std::uint64_t, SIDETAP_CTR_COUNT> counters() const;

private:
    struct Ring {
        Fd fd;
        Mapping consumer_page;
        Mapping producer_and_data;
        RingReader reader;
    };

    void create_rings(const std::string& what);

    std::string capabilities_;
    sidetap_bpf* skel_ = nullptr;
    std::uint64_t ring_bytes_ = 0;
    unsigned cpus_ = 0;
    unsigned shards_ = 1;
    std::vector<Ring> rings_;
    Mapping counters_;
};

// AF_PACKET SOCK_DGRAM socket (all protocols) with the socket program as
// its filter, bound to `ifindex` (0: every interface of this network
// namespace); promiscuous mode when asked (needs an interface).
Fd attach_socket(const Object& object, unsigned ifindex, bool promiscuous, const std::string& what);

// A tc program on an interface. tcx BPF links where the kernel has them
// (Linux 6.6+); otherwise a clsact qdisc (created only if absent; then
// removed again) and a direct-action cls_bpf filter through netlink. The
// environment variable SIDETAP_EBPF_NO_TCX=1 forces the netlink path (for
// tests on kernels that have tcx).
class TcAttachment {
public:
    TcAttachment(const Object& object, Program program, unsigned ifindex, const std::string& interface);
    ~TcAttachment();
    TcAttachment(const TcAttachment&) = delete;
    TcAttachment& operator=(const TcAttachment&) = delete;
    [[nodiscard]] bool via_tcx() const { return link_.valid(); }
    [[nodiscard]] bool created_qdisc() const { return created_qdisc_; }

private:
    Fd link_;
    unsigned ifindex_ = 0;
    bool ingress_ = true;
    bool netlink_ = false;
    bool created_qdisc_ = false;
    std::uint32_t handle_ = 0;
    std::uint32_t priority_ = 0;
};

// A cgroup_skb program on a cgroup v2 directory (open fd), as a BPF link.
Fd attach_cgroup(const Object& object, Program program, int cgroup_fd, const std::string& path);

// Whether the calling thread has this capability in its effective set.
bool has_capability(int capability);

// libbpf's own messages (the verifier log among them) are kept, not
// printed: keep_libbpf_messages() routes them into a small buffer (the
// last 12 lines) and empties it; take_libbpf_log() returns them, one
// "\n  libbpf: ..." line each, for the error message of a failed step, and
// empties the buffer. Used by every eBPF loader (packet capture, TLS probes).
void keep_libbpf_messages();
std::string take_libbpf_log();

// uname's release, for messages about kernel features ("?" if unknown).
std::string kernel_release();

}  // namespace sidetap::capture::ebpf
