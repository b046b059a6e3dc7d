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
    key.has_question = m.question.present;
    if (m.question.present) {
        key.qtype = m.question.qtype;
        key.qclass = m.question.qclass;
        key.name_length = m.question.name_length;
        std::memcpy(key.name.data(), m.question.name.data(), m.question.name_length);
    }
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
        std::uint64_t w = 0;
        std::memcpy(&w, p, n);
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
                                (std::uint64_t{key.id} << 16) | key.qtype;
    h = mix(h ^ small, kP0);
    h = hash_bytes(h, key.name.data(), key.name_length);
    return static_cast<std::size_t>(mix(h, kP1 ^ key.qclass));
}

Pairer::Pairer(const PairingConfig& config)
    : config_(config),
      hash_{random_seed()},
      queries_(config.max_queries, hash_),
      held_(config.max_held_responses, hash_),
      counters_(kPairEventNames) {
    held_messages_.resize(config.max_held_responses == 0 ? 1 : config.max_held_responses);
    free_held_slots_.reserve(held_messages_.size());
    for (std::size_t i = held_messages_.size(); i-- > 0;) free_held_slots_.push_back(static_cast<std::uint32_t>(i));
}

void Pairer::on_message(const dns::DnsMessage& message, PairSink& sink) {
    expire(message.timestamp_ns, sink);
    const auto key = ExchangeKey::of(message);
    // Both tables share the seed, so one hash serves every lookup below.
    const auto hash = hash_(key);
    if (!message.is_response) {
        sink.emit(message, std::nullopt);
        // A response that was seen first is waiting for exactly this query.
        if (held_.size() != 0) {
            const auto h = held_.find(key, hash);
            if (h != decltype(held_)::kNone) {
                counters_.add(PairEvent::Paired);
                counters_.add(PairEvent::ResponsesBeforeQuery);
                release_held(h, message.timestamp_ns, sink);
                return;
            }
        }
        const auto q = queries_.find(key, hash);
        if (q != decltype(queries_)::kNone) {
            counters_.add(PairEvent::DuplicateQueries);
            ++queries_.at(q).value.extra;
            return;
        }
        if (queries_.full()) {
            counters_.add(PairEvent::UnansweredEvicted, 1 + queries_.at(queries_.oldest()).value.extra);
            queries_.erase(queries_.oldest());
        }
        queries_.insert(key, PendingQuery{message.timestamp_ns, 0}, hash);
        return;
    }
    const auto q = queries_.find(key, hash);
    if (q != decltype(queries_)::kNone) {
        auto& pending = queries_.at(q).value;
        const auto query_time = pending.time_ns;
        counters_.add(PairEvent::Paired);
        if (pending.extra > 0)
            --pending.extra;
        else
            queries_.erase(q);
        sink.emit(message, query_time);
        return;
    }
    hold(message, key, hash, sink);
}

void Pairer::hold(const dns::DnsMessage& response, const ExchangeKey& key, std::size_t hash, PairSink& sink) {
    if (config_.reorder_window_ns == 0 || held_.find(key, hash) != decltype(held_)::kNone ||
        response.wire.size() > config_.max_held_bytes) {
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
    held_.insert(key, HeldResponse{response.timestamp_ns, slot}, hash);
}

void Pairer::release_held(std::uint32_t index, std::optional<std::uint64_t> query_time, PairSink& sink) {
    const auto slot = held_.at(index).value.slot;
    held_.erase(index);
    auto& stored = held_messages_[slot];
    sink.emit(stored.message, query_time);
    held_bytes_ -= stored.wire.size();
    free_held_slots_.push_back(slot);
}

void Pairer::expire(std::uint64_t now_ns, PairSink& sink) {
    while (queries_.size() != 0) {
        const auto& oldest = queries_.at(queries_.oldest());
        if (now_ns < oldest.value.time_ns || now_ns - oldest.value.time_ns <= config_.query_timeout_ns) break;
        counters_.add(PairEvent::Unanswered, 1 + oldest.value.extra);
        queries_.erase(queries_.oldest());
    }
    while (held_.size() != 0) {
        const auto& oldest = held_.at(held_.oldest());
        if (now_ns < oldest.value.time_ns || now_ns - oldest.value.time_ns <= config_.reorder_window_ns) break;
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
        counters_.add(PairEvent::UnansweredAtEnd, 1 + queries_.at(queries_.oldest()).value.extra);
        queries_.erase(queries_.oldest());
    }
}

}  // namespace sidetap::pairing
