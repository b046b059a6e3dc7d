// The manual page sidetap(1), rendered in roff from the CLI11 app itself:
// every subcommand and every option (names, argument, default, help text)
// comes from the same registration that parses the command line and the
// configuration file, so the page cannot drift from --help. The build runs
// `sidetap --help-man` to make the installed page.
#pragma once

#include <CLI/CLI.hpp>

#include <ostream>
#include <string>

namespace sidetap::cli {

// `exit_codes`: the text of the EXIT STATUS section (the --help footer).
void write_man_page(const CLI::App& app, const std::string& version, const std::string& exit_codes,
                    std::ostream& out);

}  // namespace sidetap::cli
