// `sidetap listen`: a listen::Server whose consumer thread (this one) feeds
// a Relay; between batches (at least every 100 ms) it looks at the stop
// flag, SIGHUP, the periodic stats line and the metrics snapshot.
#include "cli/listen_command.h"

#include "cli/output_stats.h"
#include "cli/read_options.h"
#include "cli/signals.h"
#include "output/text_stream.h"
#include "framestream/reader.h"
#include "listen/server.h"
#include "metrics/metrics.h"
#include "output/destination.h"
#include "util/error.h"
#include "util/units.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <sys/resource.h>
#include <vector>

namespace sidetap::cli {

namespace {

struct ListenOptions {
    ReaderOptions reader;
    std::vector<std::string> unix_paths;
    std::vector<std::string> addresses;
    std::string socket_mode = "0660";
    std::size_t max_connections = 1000;
    std::string handshake_timeout = "5s";
    std::string idle_timeout = "5m";
    std::string max_receive_memory;  // default: 128M, or more for a large --max-frame-size
    std::string tls_client_ca;
    bool refuse_unidirectional = false;
    std::size_t receive_queue = 10000;
    std::string stats_interval;
    std::string metrics;
    bool verbose = false;
};

constexpr std::size_t kDefaultReceiveMemory = std::size_t{128} << 20;

using Clock = std::chrono::steady_clock;
using u64 = unsigned long long;

// --tls-ca is, as for every subcommand, the CA that verifies the
// collectors of tls:// outputs. On listen it is easily mistaken for the CA
// of the writers' client certificates; rather than ignore it, refuse it
// when no tls:// output would use it.
void check_tls_ca(const ListenOptions& o) {
    if (o.reader.output.tls_ca.empty()) return;
    for (const auto& d : o.reader.output.destinations)
        if (output::parse_destination(d).kind == output::Destination::Tls) return;
    throw util::FatalError("--tls-ca verifies the collectors of tls:// outputs (-w tls://...), and no -w is one; "
                           "to require client certificates from writers, use --tls-client-ca FILE",
                           util::kExitUsage);
}

listen::ServerOptions server_options(const ListenOptions& o) {
    listen::ServerOptions s;
    const bool have_cert = !o.reader.output.tls_cert.empty() && !o.reader.output.tls_key.empty();
    for (const auto& path : o.unix_paths) s.endpoints.push_back(listen::unix_endpoint(path));
    for (const auto& text : o.addresses) s.endpoints.push_back(listen::parse_network_endpoint(text, have_cert));
    if (s.endpoints.empty())
        throw util::FatalError("listen: give at least one -u PATH or -l HOST:PORT", util::kExitUsage);
    char* end = nullptr;
    const unsigned long mode = std::strtoul(o.socket_mode.c_str(), &end, 8);
    if (o.socket_mode.empty() || *end != '\0' || mode > 07777)
        throw util::FatalError("--socket-mode: '" + o.socket_mode + "' is not an octal mode (e.g. 0660)",
                               util::kExitUsage);
    s.socket_mode = static_cast<unsigned>(mode);
    s.tls_cert = o.reader.output.tls_cert;
    s.tls_key = o.reader.output.tls_key;
    s.tls_client_ca = o.tls_client_ca;
    s.max_connections = o.max_connections;
    s.handshake_timeout =
        std::chrono::milliseconds(duration_ns_option("--handshake-timeout", o.handshake_timeout, 1'000'000) / 1'000'000);
    s.idle_timeout = duration_ms_option("--idle-timeout", o.idle_timeout);
    if (s.idle_timeout.count() != 0 && s.idle_timeout < std::chrono::seconds(1))
        throw util::FatalError("--idle-timeout: '" + o.idle_timeout + "' is shorter than 1s (0 turns it off)",
                               util::kExitUsage);
    s.max_frame_size = max_frame_size(o.reader);
    // The default grows when the connections' reserve (one read chunk each)
    // plus two largest frames would not fit in 128M.
    s.max_receive_memory =
        o.max_receive_memory.empty()
            ? std::max(kDefaultReceiveMemory,
                       s.max_connections * s.read_chunk + 2 * (s.max_frame_size + s.read_chunk))
            : size_option("--max-receive-memory", o.max_receive_memory, 1, std::uint64_t{1} << 40);
    s.accept_unidirectional = !o.refuse_unidirectional;
    s.queue_frames = o.receive_queue;
    check_tls_ca(o);
    return s;
}

std::vector<metrics::Sample> collect_samples(const listen::Server& server, const relay::Relay& relay) {
    using metrics::Kind;
    const auto s = server.stats();
    std::vector<metrics::Sample> out;
    out.reserve(64);
    auto cause = [](const char* c) { return std::vector<std::pair<std::string, std::string>>{{"cause", c}}; };
    out.push_back({"listen_connections", Kind::Counter, {}, s.accepted});
    out.push_back({"listen_connections_active", Kind::Gauge, {}, s.active});
    out.push_back({"listen_connections_peak", Kind::Gauge, {}, s.peak_active});
    out.push_back({"listen_sessions", Kind::Counter, {{"kind", "bidirectional"}}, s.bidirectional});
    out.push_back({"listen_sessions", Kind::Counter, {{"kind", "unidirectional"}}, s.unidirectional});
    // Every way a session ended after START...
    out.push_back({"listen_closed", Kind::Counter, cause("finished"), s.finished});
    out.push_back({"listen_closed", Kind::Counter, cause("closed_without_stop"), s.closed_without_stop});
    out.push_back({"listen_closed", Kind::Counter, cause("reset"), s.reset});
    out.push_back({"listen_closed", Kind::Counter, cause("truncated"), s.truncated});
    out.push_back({"listen_closed", Kind::Counter, cause("too_large"), s.too_large});
    out.push_back({"listen_closed", Kind::Counter, cause("protocol_error"), s.protocol_errors});
    out.push_back({"listen_closed", Kind::Counter, cause("shutdown"), s.closed_at_shutdown});
    out.push_back({"listen_closed", Kind::Counter, cause("idle_timeout"), s.idle_timeout});
    out.push_back({"listen_closed", Kind::Counter, cause("evicted"), s.evicted});
    out.push_back({"listen_closed", Kind::Counter, cause("evicted_for_memory"), s.evicted_for_memory});
    out.push_back({"listen_closed", Kind::Counter, cause("out_of_memory"), s.out_of_memory});
    // ...and every refusal before it.
    out.push_back({"listen_refused", Kind::Counter, cause("max_connections"), s.refused_max_connections});
    out.push_back({"listen_refused", Kind::Counter, cause("resources"), s.refused_resources});
    out.push_back({"listen_refused", Kind::Counter, cause("wrong_content_type"), s.wrong_content_type});
    out.push_back({"listen_refused", Kind::Counter, cause("handshake_failed"), s.handshake_failed});
    out.push_back({"listen_refused", Kind::Counter, cause("handshake_timeout"), s.handshake_timeout});
    out.push_back({"listen_refused", Kind::Counter, cause("unidirectional"), s.refused_unidirectional});
    out.push_back({"listen_refused", Kind::Counter, cause("client_certificate"), s.refused_client_certificate});
    out.push_back({"listen_frames", Kind::Counter, {}, s.frames});
    out.push_back({"listen_bytes", Kind::Counter, {}, s.bytes});
    out.push_back({"listen_queue_frames", Kind::Gauge, {}, s.queue.frames});
    out.push_back({"listen_queue_bytes", Kind::Gauge, {}, s.queue.bytes});
    out.push_back({"listen_queue_peak_frames", Kind::Gauge, {}, s.queue.peak_frames});
    out.push_back({"listen_queue_waits", Kind::Counter, {}, s.queue.blocked_pushes});
    out.push_back({"listen_receive_memory_bytes", Kind::Gauge, {}, s.memory.used});
    out.push_back({"listen_receive_memory_peak_bytes", Kind::Gauge, {}, s.memory.peak});
    out.push_back({"listen_receive_memory_limit_bytes", Kind::Gauge, {}, s.memory.limit});
    out.push_back({"listen_receive_memory_waits", Kind::Counter, {}, s.memory.waits});
    const auto& r = relay.stats();
    out.push_back({"relay_frames", Kind::Counter, {}, r.frames});
    out.push_back({"relay_malformed", Kind::Counter, {}, r.malformed});
    out.push_back({"relay_filtered", Kind::Counter, {}, r.filtered});
    out.push_back({"relay_printed", Kind::Counter, {}, r.printed});
    out.push_back({"relay_relayed", Kind::Counter, {}, r.relayed});
    append_output_samples(relay.routes(), out);
    return out;
}

void print_stats_line(const listen::Server& server, const relay::Relay& relay) {
    const auto s = server.stats();
    const std::uint64_t refused = s.refused_max_connections + s.refused_resources + s.wrong_content_type +
                                  s.handshake_failed + s.handshake_timeout + s.refused_unidirectional +
                                  s.refused_client_certificate;
    const std::uint64_t closed_by_us = s.idle_timeout + s.evicted + s.evicted_for_memory + s.out_of_memory +
                                       s.too_large + s.protocol_errors;
    std::fprintf(stderr,
                 "sidetap: stats connections=%llu active=%llu frames=%llu bytes=%llu refused=%llu closed_by_listener=%llu "
                 "queue=%llu memory=%llu malformed=%llu",
                 u64(s.accepted), u64(s.active), u64(s.frames), u64(s.bytes), u64(refused), u64(closed_by_us),
                 u64(s.queue.frames), u64(s.memory.used), u64(relay.stats().malformed));
    print_output_stats(stderr, relay.routes());
    std::fprintf(stderr, "\n");
}

// A collector holds two descriptors per writer (socket + nothing else) plus
// outputs: use the hard limit, not the 1024 soft default.
void raise_fd_limit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        (void)::setrlimit(RLIMIT_NOFILE, &limit);
    }
}

