// Options shared by the subcommands (see shared/reference/cli.md) and the
// objects built from them.
#pragma once

#include "output/output.h"
#include "pipeline/pipeline.h"

#include <CLI/CLI.hpp>

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
};

struct OutputOptions {
    std::vector<std::string> destinations{"-"};
    std::string identity;  // default: host name
    std::string version;   // default: "sidetap <version>"
    std::string extra;
    bool extra_set = false;
    bool no_wire = false;
    bool quiet = false;
};

void add_capture_options(CLI::App& cmd, CaptureOptions& options);
void add_output_options(CLI::App& cmd, OutputOptions& options);

// Throws util::FatalError (exit code 2) for values CLI11 cannot check.
pipeline::PipelineConfig make_pipeline_config(const CaptureOptions& capture, const OutputOptions& output);
std::vector<pipeline::OutputRoute> open_outputs(const OutputOptions& output);

}  // namespace sidetap::cli
