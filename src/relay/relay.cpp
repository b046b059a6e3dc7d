#include "relay/relay.h"

#include <algorithm>

namespace sidetap::relay {

Relay::Relay(present::Filter filter, present::Format format, std::FILE* text)
    : filter_(std::move(filter)), formatter_(std::in_place, format), text_(text) {}

Relay::Relay(present::Filter filter, std::vector<output::OutputRoute> routes)
    : filter_(std::move(filter)), routes_(std::move(routes)) {}

Relay::~Relay() { finish(); }

void Relay::on_frame(std::span<const std::uint8_t> frame) {
    ++stats_.frames;
    if (!present::decode(frame, message_)) {
        ++stats_.malformed;
        return;
    }
    if (!filter_.matches(message_)) {
        ++stats_.filtered;
        return;
    }
    if (formatter_) {
        text_buffer_.clear();
        formatter_->append(message_, text_buffer_);
        std::fwrite(text_buffer_.data(), 1, text_buffer_.size(), text_);
        ++stats_.printed;
        return;
    }
    const std::uint32_t bit =
        message_.has_message() ? 1u << static_cast<unsigned>(message_.message().type()) : output::OutputRoute::kAllTypes;
    bool bare_ready = false;
    for (auto& route : routes_) {
        if ((route.types & bit) == 0) continue;
        if (route.wire) {
            route.output->write(frame);
        } else {
            if (!bare_ready) {
                auto* m = message_.mutable_message();
                m->clear_query_message();
                m->clear_response_message();
                bare_.resize(message_.ByteSizeLong());
                message_.SerializeWithCachedSizesToArray(bare_.data());
                bare_ready = true;
            }
            route.output->write(bare_);
        }
        ++stats_.relayed;
    }
}

void Relay::finish() {
    if (finished_) return;
    finished_ = true;
    if (text_) std::fflush(text_);
    for (auto& route : routes_) route.output->close();
}

bool Relay::output_failed() const {
    return output::any_failed(routes_);
}

void Relay::report(std::FILE* out) const {
    auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
    std::fprintf(out, "sidetap: frames=%llu printed=%llu relayed=%llu filtered=%llu malformed=%llu\n",
                 u(stats_.frames), u(stats_.printed), u(stats_.relayed), u(stats_.filtered), u(stats_.malformed));
    output::report_routes(out, routes_);
}

}  // namespace sidetap::relay
