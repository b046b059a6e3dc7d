// `sidetap capture`: N capture threads (shards; --threads), each reading its
// own live source (libpcap or an eBPF frontend, picked by
// capture::open_live_sources from the options; the kernel splits the
// traffic by address pair) into its own pipeline, with no lock between them
// on the packet path. Every pipeline writes into every output through its
// own producer lane; the outputs belong to this command, which closes them
// once, after every shard has finished. This thread coordinates: SIGHUP,
// the periodic stats line and the metrics snapshot, from the counters each
// shard publishes about every 100 ms (summed over shards). Nothing here
// depends on the frontend.
//
// The TLS probes (--tls-pid/--tls-process, capture::open_tls_source) are a
// stream source beside the packet source, or alone: the first shard polls it
// between packets and feeds its chunks to its pipeline (a DoT/DoH exchange
// never pairs with a packet, and all of one connection's chunks go there).
#include "cli/capture_command.h"

#include "capture/live_source.h"
#include "capture/pcap_live_source.h"
#include "capture/shard.h"
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
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

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
    std::string threads = "1";
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

// The default is one capture thread: it keeps up with several hundred
// thousand messages a second, and every further one costs its own kernel
// buffer (-B) and tables. --threads auto: one per four CPUs this process
// may run on, at least 1, at most 4 (the rest of the CPUs are the DNS
// server's).
unsigned default_threads() {
    cpu_set_t set;
    CPU_ZERO(&set);
    int cpus = 1;
    if (::sched_getaffinity(0, sizeof set, &set) == 0) cpus = CPU_COUNT(&set);
    return static_cast<unsigned>(std::clamp(cpus / 4, 1, 4));
}

unsigned threads_option(const std::string& text) {
    if (text == "auto") return default_threads();
    const auto n = size_option("--threads", text, 1, capture::kMaxShards);
    return static_cast<unsigned>(n);
}

// Channels of several shards with the same name (one interface, one eBPF
// hook) become one: packets and counters summed.
void add_channels(std::vector<capture::LiveChannelStats>& sum, const std::vector<capture::LiveChannelStats>& more) {
    for (const auto& c : more) {
        auto it = std::find_if(sum.begin(), sum.end(),
                               [&](const auto& s) { return s.kind == c.kind && s.name == c.name; });
        if (it == sum.end()) {
            sum.push_back(c);
            continue;
        }
        it->packets += c.packets;
        for (std::size_t i = 0; i < c.counters.size() && i < it->counters.size(); ++i)
            it->counters[i].value += c.counters[i].value;
    }
}

// One capture thread: its packet source and/or (the first shard) the TLS
// stream source, its pipeline, its pcap copy.
class Shard final : private capture::PacketHandler {
public:
    struct Published {
        pipeline::CounterSnapshot counters;
        std::vector<capture::LiveChannelStats> channels;
        std::uint64_t dump_packets = 0;
    };

    // `handover_ms`: the source's LiveCaptureOptions::handover_ms.
    Shard(unsigned index, const pipeline::PipelineConfig& config, const std::vector<output::OutputRoute>& routes,
          std::unique_ptr<capture::LiveSource> source, std::unique_ptr<capture::PcapDumpFile> dump, int handover_ms,
          std::unique_ptr<capture::StreamSource> streams = nullptr)
        : index_(index),
          handover_ms_(handover_ms),
          source_(std::move(source)),
          streams_(std::move(streams)),
          dump_(std::move(dump)),
          pipeline_(config, routes, index) {
        publish();
    }

