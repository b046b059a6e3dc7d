// Options shared by `read` and `listen`: output format, filters, frame size.
#pragma once

#include "cli/common_options.h"
#include "relay/relay.h"

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

namespace sidetap::cli {

struct ReaderOptions {
    OutputOptions output;
    std::string format;  // text|yaml|json|dnstap; default: dnstap with -w, else text
    std::vector<std::string> qnames;
    std::vector<std::string> clients;
    std::string max_frame_size = "1M";
};

void add_reader_options(CLI::App& cmd, ReaderOptions& options, const char* default_on_full);

// Builds the relay the options describe. Text goes to stdout, or to the one
// file given with -w. Throws util::FatalError (exit 2) for bad values.
std::unique_ptr<relay::Relay> make_relay(const ReaderOptions& options, std::FILE*& text_file);

std::size_t max_frame_size(const ReaderOptions& options);

}  // namespace sidetap::cli
