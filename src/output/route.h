// OutputRoute: one output and what it receives — a set of dnstap message
// types and whether frames carry the DNS message bytes. Built by the
// command line (cli/common_options), used by everything that hands frames
// to outputs (the capture pipeline, the relay of read/listen).
#pragma once

#include "dnstap/extra_template.h"
#include "dnstap/message_type.h"
#include "output/output.h"

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <vector>

namespace sidetap::output {

struct OutputRoute {
    static constexpr std::uint32_t kAllTypes = dnstap::kAllMessageTypes;
    std::unique_ptr<Output> output;
    std::uint32_t types = kAllTypes;  // bit 1 << dnstap message type
    bool wire = true;                 // query_message / response_message included
    // ?extra=: this output's extra template instead of the pipeline's
    // (--extra); outputs with equal templates share one encoding.
    std::optional<dnstap::ExtraTemplate> extra = std::nullopt;
};

// "sidetap: output <name> frames_written=… bytes=… dropped=…" per route.
void report_routes(std::FILE* out, const std::vector<OutputRoute>& routes);

// True when any route's output failed (gave up, or ended with frames it
// could not deliver): what the exit code reports.
bool any_failed(const std::vector<OutputRoute>& routes);

}  // namespace sidetap::output
