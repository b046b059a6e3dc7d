// The output part of the periodic stats line and of the --metrics samples,
// one definition for every command that has outputs (capture, listen).
#pragma once

#include "metrics/metrics.h"
#include "output/route.h"

#include <cstdio>
#include <vector>

namespace sidetap::cli {

// Per output (label output="<name>"): output_frames_written,
// output_bytes_written, output_frames_dropped, output_frames_too_large,
// output_write_errors, output_reconnects, output_open_failures (counters);
// output_queue_depth, output_connected, output_failed (gauges).
void append_output_samples(const std::vector<output::OutputRoute>& routes, std::vector<metrics::Sample>& samples);

// Per output: " | output NAME queue=N dropped=N written=N" plus " FAILED"
// or " disconnected"; no newline.
void print_output_stats(std::FILE* out, const std::vector<output::OutputRoute>& routes);

}  // namespace sidetap::cli
