#include "pairing/pairer.h"

#include <cstring>

namespace sidetap::pairing {

ExchangeKey ExchangeKey::of(const dns::DnsMessage& m) {
    ExchangeKey key;
    key.client = m.client;
    key.server = m.server;
    key.client_port = m.client_port;
    key.server_port = m.server_port;
    key.id = m.header.id;
    key.transport = m.transport;
    key.question.present = m.question.present;
    if (m.question.present) {
        key.question.qtype = m.question.qtype;
        key.question.qclass = m.question.qclass;
        key.question.name_length = m.question.name_length;
        std::memcpy(key.question.name.data(), m.question.name.data(), m.question.name_length);
    }
    return key;
}

std::size_t ExchangeKeyHash::operator()(const ExchangeKey& key) const {
    // FNV-1a over the fields that identify the exchange; equality is still
    // checked on the whole key.
    std::uint64_t h = 1469598103934665603ULL;
    auto mix = [&h](const std::uint8_t* p, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
    };
    auto mix16 = [&](std::uint16_t v) {
        const std::uint8_t b[2] = {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8)};
        mix(b, 2);
    };
    mix(key.client.bytes.data(), key.client.size());
    mix(key.server.bytes.data(), key.server.size());
    mix16(key.client_port);
    mix16(key.server_port);
    mix16(key.id);
    mix16(key.question.qtype);
    mix(key.question.name.data(), key.question.name_length);
    return static_cast<std::size_t>(h ^ (h >> 29));
}

Pairer::Pairer(const PairingConfig& config)
    : config_(config),
      queries_(config.max_queries),
      held_(config.max_held_responses),
      counters_(kPairEventNames) {
    held_messages_.resize(config.max_held_responses == 0 ? 1 : config.max_held_responses);
    free_held_slots_.reserve(held_messages_.size());
    for (std::size_t i = held_messages_.size(); i-- > 0;) free_held_slots_.push_back(static_cast<std::uint32_t>(i));
}

void Pairer::on_message(const dns::DnsMessage& message, PairSink& sink) {
    expire(message.timestamp_ns, sink);
    const auto key = ExchangeKey::of(message);
    if (!message.is_response) {
        sink.emit(message, std::nullopt);
        // A response that was seen first is waiting for exactly this query.
        if (held_.size() != 0) {
            const auto h = held_.find(key);
            if (h != decltype(held_)::kNone) {
                counters_.add(PairEvent::Paired);
                counters_.add(PairEvent::ResponsesBeforeQuery);
                release_held(h, message.timestamp_ns, sink);
                return;
            }
        }
        const auto q = queries_.find(key);
        if (q != decltype(queries_)::kNone) {
            counters_.add(PairEvent::DuplicateQueries);
            ++queries_.at(q).value.extra;
            return;
        }
        if (queries_.full()) {
            counters_.add(PairEvent::UnansweredEvicted, 1 + queries_.at(queries_.oldest()).value.extra);
            queries_.erase(queries_.oldest());
        }
        queries_.insert(key, PendingQuery{message.timestamp_ns, 0});
        return;
    }
    const auto q = queries_.find(key);
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
    hold(message, key, sink);
}

void Pairer::hold(const dns::DnsMessage& response, const ExchangeKey& key, PairSink& sink) {
    if (config_.reorder_window_ns == 0 || held_.find(key) != decltype(held_)::kNone ||
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
    held_.insert(key, HeldResponse{response.timestamp_ns, slot});
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
