// sidetap: dnstap for DNS servers that cannot emit it themselves.
#include "capture/live_source.h"
#include "capture/tls_source.h"
#include "cli/capture_command.h"
#include "cli/listen_command.h"
#include "cli/read_command.h"
#include "cli/replay_command.h"
#include "util/error.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

namespace {
constexpr const char* kExitCodes =
    "Exit codes:\n"
    "  0  success, including a clean stop on SIGINT/SIGTERM when no output failed\n"
    "  1  runtime failure: an input could not be read completely (not a capture file,\n"
    "     truncated record, I/O error) or an output failed (gave up, reader of a pipe gone,\n"
    "     frames left undelivered at exit), also after SIGINT/SIGTERM; output written so\n"
    "     far is valid\n"
    "  2  usage or configuration error\n"
    "  130 a second SIGINT/SIGTERM while stopping\n";
}

int main(int argc, char** argv) {
    CLI::App app{"sidetap: dnstap from observed DNS traffic (pcap files, live capture)", "sidetap"};
    app.set_version_flag("--version", std::string("sidetap ") + SIDETAP_VERSION +
                                          (sidetap::capture::ebpf_supported()
                                               ? " (capture: libpcap, eBPF socket/tc/cgroup"
                                               : " (capture: libpcap; no eBPF: built with -DSIDETAP_EBPF=OFF") +
                                          (sidetap::capture::tls_probes_supported()
                                               ? std::string("; DoT/DoH: TLS probes)")
                                               : std::string("; no TLS probes: ") +
                                                     sidetap::capture::tls_probes_unsupported_reason() + ")"));
    app.require_subcommand(1);
    app.footer(kExitCodes);
    auto run_replay = sidetap::cli::add_replay_command(app);
    auto run_read = sidetap::cli::add_read_command(app);
    auto run_listen = sidetap::cli::add_listen_command(app);
    auto run_capture = sidetap::cli::add_capture_command(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? 0 : sidetap::util::kExitUsage;
    }
    try {
        if (app.got_subcommand("replay")) return run_replay();
        if (app.got_subcommand("read")) return run_read();
        if (app.got_subcommand("listen")) return run_listen();
        if (app.got_subcommand("capture")) return run_capture();
        return sidetap::util::kExitUsage;
    } catch (const sidetap::util::FatalError& e) {
        std::fprintf(stderr, "sidetap: %s\n", e.what());
        return e.exit_code();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sidetap: %s\n", e.what());
        return sidetap::util::kExitRuntime;
    }
}
