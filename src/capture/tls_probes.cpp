#include "capture/tls_probes.h"

#include "capture/ebpf_object.h"
#include "capture/ebpf_record.h"
#include "capture/tls_processes.h"
#include "capture/tls_record.h"
#include "util/error.h"

#include "tls.skel.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <set>

namespace sidetap::capture {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kScanEvery = std::chrono::seconds(1);
// The kernel wakes the reader only once this much is waiting (or a
// sixteenth of the ring, if smaller); otherwise records are picked up when
// a wait slice ends.
constexpr std::uint64_t kWakeupBytes = 64 * 1024;
constexpr int kWaitSliceMs = 10;

std::string privileges_hint() {
    std::string missing;
    const bool admin = ebpf::has_capability(CAP_SYS_ADMIN);
    if (!admin && !ebpf::has_capability(CAP_BPF)) missing += " CAP_BPF";
    if (!admin && !ebpf::has_capability(CAP_PERFMON)) missing += " CAP_PERFMON";
    return "needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)" +
           (missing.empty() ? std::string() : " (missing:" + missing + ")");
}

std::string mib(std::uint64_t bytes) {
    return bytes >= (1u << 20) ? std::to_string(bytes >> 20) + " MiB" : std::to_string(bytes >> 10) + " KiB";
}

struct Probe {
    bpf_program* program;
    const char* function;
    bool ret;
};

// A BPF link, destroyed (detached) with its owner.
struct LinkDeleter {
    void operator()(bpf_link* link) const { bpf_link__destroy(link); }
};
using Link = std::unique_ptr<bpf_link, LinkDeleter>;

struct AttachedLibrary {
    tls::MappedLibrary library;
    std::vector<Link> links;
};

// CLOCK_MONOTONIC, as bpf_ktime_get_ns().
std::uint64_t monotonic_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

struct Target {
    tls::ProcessInfo info;
    bool named = false;  // found by --tls-process (else --tls-pid)
    std::vector<AttachedLibrary> libraries;
    std::uint64_t examined_ns = 0;  // when its /proc entries were read (an exec before that changes nothing)
};

}  // namespace

struct TlsProbeSource::Impl {
    int comm_pid = -1;  // the process whose name `comm_name` holds (StreamChunk::comm)
    std::string comm_name;
    TlsCaptureOptions options;
    tls_bpf* skel = nullptr;
    ebpf::Mapping consumer_page;
    ebpf::Mapping producer_and_data;
    ebpf::RingReader ring;
    ebpf::Mapping counters;
    unsigned cpus = 0;
    std::uint64_t ring_bytes = 0;
    std::vector<Link> socket_links;  // tp_btf sock_recv_length / sock_send_length, sched_process_exec
    bool socket_tracepoints = false;
    ebpf::WallClock clock;
    pollfd wait{};
    std::map<int, Target> targets;
    std::map<int, std::uint64_t> seen;  // pid -> when it was looked at by name (not followed)
    std::set<int> waiting;               // named processes without a TLS library (yet)
    Clock::time_point next_scan{};
    std::string error;
    bool failed = false;
    std::uint64_t bad_records = 0;
    std::uint64_t chunks = 0;
    std::uint64_t processes_followed = 0;
    std::uint64_t processes_exited = 0;
    std::uint64_t attach_failures = 0;
    unsigned since_refresh = 0;
    std::vector<LiveChannelStats> stats;
    std::vector<std::string> notes;  // said once at start (descriptions)

    explicit Impl(const TlsCaptureOptions& o) : options(o) { options.cgroup = tls::cgroup_directory(o.cgroup); }

    ~Impl() {
        targets.clear();  // detach the uprobes first
        socket_links.clear();
        consumer_page = ebpf::Mapping();
        producer_and_data = ebpf::Mapping();
        counters = ebpf::Mapping();
        tls_bpf__destroy(skel);
    }

    // ------------------------------------------------------------ setup

