// Pairer: matches responses to their queries and gives each response the
// query_time of its query.
//
// Contract:
//  - An exchange is identified by client address and port, server address
//    and port, transport and DNS ID, compared exactly. Within it, the
//    question (qname compared case-insensitively — the parser lower-cases
//    it —, qtype, qclass) must match too when both messages have one; a
//    message without a question (QDCOUNT 0: FORMERR, SERVFAIL, REFUSED...
//    answers, or a malformed one) pairs on the exchange alone
//    (paired_without_question). The question is kept as a fingerprint
//    (type, class, name length and a 64-bit hash of the name, seeded per
//    run), not as the name itself.
//  - Every query is a pending copy of its own, timed out from its own time.
//    A query with the same exchange and question as a pending one (a
//    retransmission) is counted (duplicate_queries) and kept as one more
//    copy. A response takes the OLDEST pending copy it matches (first in,
//    first out — tshark pairs a response with the first copy too), so two
//    responses never share one copy and a second response pairs with the
//    retransmission. At most max_copies copies of one exchange wait; one
//    more evicts the oldest (unanswered_evicted).
//  - on_message() emits through the sink: a query at once; a response at
//    once with its query's time when a copy is pending.
//  - A response with no pending query is held for reorder_window_ns (on the
//    caller's clock; captures from several CPUs or interfaces can show a
//    response just before its query). If its query arrives in that window,
//    the query is emitted, then the response (responses_before_query).
//    Otherwise the response is emitted without query_time and counted as
//    unsolicited. A query is matched against the held responses before they
//    are timed out, so a window that ended while no timer ran still pairs.
//  - A response never carries a query_time later than its own time: a
//    response captured before its query, or separated from it by a step
//    back of the capturing host's clock, is emitted without query_time
//    (query_time_omitted) — still paired, its query is not unanswered — so
//    that nobody downstream computes a negative latency.
//  - Queries wait query_timeout_ns; after that they count as unanswered.
//    Both tables are bounded (max_queries, max_held_responses,
//    max_held_bytes); overflow evicts the oldest entry and counts it.
//  - Timers run on the `now` the caller passes (the pipeline's expiry
//    clock, which only moves forward); message times are only emitted.
//    The overloads without `now` use the message's own time. finish() ends
//    the input (pending queries count as unanswered_at_end, held responses
//    are emitted unpaired).
//  - Every query ends in exactly one of: paired, unanswered_queries,
//    unanswered_evicted, unanswered_at_end.
//  - No allocation once tables are warm (held responses reuse their byte
//    buffers); no exceptions.
#pragma once

#include "dns/message.h"
#include "pairing/bounded_table.h"
#include "util/counters.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace sidetap::pairing {

class PairSink {
public:
    virtual ~PairSink() = default;
    virtual void emit(const dns::DnsMessage& message, std::optional<std::uint64_t> query_time_ns) = 0;
};

struct PairingConfig {
    std::uint64_t query_timeout_ns = 10'000'000'000ULL;
    std::size_t max_queries = 65536;
    std::uint64_t reorder_window_ns = 100'000'000ULL;
    std::size_t max_held_responses = 256;
    std::size_t max_held_bytes = 4u << 20;
    std::size_t max_copies = 16;  // pending copies of one exchange (retransmissions)
};

enum class PairEvent : std::size_t {
    Paired,                 // responses matched to a pending query
    ResponsesBeforeQuery,   // ...of which the response came first in the capture
    PairedWithoutQuestion,  // ...of which one side had no question (matched on the exchange alone)
    QueryTimeOmitted,       // ...of which the query's time was later than the response's: no query_time
    Unanswered,             // queries timed out without a response
    UnansweredEvicted,      // queries dropped from a full table (or beyond max_copies of one exchange)
    UnansweredAtEnd,        // queries still pending when the input ended
    Unsolicited,            // responses with no query
    HeldEvicted,            // held responses emitted early: hold table full
    DuplicateQueries,       // a copy with the same exchange and question was already pending
    Count_
};
inline constexpr std::array<std::string_view, static_cast<std::size_t>(PairEvent::Count_)> kPairEventNames{
    "paired",
    "responses_before_query",
    "paired_without_question",
    "query_time_omitted",
    "unanswered_queries",
    "unanswered_evicted",
    "unanswered_at_end",
    "unsolicited_responses",
    "held_responses_evicted",
    "duplicate_queries"};
using PairCounters = util::CounterSet<PairEvent, static_cast<std::size_t>(PairEvent::Count_)>;

