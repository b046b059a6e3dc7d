// sidetap: dnstap for DNS servers that cannot emit it themselves.
#include "capture/live_source.h"
#include "capture/tls_source.h"
#include "cli/capture_command.h"
#include "cli/config_file.h"
#include "cli/listen_command.h"
#include "cli/man_page.h"
#include "cli/read_command.h"
#include "cli/replay_command.h"
#include "util/error.h"

#include "sidetap_commit.h"

#include <CLI/CLI.hpp>
#include <google/protobuf/stubs/common.h>
#include <ldns/util.h>
#include <openssl/crypto.h>
#include <pcap/pcap.h>
#ifdef SIDETAP_HAVE_EBPF
// From <bpf/libbpf.h>, whose struct bpf_insn clashes with <pcap/pcap.h>'s.
extern "C" {
unsigned int libbpf_major_version(void);
unsigned int libbpf_minor_version(void);
}
#endif

#include <dlfcn.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>

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

// The file name of the shared library that holds `symbol` (its real path's
// last component, e.g. libprotobuf.so.32.0.12), or "" if not found.
std::string library_file(const void* symbol) {
    Dl_info info{};
    if (::dladdr(symbol, &info) == 0 || !info.dli_fname) return {};
    char resolved[PATH_MAX];
    const char* path = ::realpath(info.dli_fname, resolved) ? resolved : info.dli_fname;
    const char* slash = std::strrchr(path, '/');
    return slash ? slash + 1 : path;
}

// --version: what was built, and the libraries this process runs with
// (their own version functions, not the headers', where they have one).
std::string version_text() {
    std::string text = std::string("sidetap ") + SIDETAP_VERSION + "\n";
    text += std::string("commit: ") + SIDETAP_COMMIT + "\n";
    text += sidetap::capture::ebpf_supported() ? "capture: libpcap, eBPF (socket, tc, cgroup)\n"
                                               : "capture: libpcap; no eBPF (built with -DSIDETAP_EBPF=OFF)\n";
    text += sidetap::capture::tls_probes_supported()
                ? std::string("DoT/DoH: TLS probes (OpenSSL, GnuTLS)\n")
                : std::string("DoT/DoH: no TLS probes (") + sidetap::capture::tls_probes_unsupported_reason() + ")\n";
    text += std::string("libpcap: ") + pcap_lib_version() + "\n";
#ifdef SIDETAP_HAVE_EBPF
    text += "libbpf: " + std::to_string(libbpf_major_version()) + "." + std::to_string(libbpf_minor_version()) + "\n";
#else
    text += "libbpf: not linked\n";
#endif
    // libprotobuf has no run-time version call: the headers' version, and
    // the library file the dynamic linker picked.
    text += "protobuf: " + google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION);
    if (const auto file = library_file(reinterpret_cast<const void*>(&google::protobuf::ShutdownProtobufLibrary));
        !file.empty())
        text += " (" + file + ")";
    text += "\n";
    text += std::string("ldns: ") + ldns_version() + "\n";
    text += std::string("openssl: ") + OpenSSL_version(OPENSSL_VERSION);
    return text;
}
// A binary with file capabilities in the permitted set only (the
// container image: setcap ...+p) starts with them permitted but not
// effective; capabilities nobody granted (outside the bounding set) are not
// permitted either. Make the permitted ones effective, as a
// capability-aware program does; a no-op for root and for ambient
// capabilities (systemd's AmbientCapabilities=, setpriv), where they
// already are.
void raise_permitted_capabilities() {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (::syscall(SYS_capget, &header, data) != 0) return;
    if (data[0].effective == data[0].permitted && data[1].effective == data[1].permitted) return;
    data[0].effective = data[0].permitted;
    data[1].effective = data[1].permitted;
    (void)::syscall(SYS_capset, &header, data);  // failing leaves the old set; errors name what is missing
}
}  // namespace

int main(int argc, char** argv) {
    raise_permitted_capabilities();
    CLI::App app{"sidetap: dnstap from observed DNS traffic (pcap files, live capture)", "sidetap"};
    app.set_version_flag("--version", version_text, "Print the version, commit, capture frontends and library "
                                                    "versions, and exit");
    app.require_subcommand(1);
    app.footer(kExitCodes);
    auto run_replay = sidetap::cli::add_replay_command(app);
    auto run_read = sidetap::cli::add_read_command(app);
    auto run_listen = sidetap::cli::add_listen_command(app);
    auto run_capture = sidetap::cli::add_capture_command(app);
    const sidetap::cli::ConfigFile config(app);
    app.failure_message([&config](const CLI::App*, const CLI::Error& e) {
        return std::string("sidetap: ") + e.what() + config.origin(e.what()) +
               "\nRun with --help for more information.\n";
    });
    // Hidden: the build renders the manual page sidetap(1) with it.
    if (argc == 2 && std::strcmp(argv[1], "--help-man") == 0) {
        sidetap::cli::write_man_page(app, SIDETAP_VERSION, kExitCodes, std::cout);
        return std::cout.good() ? sidetap::util::kExitOk : sidetap::util::kExitRuntime;
    }
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
        std::fprintf(stderr, "sidetap: %s%s\n", e.what(), config.origin(e.what()).c_str());
        return e.exit_code();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sidetap: %s\n", e.what());
        return sidetap::util::kExitRuntime;
    }
}