int run_listen(const ListenOptions& options) {
    auto server_opts = server_options(options);  // usage errors before anything is opened
    std::optional<Clock::duration> stats_every;
    if (!options.stats_interval.empty())
        stats_every = std::chrono::nanoseconds(
            duration_ns_option("--stats-interval", options.stats_interval, 1'000'000));
    const bool quiet = options.reader.output.quiet;
    const bool verbose = options.verbose && !quiet;
    // The metrics socket before the outputs, so that a bad address leaves
    // no output file behind.
    metrics::Board board;
    std::unique_ptr<metrics::HttpServer> metrics_server;
    if (!options.metrics.empty()) metrics_server = std::make_unique<metrics::HttpServer>(options.metrics, board);
    std::FILE* text_file = nullptr;
    auto relay = make_relay(options.reader, text_file);
    install_stop_handlers();
    raise_fd_limit();

    listen::Server server(std::move(server_opts), [quiet, verbose](listen::LogLevel level, const std::string& line) {
        if (quiet || (level == listen::LogLevel::Info && !verbose)) return;
        std::fprintf(stderr, "sidetap: %s\n", line.c_str());
    });
    if (metrics_server) board.publish(collect_samples(server, *relay));
    if (!quiet) {
        std::string where;
        bool open_tls = false;
        for (const auto& e : server.bound()) {
            where += (where.empty() ? "" : ", ") + listen::to_string(e);
            open_tls = open_tls || (e.kind == listen::Endpoint::Tls && options.tls_client_ca.empty());
        }
        std::fprintf(stderr, "sidetap: listening on %s\n", where.c_str());
        if (open_tls)
            std::fprintf(stderr, "sidetap: note: TLS listeners ask for no client certificate: anyone who reaches the "
                                 "port can write (--tls-client-ca FILE requires one)\n");
        if (metrics_server)
            std::fprintf(stderr, "sidetap: metrics on port %u (GET /metrics)\n", unsigned{metrics_server->port()});
    }
    auto next_stats = Clock::now() + stats_every.value_or(Clock::duration::zero());
    auto next_publish = Clock::now() + std::chrono::seconds(1);
    server.run(
        [&relay](std::span<const std::uint8_t> frame) { relay->on_frame(frame); },
        [&] {
            if (take_reopen_request())
                for (const auto& route : relay->routes()) route.output->request_reopen();
            const auto now = Clock::now();
            if (metrics_server && now >= next_publish) {
                board.publish(collect_samples(server, *relay));
                next_publish = now + std::chrono::seconds(1);
            }
            if (stats_every && now >= next_stats) {
                print_stats_line(server, *relay);
                next_stats = now + *stats_every;
            }
            // Text nobody reads any more (stdout into `| head`) ends the run.
            return stop_requested() || (text_file && std::ferror(text_file));
        },
        [text_file] {
            if (text_file) std::fflush(text_file);  // live text: show it when the writers pause
        });
    relay->finish();
    if (metrics_server) {
        board.publish(collect_samples(server, *relay));
        metrics_server->stop();
    }
    const bool text_failed = !output::close_text_stream(text_file);
    if (!quiet) {
        relay->report(stderr);
        server.report(stderr);
    }
    // A clean stop (SIGINT/SIGTERM) is 0 only when no output failed.
    return text_failed || relay->output_failed() ? util::kExitRuntime : util::kExitOk;
}

}  // namespace

