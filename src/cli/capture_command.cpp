// `sidetap capture`: one capture thread (this one) reads a live source
// (libpcap or an eBPF frontend, picked by capture::open_live_source from the
// options) and/or a stream source (the TLS probes: --tls-pid/--tls-process,
// capture::open_tls_source), feeds one pipeline, and between packets (at
// most every 16 packets or every 100 ms when the network is quiet) looks at
// the stop flag, SIGHUP, the periodic stats line and the metrics snapshot.
// Nothing here depends on the frontend. Stream chunks go to the pipeline of
// the thread that polls the stream source (with several capture threads:
// the first); a DoT/DoH exchange never pairs with a packet, and all of one
// connection's chunks go there.
#include "cli/capture_command.h"

#include "capture/live_source.h"
#include "capture/pcap_live_source.h"
#include "capture/tls_source.h"
#include "cli/common_options.h"
#include "cli/output_stats.h"
#include "cli/privileges.h"
#include "cli/signals.h"
#include "metrics/metrics.h"
#include "pipeline/pipeline.h"
#include "util/error.h"
#include "util/units.h"

#include <pcap/pcap.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>

namespace sidetap::cli {

namespace {

struct CaptureCommandOptions {
    CaptureOptions capture;
    OutputOptions output;
    std::vector<std::string> interfaces;
    std::string ebpf;
    std::string cgroup;
    std::string buffer_size = "16";
    bool promiscuous = false;
    bool no_tunnels = false;
    std::string filter;
    std::string write_pcap;
    std::string stats_interval;
    std::string metrics;
    std::string user;
    std::vector<int> tls_pids;
    std::vector<std::string> tls_processes;
};

using Clock = std::chrono::steady_clock;
using u64 = unsigned long long;

std::uint64_t buffer_bytes(const std::string& text) {
    // Bare number: MiB (cli.md); with a unit: that size (512K, 1G).
    const bool bare = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
    const auto bytes = size_option("--buffer-size", text, 1, std::uint64_t{2} << 30);
    const std::uint64_t value = bare ? bytes << 20 : bytes;
    if (value >= std::uint64_t{2} << 30)
        throw util::FatalError("--buffer-size: '" + text + "' is 2 GiB or more", util::kExitUsage);
    return value;
}

// The channels of both sources (packets, TLS streams), for stats and metrics.
std::vector<capture::LiveChannelStats> channel_stats(const capture::LiveSource* source,
                                                     const capture::StreamSource* streams) {
    std::vector<capture::LiveChannelStats> all;
    if (source) all = source->stats();
    if (streams) all.insert(all.end(), streams->stats().begin(), streams->stats().end());
    return all;
}

std::vector<metrics::Sample> collect_samples(const pipeline::Pipeline& pipeline,
                                             const std::vector<capture::LiveChannelStats>& channels,
                                             const capture::PcapDumpFile* dump) {
    using metrics::Kind;
    std::vector<metrics::Sample> samples;
    samples.reserve(96);
    // Two stages may use the same counter name (the pipeline's and the TCP
    // reassembler's tcp_segments): a repeated name gets _2, _3... so that no
    // series appears twice in the exposition.
    pipeline.for_each_counter([&](std::string_view name, std::uint64_t value) {
        std::string unique(name);
        for (int n = 2;; ++n) {
            bool seen = false;
            for (const auto& s : samples) seen = seen || s.name == unique;
            if (!seen) break;
            unique = std::string(name) + "_" + std::to_string(n);
        }
        samples.push_back({std::move(unique), Kind::Counter, {}, value});
    });
    append_output_samples(pipeline.outputs(), samples);
    for (const auto& s : channels) {
        const std::vector<std::pair<std::string, std::string>> label{{s.kind, s.name}};
        samples.push_back({"capture_packets", Kind::Counter, label, s.packets});
        for (const auto& c : s.counters)
            samples.push_back({std::string("capture_") + c.name, Kind::Counter, label, c.value});
    }
    if (dump) samples.push_back({"pcap_dump_packets", Kind::Counter, {}, dump->packets()});
    return samples;
}

void print_counters(const capture::LiveChannelStats& s) {
    for (const auto& c : s.counters) std::fprintf(stderr, " %s=%llu", c.name, u64(c.value));
}

void print_stats_line(const pipeline::Pipeline& pipeline, const std::vector<capture::LiveChannelStats>& channels) {
    const auto& st = pipeline.stats();
    std::uint64_t unanswered = 0;
    pipeline.for_each_counter([&](std::string_view name, std::uint64_t v) {
        if (name == "unanswered_queries" || name == "unanswered_evicted") unanswered += v;
    });
    std::fprintf(stderr, "sidetap: stats packets=%llu dns_queries=%llu dns_responses=%llu frames=%llu unanswered=%llu",
                 u64(st.packets), u64(st.dns_queries), u64(st.dns_responses), u64(st.frames_encoded), u64(unanswered));
    for (const auto& s : channels) {
        std::fprintf(stderr, " | %s", s.name.c_str());
        print_counters(s);
    }
    print_output_stats(stderr, pipeline.outputs());
    std::fprintf(stderr, "\n");
}

const char* dlt_name(int dlt) {
    const char* name = pcap_datalink_val_to_name(dlt);
    return name ? name : "unknown";
}

capture::Frontend frontend_option(const CaptureCommandOptions& o) {
    if (o.ebpf.empty()) {
        if (o.interfaces.empty())
            throw util::FatalError("capture: -i IFACE is required (or --ebpf socket|tc|cgroup, or --tls-pid/--tls-process)",
                                   util::kExitUsage);
        if (!o.cgroup.empty())
            throw util::FatalError("--cgroup: only with --ebpf cgroup", util::kExitUsage);
        return capture::Frontend::Pcap;
    }
    if (o.ebpf == "socket") return capture::Frontend::EbpfSocket;
    if (o.ebpf == "tc") return capture::Frontend::EbpfTc;
    if (o.ebpf == "cgroup") return capture::Frontend::EbpfCgroup;
    throw util::FatalError("--ebpf: '" + o.ebpf + "' is not one of socket, tc, cgroup", util::kExitUsage);
}

int run_capture(const CaptureCommandOptions& o) {
    auto config = make_pipeline_config(o.capture, o.output);  // usage errors first

    // The TLS probes alone, or beside a packet source.
    const bool tls = !o.tls_pids.empty() || !o.tls_processes.empty();
    const bool wire = !tls || !o.interfaces.empty() || !o.ebpf.empty();
    capture::TlsCaptureOptions tls_options;
    tls_options.pids = o.tls_pids;
    tls_options.names = o.tls_processes;
    if (o.ebpf == "cgroup") tls_options.cgroup = o.cgroup;
    tls_options.ring_bytes = buffer_bytes(o.buffer_size);
    tls_options.quiet = o.output.quiet;
    if (!o.tls_processes.empty() && !o.user.empty())
        throw util::FatalError("--tls-process follows processes started later, which needs CAP_BPF and CAP_PERFMON "
                               "all along: not with --user (--tls-pid is)",
                               util::kExitUsage);
    if (tls && !wire && !o.write_pcap.empty())
        throw util::FatalError("--write-pcap: needs a packet capture (-i or --ebpf); TLS plaintext has no packets",
                               util::kExitUsage);

    capture::LiveCaptureOptions live;
    live.frontend = wire ? frontend_option(o) : capture::Frontend::Pcap;
    live.interfaces = o.interfaces;
    live.cgroup = o.cgroup;
    live.buffer_bytes = buffer_bytes(o.buffer_size);
    live.promiscuous = o.promiscuous;
    live.filter.ports = o.capture.ports;
    if (o.capture.role == "resolver")
        live.filter.ports.insert(live.filter.ports.end(), o.capture.upstream_ports.begin(),
                                 o.capture.upstream_ports.end());
    live.filter.server_addresses = o.capture.server_addresses;
    live.filter.user_filter = o.filter;
    live.filter.tunnels = !o.no_tunnels;

    std::optional<Clock::duration> stats_every;
    if (!o.stats_interval.empty()) {
        stats_every = std::chrono::nanoseconds(duration_ns_option("--stats-interval", o.stats_interval, 1'000'000));
    }
    std::optional<Account> account;
    if (!o.user.empty()) account = lookup_user(o.user);

    install_stop_handlers();
    // Before any thread starts (bounding set and no_new_privs are per thread).
    if (account) lock_down(o.user);
    std::unique_ptr<capture::LiveSource> source_handle;
    if (wire) source_handle = capture::open_live_source(live);
    std::unique_ptr<capture::StreamSource> streams;
    if (tls) streams = capture::open_tls_source(tls_options);
    capture::LiveSource* source = source_handle.get();
    const auto channels = source ? source->channels() : std::vector<capture::LiveChannelInfo>{};

    std::unique_ptr<capture::PcapDumpFile> dump;
    if (!o.write_pcap.empty()) {
        for (std::size_t i = 1; i < channels.size(); ++i)
            if (channels[i].dlt != channels[0].dlt)
                throw util::FatalError("--write-pcap: interfaces " + channels[0].name + " (" +
                                           dlt_name(channels[0].dlt) + ") and " + channels[i].name + " (" +
                                           dlt_name(channels[i].dlt) +
                                           ") have different link types; one pcap file holds one (capture them "
                                           "separately, or use -i any)",
                                       util::kExitUsage);
        dump = std::make_unique<capture::PcapDumpFile>(o.write_pcap, channels[0].dlt, source->snaplen());
    }

    // The metrics socket before the outputs, so that a bad address leaves no
    // empty output file behind; it serves an empty page until the first
    // snapshot just below.
    metrics::Board board;
    std::unique_ptr<metrics::HttpServer> server;
    if (!o.metrics.empty()) server = std::make_unique<metrics::HttpServer>(o.metrics, board);

    pipeline::Pipeline pipeline(config, open_outputs(o.output));
    if (server) board.publish(collect_samples(pipeline, channel_stats(source, streams.get()), dump.get()));
    if (account) switch_user(o.user, *account);

    if (!o.output.quiet) {
        for (const auto& c : channels) std::fprintf(stderr, "sidetap: capturing on %s\n", c.description.c_str());
        if (streams)
            for (const auto& d : streams->descriptions()) std::fprintf(stderr, "sidetap: %s\n", d.c_str());
        if (server) std::fprintf(stderr, "sidetap: metrics on port %u (GET /metrics)\n", unsigned{server->port()});
    }

    bool input_failed = false;
    capture::Packet packet;
    capture::StreamChunk chunk;
    unsigned since_check = 0;
    // A few chunks per turn: one thread shares itself between both sources;
    // the packet source waits less when the stream source is polled too.
    auto read_streams = [&](int wait_ms) {
        bool got = false;
        for (int i = 0; streams && i < 64 && !input_failed; ++i) {
            const auto r = streams->read(chunk, i == 0 ? wait_ms : 0);
            if (r == capture::StreamSource::Read::Chunk) {
                pipeline.process_stream(chunk);
                got = true;
                continue;
            }
            if (r == capture::StreamSource::Read::Error) {
                std::fprintf(stderr, "sidetap: %s\n", streams->error().c_str());
                input_failed = true;
            }
            break;
        }
        return got;
    };
    const auto tick = std::chrono::seconds(1);
    auto next_tick = Clock::now() + tick;
    auto next_stats = stats_every ? Clock::now() + *stats_every : Clock::time_point::max();
    while (!stop_requested()) {
        const bool got_chunks = read_streams(source ? 0 : 100);
        if (input_failed) break;
        const auto r = source ? source->read(packet, got_chunks ? 0 : streams ? 10 : 100)
                              : (got_chunks ? capture::LiveSource::Read::Packet : capture::LiveSource::Read::Idle);
        if (r == capture::LiveSource::Read::Packet && !source) {
            if (++since_check < 16) continue;
        } else if (r == capture::LiveSource::Read::Packet) {
            pipeline.process(packet);
            if (dump) dump->write(packet);
            if (++since_check < 16) continue;
        } else if (r == capture::LiveSource::Read::Error) {
            std::fprintf(stderr, "sidetap: %s\n", source->error().c_str());
            input_failed = true;
            break;
        } else {
            // Idle link: timers still run (unanswered queries, held responses, TCP/fragment timeouts).
            pipeline.advance_idle(static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count()));
        }
        since_check = 0;
        if (take_reopen_request())
            for (const auto& route : pipeline.outputs()) route.output->request_reopen();
        const auto now = Clock::now();
        if (now < next_tick && now < next_stats) continue;
        if (source) source->update_stats();
        if (streams) streams->update_stats();
        if (now >= next_tick) {
            next_tick = now + tick;
            if (server) board.publish(collect_samples(pipeline, channel_stats(source, streams.get()), dump.get()));
            if (dump && !dump->flush()) {
                std::fprintf(stderr, "sidetap: %s\n", dump->error().c_str());
                input_failed = true;
                break;
            }
        }
        if (now >= next_stats) {
            next_stats = now + *stats_every;
            print_stats_line(pipeline, channel_stats(source, streams.get()));
        }
    }

