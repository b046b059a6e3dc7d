#include "dnstap.pb.h"
#include "dnstap/encoder.h"
#include "dnstap/reference_encoder.h"
#include "pairing/classifier.h"

#include <gtest/gtest.h>

using namespace sidetap;

namespace {
// A query for "a.test" A IN with id 0x1234.
std::vector<std::uint8_t> query_wire(bool response = false) {
    std::vector<std::uint8_t> w = {0x12, 0x34, static_cast<std::uint8_t>(response ? 0x81 : 0x01), 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
                                   1, 'a', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1};
    return w;
}

decode::Segment udp_segment(std::uint16_t sport, std::uint16_t dport, std::span<const std::uint8_t> payload) {
    decode::Segment s;
    s.src.family = 4;
    s.src.bytes = {192, 0, 2, 1};
    s.dst.family = 4;
    s.dst.bytes = {192, 0, 2, 53};
    s.src_port = sport;
    s.dst_port = dport;
    s.transport = decode::Transport::Udp;
    s.payload = payload;
    s.timestamp_ns = 1'700'000'000'123'456'789ULL;
    return s;
}
}  // namespace

TEST(Classifier, DatagramToServerPortIsAQueryFromTheClient) {
    pairing::Classifier c({});
    const auto wire = query_wire();
    const auto seg = udp_segment(40000, 53, wire);
    dns::DnsMessage m;
    ASSERT_TRUE(c.classify(seg, wire, seg.timestamp_ns, m));
    EXPECT_FALSE(m.is_response);
    EXPECT_EQ(m.client, seg.src);
    EXPECT_EQ(m.client_port, 40000);
    EXPECT_EQ(m.server_port, 53);
    EXPECT_EQ(c.type_of(m), sidetap::dnstap::MessageType::ClientQuery);
}

TEST(Classifier, DatagramFromServerPortIsAResponseToTheClient) {
    pairing::ClassifierConfig cfg;
    cfg.role = pairing::Role::Auth;
    pairing::Classifier c(cfg);
    const auto wire = query_wire(true);
    const auto seg = udp_segment(53, 40000, wire);
    dns::DnsMessage m;
    ASSERT_TRUE(c.classify(seg, wire, seg.timestamp_ns, m));
    EXPECT_TRUE(m.is_response);
    EXPECT_EQ(m.client, seg.dst);
    EXPECT_EQ(m.server, seg.src);
    EXPECT_EQ(c.type_of(m), sidetap::dnstap::MessageType::AuthResponse);
}

TEST(Classifier, BothServerPortsLetTheQrBitDecide) {
    pairing::Classifier c({});
    const auto wire = query_wire(true);
    const auto seg = udp_segment(53, 53, wire);
    dns::DnsMessage m;
    ASSERT_TRUE(c.classify(seg, wire, seg.timestamp_ns, m));
    EXPECT_TRUE(m.is_response);
}

TEST(Classifier, ServerAddressDecidesWhenBothPortsAreServerPorts) {
    pairing::ClassifierConfig cfg;
    decode::IpAddress server;
    server.family = 4;
    server.bytes = {192, 0, 2, 1};  // the source of the segment
    cfg.server_addresses.push_back(server);
    pairing::Classifier c(cfg);
    const auto wire = query_wire(true);
    const auto seg = udp_segment(53, 53, wire);
    dns::DnsMessage m;
    ASSERT_TRUE(c.classify(seg, wire, seg.timestamp_ns, m));
    EXPECT_TRUE(m.is_response);
    EXPECT_EQ(m.server, seg.src);
}

TEST(Classifier, QrBitContradictingThePortIsCountedAndSkipped) {
    pairing::Classifier c({});
    const auto wire = query_wire(true);  // a "response" sent to port 53
    const auto seg = udp_segment(40000, 53, wire);
    dns::DnsMessage m;
    EXPECT_FALSE(c.classify(seg, wire, seg.timestamp_ns, m));
    EXPECT_EQ(c.skipped().get(pairing::Skip::QrDirectionMismatch), 1u);
}

TEST(Classifier, OtherPortsAndShortPayloadsAreCounted) {
    pairing::Classifier c({});
    const auto wire = query_wire();
    dns::DnsMessage m;
    EXPECT_FALSE(c.classify(udp_segment(1000, 2000, wire), wire, 0, m));
    const std::uint8_t shorty[5] = {};
    EXPECT_FALSE(c.classify(udp_segment(1000, 53, shorty), shorty, 0, m));
    EXPECT_EQ(c.skipped().get(pairing::Skip::NotServerPort), 1u);
    EXPECT_EQ(c.skipped().get(pairing::Skip::DnsTooShort), 1u);
}

