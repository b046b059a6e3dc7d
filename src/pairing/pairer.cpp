#include "pairing/pairer.h"

#include <cstring>
#include <random>

namespace sidetap::pairing {

ExchangeKey ExchangeKey::of(const dns::DnsMessage& m) {
    ExchangeKey key;
    key.client = m.client;
    key.server = m.server;
    key.client_port = m.client_port;
    key.server_port = m.server_port;
    key.id = m.header.id;
    key.transport = m.transport;
    key.encryption = m.encryption;
    key.stream_id = m.stream_id;
    return key;
}

namespace {
// 64x64 -> 128-bit multiply folded to 64 bits: a fast, well-mixing step
// (the core of wyhash-style hashes).
__extension__ typedef unsigned __int128 uint128;

inline std::uint64_t mix(std::uint64_t a, std::uint64_t b) {
    const uint128 r = static_cast<uint128>(a) * b;
    return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
}

constexpr std::uint64_t kP0 = 0xa0761d6478bd642fULL;
constexpr std::uint64_t kP1 = 0xe7037ed1a0b428dbULL;

inline std::uint64_t hash_bytes(std::uint64_t h, const std::uint8_t* p, std::size_t n) {
    while (n >= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        h = mix(h ^ w, kP1);
        p += 8;
        n -= 8;
    }
    if (n != 0) {
        // The last 1-7 bytes, every one of them in `w`, without a memcpy
        // of variable length (a library call per hash): two overlapping
        // 4-byte loads, or the first, middle and last byte.
        std::uint64_t w;
        if (n >= 4) {
            std::uint32_t lo, hi;
            std::memcpy(&lo, p, 4);
            std::memcpy(&hi, p + n - 4, 4);
            w = (std::uint64_t{hi} << 32) | lo;
        } else {
            w = (std::uint64_t{p[0]} << 16) | (std::uint64_t{p[n / 2]} << 8) | p[n - 1];
        }
        h = mix(h ^ w ^ (static_cast<std::uint64_t>(n) << 56), kP1);
    }
    return h;
}

std::uint64_t random_seed() {
    std::random_device device;
    return (static_cast<std::uint64_t>(device()) << 32) ^ device();
}
}  // namespace

std::size_t ExchangeKeyHash::operator()(const ExchangeKey& key) const {
    std::uint64_t h = seed ^ kP0;
    h = hash_bytes(h, key.client.bytes.data(), key.client.size());
    h = hash_bytes(h, key.server.bytes.data(), key.server.size());
    const std::uint64_t small = (std::uint64_t{key.client_port} << 48) | (std::uint64_t{key.server_port} << 32) |
                                (std::uint64_t{key.id} << 16) | static_cast<std::uint64_t>(key.transport);
    if (key.encryption != dns::Encryption::None)
        h = mix(h ^ ((std::uint64_t{key.stream_id} << 8) | static_cast<std::uint64_t>(key.encryption)), kP0);
    return static_cast<std::size_t>(mix(h ^ small, kP1));
}

QuestionPrint QuestionPrint::of(const dns::Question& question, std::uint64_t seed) {
    QuestionPrint print;
    if (!question.present) return print;
    print.present = true;
    print.qtype = question.qtype;
    print.qclass = question.qclass;
    print.name_length = question.name_length;
    print.name_hash = mix(hash_bytes(seed ^ kP1, question.name.data(), question.name_length), kP0);
    return print;
}

Pairer::Pairer(const PairingConfig& config)
    : config_(config),
      hash_{random_seed()},
      name_seed_(random_seed()),
      queries_(config.max_queries, hash_),
      held_(config.max_held_responses, hash_),
      counters_(kPairEventNames) {
    if (config_.max_copies == 0) config_.max_copies = 1;
    held_messages_.resize(config.max_held_responses == 0 ? 1 : config.max_held_responses);
    free_held_slots_.reserve(held_messages_.size());
    for (std::size_t i = held_messages_.size(); i-- > 0;) free_held_slots_.push_back(static_cast<std::uint32_t>(i));
}

void Pairer::on_message(const dns::DnsMessage& message, std::uint64_t now_ns, PairSink& sink) {
    expire_queries(now_ns);
    const auto key = ExchangeKey::of(message);
    // Both tables share the seed, so one hash serves every lookup below.
    const auto hash = hash_(key);
    const auto question = QuestionPrint::of(message.question, name_seed_);
    if (message.is_response) {
        expire_held(now_ns, sink);
        on_response(message, key, hash, question, now_ns, sink);
    } else {
        // A held response meets its query before the held ones are timed
        // out: one whose window ended while no timer ran (the query was
        // delayed by TCP reassembly, say) still finds it.
        on_query(message, key, hash, question, now_ns, sink);
        expire_held(now_ns, sink);
    }
}

void Pairer::on_query(const dns::DnsMessage& query, const ExchangeKey& key, std::size_t hash,
                      const QuestionPrint& question, std::uint64_t now_ns, PairSink& sink) {
    sink.emit(query, std::nullopt);
    // A response that was seen first may be waiting for exactly this query:
    // the oldest one it pairs with takes it.
    if (held_.size() != 0) {
        std::uint32_t best = HeldTable::kNone;
        held_.for_each_match(key, hash, [&](std::uint32_t i) {
            const auto& v = held_.at(i).value;
            if (v.question.pairs_with(question) && (best == HeldTable::kNone || v.serial < held_.at(best).value.serial))
                best = i;
        });
        if (best != HeldTable::kNone) {
            counters_.add(PairEvent::Paired);
            counters_.add(PairEvent::ResponsesBeforeQuery);
            if (!question.present || !held_.at(best).value.question.present)
                counters_.add(PairEvent::PairedWithoutQuestion);
            release_held(best, query.timestamp_ns, sink);
            return;
        }
    }
    std::size_t copies = 0;
    std::uint32_t oldest = QueryTable::kNone;
    bool retransmission = false;
    queries_.for_each_match(key, hash, [&](std::uint32_t i) {
        const auto& v = queries_.at(i).value;
        ++copies;
        if (oldest == QueryTable::kNone || v.serial < queries_.at(oldest).value.serial) oldest = i;
        retransmission = retransmission || v.question == question;
    });
    if (retransmission) counters_.add(PairEvent::DuplicateQueries);
    if (copies >= config_.max_copies) {
        counters_.add(PairEvent::UnansweredEvicted);
        queries_.erase(oldest);
    } else if (queries_.full()) {
        counters_.add(PairEvent::UnansweredEvicted);
        queries_.erase(queries_.oldest());
    }
    queries_.insert(key, PendingQuery{question, query.timestamp_ns, now_ns, serial_++}, hash);
}

void Pairer::on_response(const dns::DnsMessage& response, const ExchangeKey& key, std::size_t hash,
                         const QuestionPrint& question, std::uint64_t now_ns, PairSink& sink) {
    std::uint32_t best = QueryTable::kNone;
    queries_.for_each_match(key, hash, [&](std::uint32_t i) {
        const auto& v = queries_.at(i).value;
        if (v.question.pairs_with(question) && (best == QueryTable::kNone || v.serial < queries_.at(best).value.serial))
            best = i;
    });
    if (best == QueryTable::kNone) {
        hold(response, key, hash, question, now_ns, sink);
        return;
    }
    const auto& pending = queries_.at(best).value;
    const auto query_time = pending.time_ns;
    counters_.add(PairEvent::Paired);
    if (!question.present || !pending.question.present) counters_.add(PairEvent::PairedWithoutQuestion);
    queries_.erase(best);
    emit_paired(response, query_time, sink);
}

void Pairer::emit_paired(const dns::DnsMessage& response, std::uint64_t query_time_ns, PairSink& sink) {
    if (query_time_ns > response.timestamp_ns) {
        counters_.add(PairEvent::QueryTimeOmitted);
        sink.emit(response, std::nullopt);
        return;
    }
    sink.emit(response, query_time_ns);
}

void Pairer::hold(const dns::DnsMessage& response, const ExchangeKey& key, std::size_t hash,
                  const QuestionPrint& question, std::uint64_t now_ns, PairSink& sink) {
    if (config_.reorder_window_ns == 0 || response.wire.size() > config_.max_held_bytes) {
        counters_.add(PairEvent::Unsolicited);
        sink.emit(response, std::nullopt);
        return;
    }
    while (held_.full() || held_bytes_ + response.wire.size() > config_.max_held_bytes) {
        counters_.add(PairEvent::HeldEvicted);
        counters_.add(PairEvent::Unsolicited);
        release_held(held_.oldest(), std::nullopt, sink);
    }
    const auto slot = free_held_slots_.back();
    free_held_slots_.pop_back();
    auto& stored = held_messages_[slot];
    stored.wire.assign(response.wire.begin(), response.wire.end());
    stored.message = response;
    stored.message.wire = stored.wire;
    held_bytes_ += stored.wire.size();
    held_.insert(key, HeldResponse{question, now_ns, serial_++, slot}, hash);
}

void Pairer::release_held(std::uint32_t index, std::optional<std::uint64_t> query_time, PairSink& sink) {
    const auto slot = held_.at(index).value.slot;
    held_.erase(index);
    auto& stored = held_messages_[slot];
    if (query_time)
        emit_paired(stored.message, *query_time, sink);
    else
        sink.emit(stored.message, std::nullopt);
    held_bytes_ -= stored.wire.size();
    free_held_slots_.push_back(slot);
}

void Pairer::expire(std::uint64_t now_ns, PairSink& sink) {
    expire_queries(now_ns);
    expire_held(now_ns, sink);
}

void Pairer::expire_queries(std::uint64_t now_ns) {
    while (queries_.size() != 0) {
        const auto& oldest = queries_.at(queries_.oldest());
        if (now_ns < oldest.value.clock_ns || now_ns - oldest.value.clock_ns <= config_.query_timeout_ns) break;
        counters_.add(PairEvent::Unanswered);
        queries_.erase(queries_.oldest());
    }
}

void Pairer::expire_held(std::uint64_t now_ns, PairSink& sink) {
    while (held_.size() != 0) {
        const auto& oldest = held_.at(held_.oldest());
        if (now_ns < oldest.value.clock_ns || now_ns - oldest.value.clock_ns <= config_.reorder_window_ns) break;
        counters_.add(PairEvent::Unsolicited);
        release_held(held_.oldest(), std::nullopt, sink);
    }
}

void Pairer::finish(PairSink& sink) {
    while (held_.size() != 0) {
        counters_.add(PairEvent::Unsolicited);
        release_held(held_.oldest(), std::nullopt, sink);
    }
    while (queries_.size() != 0) {
        counters_.add(PairEvent::UnansweredAtEnd);
        queries_.erase(queries_.oldest());
    }
}

}  // namespace sidetap::pairing
