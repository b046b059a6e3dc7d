#include "cli/read_command.h"

#include "cli/read_options.h"
#include "cli/signals.h"
#include "output/text_stream.h"
#include "framestream/reader.h"
#include "util/error.h"

#include <algorithm>
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
    // The text stream failed (stdout into `| head`) or every output gave up:
    // reading on is wasted.
    std::uint64_t frames_seen = 0;
    const auto output_gone = [&] {
        if (text_file) return std::ferror(text_file) != 0;
        if ((++frames_seen & 0xfff) != 0) return false;
        const auto& routes = relay->routes();
        return !routes.empty() &&
               std::all_of(routes.begin(), routes.end(), [](const auto& r) { return r.output->stats().failed; });
    };
    bool input_failed = false;
    for (const auto& file : options.files) {
        if (stop_requested() || output_gone()) break;
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
            if (stop_requested() || output_gone()) break;
        }
        if (status == framestream::ReadStatus::Error) {
            std::fflush(text_file ? text_file : stdout);
            std::fprintf(stderr, "sidetap: %s: %s\n", file.c_str(), reader.error().c_str());
            input_failed = true;
        }
        if (fd != STDIN_FILENO) ::close(fd);
    }
    relay->finish();
    const bool text_failed = !output::close_text_stream(text_file);
    if (!options.reader.output.quiet) relay->report(stderr);
    // A clean stop (SIGINT/SIGTERM) is 0 only when no output failed.
    if (text_failed || relay->output_failed()) return util::kExitRuntime;
    return input_failed && !stop_requested() ? util::kExitRuntime : util::kExitOk;
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
