#include "cli/common_options.h"

#include "output/file_output.h"
#include "util/error.h"
#include "util/units.h"

#include <arpa/inet.h>
#include <climits>
#include <unistd.h>

namespace sidetap::cli {

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
}

void add_output_options(CLI::App& cmd, OutputOptions& options) {
    cmd.add_option("-w,--output", options.destinations, "Output: a file path, or - for stdout (default -)")
        ->expected(1)
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    cmd.add_option("--identity", options.identity, "Dnstap identity (default: the host name)");
    cmd.add_option("--version", options.version, "Dnstap version (default: \"sidetap " SIDETAP_VERSION "\")");
    cmd.add_option_function<std::string>(
        "--extra",
        [&options](const std::string& value) {
            options.extra = value;
            options.extra_set = true;
        },
        "Dnstap extra field");
    cmd.add_flag("--no-wire", options.no_wire, "Leave out query_message/response_message");
    cmd.add_flag("-q,--quiet", options.quiet, "No progress line and no stats summary");
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

std::uint64_t duration_option(const char* name, const std::string& text) {
    const auto ns = util::parse_duration_ns(text);
    if (!ns) throw util::FatalError(std::string(name) + ": '" + text + "' is not a duration (e.g. 500ms, 10s, 5m)",
                                    util::kExitUsage);
    return *ns;
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
    config.pairing.query_timeout_ns = duration_option("--query-timeout", capture.query_timeout);
    config.pairing.reorder_window_ns = duration_option("--reorder-window", capture.reorder_window);
    config.pairing.max_queries = capture.max_pending_queries;
    config.tcp.max_streams = capture.max_tcp_streams;
    config.tcp.idle_timeout_ns = duration_option("--tcp-idle-timeout", capture.tcp_idle_timeout);
    config.defrag.max_datagrams = capture.max_fragmented_datagrams;
    config.defrag.timeout_ns = duration_option("--fragment-timeout", capture.fragment_timeout);
    config.envelope.identity = output.identity.empty() ? host_name() : output.identity;
    config.envelope.version = output.version.empty() ? std::string("sidetap ") + SIDETAP_VERSION : output.version;
    if (output.extra_set) config.envelope.extra = output.extra;
    return config;
}

std::vector<pipeline::OutputRoute> open_outputs(const OutputOptions& options) {
    std::vector<pipeline::OutputRoute> outputs;
    for (const auto& dest : options.destinations) {
        if (dest == "-" && ::isatty(STDOUT_FILENO))
            throw util::FatalError("refusing to write binary dnstap to a terminal: use -w FILE or redirect stdout",
                                   util::kExitUsage);
        if (dest.find("://") != std::string::npos)
            throw util::FatalError("output '" + dest + "': socket destinations are not supported yet",
                                   util::kExitUsage);
        pipeline::OutputRoute route;
        route.output = std::make_unique<output::FileOutput>(dest);
        route.wire = !options.no_wire;
        outputs.push_back(std::move(route));
    }
    return outputs;
}

}  // namespace sidetap::cli
