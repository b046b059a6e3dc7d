#include "cli/read_command.h"

#include "cli/read_options.h"
#include "cli/signals.h"
#include "framestream/reader.h"
#include "util/error.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace sidetap::cli {

namespace {

struct ReadOptions {
    ReaderOptions reader;
    std::vector<std::string> files;
};

int run_read(const ReadOptions& options) {
    std::FILE* text_file = nullptr;
    auto relay = make_relay(options.reader, text_file);
    const auto frame_limit = max_frame_size(options.reader);
    install_stop_handlers();
    bool input_failed = false;
    for (const auto& file : options.files) {
        if (stop_requested()) break;
        const int fd = file == "-" ? STDIN_FILENO : ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            std::fprintf(stderr, "sidetap: cannot open %s: %s\n", file.c_str(), std::strerror(errno));
            input_failed = true;
            continue;
        }
        framestream::Reader reader(fd, {.max_frame_size = frame_limit});
        std::span<const std::uint8_t> frame;
        framestream::ReadStatus status;
        while ((status = reader.next(frame)) == framestream::ReadStatus::Frame) {
            relay->on_frame(frame);
            if (stop_requested()) break;
        }
        if (status == framestream::ReadStatus::Error) {
            std::fflush(text_file ? text_file : stdout);
            std::fprintf(stderr, "sidetap: %s: %s\n", file.c_str(), reader.error().c_str());
            input_failed = true;
        }
        if (fd != STDIN_FILENO) ::close(fd);
    }
    relay->finish();
    if (text_file && text_file != stdout) std::fclose(text_file);
    if (!options.reader.output.quiet) relay->report(stderr);
    if (stop_requested()) return util::kExitOk;
    return (input_failed || relay->output_failed()) ? util::kExitRuntime : util::kExitOk;
}

}  // namespace

std::function<int()> add_read_command(CLI::App& app) {
    auto options = std::make_shared<ReadOptions>();
    auto* cmd = app.add_subcommand("read", "Read dnstap files: print them (text/yaml/json) or filter them into outputs");
    add_reader_options(*cmd, options->reader, "block");
    cmd->add_option("FILE", options->files, "Frame Streams dnstap files (- for stdin), read in order")->required();
    return [options] { return run_read(*options); };
}

}  // namespace sidetap::cli
