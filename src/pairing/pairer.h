// Pairer: matches responses to their queries and gives each response the
// query_time of its query.
//
// Contract:
//  - Messages are keyed on the whole exchange: client address and port,
//    server address and port, transport, DNS ID and question (qname
//    compared case-insensitively — the parser lower-cases it — qtype,
//    qclass).
//  - on_message() emits through the sink: a query at once; a response at
//    once with its query's time when the query is pending.
//  - A response with no pending query is held for reorder_window_ns of
//    packet time (captures from several CPUs can show a response just
//    before its query); if its query arrives in that window, the query is
//    emitted and then the response with the query's time
//    (responses_before_query). Otherwise the response is emitted without
//    query_time and counted as unsolicited.
//  - Queries wait query_timeout_ns (packet time); after that they count as
//    unanswered. Both tables are bounded (max_queries, max_held_responses,
//    max_held_bytes); overflow evicts the oldest entry and counts it.
//  - Time only moves forward through on_message()/expire(); finish() ends
//    the input (pending queries count as unanswered, held responses are
//    emitted unpaired).
//  - No allocation once tables are warm (held responses reuse their byte
//    buffers); no exceptions.
#pragma once

#include "dns/message.h"
#include "pairing/bounded_table.h"
#include "util/counters.h"

#include <array>
#include <cstdint>
#include <cstring>
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
};

enum class PairEvent : std::size_t {
    Paired,                 // responses matched to a pending query
    ResponsesBeforeQuery,   // ...of which the response came first in the capture
    Unanswered,             // queries timed out without a response
    UnansweredEvicted,      // queries dropped from a full table
    UnansweredAtEnd,        // queries still pending when the input ended
    Unsolicited,            // responses with no query
    HeldEvicted,            // held responses emitted early: hold table full
    DuplicateQueries,       // a query with the same key was already pending
    Count_
};
inline constexpr std::array<std::string_view, static_cast<std::size_t>(PairEvent::Count_)> kPairEventNames{
    "paired",          "responses_before_query", "unanswered_queries",   "unanswered_evicted",
    "unanswered_at_end", "unsolicited_responses", "held_responses_evicted", "duplicate_queries"};
using PairCounters = util::CounterSet<PairEvent, static_cast<std::size_t>(PairEvent::Count_)>;

struct ExchangeKey {
    decode::IpAddress client;
    decode::IpAddress server;
    std::uint16_t client_port = 0;
    std::uint16_t server_port = 0;
    std::uint16_t id = 0;
    std::uint16_t qtype = 0;
    std::uint16_t qclass = 0;
    decode::Transport transport = decode::Transport::Udp;
    bool has_question = false;
    std::uint8_t name_length = 0;
    // Lower-cased wire name; only [0, name_length) is meaningful. Left
    // uninitialized on purpose: a key is built per message, and clearing
    // 255 bytes each time showed up in profiles.
    std::array<std::uint8_t, dns::kMaxNameWire> name;

    static ExchangeKey of(const dns::DnsMessage& m);
    friend bool operator==(const ExchangeKey& a, const ExchangeKey& b) {
        return a.client_port == b.client_port && a.server_port == b.server_port && a.id == b.id &&
               a.qtype == b.qtype && a.qclass == b.qclass && a.transport == b.transport &&
               a.has_question == b.has_question && a.name_length == b.name_length && a.client == b.client &&
               a.server == b.server && std::memcmp(a.name.data(), b.name.data(), a.name_length) == 0;
    }
};

// Seeded hash over the key's bytes, 8 at a time. Each table gets its own
// random seed: buckets differ from run to run, the output does not.
struct ExchangeKeyHash {
    std::uint64_t seed = 0;
    std::size_t operator()(const ExchangeKey& key) const;
};

class Pairer {
public:
    explicit Pairer(const PairingConfig& config = {});

    void on_message(const dns::DnsMessage& message, PairSink& sink);
    // Times out queries and held responses older than their limits at now_ns.
    void expire(std::uint64_t now_ns, PairSink& sink);
    void finish(PairSink& sink);

    [[nodiscard]] const PairCounters& counters() const { return counters_; }
    [[nodiscard]] std::size_t pending_queries() const { return queries_.size(); }
    [[nodiscard]] std::size_t held_responses() const { return held_.size(); }

private:
    struct PendingQuery {
        std::uint64_t time_ns = 0;
        std::uint32_t extra = 0;  // duplicates still waiting for an answer
    };
    struct HeldResponse {
        std::uint64_t time_ns = 0;
        std::uint32_t slot = 0;  // index into held_messages_
    };
    struct HeldMessage {
        dns::DnsMessage message;
        std::vector<std::uint8_t> wire;  // keeps its capacity across reuse
    };

    void hold(const dns::DnsMessage& response, const ExchangeKey& key, std::size_t hash, PairSink& sink);
    void release_held(std::uint32_t index, std::optional<std::uint64_t> query_time, PairSink& sink);

    PairingConfig config_;
    ExchangeKeyHash hash_;
    BoundedTable<ExchangeKey, PendingQuery, ExchangeKeyHash> queries_;
    BoundedTable<ExchangeKey, HeldResponse, ExchangeKeyHash> held_;
    std::vector<HeldMessage> held_messages_;
    std::vector<std::uint32_t> free_held_slots_;
    std::size_t held_bytes_ = 0;
    PairCounters counters_;
};

}  // namespace sidetap::pairing
