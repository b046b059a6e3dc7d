#include "pipeline/pipeline.h"

#include <algorithm>

namespace sidetap::pipeline {

Pipeline::Pipeline(const PipelineConfig& config, std::vector<std::unique_ptr<output::Output>> outputs)
    : classifier_(config.classifier), encoder_(config.envelope), outputs_(std::move(outputs)) {}

Pipeline::~Pipeline() { finish(); }

void Pipeline::process(const capture::Packet& packet) {
    ++stats_.packets;
    stats_.bytes += packet.data.size();
    decode::IpPacket ip;
    const auto unknown_before = decoder_.anomalies().get(decode::Anomaly::UnknownLinkType);
    if (!decoder_.decode_link(packet, ip)) {
        if (decoder_.anomalies().get(decode::Anomaly::UnknownLinkType) != unknown_before)
            warn_unknown_link_type(packet.link_type);
        return;
    }
    if (ip.is_fragment) {
        ++stats_.ip_fragments_skipped;
        return;
    }
    decode::Segment segment;
    if (!decoder_.decode_transport(ip, packet.timestamp_ns, segment)) return;
    if (segment.transport == decode::Transport::Udp) {
        ++stats_.udp_datagrams;
        handle_udp(segment);
    } else {
        ++stats_.tcp_segments;
        if (classifier_.involves_dns_port(segment) && !segment.payload.empty()) ++stats_.tcp_segments_skipped;
    }
}

void Pipeline::handle_udp(const decode::Segment& segment) {
    if (!classifier_.classify(segment, segment.payload, segment.timestamp_ns, message_)) return;
    emit(message_);
}

void Pipeline::emit(const dns::DnsMessage& message) {
    if (message.is_response)
        ++stats_.dns_responses;
    else
        ++stats_.dns_queries;
    const auto frame = encoder_.encode(message, classifier_.type_of(message));
    ++stats_.frames_encoded;
    for (auto& out : outputs_) out->write(frame);
}

void Pipeline::warn_unknown_link_type(std::uint32_t link_type) {
    const auto end = warned_link_types_.begin() + static_cast<std::ptrdiff_t>(warned_count_);
    if (std::find(warned_link_types_.begin(), end, link_type) != end) return;
    // Warn once per link type (bounded); later ones are only counted.
    if (warned_count_ < warned_link_types_.size()) warned_link_types_[warned_count_++] = link_type;
    std::fprintf(stderr, "sidetap: link type %u is not supported; its packets are counted as unknown_link_type\n",
                 link_type);
}

void Pipeline::finish() {
    if (finished_) return;
    finished_ = true;
    for (auto& out : outputs_) out->close();
}

bool Pipeline::output_failed() const {
    return std::any_of(outputs_.begin(), outputs_.end(),
                       [](const auto& out) { return out->stats().write_errors != 0; });
}

void Pipeline::report(std::FILE* out) const {
    std::fprintf(out, "sidetap: packets=%llu bytes=%llu", static_cast<unsigned long long>(stats_.packets),
                 static_cast<unsigned long long>(stats_.bytes));
    decoder_.for_each_link_type([&](std::string_view name, std::uint64_t n) {
        std::fprintf(out, " link.%.*s=%llu", static_cast<int>(name.size()), name.data(),
                     static_cast<unsigned long long>(n));
    });
    std::fprintf(out, "\nsidetap: udp=%llu tcp=%llu dns_queries=%llu dns_responses=%llu frames=%llu\n",
                 static_cast<unsigned long long>(stats_.udp_datagrams),
                 static_cast<unsigned long long>(stats_.tcp_segments),
                 static_cast<unsigned long long>(stats_.dns_queries),
                 static_cast<unsigned long long>(stats_.dns_responses),
                 static_cast<unsigned long long>(stats_.frames_encoded));
    std::fprintf(out, "sidetap: anomalies:");
    bool any = false;
    auto print = [&](std::string_view name, std::uint64_t n) {
        if (n == 0) return;
        any = true;
        std::fprintf(out, " %.*s=%llu", static_cast<int>(name.size()), name.data(), static_cast<unsigned long long>(n));
    };
    decoder_.anomalies().for_each(print);
    classifier_.skipped().for_each(print);
    print("dns_bad_question", classifier_.bad_question());
    print("ip_fragments_not_reassembled", stats_.ip_fragments_skipped);
    print("dns_over_tcp_not_reassembled", stats_.tcp_segments_skipped);
    if (!any) std::fprintf(out, " none");
    std::fprintf(out, "\n");
    for (const auto& o : outputs_) {
        const auto& s = o->stats();
        std::fprintf(out, "sidetap: output %s frames_written=%llu bytes=%llu dropped=%llu too_large=%llu errors=%llu\n",
                     o->name().c_str(), static_cast<unsigned long long>(s.frames_written),
                     static_cast<unsigned long long>(s.bytes_written), static_cast<unsigned long long>(s.frames_dropped),
                     static_cast<unsigned long long>(s.frames_too_large),
                     static_cast<unsigned long long>(s.write_errors));
    }
}

}  // namespace sidetap::pipeline