TEST(Classifier, MalformedMessagesAreCountedAndDroppedByDefault) {
    pairing::Classifier c({});
    dns::DnsMessage m;
    const std::uint8_t shorty[5] = {1, 2, 3, 4, 5};
    EXPECT_FALSE(c.classify(udp_segment(40000, 53, shorty), shorty, 0, m));
    const auto qr_set = query_wire(true);
    EXPECT_FALSE(c.classify(udp_segment(40000, 53, qr_set), qr_set, 0, m));
    auto bad_name = query_wire();
    bad_name[12] = 0x40;  // extended label type: the question does not parse
    EXPECT_FALSE(c.classify(udp_segment(40000, 53, bad_name), bad_name, 0, m));
    EXPECT_EQ(c.skipped().get(pairing::Skip::DnsTooShort), 1u);
    EXPECT_EQ(c.skipped().get(pairing::Skip::QrDirectionMismatch), 1u);
    EXPECT_EQ(c.bad_question(), 1u);
    EXPECT_EQ(c.malformed_kept(), 0u);
}

TEST(Classifier, KeepMalformedEmitsThemWithTheDirectionOfTheirPorts) {
    pairing::ClassifierConfig cfg;
    cfg.keep_malformed = true;
    pairing::Classifier c(cfg);
    dns::DnsMessage m;
    // To a server port: queries, whatever the bytes say.
    const std::uint8_t shorty[5] = {1, 2, 3, 4, 5};
    ASSERT_TRUE(c.classify(udp_segment(40000, 53, shorty), shorty, 0, m));
    EXPECT_FALSE(m.is_response);
    EXPECT_TRUE(m.malformed);
    EXPECT_EQ(m.wire.size(), 5u);
    EXPECT_EQ(m.client_port, 40000);
    const auto qr_set = query_wire(true);
    ASSERT_TRUE(c.classify(udp_segment(40000, 53, qr_set), qr_set, 0, m));
    EXPECT_FALSE(m.is_response);
    EXPECT_TRUE(m.malformed);
    auto bad_name = query_wire();
    bad_name[12] = 0x40;
    ASSERT_TRUE(c.classify(udp_segment(40000, 53, bad_name), bad_name, 0, m));
    EXPECT_FALSE(m.is_response);
    EXPECT_FALSE(m.question.present);
    // From a server port: responses.
    const auto qr_clear = query_wire(false);
    ASSERT_TRUE(c.classify(udp_segment(53, 40000, qr_clear), qr_clear, 0, m));
    EXPECT_TRUE(m.is_response);
    EXPECT_TRUE(m.malformed);
    EXPECT_EQ(m.client_port, 40000);
    // Well-formed messages are not marked.
    const auto good = query_wire();
    ASSERT_TRUE(c.classify(udp_segment(40000, 53, good), good, 0, m));
    EXPECT_FALSE(m.malformed);
    EXPECT_EQ(c.malformed_kept(), 4u);
    EXPECT_EQ(c.skipped().get(pairing::Skip::DnsTooShort), 1u);
    EXPECT_EQ(c.skipped().get(pairing::Skip::QrDirectionMismatch), 2u);
    EXPECT_EQ(c.bad_question(), 1u);
    // Too short for a QR bit between two server ports: no direction.
    EXPECT_FALSE(c.classify(udp_segment(53, 53, shorty), shorty, 0, m));
}

