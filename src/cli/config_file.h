// Configuration files: `--config FILE` for every subcommand.
//
// Every option of a subcommand can be set in the file under its long name
// without the dashes (`query-timeout = "5s"`, `no-wire = true`); options
// that repeat on the command line (-w, -p, -i, --server-addr...) take a list
// (`output = ["a.dnstap", "tcp://c:6000?types=CQ,CR"]`); the positional
// FILE arguments are `file = [...]`. A value given on the command line
// replaces the file's value for that option (lists are replaced, not
// merged). TOML is the format; a file whose name ends in .ini is read as
// INI (`;` comments, lists separated by spaces). CLI11 reads both.
//
//   sidetap capture --config FILE   keys at the top level of FILE, or in a
//                                   [capture] section;
//   sidetap --config FILE           FILE has exactly one [replay],
//                                   [capture], [read] or [listen] section,
//                                   and that is the subcommand that runs
//                                   (what the systemd template unit does).
//
// Usage errors (exit 2, through CLI::ParseError): a key that is no option of
// the subcommand (named, with the file), a key given twice, a section of
// another subcommand, a value the option refuses (CLI11's validators), a
// file that cannot be read, --config given twice.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

namespace sidetap::cli {

class ConfigFormat;

class ConfigFile {
public:
    // Registers --config on `app` and on each of its subcommands; call once
    // every subcommand has been added.
    explicit ConfigFile(CLI::App& app);

    // For errors found after parsing ("--query-timeout: 'x' is not a
    // duration"): " (set in FILE)" when the first --option that `message`
    // names got its value from the configuration file, else "".
    [[nodiscard]] std::string origin(const std::string& message) const;

private:
    std::shared_ptr<ConfigFormat> format_;
};

}  // namespace sidetap::cli