    // The thread's body: until a stop signal or `stop_all`.
    void run(std::atomic<bool>& stop_all, bool quiet) {
        const auto publish_every = std::chrono::milliseconds(100);
        const auto tick = std::chrono::seconds(1);
        auto next_publish = Clock::now() + publish_every;
        auto next_tick = Clock::now() + tick;
        while (!stop_requested() && !stop_all.load(std::memory_order_relaxed)) {
            // One thread shares itself between both sources: the packet
            // source waits less when the stream source is polled too.
            const bool got_chunks = read_streams(source_ ? 0 : 100);
            if (input_failed_) {
                stop_all.store(true);
                break;
            }
            auto r = got_chunks ? capture::LiveSource::Read::Packet : capture::LiveSource::Read::Idle;
            if (source_) r = source_->dispatch(*this, 64, got_chunks ? 0 : streams_ ? 10 : 100);
            if (r == capture::LiveSource::Read::Error) {
                error_ = source_->error();
                input_failed_ = true;
                stop_all.store(true);
                break;
            }
            const auto now = Clock::now();
            if (r == capture::LiveSource::Read::Idle) {
                // Idle link: timers still run (unanswered queries, held
                // responses, TCP/fragment timeouts).
                pipeline_.advance_idle(static_cast<std::uint64_t>(
                    std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count()));
            }
            if (now < next_publish) continue;
            next_publish = now + publish_every;
            if (now >= next_tick) {
                next_tick = now + tick;
                update_stats();
                if (dump_ && !dump_->flush()) {
                    error_ = dump_->error();
                    input_failed_ = true;
                    stop_all.store(true);
                    break;
                }
            }
            publish();
        }
        // Drain: what the kernel already captured before the stop signal is
        // part of the run (bounded, so a flood cannot keep us from exiting);
        // sealed first, so that nothing arrives after the drain's last look
        // and the counts below match what was processed.
        if (source_) source_->seal();
        if (!input_failed_) {
            const auto drain_until = Clock::now() + std::chrono::seconds(2);
            const std::uint64_t before = packets_;
            while (Clock::now() < drain_until) {
                const bool got_chunks = read_streams(0);
                if (input_failed_) break;
                // Waits past the hand-over time: packets the kernel still
                // holds in a batch are handed over by then.
                if (source_ && source_->dispatch(*this, 64, handover_ms_ + 20) == capture::LiveSource::Read::Packet)
                    continue;
                if (!got_chunks) break;
            }
            if (packets_ != before && !quiet)
                std::fprintf(stderr, "sidetap: drained %llu packets captured before the stop\n", u64(packets_ - before));
        }
        // The kernel's counts right after the drain, before finish() (which
        // may take a while): a packet arriving meanwhile would be counted as
        // received but never processed.
        update_stats();
        pipeline_.finish();
        if (dump_ && !dump_->close()) {
            error_ = dump_->error();
            dump_failed_ = true;
        }
        publish();
    }

    void read(Published& out) const {
        std::lock_guard lock(mutex_);
        out = published_;
    }
    [[nodiscard]] unsigned index() const { return index_; }
    [[nodiscard]] bool input_failed() const { return input_failed_; }
    [[nodiscard]] bool dump_failed() const { return dump_failed_; }
    [[nodiscard]] const std::string& error() const { return error_; }

private:
    // Up to 64 chunks of the stream source (the first waits `wait_ms`);
    // whether there were any.
    bool read_streams(int wait_ms) {
        bool got = false;
        for (int i = 0; streams_ && i < 64; ++i) {
            const auto r = streams_->read(chunk_, i == 0 ? wait_ms : 0);
            if (r == capture::StreamSource::Read::Chunk) {
                pipeline_.process_stream(chunk_);
                got = true;
                continue;
            }
            if (r == capture::StreamSource::Read::Error) {
                error_ = streams_->error();
                input_failed_ = true;
            }
            break;
        }
        return got;
    }

    void update_stats() {
        if (source_) source_->update_stats();
        if (streams_) streams_->update_stats();
    }

    void on_packet(const capture::Packet& packet) override {
        ++packets_;
        pipeline_.process(packet);
        if (dump_) dump_->write(packet);
    }

    void publish() {
        pipeline_.snapshot(scratch_.counters);
        scratch_.channels.clear();
        if (source_) scratch_.channels = source_->stats();
        if (streams_) scratch_.channels.insert(scratch_.channels.end(), streams_->stats().begin(), streams_->stats().end());
        scratch_.dump_packets = dump_ ? dump_->packets() : 0;
        std::lock_guard lock(mutex_);
        std::swap(published_, scratch_);
    }

    unsigned index_;
    int handover_ms_;
    std::unique_ptr<capture::LiveSource> source_;       // null: TLS probes only
    std::unique_ptr<capture::StreamSource> streams_;   // the first shard's, with TLS probes
    std::unique_ptr<capture::PcapDumpFile> dump_;
    capture::StreamChunk chunk_;
    pipeline::Pipeline pipeline_;
    std::uint64_t packets_ = 0;
    bool input_failed_ = false;
    bool dump_failed_ = false;
    std::string error_;
    Published scratch_;
    mutable std::mutex mutex_;
    Published published_;
};

