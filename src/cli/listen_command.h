// `sidetap listen`: a Frame Streams collector (Unix, TCP, TLS sockets) whose
// frames go through the same relay as `sidetap read`.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace sidetap::cli {

std::function<int()> add_listen_command(CLI::App& app);

}  // namespace sidetap::cli