std::function<int()> add_listen_command(CLI::App& app) {
    auto options = std::make_shared<ListenOptions>();
    auto* cmd = app.add_subcommand(
        "listen",
        "Receive dnstap from writers over Frame Streams sockets (Unix, TCP, TLS): print them (text/yaml/json) or "
        "filter them into outputs");
    cmd->add_option("-u,--unix", options->unix_paths,
                    "Listen on a Unix socket (repeatable). A stale socket file is replaced; the file is removed at "
                    "exit")
        ->expected(1)
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    cmd->add_option("-l,--listen", options->addresses,
                    "Listen on TCP (repeatable): HOST:PORT, [V6]:PORT, :PORT (all addresses); PORT 0 picks a free "
                    "port. Plain TCP, or TLS when --tls-cert and --tls-key are given; tcp://HOST:PORT or "
                    "tls://HOST:PORT choose explicitly")
        ->expected(1)
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    add_reader_options(*cmd, options->reader, "drop");
    // add_output_options registered --tls-cert/--tls-key as the client
    // certificate of tls:// outputs; for listen they are first the server
    // certificate of TLS listeners.
    if (auto* o = cmd->get_option_no_throw("--tls-cert"))
        o->description("Certificate (PEM chain) of the TLS listeners; also the client certificate of tls:// outputs");
    if (auto* o = cmd->get_option_no_throw("--tls-key"))
        o->description("Private key of --tls-cert (PEM, not encrypted)");
    if (auto* o = cmd->get_option_no_throw("--tls-ca"))
        o->description("CA certificates to verify the collectors of tls:// outputs (-w tls://...); an error "
                       "without such an output. Writers' certificates: --tls-client-ca");
    cmd->add_option("--tls-client-ca", options->tls_client_ca,
                    "Mutual TLS: TLS writers must present a certificate issued by a CA in FILE (PEM); others are "
                    "refused and counted (refused_client_certificate). Without it anyone who reaches the port can "
                    "write");
    cmd->add_option("--socket-mode", options->socket_mode, "Permissions of -u socket files (octal)")
        ->capture_default_str();
    cmd->add_option("--max-connections", options->max_connections,
                    "Concurrent writers. When all are taken, a new connection evicts the one that has completed "
                    "no frame for longest (at least 1s; counted as evicted); if none is idle it is closed at once "
                    "(refused_max_connections)")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20))
        ->capture_default_str();
    cmd->add_option("--handshake-timeout", options->handshake_timeout,
                    "Time a writer has to complete READY/ACCEPT/START (and TLS)")
        ->capture_default_str();
    cmd->add_option("--idle-timeout", options->idle_timeout,
                    "Close a writer that completes no frame for this long after START (writers reconnect when "
                    "they have data); 0 = never")
        ->capture_default_str();
    cmd->add_option("--max-receive-memory", options->max_receive_memory,
                    "All connections' read buffers together (default 128M, more if --max-connections x 16K + "
                    "2 x --max-frame-size needs it). Each connection's first 16K is reserved; a connection whose "
                    "frame needs more evicts an idle one holding memory, else waits up to 5s, then is closed "
                    "(out_of_memory)");
    cmd->add_flag("--refuse-unidirectional", options->refuse_unidirectional,
                  "Close writers that send START without READY (default: accept and count them)");
    cmd->add_option("--receive-queue", options->receive_queue,
                    "Frames waiting between the connections and the output (also bounded to 64 MiB); when full, "
                    "connections stop reading and the writers see backpressure")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 24))
        ->capture_default_str();
    cmd->add_option("--stats-interval", options->stats_interval,
                    "Print a stats line (connections, frames, refusals, queue, receive memory, outputs) every DUR");
    cmd->add_option("--metrics", options->metrics,
                    "Serve every counter in the Prometheus text format on HOST:PORT (GET /metrics)");
    cmd->add_flag("-v,--verbose", options->verbose, "Log every connection (open, close, frame count)");
    cmd->footer(
        "Writers use the bidirectional handshake: READY (with protobuf:dnstap.Dnstap) -> ACCEPT -> START -> "
        "frames -> STOP -> FINISH. A READY without that content type, garbage, or a frame over --max-frame-size "
        "closes that connection (counted, logged). Malformed protobuf frames are counted and skipped. "
        "A slow output slows the connections (bounded queue; the kernel pushes back to the writers, which drop "
        "in their own queues); -w socket outputs drop when their own queue is full (--on-full). "
        "Anyone who can reach a Unix socket (--socket-mode) or a TCP port can write; use --tls-client-ca to "
        "admit only writers with a certificate. "
        "SIGINT/SIGTERM: stop accepting, keep what was received, write STOP to dnstap outputs, print the "
        "summary, exit 0 (1 if an output failed). SIGHUP reopens output files.");
    return [options] { return run_listen(*options); };
}

}  // namespace sidetap::cli
