// `sidetap capture`: live capture with libpcap (-i IFACE, repeatable) into
// the pipeline and the outputs, beside a running DNS server.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace sidetap::cli {

std::function<int()> add_capture_command(CLI::App& app);

}  // namespace sidetap::cli