    void check_kernel() {
        struct stat st {};
        if (::stat("/sys/kernel/btf/vmlinux", &st) != 0)
            throw util::FatalError("TLS probes: this kernel (" + ebpf::kernel_release() +
                                   ") has no BTF (/sys/kernel/btf/vmlinux is missing): the probes read kernel "
                                   "structures with CO-RE and need a kernel built with CONFIG_DEBUG_INFO_BTF");
        if (::stat("/sys/bus/event_source/devices/uprobe", &st) != 0 &&
            ::stat("/sys/kernel/tracing/uprobe_events", &st) != 0 &&
            ::stat("/sys/kernel/debug/tracing/uprobe_events", &st) != 0)
            throw util::FatalError("TLS probes: this kernel (" + ebpf::kernel_release() +
                                   ") has no uprobes (no uprobe PMU in /sys/bus/event_source/devices; "
                                   "CONFIG_UPROBE_EVENTS)");
    }

    void load() {
        ebpf::keep_libbpf_messages();
        skel = tls_bpf__open();
        if (!skel) throw util::FatalError(std::string("TLS probes: cannot open the BPF object: ") + std::strerror(errno));
        const int n = libbpf_num_possible_cpus();
        if (n <= 0) throw util::FatalError("TLS probes: cannot count the possible CPUs");
        cpus = static_cast<unsigned>(n);
        ring_bytes = 256 * 1024;
        while (ring_bytes < options.ring_bytes && ring_bytes < (std::uint64_t{1} << 30)) ring_bytes <<= 1;
        skel->rodata->cfg_wakeup_bytes = static_cast<__u32>(std::min<std::uint64_t>(kWakeupBytes, ring_bytes / 16));
        if (bpf_map__set_max_entries(skel->maps.ring, static_cast<__u32>(ring_bytes)) != 0 ||
            bpf_map__set_max_entries(skel->maps.counters, static_cast<__u32>(cpus * SIDETAP_TLS_CTR_STRIDE)) != 0)
            throw util::FatalError("TLS probes: cannot size the maps");
        // Attribution without a descriptor: the socket tracepoints (6.3).
        socket_tracepoints = libbpf_find_vmlinux_btf_id("sock_recv_length", BPF_TRACE_RAW_TP) > 0 &&
                             libbpf_find_vmlinux_btf_id("sock_send_length", BPF_TRACE_RAW_TP) > 0;
        (void)ebpf::take_libbpf_log();
        if (!socket_tracepoints) {
            bpf_program__set_autoload(skel->progs.sock_recv, false);
            bpf_program__set_autoload(skel->progs.sock_send, false);
            notes.push_back("TLS probes: this kernel (" + ebpf::kernel_release() +
                            ") has no sock_recv_length/sock_send_length tracepoints (Linux 6.3): only connections "
                            "whose descriptor the server hands to SSL_set_fd or gnutls_transport_set_int2 get "
                            "addresses; the others are counted as unattributed");
        }
        if (tls_bpf__load(skel) != 0) {
            const int err = errno;
            if (err == EPERM || err == EACCES)
                throw util::FatalError("TLS probes: loading the BPF programs: permission denied: " + privileges_hint());
            throw util::FatalError("TLS probes: loading the BPF programs failed: " + std::string(std::strerror(err)) +
                                   " (kernel " + ebpf::kernel_release() + ")" + ebpf::take_libbpf_log());
        }
        const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
        const int ring_fd = bpf_map__fd(skel->maps.ring);
        void* consumer = ::mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED, ring_fd, 0);
        if (consumer == MAP_FAILED)
            throw util::FatalError(std::string("TLS probes: cannot map the ring buffer: ") + std::strerror(errno));
        consumer_page = ebpf::Mapping(consumer, page);
        const std::size_t length = page + 2 * ring_bytes;
        void* producer = ::mmap(nullptr, length, PROT_READ, MAP_SHARED, ring_fd, static_cast<off_t>(page));
        if (producer == MAP_FAILED)
            throw util::FatalError(std::string("TLS probes: cannot map the ring buffer: ") + std::strerror(errno));
        producer_and_data = ebpf::Mapping(producer, length);
        ring = ebpf::RingReader(reinterpret_cast<std::atomic<std::uint64_t>*>(consumer_page.data()),
                                reinterpret_cast<const std::atomic<std::uint64_t>*>(producer_and_data.data()),
                                producer_and_data.data() + page, ring_bytes, ring_bytes / 16);
        const std::size_t counter_bytes =
            (cpus * SIDETAP_TLS_CTR_STRIDE * sizeof(std::uint64_t) + page - 1) / page * page;
        void* c = ::mmap(nullptr, counter_bytes, PROT_READ, MAP_SHARED, bpf_map__fd(skel->maps.counters), 0);
        if (c == MAP_FAILED)
            throw util::FatalError(std::string("TLS probes: cannot map the counters: ") + std::strerror(errno));
        counters = ebpf::Mapping(c, counter_bytes);
        wait = pollfd{ring_fd, POLLIN, 0};

