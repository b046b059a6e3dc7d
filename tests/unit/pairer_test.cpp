#include "pairing/pairer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
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

TEST(Pairer, ResponseJustBeforeItsQueryPairsWithoutANegativeLatency) {
    pairing::Pairer p;
    RecordingSink sink;
    p.on_message(message(true, 9, 1000), sink);   // response first (reordered capture)
    EXPECT_TRUE(sink.out.empty());                // held for the reorder window
    p.on_message(message(false, 9, 1010), sink);
    ASSERT_EQ(sink.out.size(), 2u);
    EXPECT_FALSE(sink.out[0].response);
    EXPECT_TRUE(sink.out[1].response);
    EXPECT_EQ(sink.out[1].time, 1000u);           // its own time
    EXPECT_FALSE(sink.out[1].query_time);         // 1010 would be a negative latency
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Paired), 1u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::ResponsesBeforeQuery), 1u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::QueryTimeOmitted), 1u);
    p.finish(sink);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::UnansweredAtEnd), 0u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Unsolicited), 0u);
}

TEST(Pairer, ResponseBeforeItsQueryWithTheSameTimeKeepsAZeroLatency) {
    pairing::Pairer p;
    RecordingSink sink;
    p.on_message(message(true, 9, 1000), sink);
    p.on_message(message(false, 9, 1000), sink);
    ASSERT_EQ(sink.out.size(), 2u);
    EXPECT_EQ(sink.out[1].query_time, 1000u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::QueryTimeOmitted), 0u);
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

TEST(Pairer, RetransmittedQueriesPairOneResponsePerCopyOldestFirst) {
    pairing::Pairer p;
    RecordingSink sink;
    p.on_message(message(false, 5, 10), sink);
    p.on_message(message(false, 5, 20), sink);  // retransmission: same tuple, ID and question
    p.on_message(message(true, 5, 30), sink);
    p.on_message(message(true, 5, 40), sink);
    p.on_message(message(true, 5, 50), sink);   // a third response has no copy left
    p.finish(sink);
    ASSERT_EQ(sink.out.size(), 5u);
    EXPECT_EQ(sink.out[2].query_time, 10u);     // first in, first out (as tshark pairs)
    EXPECT_EQ(sink.out[3].query_time, 20u);     // the retransmission's own time
    EXPECT_FALSE(sink.out[4].query_time);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::DuplicateQueries), 1u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Paired), 2u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Unsolicited), 1u);
    EXPECT_EQ(p.pending_queries(), 0u);
}

TEST(Pairer, EachRetransmittedCopyTimesOutFromItsOwnTime) {
    pairing::PairingConfig cfg;
    cfg.query_timeout_ns = 1000;
    pairing::Pairer p(cfg);
    RecordingSink sink;
    p.on_message(message(false, 5, 0), sink);
    p.on_message(message(false, 5, 950), sink);  // retransmitted shortly before the first copy expires
    p.on_message(message(false, 6, 1100), sink); // unrelated: the first copy has timed out
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Unanswered), 1u);
    EXPECT_EQ(p.pending_queries(), 2u);
    p.on_message(message(true, 5, 1200), sink);  // answers the retransmission
    EXPECT_EQ(sink.out.back().query_time, 950u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Unsolicited), 0u);
    p.expire(2101, sink);                        // the unrelated query times out on its own
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Unanswered), 2u);
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

namespace {
// A response without a question section (QDCOUNT 0), as servers send for
// FORMERR, SERVFAIL, NOTIMP, REFUSED... when they do not echo the question.
dns::DnsMessage bare_response(std::uint16_t id, std::uint8_t rcode, std::uint64_t t,
                              std::uint16_t client_port = 40000) {
    auto m = message(true, id, t, client_port);
    m.question.present = false;
    m.question.name_length = 0;
    m.question.qtype = 0;
    m.question.qclass = 0;
    m.header.qdcount = 0;
    m.header.rcode = rcode;
    return m;
}
}  // namespace

TEST(Pairer, ResponsesWithoutQuestionPairOnTheExchangeForEveryRcode) {
    // FORMERR, SERVFAIL, NOTIMP, REFUSED, NOTAUTH.
    const std::uint8_t rcodes[] = {1, 2, 4, 5, 9};
    pairing::Pairer p;
    RecordingSink sink;
    std::uint16_t port = 41000;
    for (auto rcode : rcodes) {
        p.on_message(message(false, 0x100 + rcode, 1000 * rcode, port), sink);
        p.on_message(bare_response(0x100 + rcode, rcode, 1000 * rcode + 300, port), sink);
        ++port;
    }
    p.finish(sink);
    ASSERT_EQ(sink.out.size(), 10u);
    for (std::size_t i = 1; i < sink.out.size(); i += 2) {
        EXPECT_TRUE(sink.out[i].response);
        EXPECT_EQ(sink.out[i].query_time, sink.out[i - 1].time) << i;
    }
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Paired), 5u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::PairedWithoutQuestion), 5u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Unsolicited), 0u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::UnansweredAtEnd), 0u);
}

