// TlsProbeSource: the StreamSource of the TLS probes (bpf/tls.bpf.c). Loads
// the BPF object (one ring buffer, per-CPU counters mapped into memory),
// attaches the uprobes by function name to the TLS library each followed
// process maps (through /proc/PID/root, per process: other processes
// mapping the same library are not probed and pay nothing), and keeps the
// followed processes up to date:
//
//  - --tls-pid PID: from the start; a process that does not exist or maps
//    no TLS library is an error at start. When it exits, its probes go (a
//    notice, processes_exited).
//  - --tls-process NAME: every process of that name (tls_processes.h), in
//    the cgroup when one is given, looked for at start and then about once
//    a second; one that maps no TLS library yet is looked at again (a
//    library loaded later is found).
//  - Libraries: OpenSSL (libssl.so*: SSL_read, SSL_read_ex, SSL_write,
//    SSL_write_ex; SSL_set_fd, SSL_do_handshake, SSL_free) and GnuTLS
//    (libgnutls.so*: gnutls_record_recv, gnutls_record_send,
//    gnutls_record_uncork, gnutls_transport_set_int2, gnutls_handshake,
//    gnutls_deinit). A library without a read function and a write
//    function of its family cannot be probed (error naming the symbols);
//    the other functions are optional (what is lost without them is said
//    once).
//  - Attribution without a descriptor needs the tracepoints
//    sock_recv_length / sock_send_length (Linux 6.3); without them only
//    SSL_set_fd / gnutls_transport_set_int2 connections get addresses
//    (said at start).
//
// Errors (util::FatalError, exit 1) name the process, library, symbol,
// capability or kernel feature: no BTF (/sys/kernel/btf/vmlinux), no
// uprobes, no BPF ring buffer, permission (CAP_BPF + CAP_PERFMON, or
// CAP_SYS_ADMIN; CAP_SYS_PTRACE to read other users' /proc/PID/maps and
// /proc/PID/root).
#pragma once

#include "capture/tls_source.h"

#include <memory>

namespace sidetap::capture {

class TlsProbeSource final : public StreamSource {
public:
    explicit TlsProbeSource(const TlsCaptureOptions& options);
    ~TlsProbeSource() override;
    TlsProbeSource(const TlsProbeSource&) = delete;
    TlsProbeSource& operator=(const TlsProbeSource&) = delete;

    Read read(StreamChunk& out, int timeout_ms) override;
    void update_stats() override;
    [[nodiscard]] const std::vector<LiveChannelStats>& stats() const override;
    [[nodiscard]] std::vector<std::string> descriptions() const override;
    [[nodiscard]] const std::string& error() const override;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sidetap::capture