// The exchange: both endpoints, transport and DNS ID (no question); for
// DNS over HTTPS also the HTTP/2 stream.
struct ExchangeKey {
    decode::IpAddress client;
    decode::IpAddress server;
    std::uint16_t client_port = 0;
    std::uint16_t server_port = 0;
    std::uint16_t id = 0;
    decode::Transport transport = decode::Transport::Udp;
    dns::Encryption encryption = dns::Encryption::None;
    std::uint32_t stream_id = 0;  // DoH: the HTTP/2 stream (its DNS ID is 0)

    static ExchangeKey of(const dns::DnsMessage& m);
    friend bool operator==(const ExchangeKey&, const ExchangeKey&) = default;
};

// Seeded hash of the key. Each pairer gets its own random seed: buckets
// differ from run to run, the output does not.
struct ExchangeKeyHash {
    std::uint64_t seed = 0;
    std::size_t operator()(const ExchangeKey& key) const;
};

// The question, compactly: 16 bytes instead of a 255-byte name.
struct QuestionPrint {
    std::uint64_t name_hash = 0;  // seeded hash of the lower-cased wire name
    std::uint16_t qtype = 0;
    std::uint16_t qclass = 0;
    std::uint8_t name_length = 0;
    bool present = false;

    static QuestionPrint of(const dns::Question& question, std::uint64_t seed);
    friend bool operator==(const QuestionPrint&, const QuestionPrint&) = default;
    // Same question, or at least one side has none (it cannot be compared).
    [[nodiscard]] bool pairs_with(const QuestionPrint& other) const {
        return !present || !other.present || *this == other;
    }
};

class Pairer {
public:
    explicit Pairer(const PairingConfig& config = {});

    // `now_ns`: the caller's timer clock (never going back).
    void on_message(const dns::DnsMessage& message, std::uint64_t now_ns, PairSink& sink);
    void on_message(const dns::DnsMessage& message, PairSink& sink) {
        on_message(message, message.timestamp_ns, sink);
    }
    // Times out queries and held responses older than their limits at now_ns.
    void expire(std::uint64_t now_ns, PairSink& sink);
    void finish(PairSink& sink);

    [[nodiscard]] const PairCounters& counters() const { return counters_; }
    [[nodiscard]] std::size_t pending_queries() const { return queries_.size(); }
    [[nodiscard]] std::size_t held_responses() const { return held_.size(); }

private:
    struct PendingQuery {
        QuestionPrint question;
        std::uint64_t time_ns = 0;   // the query's packet time (query_time)
        std::uint64_t clock_ns = 0;  // timer clock when it arrived
        std::uint64_t serial = 0;    // arrival order among copies
    };
    struct HeldResponse {
        QuestionPrint question;
        std::uint64_t clock_ns = 0;
        std::uint64_t serial = 0;
        std::uint32_t slot = 0;  // index into held_messages_
    };
    struct HeldMessage {
        dns::DnsMessage message;
        std::vector<std::uint8_t> wire;  // keeps its capacity across reuse
    };
    using QueryTable = BoundedTable<ExchangeKey, PendingQuery, ExchangeKeyHash>;
    using HeldTable = BoundedTable<ExchangeKey, HeldResponse, ExchangeKeyHash>;

    void on_query(const dns::DnsMessage& query, const ExchangeKey& key, std::size_t hash,
                  const QuestionPrint& question, std::uint64_t now_ns, PairSink& sink);
    void on_response(const dns::DnsMessage& response, const ExchangeKey& key, std::size_t hash,
                     const QuestionPrint& question, std::uint64_t now_ns, PairSink& sink);
    void hold(const dns::DnsMessage& response, const ExchangeKey& key, std::size_t hash,
              const QuestionPrint& question, std::uint64_t now_ns, PairSink& sink);
    void release_held(std::uint32_t index, std::optional<std::uint64_t> query_time, PairSink& sink);
    void emit_paired(const dns::DnsMessage& response, std::uint64_t query_time_ns, PairSink& sink);
    void expire_queries(std::uint64_t now_ns);
    void expire_held(std::uint64_t now_ns, PairSink& sink);

    PairingConfig config_;
    ExchangeKeyHash hash_;
    std::uint64_t name_seed_;
    QueryTable queries_;
    HeldTable held_;
    std::vector<HeldMessage> held_messages_;
    std::vector<std::uint32_t> free_held_slots_;
    std::size_t held_bytes_ = 0;
    std::uint64_t serial_ = 0;
    PairCounters counters_;
};

}  // namespace sidetap::pairing