TEST(Pairer, ResponseWithoutQuestionNeedsTheSameIdPortsAndTransport) {
    pairing::Pairer p;
    RecordingSink sink;
    p.on_message(message(false, 7, 1000), sink);
    p.on_message(bare_response(8, 2, 1100), sink);         // other ID
    p.on_message(bare_response(7, 2, 1200, 40001), sink);  // other client port
    auto tcp = bare_response(7, 2, 1300);
    tcp.transport = decode::Transport::Tcp;                // other transport
    p.on_message(tcp, sink);
    p.finish(sink);
    for (const auto& e : sink.out) EXPECT_FALSE(e.query_time);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Unsolicited), 3u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::UnansweredAtEnd), 1u);
}

TEST(Pairer, ResponseWithoutQuestionBeforeItsQueryPairsWhenTheQueryArrives) {
    pairing::Pairer p;
    RecordingSink sink;
    p.on_message(bare_response(7, 5, 1000), sink);
    EXPECT_TRUE(sink.out.empty());
    p.on_message(message(false, 7, 1000), sink);
    ASSERT_EQ(sink.out.size(), 2u);
    EXPECT_EQ(sink.out[1].query_time, 1000u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::ResponsesBeforeQuery), 1u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::PairedWithoutQuestion), 1u);
}

TEST(Pairer, QueryWithoutQuestionPairsWithAnyResponseOfItsExchange) {
    pairing::Pairer p;
    RecordingSink sink;
    auto q = message(false, 7, 1000);
    q.question.present = false;  // QDCOUNT 0 (e.g. a DNS cookie query) or unparsable
    q.question.name_length = 0;
    p.on_message(q, sink);
    p.on_message(message(true, 7, 1500), sink);
    EXPECT_EQ(sink.out.back().query_time, 1000u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::PairedWithoutQuestion), 1u);
}

TEST(Pairer, ResponseWithAnotherQuestionDoesNotTakeACopy) {
    pairing::Pairer p;
    RecordingSink sink;
    p.on_message(message(false, 7, 1000), sink);
    p.on_message(message(true, 7, 1100, 40000, "\x01" "b\x04test"), sink);  // same length, other name
    p.on_message(message(true, 7, 1200), sink);
    p.finish(sink);
    // The mismatching response waits for a query of its own (reorder
    // window), the matching one takes the copy.
    ASSERT_EQ(sink.out.size(), 3u);
    EXPECT_EQ(sink.out[1].time, 1200u);
    EXPECT_EQ(sink.out[1].query_time, 1000u);
    EXPECT_EQ(sink.out[2].time, 1100u);
    EXPECT_FALSE(sink.out[2].query_time);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Unsolicited), 1u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Paired), 1u);
}

TEST(Pairer, CopiesOfOneExchangeAreBounded) {
    pairing::PairingConfig cfg;
    cfg.max_copies = 4;
    pairing::Pairer p(cfg);
    RecordingSink sink;
    for (std::uint64_t t = 1; t <= 10; ++t) p.on_message(message(false, 5, t), sink);
    EXPECT_EQ(p.pending_queries(), 4u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::UnansweredEvicted), 6u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::DuplicateQueries), 9u);
    p.on_message(message(true, 5, 20), sink);
    EXPECT_EQ(sink.out.back().query_time, 7u);  // the oldest copy still pending
}

TEST(Pairer, TimersRunOnTheCallersClockNotOnMessageTimes) {
    pairing::PairingConfig cfg;
    cfg.query_timeout_ns = 1000;
    pairing::Pairer p(cfg);
    RecordingSink sink;
    // The capturing host's clock steps back an hour between query and
    // response; the caller's clock moved by 100 only.
    const std::uint64_t hour = 3600ULL * 1'000'000'000ULL;
    p.on_message(message(false, 5, 10 * hour), 0, sink);
    p.on_message(message(true, 5, 9 * hour + 100), 100, sink);
    ASSERT_EQ(sink.out.size(), 2u);
    EXPECT_FALSE(sink.out[1].query_time);  // not a negative latency
    EXPECT_EQ(sink.out[1].time, 9 * hour + 100);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Paired), 1u);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::QueryTimeOmitted), 1u);
    // A far-future message time does not expire anything; the clock does.
    p.on_message(message(false, 6, 90 * hour), 200, sink);
    p.on_message(message(false, 7, 10 * hour), 300, sink);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Unanswered), 0u);
    p.expire(1201, sink);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Unanswered), 1u);
    p.expire(1301, sink);
    EXPECT_EQ(p.counters().get(pairing::PairEvent::Unanswered), 2u);
}

