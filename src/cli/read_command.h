// `sidetap read`: dnstap files -> text/YAML/JSON, or filtered into any output.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace sidetap::cli {

std::function<int()> add_read_command(CLI::App& app);

}  // namespace sidetap::cli
