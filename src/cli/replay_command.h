// `sidetap replay`: pcap/pcapng files -> dnstap.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace sidetap::cli {

// Registers the subcommand on `app`; the returned callable runs it after
// parsing and returns the process exit code.
std::function<int()> add_replay_command(CLI::App& app);

}  // namespace sidetap::cli