TEST(Pairer, EveryQueryEndsInExactlyOneOutcome) {
    pairing::PairingConfig cfg;
    cfg.query_timeout_ns = 50;
    cfg.max_queries = 64;
    cfg.max_copies = 3;
    pairing::Pairer p(cfg);
    RecordingSink sink;
    std::uint64_t state = 12345;
    auto next = [&state] {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        return static_cast<std::uint32_t>(state >> 33);
    };
    std::uint64_t queries = 0, responses = 0;
    for (std::uint64_t t = 0; t < 20000; ++t) {
        const auto r = next();
        const auto id = static_cast<std::uint16_t>(r % 40);
        const auto port = static_cast<std::uint16_t>(40000 + (r >> 8) % 3);
        if ((r >> 16) % 2 == 0) {
            p.on_message(message(false, id, t, port), sink);
            ++queries;
        } else {
            if ((r >> 20) % 3 == 0)
                p.on_message(bare_response(id, 2, t, port), sink);
            else
                p.on_message(message(true, id, t, port), sink);
            ++responses;
        }
        if (sink.out.size() > 1000) sink.out.clear();
    }
    p.finish(sink);
    const auto& c = p.counters();
    using E = pairing::PairEvent;
    EXPECT_EQ(c.get(E::Paired) + c.get(E::Unanswered) + c.get(E::UnansweredEvicted) + c.get(E::UnansweredAtEnd),
              queries);
    EXPECT_EQ(c.get(E::Paired) + c.get(E::Unsolicited), responses);
    EXPECT_GT(c.get(E::Paired), 0u);
    EXPECT_GT(c.get(E::DuplicateQueries), 0u);
}

// ------------------------------------------------------------ bounded table

namespace {
struct IdentityHash {
    std::size_t operator()(std::uint32_t k) const { return k * 0x9E3779B97F4A7C15ULL; }
};
struct CollidingHash {  // every key in one of 4 chains: growth must keep long clusters findable
    std::size_t operator()(std::uint32_t k) const { return k % 4; }
};
}  // namespace

template <typename Hash>
void exercise_table(std::size_t capacity) {
    pairing::BoundedTable<std::uint32_t, std::uint32_t, Hash> t(capacity);
    std::map<std::uint32_t, std::uint32_t> model;  // key -> value, one entry per key
    std::vector<std::uint32_t> order;              // insertion order of live keys
    std::uint32_t next = 0;
    for (int step = 0; step < 20000; ++step) {
        if (!t.full() && (step % 7 != 0 || model.empty())) {
            const std::uint32_t k = next++ * 2654435761u;
            t.insert(k, k ^ 0x5555);
            model[k] = k ^ 0x5555;
            order.push_back(k);
        } else {
            // Erase the oldest (timeouts) or one in the middle.
            const std::size_t pos = step % 3 == 0 ? 0 : order.size() / 2;
            const std::uint32_t k = order[pos];
            const auto i = t.find(k);
            ASSERT_NE(i, t.kNone);
            t.erase(i);
            model.erase(k);
            order.erase(order.begin() + static_cast<std::ptrdiff_t>(pos));
        }
        ASSERT_EQ(t.size(), model.size());
        if (step % 97 == 0) {
            for (const auto& [k, v] : model) {
                const auto i = t.find(k);
                ASSERT_NE(i, t.kNone) << "key " << k << " lost at step " << step;
                ASSERT_EQ(t.at(i).value, v);
            }
            if (!order.empty()) {
                ASSERT_EQ(t.at(t.oldest()).key, order.front());
            }
            ASSERT_EQ(t.find(0xFFFFFFFFu), t.kNone);
        }
    }
}

TEST(BoundedTable, GrowsItsIndexWithoutLosingEntriesAndKeepsFifoOrder) {
    exercise_table<IdentityHash>(5000);
    exercise_table<CollidingHash>(600);
    exercise_table<IdentityHash>(1);
}
