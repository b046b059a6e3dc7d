// Pipeline: the packet path from a captured packet to dnstap frames.
//
//   Packet -> decode (link, IP) -> IP defragmentation -> [tunnels: decapsulate,
//          defragment the inner datagram, again] -> transport (UDP/TCP)
//          -> [TCP stream reassembly] -> classify (server side, direction,
//          role) -> pair (query_time into responses) -> encode -> outputs
//
// Contract:
//  - process() handles one packet completely; it does not allocate in the
//    steady state, throw, or do I/O beyond handing frames to the outputs
//    (encoded straight into their queues).
//  - Outputs belong to the caller: the pipeline writes through its own
//    producer handle of each output (`producer`: one per capture shard) and
//    never closes them; the caller closes them once every pipeline that
//    writes to them has finished.
//  - Everything that does not become a frame is counted by name.
//  - Timers (query and reorder timeouts, TCP idle and close grace, IP
//    fragment timeouts) run on an ExpiryClock driven by packet times, so a
//    replay is deterministic, and robust to damaged timestamps and clock
//    steps (time_discontinuities); advance_idle() moves it on a live source
//    with no packets. Emitted messages keep their packets' own times.
//  - finish() ends the input (flushes reassembly and pairing state, counts
//    what stayed incomplete, emits what was held); it is idempotent.
//  - process_stream() is the stream entry: the plaintext of TLS connections
//    (capture::StreamChunk from a StreamSource) goes through the stream
//    decoder (streams/: DNS over TLS framing, HTTP/2 + HPACK for DNS over
//    HTTPS) and its DNS messages continue like those of the TCP reassembler:
//    classification (direction known: the TLS client sends queries),
//    pairing, encoding (socket_protocol DOT / DOH), the same outputs and
//    counters. Chunks and packets share the expiry clock.
//  - The extra field: the envelope's, or an extra template (config
//    extra_template, or an output's own, OutputRoute::extra) bound to this
//    pipeline's constants ({host}, {cgroup}, {shard} = `producer`). Outputs
//    with equal templates share one encoding; a template with per-message
//    placeholders is rendered per message into a fixed buffer from the
//    message's dns::Origin, which the pipeline fills (only then) from the
//    packet or chunk that completed the message (Packet::interface and
//    ::frame, the datagram's VLAN and tunnel, set_file(), the chunk's pid
//    and comm); names go into a bounded NameTable.
//  - Single-threaded: one pipeline per capture thread. snapshot() copies
//    every counter for another thread to read (several shards are summed).
#pragma once

#include "capture/packet_source.h"
#include "decode/decoder.h"
#include "dnstap/encoder.h"
#include "dnstap/extra_template.h"
#include "output/route.h"
#include "pairing/classifier.h"
#include "pairing/pairer.h"
#include "pipeline/expiry_clock.h"
#include "reassembly/ip_defragmenter.h"
#include "reassembly/tcp_reassembler.h"
#include "streams/stream_decoder.h"

#include <array>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string_view>
#include <vector>

namespace sidetap::pipeline {

struct PipelineConfig {
    pairing::ClassifierConfig classifier;
    pairing::PairingConfig pairing;
    reassembly::DefragConfig defrag;
    reassembly::TcpConfig tcp;
    dnstap::Envelope envelope;
    // --extra as a template (replaces envelope.extra when set); outputs may
    // have their own (OutputRoute::extra). `origin` holds the values of the
    // constant placeholders ({host}, {cgroup}); {shard} is the producer.
    std::optional<dnstap::ExtraTemplate> extra_template;
    dnstap::TemplateConstants origin;
    streams::StreamConfig streams;
    // A jump of packet time beyond this, either way, is a discontinuity for
    // the timers (see ExpiryClock).
    std::uint64_t max_time_jump_ns = 60'000'000'000ULL;
};

// Every counter of a pipeline (or the sum of several): names are the
// stages' static names, in a fixed order.
struct CounterSnapshot {
    std::vector<std::pair<std::string_view, std::uint64_t>> counters;
    std::vector<std::pair<std::string_view, std::uint64_t>> link_types;  // packets per link type