// What the shards published, summed (and each shard's own totals).
struct Totals {
    pipeline::CounterSnapshot counters;
    std::vector<capture::LiveChannelStats> channels;
    std::uint64_t dump_packets = 0;
    std::vector<pipeline::CounterSnapshot> per_shard;
};

void sum_shards(const std::vector<std::unique_ptr<Shard>>& shards, Totals& out) {
    out = Totals{};
    Shard::Published p;
    for (const auto& shard : shards) {
        shard->read(p);
        out.counters.add(p.counters);
        add_channels(out.channels, p.channels);
        out.dump_packets += p.dump_packets;
        out.per_shard.push_back(p.counters);
    }
}

std::vector<metrics::Sample> collect_samples(const Totals& totals, const std::vector<output::OutputRoute>& routes,
                                             bool dump) {
    using metrics::Kind;
    std::vector<metrics::Sample> samples;
    samples.reserve(128);
    // Two stages may use the same counter name (the pipeline's and the TCP
    // reassembler's tcp_segments): a repeated name gets _2, _3... so that no
    // series appears twice in the exposition.
    for (const auto& [name, value] : totals.counters.counters) {
        std::string unique(name);
        for (int n = 2;; ++n) {
            bool seen = false;
            for (const auto& s : samples) seen = seen || s.name == unique;
            if (!seen) break;
            unique = std::string(name) + "_" + std::to_string(n);
        }
        samples.push_back({std::move(unique), Kind::Counter, {}, value});
    }
    append_output_samples(routes, samples);
    for (const auto& s : totals.channels) {
        const std::vector<std::pair<std::string, std::string>> label{{s.kind, s.name}};
        samples.push_back({"capture_packets", Kind::Counter, label, s.packets});
        for (const auto& c : s.counters)
            samples.push_back({std::string("capture_") + c.name, Kind::Counter, label, c.value});
    }
    if (totals.per_shard.size() > 1) {
        for (std::size_t i = 0; i < totals.per_shard.size(); ++i) {
            const std::vector<std::pair<std::string, std::string>> label{{"shard", std::to_string(i)}};
            samples.push_back({"shard_packets", Kind::Counter, label, totals.per_shard[i].get("packets")});
            samples.push_back({"shard_frames", Kind::Counter, label, totals.per_shard[i].get("frames")});
        }
    }
    if (dump) samples.push_back({"pcap_dump_packets", Kind::Counter, {}, totals.dump_packets});
    return samples;
}

void print_counters(const capture::LiveChannelStats& s) {
    for (const auto& c : s.counters) std::fprintf(stderr, " %s=%llu", c.name, u64(c.value));
}

void print_stats_line(const Totals& totals, const std::vector<output::OutputRoute>& routes) {
    const auto& c = totals.counters;
    const std::uint64_t unanswered = c.get("unanswered_queries") + c.get("unanswered_evicted");
    std::fprintf(stderr, "sidetap: stats packets=%llu dns_queries=%llu dns_responses=%llu frames=%llu unanswered=%llu",
                 u64(c.get("packets")), u64(c.get("dns_queries")), u64(c.get("dns_responses")), u64(c.get("frames")),
                 u64(unanswered));
    if (totals.per_shard.size() > 1) {
        std::fprintf(stderr, " shard_packets=");
        for (std::size_t i = 0; i < totals.per_shard.size(); ++i)
            std::fprintf(stderr, "%s%llu", i ? "/" : "", u64(totals.per_shard[i].get("packets")));
    }
    for (const auto& s : totals.channels) {
        std::fprintf(stderr, " | %s", s.name.c_str());
        print_counters(s);
    }
    print_output_stats(stderr, routes);
    std::fprintf(stderr, "\n");
}

const char* dlt_name(int dlt) {
    const char* name = pcap_datalink_val_to_name(dlt);
    return name ? name : "unknown";
}