TEST(Encoder, QueryCarriesEnvelopeAddressesTimeAndWire) {
    sidetap::dnstap::Encoder enc({"id", "ver", std::string("xtra")});
    pairing::Classifier c({});
    const auto wire = query_wire();
    const auto seg = udp_segment(40000, 53, wire);
    dns::DnsMessage m;
    ASSERT_TRUE(c.classify(seg, wire, seg.timestamp_ns, m));
    const auto frame = enc.encode(m, sidetap::dnstap::MessageType::ClientQuery);
    ::dnstap::Dnstap d;
    ASSERT_TRUE(d.ParseFromArray(frame.data(), static_cast<int>(frame.size())));
    EXPECT_EQ(d.identity(), "id");
    EXPECT_EQ(d.version(), "ver");
    EXPECT_EQ(d.extra(), "xtra");
    EXPECT_EQ(d.type(), ::dnstap::Dnstap::MESSAGE);
    ASSERT_TRUE(d.has_message());
    const auto& msg = d.message();
    EXPECT_EQ(msg.type(), ::dnstap::Message::CLIENT_QUERY);
    EXPECT_EQ(msg.socket_family(), ::dnstap::INET);
    EXPECT_EQ(msg.socket_protocol(), ::dnstap::UDP);
    EXPECT_EQ(msg.query_address(), std::string("\xc0\x00\x02\x01", 4));
    EXPECT_EQ(msg.response_address(), std::string("\xc0\x00\x02\x35", 4));
    EXPECT_EQ(msg.query_port(), 40000u);
    EXPECT_EQ(msg.response_port(), 53u);
    EXPECT_EQ(msg.query_time_sec(), 1'700'000'000u);
    EXPECT_EQ(msg.query_time_nsec(), 123'456'789u);
    EXPECT_FALSE(msg.has_response_time_sec());
    EXPECT_EQ(msg.query_message(), std::string(wire.begin(), wire.end()));
    EXPECT_FALSE(msg.has_response_message());
}

TEST(Encoder, ResponseCarriesResponseTimeAndOptionalQueryTime) {
    sidetap::dnstap::Encoder enc({"id", "ver", std::nullopt});
    pairing::Classifier c({});
    const auto wire = query_wire(true);
    const auto seg = udp_segment(53, 40000, wire);
    dns::DnsMessage m;
    ASSERT_TRUE(c.classify(seg, wire, seg.timestamp_ns, m));
    auto frame = enc.encode(m, sidetap::dnstap::MessageType::ClientResponse, 1'700'000'000'000'000'001ULL);
    ::dnstap::Dnstap d;
    ASSERT_TRUE(d.ParseFromArray(frame.data(), static_cast<int>(frame.size())));
    EXPECT_FALSE(d.has_extra());
    EXPECT_EQ(d.message().response_time_nsec(), 123'456'789u);
    EXPECT_EQ(d.message().query_time_nsec(), 1u);
    EXPECT_EQ(d.message().response_message().size(), wire.size());
    EXPECT_FALSE(d.message().has_query_message());
}

TEST(Encoder, NoWireLeavesMessagesOutAndIsDeterministic) {
    sidetap::dnstap::Encoder enc({"id", "ver", std::nullopt});
    pairing::Classifier c({});
    const auto wire = query_wire();
    const auto seg = udp_segment(40000, 53, wire);
    dns::DnsMessage m;
    ASSERT_TRUE(c.classify(seg, wire, seg.timestamp_ns, m));
    const auto f1 = enc.encode(m, sidetap::dnstap::MessageType::ClientQuery, std::nullopt, false);
    const std::vector<std::uint8_t> first(f1.begin(), f1.end());
    const auto f2 = enc.encode(m, sidetap::dnstap::MessageType::ClientQuery, std::nullopt, false);
    EXPECT_EQ(first, std::vector<std::uint8_t>(f2.begin(), f2.end()));
    ::dnstap::Dnstap d;
    ASSERT_TRUE(d.ParseFromArray(first.data(), static_cast<int>(first.size())));
    EXPECT_FALSE(d.message().has_query_message());
}

TEST(Encoder, FieldsAreWrittenInFieldNumberOrderLikeNativeServers) {
    sidetap::dnstap::Encoder enc({"id", "ver", std::nullopt});
    pairing::Classifier c({});
    const auto wire = query_wire();
    const auto seg = udp_segment(40000, 53, wire);
    dns::DnsMessage m;
    ASSERT_TRUE(c.classify(seg, wire, seg.timestamp_ns, m));
    const auto f = enc.encode(m, sidetap::dnstap::MessageType::ClientQuery);
    // identity (0x0a), version (0x12), message (0x72), type (0x78) last.
    EXPECT_EQ(f[0], 0x0a);
    EXPECT_EQ(f[4], 0x12);
    EXPECT_EQ(f[9], 0x72);
    EXPECT_EQ(f[f.size() - 2], 0x78);
    EXPECT_EQ(f[f.size() - 1], 0x01);
}

namespace {
// A message with every shape of field: either family, transport, large and
// small ports and times (varints of 1..10 bytes), empty to large DNS bytes.
dns::DnsMessage varied_message(std::uint32_t seed, std::vector<std::uint8_t>& wire) {
    dns::DnsMessage m;
    std::uint64_t x = 0x9e3779b97f4a7c15ULL * (seed + 1);
    auto next = [&] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return x;
    };
    const bool v6 = seed & 1;
    m.client.family = m.server.family = v6 ? 6 : 4;
    for (auto& b : m.client.bytes) b = static_cast<std::uint8_t>(next());
    for (auto& b : m.server.bytes) b = static_cast<std::uint8_t>(next());
    const std::uint16_t ports[] = {0, 1, 53, 127, 128, 16383, 16384, 65535};
    m.client_port = ports[next() % 8];
    m.server_port = ports[next() % 8];
    m.transport = seed & 2 ? decode::Transport::Tcp : decode::Transport::Udp;
    m.is_response = seed & 4;
    // Every third message comes from TLS plaintext: DoT, then DoH (http_protocol after the DNS bytes).
    const dns::Encryption encryptions[] = {dns::Encryption::None, dns::Encryption::Dot, dns::Encryption::Doh};
    m.encryption = encryptions[(seed >> 3) % 3];
    const std::uint64_t times[] = {0, 1, 999'999'999, 1'000'000'000, 1'700'000'000'123'456'789ULL,
                                   UINT64_MAX, 127'000'000'000ULL, 128'999'999'999ULL};
    m.timestamp_ns = times[next() % 8];
    const std::size_t sizes[] = {0, 1, 12, 127, 128, 512, 16383, 16384, 65535};
    wire.resize(sizes[next() % 9]);
    for (auto& b : wire) b = static_cast<std::uint8_t>(next());
    m.wire = wire;
    return m;
}
}  // namespace

