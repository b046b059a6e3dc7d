#include "output/route.h"

#include <algorithm>

namespace sidetap::output {

void report_routes(std::FILE* out, const std::vector<OutputRoute>& routes) {
    auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
    for (const auto& r : routes) {
        const auto s = r.output->stats();
        std::fprintf(out,
                     "sidetap: output %s frames_written=%llu bytes=%llu dropped=%llu too_large=%llu errors=%llu "
                     "reconnects=%llu open_failures=%llu unconfirmed=%llu%s\n",
                     r.output->name().c_str(), u(s.frames_written), u(s.bytes_written), u(s.frames_dropped),
                     u(s.frames_too_large), u(s.write_errors), u(s.reconnects), u(s.open_failures),
                     u(s.frames_unconfirmed), s.failed ? " FAILED" : "");
    }
}

bool any_failed(const std::vector<OutputRoute>& routes) {
    // Failed: gave up, or ended with frames it could not deliver. A
    // connection that dropped and came back is not a failure, but it may
    // have lost what the collector accepted and never read (Frame Streams
    // has no acknowledgements): that shows as unconfirmed.
    return std::any_of(routes.begin(), routes.end(), [](const auto& r) { return r.output->stats().failed; });
}

}  // namespace sidetap::output