        {
            bpf_link* link = bpf_program__attach(skel->progs.process_exec);
            if (!link)
                throw util::FatalError("TLS probes: cannot attach to the sched_process_exec tracepoint: " +
                                       std::string(std::strerror(errno)) + ebpf::take_libbpf_log());
            socket_links.emplace_back(link);
        }
        if (socket_tracepoints) {
            for (bpf_program* p : {skel->progs.sock_recv, skel->progs.sock_send}) {
                bpf_link* link = bpf_program__attach(p);
                if (!link)
                    throw util::FatalError("TLS probes: cannot attach to the sock_recv_length/sock_send_length "
                                           "tracepoints: " +
                                           std::string(std::strerror(errno)) + ebpf::take_libbpf_log());
                socket_links.emplace_back(link);
            }
        }
    }

    std::vector<Probe> probes(tls::Library library) const {
        auto& p = skel->progs;
        if (library == tls::Library::OpenSsl)
            return {{p.ssl_read_enter, "SSL_read", false},        {p.ssl_read_leave, "SSL_read", true},
                    {p.ssl_read_ex_enter, "SSL_read_ex", false},  {p.ssl_read_ex_leave, "SSL_read_ex", true},
                    {p.ssl_write_enter, "SSL_write", false},      {p.ssl_write_leave, "SSL_write", true},
                    {p.ssl_write_ex_enter, "SSL_write_ex", false}, {p.ssl_write_ex_leave, "SSL_write_ex", true},
                    {p.ssl_set_fd, "SSL_set_fd", false},
                    {p.ssl_do_handshake_enter, "SSL_do_handshake", false},
                    {p.ssl_do_handshake_leave, "SSL_do_handshake", true},
                    {p.ssl_free, "SSL_free", false}};
        return {{p.gnutls_recv_enter, "gnutls_record_recv", false},
                {p.gnutls_recv_leave, "gnutls_record_recv", true},
                {p.gnutls_send_enter, "gnutls_record_send", false},
                {p.gnutls_send_leave, "gnutls_record_send", true},
                {p.gnutls_uncork_enter, "gnutls_record_uncork", false},
                {p.gnutls_uncork_leave, "gnutls_record_uncork", true},
                {p.gnutls_set_int2, "gnutls_transport_set_int2", false},
                {p.gnutls_handshake_enter, "gnutls_handshake", false},
                {p.gnutls_handshake_leave, "gnutls_handshake", true},
                {p.gnutls_deinit, "gnutls_deinit", false}};
    }

    // Attaches every probe of `library` for process `pid`. Throws (with the
    // process and library named) when the library cannot be probed at all.
    AttachedLibrary attach(const tls::ProcessInfo& process, const tls::MappedLibrary& library) {
        const std::string who = "process " + std::to_string(process.pid) + " (" + process.comm + ")";
        const std::string path = "/proc/" + std::to_string(process.pid) + "/root" + library.path;
        if (library.deleted)
            throw util::FatalError("TLS probes: " + who + " maps " + library.path +
                                   ", which was replaced or removed on disk since it started (a package upgrade?): "
                                   "restart it so that it maps the library that is there now");
        AttachedLibrary out{library, {}};
        std::set<std::string> missing;
        for (const auto& probe : probes(library.library)) {
            LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = probe.ret, .func_name = probe.function);
            bpf_link* link = bpf_program__attach_uprobe_opts(probe.program, process.pid, path.c_str(), 0, &opts);
            if (link) {
                out.links.emplace_back(link);
                continue;
            }
            const int err = errno;
            if (err == EPERM || err == EACCES)
                throw util::FatalError("TLS probes: attaching to " + library.path + " of " + who +
                                       ": permission denied: " + privileges_hint() +
                                       ", and CAP_SYS_PTRACE for a process of another user");
            if (err == ESRCH) throw util::FatalError("TLS probes: " + who + " exited");
            if (err == ENOENT) {
                struct stat st {};
                if (::stat(path.c_str(), &st) != 0)
                    throw util::FatalError("TLS probes: " + who + ": cannot open " + path + ": " + std::strerror(errno));
                missing.insert(probe.function);
                (void)ebpf::take_libbpf_log();
                continue;
            }
            throw util::FatalError(std::string("TLS probes: attaching to ") + probe.function + " in " + library.path + " of " +
                                   who + " failed: " + std::strerror(err) + ebpf::take_libbpf_log());
        }
        auto has = [&](const char* f) { return missing.count(f) == 0; };
        const bool openssl = library.library == tls::Library::OpenSsl;
        const bool reads = openssl ? has("SSL_read") || has("SSL_read_ex") : has("gnutls_record_recv");
        const bool writes = openssl ? has("SSL_write") || has("SSL_write_ex") : has("gnutls_record_send");
        if (!reads || !writes) {
            std::string names;
            for (const auto& m : missing) names += (names.empty() ? "" : ", ") + m;
            throw util::FatalError("TLS probes: " + library.path + " of " + who + " lacks " + names +
                                   " (a library without these symbols, or stripped of its dynamic symbols, "
                                   "cannot be probed)");
        }
        for (const auto& m : missing)
            notes.push_back("TLS probes: " + library.path + " of " + who + " has no " + m +
                            (m == "SSL_free" || m == "gnutls_deinit"
                                 ? ": a TLS object reused for a new connection may be taken for the old one"
                                 : ""));
        return out;
    }

    // Follows a process: attaches to every TLS library it maps that is not
    // attached yet. Returns the number of libraries it is followed in.
    std::size_t follow(Target& target) {
        const auto maps = tls::read_maps(target.info.pid);
        if (!maps) {
            if (errno == EACCES || errno == EPERM)
                throw util::FatalError("TLS probes: cannot read /proc/" + std::to_string(target.info.pid) +
                                       "/maps: permission denied (needs CAP_SYS_PTRACE for a process of another "
                                       "user)");
            return target.libraries.size();  // gone: the next scan removes it
        }
        for (const auto& lib : tls::tls_libraries_in_maps(*maps)) {
            bool have = false;
            for (const auto& a : target.libraries) have = have || (a.library.path == lib.path);
            if (have) continue;
            target.libraries.push_back(attach(target.info, lib));
            if (!options.quiet)
                std::fprintf(stderr, "sidetap: TLS: following process %d (%s): %s %s\n", target.info.pid,
                             target.info.comm.c_str(), tls::library_name(lib.library), lib.path.c_str());
        }
        return target.libraries.size();
    }

    void set_pid(int pid, bool on) {
        const __u32 key = static_cast<__u32>(pid);
        const __u8 one = 1;
        if (on) {
            if (bpf_map_update_elem(bpf_map__fd(skel->maps.pids), &key, &one, BPF_ANY) != 0)
                throw util::FatalError("TLS probes: cannot follow process " + std::to_string(pid) + ": " +
                                       std::strerror(errno) + " (at most " + std::to_string(SIDETAP_TLS_PIDS_ENTRIES) +
                                       " processes)");
        } else {
            bpf_map_delete_elem(bpf_map__fd(skel->maps.pids), &key);  // best effort: the process is gone
        }
    }

    void start_explicit(int pid) {
        const auto examined = monotonic_ns();
        const auto info = tls::read_process(pid);
        if (!info) throw util::FatalError("--tls-pid " + std::to_string(pid) + ": no such process");
        Target t{*info, false, {}, examined};
        set_pid(pid, true);
        if (follow(t) == 0) {
            set_pid(pid, false);
            throw util::FatalError("--tls-pid " + std::to_string(pid) + " (" + info->comm +
                                   "): maps no TLS library (looked for libssl.so* and libgnutls.so* in /proc/" +
                                   std::to_string(pid) +
                                   "/maps; a server with its TLS library linked in statically cannot be probed)");
        }
        ++processes_followed;
        targets.emplace(pid, std::move(t));
    }

    bool wanted_name(const tls::ProcessInfo& info) const {
        for (const auto& name : options.names)
            if (name == "*" || tls::name_matches(info, name)) return true;
        return false;
    }

    // The processes that executed a new program since the last look: a name
    // looked at before may be another one now; a followed process lost its
    // probes with its old image.
    std::vector<std::pair<int, std::uint64_t>> take_execs() {
        const int fd = bpf_map__fd(skel->maps.execs);
        std::vector<std::pair<int, std::uint64_t>> execs;
        __u32 key = 0, next = 0;
        const void* prev = nullptr;
        while (execs.size() < SIDETAP_TLS_EXECS_ENTRIES && bpf_map_get_next_key(fd, prev, &next) == 0) {
            __u64 when = 0;
            if (bpf_map_lookup_elem(fd, &next, &when) == 0) execs.emplace_back(static_cast<int>(next), when);
            key = next;
            prev = &key;
        }
        for (const auto& [pid, when] : execs) {
            const __u32 k = static_cast<__u32>(pid);
            bpf_map_delete_elem(fd, &k);
        }
        return execs;
    }

    // An exec before we looked at the process (its maps, its name) changes
    // nothing: what we read was already the new program.
    void after_exec(int pid, std::uint64_t when) {
        if (const auto s = seen.find(pid); s != seen.end() && when >= s->second) seen.erase(s);
        const auto it = targets.find(pid);
        if (it == targets.end() || when < it->second.examined_ns) return;
        const bool named = it->second.named;
        const std::string comm = it->second.info.comm;
        set_pid(pid, false);
        comm_pid = -1;
        targets.erase(it);  // its probes went with the old image
        if (named) return;  // looked at again below, by name
        // --tls-pid: the same process, whatever it runs now.
        const auto examined = monotonic_ns();
        const auto info = tls::read_process(pid);
        if (!info) return;
        Target t{*info, false, {}, examined};
        try {
            set_pid(pid, true);
            if (follow(t) == 0) {
                set_pid(pid, false);
                std::fprintf(stderr, "sidetap: TLS: process %d (%s) now runs %s, which maps no TLS library\n", pid,
                             comm.c_str(), info->comm.c_str());
                return;
            }
        } catch (const util::FatalError& e) {
            set_pid(pid, false);
            ++attach_failures;
            std::fprintf(stderr, "sidetap: %s\n", e.what());
            return;
        }
        targets.emplace(pid, std::move(t));
    }

    // Named processes: new ones, ones that had no TLS library yet, and
    // libraries loaded since.
    void scan() {
        for (const auto& [pid, when] : take_execs()) after_exec(pid, when);
        // Gone.
        for (auto it = targets.begin(); it != targets.end();) {
            if (tls::still_running(it->second.info)) {
                ++it;
                continue;
            }
            if (!options.quiet)
                std::fprintf(stderr, "sidetap: TLS: process %d (%s) exited; its probes are removed\n", it->first,
                             it->second.info.comm.c_str());
            ++processes_exited;
            set_pid(it->first, false);
            it = targets.erase(it);
        }
        if (options.names.empty()) {
            for (auto& [pid, t] : targets) rescan(t);
            return;
        }
        const auto pids = options.cgroup.empty() ? tls::list_pids() : tls::cgroup_pids(options.cgroup);
        std::set<int> present(pids.begin(), pids.end());
        for (auto it = seen.begin(); it != seen.end();) it = present.count(it->first) ? std::next(it) : seen.erase(it);
        for (const int pid : pids) {
            if (auto t = targets.find(pid); t != targets.end()) {
                rescan(t->second);
                continue;
            }
            if (seen.count(pid) && !waiting.count(pid)) continue;
            const auto examined = monotonic_ns();
            const auto info = tls::read_process(pid);
            if (!info) continue;
            seen[pid] = examined;
            if (!wanted_name(*info)) continue;
            Target t{*info, true, {}, examined};
            try {
                set_pid(pid, true);
                if (follow(t) == 0) {
                    set_pid(pid, false);
                    if (waiting.insert(pid).second && !options.quiet)
                        std::fprintf(stderr,
                                     "sidetap: TLS: process %d (%s) maps no TLS library (yet); looking again every "
                                     "second\n",
                                     pid, info->comm.c_str());
                    continue;
                }
            } catch (const util::FatalError& e) {
                // One process that cannot be probed does not stop the others.
                set_pid(pid, false);
                ++attach_failures;
                waiting.erase(pid);
                std::fprintf(stderr, "sidetap: %s\n", e.what());
                continue;
            }
            waiting.erase(pid);
            ++processes_followed;
            targets.emplace(pid, std::move(t));
        }
        for (auto it = waiting.begin(); it != waiting.end();) it = present.count(*it) ? std::next(it) : waiting.erase(it);
    }

    void rescan(Target& t) {
        try {
            follow(t);
        } catch (const util::FatalError& e) {
            ++attach_failures;
            std::fprintf(stderr, "sidetap: %s\n", e.what());
        }
    }

    void maybe_scan() {
        const auto now = Clock::now();
        if (now < next_scan) return;
        next_scan = now + kScanEvery;
        scan();
    }

    std::array<std::uint64_t, SIDETAP_TLS_CTR_COUNT> kernel_counters() const {
        std::array<std::uint64_t, SIDETAP_TLS_CTR_COUNT> sums{};
        const auto* values = reinterpret_cast<const std::uint64_t*>(counters.data());
        for (unsigned cpu = 0; cpu < cpus; ++cpu)
            for (unsigned i = 0; i < SIDETAP_TLS_CTR_COUNT; ++i)
                sums[i] += __atomic_load_n(&values[cpu * SIDETAP_TLS_CTR_STRIDE + i], __ATOMIC_RELAXED);
        return sums;
    }
};

