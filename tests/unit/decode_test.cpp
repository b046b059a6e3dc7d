// Unit tests for sidetap::decode: every link type, VLAN/QinQ/PPPoE, IPv4
// options and fragments, IPv6 extension chains and fragments, UDP/TCP, and
// truncation at every layer. Packets are built byte by byte in the tests.
#include "capture/pcap_file_source.h"
#include "decode/decoder.h"
#include "decode/tunnel.h"
#include "dns/message.h"
#include "util/error.h"
#include "test_data.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <initializer_list>
#include <iostream>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace sidetap::decode {
namespace {

using Bytes = std::vector<std::uint8_t>;
namespace lt = capture::linktype;

void put16(Bytes& b, std::uint16_t v) {
    b.push_back(static_cast<std::uint8_t>(v >> 8));
    b.push_back(static_cast<std::uint8_t>(v));
}
void put32(Bytes& b, std::uint32_t v) {
    put16(b, static_cast<std::uint16_t>(v >> 16));
    put16(b, static_cast<std::uint16_t>(v));
}
void append(Bytes& b, const Bytes& more) { b.insert(b.end(), more.begin(), more.end()); }
Bytes cat(Bytes a, const Bytes& b) {
    append(a, b);
    return a;
}

const Bytes kDnsPayload{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w', 'w', 'w', 0, 0, 1, 0, 1};

Bytes udp(std::uint16_t sport, std::uint16_t dport, const Bytes& payload) {
    Bytes b;
    put16(b, sport);
    put16(b, dport);
    put16(b, static_cast<std::uint16_t>(8 + payload.size()));
    put16(b, 0);  // checksum: not verified
    append(b, payload);
    return b;
}

Bytes tcp(std::uint16_t sport, std::uint16_t dport, std::uint32_t seq, std::uint32_t ack, std::uint8_t flags,
          const Bytes& options, const Bytes& payload) {
    Bytes b;
    put16(b, sport);
    put16(b, dport);
    put32(b, seq);
    put32(b, ack);
    b.push_back(static_cast<std::uint8_t>(((20 + options.size()) / 4) << 4));
    b.push_back(flags);
    put16(b, 65535);
    put16(b, 0);
    put16(b, 0);
    append(b, options);
    append(b, payload);
    return b;
}

struct V4 {
    std::uint8_t protocol = 17;
    Bytes options;              // multiple of 4
    std::uint16_t id = 0x4242;
    std::uint16_t frag = 0;     // flags + offset field as on the wire
    int total_len_delta = 0;    // added to the real total length
};

Bytes ipv4(const Bytes& payload, V4 v = {}) {
    Bytes b;
    const std::size_t hl = 20 + v.options.size();
    b.push_back(static_cast<std::uint8_t>(0x40 | (hl / 4)));
    b.push_back(0);
    put16(b, static_cast<std::uint16_t>(static_cast<int>(hl + payload.size()) + v.total_len_delta));
    put16(b, v.id);
    put16(b, v.frag);
    b.push_back(64);
    b.push_back(v.protocol);
    put16(b, 0);
    append(b, {192, 0, 2, 1});
    append(b, {198, 51, 100, 7});
    append(b, v.options);
    append(b, payload);
    return b;
}

// `payload` holds any extension headers followed by the upper layer.
Bytes ipv6(std::uint8_t next_header, const Bytes& payload, int len_delta = 0) {
    Bytes b{0x60, 0, 0, 0};
    put16(b, static_cast<std::uint16_t>(static_cast<int>(payload.size()) + len_delta));
    b.push_back(next_header);
    b.push_back(64);
    append(b, {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
    append(b, {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2});
    append(b, payload);
    return b;
}

// Generic 8-byte extension header (HBH / Routing / DestOpts) with PadN.
Bytes ext8(std::uint8_t next_header) { return {next_header, 0, 1, 4, 0, 0, 0, 0}; }

Bytes frag6(std::uint8_t next_header, std::uint32_t offset_bytes, bool more, std::uint32_t id) {
    Bytes b{next_header, 0};
    put16(b, static_cast<std::uint16_t>(offset_bytes | (more ? 1u : 0u)));
    put32(b, id);
    return b;
}

Bytes ether(std::uint16_t ethertype, const Bytes& payload, std::initializer_list<std::uint16_t> tags = {}) {
    Bytes b{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    for (std::uint16_t tpid : tags) {
        put16(b, tpid);
        put16(b, 11);  // TCI: VLAN 11
    }
    put16(b, ethertype);
    append(b, payload);
    return b;
}

// The Packet views a copy of `bytes` kept until the end of the test program,
// so IpPacket/Segment views stay valid however the test built the bytes.
capture::Packet packet(std::uint32_t link_type, const Bytes& bytes, std::uint32_t original_length = 0) {
    static std::deque<Bytes> keep;
    keep.push_back(bytes);
    capture::Packet p;
    p.timestamp_ns = 1'000'000'123;
    p.link_type = link_type;
    p.data = keep.back();
    p.original_length = original_length != 0 ? original_length : static_cast<std::uint32_t>(bytes.size());
    return p;
}

Bytes as_bytes(std::span<const std::uint8_t> s) { return {s.begin(), s.end()}; }

// Total of all anomaly counters, to check that a case counted exactly one.
std::uint64_t anomaly_total(const Decoder& d) {
    std::uint64_t total = 0;
    d.anomalies().for_each([&](std::string_view, std::uint64_t v) { total += v; });
    return total;
}

// Decodes link and transport; expects success.
Segment decode_all(Decoder& d, const capture::Packet& p) {
    IpPacket ip;
    Segment seg;
    EXPECT_TRUE(d.decode_link(p, ip));
    EXPECT_FALSE(ip.is_fragment);
    EXPECT_TRUE(d.decode_transport(ip, p.timestamp_ns, seg));
    return seg;
}

// Expects decode_link to fail with exactly one count of `anomaly`.
void expect_link_anomaly(const capture::Packet& p, Anomaly anomaly) {
    Decoder d;
    IpPacket ip;
    EXPECT_FALSE(d.decode_link(p, ip));
    EXPECT_EQ(d.anomalies().get(anomaly), 1u) << kAnomalyNames[static_cast<std::size_t>(anomaly)];
    EXPECT_EQ(anomaly_total(d), 1u);
}

// ---------------------------------------------------------------- Ethernet

TEST(DecodeEthernet, Ipv4UdpGivesAddressesPortsAndPayload) {
    Decoder d;
    const Bytes frame = ether(0x0800, ipv4(udp(40000, 53, kDnsPayload)));
    const Segment seg = decode_all(d, packet(lt::kEthernet, frame));
    EXPECT_EQ(seg.transport, Transport::Udp);
    EXPECT_EQ(seg.src.family, 4);
    EXPECT_EQ(as_bytes(seg.src.view()), (Bytes{192, 0, 2, 1}));
    EXPECT_EQ(as_bytes(seg.dst.view()), (Bytes{198, 51, 100, 7}));
    EXPECT_EQ(seg.src_port, 40000);
    EXPECT_EQ(seg.dst_port, 53);
    EXPECT_EQ(seg.timestamp_ns, 1'000'000'123u);
    EXPECT_EQ(as_bytes(seg.payload), kDnsPayload);
    EXPECT_EQ(anomaly_total(d), 0u);
}

TEST(DecodeEthernet, SkipsQinQTagsAndCutsTrailingPadding) {
    Decoder d;
    Bytes frame = ether(0x0800, ipv4(udp(1234, 53, kDnsPayload)), {0x88A8, 0x8100});
    append(frame, {'p', 'a', 'd', 0, 0, 0});
    const Segment seg = decode_all(d, packet(lt::kEthernet, frame));
    EXPECT_EQ(as_bytes(seg.payload), kDnsPayload);
}

TEST(DecodeEthernet, Skips8021QAnd9100Tags) {
    for (std::uint16_t tpid : {std::uint16_t{0x8100}, std::uint16_t{0x9100}, std::uint16_t{0x88A8}}) {
        Decoder d;
        const Bytes frame = ether(0x86DD, ipv6(17, udp(1234, 53, kDnsPayload)), {tpid});
        const Segment seg = decode_all(d, packet(lt::kEthernet, frame));
        EXPECT_EQ(seg.src.family, 6);
        EXPECT_EQ(as_bytes(seg.payload), kDnsPayload);
    }
}

TEST(DecodeEthernet, StopsAfterTooManyVlanTags) {
    const Bytes frame = ether(0x0800, ipv4(udp(1, 53, kDnsPayload)),
                              {0x8100, 0x8100, 0x8100, 0x8100, 0x8100, 0x8100, 0x8100, 0x8100, 0x8100});
    expect_link_anomaly(packet(lt::kEthernet, frame), Anomaly::NotIp);
}

TEST(DecodeEthernet, EightVlanTagsAreStillDecoded) {
    Decoder d;
    const Bytes frame = ether(0x0800, ipv4(udp(1, 53, kDnsPayload)),
                              {0x8100, 0x8100, 0x8100, 0x8100, 0x8100, 0x8100, 0x8100, 0x8100});
    EXPECT_EQ(as_bytes(decode_all(d, packet(lt::kEthernet, frame)).payload), kDnsPayload);
}

TEST(DecodeEthernet, ArpIsCountedAsNotIp) {
    expect_link_anomaly(packet(lt::kEthernet, ether(0x0806, Bytes(28, 0))), Anomaly::NotIp);
}

TEST(DecodeEthernet, ShortHeaderOrTagIsLinkTruncated) {
    expect_link_anomaly(packet(lt::kEthernet, Bytes(13, 0)), Anomaly::LinkTruncated);
    Bytes cut_tag{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x81, 0x00, 0x00};
    expect_link_anomaly(packet(lt::kEthernet, cut_tag), Anomaly::LinkTruncated);
}

TEST(DecodeEthernet, EthertypeVersionMismatchIsBadVersion) {
    expect_link_anomaly(packet(lt::kEthernet, ether(0x0800, ipv6(17, udp(1, 53, kDnsPayload)))),
                        Anomaly::IpBadVersion);
    expect_link_anomaly(packet(lt::kEthernet, ether(0x86DD, ipv4(udp(1, 53, kDnsPayload)))),
                        Anomaly::IpBadVersion);
}

TEST(DecodeEthernet, PppoeSessionCarriesIpv4AndIpv6) {
    auto pppoe = [](std::uint16_t ppp_proto, const Bytes& ip) {
        Bytes b{0x11, 0x00, 0x12, 0x34};
        put16(b, static_cast<std::uint16_t>(ip.size() + 2));
        put16(b, ppp_proto);
        append(b, ip);
        return b;
    };
    Decoder d;
    EXPECT_EQ(as_bytes(decode_all(d, packet(lt::kEthernet,
                                            ether(0x8864, pppoe(0x0021, ipv4(udp(1, 53, kDnsPayload))), {0x88A8})))
                           .payload),
              kDnsPayload);
    EXPECT_EQ(as_bytes(decode_all(d, packet(lt::kEthernet, ether(0x8864, pppoe(0x0057, ipv6(17, udp(1, 53, kDnsPayload))))))
                           .payload),
              kDnsPayload);
    expect_link_anomaly(packet(lt::kEthernet, ether(0x8864, pppoe(0xC021, Bytes(10, 0)))), Anomaly::NotIp);
}

TEST(DecodeEthernet, Ipv6CutsTrailingPadding) {
    Decoder d;
    Bytes frame = ether(0x86DD, ipv6(17, udp(53, 5353, kDnsPayload)));
    append(frame, Bytes(17, 0xEE));
    const Segment seg = decode_all(d, packet(lt::kEthernet, frame));
    EXPECT_EQ(as_bytes(seg.payload), kDnsPayload);
    EXPECT_EQ(seg.src_port, 53);
    EXPECT_EQ(seg.dst_port, 5353);
}

// ------------------------------------------------------- other link types

TEST(DecodeLinuxSll, ReadsProtocolAtOffset14) {
    Bytes sll{0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0};
    put16(sll, 0x0800);
    Decoder d;
    Bytes frame = cat(sll, ipv4(udp(1, 53, kDnsPayload)));
    append(frame, {0, 0});  // padding
    EXPECT_EQ(as_bytes(decode_all(d, packet(lt::kLinuxSll, frame)).payload), kDnsPayload);
    expect_link_anomaly(packet(lt::kLinuxSll, Bytes(15, 0)), Anomaly::LinkTruncated);
}

TEST(DecodeLinuxSll2, ReadsProtocolAtOffset0) {
    Bytes sll2;
    put16(sll2, 0x86DD);
    append(sll2, Bytes(18, 0));
    Decoder d;
    EXPECT_EQ(as_bytes(decode_all(d, packet(lt::kLinuxSll2, cat(sll2, ipv6(17, udp(1, 53, kDnsPayload))))).payload),
              kDnsPayload);
    expect_link_anomaly(packet(lt::kLinuxSll2, Bytes(19, 0)), Anomaly::LinkTruncated);
    Bytes arp;
    put16(arp, 0x0806);
    append(arp, Bytes(46, 0));
    expect_link_anomaly(packet(lt::kLinuxSll2, arp), Anomaly::NotIp);
}

TEST(DecodeNull, AcceptsAddressFamilyInEitherByteOrder) {
    struct Case {
        Bytes header;
        bool v6;
    };
    const std::vector<Case> cases{
        {{2, 0, 0, 0}, false},  {{0, 0, 0, 2}, false},  // AF_INET little / big endian
        {{24, 0, 0, 0}, true},  {{0, 0, 0, 24}, true},  // NetBSD/OpenBSD AF_INET6
        {{28, 0, 0, 0}, true},  {{30, 0, 0, 0}, true},  // FreeBSD, macOS
        {{0, 0, 0, 30}, true},  {{10, 0, 0, 0}, true},  // macOS big endian, Linux
    };
    for (const Case& c : cases) {
        Decoder d;
        const Bytes ip = c.v6 ? ipv6(17, udp(1, 53, kDnsPayload)) : ipv4(udp(1, 53, kDnsPayload));
        const Bytes frame = cat(c.header, ip);
        const Segment seg = decode_all(d, packet(lt::kNull, frame));
        EXPECT_EQ(seg.src.family, c.v6 ? 6 : 4);
        EXPECT_EQ(as_bytes(seg.payload), kDnsPayload);
    }
}

TEST(DecodeNull, UnknownFamilyOrShortHeaderIsCounted) {
    expect_link_anomaly(packet(lt::kNull, cat({7, 0, 0, 0}, ipv4(udp(1, 53, kDnsPayload)))), Anomaly::NotIp);
    expect_link_anomaly(packet(lt::kNull, Bytes{2, 0, 0}), Anomaly::LinkTruncated);
    // AF says IPv6, the packet is IPv4.
    expect_link_anomaly(packet(lt::kNull, cat({24, 0, 0, 0}, ipv4(udp(1, 53, kDnsPayload)))),
                        Anomaly::IpBadVersion);
}

TEST(DecodeLoop, ReadsNetworkOrderFamily) {
    Decoder d;
    EXPECT_EQ(as_bytes(decode_all(d, packet(lt::kLoop, cat({0, 0, 0, 2}, ipv4(udp(1, 53, kDnsPayload))))).payload),
              kDnsPayload);
    EXPECT_EQ(
        as_bytes(decode_all(d, packet(lt::kLoop, cat({0, 0, 0, 24}, ipv6(17, udp(1, 53, kDnsPayload))))).payload),
        kDnsPayload);
    // Host order is not accepted for LOOP.
    expect_link_anomaly(packet(lt::kLoop, cat({2, 0, 0, 0}, ipv4(udp(1, 53, kDnsPayload)))), Anomaly::NotIp);
}

TEST(DecodeRaw, VersionNibbleDecidesForEveryRawLinkType) {
    for (std::uint32_t link : {lt::kRaw, lt::kRawDlt12, lt::kRawOpenBsd}) {
        Decoder d;
        EXPECT_EQ(decode_all(d, packet(link, ipv4(udp(1, 53, kDnsPayload)))).src.family, 4);
        EXPECT_EQ(decode_all(d, packet(link, ipv6(17, udp(1, 53, kDnsPayload)))).src.family, 6);
        Bytes v5 = ipv4(udp(1, 53, kDnsPayload));
        v5[0] = 0x55;
        expect_link_anomaly(packet(link, v5), Anomaly::IpBadVersion);
        expect_link_anomaly(packet(link, Bytes{}), Anomaly::IpTruncated);
    }
}

TEST(DecodeRaw, LinktypeIpv4AndIpv6CheckTheVersion) {
    Decoder d;
    EXPECT_EQ(decode_all(d, packet(lt::kIpv4, ipv4(udp(1, 53, kDnsPayload)))).src.family, 4);
    EXPECT_EQ(decode_all(d, packet(lt::kIpv6, ipv6(17, udp(1, 53, kDnsPayload)))).src.family, 6);
    expect_link_anomaly(packet(lt::kIpv4, ipv6(17, udp(1, 53, kDnsPayload))), Anomaly::IpBadVersion);
    expect_link_anomaly(packet(lt::kIpv6, ipv4(udp(1, 53, kDnsPayload))), Anomaly::IpBadVersion);
}

TEST(DecodeLink, UnknownLinkTypeIsCounted) {
    expect_link_anomaly(packet(147, ipv4(udp(1, 53, kDnsPayload))), Anomaly::UnknownLinkType);
}

TEST(DecodeLink, CountsPacketsPerLinkTypeByName) {
    Decoder d;
    IpPacket ip;
    const Bytes v4 = ipv4(udp(1, 53, kDnsPayload));
    d.decode_link(packet(lt::kEthernet, ether(0x0800, v4)), ip);
    d.decode_link(packet(lt::kEthernet, ether(0x0806, Bytes(28, 0))), ip);  // counted even when not IP
    d.decode_link(packet(lt::kRaw, v4), ip);
    d.decode_link(packet(lt::kLinuxSll2, Bytes(3, 0)), ip);
    d.decode_link(packet(999, v4), ip);
    d.decode_link(packet(998, v4), ip);
    std::map<std::string, std::uint64_t> seen;
    d.for_each_link_type([&](std::string_view name, std::uint64_t n) { seen[std::string(name)] = n; });
    const std::map<std::string, std::uint64_t> expected{
        {"ethernet", 2}, {"raw", 1}, {"linux_sll2", 1}, {"other", 2}};
    EXPECT_EQ(seen, expected);
    EXPECT_EQ(d.link_type_count(lt::kEthernet), 2u);
    EXPECT_EQ(d.link_type_count(lt::kNull), 0u);
}

TEST(DecodeLink, NamesEveryKnownLinkType) {
    EXPECT_EQ(Decoder::link_type_name(lt::kNull), "null");
    EXPECT_EQ(Decoder::link_type_name(lt::kEthernet), "ethernet");
    EXPECT_EQ(Decoder::link_type_name(lt::kRaw), "raw");
    EXPECT_EQ(Decoder::link_type_name(lt::kLoop), "loop");
    EXPECT_EQ(Decoder::link_type_name(lt::kLinuxSll), "linux_sll");
    EXPECT_EQ(Decoder::link_type_name(lt::kIpv4), "ipv4");
    EXPECT_EQ(Decoder::link_type_name(lt::kIpv6), "ipv6");
    EXPECT_EQ(Decoder::link_type_name(lt::kLinuxSll2), "linux_sll2");
    EXPECT_EQ(Decoder::link_type_name(lt::kRawOpenBsd), "raw_dlt14");
    EXPECT_EQ(Decoder::link_type_name(lt::kRawDlt12), "raw_dlt12");
    EXPECT_EQ(Decoder::link_type_name(12345), "other");
}

// -------------------------------------------------------------------- IPv4

TEST(DecodeIpv4, SkipsOptions) {
    Decoder d;
    V4 v;
    v.options = {0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00};  // Router Alert, NOP, NOP, NOP, EOL
    const Bytes pkt = ipv4(udp(1, 53, kDnsPayload), v);
    const Segment seg = decode_all(d, packet(lt::kRaw, pkt));
    EXPECT_EQ(seg.dst_port, 53);
    EXPECT_EQ(as_bytes(seg.payload), kDnsPayload);
}

TEST(DecodeIpv4, FragmentsFirstMiddleLastCarryIdOffsetAndMoreFlag) {
    struct Case {
        std::uint16_t frag_field;
        std::uint32_t offset;
        bool more;
    };
    const Case cases[] = {
        {0x2000, 0, true},            // first: MF, offset 0
        {0x2000 | 185, 1480, true},   // middle
        {0x0000 | 370, 2960, false},  // last: offset only
    };
    for (const Case& c : cases) {
        Decoder d;
        V4 v;
        v.id = 0xBEEF;
        v.frag = c.frag_field;
        const Bytes data(24, 0xAB);
        IpPacket ip;
        ASSERT_TRUE(d.decode_link(packet(lt::kRaw, ipv4(data, v)), ip));
        EXPECT_TRUE(ip.is_fragment);
        EXPECT_EQ(ip.more_fragments, c.more);
        EXPECT_EQ(ip.fragment_offset, c.offset);
        EXPECT_EQ(ip.fragment_id, 0xBEEFu);
        EXPECT_EQ(ip.protocol, 17);
        EXPECT_EQ(as_bytes(ip.payload), data);
        Segment seg;
        EXPECT_FALSE(d.decode_transport(ip, 0, seg));  // fragments are for the reassembler
        EXPECT_EQ(anomaly_total(d), 0u);
    }
}

TEST(DecodeIpv4, DontFragmentFlagIsNotAFragment) {
    Decoder d;
    V4 v;
    v.frag = 0x4000;
    IpPacket ip;
    ASSERT_TRUE(d.decode_link(packet(lt::kRaw, ipv4(udp(1, 53, kDnsPayload), v)), ip));
    EXPECT_FALSE(ip.is_fragment);
    EXPECT_EQ(ip.fragment_offset, 0u);
}

TEST(DecodeIpv4, HeaderLengthBelowFiveIsBadHeaderLength) {
    Bytes p = ipv4(udp(1, 53, kDnsPayload));
    p[0] = 0x44;
    expect_link_anomaly(packet(lt::kRaw, p), Anomaly::IpBadHeaderLength);
}

TEST(DecodeIpv4, TotalLengthBelowHeaderIsBadTotalLength) {
    V4 v;
    v.options = {1, 1, 1, 1};
    Bytes p = ipv4(udp(1, 53, kDnsPayload), v);
    p[2] = 0;
    p[3] = 22;  // < 24-byte header
    expect_link_anomaly(packet(lt::kRaw, p), Anomaly::IpBadTotalLength);
    p[3] = 0;  // TSO-style zero length
    expect_link_anomaly(packet(lt::kRaw, p), Anomaly::IpBadTotalLength);
}

TEST(DecodeIpv4, SnappedPacketIsMarkedTruncated) {
    Bytes frame = ether(0x0800, ipv4(udp(1, 53, kDnsPayload)));
    const auto full = static_cast<std::uint32_t>(frame.size());
    frame.resize(frame.size() - 5);
    Decoder d;
    IpPacket ip;
    EXPECT_FALSE(d.decode_link(packet(lt::kEthernet, frame, full), ip));
    EXPECT_TRUE(ip.truncated);
    EXPECT_EQ(ip.src.family, 4);  // header fields are still filled for diagnostics
    EXPECT_EQ(d.anomalies().get(Anomaly::IpSnapped), 1u);
    Segment seg;
    EXPECT_FALSE(d.decode_transport(ip, 0, seg));
}

TEST(DecodeIpv4, TotalLengthBeyondTheWireIsSnappedToo) {
    V4 v;
    v.total_len_delta = 1;  // like tcpdump-ipv4_invalid_total_length.pcap
    const Bytes frame = ether(0x0800, ipv4(udp(1, 53, kDnsPayload), v));
    expect_link_anomaly(packet(lt::kEthernet, frame), Anomaly::IpSnapped);
}

TEST(DecodeIpv4, ShorterThanHeaderIsIpTruncated) {
    const Bytes p = ipv4(udp(1, 53, kDnsPayload));
    expect_link_anomaly(packet(lt::kRaw, Bytes(p.begin(), p.begin() + 19)), Anomaly::IpTruncated);
}

// -------------------------------------------------------------------- IPv6

TEST(DecodeIpv6, SkipsHopByHopRoutingDestOptsAndAuthHeader) {
    Bytes chain = ext8(43);               // HBH -> Routing
    append(chain, ext8(60));              // Routing -> DestOpts
    append(chain, {51, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});  // DestOpts (len 1: 16 bytes) -> AH
    append(chain, {17, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1});              // AH, (1+2)*4 = 12 bytes -> UDP
    append(chain, udp(5353, 53, kDnsPayload));
    Decoder d;
    IpPacket ip;
    ASSERT_TRUE(d.decode_link(packet(lt::kIpv6, ipv6(0, chain)), ip));
    EXPECT_EQ(ip.protocol, 17);
    EXPECT_FALSE(ip.is_fragment);
    Segment seg;
    ASSERT_TRUE(d.decode_transport(ip, 0, seg));
    EXPECT_EQ(seg.src_port, 5353);
    EXPECT_EQ(as_bytes(seg.payload), kDnsPayload);
}

TEST(DecodeIpv6, FragmentHeaderFillsIdOffsetMoreFlagAndNextHeader) {
    {
        Decoder d;
        const Bytes first = cat(cat(ext8(44), frag6(17, 0, true, 0xCAFEBABE)), Bytes(16, 0x11));
        IpPacket ip;
        ASSERT_TRUE(d.decode_link(packet(lt::kIpv6, ipv6(0, first)), ip));
        EXPECT_TRUE(ip.is_fragment);
        EXPECT_TRUE(ip.more_fragments);
        EXPECT_EQ(ip.fragment_offset, 0u);
        EXPECT_EQ(ip.fragment_id, 0xCAFEBABEu);
        EXPECT_EQ(ip.protocol, 17);
        EXPECT_EQ(as_bytes(ip.payload), Bytes(16, 0x11));
    }
    {
        Decoder d;
        // Non-first fragment: what follows the Fragment header is data, even
        // if it looks like another extension header.
        Bytes data{0, 0, 0, 0, 0, 0, 0, 0};
        IpPacket ip;
        ASSERT_TRUE(d.decode_link(packet(lt::kIpv6, ipv6(44, cat(frag6(17, 1448, false, 7), data))), ip));
        EXPECT_TRUE(ip.is_fragment);
        EXPECT_FALSE(ip.more_fragments);
        EXPECT_EQ(ip.fragment_offset, 1448u);
        EXPECT_EQ(ip.fragment_id, 7u);
        EXPECT_EQ(as_bytes(ip.payload), data);
    }
}

TEST(DecodeIpv6, AtomicFragmentIsAWholeDatagram) {
    Decoder d;
    const Bytes pkt = ipv6(44, cat(frag6(17, 0, false, 9), udp(1, 53, kDnsPayload)));
    const Segment seg = decode_all(d, packet(lt::kIpv6, pkt));
    EXPECT_EQ(as_bytes(seg.payload), kDnsPayload);
}

TEST(DecodeIpv6, ExtensionHeaderPastThePayloadIsBad) {
    Bytes hbh{17, 4, 0, 0, 0, 0, 0, 0};  // claims 40 bytes
    expect_link_anomaly(packet(lt::kIpv6, ipv6(0, hbh)), Anomaly::Ipv6BadExtension);
    expect_link_anomaly(packet(lt::kIpv6, ipv6(44, Bytes{17, 0, 0, 1})), Anomaly::Ipv6BadExtension);
    expect_link_anomaly(packet(lt::kIpv6, ipv6(60, Bytes{17})), Anomaly::Ipv6BadExtension);
}

TEST(DecodeIpv6, EndlessExtensionChainIsBad) {
    Bytes chain;
    for (int i = 0; i < 40; ++i) append(chain, ext8(60));
    expect_link_anomaly(packet(lt::kIpv6, ipv6(60, chain)), Anomaly::Ipv6BadExtension);
}

TEST(DecodeIpv6, NoNextHeaderEspAndIcmpAreNotUdpTcp) {
    for (std::uint8_t nh : {std::uint8_t{59}, std::uint8_t{50}, std::uint8_t{58}}) {
        Decoder d;
        IpPacket ip;
        ASSERT_TRUE(d.decode_link(packet(lt::kIpv6, ipv6(0, cat(ext8(nh), Bytes(16, 0)))), ip));
        EXPECT_EQ(ip.protocol, nh);
        Segment seg;
        EXPECT_FALSE(d.decode_transport(ip, 0, seg));
        EXPECT_EQ(d.anomalies().get(Anomaly::NotUdpTcp), 1u);
        EXPECT_EQ(anomaly_total(d), 1u);
    }
}

TEST(DecodeIpv6, PayloadLengthBeyondCaptureIsSnapped) {
    expect_link_anomaly(packet(lt::kEthernet, ether(0x86DD, ipv6(17, udp(1, 53, kDnsPayload), 1))),
                        Anomaly::IpSnapped);
    Bytes cut = ipv6(17, udp(1, 53, kDnsPayload));
    const auto full = static_cast<std::uint32_t>(cut.size());
    cut.resize(50);
    Decoder d;
    IpPacket ip;
    EXPECT_FALSE(d.decode_link(packet(lt::kIpv6, cut, full), ip));
    EXPECT_TRUE(ip.truncated);
    EXPECT_EQ(d.anomalies().get(Anomaly::IpSnapped), 1u);
}

TEST(DecodeIpv6, JumboPayloadOptionGivesTheLength) {
    const Bytes u = udp(1, 53, kDnsPayload);
    Bytes hbh{17, 0, 0xC2, 4};
    put32(hbh, static_cast<std::uint32_t>(8 + u.size()));
    Bytes payload = cat(hbh, u);
    payload[8 + 4] = 0;  // UDP length 0: jumbogram
    payload[8 + 5] = 0;
    Bytes pkt = ipv6(0, payload);
    pkt[4] = 0;  // payload length 0
    pkt[5] = 0;
    append(pkt, {0xEE, 0xEE});  // trailing bytes beyond the jumbo length are cut
    Decoder d;
    EXPECT_EQ(as_bytes(decode_all(d, packet(lt::kIpv6, pkt)).payload), kDnsPayload);
}

// --------------------------------------------------------------- transport

TEST(DecodeTransport, UdpPayloadIsCutToTheUdpLength) {
    Bytes u = udp(1, 53, kDnsPayload);
    append(u, {9, 9, 9});  // bytes inside the IP datagram but after the UDP length
    Decoder d;
    EXPECT_EQ(as_bytes(decode_all(d, packet(lt::kRaw, ipv4(u))).payload), kDnsPayload);
}

TEST(DecodeTransport, UdpLengthZeroMeansTheIpPayloadLength) {
    Bytes u = udp(1, 53, kDnsPayload);
    u[4] = 0;
    u[5] = 0;
    Decoder d;
    EXPECT_EQ(as_bytes(decode_all(d, packet(lt::kRaw, ipv6(17, u))).payload), kDnsPayload);
}

TEST(DecodeTransport, UdpLengthBelowEightOrBeyondPayloadIsBadLength) {
    for (std::uint16_t len : {std::uint16_t{7}, std::uint16_t{8 + 22}}) {
        Bytes u = udp(1, 53, kDnsPayload);
        u[4] = static_cast<std::uint8_t>(len >> 8);
        u[5] = static_cast<std::uint8_t>(len);
        Decoder d;
        IpPacket ip;
        ASSERT_TRUE(d.decode_link(packet(lt::kRaw, ipv4(u)), ip));
        Segment seg;
        EXPECT_FALSE(d.decode_transport(ip, 0, seg));
        EXPECT_EQ(d.anomalies().get(Anomaly::UdpBadLength), 1u);
    }
}

TEST(DecodeTransport, UdpLengthEightIsAnEmptyPayload) {
    // zlip packets: UDP length 8 while the IP payload holds more.
    Bytes u = udp(1, 53, kDnsPayload);
    u[4] = 0;
    u[5] = 8;
    Decoder d;
    EXPECT_TRUE(decode_all(d, packet(lt::kRaw, ipv4(u))).payload.empty());
}

TEST(DecodeTransport, ShortUdpAndTcpHeadersAreTruncated) {
    {
        Decoder d;
        IpPacket ip;
        ASSERT_TRUE(d.decode_link(packet(lt::kRaw, ipv4(Bytes(7, 0))), ip));
        Segment seg;
        EXPECT_FALSE(d.decode_transport(ip, 0, seg));
        EXPECT_EQ(d.anomalies().get(Anomaly::UdpTruncated), 1u);
    }
    {
        Decoder d;
        V4 v;
        v.protocol = 6;
        IpPacket ip;
        ASSERT_TRUE(d.decode_link(packet(lt::kRaw, ipv4(Bytes(19, 0), v)), ip));
        Segment seg;
        EXPECT_FALSE(d.decode_transport(ip, 0, seg));
        EXPECT_EQ(d.anomalies().get(Anomaly::TcpTruncated), 1u);
    }
}

TEST(DecodeTransport, TcpReadsSeqAckFlagsAndSkipsOptions) {
    const Bytes options{2, 4, 0x05, 0xb4, 1, 1, 4, 2};  // MSS, NOP, NOP, SACK-permitted
    const Bytes data{0, 21};
    V4 v;
    v.protocol = 6;
    Bytes frame = ether(0x0800, ipv4(tcp(48613, 53, 0xFBDA5539, 0x367C3C2D, tcpflag::kPsh | tcpflag::kAck, options,
                                         cat(data, kDnsPayload)),
                                     v));
    append(frame, {'p', 'a', 'd'});  // dnscap-1qtcppadd.pcap
    Decoder d;
    const Segment seg = decode_all(d, packet(lt::kEthernet, frame));
    EXPECT_EQ(seg.transport, Transport::Tcp);
    EXPECT_EQ(seg.src_port, 48613);
    EXPECT_EQ(seg.seq, 0xFBDA5539u);
    EXPECT_EQ(seg.ack, 0x367C3C2Du);
    EXPECT_EQ(seg.tcp_flags, tcpflag::kPsh | tcpflag::kAck);
    EXPECT_EQ(as_bytes(seg.payload), cat(data, kDnsPayload));
}

TEST(DecodeTransport, TcpDataOffsetBelowFiveOrBeyondPayloadIsBad) {
    for (std::uint8_t offset_byte : {std::uint8_t{0x40}, std::uint8_t{0xF0}}) {
        V4 v;
        v.protocol = 6;
        Bytes t = tcp(1, 53, 0, 0, tcpflag::kSyn, {}, {});
        t[12] = offset_byte;
        Decoder d;
        IpPacket ip;
        ASSERT_TRUE(d.decode_link(packet(lt::kRaw, ipv4(t, v)), ip));
        Segment seg;
        EXPECT_FALSE(d.decode_transport(ip, 0, seg));
        EXPECT_EQ(d.anomalies().get(Anomaly::TcpBadOffset), 1u);
    }
}

TEST(DecodeTransport, IcmpIsCountedAsNotUdpTcp) {
    V4 v;
    v.protocol = 1;
    Decoder d;
    IpPacket ip;
    ASSERT_TRUE(d.decode_link(packet(lt::kRaw, ipv4(Bytes{8, 0, 0, 0, 0, 1, 0, 1}, v)), ip));
    Segment seg;
    EXPECT_FALSE(d.decode_transport(ip, 0, seg));
    EXPECT_EQ(d.anomalies().get(Anomaly::NotUdpTcp), 1u);
}

TEST(DecodeTransport, SkipsIpv6ExtensionHeadersLeftInAReassembledPayload) {
    // What the reassembler hands over when a Destination Options header
    // followed the Fragment header.
    const Bytes reassembled = cat(ext8(17), udp(1, 53, kDnsPayload));
    IpPacket ip;
    ip.src.family = 6;
    ip.dst.family = 6;
    ip.protocol = 60;
    ip.payload = reassembled;
    Decoder d;
    Segment seg;
    ASSERT_TRUE(d.decode_transport(ip, 5, seg));
    EXPECT_EQ(as_bytes(seg.payload), kDnsPayload);
    EXPECT_EQ(seg.timestamp_ns, 5u);
}

// ------------------------------------------------------------- truncation

// Every prefix of a valid frame (as a snaplen would cut it) is refused with
// the anomaly of the layer where the cut falls, and never read past.
TEST(DecodeTruncation, EveryPrefixOfAFrameIsRefusedAtTheRightLayer) {
    const Bytes frame = ether(0x0800, ipv4(udp(1, 53, kDnsPayload)), {0x8100});
    const auto full = static_cast<std::uint32_t>(frame.size());
    for (std::size_t cut = 0; cut < frame.size(); ++cut) {
        const Bytes prefix(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(cut));
        Anomaly expected = Anomaly::IpSnapped;
        if (cut < 18) expected = Anomaly::LinkTruncated;
        else if (cut < 18 + 20) expected = Anomaly::IpTruncated;
        SCOPED_TRACE(cut);
        expect_link_anomaly(packet(lt::kEthernet, prefix, full), expected);
    }
    const Bytes frame6 = ether(0x86DD, ipv6(0, cat(ext8(17), udp(1, 53, kDnsPayload))));
    for (std::size_t cut = 0; cut < frame6.size(); ++cut) {
        const Bytes prefix(frame6.begin(), frame6.begin() + static_cast<std::ptrdiff_t>(cut));
        Anomaly expected = Anomaly::IpSnapped;
        if (cut < 14) expected = Anomaly::LinkTruncated;
        else if (cut < 14 + 40) expected = Anomaly::IpTruncated;
        SCOPED_TRACE(cut);
        expect_link_anomaly(packet(lt::kEthernet, prefix, static_cast<std::uint32_t>(frame6.size())), expected);
    }
}

// Deterministic mutation run: random byte changes and cuts of valid frames
// of every link type. Under the sanitizer build any read outside the packet
// fails the test; here every view must also stay inside the packet.
TEST(DecodeRobustness, MutatedFramesNeverLeaveThePacketBytes) {
    const Bytes v4 = ipv4(udp(1, 53, kDnsPayload));
    const Bytes v6 = ipv6(0, cat(ext8(44), cat(frag6(17, 0, false, 1), udp(1, 53, kDnsPayload))));
    V4 tv;
    tv.protocol = 6;
    tv.options = {1, 1, 1, 0};
    const Bytes t4 = ipv4(tcp(1, 53, 1, 2, tcpflag::kAck, {1, 1, 1, 1}, kDnsPayload), tv);
    Bytes sll(14, 0);
    put16(sll, 0x0800);
    Bytes sll2;
    put16(sll2, 0x86DD);
    append(sll2, Bytes(18, 0));
    const std::vector<std::pair<std::uint32_t, Bytes>> seeds{
        {lt::kEthernet, ether(0x0800, v4, {0x88A8, 0x8100})},
        {lt::kEthernet, ether(0x86DD, v6)},
        {lt::kEthernet, ether(0x0800, t4)},
        {lt::kLinuxSll, cat(sll, t4)},
        {lt::kLinuxSll2, cat(sll2, v6)},
        {lt::kNull, cat({30, 0, 0, 0}, v6)},
        {lt::kLoop, cat({0, 0, 0, 2}, v4)},
        {lt::kRaw, v6},
        {lt::kIpv4, t4},
    };
    std::uint32_t state = 12345;
    auto next = [&state] {  // xorshift32: the same sequence everywhere
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        return state;
    };
    Decoder d;
    std::uint64_t segments = 0;
    for (int round = 0; round < 20000; ++round) {
        const auto& [link, seed] = seeds[next() % seeds.size()];
        Bytes frame = seed;
        const int changes = 1 + static_cast<int>(next() % 4);
        for (int i = 0; i < changes; ++i) frame[next() % frame.size()] = static_cast<std::uint8_t>(next());
        if (next() % 3 == 0) frame.resize(next() % (frame.size() + 1));
        capture::Packet pkt;
        pkt.link_type = link;
        pkt.data = frame;
        pkt.original_length = static_cast<std::uint32_t>(seed.size());
        IpPacket ip;
        if (!d.decode_link(pkt, ip)) continue;
        const auto* begin = frame.data();
        const auto* end = frame.data() + frame.size();
        ASSERT_TRUE(ip.payload.empty() || (ip.payload.data() >= begin && ip.payload.data() + ip.payload.size() <= end));
        if (ip.is_fragment) continue;
        Segment seg;
        if (!d.decode_transport(ip, 0, seg)) continue;
        ++segments;
        ASSERT_TRUE(seg.payload.empty() ||
                    (seg.payload.data() >= begin && seg.payload.data() + seg.payload.size() <= end));
        dns::Header h;
        dns::Question q;
        const dns::ParseStatus status = dns::parse_header_question(seg.payload, h, q);
        if (status == dns::ParseStatus::Ok && q.present) {
            ASSERT_GE(q.name_length, 1);
            ASSERT_EQ(q.name[q.name_length - 1], 0);
        }
    }
    EXPECT_GT(segments, 1000u);
    EXPECT_GT(anomaly_total(d), 1000u);
}

// ------------------------------------------------------ shared pcap corpus

struct FileStats {
    std::uint64_t packets = 0;
    std::uint64_t ip = 0;
    std::uint64_t fragments = 0;
    std::uint64_t udp = 0;
    std::uint64_t tcp = 0;
    std::uint64_t tcp_with_data = 0;
    std::map<std::string, std::uint64_t> dns;        // parse status -> count (UDP payloads)
    std::map<std::string, std::uint64_t> anomalies;  // non-zero anomaly counters
    std::vector<std::size_t> tcp_payload_sizes;
    std::vector<std::size_t> udp_payload_sizes;
    dns::Question first_question;
    std::string error;
};

FileStats run_file(const std::string& path) {
    FileStats st;
    Decoder d;
    std::unique_ptr<capture::PacketSource> src;
    try {
        src = capture::open_capture_file(path);
    } catch (const util::FatalError& e) {
        st.error = e.what();
        return st;
    }
    capture::Packet pkt;
    while (src->next(pkt) == capture::PacketSource::Status::Packet) {
        ++st.packets;
        IpPacket ip;
        if (!d.decode_link(pkt, ip)) continue;
        ++st.ip;
        EXPECT_LE(ip.payload.size(), pkt.data.size());
        if (ip.is_fragment) {
            ++st.fragments;
            continue;
        }
        Segment seg;
        if (!d.decode_transport(ip, pkt.timestamp_ns, seg)) continue;
        EXPECT_GE(seg.payload.data(), pkt.data.data());
        EXPECT_LE(seg.payload.data() + seg.payload.size(), pkt.data.data() + pkt.data.size());
        if (seg.transport == Transport::Udp) {
            ++st.udp;
            st.udp_payload_sizes.push_back(seg.payload.size());
            dns::Header h;
            dns::Question q;
            const dns::ParseStatus status = dns::parse_header_question(seg.payload, h, q);
            ++st.dns[std::string(dns::to_string(status))];
            if (q.present && !st.first_question.present) st.first_question = q;
        } else {
            ++st.tcp;
            if (!seg.payload.empty()) {
                ++st.tcp_with_data;
                st.tcp_payload_sizes.push_back(seg.payload.size());
            }
        }
    }
    if (!src->error().empty()) st.error = src->error();
    d.anomalies().for_each([&](std::string_view name, std::uint64_t v) {
        if (v != 0) st.anomalies[std::string(name)] = v;
    });
    return st;
}

std::vector<std::filesystem::path> corpus_files() {
    return test_data::public_captures();
}

std::string corpus_path(const char* name) { return test_data::public_capture(name); }

std::string describe(const std::string& name, const FileStats& st) {
    std::string s = name + ": packets=" + std::to_string(st.packets) + " ip=" + std::to_string(st.ip) +
                    " frag=" + std::to_string(st.fragments) + " udp=" + std::to_string(st.udp) +
                    " tcp=" + std::to_string(st.tcp) + " tcpdata=" + std::to_string(st.tcp_with_data);
    for (const auto& [k, v] : st.dns) s += " dns." + k + "=" + std::to_string(v);
    for (const auto& [k, v] : st.anomalies) s += " " + k + "=" + std::to_string(v);
    if (!st.error.empty()) s += " error=\"" + st.error + "\"";
    return s;
}

// Every capture in the shared corpus goes through decode and the DNS header
// parser without a crash or an out-of-bounds view (ASan build); set
// SIDETAP_DECODE_CORPUS_VERBOSE=1 to print per-file numbers.
TEST(DecodeCorpus, EverySharedCaptureDecodesWithinBounds) {
    const auto files = corpus_files();
    if (files.empty()) GTEST_FAIL() << "no public captures in tests/data";
    const bool verbose = std::getenv("SIDETAP_DECODE_CORPUS_VERBOSE") != nullptr;
    std::uint64_t total_ip = 0;
    for (const auto& file : files) {
        SCOPED_TRACE(file.string());
        const FileStats st = run_file(file.string());
        total_ip += st.ip;
        if (verbose) std::cout << describe(file.filename().string(), st) << "\n";
    }
    EXPECT_GT(total_ip, 1000u);
}

class DecodeCorpusFile : public ::testing::Test {
protected:
    void SetUp() override {
        if (test_data::public_captures().empty()) GTEST_FAIL() << "no public captures in tests/data";
    }
};

TEST_F(DecodeCorpusFile, EthernetPaddingAfterTcpIsCut) {
    // dnscap-1qtcppadd: every frame ends with "pad"; the query is 2 + 41 bytes.
    const FileStats st = run_file(corpus_path("dnscap-1qtcppadd.pcap"));
    EXPECT_EQ(st.packets, st.ip) << describe("1qtcppadd", st);
    EXPECT_EQ(st.tcp, st.packets);
    EXPECT_EQ(st.tcp_with_data, 2u);
    ASSERT_FALSE(st.tcp_payload_sizes.empty());
    EXPECT_EQ(st.tcp_payload_sizes.front(), 41u);
    EXPECT_TRUE(st.anomalies.empty()) << describe("1qtcppadd", st);
}

TEST_F(DecodeCorpusFile, Ipv6EthernetPaddingIsCut) {
    const FileStats st = run_file(corpus_path("dnscap-ipv6-with-ethernet-padding.pcap"));
    EXPECT_GT(st.udp + st.tcp, 0u) << describe("ipv6-padding", st);
    EXPECT_TRUE(st.anomalies.empty()) << describe("ipv6-padding", st);
    EXPECT_EQ(st.dns.count("bad_question_name") + st.dns.count("question_truncated"), 0u)
        << describe("ipv6-padding", st);
}

TEST_F(DecodeCorpusFile, RawIpWithOneByteOfPaddingGivesTheRootSoaQuery) {
    // dnsjit-46vs45: 46-byte frame, IPv4 total length 45.
    const FileStats st = run_file(corpus_path("dnsjit-46vs45.pcap"));
    ASSERT_EQ(st.udp, 1u) << describe("46vs45", st);
    EXPECT_EQ(st.udp_payload_sizes.front(), 17u);
    EXPECT_EQ(st.dns.at("ok"), 1u);
    ASSERT_TRUE(st.first_question.present);
    EXPECT_EQ(st.first_question.name_length, 1);
    EXPECT_EQ(st.first_question.qtype, 6);
}

TEST_F(DecodeCorpusFile, IpLengthOneByteBeyondTheCaptureIsSnapped) {
    for (const char* name : {"tcpdump-ipv4_invalid_total_length.pcap", "tcpdump-ipv6_invalid_length_2.pcap"}) {
        const FileStats st = run_file(corpus_path(name));
        EXPECT_EQ(st.packets, 1u) << describe(name, st);
        EXPECT_EQ(st.ip, 0u);
        EXPECT_EQ(st.anomalies, (std::map<std::string, std::uint64_t>{{"ip_snapped", 1}})) << describe(name, st);
    }
}

TEST_F(DecodeCorpusFile, LinkTypeThatLiesAboutTheVersionIsBadVersion) {
    for (const char* name : {"tcpdump-LINKTYPE_IPV4_invalid.pcap", "tcpdump-LINKTYPE_IPV6_invalid.pcap"}) {
        const FileStats st = run_file(corpus_path(name));
        EXPECT_EQ(st.anomalies, (std::map<std::string, std::uint64_t>{{"ip_bad_version", 1}})) << describe(name, st);
    }
    for (const char* name : {"tcpdump-LINKTYPE_IPV4.pcap", "tcpdump-LINKTYPE_IPV6.pcap", "tcpdump-LINKTYPE_RAW_ipv4.pcap",
                             "tcpdump-LINKTYPE_RAW_ipv6.pcap"}) {
        const FileStats st = run_file(corpus_path(name));
        EXPECT_GT(st.udp, 0u) << describe(name, st);
        EXPECT_TRUE(st.anomalies.empty()) << describe(name, st);
    }
}

TEST_F(DecodeCorpusFile, IcmpOnlyCaptureYieldsNoSegments) {
    const FileStats st = run_file(corpus_path("dnscap-icmp.pcap"));
    EXPECT_EQ(st.packets, 2u);
    EXPECT_EQ(st.udp + st.tcp, 0u) << describe("icmp", st);
    EXPECT_EQ(st.anomalies.count("not_udp_tcp") + st.anomalies.count("ip_snapped"), st.anomalies.size())
        << describe("icmp", st);
}

TEST_F(DecodeCorpusFile, ZlipPacketsHaveAnEmptyUdpPayloadAndALoopingName) {
    for (const char* name : {"tcpdump-dns-zlip-1.pcap", "tcpdump-dns-zlip-2.pcap", "tcpdump-dns-zlip-3.pcap"}) {
        SCOPED_TRACE(name);
        std::unique_ptr<capture::PacketSource> src = capture::open_capture_file(corpus_path(name));
        capture::Packet pkt;
        ASSERT_EQ(src->next(pkt), capture::PacketSource::Status::Packet);
        Decoder d;
        IpPacket ip;
        ASSERT_TRUE(d.decode_link(pkt, ip));
        Segment seg;
        ASSERT_TRUE(d.decode_transport(ip, 0, seg));
        EXPECT_TRUE(seg.payload.empty());  // UDP length 8
        // What follows the UDP header is the zlip message: its name loops.
        dns::Header h;
        dns::Question q;
        EXPECT_EQ(dns::parse_header_question(ip.payload.subspan(8), h, q), dns::ParseStatus::BadQuestionName);
    }
}

TEST_F(DecodeCorpusFile, EveryLinkTypeInTheCorpusGivesDnsMessages) {
    for (const char* name : {"dnscap-vlan11.pcap", "dnscap-sll2.pcap", "pcapplusplus-sll.pcap",
                             "pcapplusplus-raw_ip.pcap", "pcapplusplus-many_interfaces-1.pcapng",
                             "derived-tcpdump-dns-badcookie-dlt_loop.pcap", "ndpi-dns-qinq-pppoe.pcapng",
                             "dnsjit-ip6-udp-padd.pcap", "dnscap-dns6.pcap"}) {
        const FileStats st = run_file(corpus_path(name));
        EXPECT_GT(st.dns.count("ok") != 0 ? st.dns.at("ok") : 0, 0u) << describe(name, st);
    }
}

TEST_F(DecodeCorpusFile, NullLoopbackWithAnUnknownFamilyIsNotIp) {
    // Families 30 (macOS AF_INET6) and 2 decode; the third frame's header is
    // 0f 00 08 00 (a Cisco HDLC header, not an address family) and is refused.
    const FileStats st = run_file(corpus_path("pcapplusplus-null_loopback.pcap"));
    EXPECT_EQ(st.packets, 3u);
    EXPECT_EQ(st.tcp, 1u) << describe("null_loopback", st);
    EXPECT_EQ(st.udp, 1u);
    EXPECT_EQ(st.anomalies, (std::map<std::string, std::uint64_t>{{"not_ip", 1}})) << describe("null_loopback", st);
}

TEST_F(DecodeCorpusFile, FirstFragmentsCutShortOfTheirLengthAreSnapped) {
    // ndpi-badpackets: 93 first fragments with IP length 1500 and far fewer
    // bytes, orig_len = caplen.
    const FileStats st = run_file(corpus_path("ndpi-badpackets.pcap"));
    EXPECT_EQ(st.packets, 93u);
    EXPECT_EQ(st.anomalies, (std::map<std::string, std::uint64_t>{{"ip_snapped", 93}})) << describe("badpackets", st);
}

TEST_F(DecodeCorpusFile, FragmentsAreHandedOverNotDecoded) {
    for (const char* name : {"dnscap-frags.pcap", "pcapplusplus-ip6_fragments.pcap",
                             "dnscollector-dnsdump_ip4_fragmented_query.pcap",
                             "dnscollector-dnsdump_ip6_fragmented_query.pcap"}) {
        const FileStats st = run_file(corpus_path(name));
        EXPECT_GT(st.fragments, 0u) << describe(name, st);
        EXPECT_EQ(st.fragments, st.ip) << describe(name, st);
        EXPECT_TRUE(st.anomalies.empty()) << describe(name, st);
    }
}

// ---------------------------------------------------------------- tunnels
//
// Each analyzer (decode/tunnel.h) on its own: a well-formed header forwards
// the right bytes with the right id, every cut of the header is the
// analyzer's "truncated" anomaly, and each unsupported variant has its name.
// Then Decoder::decapsulate: kinds, encapsulation metadata, the DNS-port
// rule, the depth bound and the counters.

namespace tun = decode::tunnel;

V4 proto4(std::uint8_t protocol) {
    V4 v;
    v.protocol = protocol;
    return v;
}

Bytes gre_header(std::uint16_t flags, std::uint16_t proto, std::uint32_t key = 0, std::uint32_t seq = 0) {
    Bytes b;
    put16(b, flags);
    put16(b, proto);
    if (flags & 0x8000) put32(b, 0);  // checksum + reserved (not verified)
    if (flags & 0x2000) put32(b, key);
    if (flags & 0x1000) put32(b, seq);
    return b;
}

// Expects `parse` to fail with `why` for every strict prefix of `header`
// (the analyzer's header only) and to succeed on the whole of `packet`.
template <typename Parse>
void expect_every_cut_truncated(Parse parse, const Bytes& packet, std::size_t header_len, Anomaly why) {
    for (std::size_t cut = 0; cut < header_len; ++cut) {
        tun::Layer layer;
        Anomaly got{};
        SCOPED_TRACE(cut);
        EXPECT_FALSE(parse(std::span<const std::uint8_t>(packet.data(), cut), layer, got));
        EXPECT_EQ(got, why) << kAnomalyNames[static_cast<std::size_t>(got)];
    }
    tun::Layer layer;
    Anomaly got{};
    EXPECT_TRUE(parse(std::span<const std::uint8_t>(packet), layer, got));
    EXPECT_EQ(layer.payload.data(), packet.data() + header_len);
    EXPECT_EQ(layer.payload.size(), packet.size() - header_len);
}

TEST(TunnelGre, ForwardsIpv4Ipv6AndEthernetAfterOptionalFields) {
    const Bytes inner = ipv4(udp(1, 53, kDnsPayload));
    struct Case {
        std::uint16_t flags;
        std::uint16_t proto;
        tun::Next next;
        std::size_t header;
    };
    for (const Case c : {Case{0x0000, 0x0800, tun::Next::Ipv4, 4}, Case{0x8000, 0x86DD, tun::Next::Ipv6, 8},
                         Case{0x2000, 0x6558, tun::Next::Ethernet, 8}, Case{0x1000, 0x0800, tun::Next::Ipv4, 8},
                         Case{0xB000, 0x0800, tun::Next::Ipv4, 16}}) {
        SCOPED_TRACE(c.flags);
        const Bytes pkt = cat(gre_header(c.flags, c.proto, 0xCAFE, 9), inner);
        expect_every_cut_truncated(tun::parse_gre, pkt, c.header, Anomaly::GreTruncated);
        tun::Layer layer;
        Anomaly why{};
        ASSERT_TRUE(tun::parse_gre(pkt, layer, why));
        EXPECT_EQ(layer.kind, TunnelKind::Gre);
        EXPECT_EQ(layer.next, c.next);
        EXPECT_EQ(layer.has_id, (c.flags & 0x2000) != 0);
        if (layer.has_id) {
            EXPECT_EQ(layer.id, 0xCAFEu);
        }
    }
}

TEST(TunnelGre, VersionRoutingAndUnknownPayloadsAreUnsupported) {
    for (const Bytes& pkt : {gre_header(0x2001, 0x880B, 1), gre_header(0x4000, 0x0800), gre_header(0x0800, 0x0800),
                             gre_header(0x0000, 0x8847), gre_header(0x0000, 0x0806)}) {
        tun::Layer layer;
        Anomaly why{};
        EXPECT_FALSE(tun::parse_gre(cat(pkt, Bytes(40, 0x45)), layer, why));
        EXPECT_EQ(why, Anomaly::GreUnsupported);
    }
}

TEST(TunnelErspan, TypeOneTwoAndThreeWithSubheader) {
    const Bytes frame = ether(0x0800, ipv4(udp(1, 53, kDnsPayload)));
    tun::Layer layer;
    Anomaly why{};
    // Type I: GRE 0x88BE without the S bit, the frame right after GRE.
    const Bytes type1 = cat(gre_header(0, 0x88BE), frame);  // views below point into it
    ASSERT_TRUE(tun::parse_gre(type1, layer, why));
    EXPECT_EQ(layer.kind, TunnelKind::Erspan);
    EXPECT_EQ(layer.next, tun::Next::Ethernet);
    EXPECT_EQ(as_bytes(layer.payload), frame);
    EXPECT_FALSE(layer.has_id);
    // Type II: version 1, session 0x155 (10 bits), 8-byte header.
    const Bytes two = cat({0x10, 0x0A, 0x05, 0x55, 0, 0, 0, 7}, frame);
    expect_every_cut_truncated(tun::parse_erspan, two, 8, Anomaly::ErspanTruncated);
    const Bytes gre2 = cat(gre_header(0x1000, 0x88BE, 0, 1), two);
    ASSERT_TRUE(tun::parse_gre(gre2, layer, why));
    EXPECT_EQ(layer.kind, TunnelKind::Erspan);
    EXPECT_EQ(layer.id, 0x155u);
    EXPECT_EQ(as_bytes(layer.payload), frame);
    // Type III: version 2, 12 bytes; with O set, 8 more bytes of subheader.
    const Bytes three = cat({0x20, 0x00, 0x00, 0x02, 1, 2, 3, 4, 0, 0, 0x00, 0x00}, frame);
    expect_every_cut_truncated(tun::parse_erspan, three, 12, Anomaly::ErspanTruncated);
    const Bytes three_o = cat(cat({0x20, 0x00, 0x00, 0x03, 1, 2, 3, 4, 0, 0, 0x00, 0x01}, Bytes(8, 0x77)), frame);
    expect_every_cut_truncated(tun::parse_erspan, three_o, 20, Anomaly::ErspanTruncated);
    const Bytes gre3 = cat(gre_header(0x1000, 0x22EB, 0, 1), three_o);
    ASSERT_TRUE(tun::parse_gre(gre3, layer, why));
    EXPECT_EQ(layer.id, 3u);
    EXPECT_EQ(as_bytes(layer.payload), frame);
}

TEST(TunnelErspan, FrameTypeIpIsDecodedOtherTypesAndVersionsAreNot) {
    const Bytes ip = ipv4(udp(1, 53, kDnsPayload));
    tun::Layer layer;
    Anomaly why{};
    const Bytes ft_ip = cat({0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x08, 0}, ip);  // FT = 2
    ASSERT_TRUE(tun::parse_erspan(ft_ip, layer, why));
    EXPECT_EQ(layer.next, tun::Next::Ip);
    EXPECT_EQ(as_bytes(layer.payload), ip);
    EXPECT_FALSE(tun::parse_erspan(cat({0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x04, 0}, ip), layer, why));  // FT = 1
    EXPECT_EQ(why, Anomaly::ErspanUnsupported);
    for (const std::uint8_t version : {std::uint8_t{0x00}, std::uint8_t{0x30}, std::uint8_t{0xF0}}) {
        EXPECT_FALSE(tun::parse_erspan(cat({version, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, ip), layer, why));
        EXPECT_EQ(why, Anomaly::ErspanUnsupported);
    }
}

TEST(TunnelVxlan, NeedsTheIFlagAndEightBytes) {
    const Bytes frame = ether(0x0800, ipv4(udp(1, 53, kDnsPayload)));
    const Bytes pkt = cat({0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0}, frame);
    expect_every_cut_truncated(tun::parse_vxlan, pkt, 8, Anomaly::VxlanTruncated);
    tun::Layer layer;
    Anomaly why{};
    ASSERT_TRUE(tun::parse_vxlan(pkt, layer, why));
    EXPECT_EQ(layer.id, 0x123456u);
    EXPECT_EQ(layer.next, tun::Next::Ethernet);
    EXPECT_TRUE(tun::parse_vxlan(cat({0x88, 0, 0, 0, 0, 0, 1, 0}, frame), layer, why));  // + G flag (GBP)
    EXPECT_FALSE(tun::parse_vxlan(cat({0x00, 0, 0, 0, 0, 0, 1, 0}, frame), layer, why));
    EXPECT_EQ(why, Anomaly::VxlanBadFlags);
}

TEST(TunnelGeneve, WalksOptionsAndDispatchesOnProtocolType) {
    const Bytes ip = ipv4(udp(1, 53, kDnsPayload));
    // Two options: 4 bytes of data, then none: option length 3 (12 bytes).
    const Bytes opts{0x01, 0x03, 0x80, 0x01, 0, 0, 0, 42, 0x01, 0x04, 0x01, 0x00};
    const Bytes pkt = cat(cat({0x03, 0x00, 0x08, 0x00, 0x00, 0x17, 0x71, 0x00}, opts), ip);
    expect_every_cut_truncated(tun::parse_geneve, pkt, 20, Anomaly::GeneveTruncated);
    tun::Layer layer;
    Anomaly why{};
    ASSERT_TRUE(tun::parse_geneve(pkt, layer, why));
    EXPECT_EQ(layer.id, 6001u);
    EXPECT_EQ(layer.next, tun::Next::Ipv4);
    EXPECT_TRUE(tun::parse_geneve(cat({0x00, 0x00, 0x65, 0x58, 0, 0, 1, 0}, ip), layer, why));
    EXPECT_EQ(layer.next, tun::Next::Ethernet);
    EXPECT_TRUE(tun::parse_geneve(cat({0x00, 0x00, 0x86, 0xDD, 0, 0, 1, 0}, ip), layer, why));
    EXPECT_EQ(layer.next, tun::Next::Ipv6);
    // An option running past the option length; a 2-byte tail.
    EXPECT_FALSE(tun::parse_geneve(cat({0x02, 0x00, 0x08, 0x00, 0, 0, 1, 0, 0, 1, 1, 2, 0, 0, 0, 0}, ip), layer, why));
    EXPECT_EQ(why, Anomaly::GeneveBadOptions);
    // Version 1; an unknown protocol type.
    EXPECT_FALSE(tun::parse_geneve(cat({0x40, 0x00, 0x08, 0x00, 0, 0, 1, 0}, ip), layer, why));
    EXPECT_EQ(why, Anomaly::GeneveUnsupported);
    EXPECT_FALSE(tun::parse_geneve(cat({0x00, 0x00, 0x88, 0x47, 0, 0, 1, 0}, ip), layer, why));
    EXPECT_EQ(why, Anomaly::GeneveUnsupported);
}

Bytes gtpu_packet(std::uint8_t flags, std::uint8_t type, const Bytes& body, int length_delta = 0) {
    Bytes b{flags, type};
    put16(b, static_cast<std::uint16_t>(static_cast<int>(body.size()) + length_delta));
    put32(b, 0x01020304);
    append(b, body);
    return b;
}

TEST(TunnelGtpu, PlainSequenceAndExtensionHeaders) {
    const Bytes ip = ipv6(17, udp(1, 53, kDnsPayload));
    tun::Layer layer;
    Anomaly why{};
    const Bytes plain = gtpu_packet(0x30, 0xFF, ip);
    expect_every_cut_truncated(tun::parse_gtpu, plain, 8, Anomaly::GtpuTruncated);
    ASSERT_TRUE(tun::parse_gtpu(plain, layer, why));
    EXPECT_EQ(layer.id, 0x01020304u);
    EXPECT_EQ(layer.next, tun::Next::Ip);
    // S flag: 4 more bytes; their next-type field is ignored without E.
    const Bytes with_seq = gtpu_packet(0x32, 0xFF, cat({0, 7, 0, 0x85}, ip));
    ASSERT_TRUE(tun::parse_gtpu(with_seq, layer, why));
    EXPECT_EQ(as_bytes(layer.payload), ip);
    // E flag: two extension headers (4 and 8 bytes), then type 0.
    const Bytes ext = cat({0, 0, 0, 0x85, 1, 0x10, 0x09, 0x40, 2, 1, 2, 3, 4, 5, 6, 0}, ip);
    const Bytes with_ext = gtpu_packet(0x34, 0xFF, ext);
    ASSERT_TRUE(tun::parse_gtpu(with_ext, layer, why));
    EXPECT_EQ(as_bytes(layer.payload), ip);
    // Bytes after the length field's end are not part of the message.
    const Bytes trailing = cat(plain, {0xEE, 0xEE});
    ASSERT_TRUE(tun::parse_gtpu(trailing, layer, why));
    EXPECT_EQ(as_bytes(layer.payload), ip);
}

TEST(TunnelGtpu, MalformedAndNonUserPlaneMessagesAreCounted) {
    const Bytes ip = ipv4(udp(1, 53, kDnsPayload));
    struct Case {
        Bytes pkt;
        Anomaly why;
    };
    const std::vector<Case> cases{
        {gtpu_packet(0x30, 0xFF, ip, 1), Anomaly::GtpuTruncated},                          // length beyond
        {gtpu_packet(0x32, 0xFF, {0, 1}), Anomaly::GtpuTruncated},                          // S, no room
        {gtpu_packet(0x30, 0x01, {}), Anomaly::GtpuNotGpdu},                                // echo request
        {gtpu_packet(0x30, 0xFE, {}), Anomaly::GtpuNotGpdu},                                // end marker
        {gtpu_packet(0x48, 0x01, Bytes(4, 0)), Anomaly::GtpuUnsupported},                   // GTPv2
        {gtpu_packet(0x20, 0xFF, ip), Anomaly::GtpuUnsupported},                            // GTP' (PT = 0)
        {gtpu_packet(0x34, 0xFF, cat({0, 0, 0, 0x85, 0, 0, 0, 0}, ip)), Anomaly::GtpuBadExtension},  // length 0
        {gtpu_packet(0x34, 0xFF, {0, 0, 0, 0x85, 3, 0, 0, 0}), Anomaly::GtpuBadExtension},           // beyond
        {gtpu_packet(0x34, 0xFF, {0, 0, 0, 0x85}), Anomaly::GtpuBadExtension},                       // missing
    };
    Bytes chain{0, 0, 0, 0x85};  // 17 extension headers: more than the bound
    for (int i = 0; i < 17; ++i) append(chain, {1, 0, 0, 0x85});
    for (std::size_t i = 0; i <= cases.size(); ++i) {
        const Bytes pkt = i < cases.size() ? cases[i].pkt : gtpu_packet(0x34, 0xFF, cat(chain, ip));
        const Anomaly want = i < cases.size() ? cases[i].why : Anomaly::GtpuBadExtension;
        tun::Layer layer;
        Anomaly why{};
        SCOPED_TRACE(i);
        EXPECT_FALSE(tun::parse_gtpu(pkt, layer, why));
        EXPECT_EQ(why, want) << kAnomalyNames[static_cast<std::size_t>(why)];
    }
}

// NFLOG record with TLVs in the given byte order (values big-endian).
Bytes nflog(std::uint8_t family, const std::vector<std::pair<std::uint16_t, Bytes>>& tlvs, bool big_endian) {
    Bytes b{family, 0, 0, 5};
    for (const auto& [type, value] : tlvs) {
        const auto len = static_cast<std::uint16_t>(4 + value.size());
        if (big_endian) {
            put16(b, len);
            put16(b, type);
        } else {
            append(b, {static_cast<std::uint8_t>(len), static_cast<std::uint8_t>(len >> 8),
                       static_cast<std::uint8_t>(type), static_cast<std::uint8_t>(type >> 8)});
        }
        append(b, value);
        b.resize(b.size() + (-value.size() & 3u), 0);
    }
    return b;
}

TEST(DecodeNflog, PayloadTlvInEitherByteOrderAfterPaddedTlvs) {
    const Bytes v4 = ipv4(udp(40000, 53, kDnsPayload));
    const Bytes v6 = ipv6(17, udp(40000, 53, kDnsPayload));
    for (const bool be : {false, true}) {
        SCOPED_TRACE(be);
        Decoder d;
        const Bytes rec4 = nflog(2, {{1, {0x08, 0x00, 3, 0}}, {10, {'a', 'b', 'c', 0, 0}}, {9, v4}}, be);
        EXPECT_EQ(as_bytes(decode_all(d, packet(lt::kNflog, rec4)).payload), kDnsPayload);
        const Bytes rec6 = nflog(10, {{0x8001, Bytes(4, 0)}, {9, v6}, {11, {0, 0, 3, 0xE8}}}, be);
        const Segment seg = decode_all(d, packet(lt::kNflog, rec6));
        EXPECT_EQ(seg.src.family, 6);
        EXPECT_EQ(anomaly_total(d), 0u);
        EXPECT_EQ(d.link_type_count(lt::kNflog), 2u);
        EXPECT_EQ(Decoder::link_type_name(lt::kNflog), "nflog");
    }
}

TEST(DecodeNflog, MalformedRecordsAreNamed) {
    const Bytes v4 = ipv4(udp(40000, 53, kDnsPayload));
    expect_link_anomaly(packet(lt::kNflog, {2, 0, 0}), Anomaly::LinkTruncated);
    expect_link_anomaly(packet(lt::kNflog, {2, 0, 0, 5}), Anomaly::NflogNoPayload);
    expect_link_anomaly(packet(lt::kNflog, nflog(2, {{1, {8, 0, 3, 0}}}, false)), Anomaly::NflogNoPayload);
    // A TLV length below 4, and a non-payload TLV running past the record.
    expect_link_anomaly(packet(lt::kNflog, cat(nflog(2, {{1, {8, 0, 3, 0}}}, false), {2, 0, 9, 0})),
                        Anomaly::NflogBadTlv);
    expect_link_anomaly(packet(lt::kNflog, cat(nflog(2, {{1, {8, 0, 3, 0}}}, false), {200, 0, 10, 0, 'x', 0, 0, 0})),
                        Anomaly::NflogBadTlv);
    // No plausible byte order at all (type 0x0101 both ways).
    expect_link_anomaly(packet(lt::kNflog, {2, 0, 0, 5, 8, 0, 1, 1, 0, 0, 0, 0}), Anomaly::NflogBadTlv);
    // Family AF_BRIDGE (7): not an IP payload.
    expect_link_anomaly(packet(lt::kNflog, nflog(7, {{9, v4}}, false)), Anomaly::NotIp);
    // The payload TLV cut by the snaplen: the IP layer says snapped.
    const Bytes whole = nflog(2, {{9, v4}}, false);
    expect_link_anomaly(packet(lt::kNflog, Bytes(whole.begin(), whole.end() - 10), 0), Anomaly::IpSnapped);
}

// Outer IPv6 (2001:db8::1 -> ::2) carrying `proto` + payload.
capture::Packet outer6(std::uint8_t proto, const Bytes& payload, std::initializer_list<std::uint16_t> tags = {}) {
    return packet(lt::kEthernet, ether(0x86DD, ipv6(proto, payload), tags));
}

// Decodes the link and removes tunnels until there are none left; returns
// the Decap result of the last call.
Decap decap_all(Decoder& d, const capture::Packet& p, IpPacket& out) {
    IpPacket ip;
    if (!d.decode_link(p, ip)) return Decap::Dropped;
    for (;;) {
        IpPacket inner;
        const Decap r = d.decapsulate(ip, inner);
        if (r != Decap::Inner) {
            out = ip;
            return r;
        }
        ip = inner;
    }
}

Bytes vxlan(const Bytes& frame, std::uint32_t vni = 1) {
    Bytes b{0x08, 0, 0, 0};
    put32(b, vni << 8);
    return cat(b, frame);
}

TEST(DecodeDecap, EveryKindGivesTheInnerPacketAndIsCounted) {
    const Bytes inner4 = ipv4(udp(40000, 53, kDnsPayload));
    const Bytes inner6 = ipv6(17, udp(40000, 53, kDnsPayload));
    const Bytes frame4 = ether(0x0800, inner4);
    struct Case {
        const char* name;
        capture::Packet pkt;
        TunnelKind kind;
        int family;
    };
    const std::vector<Case> cases{
        {"gre", outer6(47, cat(gre_header(0, 0x0800), inner4)), TunnelKind::Gre, 4},
        {"erspan", outer6(47, cat(gre_header(0x1000, 0x88BE, 0, 1), cat({0x10, 0, 0, 1, 0, 0, 0, 0}, frame4))),
         TunnelKind::Erspan, 4},
        {"vxlan", outer6(17, udp(50000, 4789, vxlan(frame4))), TunnelKind::Vxlan, 4},
        {"geneve", outer6(17, udp(50000, 6081, cat({0, 0, 0x86, 0xDD, 0, 0, 1, 0}, inner6))), TunnelKind::Geneve, 6},
        {"gtpu", outer6(17, udp(2152, 2152, gtpu_packet(0x30, 0xFF, inner4))), TunnelKind::Gtpu, 4},
        {"ipip", outer6(4, inner4), TunnelKind::IpIp, 4},
        {"ipv6_in_ip", packet(lt::kRaw, ipv4(inner6, proto4(41))), TunnelKind::Ipv6InIp, 6},
        {"ipip after extension headers", outer6(60, cat(ext8(4), inner4)), TunnelKind::IpIp, 4},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        Decoder d;
        IpPacket ip;
        ASSERT_EQ(decap_all(d, c.pkt, ip), Decap::None);
        EXPECT_EQ(ip.src.family, c.family);
        EXPECT_EQ(ip.encap.depth, 1);
        EXPECT_EQ(ip.encap.tunnel, c.kind);
        EXPECT_EQ(d.decapsulated().get(c.kind), 1u);
        EXPECT_EQ(anomaly_total(d), 0u);
        Segment seg;
        ASSERT_TRUE(d.decode_transport(ip, 0, seg));
        EXPECT_EQ(as_bytes(seg.payload), kDnsPayload);
        EXPECT_EQ(seg.encap.tunnel, c.kind);
        std::map<std::string, std::uint64_t> counters;
        d.for_each_counter([&](std::string_view name, std::uint64_t v) {
            if (v) counters[std::string(name)] = v;
        });
        EXPECT_EQ(counters, (std::map<std::string, std::uint64_t>{
                                {"decap_" + std::string(kTunnelKindNames[static_cast<std::size_t>(c.kind)]), 1}}));
    }
}

TEST(DecodeDecap, KeepsTheOutermostTunnelAndTheOutermostVlan) {
    // VLAN 11 on the captured frame; GRE (key 7) from 2001:db8::1 -> ::2;
    // inside, VXLAN VNI 99 carrying a frame tagged 0x8100 VLAN 11 (ether()).
    const Bytes inner_udp = ipv4(udp(50000, 4789, vxlan(ether(0x0800, ipv4(udp(40000, 53, kDnsPayload)), {0x8100}), 99)));
    Decoder d;
    IpPacket ip;
    ASSERT_EQ(decap_all(d, outer6(47, cat(gre_header(0x2000, 0x0800, 7), inner_udp), {0x8100}), ip), Decap::None);
    EXPECT_EQ(ip.encap.depth, 2);
    EXPECT_EQ(ip.encap.tunnel, TunnelKind::Gre);
    EXPECT_TRUE(ip.encap.has_tunnel_id);
    EXPECT_EQ(ip.encap.tunnel_id, 7u);
    EXPECT_EQ(ip.encap.outer_src.family, 6);
    EXPECT_EQ(ip.encap.outer_src.bytes[15], 1);
    EXPECT_EQ(ip.encap.outer_dst.bytes[15], 2);
    EXPECT_TRUE(ip.encap.has_vlan);
    EXPECT_EQ(ip.encap.vlan, 11);
    // Without a tag outside, the first tag inside a tunnel is the VLAN.
    Decoder d2;
    Bytes tagged = ether(0x0800, ipv4(udp(40000, 53, kDnsPayload)));
    tagged.insert(tagged.begin() + 12, {0x81, 0x00, 0x01, 0x2C});  // VLAN 300
    ASSERT_EQ(decap_all(d2, outer6(17, udp(50000, 4789, vxlan(tagged))), ip), Decap::None);
    EXPECT_TRUE(ip.encap.has_vlan);
    EXPECT_EQ(ip.encap.vlan, 300);
    EXPECT_EQ(ip.encap.tunnel_id, 1u);
    // A plain packet has neither.
    Decoder d3;
    ASSERT_EQ(decap_all(d3, packet(lt::kRaw, ipv4(udp(40000, 53, kDnsPayload))), ip), Decap::None);
    EXPECT_EQ(ip.encap.depth, 0);
    EXPECT_FALSE(ip.encap.has_vlan);
}

TEST(DecodeDecap, DnsPortsAreNeverTunnels) {
    // A resolver's query from port 4789, its answer to port 4789.
    for (const Bytes& dgram : {udp(53, 4789, kDnsPayload), udp(4789, 4789, kDnsPayload)}) {
        Decoder d;
        IpPacket ip;
        const auto pkt = packet(lt::kRaw, ipv4(dgram));
        const bool is_dns_src = dgram[1] == 53;
        EXPECT_EQ(decap_all(d, pkt, ip), is_dns_src ? Decap::None : Decap::Dropped);
    }
    DecapConfig cfg;
    cfg.dns_ports = {53, 4789};
    Decoder d(cfg);
    IpPacket ip;
    EXPECT_EQ(decap_all(d, packet(lt::kRaw, ipv4(udp(4789, 4789, kDnsPayload))), ip), Decap::None);
    // A port set to 0 is off.
    DecapConfig off;
    off.vxlan_port = 0;
    Decoder d2(off);
    EXPECT_EQ(decap_all(d2, packet(lt::kRaw, ipv4(udp(1, 4789, vxlan(ether(0x0800, ipv4(udp(1, 53, kDnsPayload))))))),
                        ip),
              Decap::None);
    EXPECT_EQ(d2.decapsulated().get(TunnelKind::Vxlan), 0u);
    // Plain UDP/TCP/ICMP: not tunnels, nothing counted.
    Decoder d3;
    V4 tcpv;
    tcpv.protocol = 6;
    V4 icmp;
    icmp.protocol = 1;
    for (const Bytes& p : {ipv4(udp(40000, 53, kDnsPayload)), ipv4(tcp(1, 53, 1, 1, 0, {}, {}), tcpv),
                           ipv4(Bytes(8, 0), icmp), ipv4(Bytes(3, 0))}) {
        EXPECT_EQ(decap_all(d3, packet(lt::kRaw, p), ip), Decap::None);
    }
    EXPECT_EQ(anomaly_total(d3), 0u);
}

TEST(DecodeDecap, DepthIsBoundedAndCounted) {
    Bytes pkt = ipv4(udp(40000, 53, kDnsPayload));
    for (int i = 0; i < 4; ++i) pkt = ipv4(pkt, proto4(4));
    for (const unsigned max : {4u, 3u, 0u}) {
        DecapConfig cfg;
        cfg.max_depth = max;
        Decoder d(cfg);
        IpPacket ip;
        SCOPED_TRACE(max);
        EXPECT_EQ(decap_all(d, packet(lt::kRaw, pkt), ip), max >= 4 ? Decap::None : Decap::Dropped);
        EXPECT_EQ(d.anomalies().get(Anomaly::TunnelTooDeep), max >= 4 ? 0u : 1u);
        EXPECT_EQ(d.decapsulated().get(TunnelKind::IpIp), std::min(max, 4u));
    }
}

TEST(DecodeDecap, MalformedTunnelsAreDroppedWithTheirAnomaly) {
    const Bytes frame = ether(0x0800, ipv4(udp(1, 53, kDnsPayload)));
    struct Case {
        const char* name;
        Bytes ip;
        Anomaly why;
    };
    const std::vector<Case> cases{
        {"gre cut", ipv4({0x00, 0x00, 0x08}, proto4(47)), Anomaly::GreTruncated},
        {"vxlan flags", ipv4(udp(1, 4789, cat({0, 0, 0, 0, 0, 0, 1, 0}, frame))), Anomaly::VxlanBadFlags},
        {"vxlan inner frame cut", ipv4(udp(1, 4789, vxlan(Bytes(13, 2)))), Anomaly::LinkTruncated},
        {"vxlan arp", ipv4(udp(1, 4789, vxlan(ether(0x0806, Bytes(28, 0))))), Anomaly::NotIp},
        {"geneve cut", ipv4(udp(1, 6081, {0x01, 0, 0x65, 0x58, 0, 0, 1, 0})), Anomaly::GeneveTruncated},
        {"gtpu echo", ipv4(udp(2152, 2152, gtpu_packet(0x30, 1, {}))), Anomaly::GtpuNotGpdu},
        {"ipip inner cut", ipv4(Bytes(frame.begin() + 14, frame.begin() + 40), proto4(4)), Anomaly::IpSnapped},
        {"ipip inner not v4", ipv4(ipv6(17, udp(1, 53, kDnsPayload)), proto4(4)), Anomaly::IpBadVersion},
        {"41 empty", ipv4({}, proto4(41)), Anomaly::IpTruncated},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        Decoder d;
        IpPacket ip;
        EXPECT_EQ(decap_all(d, packet(lt::kRaw, c.ip), ip), Decap::Dropped);
        EXPECT_EQ(d.anomalies().get(c.why), 1u) << kAnomalyNames[static_cast<std::size_t>(c.why)];
        EXPECT_EQ(anomaly_total(d), 1u);
    }
}

// Deterministic mutation run over tunnelled packets: every view stays inside
// the packet's bytes (and under ASan nothing reads outside them).
TEST(DecodeDecap, MutatedTunnelsNeverLeaveThePacketBytes) {
    const Bytes inner = ipv4(udp(40000, 53, kDnsPayload));
    const Bytes frame = ether(0x0800, inner, {0x8100});
    const std::vector<Bytes> seeds{
        ipv4(cat(gre_header(0xB000, 0x6558, 1, 2), frame), proto4(47)),
        ipv4(cat(gre_header(0x1000, 0x22EB, 0, 1), cat({0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}, cat(Bytes(8, 0), frame))),
             proto4(47)),
        ipv4(udp(1, 4789, vxlan(frame))),
        ipv4(udp(1, 6081, cat({0x01, 0, 0x65, 0x58, 0, 0, 1, 0, 0, 1, 1, 0}, frame))),
        ipv4(udp(2152, 2152, gtpu_packet(0x36, 0xFF, cat({0, 1, 0, 0x85, 1, 0x10, 0x09, 0}, inner)))),
        ipv6(41, ipv6(4, inner)),
        nflog(2, {{1, {8, 0, 3, 0}}, {9, inner}}, false),
    };
    std::uint32_t state = 777;
    auto next = [&state] {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        return state;
    };
    Decoder d;
    std::uint64_t reached = 0;
    for (int round = 0; round < 30000; ++round) {
        const std::size_t which = next() % seeds.size();
        Bytes bytes = seeds[which];
        const int changes = static_cast<int>(next() % 4);
        for (int i = 0; i < changes; ++i) bytes[next() % bytes.size()] = static_cast<std::uint8_t>(next());
        if (next() % 3 == 0) bytes.resize(next() % (bytes.size() + 1));
        capture::Packet pkt;
        pkt.link_type = which + 1 == seeds.size() ? lt::kNflog : lt::kRaw;
        pkt.data = bytes;
        pkt.original_length = static_cast<std::uint32_t>(bytes.size());
        const auto* begin = bytes.data();
        const auto* end = bytes.data() + bytes.size();
        auto inside = [&](std::span<const std::uint8_t> v) {
            return v.empty() || (v.data() >= begin && v.data() + v.size() <= end);
        };
        IpPacket ip;
        if (!d.decode_link(pkt, ip)) continue;
        ASSERT_TRUE(inside(ip.payload));
        for (int depth = 0; depth < 8 && !ip.is_fragment; ++depth) {
            IpPacket in;
            if (d.decapsulate(ip, in) != Decap::Inner) break;
            ASSERT_TRUE(inside(in.payload));
            ASSERT_LE(in.encap.depth, 4);
            ip = in;
        }
        Segment seg;
        if (!ip.is_fragment && d.decode_transport(ip, 0, seg)) {
            ASSERT_TRUE(inside(seg.payload));
            ++reached;
        }
    }
    EXPECT_GT(reached, 1000u);
}

}  // namespace
}  // namespace sidetap::decode
