// Pipeline: the packet path from a captured packet to dnstap frames.
//
//   Packet -> decode (link, IP) -> [IP fragments] -> transport (UDP/TCP)
//          -> classify (server side, direction) -> encode -> outputs
//
// Contract:
//  - process() handles one packet completely; it does not allocate, throw or
//    do I/O beyond handing frames to the outputs (which buffer or queue).
//  - Everything that does not become a frame is counted by name.
//  - finish() closes every output (STOP frames) and is idempotent.
//  - Single-threaded: one pipeline per capture thread.
#pragma once

#include "capture/packet_source.h"
#include "decode/decoder.h"
#include "dnstap/encoder.h"
#include "output/output.h"
#include "pairing/classifier.h"

#include <array>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <vector>

namespace sidetap::pipeline {

struct PipelineConfig {
    pairing::ClassifierConfig classifier;
    dnstap::Envelope envelope;
};

struct PipelineStats {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    std::uint64_t udp_datagrams = 0;
    std::uint64_t tcp_segments = 0;
    // Not handled yet: IP fragments and DNS over TCP need reassembly.
    std::uint64_t ip_fragments_skipped = 0;
    std::uint64_t tcp_segments_skipped = 0;
    std::uint64_t dns_queries = 0;
    std::uint64_t dns_responses = 0;
    std::uint64_t frames_encoded = 0;
};

class Pipeline {
public:
    Pipeline(const PipelineConfig& config, std::vector<std::unique_ptr<output::Output>> outputs);
    ~Pipeline();
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;

    void process(const capture::Packet& packet);
    void finish();

    // True when any output failed (for the exit code).
    [[nodiscard]] bool output_failed() const;
    [[nodiscard]] const PipelineStats& stats() const { return stats_; }
    [[nodiscard]] const decode::Decoder& decoder() const { return decoder_; }
    [[nodiscard]] const pairing::Classifier& classifier() const { return classifier_; }
    [[nodiscard]] const std::vector<std::unique_ptr<output::Output>>& outputs() const { return outputs_; }

    // The stats summary: "key=value" lines on `out`.
    void report(std::FILE* out) const;

private:
    void handle_udp(const decode::Segment& segment);
    void emit(const dns::DnsMessage& message);
    void warn_unknown_link_type(std::uint32_t link_type);

    decode::Decoder decoder_;
    pairing::Classifier classifier_;
    dnstap::Encoder encoder_;
    std::vector<std::unique_ptr<output::Output>> outputs_;
    PipelineStats stats_;
    dns::DnsMessage message_;  // reused for every message
    std::array<std::uint32_t, 16> warned_link_types_{};
    std::size_t warned_count_ = 0;
    bool finished_ = false;
};

}  // namespace sidetap::pipeline
