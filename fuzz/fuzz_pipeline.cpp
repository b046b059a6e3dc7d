// Fuzz target: the whole packet path (pipeline::Pipeline) — decode, IP
// defragmentation, TCP reassembly, classification, pairing, dnstap encoding —
// into an in-memory Output that discards the frames.
//
// Input: byte 0 = configuration (bit 0: role resolver; bit 1: also watch
// port 5353 as a server port; bit 2: --server-addr 10.0.0.53 given; bit 3:
// --keep-malformed; bit 4: max time jump 1 s instead of 60 s), then
// pseudo-packets, each:
//   b0    link type (index into kLinkTypes, modulo its size)
//   b1    time step (x 10 ms; timeouts below are 0.5-2 s; 255 = 1 s back;
//         254 = an hour ahead; 253 = 300 ms of idle time (advance_idle) first)
//   b2-3  captured length (big-endian), then that many bytes (fewer at the
//         end of the input)
// Small table limits so eviction paths run; finish() at the end.
//
// Checks: every frame handed to the output is non-empty and readable; the
// pipeline's frame count matches what the output received; finish() is
// idempotent.
#include "fuzz_common.h"

#include "capture/packet_source.h"
#include "output/output.h"
#include "pipeline/pipeline.h"

#include <array>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace sidetap;
namespace lt = capture::linktype;

// Same order as in fuzz_decode.cpp (make_seeds.py relies on it).
constexpr std::array<std::uint32_t, 12> kLinkTypes{
    lt::kNull, lt::kEthernet, lt::kRaw,       lt::kLoop,        lt::kLinuxSll, lt::kIpv4,
    lt::kIpv6, lt::kLinuxSll2, lt::kRawOpenBsd, lt::kRawDlt12, 147 /* LINKTYPE_USER0: unknown */,
    lt::kNflog};

class DiscardOutput final : public output::Output, private output::FrameSink {
public:
    [[nodiscard]] std::size_t producers() const override { return 1; }
    output::FrameSink& producer(std::size_t) override { return *this; }
    void flush() override {}
    void close() override { closed = true; }
    [[nodiscard]] output::OutputStats stats() const override { return stats_; }
    [[nodiscard]] const std::string& name() const override { return name_; }

    bool closed = false;

private:
    output::WriteResult write(std::span<const std::uint8_t> frame) override {
        FUZZ_CHECK(!frame.empty());
        fuzz::touch(frame);
        ++stats_.frames_written;
        stats_.bytes_written += frame.size();
        return output::WriteResult::Written;
    }
    std::uint8_t* reserve(std::size_t size, output::WriteResult& result) override {
        scratch_.resize(size);
        result = output::WriteResult::Written;
        return scratch_.data();
    }
    void commit() override { (void)write(scratch_); }

    output::OutputStats stats_;
    std::string name_ = "discard";
    std::vector<std::uint8_t> scratch_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Reader in(data, size);
    const std::uint8_t cfg_byte = in.u8();

    pipeline::PipelineConfig config;
    if (cfg_byte & 1) config.classifier.role = pairing::Role::Resolver;
    if (cfg_byte & 2) config.classifier.server_ports.push_back(5353);
    if (cfg_byte & 4) {
        decode::IpAddress server;
        server.family = 4;
        server.bytes[0] = 10;
        server.bytes[3] = 53;
        config.classifier.server_addresses.push_back(server);
    }
    if (cfg_byte & 8) config.classifier.keep_malformed = true;
    config.max_time_jump_ns = (cfg_byte & 16) ? 1'000'000'000ULL : 60'000'000'000ULL;
    config.pairing.query_timeout_ns = 2'000'000'000ULL;
    config.pairing.max_queries = 8;
    config.pairing.max_held_responses = 4;
    config.pairing.max_held_bytes = 4096;
    config.defrag.max_datagrams = 4;
    config.defrag.max_bytes = 256u << 10;
    config.defrag.max_fragments = 16;
    config.defrag.timeout_ns = 1'000'000'000ULL;
    config.tcp.max_streams = 4;
    config.tcp.max_stream_bytes = 2048;
    config.tcp.max_total_bytes = 16u << 10;
    config.tcp.max_pending_segments = 4;
    config.tcp.idle_timeout_ns = 2'000'000'000ULL;
    config.envelope.identity = "fuzz";
    config.envelope.version = "sidetap-fuzz";

    auto discard = std::make_unique<DiscardOutput>();
    DiscardOutput* sink = discard.get();
    std::vector<output::OutputRoute> routes;
    routes.push_back({std::move(discard)});
    pipeline::Pipeline pipe(config, routes);

    std::uint64_t now = 1'700'000'000'000'000'000ULL;
    std::uint64_t monotonic = 1'000'000'000ULL;
    while (in.remaining() >= 4) {
        const std::uint8_t link = in.u8();
        const std::uint8_t step = in.u8();
        const std::uint16_t length = in.u16();
        capture::Packet packet;
        if (step == 255) {
            now -= 1'000'000'000ULL;  // packet time going backwards
        } else if (step == 254) {
            now += 3'600'000'000'000ULL;  // a clock step or a damaged timestamp
        } else if (step == 253) {
            for (int i = 0; i < 3; ++i) pipe.advance_idle(monotonic += 100'000'000ULL);  // a quiet live link
        } else {
            now += std::uint64_t{step} * 10'000'000ULL;
        }
        packet.timestamp_ns = now;
        packet.link_type = kLinkTypes[link % kLinkTypes.size()];
        packet.data = in.bytes(length);
        packet.original_length = static_cast<std::uint32_t>(packet.data.size());
        pipe.process(packet);
    }
    pipe.finish();
    FUZZ_CHECK(!sink->closed);  // the outputs are the caller's
    FUZZ_CHECK(pipe.stats().frames_encoded == sink->stats().frames_written);
    pipe.finish();
    FUZZ_CHECK(pipe.stats().frames_encoded == sink->stats().frames_written);
    return 0;
}