    // Adds another snapshot's values (by name).
    void add(const CounterSnapshot& other);
    [[nodiscard]] std::uint64_t get(std::string_view name) const;
};

// The stats summary of a snapshot: "key=value" lines on `out`.
void report(std::FILE* out, const CounterSnapshot& snapshot);

struct PipelineStats {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    std::uint64_t udp_datagrams = 0;
    std::uint64_t tcp_segments = 0;
    std::uint64_t not_dns_port = 0;    // UDP/TCP on ports we do not watch
    std::uint64_t dot_skipped = 0;     // DNS over TLS (port 853): encrypted, skipped
    std::uint64_t dns_queries = 0;
    std::uint64_t dns_responses = 0;
    std::uint64_t frames_encoded = 0;
    std::uint64_t filtered = 0;        // messages no output wanted (type filters)
    std::uint64_t extra_truncated = 0; // extra templates cut at ExtraTemplate::kMaxRendered bytes
};

class Pipeline final : private reassembly::TcpMessageSink,
                       private streams::StreamMessageSink,
                       private pairing::PairSink {
public:
    // Writes to the outputs of `routes` (not owned, must outlive the
    // pipeline) through their producer handle `producer`.
    Pipeline(const PipelineConfig& config, const std::vector<output::OutputRoute>& routes, std::size_t producer = 0);
    ~Pipeline() override;
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;

    void process(const capture::Packet& packet);
    // One piece of TLS plaintext (see above).
    void process_stream(const capture::StreamChunk& chunk);
    // A live source had no packet: timers advance by the monotonic time
    // (CLOCK_MONOTONIC, ns) since the previous call, when no packet came in
    // between, and run. Call it whenever a read times out.
    void advance_idle(std::uint64_t monotonic_ns);
    void finish();
    // Replay: the base name of the file whose packets come next ({file}).
    void set_file(std::string_view base_name);

    [[nodiscard]] const PipelineStats& stats() const { return stats_; }

    // Calls fn(name, value) for every counter of every stage.
    template <typename Fn>
    void for_each_counter(Fn&& fn) const;

    // Fills `out` with every counter (reusing its storage).
    void snapshot(CounterSnapshot& out) const;
    // The stats summary: "key=value" lines on `out`.
    void report(std::FILE* out) const;

private:
    void handle_packet(const capture::Packet& packet);
    void handle_ip(const decode::IpPacket& packet_ip, std::uint64_t timestamp_ns);
    void handle_datagram(const decode::IpPacket& ip, std::uint64_t timestamp_ns);
    void handle_dns(const decode::Segment& segment, std::span<const std::uint8_t> wire, std::uint64_t timestamp_ns);
    void on_message(const decode::Segment& segment, std::span<const std::uint8_t> wire,
                    std::uint64_t timestamp_ns) override;
    void on_stream_message(const streams::StreamMessage& message) override;
    void emit(const dns::DnsMessage& message, std::optional<std::uint64_t> query_time_ns) override;
    void run_timers(std::uint64_t now_ns);
    void warn_unknown_link_type(std::uint32_t link_type);

    decode::Decoder decoder_;
    reassembly::IpDefragmenter defrag_;
    reassembly::TcpReassembler tcp_;
    streams::StreamDecoder streams_;
    pairing::Classifier classifier_;
    pairing::Pairer pairer_;
    struct Route {
        output::FrameSink* sink;
        std::uint32_t types;
        bool wire;
        std::size_t group;  // index in groups_
    };
    // Routes with the same extra template share one encoding.
    struct ExtraGroup {
        enum class Kind : std::uint8_t { Envelope, Constant, Rendered };
        Kind kind = Kind::Envelope;
        dnstap::ExtraTemplate extra;  // bound to this pipeline's constants
        std::vector<std::uint8_t> constant;
        bool want_wire = false;  // per message: which variants its routes want
        bool want_bare = false;
    };
    void setup_extra(const PipelineConfig& config, const std::vector<output::OutputRoute>& routes,
                     std::size_t producer);
    // The origin facts of the packet about to be handled.
    void note_packet(const capture::Packet& packet);
    void set_origin(dns::DnsMessage& message) const;

    dnstap::Encoder encoder_;
    std::vector<Route> routes_;
    std::vector<ExtraGroup> groups_;
    // Origin: which facts the templates use, the names they refer to, the
    // facts of the packet or chunk in hand (in_input_: during process*()).
    bool want_origin_ = false;
    bool want_interface_ = false;
    bool want_comm_ = false;
    dnstap::NameTable names_;
    dns::Origin current_;
    std::uint16_t file_ = dns::Origin::kNoName;
    bool in_input_ = false;
    dnstap::ExtraTemplate::Buffer rendered_{};
    PipelineStats stats_;
    dns::DnsMessage message_;  // reused for every message
    // Members, not locals: a local of these types is cleared per packet
    // (decode::reset explains why that is worth avoiding).
    decode::IpPacket link_ip_;  // handle_packet()'s decoded packet
    decode::Segment segment_;   // handle_datagram()'s transport segment
    decode::IpPacket ip_;       // handle_ip()'s working copy (fragments, tunnels)
    decode::IpPacket next_ip_;  // ... and what the defragmenter or decapsulation made
    ExpiryClock clock_;
    std::uint64_t now_ = 0;  // clock_ after the current packet
    std::uint64_t last_timer_ns_ = 0;
    std::array<std::uint32_t, 16> warned_link_types_{};
    std::size_t warned_count_ = 0;
    bool finished_ = false;
    // An inner fragment copied out of the defragmenter's buffer (65535 bytes).
    std::unique_ptr<std::uint8_t[]> fragment_copy_;
};

template <typename Fn>
void Pipeline::for_each_counter(Fn&& fn) const {
    fn(std::string_view("packets"), stats_.packets);
    fn(std::string_view("bytes"), stats_.bytes);
    fn(std::string_view("udp_datagrams"), stats_.udp_datagrams);
    fn(std::string_view("tcp_packets"), stats_.tcp_segments);
    fn(std::string_view("not_dns_port"), stats_.not_dns_port);
    fn(std::string_view("dot_skipped"), stats_.dot_skipped);
    fn(std::string_view("dns_queries"), stats_.dns_queries);
    fn(std::string_view("dns_responses"), stats_.dns_responses);
    fn(std::string_view("frames"), stats_.frames_encoded);
    fn(std::string_view("filtered_by_type"), stats_.filtered);
    fn(std::string_view("extra_truncated"), stats_.extra_truncated);
    fn(std::string_view("extra_names_full"), names_.full());
    fn(std::string_view("time_discontinuities"), clock_.discontinuities());
    decoder_.for_each_counter(fn);
    defrag_.counters().for_each(fn);
    tcp_.counters().for_each(fn);
    streams_.counters().for_each(fn);
    classifier_.skipped().for_each(fn);
    fn(std::string_view("dns_bad_question"), classifier_.bad_question());
    fn(std::string_view("malformed_kept"), classifier_.malformed_kept());
    pairer_.counters().for_each(fn);
}

}  // namespace sidetap::pipeline
