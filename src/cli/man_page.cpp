#include "cli/man_page.h"

#include <sstream>
#include <vector>

namespace sidetap::cli {

namespace {

// Text for roff: backslashes and dashes escaped (\- is an ASCII '-' you can
// paste back into a shell), and a control character at the start of a line
// made literal; optional break points after & , and |.
std::string roff(const std::string& text) {
    std::string out;
    bool line_start = true;
    for (const char c : text) {
        if (line_start && (c == '.' || c == '\'')) out += "\\&";
        line_start = c == '\n';
        if (c == '\\') {
            out += "\\e";
        } else if (c == '-') {
            out += "\\-";
        } else {
            out += c;
            // Break points in long words (URI parameter lists), so that
            // no line overflows at 80 columns.
            if (c == '&' || c == ',' || c == '|') out += "\\:";
        }
    }
    return out;
}

std::vector<const CLI::App*> subcommands(const CLI::App& app) {
    return app.get_subcommands([](const CLI::App*) { return true; });
}

bool repeatable(const CLI::Option& op) {
    return op.get_expected_max() > 1 || op.get_multi_option_policy() == CLI::MultiOptionPolicy::TakeAll;
}

// The argument placeholder without CLI11's validator text ("UINT:INT in
// [1 - 65535]" -> "UINT"); the help text says what is accepted.
std::string argument(const CLI::Option& op) {
    auto type = op.get_type_name();
    if (const auto colon = type.find(':'); colon != std::string::npos) type.resize(colon);
    return type.empty() ? "VALUE" : type;
}

void write_option(const CLI::Option& op, std::ostream& out) {
    if (op.get_group().empty()) return;  // hidden
    out << ".TP\n";
    std::string names;
    for (const auto& s : op.get_snames()) names += (names.empty() ? "" : ", ") + std::string("\\fB\\-") + roff(s) + "\\fR";
    for (const auto& l : op.get_lnames())
        names += (names.empty() ? "" : ", ") + std::string("\\fB\\-\\-") + roff(l) + "\\fR";
    if (names.empty()) {
        names = "\\fI" + roff(op.get_name(true)) + "\\fR";
        if (repeatable(op)) names += "...";
    } else if (op.get_expected_min() > 0 || op.get_expected_max() > 0) {
        names += " \\fI" + roff(argument(op)) + "\\fR";
    }
    out << names << "\n";
    std::string text = op.get_description();
    if (!text.empty() && text.back() != '.') text += '.';
    if (repeatable(op) && !op.get_lnames().empty()) text += " May be repeated (a list in a configuration file).";
    if (op.get_required()) text += " Required.";
    if (const auto def = op.get_default_str(); !def.empty() && def != "[]") text += " Default: " + def + ".";
    out << roff(text) << "\n";
}

constexpr const char* kDescription =
    "sidetap turns DNS traffic that it observes on the wire into dnstap (the DNS log format of BIND, Knot, "
    "Unbound and others), for DNS servers that cannot or should not emit it themselves. It reads packets from "
    "pcap and pcapng files (replay), from a live interface through libpcap or from eBPF hooks in the kernel "
    "(capture), rebuilds the DNS messages (IP fragments, DNS over TCP, tunnels), pairs queries with "
    "responses, and writes dnstap in Frame Streams format to files, Unix sockets, TCP or TLS collectors. It "
    "also reads dnstap back (read) and receives it from other writers (listen).";

constexpr const char* kConfiguration =
    "Every subcommand reads options from a file given with --config FILE. The file is TOML; a file whose "
    "name ends in .ini is read as INI. A key is an option's long name without the leading dashes "
    "(query-timeout = \"5s\", no-wire = true); the FILE arguments of replay and read are file = [...]. "
    "Options that can be repeated on the command line take a list, e.g. output = [\"/var/lib/sidetap/dns.dnstap\", "
    "\"tcp://collector:6000?types=CQ,CR&wire=no\"]: each output keeps its own URI parameters. "
    "A value on the command line replaces the file's value of the same option (lists are replaced, not "
    "merged).\n"
    "With sidetap SUBCOMMAND --config FILE the keys are at the top level of the file or in a section named "
    "after the subcommand ([capture]). With sidetap --config FILE the file has exactly one [replay], "
    "[capture], [read] or [listen] section, and that subcommand runs; the systemd unit sidetap@NAME.service "
    "runs sidetap --config /etc/sidetap/NAME.toml.\n"
    "An unknown key, a key given twice, a section of another subcommand or a value the option refuses is a "
    "usage error (exit status 2) that names the key and the file.";

constexpr const char* kSignals =
    "SIGINT, SIGTERM: stop reading, drain the outputs (at most --drain-timeout), write the Frame Streams STOP "
    "frame (and wait for FINISH on sockets), print the summary and exit; a second signal exits at once with "
    "status 130.\n"
    "SIGHUP: reopen output files (after logrotate moved them).";

}  // namespace

void write_man_page(const CLI::App& app, const std::string& version, const std::string& exit_codes,
                    std::ostream& out) {
    out << ".\\\" Generated by sidetap --help-man from the command-line definitions; do not edit.\n";
    out << ".TH SIDETAP 1 \"\" \"sidetap " << roff(version) << "\" \"User Commands\"\n";
    // Left-aligned, no hyphenation: option lists and URIs are long words
    // that cannot be justified, and must be copied as they are.
    out << ".ad l\n.nh\n";
    out << ".SH NAME\nsidetap \\- dnstap from observed DNS traffic\n";

    out << ".SH SYNOPSIS\n";
    for (const auto* sub : subcommands(app)) {
        out << ".B sidetap " << roff(sub->get_name()) << "\n[\\fIoptions\\fR]";
        for (const auto* op : sub->get_options())
            if (op->get_positional() && op->get_lnames().empty() && op->get_snames().empty())
                out << " \\fI" << roff(op->get_name(true)) << "\\fR" << (repeatable(*op) ? "..." : "");
        out << "\n.br\n";
    }
    out << ".B sidetap \\-\\-config\n\\fIFILE\\fR [\\fIoptions\\fR]\n.br\n";
    out << ".B sidetap \\-\\-version\n.br\n";
    out << ".B sidetap\n[\\fIsubcommand\\fR] \\fB\\-\\-help\\fR\n";

    out << ".SH DESCRIPTION\n" << roff(kDescription) << "\n";
    out << ".PP\nGeneral options:\n";
    for (const auto* op : app.get_options()) write_option(*op, out);

    out << ".SH COMMANDS\n";
    for (const auto* sub : subcommands(app)) {
        out << ".SS \"sidetap " << roff(sub->get_name()) << "\"\n" << roff(sub->get_description()) << ".\n";
        for (const auto* op : sub->get_options()) write_option(*op, out);
    }

    out << ".SH CONFIGURATION FILES\n";
    std::istringstream config(kConfiguration);
    for (std::string paragraph; std::getline(config, paragraph);) out << ".PP\n" << roff(paragraph) << "\n";

    out << ".SH SIGNALS\n";
    std::istringstream signals(kSignals);
    for (std::string paragraph; std::getline(signals, paragraph);) out << ".PP\n" << roff(paragraph) << "\n";

    out << ".SH EXIT STATUS\n.nf\n";
    std::istringstream codes(exit_codes);
    for (std::string line; std::getline(codes, line);)
        if (line.rfind("Exit codes", 0) != 0) out << roff(line) << "\n";
    out << ".fi\n";

    out << ".SH FILES\n"
           ".TP\n\\fI/etc/sidetap/\\fR\\fINAME\\fR\\fI.toml\\fR\n"
           "Configuration of the systemd instance sidetap@NAME.service (sidetap.toml for sidetap.service).\n"
           ".TP\n\\fI/usr/share/doc/sidetap/examples/\\fR\n"
           "Example configurations: a replay batch job, capture on a host interface, an eBPF cgroup capture, a "
           "listen collector with TLS, a Kubernetes pod sidecar; the Kubernetes manifests.\n"
           ".TP\n\\fI/usr/share/sidetap/grafana/sidetap.json\\fR\n"
           "A Grafana dashboard for the \\-\\-metrics counters.\n"
           ".TP\n\\fI/var/lib/sidetap/\\fR, \\fI/var/log/sidetap/\\fR\n"
           "Where the systemd units let sidetap write output files.\n";
    out << ".SH SEE ALSO\n.BR pcap\\-filter (7),\n.BR systemd.exec (5),\n"
           ".UR https://dnstap.info\n.UE\n";
}

}  // namespace sidetap::cli
