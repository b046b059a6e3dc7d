// Relay: where dnstap frames read back (from files or a listener) go —
// filtered, then printed as text/YAML/JSON or sent on as dnstap through the
// output stack.
//
// Contract:
//  - on_frame() takes one data frame (a serialized dnstap.Dnstap). A frame
//    that does not decode is counted (malformed) and skipped; one the
//    filter rejects is counted (filtered). Otherwise it is formatted onto
//    the text stream, or handed to every route whose type set includes its
//    message type — unchanged, or re-encoded without the DNS message bytes
//    for routes with wire = false.
//  - Text goes to a FILE* with a large buffer; a slow reader of that stream
//    slows the relay down (backpressure), nothing is dropped.
//  - Not thread-safe: one thread calls on_frame() (the listener serializes
//    its connections onto one relay thread).
//  - finish() flushes text and closes the routes (STOP on dnstap outputs).
#pragma once

#include "output/route.h"
#include "present/filter.h"
#include "present/formatter.h"

#include "dnstap.pb.h"

#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace sidetap::relay {

struct RelayStats {
    std::uint64_t frames = 0;
    std::uint64_t malformed = 0;
    std::uint64_t filtered = 0;
    std::uint64_t printed = 0;
    std::uint64_t relayed = 0;
};

class Relay {
public:
    // Text mode: `text` is where formatted records go (not owned).
    Relay(present::Filter filter, present::Format format, std::FILE* text);
    // dnstap mode: frames go to the routes.
    Relay(present::Filter filter, std::vector<output::OutputRoute> routes);
    ~Relay();
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    void on_frame(std::span<const std::uint8_t> frame);
    void finish();

    [[nodiscard]] const RelayStats& stats() const { return stats_; }
    [[nodiscard]] const std::vector<output::OutputRoute>& routes() const { return routes_; }
    [[nodiscard]] bool output_failed() const;
    void report(std::FILE* out) const;

private:
    present::Filter filter_;
    std::optional<present::Formatter> formatter_;
    std::FILE* text_ = nullptr;
    std::vector<output::OutputRoute> routes_;
    ::dnstap::Dnstap message_;
    std::string text_buffer_;
    std::vector<std::uint8_t> bare_;  // re-encoded frame without wire bytes
    RelayStats stats_;
    bool finished_ = false;
};

}  // namespace sidetap::relay
