#include "cli/signals.h"

#include <csignal>
#include <unistd.h>

namespace sidetap::cli {

namespace {
std::atomic<int> g_stop_signals{0};

extern "C" void on_stop_signal(int) {
    if (g_stop_signals.fetch_add(1, std::memory_order_relaxed) >= 1) {
        // Second signal: the user wants out now.
        _exit(130);
    }
}
}  // namespace

void install_stop_handlers() {
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: blocking reads return EINTR
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
}

bool stop_requested() { return g_stop_signals.load(std::memory_order_relaxed) != 0; }

}  // namespace sidetap::cli
