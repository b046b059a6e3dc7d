#include "cli/common_options.h"

#include "output/destination.h"
#include "output/file_output.h"
#include "output/socket_writer.h"
#include "output/transport.h"
#include "util/error.h"
#include "util/units.h"

#include <arpa/inet.h>
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <climits>
#include <map>
#include <unistd.h>

namespace sidetap::cli {

std::uint64_t size_option(const std::string& option, const std::string& text, std::uint64_t minimum,
                          std::uint64_t maximum) {
    const auto bytes = util::parse_size_bytes(text);
    if (!bytes) throw util::FatalError(option + ": '" + text + "' is not a size (e.g. 64K, 16M)", util::kExitUsage);
    if (*bytes < minimum || *bytes > maximum)
        throw util::FatalError(option + ": '" + text + "' must be " +
                                   (maximum == UINT64_MAX ? "at least " + std::to_string(minimum)
                                                          : std::to_string(minimum) + " to " + std::to_string(maximum)) +
                                   " bytes",
                               util::kExitUsage);
    return *bytes;
}

std::uint64_t duration_ns_option(const std::string& option, const std::string& text, std::uint64_t minimum_ns) {
    const auto ns = util::parse_duration_ns(text);
    if (!ns) throw util::FatalError(option + ": '" + text + "' is not a duration (e.g. 500ms, 10s, 5m)",
                                    util::kExitUsage);
    if (*ns < minimum_ns)
        throw util::FatalError(option + ": '" + text + "' is shorter than " + std::to_string(minimum_ns / 1'000'000) +
                                   "ms",
                               util::kExitUsage);
    return *ns;
}

std::chrono::milliseconds duration_ms_option(const std::string& option, const std::string& text) {
    return std::chrono::milliseconds(duration_ns_option(option, text) / 1'000'000);
}

void add_capture_options(CLI::App& cmd, CaptureOptions& options) {
    cmd.add_option("-p,--port", options.ports,
                   "Server port (repeatable, default 53). A datagram to a server port is a query, one from a "
                   "server port a response; when both ports are server ports the QR bit decides")
        ->check(CLI::Range(1, 65535))
        ->expected(1)
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    cmd.add_option("--server-addr", options.server_addresses,
                   "Address of the local server (repeatable); decides direction when both ports are server ports")
        ->expected(1)
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    cmd.add_option("--role", options.role,
                   "Message types to emit: client (CLIENT_QUERY/RESPONSE), auth (AUTH_QUERY/RESPONSE) or "
                   "resolver (CLIENT_* for traffic to the server, RESOLVER_* for its own upstream queries)")
        ->check(CLI::IsMember({"client", "auth", "resolver"}))
        ->capture_default_str();
    cmd.add_option("--upstream-port", options.upstream_ports,
                   "Port of upstream servers for --role resolver (repeatable, default 53)")
        ->check(CLI::Range(1, 65535))
        ->expected(1)
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    cmd.add_option("--query-timeout", options.query_timeout,
                   "How long (packet time) a query waits for its response before it counts as unanswered")
        ->capture_default_str();
    cmd.add_option("--reorder-window", options.reorder_window,
                   "How long a response seen before its query waits for it (packet time)")
        ->capture_default_str();
    cmd.add_option("--max-pending-queries", options.max_pending_queries,
                   "Bound on queries waiting for a response; the oldest is evicted and counted")
        ->check(CLI::Range(1, 1 << 24))
        ->capture_default_str();
    cmd.add_option("--max-tcp-streams", options.max_tcp_streams,
                   "Bound on tracked TCP connections; the least recently active is evicted and counted")
        ->check(CLI::Range(1, 1 << 22))
        ->capture_default_str();
    cmd.add_option("--tcp-idle-timeout", options.tcp_idle_timeout, "Idle TCP connections are closed after this")
        ->capture_default_str();
    cmd.add_option("--max-fragmented-datagrams", options.max_fragmented_datagrams,
                   "Bound on IP datagrams being reassembled; the oldest is evicted and counted")
        ->check(CLI::Range(1, 1 << 22))
        ->capture_default_str();
    cmd.add_option("--fragment-timeout", options.fragment_timeout,
                   "Incomplete IP datagrams are dropped after this (packet time)")
        ->capture_default_str();
    cmd.add_option("--max-tcp-bytes", options.max_tcp_bytes,
                   "Bound on bytes buffered by TCP reassembly in all streams; streams are evicted and counted")
        ->capture_default_str();
    cmd.add_option("--max-fragment-bytes", options.max_fragment_bytes,
                   "Bound on bytes buffered by IP defragmentation; datagrams are evicted and counted")
        ->capture_default_str();
    cmd.add_option("--max-time-jump", options.max_time_jump,
                   "A packet time this far (or farther) from the previous ones, either way, is a discontinuity "
                   "(damaged timestamp, clock step): counted, and timers do not jump with it")
        ->capture_default_str();
    cmd.add_flag("--keep-malformed", options.keep_malformed,
                 "Also emit messages that are not well-formed DNS (shorter than a header, QR bit against the "
                 "port direction, unparsable question), as queries to and responses from server ports, as "
                 "Unbound logs them (counted either way)");
}

void add_envelope_options(CLI::App& cmd, OutputOptions& options) {
    cmd.add_option("--identity", options.identity, "Dnstap identity (default: the host name)");
    cmd.add_option("--version", options.version, "Dnstap version (default: \"sidetap " SIDETAP_VERSION "\")");
    cmd.add_option_function<std::string>(
        "--extra",
        [&options](const std::string& value) {
            options.extra = value;
            options.extra_set = true;
        },
        "Dnstap extra field: a text, with placeholders expanded per message ({interface}, {vlan}, {tunnel}, "
        "{cgroup}, {pid}, {comm}, {shard}, {host}, {file}, {frame}; {{ and }} for braces; a placeholder with no "
        "value is empty); per output: ?extra=");
    options.per_output_extra = true;
}

void add_output_options(CLI::App& cmd, OutputOptions& options, const char* default_on_full) {
    options.on_full = default_on_full;
    cmd.add_option("-w,--output", options.destinations,
                   "Output (repeatable): a file path, - for stdout (default), unix:///path, tcp://host:port, "
                   "tls://host:port; per-output settings as URI parameters: ?types=CQ,CR&wire=no&queue=N&"
                   "write-buffer=SIZE&flush-interval=DUR&on-full=drop|block&rotate-size=SIZE&rotate-interval=DUR&"
                   "reconnect-initial=DUR&reconnect-max=DUR&reconnect-attempts=N&tls-ca=FILE&tls-skip-verify=yes&"
                   "tls-cert=FILE&tls-key=FILE")
        ->expected(1)
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    cmd.add_flag("--no-wire", options.no_wire, "Leave out query_message/response_message");
    cmd.add_flag("-q,--quiet", options.quiet, "No progress line and no stats summary");
    cmd.add_option("--types", options.types,
                   "Message types to emit, e.g. CLIENT_QUERY,CLIENT_RESPONSE or CQ,CR (default: all)");
    cmd.add_option("--queue", options.queue, "Frames each output may queue (default 10000, as CoreDNS)")
        ->check(CLI::Range(std::size_t{2}, std::size_t{1} << 24));
    cmd.add_option("--write-buffer", options.write_buffer, "Bytes batched per write (default 1M: one wake-up of the writer per 1 MiB queued at most; a frame waits at most --flush-interval)")
        ->capture_default_str();
    cmd.add_option("--flush-interval", options.flush_interval, "Flush buffered frames at least this often")
        ->capture_default_str();
    cmd.add_option("--reconnect-initial", options.reconnect_initial, "First reconnect delay (doubles, with jitter)")
        ->capture_default_str();
    cmd.add_option("--reconnect-max", options.reconnect_max, "Longest reconnect delay")->capture_default_str();
    cmd.add_option("--reconnect-attempts", options.reconnect_attempts,
                   "Give an output up after N failed connects in a row (default 0: never)");
    cmd.add_option("--on-full", options.on_full,
                   "When an output's queue is full: drop (count and go on) or block (wait; replay's default)")
        ->check(CLI::IsMember({"drop", "block"}))
        ->capture_default_str();
    cmd.add_option("--drain-timeout", options.drain_timeout, "At exit, how long outputs may take to send what is queued")
        ->capture_default_str();
    cmd.add_option("--tls-ca", options.tls_ca, "CA certificates to verify tls:// collectors (default: system store)");
    cmd.add_flag("--tls-skip-verify", options.tls_skip_verify, "Do not verify the collector's certificate");
    cmd.add_option("--tls-cert", options.tls_cert, "Client certificate for mutual TLS");
    cmd.add_option("--tls-key", options.tls_key, "Client key for mutual TLS");
    cmd.add_option("--rotate-size", options.rotate_size, "Start a new output file after SIZE bytes (e.g. 100M)");
    cmd.add_option("--rotate-interval", options.rotate_interval, "Start a new output file every DUR (e.g. 1h)");
}

namespace {
decode::IpAddress parse_address(const std::string& text) {
    decode::IpAddress address;
    if (inet_pton(AF_INET, text.c_str(), address.bytes.data()) == 1) {
        address.family = 4;
    } else if (inet_pton(AF_INET6, text.c_str(), address.bytes.data()) == 1) {
        address.family = 6;
    } else {
        throw util::FatalError("--server-addr: '" + text + "' is not an IPv4 or IPv6 address", util::kExitUsage);
    }
    return address;
}

dnstap::ExtraTemplate extra_template(const std::string& where, const std::string& text) {
    std::string error;
    auto parsed = dnstap::ExtraTemplate::parse(text, error);
    if (!parsed) throw util::FatalError(where + ": " + error, util::kExitUsage);
    return std::move(*parsed);
}

std::string host_name() {
    char name[HOST_NAME_MAX + 1] = {};
    if (::gethostname(name, sizeof name - 1) != 0) return "sidetap";
    return name;
}
}  // namespace

pipeline::PipelineConfig make_pipeline_config(const CaptureOptions& capture, const OutputOptions& output) {
    pipeline::PipelineConfig config;
    config.classifier.server_ports = capture.ports;
    for (const auto& text : capture.server_addresses) config.classifier.server_addresses.push_back(parse_address(text));
    config.classifier.upstream_ports = capture.upstream_ports;
    config.classifier.role = capture.role == "auth"       ? pairing::Role::Auth
                             : capture.role == "resolver" ? pairing::Role::Resolver
                                                          : pairing::Role::Client;
    config.pairing.query_timeout_ns = duration_ns_option("--query-timeout", capture.query_timeout);
    config.pairing.reorder_window_ns = duration_ns_option("--reorder-window", capture.reorder_window);
    config.pairing.max_queries = capture.max_pending_queries;
    // A FIN or RST captured before the last data waits as long as a
    // response captured before its query: the capture's reordering window.
    config.tcp.close_grace_ns = config.pairing.reorder_window_ns;
    config.classifier.keep_malformed = capture.keep_malformed;
    config.max_time_jump_ns = duration_ns_option("--max-time-jump", capture.max_time_jump, 1'000'000'000ULL);
    config.tcp.max_streams = capture.max_tcp_streams;
    config.tcp.idle_timeout_ns = duration_ns_option("--tcp-idle-timeout", capture.tcp_idle_timeout);
    config.defrag.max_datagrams = capture.max_fragmented_datagrams;
    config.defrag.timeout_ns = duration_ns_option("--fragment-timeout", capture.fragment_timeout);
    config.tcp.max_total_bytes = size_option("--max-tcp-bytes", capture.max_tcp_bytes, 1u << 20);
    config.defrag.max_bytes = size_option("--max-fragment-bytes", capture.max_fragment_bytes, 256u << 10);
    config.envelope.identity = output.identity.empty() ? host_name() : output.identity;
    config.envelope.version = output.version.empty() ? std::string("sidetap ") + SIDETAP_VERSION : output.version;
    if (output.extra_set) config.extra_template = extra_template("--extra", output.extra);
    config.origin.host = host_name();
    return config;
}

namespace {

std::uint64_t number_option(const std::string& where, const std::string& text) {
    std::uint64_t value = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || ptr != text.data() + text.size() || text.empty())
        throw util::FatalError(where + ": '" + text + "' is not a number", util::kExitUsage);
    return value;
}

bool yes_no(const std::string& where, const std::string& text) {
    if (text == "yes" || text == "true" || text == "1" || text == "on") return true;
    if (text == "no" || text == "false" || text == "0" || text == "off") return false;
    throw util::FatalError(where + ": '" + text + "' is not yes or no", util::kExitUsage);
}

// The value of a per-output setting: the URI parameter if given (and then
// consumed), else the global option.
struct Params {
    std::map<std::string, std::string> values;
    std::string where;
    std::string take(const std::string& key, const std::string& fallback) {
        auto it = values.find(key);
        if (it == values.end()) return fallback;
        auto v = it->second;
        values.erase(it);
        return v;
    }
};

}  // namespace

std::chrono::milliseconds shortest_flush_interval(const OutputOptions& options) {
    auto shortest = duration_ms_option("--flush-interval", options.flush_interval);
    for (const auto& text : options.destinations) {
        const auto dest = output::parse_destination(text);
        if (auto it = dest.params.find("flush-interval"); it != dest.params.end())
            shortest = std::min(shortest, duration_ms_option("output " + output::to_string(dest) + " flush-interval",
                                                              it->second));
    }
    return shortest;
}

std::vector<output::OutputRoute> open_outputs(const OutputOptions& options, std::size_t producers) {
    std::vector<output::OutputRoute> outputs;
    for (const auto& text : options.destinations) {
        const auto dest = output::parse_destination(text);
        Params p{dest.params, "output " + output::to_string(dest)};
        if (dest.kind == output::Destination::Stdout && ::isatty(STDOUT_FILENO))
            throw util::FatalError("refusing to write binary dnstap to a terminal: use -w FILE or redirect stdout",
                                   util::kExitUsage);

        output::OutputRoute route;
        route.wire = !options.no_wire;
        if (auto wire = p.take("wire", ""); !wire.empty()) route.wire = yes_no(p.where + " wire=", wire);
        if (options.per_output_extra)
            if (auto it = p.values.find("extra"); it != p.values.end())
                route.extra = extra_template(p.where + " extra=", p.take("extra", ""));
        if (auto types = p.take("types", options.types); !types.empty()) {
            std::string error;
            auto bits = dnstap::parse_type_list(types, error);
            if (!bits) throw util::FatalError(p.where + ": " + error, util::kExitUsage);
            route.types = *bits;
        }

        output::QueueSettings q;
        q.producers = producers;
        q.queue_frames = number_option(p.where + " queue", p.take("queue", std::to_string(options.queue)));
        if (q.queue_frames < 2) throw util::FatalError(p.where + ": queue must be at least 2", util::kExitUsage);
        // The ring's byte bound follows the frame bound (1 KiB a frame, at
        // least 2 MiB): the whole ring becomes resident once it has wrapped,
        // so it must not be larger than the queue needs.
        // A power of two, so the ring is exactly this size.
        q.queue_bytes = std::uint64_t{2} << 20;
        while (q.queue_bytes * 2 <= std::uint64_t{q.queue_frames} * 1024 && q.queue_bytes < (1u << 30)) q.queue_bytes *= 2;
        q.write_buffer = size_option(p.where + " write-buffer", p.take("write-buffer", options.write_buffer));
        if (q.write_buffer < 1024) q.write_buffer = 1024;
        q.flush_interval = duration_ms_option(p.where + " flush-interval", p.take("flush-interval", options.flush_interval));
        q.reconnect_initial =
            duration_ms_option(p.where + " reconnect-initial", p.take("reconnect-initial", options.reconnect_initial));
        q.reconnect_max = duration_ms_option(p.where + " reconnect-max", p.take("reconnect-max", options.reconnect_max));
        if (q.reconnect_initial.count() < 1) q.reconnect_initial = std::chrono::milliseconds(1);
        if (q.reconnect_max < q.reconnect_initial) q.reconnect_max = q.reconnect_initial;
        // A file that cannot be written (disk full, directory gone) is given
        // up after a few tries instead of stalling a replay forever.
        const bool is_file = dest.kind == output::Destination::File || dest.kind == output::Destination::Stdout;
        const auto default_attempts = options.reconnect_attempts == 0 && is_file ? 5u : options.reconnect_attempts;
        const auto attempts = p.take("reconnect-attempts", std::to_string(default_attempts));
        if (const auto n = number_option(p.where + " reconnect-attempts", attempts); n != 0)
            q.reconnect_attempts = static_cast<std::uint32_t>(std::min<std::uint64_t>(n, UINT32_MAX));
        q.drain_timeout = duration_ms_option(p.where + " drain-timeout", p.take("drain-timeout", options.drain_timeout));
        const auto on_full = p.take("on-full", options.on_full);
        if (on_full != "drop" && on_full != "block")
            throw util::FatalError(p.where + ": on-full must be drop or block", util::kExitUsage);
        q.overflow = on_full == "block" ? output::OverflowPolicy::Block : output::OverflowPolicy::Drop;

        if (dest.kind == output::Destination::File || dest.kind == output::Destination::Stdout) {
            output::FileWriterOptions f;
            f.path = dest.kind == output::Destination::Stdout ? "-" : dest.path;
            if (auto v = p.take("rotate-size", options.rotate_size); !v.empty())
                f.rotate_size = size_option(p.where + " rotate-size", v);
            if (auto v = p.take("rotate-interval", options.rotate_interval); !v.empty())
                f.rotate_interval = duration_ms_option(p.where + " rotate-interval", v);
            if (!p.values.empty()) throw util::FatalError(p.where + ": unknown setting '" + p.values.begin()->first + "'", util::kExitUsage);
            route.output = output::make_file_output(f, q);
        } else {
            std::unique_ptr<output::Connector> connector;
            if (dest.kind == output::Destination::Unix) {
                connector = output::make_unix_connector(dest.path);
            } else if (dest.kind == output::Destination::Tcp) {
                connector = output::make_tcp_connector(dest.host, dest.port);
            } else {
                output::TlsOptions tls;
                tls.ca_file = p.take("tls-ca", options.tls_ca);
                tls.skip_verify = yes_no(p.where + " tls-skip-verify",
                                         p.take("tls-skip-verify", options.tls_skip_verify ? "yes" : "no"));
                tls.cert_file = p.take("tls-cert", options.tls_cert);
                tls.key_file = p.take("tls-key", options.tls_key);
                connector = output::make_tls_connector(dest.host, dest.port, tls);
            }
            if (auto v = p.take("handshake", "bidirectional"); v == "none") q.handshake = false;
            else if (v != "bidirectional")
                throw util::FatalError(p.where + ": handshake must be bidirectional or none", util::kExitUsage);
            if (!p.values.empty()) throw util::FatalError(p.where + ": unknown setting '" + p.values.begin()->first + "'", util::kExitUsage);
            route.output = output::make_socket_output(std::move(connector), q);
        }
        outputs.push_back(std::move(route));
    }
    return outputs;
}

}  // namespace sidetap::cli
