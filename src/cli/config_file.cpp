#include "cli/config_file.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>
#include <vector>

namespace sidetap::cli {

namespace {

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
    return text;
}

bool ends_with(const std::string& text, const std::string& suffix) {
    return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The option a key names: --KEY, -K (one letter), or a positional by its
// name in any case (FILE -> `file`).
CLI::Option* option_for_key(CLI::App& command, const std::string& key) {
    if (key.empty() || key.front() == '-') return nullptr;
    if (auto* op = command.get_option_no_throw("--" + key)) return op;
    if (key.size() == 1)
        if (auto* op = command.get_option_no_throw("-" + key)) return op;
    for (auto* op : command.get_options())
        if (op->get_positional() && op->get_lnames().empty() && op->get_snames().empty() &&
            lower(op->get_name(true)) == lower(key))
            return op;
    return nullptr;
}

CLI::App* find_subcommand(CLI::App& app, const std::string& name) {
    for (auto* sub : app.get_subcommands([](CLI::App*) { return true; }))
        if (sub->get_name() == name) return sub;
    return nullptr;
}

std::string subcommand_list(const CLI::App& app) {
    std::string list;
    const auto subs = app.get_subcommands([](const CLI::App*) { return true; });
    for (std::size_t i = 0; i < subs.size(); ++i) {
        if (i != 0) list += i + 1 == subs.size() ? " or " : ", ";
        list += "[" + subs[i]->get_name() + "]";
    }
    return list;
}

// CLI11 reads a line at a time: it cuts a value at the first comment
// character even inside a string, and a list must start on the key's line
// with '[' followed by something. Rewrites the text so that every key is one
// line: comments outside strings removed, lists spanning lines joined,
// a trailing comma before ']' dropped (all valid TOML).
std::string one_line_per_key(std::istream& input, char comment) {
    std::string out;
    std::string pending;  // a list still open
    int depth = 0;
    for (std::string line; std::getline(input, line);) {
        std::string kept;
        char quote = 0;
        for (std::size_t i = 0; i < line.size(); ++i) {
            const char c = line[i];
            if (quote) {
                if (c == '\\' && quote == '"' && i + 1 < line.size()) {
                    kept += c;
                    kept += line[++i];
                    continue;
                }
                if (c == quote) quote = 0;
            } else if (c == '"' || c == '\'') {
                quote = c;
            } else if (c == comment || c == '#') {
                break;
            } else if (depth > 0 || kept.find('=') != std::string::npos) {
                if (c == '[') ++depth;
                if (c == ']' && depth > 0) --depth;
            }
            kept += c;
        }
        pending += (pending.empty() ? "" : " ") + kept;
        if (depth > 0) continue;
        // "a, b, ]" -> "a, b ]"
        for (auto at = pending.find(']'); at != std::string::npos; at = pending.find(']', at + 1)) {
            auto before = pending.find_last_not_of(" \t", at == 0 ? 0 : at - 1);
            if (before != std::string::npos && pending[before] == ',') pending.erase(before, 1), --at;
        }
        out += pending + "\n";
        pending.clear();
    }
    return out + pending;
}

}  // namespace

// Reads the file with CLI11's TOML or INI reader, then checks every key
// against the subcommand that runs and rewrites the items so that CLI11
// applies them to that subcommand.
class ConfigFormat : public CLI::Config {
public:
    explicit ConfigFormat(CLI::App& app) : app_(app) {}

    std::string to_config(const CLI::App* app, bool default_also, bool write_description,
                          std::string prefix) const override {
        return CLI::ConfigTOML().to_config(app, default_also, write_description, std::move(prefix));
    }

    std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
        const auto files = app_.get_config_ptr()->results();
        if (files.size() > 1) throw CLI::ConfigError("--config: given more than once; give one file");
        file_ = files.empty() ? std::string("the configuration file") : files.front();
        const bool ini = ends_with(lower(file_), ".ini");
        std::istringstream text(one_line_per_key(input, ini ? ';' : '#'));
        auto parsed = ini ? CLI::ConfigINI().from_config(text) : CLI::ConfigTOML().from_config(text);

