#include "cli/output_stats.h"

#include <string>
#include <utility>

namespace sidetap::cli {

void append_output_samples(const std::vector<output::OutputRoute>& routes, std::vector<metrics::Sample>& samples) {
    using metrics::Kind;
    for (const auto& route : routes) {
        const auto s = route.output->stats();
        const std::vector<std::pair<std::string, std::string>> label{{"output", route.output->name()}};
        samples.push_back({"output_frames_written", Kind::Counter, label, s.frames_written});
        samples.push_back({"output_bytes_written", Kind::Counter, label, s.bytes_written});
        samples.push_back({"output_frames_dropped", Kind::Counter, label, s.frames_dropped});
        samples.push_back({"output_frames_too_large", Kind::Counter, label, s.frames_too_large});
        samples.push_back({"output_write_errors", Kind::Counter, label, s.write_errors});
        samples.push_back({"output_reconnects", Kind::Counter, label, s.reconnects});
        samples.push_back({"output_open_failures", Kind::Counter, label, s.open_failures});
        samples.push_back({"output_frames_unconfirmed", Kind::Counter, label, s.frames_unconfirmed});
        samples.push_back({"output_queue_depth", Kind::Gauge, label, s.queue_depth});
        samples.push_back({"output_connected", Kind::Gauge, label, s.connected ? 1u : 0u});
        samples.push_back({"output_failed", Kind::Gauge, label, s.failed ? 1u : 0u});
    }
}

void print_output_stats(std::FILE* out, const std::vector<output::OutputRoute>& routes) {
    using u64 = unsigned long long;
    for (const auto& route : routes) {
        const auto s = route.output->stats();
        std::fprintf(out, " | output %s queue=%llu dropped=%llu written=%llu unconfirmed=%llu%s",
                     route.output->name().c_str(), u64(s.queue_depth), u64(s.frames_dropped), u64(s.frames_written),
                     u64(s.frames_unconfirmed),
                     s.failed ? " FAILED" : (s.connected ? "" : " disconnected"));
    }
}

}  // namespace sidetap::cli
