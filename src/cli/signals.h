// Signal handling for long-running commands: SIGINT/SIGTERM ask the
// pipeline to stop (drain, write STOP, exit 0 unless an output failed); a
// second one exits at once; SIGHUP asks file outputs to reopen.
#pragma once

#include <atomic>

namespace sidetap::cli {

// Also ignores SIGPIPE (a dead collector is an error value, not a signal)
// and installs the SIGHUP handler.
void install_stop_handlers();
// True once SIGINT or SIGTERM arrived. Cheap: a relaxed atomic load.
bool stop_requested();
// True once per SIGHUP (reopen output files, for logrotate): the flag is
// cleared by reading it.
bool take_reopen_request();

}  // namespace sidetap::cli