TlsProbeSource::TlsProbeSource(const TlsCaptureOptions& options) : impl_(std::make_unique<Impl>(options)) {
    auto& m = *impl_;
    if (options.pids.empty() && options.names.empty())
        throw util::FatalError("TLS probes: no process to follow (--tls-pid PID or --tls-process NAME)",
                               util::kExitUsage);
    for (const auto& name : options.names)
        if (name == "*" && options.cgroup.empty())
            throw util::FatalError("--tls-process '*': every process of the cgroup; only with --ebpf cgroup",
                                   util::kExitUsage);
    m.check_kernel();
    m.load();
    for (int pid : options.pids) m.start_explicit(pid);
    m.next_scan = Clock::now();
    m.maybe_scan();

    LiveChannelStats s;
    s.kind = "tls";
    s.name = "probes";
    s.counters = {{"calls", 0, false},
                  {"bytes", 0, false},
                  {"ring_full_dropped", 0, true},
                  {"copy_failed", 0, true},
                  {"truncated", 0, true},
                  {"bad_records", 0, true},
                  {"calls_lost", 0, false},
                  {"unattributed", 0, false},
                  {"attributed_in_call", 0, false},
                  {"attributed_fd", 0, false},
                  {"attributed_last_recv", 0, false},
                  {"attributed_object", 0, false},
                  {"handshakes_attributed", 0, false},
                  {"uncork_skipped", 0, false},
                  {"closes", 0, false},
                  {"processes", 0, false},
                  {"processes_followed", 0, false},
                  {"processes_exited", 0, false},
                  {"attach_failures", 0, false}};
    m.stats.push_back(std::move(s));
    m.clock.refresh();
}

