// Signal handling for long-running commands: SIGINT/SIGTERM ask the
// pipeline to stop (drain, write STOP, exit 0); a second one exits at once.
#pragma once

#include <atomic>

namespace sidetap::cli {

void install_stop_handlers();
// True once SIGINT or SIGTERM arrived. Cheap: a relaxed atomic load.
bool stop_requested();

}  // namespace sidetap::cli