capture::Frontend frontend_option(const CaptureCommandOptions& o) {
    if (o.ebpf.empty()) {
        if (o.interfaces.empty())
            throw util::FatalError(
                "capture: -i IFACE is required (or --ebpf socket|tc|cgroup, or --tls-pid/--tls-process)",
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
    config.origin.cgroup = o.cgroup;  // {cgroup}
    const unsigned wanted_threads = threads_option(o.threads);

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

    // TLS probes alone: one thread (the stream source is not split).
    const unsigned threads = wire ? wanted_threads : 1;

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
    // A packet may wait in the kernel as long as a frame waits in the
    // outputs: fewer wake-ups of the capture thread (LiveCaptureOptions).
    live.handover_ms = static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(
        shortest_flush_interval(o.output).count(), 1, capture::LiveCaptureOptions::kMaxHandoverMs));

    std::optional<Clock::duration> stats_every;
    if (!o.stats_interval.empty()) {
        stats_every = std::chrono::nanoseconds(duration_ns_option("--stats-interval", o.stats_interval, 1'000'000));
    }
    std::optional<Account> account;
    if (!o.user.empty()) account = lookup_user(o.user);

    install_stop_handlers();
    // Before any thread starts (bounding set and no_new_privs are per thread).
    if (account) lock_down(o.user);
    // Every shard's source is open before privileges go (--user).
    std::vector<std::unique_ptr<capture::LiveSource>> sources(threads);
    if (wire) sources = capture::open_live_sources(live, threads, capture::random_shard_seed());
    std::unique_ptr<capture::StreamSource> streams;
    if (tls) streams = capture::open_tls_source(tls_options);
    const auto tls_descriptions = streams ? streams->descriptions() : std::vector<std::string>{};
    const auto channels = wire ? sources.front()->channels() : std::vector<capture::LiveChannelInfo>{};

    // --write-pcap: one file per shard (FILE.0, FILE.1 ...: no lock between
    // the capture threads; mergecap joins them), FILE itself with one.
    std::vector<std::unique_ptr<capture::PcapDumpFile>> dumps(threads);
    if (!o.write_pcap.empty()) {
        for (std::size_t i = 1; i < channels.size(); ++i)
            if (channels[i].dlt != channels[0].dlt)
                throw util::FatalError("--write-pcap: interfaces " + channels[0].name + " (" +
                                           dlt_name(channels[0].dlt) + ") and " + channels[i].name + " (" +
                                           dlt_name(channels[i].dlt) +
                                           ") have different link types; one pcap file holds one (capture them "
                                           "separately, or use -i any)",
                                       util::kExitUsage);
        for (unsigned i = 0; i < threads; ++i)
            dumps[i] = std::make_unique<capture::PcapDumpFile>(
                threads == 1 ? o.write_pcap : o.write_pcap + "." + std::to_string(i), channels[0].dlt,
                sources[i]->snaplen());
    }

    // The metrics socket before the outputs, so that a bad address leaves no
    // empty output file behind; it serves an empty page until the first
    // snapshot just below.
    metrics::Board board;
    std::unique_ptr<metrics::HttpServer> server;
    if (!o.metrics.empty()) server = std::make_unique<metrics::HttpServer>(o.metrics, board);

    // The outputs are the command's: opened once with a producer lane per
    // shard, closed once after every shard has finished.
    const auto routes = open_outputs(o.output, threads);
    std::vector<std::unique_ptr<Shard>> shards;
    for (unsigned i = 0; i < threads; ++i)
        shards.push_back(std::make_unique<Shard>(i, config, routes, std::move(sources[i]), std::move(dumps[i]),
                                                 live.handover_ms, i == 0 ? std::move(streams) : nullptr));
    Totals totals;
    sum_shards(shards, totals);
    if (server) board.publish(collect_samples(totals, routes, !o.write_pcap.empty()));
    if (account) switch_user(o.user, *account);

    if (!o.output.quiet) {
        for (const auto& c : channels) std::fprintf(stderr, "sidetap: capturing on %s\n", c.description.c_str());
        for (const auto& d : tls_descriptions) std::fprintf(stderr, "sidetap: %s\n", d.c_str());
        if (threads > 1)
            std::fprintf(stderr, "sidetap: %u capture threads, traffic split by IP address pair%s\n", threads,
                         o.write_pcap.empty() ? "" : (", raw packets in " + o.write_pcap + ".0 ... ." +
                                                      std::to_string(threads - 1)).c_str());
        if (server) std::fprintf(stderr, "sidetap: metrics on port %u (GET /metrics)\n", unsigned{server->port()});
    }

    std::atomic<bool> stop_all{false};
    std::atomic<unsigned> running{threads};
    std::mutex done_mutex;
    std::condition_variable done_cv;
    std::vector<std::thread> workers;
    for (auto& shard : shards)
        workers.emplace_back([&, s = shard.get()] {
            s->run(stop_all, o.output.quiet);
            {
                std::lock_guard lock(done_mutex);
                running.fetch_sub(1);
            }
            done_cv.notify_all();
        });

    // This thread: SIGHUP, stats line, metrics, until every shard is done.
    const auto tick = std::chrono::seconds(1);
    auto next_tick = Clock::now() + tick;
    auto next_stats = stats_every ? Clock::now() + *stats_every : Clock::time_point::max();
    for (;;) {
        {
            // Until the next tick or stats line, but at least twice a second
            // for SIGHUP (a signal does not end a condition-variable wait);
            // shards ending wake it at once. Each wake-up costs the host CPU.
            const auto until = std::min({next_tick, next_stats, Clock::now() + std::chrono::milliseconds(500)});
            std::unique_lock lock(done_mutex);
            done_cv.wait_until(lock, until, [&] { return running.load() == 0; });
            if (running.load() == 0) break;
        }
        if (take_reopen_request())
            for (const auto& route : routes) route.output->request_reopen();
        const auto now = Clock::now();
        if (now < next_tick && now < next_stats) continue;
        sum_shards(shards, totals);
        if (now >= next_tick) {
            next_tick = now + tick;
            if (server) board.publish(collect_samples(totals, routes, !o.write_pcap.empty()));
        }
        if (now >= next_stats) {
            next_stats = now + *stats_every;
            print_stats_line(totals, routes);
        }
    }
    for (auto& w : workers) w.join();
    for (const auto& route : routes) route.output->close();

    bool input_failed = false;
    bool dump_failed = false;
    for (const auto& shard : shards) {
        if (!shard->error().empty()) std::fprintf(stderr, "sidetap: %s\n", shard->error().c_str());
        input_failed = input_failed || shard->input_failed();
        dump_failed = dump_failed || shard->dump_failed();
    }
    sum_shards(shards, totals);
    if (server) {
        board.publish(collect_samples(totals, routes, !o.write_pcap.empty()));
        server->stop();
    }
    if (!o.output.quiet) {
        pipeline::report(stderr, totals.counters);
        if (shards.size() > 1)
            for (std::size_t i = 0; i < totals.per_shard.size(); ++i) {
                const auto& c = totals.per_shard[i];
                std::fprintf(stderr, "sidetap: shard %zu packets=%llu dns_queries=%llu dns_responses=%llu frames=%llu\n",
                             i, u64(c.get("packets")), u64(c.get("dns_queries")), u64(c.get("dns_responses")),
                             u64(c.get("frames")));
            }
        output::report_routes(stderr, routes);
        for (const auto& s : totals.channels) {
            std::fprintf(stderr, "sidetap: %s %s %s=%llu", s.kind.c_str(), s.name.c_str(),
                         s.kind == "tls" ? "chunks" : "packets", u64(s.packets));
            print_counters(s);
            std::fprintf(stderr, "\n");
        }
        if (!o.write_pcap.empty())
            std::fprintf(stderr, "sidetap: pcap %s packets=%llu\n",
                         (threads == 1 ? o.write_pcap : o.write_pcap + ".*").c_str(), u64(totals.dump_packets));
    }
    // A clean stop (SIGINT/SIGTERM) is 0 only when no output failed.
    return input_failed || dump_failed || output::any_failed(routes) ? util::kExitRuntime : util::kExitOk;
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
                    "link type; written by the capture thread, buffered; with --threads N > 1 one file per thread: "
                    "FILE.0 ... FILE.N-1)");
    cmd->add_option("--stats-interval", options->stats_interval,
                    "One stats line on stderr every DUR (e.g. 10s; default off); a summary at exit always");
    cmd->add_option("--metrics", options->metrics,
                    "Serve every counter in the Prometheus text format on HOST:PORT (GET /metrics)");
    cmd->add_option("--threads", options->threads,
                    "Capture threads (shards), each with its own kernel buffer and pipeline; the kernel splits the "
                    "traffic by IP address pair (each has its own -B buffer). 'auto': one per 4 CPUs this process "
                    "may use, 1 to 4")
        ->capture_default_str();
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