TlsProbeSource::~TlsProbeSource() = default;

StreamSource::Read TlsProbeSource::read(StreamChunk& out, int timeout_ms) {
    auto& m = *impl_;
    if (m.failed) return Read::Error;
    m.maybe_scan();
    int remaining = timeout_ms < 0 ? 0 : timeout_ms;
    for (bool first = true;; first = false) {
        std::span<const std::uint8_t> bytes;
        while (m.ring.next(bytes)) {
            if (!parse_tls_record(bytes, out)) {
                ++m.bad_records;
                continue;
            }
            if (++m.since_refresh >= 1024) {
                m.clock.refresh();
                m.since_refresh = 0;
            }
            out.timestamp_ns = m.clock.to_wall(out.timestamp_ns);
            // The process's name, as read when it was first followed (comm
            // fits the string's inline storage: no allocation).
            if (static_cast<int>(out.pid) != m.comm_pid) {
                m.comm_pid = static_cast<int>(out.pid);
                const auto t = m.targets.find(m.comm_pid);
                m.comm_name.assign(t != m.targets.end() ? t->second.info.comm : std::string());
            }
            out.comm = m.comm_name;
            ++m.chunks;
            ++m.stats[0].packets;
            return Read::Chunk;
        }
        if (remaining <= 0) return Read::Idle;
        if (first) {
            m.clock.refresh();
            m.since_refresh = 0;
        }
        const int slice = std::min(remaining, kWaitSliceMs);
        const int n = ::poll(&m.wait, 1, slice);
        if (n < 0 && errno != EINTR) {
            m.error = std::string("TLS probes: waiting for the ring buffer: ") + std::strerror(errno);
            m.failed = true;
            return Read::Error;
        }
        if (n < 0) return Read::Idle;
        remaining -= slice;
    }
}