    // Drain: what the kernel already captured before the stop signal is part
    // of the run (bounded, so a flood cannot keep us from exiting).
    if (!input_failed) {
        const auto drain_until = Clock::now() + std::chrono::seconds(2);
        std::uint64_t drained = 0;
        while (Clock::now() < drain_until) {
            const bool got_chunks = read_streams(0);
            const auto r = source ? source->read(packet, 20) : capture::LiveSource::Read::Idle;
            if (r != capture::LiveSource::Read::Packet) {
                if (got_chunks) continue;
                break;
            }
            pipeline.process(packet);
            if (dump) dump->write(packet);
            ++drained;
        }
        if (drained != 0 && !o.output.quiet)
            std::fprintf(stderr, "sidetap: drained %llu packets captured before the stop\n",
                         static_cast<unsigned long long>(drained));
    }
    pipeline.finish();
    if (source) source->update_stats();
    if (streams) streams->update_stats();
    bool dump_failed = false;
    if (dump && !dump->close()) {
        std::fprintf(stderr, "sidetap: %s\n", dump->error().c_str());
        dump_failed = true;
    }
    if (server) {
        board.publish(collect_samples(pipeline, channel_stats(source, streams.get()), dump.get()));
        server->stop();
    }
    if (!o.output.quiet) {
        pipeline.report(stderr);
        for (const auto& s : channel_stats(source, streams.get())) {
            std::fprintf(stderr, "sidetap: %s %s %s=%llu", s.kind.c_str(), s.name.c_str(),
                         s.kind == "tls" ? "chunks" : "packets", u64(s.packets));
            print_counters(s);
            std::fprintf(stderr, "\n");
        }
        if (dump) std::fprintf(stderr, "sidetap: pcap %s packets=%llu\n", o.write_pcap.c_str(), u64(dump->packets()));
    }
    // A clean stop (SIGINT/SIGTERM) is 0 only when no output failed.
    return input_failed || dump_failed || pipeline.output_failed() ? util::kExitRuntime : util::kExitOk;
}

}  // namespace

