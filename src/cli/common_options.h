// Options shared by the subcommands (see shared/reference/cli.md) and the
// objects built from them.
#pragma once

#include "output/output.h"
#include "output/route.h"
#include "pipeline/pipeline.h"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sidetap::cli {

struct CaptureOptions {
    std::vector<std::uint16_t> ports{53};
    std::vector<std::uint16_t> upstream_ports{53};
    std::vector<std::string> server_addresses;
    std::string role = "client";
    std::string query_timeout = "10s";
    std::string reorder_window = "100ms";
    std::size_t max_pending_queries = 65536;
    std::size_t max_tcp_streams = 65536;
    std::string tcp_idle_timeout = "60s";
    std::size_t max_fragmented_datagrams = 8192;
    std::string fragment_timeout = "30s";
    std::string max_tcp_bytes = "256M";
    std::string max_fragment_bytes = "64M";
    std::string max_time_jump = "60s";
    bool keep_malformed = false;
};

// Output options. Each is the default for every -w destination; a
// destination can override most of them with URI parameters
// (tcp://c:6000?types=CQ,CR&wire=no&queue=50000).
struct OutputOptions {
    std::vector<std::string> destinations{"-"};
    std::string identity;  // default: host name
    std::string version;   // default: "sidetap <version>"
    std::string extra;
    bool extra_set = false;
    bool per_output_extra = false;      // ?extra= allowed (commands that make dnstap)
    bool no_wire = false;
    bool quiet = false;
    std::string types;                  // empty: all
    std::size_t queue = 10000;
    std::string write_buffer = "1M";
    std::string flush_interval = "1s";
    std::string reconnect_initial = "100ms";
    std::string reconnect_max = "30s";
    std::uint32_t reconnect_attempts = 0;  // 0: retry forever
    std::string on_full;                // drop|block; default per subcommand
    std::string tls_ca;
    bool tls_skip_verify = false;
    std::string tls_cert;
    std::string tls_key;
    std::string rotate_size;            // empty: off
    std::string rotate_interval;        // empty: off
    std::string drain_timeout = "5s";
};

// Values of size and duration options ("64K", "500ms"). Throw
// util::FatalError(kExitUsage) naming the option when `text` is not one, or
// is outside [minimum, maximum].
std::uint64_t size_option(const std::string& option, const std::string& text, std::uint64_t minimum = 0,
                          std::uint64_t maximum = UINT64_MAX);
std::uint64_t duration_ns_option(const std::string& option, const std::string& text, std::uint64_t minimum_ns = 0);
std::chrono::milliseconds duration_ms_option(const std::string& option, const std::string& text);

void add_capture_options(CLI::App& cmd, CaptureOptions& options);
// --identity, --version, --extra: for the subcommands that make dnstap.
void add_envelope_options(CLI::App& cmd, OutputOptions& options);
// default_on_full: "block" for replay (never lose data from a file),
// "drop" for live sources (never stall capture).
void add_output_options(CLI::App& cmd, OutputOptions& options, const char* default_on_full);

// Throws util::FatalError (exit code 2) for values CLI11 cannot check.
pipeline::PipelineConfig make_pipeline_config(const CaptureOptions& capture, const OutputOptions& output);
// The shortest flush interval of the outputs (--flush-interval, or an
// output's flush-interval= when shorter): how long a message may wait in
// sidetap before it is written; the capture may hold packets as long.
std::chrono::milliseconds shortest_flush_interval(const OutputOptions& options);
// `producers`: threads that write to every output at once (capture shards).
std::vector<output::OutputRoute> open_outputs(const OutputOptions& output, std::size_t producers = 1);

}  // namespace sidetap::cli
