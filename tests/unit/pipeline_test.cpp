// The whole packet path through the in-memory source and output, including
// the rule that the steady state allocates nothing per packet.
#include "capture/memory_source.h"
#include "capture/pcap_file_source.h"
#include "dnstap.pb.h"
#include "output/memory_output.h"
#include "pipeline/expiry_clock.h"
#include "pipeline/pipeline.h"
#include "test_data.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <cstdlib>
#include <new>

// Counts global allocations while `g_counting` is set (this test binary only).
namespace {
std::atomic<bool> g_counting{false};
std::atomic<std::uint64_t> g_allocations{0};
}  // namespace

void* operator new(std::size_t size) {
    if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
    throw std::bad_alloc();
}
// GCC cannot see that these pair with the malloc-based operator new above.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

using namespace sidetap;

namespace {
std::string shared_pcap(const char* name) { return test_data::public_capture(name); }
std::string own_pcap(const char* name) { return std::string(SIDETAP_SOURCE_DIR) + "/pcaps/" + name; }

struct Run {
    std::vector<output::OutputRoute> routes;  // outlives the pipeline
    std::unique_ptr<pipeline::Pipeline> pipeline;
    output::MemoryOutput* out = nullptr;
};

Run make_pipeline(pipeline::PipelineConfig config = {}, bool keep = true) {
    config.envelope.identity = "test";
    config.envelope.version = "v";
    auto out = std::make_unique<output::MemoryOutput>(keep);
    Run run;
    run.out = out.get();
    run.routes.push_back({std::move(out)});
    run.pipeline = std::make_unique<pipeline::Pipeline>(config, run.routes);
    return run;
}

capture::MemorySource load_path(const std::string& path) {
    capture::MemorySource source;
    capture::PcapFileSource file(path);
    EXPECT_TRUE(source.load(file));
    return source;
}
capture::MemorySource load(const char* name) { return load_path(shared_pcap(name)); }

void feed(pipeline::Pipeline& p, capture::MemorySource& source, std::uint64_t time_shift_ns = 0) {
    capture::Packet packet;
    source.rewind();
    while (source.next(packet) == capture::PacketSource::Status::Packet) {
        packet.timestamp_ns += time_shift_ns;
        p.process(packet);
    }
}
}  // namespace

TEST(Pipeline, UdpQueriesAndResponsesBecomePairedFrames) {
    auto source = load("dnscap-dns.pcap");
    auto run = make_pipeline();
    feed(*run.pipeline, source);
    run.pipeline->finish();
    EXPECT_FALSE(run.out->closed()) << "the outputs are the caller's";
    ASSERT_EQ(run.out->frames().size(), 82u);
    ::dnstap::Dnstap first, second;
    ASSERT_TRUE(first.ParseFromArray(run.out->frames()[0].data(), static_cast<int>(run.out->frames()[0].size())));
    ASSERT_TRUE(second.ParseFromArray(run.out->frames()[1].data(), static_cast<int>(run.out->frames()[1].size())));
    EXPECT_EQ(first.message().type(), ::dnstap::Message::CLIENT_QUERY);
    EXPECT_EQ(second.message().type(), ::dnstap::Message::CLIENT_RESPONSE);
    // The response carries its query's time.
    EXPECT_EQ(second.message().query_time_sec(), first.message().query_time_sec());
    EXPECT_EQ(second.message().query_time_nsec(), first.message().query_time_nsec());
    EXPECT_EQ(run.pipeline->stats().dns_queries, 41u);
    EXPECT_EQ(run.pipeline->stats().dns_responses, 41u);
}

TEST(Pipeline, SameTrafficInFragmentsGivesTheSameMessages) {
    auto plain = load("dnscap-dns.pcap");
    auto fragmented = load("dnscap-frags.pcap");
    auto a = make_pipeline();
    auto b = make_pipeline();
    feed(*a.pipeline, plain);
    feed(*b.pipeline, fragmented);
    a.pipeline->finish();
    b.pipeline->finish();
    ASSERT_EQ(a.out->frames().size(), b.out->frames().size());
    for (std::size_t i = 0; i < a.out->frames().size(); ++i) {
        ::dnstap::Dnstap x, y;
        ASSERT_TRUE(x.ParseFromArray(a.out->frames()[i].data(), static_cast<int>(a.out->frames()[i].size())));
        ASSERT_TRUE(y.ParseFromArray(b.out->frames()[i].data(), static_cast<int>(b.out->frames()[i].size())));
        EXPECT_EQ(x.message().query_message(), y.message().query_message()) << i;
        EXPECT_EQ(x.message().response_message(), y.message().response_message()) << i;
        EXPECT_EQ(x.message().query_address(), y.message().query_address()) << i;
    }
}

