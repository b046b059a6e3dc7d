#include "pairing/pairer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <vector>

using namespace sidetap;

namespace {
struct Emitted {
    bool response;
    std::uint16_t id;
    std::uint64_t time;
    std::optional<std::uint64_t> query_time;
};

struct RecordingSink : pairing::PairSink {
    std::vector<Emitted> out;
    void emit(const dns::DnsMessage& m, std::optional<std::uint64_t> qt) override {
        out.push_back({m.is_response, m.header.id, m.timestamp_ns, qt});
    }
};

dns::DnsMessage message(bool response, std::uint16_t id, std::uint64_t t, std::uint16_t client_port = 40000,
                        const char* name = "\x01" "a\x04test") {
    dns::DnsMessage m;
    m.client.family = 4;
    m.client.bytes = {10, 0, 0, 1};
    m.server.family = 4;
    m.server.bytes = {10, 0, 0, 53};
    m.client_port = client_port;
    m.server_port = 53;
    m.is_response = response;
    m.header.id = id;
    m.header.qr = response;
    m.question.present = true;
    const auto len = std::strlen(name) + 1;
    std::memcpy(m.question.name.data(), name, len);
    m.question.name_length = static_cast<std::uint8_t>(len);
    m.question.qtype = 1;
    m.question.qclass = 1;
    m.timestamp_ns = t;
    return m;
}
}  // namespace

TEST(Pairer, ResponseGetsTheQueryTime) {
    pairing::Pairer p;
    RecordingSink sink;
    p.on_message(message(false, 7, 1000), sink);
    p.on_message(message(true, 7, 5000), sink);
    ASSERT_EQ(sink.out.size(), 2u);
    EXPECT_FALSE(sink.out[0].query_time);
    EXPECT_EQ(sink.out[1].query_time, 1000u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Paired), 1u);
    EXPECT_EQ(p.pending_queries(), 0u);
}

TEST(Pairer, DifferentIdPortOrQuestionDoesNotPair) {
    pairing::Pairer p;
    RecordingSink sink;
    p.on_message(message(false, 7, 1000), sink);
    p.on_message(message(true, 8, 2000), sink);                          // other id
    p.on_message(message(true, 7, 3000, 40001), sink);                   // other port
    p.on_message(message(true, 7, 4000, 40000, "\x01" "b\x04test"), sink);  // other name
    p.finish(sink);
    for (const auto& e : sink.out) EXPECT_FALSE(e.query_time);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Unsolicited), 3u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::UnansweredAtEnd), 1u);
}

TEST(Pairer, ResponseJustBeforeItsQueryStillPairs) {
    pairing::Pairer p;
    RecordingSink sink;
    p.on_message(message(true, 9, 1000), sink);   // response first (reordered capture)
    EXPECT_TRUE(sink.out.empty());                // held for the reorder window
    p.on_message(message(false, 9, 1010), sink);
    ASSERT_EQ(sink.out.size(), 2u);
    EXPECT_FALSE(sink.out[0].response);
    EXPECT_TRUE(sink.out[1].response);
    EXPECT_EQ(sink.out[1].query_time, 1010u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::ResponsesBeforeQuery), 1u);
}

TEST(Pairer, HeldResponseIsEmittedUnpairedAfterTheWindow) {
    pairing::PairingConfig cfg;
    cfg.reorder_window_ns = 100;
    pairing::Pairer p(cfg);
    RecordingSink sink;
    p.on_message(message(true, 9, 1000), sink);
    p.on_message(message(false, 1, 1050), sink);  // unrelated, inside the window
    EXPECT_EQ(sink.out.size(), 1u);
    p.expire(1200, sink);
    ASSERT_EQ(sink.out.size(), 2u);
    EXPECT_TRUE(sink.out[1].response);
    EXPECT_FALSE(sink.out[1].query_time);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Unsolicited), 1u);
}

TEST(Pairer, QueriesTimeOutOnPacketTime) {
    pairing::PairingConfig cfg;
    cfg.query_timeout_ns = 1000;
    pairing::Pairer p(cfg);
    RecordingSink sink;
    p.on_message(message(false, 1, 0), sink);
    p.on_message(message(false, 2, 500), sink);
    p.expire(1200, sink);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Unanswered), 1u);
    EXPECT_EQ(p.pending_queries(), 1u);
    p.on_message(message(true, 1, 1300), sink);  // too late: unsolicited after the window
    p.finish(sink);
    EXPECT_FALSE(sink.out.back().query_time);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Unsolicited), 1u);
}

TEST(Pairer, FullTableEvictsTheOldestQueryAndCountsIt) {
    pairing::PairingConfig cfg;
    cfg.max_queries = 4;
    pairing::Pairer p(cfg);
    RecordingSink sink;
    for (std::uint16_t id = 0; id < 10; ++id) p.on_message(message(false, id, 10 + id), sink);
    EXPECT_EQ(p.pending_queries(), 4u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::UnansweredEvicted), 6u);
    p.on_message(message(true, 9, 100), sink);
    EXPECT_EQ(sink.out.back().query_time, 19u);
}

TEST(Pairer, DuplicateQueriesPairWithTwoResponses) {
    pairing::Pairer p;
    RecordingSink sink;
    p.on_message(message(false, 5, 10), sink);
    p.on_message(message(false, 5, 20), sink);
    p.on_message(message(true, 5, 30), sink);
    p.on_message(message(true, 5, 40), sink);
    ASSERT_EQ(sink.out.size(), 4u);
    EXPECT_EQ(sink.out[2].query_time, 10u);
    EXPECT_EQ(sink.out[3].query_time, 10u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::DuplicateQueries), 1u);
    EXPECT_EQ(p.pending_queries(), 0u);
}

TEST(Pairer, MillionUnansweredQueriesStayUnderTheCap) {
    pairing::PairingConfig cfg;
    cfg.max_queries = 1000;
    pairing::Pairer p(cfg);
    RecordingSink sink;
    std::uint64_t evicted_or_timed_out = 0;
    for (std::uint32_t i = 0; i < 1'000'000; ++i) {
        p.on_message(message(false, static_cast<std::uint16_t>(i), i, static_cast<std::uint16_t>(1024 + (i >> 16))),
                     sink);
        ASSERT_LE(p.pending_queries(), 1000u);
        if (sink.out.size() > 1000) sink.out.clear();
    }
    evicted_or_timed_out = p.counters().get(pairing::PairEvent::UnansweredEvicted) +
                           p.counters().get(pairing::PairEvent::Unanswered);
    EXPECT_EQ(evicted_or_timed_out, 1'000'000u - 1000u);
}

TEST(Pairer, HeldResponsesAreBounded) {
    pairing::PairingConfig cfg;
    cfg.max_held_responses = 8;
    pairing::Pairer p(cfg);
    RecordingSink sink;
    for (std::uint16_t id = 0; id < 100; ++id) p.on_message(message(true, id, id), sink);
    EXPECT_LE(p.held_responses(), 8u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::HeldEvicted), 92u);
    p.finish(sink);
    EXPECT_EQ(sink.out.size(), 100u);
}
