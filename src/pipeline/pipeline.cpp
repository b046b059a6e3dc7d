#include "pipeline/pipeline.h"

#include <algorithm>
#include <cstring>

namespace sidetap::pipeline {

namespace {
// Reassembly and pairing timers run at most this often (expiry clock).
constexpr std::uint64_t kTimerIntervalNs = 100'000'000;
constexpr std::uint16_t kDnsOverTlsPort = 853;

// A UDP datagram from or to a port the classifier watches is DNS, never a
// tunnel: a resolver's upstream query may leave from port 4789.
decode::DecapConfig decap_config(const PipelineConfig& config) {
    decode::DecapConfig decap;
    decap.dns_ports = config.classifier.server_ports;
    if (config.classifier.role == pairing::Role::Resolver)
        decap.dns_ports.insert(decap.dns_ports.end(), config.classifier.upstream_ports.begin(),
                               config.classifier.upstream_ports.end());
    return decap;
}
}  // namespace

Pipeline::Pipeline(const PipelineConfig& config, std::vector<OutputRoute> routes)
    : decoder_(decap_config(config)),
      defrag_(config.defrag),
      tcp_(config.tcp),
      streams_(config.streams),
      classifier_(config.classifier),
      pairer_(config.pairing),
      encoder_(config.envelope),
      routes_(std::move(routes)),
      clock_(config.max_time_jump_ns),
      fragment_copy_(std::make_unique<std::uint8_t[]>(65535)) {}

namespace {
std::vector<OutputRoute> route_all(std::vector<std::unique_ptr<output::Output>> outputs) {
    std::vector<OutputRoute> routes;
    for (auto& out : outputs) routes.push_back(OutputRoute{std::move(out)});
    return routes;
}
}  // namespace

Pipeline::Pipeline(const PipelineConfig& config, std::vector<std::unique_ptr<output::Output>> outputs)
    : Pipeline(config, route_all(std::move(outputs))) {}

Pipeline::~Pipeline() { finish(); }

void Pipeline::process(const capture::Packet& packet) {
    ++stats_.packets;
    stats_.bytes += packet.data.size();
    now_ = clock_.advance(packet.timestamp_ns);
    handle_packet(packet);
    // After the packet: what it completes meets what waits for it (a held
    // response its query, say) before the timers give up on them.
    run_timers(now_);
}

void Pipeline::process_stream(const capture::StreamChunk& chunk) {
    if (finished_) return;
    now_ = clock_.advance(chunk.timestamp_ns);
    streams_.add(chunk, now_, *this);
    run_timers(now_);
}

void Pipeline::on_stream_message(const streams::StreamMessage& m) {
    pairing::DirectedMessage in;
    in.client = m.client;
    in.server = m.server;
    in.client_port = m.client_port;
    in.server_port = m.server_port;
    in.from_client = m.from_client;
    in.upstream = m.process_is_client;
    in.encryption = m.protocol == streams::Protocol::Doh ? dns::Encryption::Doh : dns::Encryption::Dot;
    in.stream_id = m.stream_id;
    in.timestamp_ns = m.timestamp_ns;
    in.wire = m.wire;
    if (!classifier_.classify_directed(in, message_)) return;
    if (message_.wire.size() < dns::kHeaderSize) {
        emit(message_, std::nullopt);
        return;
    }
    pairer_.on_message(message_, now_, *this);
}

void Pipeline::handle_packet(const capture::Packet& packet) {
    decode::IpPacket ip;
    const auto unknown_before = decoder_.anomalies().get(decode::Anomaly::UnknownLinkType);
    if (!decoder_.decode_link(packet, ip)) {
        if (decoder_.anomalies().get(decode::Anomaly::UnknownLinkType) != unknown_before)
            warn_unknown_link_type(packet.link_type);
        return;
    }
    handle_ip(ip, packet.timestamp_ns);
}

// Decapsulation sits after defragmentation: a tunnel packet split by the
// outer IP layer can be decapsulated only once it is whole, and the datagram
// it carries may itself be a fragment that goes back to the reassembler.
// Each turn of the loop either ends or removes one tunnel, and the decoder
// drops a packet beyond DecapConfig::max_depth tunnels, so it is bounded.
void Pipeline::handle_ip(const decode::IpPacket& packet_ip, std::uint64_t timestamp_ns) {
    decode::IpPacket ip = packet_ip;
    decode::IpPacket next;
    bool in_defrag_buffer = false;
    for (;;) {
        if (ip.is_fragment) {
            if (in_defrag_buffer) {
                // The defragmenter recycles the buffer of the datagram it
                // returned when add() is called again. The fragment lies
                // inside that datagram, so it is at most 65535 bytes.
                std::memcpy(fragment_copy_.get(), ip.payload.data(), ip.payload.size());
                ip.payload = {fragment_copy_.get(), ip.payload.size()};
            }
            if (!defrag_.add(ip, now_, next)) return;
            next.encap = ip.encap;
            ip = next;
            in_defrag_buffer = true;
        }
        switch (decoder_.decapsulate(ip, next)) {
        case decode::Decap::None: handle_datagram(ip, timestamp_ns); return;
        case decode::Decap::Dropped: return;
        case decode::Decap::Inner: ip = next; break;
        }
    }
}

void Pipeline::handle_datagram(const decode::IpPacket& ip, std::uint64_t timestamp_ns) {
    decode::Segment segment;
    if (!decoder_.decode_transport(ip, timestamp_ns, segment)) return;
    if (segment.transport == decode::Transport::Udp)
        ++stats_.udp_datagrams;
    else
        ++stats_.tcp_segments;
    if (!classifier_.involves_dns_port(segment)) {
        if (segment.src_port == kDnsOverTlsPort || segment.dst_port == kDnsOverTlsPort)
            ++stats_.dot_skipped;
        else
            ++stats_.not_dns_port;
        return;
    }
    if (segment.transport == decode::Transport::Udp)
        handle_dns(segment, segment.payload, timestamp_ns);
    else
        tcp_.add(segment, now_, *this);
}

void Pipeline::on_message(const decode::Segment& segment, std::span<const std::uint8_t> wire,
                          std::uint64_t timestamp_ns) {
    handle_dns(segment, wire, timestamp_ns);
}

void Pipeline::handle_dns(const decode::Segment& segment, std::span<const std::uint8_t> wire,
                          std::uint64_t timestamp_ns) {
    if (!classifier_.classify(segment, wire, timestamp_ns, message_)) return;
    // A kept malformed message too short for an ID has no exchange to pair.
    if (message_.wire.size() < dns::kHeaderSize) {
        emit(message_, std::nullopt);
        return;
    }
    pairer_.on_message(message_, now_, *this);
}

void Pipeline::emit(const dns::DnsMessage& message, std::optional<std::uint64_t> query_time_ns) {
    if (message.is_response)
        ++stats_.dns_responses;
    else
        ++stats_.dns_queries;
    const auto type = classifier_.type_of(message);
    const std::uint32_t bit = 1u << static_cast<unsigned>(type);
    bool want_wire = false;
    bool want_bare = false;
    for (const auto& r : routes_) {
        if ((r.types & bit) == 0) continue;
        (r.wire ? want_wire : want_bare) = true;
    }
    if (!want_wire && !want_bare) {
        ++stats_.filtered;
        return;
    }
    // The encoder reuses one buffer: finish with one variant before the other.
    for (const bool wire : {true, false}) {
        if (wire ? !want_wire : !want_bare) continue;
        const auto frame = encoder_.encode(message, type, query_time_ns, wire);
        ++stats_.frames_encoded;
        for (auto& r : routes_)
            if ((r.types & bit) != 0 && r.wire == wire) r.output->write(frame);
    }
}

void Pipeline::advance_idle(std::uint64_t monotonic_ns) {
    if (finished_) return;
    now_ = clock_.idle(monotonic_ns);
    run_timers(now_);
}

void Pipeline::run_timers(std::uint64_t now_ns) {
    if (now_ns < last_timer_ns_ + kTimerIntervalNs) return;
    last_timer_ns_ = now_ns;
    defrag_.expire(now_ns);
    tcp_.expire(now_ns, *this);
    streams_.expire(now_ns, *this);
    pairer_.expire(now_ns, *this);
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
    defrag_.finish();
    tcp_.finish(*this);
    streams_.finish(*this);
    pairer_.finish(*this);
    for (auto& r : routes_) r.output->close();
}

bool Pipeline::output_failed() const {
    return std::any_of(routes_.begin(), routes_.end(), [](const auto& r) {
        // Failed: gave up, or ended with frames it could not deliver. A
        // connection that dropped and came back is not a failure, but it
        // may have lost what the collector accepted and never read (Frame
        // Streams has no acknowledgements): that shows as unconfirmed.
        return r.output->stats().failed;
    });
}

void Pipeline::report(std::FILE* out) const {
    auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
    std::fprintf(out, "sidetap: packets=%llu bytes=%llu", u(stats_.packets), u(stats_.bytes));
    decoder_.for_each_link_type([&](std::string_view name, std::uint64_t n) {
        std::fprintf(out, " link.%.*s=%llu", static_cast<int>(name.size()), name.data(), u(n));
    });
    std::fprintf(out, "\nsidetap: udp=%llu tcp=%llu dns_queries=%llu dns_responses=%llu frames=%llu\n",
                 u(stats_.udp_datagrams), u(stats_.tcp_segments), u(stats_.dns_queries), u(stats_.dns_responses),
                 u(stats_.frames_encoded));
    // Every non-zero counter of the inner stages, by name.
    static constexpr std::string_view kHeadline[] = {"packets", "bytes", "udp_datagrams", "tcp_packets",
                                                     "dns_queries", "dns_responses", "frames"};
    std::fprintf(out, "sidetap: counters:");
    bool any = false;
    for_each_counter([&](std::string_view name, std::uint64_t n) {
        if (n == 0 || std::find(std::begin(kHeadline), std::end(kHeadline), name) != std::end(kHeadline)) return;
        any = true;
        std::fprintf(out, " %.*s=%llu", static_cast<int>(name.size()), name.data(), u(n));
    });
    if (!any) std::fprintf(out, " none");
    std::fprintf(out, "\n");
    report_routes(out, routes_);
}

void report_routes(std::FILE* out, const std::vector<OutputRoute>& routes) {
    auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
    for (const auto& r : routes) {
        const auto s = r.output->stats();
        std::fprintf(out,
                     "sidetap: output %s frames_written=%llu bytes=%llu dropped=%llu too_large=%llu errors=%llu "
                     "reconnects=%llu open_failures=%llu unconfirmed=%llu%s\n",
                     r.output->name().c_str(), u(s.frames_written), u(s.bytes_written), u(s.frames_dropped),
                     u(s.frames_too_large), u(s.write_errors), u(s.reconnects), u(s.open_failures),
                     u(s.frames_unconfirmed), s.failed ? " FAILED" : "");
    }
}

}  // namespace sidetap::pipeline