TEST(Pipeline, CountersNameEveryStage) {
    auto source = load("dnscap-dnso1tcp.pcap");
    auto run = make_pipeline();
    feed(*run.pipeline, source);
    run.pipeline->finish();
    std::map<std::string, std::uint64_t> counters;
    run.pipeline->for_each_counter([&](std::string_view name, std::uint64_t v) { counters[std::string(name)] = v; });
    EXPECT_EQ(counters["tcp_messages"], 82u);
    EXPECT_EQ(counters["paired"], 41u);
    EXPECT_TRUE(counters.count("defrag_fragments"));
    EXPECT_TRUE(counters.count("unanswered_queries"));
    EXPECT_TRUE(counters.count("ip_snapped"));
}

// DESIGN.md: no allocation per packet on the path from packet to frame.
// The first pass warms up buffers (protobuf strings, pools); later passes
// over new flows (time shifted, so every stream and query is new again)
// must not allocate.
TEST(Pipeline, SteadyStateAllocatesNothingPerPacket) {
    const char* captures[] = {"dnscap-dns.pcap", "dnscap-frags.pcap", "dnscap-dnso1tcp.pcap",
                              "dnscollector-dnsdump_udp_truncated+tcp_fragmented.pcap",
                              "derived-dnscap-dnso1tcp-ooo-retrans.pcap", "dnscap-dns6.pcap"};
    pipeline::PipelineConfig config;
    auto run = make_pipeline(config, /*keep=*/false);
    std::vector<capture::MemorySource> sources;
    for (auto* name : captures) sources.push_back(load(name));
    std::uint64_t shift = 0;
    auto pass = [&] {
        for (auto& s : sources) {
            feed(*run.pipeline, s, shift);
            shift += 1'000'000'000'000ULL;  // 1000 s later: all timers expire, flows start afresh
        }
    };
    pass();
    pass();
    const auto frames_before = run.out->stats().frames_written;
    g_allocations = 0;
    g_counting = true;
    pass();
    g_counting = false;
    const auto frames = run.out->stats().frames_written - frames_before;
    EXPECT_EQ(frames, 260u);  // 82 + 82 + 82 + 4 + 8 + 2 messages per pass
    EXPECT_EQ(g_allocations.load(), 0u) << "allocations during " << frames << " frames";
}

TEST(Pipeline, EachOutputGetsItsTypesAndItsOwnWireSetting) {
    auto source = load("dnscap-dns.pcap");
    pipeline::PipelineConfig config;
    config.envelope.identity = "test";
    std::vector<output::OutputRoute> routes;
    auto queries = std::make_unique<output::MemoryOutput>();
    auto responses_bare = std::make_unique<output::MemoryOutput>();
    auto everything = std::make_unique<output::MemoryOutput>();
    auto* q = queries.get();
    auto* r = responses_bare.get();
    auto* all = everything.get();
    routes.push_back({std::move(queries), 1u << 5, true});           // CLIENT_QUERY
    routes.push_back({std::move(responses_bare), 1u << 6, false});   // CLIENT_RESPONSE, no wire
    routes.push_back({std::move(everything)});
    pipeline::Pipeline p(config, routes);
    feed(p, source);
    p.finish();
    ASSERT_EQ(q->frames().size(), 41u);
    ASSERT_EQ(r->frames().size(), 41u);
    ASSERT_EQ(all->frames().size(), 82u);
    ::dnstap::Dnstap d;
    ASSERT_TRUE(d.ParseFromArray(q->frames()[0].data(), static_cast<int>(q->frames()[0].size())));
    EXPECT_EQ(d.message().type(), ::dnstap::Message::CLIENT_QUERY);
    EXPECT_TRUE(d.message().has_query_message());
    ASSERT_TRUE(d.ParseFromArray(r->frames()[0].data(), static_cast<int>(r->frames()[0].size())));
    EXPECT_EQ(d.message().type(), ::dnstap::Message::CLIENT_RESPONSE);
    EXPECT_FALSE(d.message().has_response_message());
    EXPECT_TRUE(d.message().has_query_time_sec());
}

