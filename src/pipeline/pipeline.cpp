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

Pipeline::Pipeline(const PipelineConfig& config, const std::vector<output::OutputRoute>& routes, std::size_t producer)
    : decoder_(decap_config(config)),
      defrag_(config.defrag),
      tcp_(config.tcp),
      streams_(config.streams),
      classifier_(config.classifier),
      pairer_(config.pairing),
      encoder_(config.envelope),
      clock_(config.max_time_jump_ns),
      fragment_copy_(std::make_unique<std::uint8_t[]>(65535)) {
    setup_extra(config, routes, producer);
}

void Pipeline::setup_extra(const PipelineConfig& config, const std::vector<output::OutputRoute>& routes,
                           std::size_t producer) {
    auto constants = config.origin;
    constants.shard = producer;
    // One group per distinct template (nullopt: none, the envelope's extra).
    std::vector<std::optional<dnstap::ExtraTemplate>> keys;
    for (const auto& r : routes) {
        const auto& key = r.extra ? r.extra : config.extra_template;
        auto it = std::find(keys.begin(), keys.end(), key);
        if (it == keys.end()) {
            ExtraGroup g;
            if (key) {
                g.extra = key->bind(constants);
                if (g.extra.constant()) {
                    g.kind = ExtraGroup::Kind::Constant;
                    const auto text = g.extra.text();
                    g.constant.assign(text.begin(), text.end());
                } else {
                    g.kind = ExtraGroup::Kind::Rendered;
                    want_origin_ = true;
                    want_interface_ = want_interface_ || g.extra.uses(dnstap::Placeholder::Interface);
                    want_comm_ = want_comm_ || g.extra.uses(dnstap::Placeholder::Comm);
                }
            }
            groups_.push_back(std::move(g));
            keys.push_back(key);
            it = keys.end() - 1;
        }
        routes_.push_back(Route{&r.output->producer(producer), r.types, r.wire,
                                static_cast<std::size_t>(it - keys.begin())});
    }
}

void Pipeline::set_file(std::string_view base_name) {
    file_ = want_origin_ ? names_.intern(base_name) : dns::Origin::kNoName;
}

void Pipeline::note_packet(const capture::Packet& packet) {
    dns::reset(current_);
    current_.frame = packet.frame;
    current_.file = file_;
    if (want_interface_ && !packet.interface.empty()) current_.interface = names_.intern(packet.interface);
}

// Messages completed by the packet or chunk in hand carry its facts; those a
// timer or the end of the input releases (a TCP gap given up) carry none.
void Pipeline::set_origin(dns::DnsMessage& message) const {
    if (!want_origin_) return;
    message.origin = in_input_ ? current_ : dns::Origin{};
}

Pipeline::~Pipeline() { finish(); }

void Pipeline::process(const capture::Packet& packet) {
    ++stats_.packets;
    stats_.bytes += packet.data.size();
    now_ = clock_.advance(packet.timestamp_ns);
    if (want_origin_) note_packet(packet);
    in_input_ = true;
    handle_packet(packet);
    in_input_ = false;
    // After the packet: what it completes meets what waits for it (a held
    // response its query, say) before the timers give up on them.
    run_timers(now_);
}

void Pipeline::process_stream(const capture::StreamChunk& chunk) {
    if (finished_) return;
    now_ = clock_.advance(chunk.timestamp_ns);
    if (want_origin_) {
        dns::reset(current_);
        current_.pid = chunk.pid;
        if (want_comm_ && !chunk.comm.empty()) current_.comm = names_.intern(chunk.comm);
    }
    in_input_ = true;
    streams_.add(chunk, now_, *this);
    in_input_ = false;
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
    set_origin(message_);
    if (message_.wire.size() < dns::kHeaderSize) {
        emit(message_, std::nullopt);
        return;
    }
    pairer_.on_message(message_, now_, *this);
}

void Pipeline::handle_packet(const capture::Packet& packet) {
    const auto unknown_before = decoder_.anomalies().get(decode::Anomaly::UnknownLinkType);
    if (!decoder_.decode_link(packet, link_ip_)) {
        if (decoder_.anomalies().get(decode::Anomaly::UnknownLinkType) != unknown_before)
            warn_unknown_link_type(packet.link_type);
        return;
    }
    handle_ip(link_ip_, packet.timestamp_ns);
}

// Decapsulation sits after defragmentation: a tunnel packet split by the
// outer IP layer can be decapsulated only once it is whole, and the datagram
// it carries may itself be a fragment that goes back to the reassembler.
// Each turn of the loop either ends or removes one tunnel, and the decoder
// drops a packet beyond DecapConfig::max_depth tunnels, so it is bounded.
void Pipeline::handle_ip(const decode::IpPacket& packet_ip, std::uint64_t timestamp_ns) {
    // A whole datagram outside any tunnel (the common case) is used where it
    // is; only fragments and tunnels make a working copy.
    const decode::IpPacket* ip = &packet_ip;
    bool in_defrag_buffer = false;
    for (;;) {
        if (ip->is_fragment) {
            if (in_defrag_buffer) {
                // The defragmenter recycles the buffer of the datagram it
                // returned when add() is called again. The fragment lies
                // inside that datagram, so it is at most 65535 bytes.
                std::memcpy(fragment_copy_.get(), ip->payload.data(), ip->payload.size());
                ip_ = *ip;
                ip_.payload = {fragment_copy_.get(), ip->payload.size()};
                ip = &ip_;
            }
            if (!defrag_.add(*ip, now_, next_ip_)) return;
            next_ip_.encap = ip->encap;
            ip_ = next_ip_;
            ip = &ip_;
            in_defrag_buffer = true;
        }
        switch (decoder_.decapsulate(*ip, next_ip_)) {
        case decode::Decap::None: handle_datagram(*ip, timestamp_ns); return;
        case decode::Decap::Dropped: return;
        case decode::Decap::Inner:
            ip_ = next_ip_;
            ip = &ip_;
            break;
        }
    }
}

