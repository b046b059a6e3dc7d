#include "cli/listen_command.h"

#include "cli/read_options.h"
#include "cli/signals.h"
#include "output/text_stream.h"
#include "listen/server.h"
#include "util/error.h"
#include "util/units.h"

#include <cstdio>
#include <cstdlib>
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
    bool refuse_unidirectional = false;
    std::size_t receive_queue = 10000;
    bool verbose = false;
};

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
    s.max_connections = o.max_connections;
    s.handshake_timeout =
        std::chrono::milliseconds(duration_ns_option("--handshake-timeout", o.handshake_timeout, 1'000'000) / 1'000'000);
    s.max_frame_size = max_frame_size(o.reader);
    s.accept_unidirectional = !o.refuse_unidirectional;
    s.queue_frames = o.receive_queue;
    return s;
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
    std::FILE* text_file = nullptr;
    auto relay = make_relay(options.reader, text_file);
    install_stop_handlers();
    raise_fd_limit();

    const bool quiet = options.reader.output.quiet;
    const bool verbose = options.verbose && !quiet;
    listen::Server server(std::move(server_opts), [quiet, verbose](listen::LogLevel level, const std::string& line) {
        if (quiet || (level == listen::LogLevel::Info && !verbose)) return;
        std::fprintf(stderr, "sidetap: %s\n", line.c_str());
    });
    if (!quiet) {
        std::string where;
        for (const auto& e : server.bound()) where += (where.empty() ? "" : ", ") + listen::to_string(e);
        std::fprintf(stderr, "sidetap: listening on %s\n", where.c_str());
    }
    server.run(
        [&relay](std::span<const std::uint8_t> frame) { relay->on_frame(frame); },
        [&relay, text_file] {
            if (take_reopen_request())
                for (const auto& route : relay->routes()) route.output->request_reopen();
            // Text nobody reads any more (stdout into `| head`) ends the run.
            return stop_requested() || (text_file && std::ferror(text_file));
        },
        [text_file] {
            if (text_file) std::fflush(text_file);  // live text: show it when the writers pause
        });
    relay->finish();
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
    cmd->add_option("--socket-mode", options->socket_mode, "Permissions of -u socket files (octal)")
        ->capture_default_str();
    cmd->add_option("--max-connections", options->max_connections,
                    "Concurrent writers; more are accepted, closed at once and counted")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20))
        ->capture_default_str();
    cmd->add_option("--handshake-timeout", options->handshake_timeout,
                    "Time a writer has to complete READY/ACCEPT/START (and TLS); no timeout after START")
        ->capture_default_str();
    cmd->add_flag("--refuse-unidirectional", options->refuse_unidirectional,
                  "Close writers that send START without READY (default: accept and count them)");
    cmd->add_option("--receive-queue", options->receive_queue,
                    "Frames waiting between the connections and the output (also bounded to 64 MiB); when full, "
                    "connections stop reading and the writers see backpressure")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 24))
        ->capture_default_str();
    cmd->add_flag("-v,--verbose", options->verbose, "Log every connection (open, close, frame count)");
    cmd->footer(
        "Writers use the bidirectional handshake: READY (with protobuf:dnstap.Dnstap) -> ACCEPT -> START -> "
        "frames -> STOP -> FINISH. A READY without that content type, garbage, or a frame over --max-frame-size "
        "closes that connection (counted, logged). Malformed protobuf frames are counted and skipped. "
        "A slow output slows the connections (bounded queue; the kernel pushes back to the writers, which drop "
        "in their own queues); -w socket outputs drop when their own queue is full (--on-full). "
        "SIGINT/SIGTERM: stop accepting, keep what was received, write STOP to dnstap outputs, print the "
        "summary, exit 0 (1 if an output failed). SIGHUP reopens output files.");
    return [options] { return run_listen(*options); };
}

}  // namespace sidetap::cli
