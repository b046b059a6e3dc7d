#include "cli/read_options.h"

#include "output/text_stream.h"

#include "util/error.h"
#include "util/units.h"

#include <cerrno>
#include <cstring>

namespace sidetap::cli {

void add_reader_options(CLI::App& cmd, ReaderOptions& options, const char* default_on_full) {
    add_output_options(cmd, options.output, default_on_full);
    options.output.destinations.clear();
    cmd.add_option("--format", options.format,
                   "text (golang-dnstap's quiet text), yaml, json, or dnstap (Frame Streams). Default: dnstap "
                   "when -w is given, else text")
        ->check(CLI::IsMember({"text", "yaml", "json", "dnstap"}));
    cmd.add_option("--qname", options.qnames, "Only messages whose question name is at or below NAME (repeatable)")
        ->expected(1)
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    cmd.add_option("--client", options.clients,
                   "Only messages whose client (query_address) is in PREFIX, e.g. 192.0.2.0/24 (repeatable)")
        ->expected(1)
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    cmd.add_option("--max-frame-size", options.max_frame_size, "Largest data frame accepted (default 1M)")
        ->capture_default_str();
}

std::size_t max_frame_size(const ReaderOptions& options) {
    return size_option("--max-frame-size", options.max_frame_size, 64, 256u << 20);
}

std::unique_ptr<relay::Relay> make_relay(const ReaderOptions& options, std::FILE*& text_file) {
    present::Filter filter;
    std::string error;
    if (!options.output.types.empty() && !filter.add_types(options.output.types, error))
        throw util::FatalError("--types: " + error, util::kExitUsage);
    for (const auto& q : options.qnames)
        if (!filter.add_qname_suffix(q, error)) throw util::FatalError("--qname: " + error, util::kExitUsage);
    for (const auto& c : options.clients)
        if (!filter.add_client(c, error)) throw util::FatalError("--client: " + error, util::kExitUsage);

    const auto& dests = options.output.destinations;
    const std::string format = !options.format.empty() ? options.format : (dests.empty() ? "text" : "dnstap");
    if (format == "dnstap") {
        auto output = options.output;
        if (output.destinations.empty()) output.destinations = {"-"};
        // The type filter already applied to every frame above.
        output.types.clear();
        return std::make_unique<relay::Relay>(std::move(filter), open_outputs(output));
    }
    if (dests.size() > 1) throw util::FatalError("text formats write to one place: give -w at most once", util::kExitUsage);
    text_file = output::open_text_stream(dests.empty() ? "-" : dests[0]);
    return std::make_unique<relay::Relay>(std::move(filter), *present::parse_format(format), text_file);
}

}  // namespace sidetap::cli