        // The subcommand: the one on the command line, or the file's one section.
        CLI::App* command = nullptr;
        const bool named_on_command_line = !app_.get_subcommands().empty();
        if (named_on_command_line) {
            command = app_.get_subcommands().front();
        } else {
            for (const auto& item : parsed) {
                if (item.parents.empty()) continue;
                auto* sub = find_subcommand(app_, item.parents.front());
                if (!sub) throw error("unknown section [" + item.parents.front() + "]; sections are " +
                                      subcommand_list(app_));
                if (command && command != sub)
                    throw error("has sections [" + command->get_name() + "] and [" + sub->get_name() +
                                "]; one file configures one subcommand");
                command = sub;
            }
            if (!command)
                throw error("has no " + subcommand_list(app_) +
                            " section: name the subcommand on the command line (sidetap capture --config " +
                            file_ + ") or put the keys in its section");
        }

        std::vector<CLI::ConfigItem> out;
        std::set<const CLI::Option*> seen;
        if (!named_on_command_line) {
            // Opening the section makes CLI11 count the subcommand as given.
            out.push_back({{command->get_name()}, "++", {}});
        }
        for (auto item : parsed) {
            if (item.name == "++" || item.name == "--") continue;  // CLI11's section markers
            if (!item.parents.empty()) {
                if (item.parents.size() > 1 || !find_subcommand(app_, item.parents.front()))
                    throw error("unknown key '" + item.fullname() + "' for sidetap " + command->get_name());
                if (item.parents.front() != command->get_name())
                    throw error("section [" + item.parents.front() + "] does not apply to sidetap " +
                                command->get_name());
            } else if (!named_on_command_line) {
                throw error("key '" + item.name + "' is outside the [" + command->get_name() + "] section");
            }
            auto* op = option_for_key(*command, item.name);
            if (!op)
                throw error("unknown key '" + item.name + "' for sidetap " + command->get_name() +
                            " (keys are the long option names of sidetap " + command->get_name() + " --help)");
            if (!op->get_configurable())
                throw error("'" + item.name + "' cannot be set in a configuration file");
            if (!seen.insert(op).second)
                throw error("key '" + item.name + "' is given twice");
            if (op->empty()) applied_.insert(op->get_lnames().empty() ? op->get_name(true) : op->get_lnames().front());
            item.parents = {command->get_name()};
            item.name = op->get_positional() && op->get_lnames().empty() ? op->get_name(true) : item.name;
            out.push_back(std::move(item));
        }
        if (!named_on_command_line) out.push_back({{command->get_name()}, "--", {}});
        return out;
    }

    std::string origin(const std::string& message) const {
        const auto at = message.find("--");
        if (at == std::string::npos || applied_.empty()) return {};
        auto end = at + 2;
        while (end < message.size() && (std::isalnum(static_cast<unsigned char>(message[end])) || message[end] == '-'))
            ++end;
        const auto name = message.substr(at + 2, end - at - 2);
        return applied_.count(name) != 0 ? " (set in " + file_ + ")" : std::string();
    }

private:
    CLI::ConfigError error(const std::string& what) const {
        return CLI::ConfigError("config file " + file_ + ": " + what);
    }

    CLI::App& app_;
    mutable std::string file_;
    mutable std::set<std::string> applied_;  // long names of options the file set
};

ConfigFile::ConfigFile(CLI::App& app) : format_(std::make_shared<ConfigFormat>(app)) {
    auto* top = app.set_config("--config", "",
                               "Read options from a TOML file (INI if it ends in .ini) whose one [replay], "
                               "[capture], [read] or [listen] section names the subcommand");
    top->type_name("FILE");
    app.config_formatter(format_);
    for (auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
        // Only the top level's --config is read by CLI11 (before the
        // requirements are checked); the subcommand's forwards its value there.
        sub->configurable(true);
        sub->add_option("--config")
            ->description(std::string("Read options from a TOML file (INI if it ends in .ini): keys are long option names, at the "
                        "top level or in a [") +
                            sub->get_name() + "] section; the command line overrides the file")
            ->type_name("FILE")
            ->configurable(false)
            ->trigger_on_parse()
            ->each([top](const std::string& file) { top->add_result(file); });
    }
}

std::string ConfigFile::origin(const std::string& message) const { return format_->origin(message); }

}  // namespace sidetap::cli