namespace {
sidetap::dnstap::ExtraTemplate extra(const char* text) {
    std::string error;
    auto t = sidetap::dnstap::ExtraTemplate::parse(text, error);
    EXPECT_TRUE(t) << error;
    return *t;
}
std::vector<std::string> extras(const output::MemoryOutput& out) {
    std::vector<std::string> v;
    for (const auto& f : out.frames()) {
        ::dnstap::Dnstap d;
        EXPECT_TRUE(d.ParseFromArray(f.data(), static_cast<int>(f.size())));
        v.push_back(d.has_extra() ? d.extra() : "<none>");
    }
    return v;
}
}  // namespace

// A template with per-message placeholders renders into the pipeline's
// buffer: the steady state still allocates nothing.
TEST(Pipeline, TemplatedExtraAllocatesNothingPerPacket) {
    const char* captures[] = {"dnscap-dns.pcap", "dnscap-frags.pcap", "dnscap-dnso1tcp.pcap"};
    pipeline::PipelineConfig config;
    config.extra_template = extra("{file}:{frame}:{vlan}:{interface}:{tunnel}");
    auto run = make_pipeline(config, /*keep=*/false);
    std::vector<capture::MemorySource> sources;
    for (auto* name : captures) sources.push_back(load(name));
    std::uint64_t shift = 0;
    auto pass = [&] {
        for (std::size_t i = 0; i < sources.size(); ++i) {
            run.pipeline->set_file(captures[i]);
            capture::Packet packet;
            sources[i].rewind();
            std::uint64_t frame = 0;
            while (sources[i].next(packet) == capture::PacketSource::Status::Packet) {
                packet.timestamp_ns += shift;
                packet.frame = ++frame;
                packet.interface = (frame & 1) ? "eth0" : "eth1";
                run.pipeline->process(packet);
            }
            shift += 1'000'000'000'000ULL;
        }
    };
    pass();
    pass();
    g_allocations = 0;
    g_counting = true;
    pass();
    g_counting = false;
    EXPECT_EQ(g_allocations.load(), 0u);
    EXPECT_EQ(run.pipeline->stats().extra_truncated, 0u);
}

TEST(Pipeline, ConstantTemplateWritesTheBytesOfAPlainExtra) {
    auto source = load("dnscap-dns.pcap");
    pipeline::PipelineConfig plain;
    plain.envelope.extra = "rack=7 ns1 {x}";
    pipeline::PipelineConfig templated;
    templated.extra_template = extra("rack=7 {host} {{x}}");
    templated.origin.host = "ns1";
    auto a = make_pipeline(plain);
    auto b = make_pipeline(templated);
    feed(*a.pipeline, source);
    feed(*b.pipeline, source);
    a.pipeline->finish();
    b.pipeline->finish();
    ASSERT_EQ(a.out->frames().size(), 82u);
    EXPECT_EQ(a.out->frames(), b.out->frames());
    EXPECT_EQ(extras(*b.out).front(), "rack=7 ns1 {x}");
}

TEST(Pipeline, ShardPlaceholderIsTheProducerIndex) {
    auto source = load("dnscap-dns.pcap");
    pipeline::PipelineConfig config;
    config.extra_template = extra("shard {shard}");
    std::vector<output::OutputRoute> routes;
    auto out = std::make_unique<output::MemoryOutput>(true, 2);
    auto* o = out.get();
    routes.push_back({std::move(out)});
    pipeline::Pipeline p(config, routes, 1);
    feed(p, source);
    p.finish();
    ASSERT_EQ(o->frames().size(), 82u);
    for (const auto& e : extras(*o)) EXPECT_EQ(e, "shard 1");
}

TEST(Pipeline, OutputsWithEqualTemplatesShareOneEncoding) {
    auto source = load("dnscap-dns.pcap");
    pipeline::PipelineConfig config;
    config.extra_template = extra("global");
    std::vector<output::OutputRoute> routes;
    std::vector<output::MemoryOutput*> outs;
    for (int i = 0; i < 4; ++i) {
        auto out = std::make_unique<output::MemoryOutput>();
        outs.push_back(out.get());
        routes.push_back({std::move(out)});
    }
    routes[0].extra = extra("f{frame}");
    routes[1].extra = extra("f{frame}");
    routes[3].extra = extra("none");
    routes[3].wire = false;
    pipeline::Pipeline p(config, routes);
    std::uint64_t frame = 0;
    capture::Packet packet;
    source.rewind();
    while (source.next(packet) == capture::PacketSource::Status::Packet) {
        packet.frame = ++frame;
        p.process(packet);
    }
    p.finish();
    EXPECT_EQ(outs[0]->frames(), outs[1]->frames());
    EXPECT_EQ(extras(*outs[0]).front(), "f1");
    EXPECT_EQ(extras(*outs[2]).front(), "global");
    EXPECT_EQ(extras(*outs[3]).front(), "none");
    EXPECT_EQ(p.stats().frames_encoded, 3u * 82u);
}

