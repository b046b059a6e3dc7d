// Classifier: decides which side of a DNS exchange is the server and which
// dnstap message type a DNS message becomes.
//
// Contract:
//  - A segment to a server port (and not from one) is a query; one from a
//    server port (and not to one) is a response. When both ports are server
//    ports the QR bit decides. Neither port a server port: not DNS for us.
//  - If --server-addr addresses are configured, a datagram whose ports are
//    ambiguous is resolved by address (the server side is the configured
//    address).
//  - Malformed messages are counted and, by default, not emitted (Knot and
//    BIND do not log them either): shorter than a DNS header
//    (dns_too_short), a QR bit that contradicts the port direction
//    (qr_direction_mismatch: a "response" sent to a server port or a
//    "query" from one), a first question that does not parse
//    (dns_bad_question). With keep_malformed they are emitted as well, as
//    Unbound logs every datagram it receives: their direction comes from
//    the ports (and --server-addr), never from the QR bit, and they are
//    counted once more (malformed_kept) and marked (DnsMessage::malformed).
//    A message too short to have a QR bit between two server ports, whose
//    addresses do not decide either, has no direction and is never kept.
//  - Role resolver: exchanges the local server answers stay CLIENT_*; the
//    exchanges it starts itself towards other servers (its upstream
//    traffic) become RESOLVER_*. With --server-addr, an exchange is upstream
//    when its client is a local address and its server is not. Without it,
//    an exchange is upstream when its server port is an upstream port
//    (default 53) but not one of the local server ports (-p).
//  - No allocation, no exceptions.
#pragma once

#include "decode/packet.h"
#include "dnstap/message_type.h"
#include "dns/message.h"
#include "util/counters.h"

#include <bitset>
#include <cstdint>
#include <string_view>
#include <vector>

namespace sidetap::pairing {

enum class Role : std::uint8_t { Client, Auth, Resolver };

// A DNS message whose direction is known without ports: the plaintext of a
// TLS connection (streams/), sent by its client or by its server.
struct DirectedMessage {
    decode::IpAddress client;
    decode::IpAddress server;
    std::uint16_t client_port = 0;
    std::uint16_t server_port = 0;
    bool from_client = true;
    bool upstream = false;  // the local (observed) process is the client
    dns::Encryption encryption = dns::Encryption::None;
    std::uint32_t stream_id = 0;
    std::uint64_t timestamp_ns = 0;
    std::span<const std::uint8_t> wire;
};

struct ClassifierConfig {
    std::vector<std::uint16_t> server_ports{53};
    std::vector<decode::IpAddress> server_addresses;
    std::vector<std::uint16_t> upstream_ports{53};  // resolver role only
    Role role = Role::Client;
    bool keep_malformed = false;
};

enum class Skip : std::size_t {
    NotServerPort,        // neither port is a server port
    QrDirectionMismatch,  // QR bit contradicts the port direction
    DnsTooShort,          // payload shorter than a DNS header
    Count_
};
inline constexpr std::array<std::string_view, static_cast<std::size_t>(Skip::Count_)> kSkipNames{
    "not_server_port", "qr_direction_mismatch", "dns_too_short"};
using SkipCounters = util::CounterSet<Skip, static_cast<std::size_t>(Skip::Count_)>;

class Classifier {
public:
    explicit Classifier(const ClassifierConfig& config);

    // True when either port is a DNS port we watch (cheap pre-filter before
    // reassembly or DNS parsing).
    [[nodiscard]] bool involves_dns_port(const decode::Segment& segment) const {
        return dns_ports_[segment.src_port] || dns_ports_[segment.dst_port];
    }

    // Fills `out` (addresses, ports, transport, direction, header/question,
    // wire, timestamp, malformed) from one DNS message carried by `segment`
    // with bytes `wire`. Returns false (counted) when it is not a message to
    // emit. A kept malformed message may be shorter than a DNS header.
    bool classify(const decode::Segment& segment, std::span<const std::uint8_t> wire, std::uint64_t timestamp_ns,
                  dns::DnsMessage& out);

    // The same for a message whose direction is known (DirectedMessage): a
    // message from the client is a query, one from the server a response;
    // the same checks and counters (too short, bad question, QR bit
    // against the direction), the same --keep-malformed. The transport is
    // TCP; upstream (role resolver) when the local process is the client.
    bool classify_directed(const DirectedMessage& in, dns::DnsMessage& out);

    [[nodiscard]] dnstap::MessageType type_of(const dns::DnsMessage& message) const;

    [[nodiscard]] const SkipCounters& skipped() const { return skipped_; }
    [[nodiscard]] std::uint64_t bad_question() const { return bad_question_; }
    [[nodiscard]] std::uint64_t malformed_kept() const { return malformed_kept_; }

private:
    [[nodiscard]] bool is_server_address(const decode::IpAddress& address) const;

    std::bitset<65536> server_ports_;
    std::bitset<65536> dns_ports_;  // server ports, plus upstream ports for role resolver
    std::vector<decode::IpAddress> server_addresses_;
    Role role_;
    bool keep_malformed_;
    SkipCounters skipped_;
    std::uint64_t bad_question_ = 0;
    std::uint64_t malformed_kept_ = 0;
};

}  // namespace sidetap::pairing