void TlsProbeSource::update_stats() {
    auto& m = *impl_;
    const auto k = m.kernel_counters();
    auto& c = m.stats[0].counters;
    std::size_t i = 0;
    for (const unsigned index :
         {SIDETAP_TLS_CTR_CALLS, SIDETAP_TLS_CTR_BYTES, SIDETAP_TLS_CTR_RING_FULL, SIDETAP_TLS_CTR_COPY_FAILED,
          SIDETAP_TLS_CTR_TRUNCATED})
        c[i++].value = k[index];
    c[i++].value = m.bad_records;
    for (const unsigned index :
         {SIDETAP_TLS_CTR_CALLS_LOST, SIDETAP_TLS_CTR_UNATTRIBUTED, SIDETAP_TLS_CTR_ATTR_IN_CALL,
          SIDETAP_TLS_CTR_ATTR_FD, SIDETAP_TLS_CTR_ATTR_LAST_RECV, SIDETAP_TLS_CTR_ATTR_OBJECT,
          SIDETAP_TLS_CTR_HANDSHAKES, SIDETAP_TLS_CTR_UNCORK_SKIPPED, SIDETAP_TLS_CTR_CLOSES})
        c[i++].value = k[index];
    c[i++].value = m.targets.size();
    c[i++].value = m.processes_followed;
    c[i++].value = m.processes_exited;
    c[i++].value = m.attach_failures;
}

const std::vector<LiveChannelStats>& TlsProbeSource::stats() const { return impl_->stats; }

std::vector<std::string> TlsProbeSource::descriptions() const {
    const auto& m = *impl_;
    std::string text = "TLS probes (uprobes on OpenSSL/GnuTLS, attribution by ";
    text += m.socket_tracepoints ? "socket I/O, descriptor, last TCP receive" : "descriptor only";
    text += "), ring " + mib(m.ring_bytes) + "; processes:";
    if (m.targets.empty()) text += " none yet";
    for (const auto& [pid, t] : m.targets) text += " " + std::to_string(pid) + " (" + t.info.comm + ")";
    if (!m.options.names.empty()) {
        text += "; following names:";
        for (const auto& n : m.options.names) text += " " + n;
        if (!m.options.cgroup.empty()) text += " in cgroup " + m.options.cgroup;
    }
    std::vector<std::string> out{text};
    out.insert(out.end(), m.notes.begin(), m.notes.end());
    return out;
}

const std::string& TlsProbeSource::error() const { return impl_->error; }

}  // namespace sidetap::capture