TEST(Encoder, WritesTheSameBytesAsLibprotobufForEveryFieldShape) {
    const std::vector<sidetap::dnstap::Envelope> envelopes = {
        {"id", "ver", std::nullopt},
        {"", "", std::nullopt},
        {"host.example", "sidetap 0.1.0", std::string("extra bytes")},
        {std::string(200, 'i'), "", std::string()},  // long identity, empty extra (still written)
    };
    std::vector<std::uint8_t> wire;
    std::size_t checked = 0;
    for (const auto& env : envelopes) {
        sidetap::dnstap::Encoder enc(env);
        sidetap::dnstap::ReferenceEncoder ref(env);
        for (std::uint32_t seed = 0; seed < 400; ++seed) {
            const auto m = varied_message(seed, wire);
            const auto type = static_cast<sidetap::dnstap::MessageType>(1 + seed % 14);
            std::optional<std::uint64_t> qt;
            if (seed % 3 == 0) qt = m.timestamp_ns / 2;
            if (seed % 5 == 0) qt = 0;
            enc.prepare(m, type, qt);
            for (const bool w : {true, false}) {
                const auto expected = ref.encode(m, type, qt, w);
                ASSERT_EQ(enc.size(w), expected.size()) << "seed " << seed << " wire " << w;
                std::vector<std::uint8_t> got(enc.size(w) + 1, 0xee);
                enc.write(got.data(), w);
                EXPECT_EQ(got.back(), 0xee) << "wrote past size()";
                got.pop_back();
                ASSERT_EQ(got, std::vector<std::uint8_t>(expected.begin(), expected.end()))
                    << "seed " << seed << " wire " << w;
                ++checked;
            }
        }
    }
    EXPECT_EQ(checked, 4u * 400u * 2u);
}

TEST(Encoder, ExtraGivenPerMessageReplacesTheEnvelopes) {
    sidetap::dnstap::Encoder enc({"id", "ver", std::string("default")});
    std::vector<std::uint8_t> wire;
    const auto m = varied_message(3, wire);
    const std::string mine = "per-message";
    enc.prepare(m, sidetap::dnstap::MessageType::ClientQuery, std::nullopt,
                std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(mine.data()), mine.size()));
    std::vector<std::uint8_t> out(enc.size(true));
    enc.write(out.data(), true);
    ::dnstap::Dnstap d;
    ASSERT_TRUE(d.ParseFromArray(out.data(), static_cast<int>(out.size())));
    EXPECT_EQ(d.extra(), mine);
    const auto again = enc.encode(m, sidetap::dnstap::MessageType::ClientQuery);
    ASSERT_TRUE(d.ParseFromArray(again.data(), static_cast<int>(again.size())));
    EXPECT_EQ(d.extra(), "default");
}

TEST(MessageTypeList, AcceptsFullNamesAndMnemonicsInAnyCase) {
    std::string error;
    const auto bits = sidetap::dnstap::parse_type_list("CLIENT_QUERY, cr,AQ", error);
    ASSERT_TRUE(bits) << error;
    EXPECT_EQ(*bits, (1u << 5) | (1u << 6) | (1u << 1));
}

TEST(MessageTypeList, RejectsUnknownNamesAndEmptyLists) {
    std::string error;
    EXPECT_FALSE(sidetap::dnstap::parse_type_list("CQ,BOGUS", error));
    EXPECT_NE(error.find("BOGUS"), std::string::npos);
    EXPECT_FALSE(sidetap::dnstap::parse_type_list(" , ", error));
}
