// StreamSource: byte streams of known connections, the second kind of live
// source `capture` polls beside the packet sources (live_source.h). The one
// implementation reads the plaintext of TLS connections from eBPF uprobes on
// the TLS library of running DNS servers (tls_probes.*, bpf/tls.bpf.c);
// the pipeline turns it into DNS over TLS / DNS over HTTPS messages
// (streams/).
//
// Contract:
//  - read(out, timeout_ms) returns
//      Read::Chunk  `out` filled; out.data stays valid until the next read();
//      Read::Idle   nothing within timeout_ms (or a signal);
//      Read::Error  the source cannot go on; error() says why.
//    It allocates nothing and does no I/O beyond its ring and one wait;
//    besides, about once a second it looks for processes to follow
//    (--tls-process) and at ones that went away (reading /proc, attaching
//    probes): that work is bounded by the number of processes.
//  - Chunks of one connection and direction come in stream order (one ring
//    buffer, written in call order per connection). A lost piece shows as a
//    jump of `offset` (the bytes the probed process read or wrote before it).
//  - Statistics and descriptions as LiveSource's: one channel ("tls").
//
// Setup (open_tls_source) throws util::FatalError naming the process, the
// library, the symbol or the kernel feature at fault: exit 1 for runtime
// conditions (process gone, no TLS library mapped, no BTF, no uprobes,
// permission), exit 2 for option errors.
#pragma once

#include "capture/live_source.h"

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace sidetap::capture {

// One piece of the plaintext of a TLS connection, as the probed process read
// or wrote it.
struct StreamChunk {
    enum class Kind : std::uint8_t {
        Data,   // plaintext bytes
        Close,  // the TLS object was freed: the connection ended
    };
    enum class Attribution : std::uint8_t { None, InCall, Fd, LastRecv, Object };

    Kind kind = Kind::Data;
    // The connection: a TLS object of a process; generation tells apart two
    // objects that one address held one after the other.
    std::uint32_t pid = 0;
    std::uint64_t object = 0;
    std::uint64_t generation = 0;
    bool outgoing = false;    // written by the process (false: read from its peer)
    bool from_start = false;  // the connection's handshake was seen: its streams start at a message boundary
    // The TCP connection, from the process's side (family 0: not known).
    std::uint8_t family = 0;  // 4 or 6
    std::array<std::uint8_t, 16> local{};
    std::array<std::uint8_t, 16> remote{};
    std::uint16_t local_port = 0;
    std::uint16_t remote_port = 0;
    Attribution attribution = Attribution::None;
    std::uint64_t offset = 0;        // bytes of this direction before data[0]
    std::uint64_t timestamp_ns = 0;  // wall clock: a read's return, a write's call
    std::span<const std::uint8_t> data;
    // The process's name (/proc/PID/comm when it was first followed; empty
    // when not known), valid as long as `data`.
    std::string_view comm;
};

struct TlsCaptureOptions {
    std::vector<int> pids;            // --tls-pid: must exist and map a TLS library at start
    std::vector<std::string> names;   // --tls-process: every process of that name, now and later ("*": all, with cgroup)
    std::string cgroup;               // with --ebpf cgroup: only processes of this cgroup v2 directory (and below)
    std::uint64_t ring_bytes = 16ull << 20;
    bool quiet = false;               // no notices for processes followed / gone
};

class StreamSource {
public:
    enum class Read { Chunk, Idle, Error };
    virtual ~StreamSource() = default;

    virtual Read read(StreamChunk& out, int timeout_ms) = 0;
    virtual void update_stats() = 0;
    [[nodiscard]] virtual const std::vector<LiveChannelStats>& stats() const = 0;
    [[nodiscard]] virtual std::vector<std::string> descriptions() const = 0;
    [[nodiscard]] virtual const std::string& error() const = 0;
};

// The TLS probes (throws, see above; exit 2 in a build without them).
std::unique_ptr<StreamSource> open_tls_source(const TlsCaptureOptions& options);

// Whether this build has the TLS probes, and if not, why.
bool tls_probes_supported();
const char* tls_probes_unsupported_reason();

}  // namespace sidetap::capture