void Pipeline::handle_datagram(const decode::IpPacket& ip, std::uint64_t timestamp_ns) {
    // The datagram that completes a message (UDP; the segment that completes
    // a DNS-over-TCP message) gives it its VLAN and tunnel.
    if (want_origin_) current_.encap = ip.encap;
    decode::Segment& segment = segment_;
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
    set_origin(message_);
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
    bool any = false;
    for (auto& g : groups_) g.want_wire = g.want_bare = false;
    for (const auto& r : routes_) {
        if ((r.types & bit) == 0) continue;
        auto& g = groups_[r.group];
        (r.wire ? g.want_wire : g.want_bare) = true;
        any = true;
    }
    if (!any) {
        ++stats_.filtered;
        return;
    }
    // One encoding per extra template (usually one for all outputs): each
    // output gets its variant (with or without the DNS bytes) written
    // straight into its queue.
    for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
        const auto& g = groups_[gi];
        if (!g.want_wire && !g.want_bare) continue;
        switch (g.kind) {
        case ExtraGroup::Kind::Envelope: encoder_.prepare(message, type, query_time_ns); break;
        case ExtraGroup::Kind::Constant:
            encoder_.prepare(message, type, query_time_ns, std::span<const std::uint8_t>(g.constant));
            break;
        case ExtraGroup::Kind::Rendered: {
            bool truncated = false;
            const auto n = g.extra.render(message.origin, names_, rendered_, truncated);
            if (truncated) ++stats_.extra_truncated;
            encoder_.prepare(message, type, query_time_ns, std::span<const std::uint8_t>(rendered_.data(), n));
            break;
        }
        }
        stats_.frames_encoded += static_cast<std::uint64_t>(g.want_wire) + static_cast<std::uint64_t>(g.want_bare);
        for (auto& r : routes_) {
            if ((r.types & bit) == 0 || r.group != gi) continue;
            output::WriteResult result = output::WriteResult::Written;
            if (std::uint8_t* dst = r.sink->reserve(encoder_.size(r.wire), result)) {
                encoder_.write(dst, r.wire);
                r.sink->commit();
            }
        }
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
}

void Pipeline::snapshot(CounterSnapshot& out) const {
    out.counters.clear();
    out.link_types.clear();
    for_each_counter([&](std::string_view name, std::uint64_t n) { out.counters.emplace_back(name, n); });
    decoder_.for_each_link_type([&](std::string_view name, std::uint64_t n) { out.link_types.emplace_back(name, n); });
}

void Pipeline::report(std::FILE* out) const {
    CounterSnapshot s;
    snapshot(s);
    pipeline::report(out, s);
}

void CounterSnapshot::add(const CounterSnapshot& other) {
    // Same stages, same order: by position when the names agree.
    for (std::size_t i = 0; i < other.counters.size(); ++i) {
        // Plain references, not a structured binding: lambdas capturing
        // bindings need clang 16 (the fuzz build uses Debian's clang 14).
        const auto& name = other.counters[i].first;
        const auto value = other.counters[i].second;
        if (i < counters.size() && counters[i].first == name) {
            counters[i].second += value;
            continue;
        }
        auto it = std::find_if(counters.begin(), counters.end(), [&](const auto& c) { return c.first == name; });
        if (it != counters.end()) it->second += value;
        else counters.emplace_back(name, value);
    }
    for (const auto& entry : other.link_types) {
        auto it = std::find_if(link_types.begin(), link_types.end(),
                               [&](const auto& c) { return c.first == entry.first; });
        if (it != link_types.end()) it->second += entry.second;
        else link_types.emplace_back(entry.first, entry.second);
    }
}

std::uint64_t CounterSnapshot::get(std::string_view name) const {
    for (const auto& [n, v] : counters)
        if (n == name) return v;
    return 0;
}

void report(std::FILE* out, const CounterSnapshot& s) {
    auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
    std::fprintf(out, "sidetap: packets=%llu bytes=%llu", u(s.get("packets")), u(s.get("bytes")));
    for (const auto& [name, n] : s.link_types)
        std::fprintf(out, " link.%.*s=%llu", static_cast<int>(name.size()), name.data(), u(n));
    std::fprintf(out, "\nsidetap: udp=%llu tcp=%llu dns_queries=%llu dns_responses=%llu frames=%llu\n",
                 u(s.get("udp_datagrams")), u(s.get("tcp_packets")), u(s.get("dns_queries")),
                 u(s.get("dns_responses")), u(s.get("frames")));
    // Every non-zero counter of the inner stages, by name.
    static constexpr std::string_view kHeadline[] = {"packets", "bytes", "udp_datagrams", "tcp_packets",
                                                     "dns_queries", "dns_responses", "frames"};
    std::fprintf(out, "sidetap: counters:");
    bool any = false;
    for (const auto& [name, n] : s.counters) {
        if (n == 0 || std::find(std::begin(kHeadline), std::end(kHeadline), name) != std::end(kHeadline)) continue;
        any = true;
        std::fprintf(out, " %.*s=%llu", static_cast<int>(name.size()), name.data(), u(n));
    }
    if (!any) std::fprintf(out, " none");
    std::fprintf(out, "\n");
}

}  // namespace sidetap::pipeline