// ------------------------------------------------------------ expiry clock

TEST(ExpiryClock, MovesByPlausibleForwardStepsOnly) {
    constexpr std::uint64_t s = 1'000'000'000ULL;
    pipeline::ExpiryClock c(60 * s);
    EXPECT_EQ(c.advance(1000 * s), 0u);
    EXPECT_EQ(c.advance(1002 * s), 2 * s);
    EXPECT_EQ(c.advance(1001 * s), 2 * s);  // reordered: no step, no new mark
    EXPECT_EQ(c.advance(1003 * s), 3 * s);  // measured from the mark, not from the late packet
    EXPECT_EQ(c.discontinuities(), 0u);
}

TEST(ExpiryClock, OneStrayFarFutureRecordCostsNothing) {
    constexpr std::uint64_t s = 1'000'000'000ULL;
    pipeline::ExpiryClock c(60 * s);
    c.advance(1000 * s);
    EXPECT_EQ(c.advance(4'000'000'000ULL * s), 0u);  // 2096
    EXPECT_EQ(c.discontinuities(), 1u);
    EXPECT_EQ(c.advance(1001 * s), 1 * s);  // the old frame resumes, its time counted
    EXPECT_EQ(c.advance(1005 * s), 5 * s);
    EXPECT_EQ(c.discontinuities(), 1u);
    // Several stray records in a row: the last confirmed frame stays the one to come back to.
    c.advance(9'000'000'000ULL * s);
    c.advance(3'000'000'000ULL * s);
    EXPECT_EQ(c.advance(1006 * s), 6 * s);
    EXPECT_EQ(c.discontinuities(), 3u);
}

TEST(ExpiryClock, ClockStepBackOpensANewFrame) {
    constexpr std::uint64_t s = 1'000'000'000ULL;
    pipeline::ExpiryClock c(60 * s);
    c.advance(10'000 * s);
    c.advance(10'005 * s);
    EXPECT_EQ(c.advance(6'406 * s), 5 * s);  // one hour back: nothing counted as time
    EXPECT_EQ(c.discontinuities(), 1u);
    EXPECT_EQ(c.advance(6'407 * s), 6 * s);  // confirmed: time runs on in the new frame
    EXPECT_EQ(c.advance(6'417 * s), 16 * s);
    // A later packet from before the step is then a stray record.
    EXPECT_EQ(c.advance(10'006 * s), 16 * s);
    EXPECT_EQ(c.advance(6'418 * s), 17 * s);
    EXPECT_EQ(c.discontinuities(), 2u);
    // A forward step beyond the limit (a quiet gap in a replay, or a clock
    // step) counts nothing either.
    EXPECT_EQ(c.advance(6'418 * s + 61 * s), 17 * s);
    EXPECT_EQ(c.advance(6'418 * s + 62 * s), 18 * s);
    EXPECT_EQ(c.discontinuities(), 3u);
}

TEST(ExpiryClock, IdleTimeCountsOnceWhenPacketsResume) {
    constexpr std::uint64_t s = 1'000'000'000ULL;
    pipeline::ExpiryClock c(60 * s);
    c.advance(500 * s);
    EXPECT_EQ(c.idle(7 * s), 0u);       // first idle reading only anchors
    EXPECT_EQ(c.idle(8 * s), 1 * s);
    EXPECT_EQ(c.idle(10 * s), 3 * s);
    // The next packet, 3.2 s after the last one, adds only what idle() did not.
    EXPECT_EQ(c.advance(503 * s + 200'000'000), 3 * s + 200'000'000);
    EXPECT_EQ(c.idle(11 * s), 3 * s + 200'000'000);  // packets came: anchors again
    EXPECT_EQ(c.idle(12 * s), 4 * s + 200'000'000);
    EXPECT_EQ(c.discontinuities(), 0u);
}

// ------------------------------------------------------------ time

namespace {
std::map<std::string, std::uint64_t> counters_of(const pipeline::Pipeline& p) {
    std::map<std::string, std::uint64_t> c;
    p.for_each_counter([&](std::string_view name, std::uint64_t v) { c[std::string(name)] = v; });
    return c;
}
}  // namespace

TEST(Pipeline, FarFutureRecordOrClockStepBackLeaveTimeoutsAsInTheCleanCapture) {
    std::map<std::string, std::map<std::string, std::uint64_t>> got;
    for (const char* name : {"time-clean.pcap", "time-far-future.pcap", "time-step-back.pcap"}) {
        auto source = load_path(own_pcap(name));
        auto run = make_pipeline();
        feed(*run.pipeline, source);
        run.pipeline->finish();
        got[name] = counters_of(*run.pipeline);
    }
    const auto& clean = got["time-clean.pcap"];
    EXPECT_EQ(clean.at("unanswered_queries"), 2u);
    EXPECT_EQ(clean.at("unsolicited_responses"), 2u);
    EXPECT_EQ(clean.at("unanswered_at_end"), 1u);
    EXPECT_EQ(clean.at("time_discontinuities"), 0u);
    for (const char* name : {"time-far-future.pcap", "time-step-back.pcap"}) {
        SCOPED_TRACE(name);
        const auto& c = got[name];
        for (const char* k : {"paired", "unanswered_queries", "unanswered_evicted", "unanswered_at_end",
                              "unsolicited_responses", "dns_queries", "dns_responses", "defrag_reassembled",
                              "defrag_timed_out", "tcp_messages", "tcp_streams_timed_out"})
            EXPECT_EQ(c.at(k), clean.at(k)) << k;
        EXPECT_EQ(c.at("time_discontinuities"), 1u);
    }
}

TEST(Pipeline, IdleTimeRunsTheTimersWithoutPackets) {
    // One query and one response nobody asked for, then silence: a live
    // capture reports both within the timeouts of monotonic time.
    auto source = load_path(own_pcap("pair-late-response.pcap"));
    pipeline::PipelineConfig config;
    config.pairing.query_timeout_ns = 2'000'000'000ULL;
    auto run = make_pipeline(config);
    capture::Packet packet;
    source.rewind();
    ASSERT_EQ(source.next(packet), capture::PacketSource::Status::Packet);  // query 0x3601
    run.pipeline->process(packet);
    const std::uint64_t mono = 77'000'000'000ULL;
    for (std::uint64_t ms = 0; ms <= 1900; ms += 100) run.pipeline->advance_idle(mono + ms * 1'000'000);
    EXPECT_EQ(counters_of(*run.pipeline).at("unanswered_queries"), 0u);
    for (std::uint64_t ms = 2000; ms <= 2300; ms += 100) run.pipeline->advance_idle(mono + ms * 1'000'000);
    EXPECT_EQ(counters_of(*run.pipeline).at("unanswered_queries"), 1u);
    // The late response (captured 12 s after its query): held for its query,
    // then emitted unsolicited after the reorder window of idle time.
    while (source.next(packet) == capture::PacketSource::Status::Packet) {
        if (packet.timestamp_ns > 1'700'001'011'000'000'000ULL) {
            run.pipeline->process(packet);
            break;
        }
    }
    const auto frames = run.out->frames().size();
    run.pipeline->advance_idle(mono + 3'000'000'000ULL);  // re-anchors after the packet
    run.pipeline->advance_idle(mono + 3'200'000'000ULL);
    EXPECT_EQ(run.out->frames().size(), frames + 1);
    EXPECT_EQ(counters_of(*run.pipeline).at("unsolicited_responses"), 1u);
}

TEST(Pipeline, KeepMalformedEmitsMalformedMessagesAndCountsThemEitherWay) {
    auto source = load_path(own_pcap("malformed-to-server.pcap"));
    for (const bool keep : {false, true}) {
        SCOPED_TRACE(keep);
        pipeline::PipelineConfig config;
        config.classifier.keep_malformed = keep;
        auto run = make_pipeline(config);
        feed(*run.pipeline, source);
        run.pipeline->finish();
        const auto c = counters_of(*run.pipeline);
        EXPECT_EQ(run.out->frames().size(), keep ? 10u : 3u);
        EXPECT_EQ(c.at("dns_too_short"), 2u);
        EXPECT_EQ(c.at("qr_direction_mismatch"), 2u);
        EXPECT_EQ(c.at("dns_bad_question"), 3u);
        EXPECT_EQ(c.at("malformed_kept"), keep ? 7u : 0u);
    }
}
