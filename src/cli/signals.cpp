#include "cli/signals.h"

#include <csignal>
#include <unistd.h>

namespace sidetap::cli {

namespace {
std::atomic<int> g_stop_signals{0};
std::atomic<bool> g_reopen{false};

extern "C" void on_hangup(int) { g_reopen.store(true, std::memory_order_relaxed); }

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
    struct sigaction hangup {};
    hangup.sa_handler = on_hangup;
    sigemptyset(&hangup.sa_mask);
    sigaction(SIGHUP, &hangup, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
}

bool take_reopen_request() {
    if (!g_reopen.load(std::memory_order_relaxed)) return false;
    return g_reopen.exchange(false, std::memory_order_relaxed);
}

bool stop_requested() { return g_stop_signals.load(std::memory_order_relaxed) != 0; }

}  // namespace sidetap::cli
