#include "dnstap.pb.h"
#include "dnstap/encoder.h"
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