std::function<int()> add_capture_command(CLI::App& app) {
    auto options = std::make_shared<CaptureCommandOptions>();
    auto* cmd = app.add_subcommand("capture", "Live capture (libpcap or eBPF) into dnstap, beside a running DNS server");
    cmd->add_option("-i,--interface", options->interfaces,
                    "Interface to capture on. libpcap: repeatable, 'any' for all; several interfaces are polled by "
                    "one thread into one pipeline, in arrival order. --ebpf socket: one or none (all); --ebpf tc: one")
        ->expected(1)
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    cmd->add_option("--ebpf", options->ebpf,
                    "Capture with eBPF instead of libpcap: 'socket' (AF_PACKET socket filter, -i IFACE or all), "
                    "'tc' (clsact ingress+egress on -i IFACE), 'cgroup' (cgroup_skb ingress+egress on --cgroup)")
        ->check(CLI::IsMember({"socket", "tc", "cgroup"}));
    cmd->add_option("--cgroup", options->cgroup,
                    "cgroup v2 directory for --ebpf cgroup (absolute, or relative to the cgroup v2 mount)");
    cmd->add_option("-B,--buffer-size", options->buffer_size,
                    "Kernel capture buffer in MiB (a unit is accepted too: 512K, 1G): per interface for libpcap, "
                    "the ring buffer for --ebpf (rounded up to a power of two)")
        ->capture_default_str();
    cmd->add_flag("--promisc", options->promiscuous, "Put the interfaces in promiscuous mode (off by default)");
    cmd->add_option("--filter", options->filter,
                    "Extra libpcap filter expression, ANDed with the built-in one (server ports, fragments, VLAN, "
                    "tunnels)");
    cmd->add_flag("--no-tunnels", options->no_tunnels,
                  "Leave tunnel packets (GRE/ERSPAN, IP-in-IP, VXLAN 4789, Geneve 6081, GTP-U 2152) out of the capture "
                  "filter; by default they are admitted whole and DNS inside them is decoded");
    cmd->add_option("--write-pcap", options->write_pcap,
                    "Also keep the raw packets in this pcap file (nanosecond pcap; all interfaces must have the same "
                    "link type; written by the capture thread, buffered)");
    cmd->add_option("--stats-interval", options->stats_interval,
                    "One stats line on stderr every DUR (e.g. 10s; default off); a summary at exit always");
    cmd->add_option("--metrics", options->metrics,
                    "Serve every counter in the Prometheus text format on HOST:PORT (GET /metrics)");
    cmd->add_option("--tls-pid", options->tls_pids,
                    "Also read the DNS over TLS / HTTPS plaintext of this running server process at its TLS library "
                    "(OpenSSL or GnuTLS, eBPF uprobes); repeatable. Alone (without -i/--ebpf) or beside a packet "
                    "capture, into the same pipeline and outputs")
        ->expected(1)
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
        ->check(CLI::PositiveNumber);
    cmd->add_option("--tls-process", options->tls_processes,
                    "The same for every process of this name (comm, as pgrep), also ones started later; with "
                    "--ebpf cgroup only those of --cgroup ('*': all of them); repeatable")
        ->expected(1)
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    cmd->add_option("--user", options->user,
                    "Drop privileges to this user once the capture handles, outputs and metrics socket are open");
    add_capture_options(*cmd, options->capture);
    add_envelope_options(*cmd, options->output);
    add_output_options(*cmd, options->output, "drop");
    return [options] { return run_capture(*options); };
}

}  // namespace sidetap::cli
