#include "cli/replay_command.h"

#include "capture/pcap_file_source.h"
#include "cli/common_options.h"
#include "cli/signals.h"
#include "output/file_output.h"
#include "pipeline/pipeline.h"
#include "util/error.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <unistd.h>

namespace sidetap::cli {

namespace {

struct ReplayOptions {
    CaptureOptions capture;
    OutputOptions output;
    std::vector<std::string> files;
};

// Progress on a terminal: one line, rewritten at most 4 times a second.
class ProgressLine {
public:
    explicit ProgressLine(bool enabled) : enabled_(enabled) {}
    void update(const std::string& file, const capture::PacketSource& source, std::uint64_t packets) {
        if (!enabled_ || (packets & 0x3fff) != 0) return;
        const auto now = std::chrono::steady_clock::now();
        if (now - last_ < std::chrono::milliseconds(250)) return;
        last_ = now;
        const auto total = source.bytes_total();
        const double pct = total ? 100.0 * static_cast<double>(source.bytes_read()) / static_cast<double>(total) : 0.0;
        std::fprintf(stderr, "\rsidetap: %s %5.1f%% %llu packets", file.c_str(), pct,
                     static_cast<unsigned long long>(packets));
        shown_ = true;
    }
    void clear() {
        if (shown_) std::fprintf(stderr, "\r\033[K");
        shown_ = false;
    }

private:
    bool enabled_;
    bool shown_ = false;
    std::chrono::steady_clock::time_point last_{};
};

int run_replay(const ReplayOptions& options) {
    auto config = make_pipeline_config(options.capture, options.output);
    // The outputs outlive the pipeline that writes into them.
    const auto routes = open_outputs(options.output);
    pipeline::Pipeline pipeline(config, routes);
    install_stop_handlers();

    // Every output gave up (stdout into `| head`): reading on is wasted.
    const auto all_outputs_failed = [&routes] {
        return !routes.empty() &&
               std::all_of(routes.begin(), routes.end(), [](const auto& r) { return r.output->stats().failed; });
    };
    bool input_failed = false;
    ProgressLine progress(!options.output.quiet && ::isatty(STDERR_FILENO));
    for (const auto& file : options.files) {
        if (stop_requested() || all_outputs_failed()) break;
        std::unique_ptr<capture::PacketSource> source;
        try {
            source = capture::open_capture_file(file);
        } catch (const util::FatalError& e) {
            std::fprintf(stderr, "sidetap: %s\n", e.what());
            input_failed = true;
            continue;
        }
        // {file}: the base name, as the user would look for it.
        const auto slash = file.find_last_of('/');
        pipeline.set_file(slash == std::string::npos ? file : file.substr(slash + 1));
        capture::Packet packet;
        std::uint64_t packets = 0;
        capture::PacketSource::Status status;
        while ((status = source->next(packet)) == capture::PacketSource::Status::Packet) {
            pipeline.process(packet);
            progress.update(file, *source, ++packets);
            if (stop_requested() || ((packets & 0xfff) == 0 && all_outputs_failed())) break;
            if (take_reopen_request())
                for (const auto& route : routes) route.output->request_reopen();
        }
        progress.clear();
        if (status == capture::PacketSource::Status::Error) {
            std::fprintf(stderr, "sidetap: %s\n", source->error().c_str());
            input_failed = true;
        }
    }
    pipeline.finish();
    for (const auto& route : routes) route.output->close();
    if (!options.output.quiet) {
        pipeline.report(stderr);
        output::report_routes(stderr, routes);
    }
    // A clean stop (SIGINT/SIGTERM) is 0 only when no output failed.
    if (output::any_failed(routes)) return util::kExitRuntime;
    return input_failed && !stop_requested() ? util::kExitRuntime : util::kExitOk;
}

}  // namespace

std::function<int()> add_replay_command(CLI::App& app) {
    auto options = std::make_shared<ReplayOptions>();
    auto* cmd = app.add_subcommand("replay", "Turn pcap/pcapng captures into dnstap (Frame Streams)");
    add_capture_options(*cmd, options->capture);
    add_envelope_options(*cmd, options->output);
    add_output_options(*cmd, options->output, "block");
    cmd->add_option("FILE", options->files, "pcap or pcapng files, replayed in order")->required();
    return [options] { return run_replay(*options); };
}

}  // namespace sidetap::cli
