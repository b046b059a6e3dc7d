// Tests for capture::PcapFileSource: the shared public captures (expected
// values taken from tshark 4.0), the purpose-made captures in pcaps/, and
// synthetic files built here for each error path.
#include "capture/pcap_file_source.h"
#include "util/error.h"
#include "test_data.h"

#include <gtest/gtest.h>

#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace sidetap::capture {
namespace {

namespace fs = std::filesystem;
using Status = PacketSource::Status;

const fs::path kOwnPcaps = fs::path(SIDETAP_SOURCE_DIR) / "pcaps";

struct Record {
    std::uint64_t ts = 0;
    std::uint32_t caplen = 0;
    std::uint32_t len = 0;
    std::uint32_t link_type = 0;
    std::uint32_t interface_id = 0;
    std::vector<std::uint8_t> data;
};

struct ReadResult {
    std::vector<Record> records;
    Status final_status = Status::Packet;
    std::string error;
};

ReadResult read_all(const fs::path& path) {
    PcapFileSource source(path.string());
    ReadResult result;
    Packet packet;
    Status status;
    while ((status = source.next(packet)) == Status::Packet) {
        result.records.push_back({packet.timestamp_ns, static_cast<std::uint32_t>(packet.data.size()),
                                  packet.original_length, packet.link_type, source.interface_id(),
                                  std::vector<std::uint8_t>(packet.data.begin(), packet.data.end())});
    }
    result.final_status = status;
    result.error = source.error();
    // Finished sources keep reporting the same status.
    EXPECT_EQ(source.next(packet), status);
    return result;
}

std::set<std::uint32_t> link_types(const ReadResult& r) {
    std::set<std::uint32_t> out;
    for (const auto& rec : r.records) out.insert(rec.link_type);
    return out;
}

// ------------------------------------------------------------ file builder

class Bytes {
public:
    explicit Bytes(bool big_endian = false) : big_endian_(big_endian) {}
    Bytes& u8(std::uint8_t v) { data_.push_back(v); return *this; }
    Bytes& u16(std::uint16_t v) { return put(v, 2); }
    Bytes& u32(std::uint32_t v) { return put(v, 4); }
    Bytes& u64(std::uint64_t v) { return put(v, 8); }
    Bytes& raw(const std::vector<std::uint8_t>& v) { data_.insert(data_.end(), v.begin(), v.end()); return *this; }
    Bytes& zeros(std::size_t n) { data_.insert(data_.end(), n, 0); return *this; }
    Bytes& pad4() { return zeros((4 - data_.size() % 4) % 4); }
    [[nodiscard]] const std::vector<std::uint8_t>& data() const { return data_; }
    [[nodiscard]] bool big_endian() const { return big_endian_; }

private:
    Bytes& put(std::uint64_t v, int size) {
        for (int i = 0; i < size; ++i) {
            const int shift = big_endian_ ? (size - 1 - i) * 8 : i * 8;
            data_.push_back(static_cast<std::uint8_t>(v >> shift));
        }
        return *this;
    }
    bool big_endian_;
    std::vector<std::uint8_t> data_;
};

std::vector<std::uint8_t> payload(std::size_t n, std::uint8_t seed = 0) {
    std::vector<std::uint8_t> out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>(seed + i * 7);
    return out;
}

// pcapng block with the given body; `length_override` writes a wrong length.
void block(Bytes& out, std::uint32_t type, const Bytes& body, std::uint32_t length_override = 0) {
    const auto length = length_override ? length_override : static_cast<std::uint32_t>(12 + body.data().size());
    out.u32(type).u32(length).raw(body.data()).u32(length);
}

void shb(Bytes& out) {
    Bytes body(out.big_endian());
    body.u32(0x1a2b3c4d).u16(1).u16(0).u64(~std::uint64_t{0});
    block(out, 0x0a0d0d0a, body);
}

struct IdbOptions {
    std::int32_t tsresol = -1;  // -1: absent
    bool has_offset = false;
    std::int64_t offset = 0;
};

void idb(Bytes& out, std::uint16_t link_type, std::uint32_t snaplen = 0, IdbOptions opt = {}) {
    Bytes body(out.big_endian());
    body.u16(link_type).u16(0).u32(snaplen);
    if (opt.tsresol >= 0) body.u16(9).u16(1).u8(static_cast<std::uint8_t>(opt.tsresol)).pad4();
    if (opt.has_offset) body.u16(14).u16(8).u64(static_cast<std::uint64_t>(opt.offset));
    if (opt.tsresol >= 0 || opt.has_offset) body.u16(0).u16(0);
    block(out, 1, body);
}

void epb(Bytes& out, std::uint32_t interface, std::uint64_t ticks, const std::vector<std::uint8_t>& data,
         std::uint32_t orig = 0, std::size_t option_bytes = 0) {
    Bytes body(out.big_endian());
    body.u32(interface).u32(static_cast<std::uint32_t>(ticks >> 32)).u32(static_cast<std::uint32_t>(ticks));
    body.u32(static_cast<std::uint32_t>(data.size())).u32(orig ? orig : static_cast<std::uint32_t>(data.size()));
    body.raw(data).pad4();
    // opt_comment options of at most 65532 bytes each, then opt_endofopt.
    while (option_bytes > 0) {
        const std::size_t n = std::min<std::size_t>(option_bytes, 65532);
        body.u16(1).u16(static_cast<std::uint16_t>(n)).zeros(n).pad4();
        option_bytes -= n;
    }
    block(out, 6, body);
}

void pcap_header(Bytes& out, std::uint32_t magic, std::uint32_t link_type, std::uint32_t snaplen = 65535) {
    out.u32(magic).u16(2).u16(4).u32(0).u32(0).u32(snaplen).u32(link_type);
}

class CaptureFile : public ::testing::Test {
protected:
    fs::path write(const std::string& name, const std::vector<std::uint8_t>& bytes) {
        const fs::path dir = fs::path(::testing::TempDir()) / "sidetap_capture_test";
        fs::create_directories(dir);
        const fs::path path = dir / name;
        std::ofstream(path, std::ios::binary)
            .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        return path;
    }
};

// ------------------------------------------------------------ shared captures

struct SharedExpectation {
    const char* file;
    std::size_t packets;
    std::uint64_t first_ts;
    std::uint64_t last_ts;
    std::set<std::uint32_t> link_types;
    std::uint32_t max_interface;
};

TEST(CaptureShared, CountsTimestampsAndLinkTypesMatchTshark) {
    const std::vector<SharedExpectation> expected = {
        {"packetq-sample-bigendian.pcap", 2, 1382970487688018000, 1382970487704674000, {1}, 0},
        {"derived-dnscap-edns-nsec.pcap", 14, 1688541698669836123, 1688541706518500123, {1}, 0},
        {"derived-dnscap-edns-nsec.pcapng", 14, 1688541698669836123, 1688541706518500123, {1}, 0},
        {"pcapplusplus-many_interfaces-1.pcapng", 64, 1439753725701607000, 1439753728292345000, {0, 1}, 10},
        {"pcapplusplus-too_many_interfaces.pcapng", 1, 1460283000005015000, 1460283000005015000, {1}, 82},
        {"zeek-pcapng-multi-interface.pcapng", 6, 1767663089500330493, 1767663437140942000, {1}, 1},
        {"tcpdump-time_2107.pcapng", 1, 4323283200000000000, 4323283200000000000, {1}, 0},
        {"tcpdump-time_2106_max.pcap", 1, 4294967295000000000, 4294967295000000000, {1}, 0},
        {"tcpdump-time_2038_overflow.pcap", 1, 2147483648000000000, 2147483648000000000, {1}, 0},
        {"ndpi-dns-qinq-pppoe.pcapng", 5, 1112172654366527000, 1484673025976144000, {1}, 0},
        {"dnscap-sll2.pcap", 2, 1741351492219938000, 1741351492234317000, {276}, 0},
        {"derived-tcpdump-dns-badcookie-dlt_loop.pcap", 4, 1550020603306396000, 1550020603307171000, {108}, 0},
    };
    for (const auto& e : expected) {
        SCOPED_TRACE(e.file);
        const auto r = read_all(test_data::public_capture(e.file));
        EXPECT_EQ(r.final_status, Status::End) << r.error;
        ASSERT_EQ(r.records.size(), e.packets);
        EXPECT_EQ(r.records.front().ts, e.first_ts);
        EXPECT_EQ(r.records.back().ts, e.last_ts);
        EXPECT_EQ(link_types(r), e.link_types);
        std::uint32_t max_if = 0;
        for (const auto& rec : r.records) max_if = std::max(max_if, rec.interface_id);
        EXPECT_EQ(max_if, e.max_interface);
    }
}

TEST(CaptureShared, ManyInterfacesKeepsPerInterfaceLinkType) {
    const fs::path path = test_data::public_capture("pcapplusplus-many_interfaces-1.pcapng");
    if (!fs::exists(path)) GTEST_FAIL() << path << " not present";
    const auto r = read_all(path);
    // tshark: the two NULL (0) packets are on interface 10, the rest on 0 (Ethernet).
    std::size_t null_packets = 0;
    for (const auto& rec : r.records) {
        if (rec.link_type == linktype::kNull) {
            ++null_packets;
            EXPECT_EQ(rec.interface_id, 10u);
        } else {
            EXPECT_EQ(rec.link_type, linktype::kEthernet);
            EXPECT_EQ(rec.interface_id, 0u);
        }
    }
    EXPECT_EQ(null_packets, 2u);
}

// ------------------------------------------------------------ pcaps/

TEST(CaptureOwn, PurposeMadeCapturesReadCleanly) {
    struct Expect {
        const char* file;
        std::size_t packets;
        std::uint32_t link_type;
        std::uint64_t first_ts;
    };
    const std::vector<Expect> expected = {
        {"udp-ethernet.pcap", 10, linktype::kEthernet, 1700000000123456000},
        {"udp-ethernet-ns-be.pcap", 10, linktype::kEthernet, 1700000000123456789},
        {"udp-vlan-qinq.pcap", 6, linktype::kEthernet, 1700000000123456000},
        {"udp-sll.pcap", 4, linktype::kLinuxSll, 1700000000123456000},
        {"udp-sll2.pcap", 4, linktype::kLinuxSll2, 1700000000123456000},
        {"udp-null.pcap", 8, linktype::kNull, 1700000000123456000},
        {"udp-loop.pcap", 4, linktype::kLoop, 1700000000123456000},
        {"udp-raw.pcap", 4, linktype::kRaw, 1700000000123456000},
        {"udp-ipv4.pcap", 4, linktype::kIpv4, 1700000000123456000},
        {"udp-ipv6.pcap", 4, linktype::kIpv6, 1700000000123456000},
        {"udp-ipv6-exthdr.pcap", 4, linktype::kEthernet, 1700000000123456000},
        {"malformed.pcap", 7, linktype::kEthernet, 1700000000123456000},
        {"unknown-linktype.pcap", 4, 147, 1700000000123456000},
    };
    for (const auto& e : expected) {
        SCOPED_TRACE(e.file);
        const auto r = read_all(kOwnPcaps / e.file);
        EXPECT_EQ(r.final_status, Status::End) << r.error;
        ASSERT_EQ(r.records.size(), e.packets);
        EXPECT_EQ(link_types(r), std::set<std::uint32_t>{e.link_type});
        EXPECT_EQ(r.records.front().ts, e.first_ts);
    }
}

TEST(CaptureOwn, SnappedKeepsOriginalLengths) {
    const auto r = read_all(kOwnPcaps / "snapped.pcap");
    ASSERT_EQ(r.records.size(), 6u);
    const std::uint32_t caplen[] = {62, 64, 45, 45, 64, 64};
    const std::uint32_t len[] = {62, 94, 45, 45, 82, 126};
    for (std::size_t i = 0; i < 6; ++i) {
        EXPECT_EQ(r.records[i].caplen, caplen[i]) << i;
        EXPECT_EQ(r.records[i].len, len[i]) << i;
    }
}

TEST(CaptureOwn, MultiInterfacePcapng) {
    const auto r = read_all(kOwnPcaps / "multi-interface.pcapng");
    ASSERT_EQ(r.final_status, Status::End) << r.error;
    ASSERT_EQ(r.records.size(), 8u);
    // Values from pcaps/README.md (and tshark): µs, ns, 2^-20 (floor), SPB.
    const std::uint64_t ts[] = {1700000000123456000, 1700000000124691000, 1700000000133456900,
                                1700000000134691467, 1700000000143456459, 1700000000144691467,
                                1700000000144691467, 1700000000154691000};
    const std::uint32_t link[] = {1, 1, 101, 101, 276, 276, 1, 1};
    const std::uint32_t iface[] = {0, 0, 1, 1, 2, 2, 0, 0};
    for (std::size_t i = 0; i < 8; ++i) {
        SCOPED_TRACE(i);
        EXPECT_EQ(r.records[i].ts, ts[i]);
        EXPECT_EQ(r.records[i].link_type, link[i]);
        EXPECT_EQ(r.records[i].interface_id, iface[i]);
    }
    EXPECT_EQ(r.records[6].caplen, 84u);  // the Simple Packet Block
}

TEST(CaptureOwn, TwoSectionsResetInterfacesAndByteOrder) {
    const auto r = read_all(kOwnPcaps / "two-sections.pcapng");
    ASSERT_EQ(r.final_status, Status::End) << r.error;
    ASSERT_EQ(r.records.size(), 4u);
    EXPECT_EQ(r.records[0].link_type, linktype::kEthernet);
    EXPECT_EQ(r.records[2].link_type, linktype::kRaw);
    EXPECT_EQ(r.records[2].interface_id, 0u);
    EXPECT_EQ(r.records[3].ts, 1700000000134691467u);
    EXPECT_EQ(r.records[3].data[0] >> 4, 6);  // an IPv6 header, read from the big-endian section
}

TEST(CaptureOwn, TruncatedRecordEmitsPacketsThenError) {
    const auto r = read_all(kOwnPcaps / "truncated-record.pcap");
    EXPECT_EQ(r.records.size(), 4u);
    EXPECT_EQ(r.final_status, Status::Error);
    EXPECT_NE(r.error.find("truncated-record.pcap: truncated record at offset 508 (packet #5)"), std::string::npos)
        << r.error;
}

TEST(CaptureOwn, NotACaptureIsFatal) {
    try {
        open_capture_file((kOwnPcaps / "not-a-capture.pcap").string());
        FAIL() << "no exception";
    } catch (const util::FatalError& e) {
        EXPECT_NE(std::string(e.what()).find("not a pcap or pcapng file (magic 0x54686973)"), std::string::npos)
            << e.what();
    }
}

// ------------------------------------------------------------ synthetic files

TEST_F(CaptureFile, OpenErrorsAreFatal) {
    const auto expect_fatal = [](const std::string& path, const std::string& text) {
        try {
            open_capture_file(path);
            ADD_FAILURE() << "no exception for " << path;
        } catch (const util::FatalError& e) {
            EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
        }
    };
    expect_fatal("/nonexistent/x.pcap", "cannot open /nonexistent/x.pcap: No such file or directory");
    expect_fatal(::testing::TempDir(), "is a directory");
    expect_fatal(write("empty.pcap", {}).string(), "not a pcap or pcapng file (empty)");
    expect_fatal(write("gz.pcap", {0x1f, 0x8b, 0x08, 0x00, 0, 0}).string(), "gzip");
    expect_fatal(write("short-header.pcap", {0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0}).string(),
                 "truncated pcap file header");
    Bytes bad_bom;
    bad_bom.u32(0x0a0d0d0a).u32(28).u32(0x11223344).zeros(16);
    expect_fatal(write("bad-bom.pcapng", bad_bom.data()).string(), "bad byte-order magic");
}

TEST_F(CaptureFile, HeaderOnlyIsEnd) {
    Bytes pcap;
    pcap_header(pcap, 0xa1b2c3d4, 1);
    PcapFileSource a(write("empty-pcap.pcap", pcap.data()).string());
    Packet p;
    EXPECT_EQ(a.next(p), Status::End);
    EXPECT_EQ(a.bytes_read(), 24u);
    EXPECT_EQ(a.bytes_total(), 24u);

    Bytes ng;
    shb(ng);
    idb(ng, 1);
    PcapFileSource b(write("empty-ng.pcapng", ng.data()).string());
    EXPECT_EQ(b.next(p), Status::End);
    EXPECT_EQ(b.format(), PcapFileSource::Format::PcapNg);
}

TEST_F(CaptureFile, PcapByteOrdersResolutionsAndFcsBits) {
    for (const bool big : {false, true}) {
        for (const std::uint32_t magic : {0xa1b2c3d4u, 0xa1b23c4du}) {
            SCOPED_TRACE(std::to_string(big) + " " + std::to_string(magic));
            Bytes f(big);
            // Link type field with "FCS present, 4 bytes" in the upper bits.
            pcap_header(f, magic, 0x24000000 | 101);
            f.u32(0xffffffff).u32(999999).u32(20).u32(40).raw(payload(20));
            const auto r = read_all(write("p.pcap", f.data()));
            ASSERT_EQ(r.records.size(), 1u);
            const std::uint64_t frac = magic == 0xa1b2c3d4 ? 999999000 : 999999;
            EXPECT_EQ(r.records[0].ts, 4294967295ull * 1000000000 + frac);
            EXPECT_EQ(r.records[0].link_type, 101u);
            EXPECT_EQ(r.records[0].caplen, 20u);
            EXPECT_EQ(r.records[0].len, 40u);
            EXPECT_EQ(r.records[0].data, payload(20));
        }
    }
}

TEST_F(CaptureFile, PcapDamage) {
    Bytes base;
    pcap_header(base, 0xa1b2c3d4, 1);
    base.u32(1).u32(2).u32(10).u32(10).raw(payload(10));

    Bytes cut_header = base;
    cut_header.u32(1).u32(2);
    auto r = read_all(write("cut-header.pcap", cut_header.data()));
    EXPECT_EQ(r.records.size(), 1u);
    EXPECT_EQ(r.final_status, Status::Error);
    EXPECT_NE(r.error.find("truncated record header at offset 50 (packet #2)"), std::string::npos) << r.error;

    Bytes huge = base;
    huge.u32(1).u32(2).u32(300000).u32(300000);
    r = read_all(write("huge.pcap", huge.data()));
    EXPECT_EQ(r.records.size(), 1u);
    EXPECT_NE(r.error.find("captured length 300000"), std::string::npos) << r.error;
}

TEST_F(CaptureFile, PcapngTimestampResolutionsAndOffsets) {
    Bytes f;
    shb(f);
    idb(f, 1, 0, {.tsresol = 0x94});                      // 0: 2^-20 s
    idb(f, 1, 0, {.tsresol = 3});                         // 1: ms
    idb(f, 1, 0, {.tsresol = 12});                        // 2: ps
    idb(f, 1, 0, {.tsresol = 9, .has_offset = true, .offset = 100});   // 3
    idb(f, 1, 0, {.tsresol = 9, .has_offset = true, .offset = -100});  // 4
    idb(f, 1, 0, {.tsresol = 9});                         // 5
    idb(f, 1, 0, {.tsresol = 0xbf});                      // 6: 2^-63 s
    const auto data = payload(4);
    epb(f, 0, (std::uint64_t{1700000000} << 20) + 1, data);
    epb(f, 1, 1700000000123, data);
    epb(f, 2, 1700000000123456789ull, data);
    epb(f, 3, 5, data);
    epb(f, 4, 5, data);
    epb(f, 5, ~std::uint64_t{0}, data);
    epb(f, 6, (std::uint64_t{1} << 63) + 1, data);
    const auto r = read_all(write("tsresol.pcapng", f.data()));
    ASSERT_EQ(r.final_status, Status::End) << r.error;
    ASSERT_EQ(r.records.size(), 7u);
    EXPECT_EQ(r.records[0].ts, 1700000000000000953u);  // floor(1e9 / 2^20)
    EXPECT_EQ(r.records[1].ts, 1700000000123000000u);
    EXPECT_EQ(r.records[2].ts, 1700000000123456u);  // 1700000.000123456789 s, floor
    EXPECT_EQ(r.records[3].ts, 100000000005u);
    EXPECT_EQ(r.records[4].ts, 0u);  // clamped
    EXPECT_EQ(r.records[5].ts, 18446744073709551615u);
    EXPECT_EQ(r.records[6].ts, 1000000000u);  // 1 s + 2^-63 s
}

TEST_F(CaptureFile, PcapngBlocksLargerThanTheBuffer) {
    Bytes f(true);  // big-endian for good measure
    shb(f);
    // A 3 MiB block of an unknown type is skipped across several reads.
    Bytes custom(true);
    custom.zeros(3 * 1024 * 1024);
    block(f, 0x00000bad, custom);
    idb(f, 1);
    epb(f, 0, 1, payload(100, 1));
    // An EPB with 2 MiB of options: the buffer must grow to hold it.
    epb(f, 0, 2, payload(200, 2), 0, 2 * 1024 * 1024);
    epb(f, 0, 3, payload(300, 3));
    const auto path = write("big.pcapng", f.data());
    PcapFileSource source(path.string());
    Packet p;
    std::vector<std::vector<std::uint8_t>> got;
    while (source.next(p) == Status::Packet) got.emplace_back(p.data.begin(), p.data.end());
    EXPECT_EQ(source.error(), "");
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0], payload(100, 1));
    EXPECT_EQ(got[1], payload(200, 2));
    EXPECT_EQ(got[2], payload(300, 3));
    EXPECT_EQ(source.bytes_read(), f.data().size());
    EXPECT_EQ(source.bytes_total(), f.data().size());
}

TEST_F(CaptureFile, PcapngSimpleAndObsoletePacketBlocks) {
    Bytes f;
    shb(f);
    idb(f, 101, 50);
    epb(f, 0, 7000000, payload(10));
    Bytes spb;
    spb.u32(100).raw(payload(100));  // snaplen 50 cuts it
    block(f, 3, spb);
    Bytes pb;
    pb.u16(0).u16(0).u32(0).u32(9000000).u32(5).u32(60).raw(payload(5)).pad4();
    block(f, 2, pb);
    const auto r = read_all(write("spb.pcapng", f.data()));
    ASSERT_EQ(r.final_status, Status::End) << r.error;
    ASSERT_EQ(r.records.size(), 3u);
    EXPECT_EQ(r.records[1].caplen, 50u);
    EXPECT_EQ(r.records[1].len, 100u);
    EXPECT_EQ(r.records[1].ts, 7000000000u);  // previous packet's time
    EXPECT_EQ(r.records[2].ts, 9000000000u);
    EXPECT_EQ(r.records[2].len, 60u);
    EXPECT_EQ(r.records[2].link_type, 101u);
}

TEST_F(CaptureFile, PcapngDamage) {
    const auto expect_error = [this](const std::string& name, const Bytes& f, std::size_t packets,
                                     const std::string& text) {
        SCOPED_TRACE(name);
        const auto r = read_all(write(name, f.data()));
        EXPECT_EQ(r.records.size(), packets);
        EXPECT_EQ(r.final_status, Status::Error);
        EXPECT_NE(r.error.find(text), std::string::npos) << r.error;
    };
    Bytes good;
    shb(good);
    idb(good, 1);
    epb(good, 0, 1, payload(10));  // ends at offset 28 + 20 + 44 = 92

    Bytes no_idb = good;
    epb(no_idb, 3, 1, payload(10));
    expect_error("no-idb.pcapng", no_idb, 1, "refers to interface 3, which has no interface description block");

    Bytes odd = good;
    block(odd, 6, Bytes().zeros(22), 34);
    expect_error("odd.pcapng", odd, 1, "at offset 92 has bad length 34 (packet #2)");

    Bytes small = good;
    block(small, 6, Bytes().zeros(8), 20);
    expect_error("small.pcapng", small, 1, "has bad length 20");

    Bytes huge = good;
    huge.u32(6).u32(0x20000000);
    expect_error("huge.pcapng", huge, 1, "has bad length 536870912");

    Bytes cut = good;
    epb(cut, 0, 1, payload(10));
    auto bytes = cut.data();
    bytes.resize(bytes.size() - 6);
    expect_error("cut.pcapng", Bytes().raw(bytes), 1, "truncated block at offset 92 (packet #2)");

    Bytes cut_header = good;
    cut_header.u32(6);
    expect_error("cut-header.pcapng", cut_header, 1, "truncated block header at offset 92 (packet #2)");

    Bytes mismatch = good;
    mismatch.u32(6).u32(44).zeros(32).u32(48);
    expect_error("mismatch.pcapng", mismatch, 1, "trailing length 48 does not match 44");

    Bytes beyond = good;
    Bytes body;
    body.u32(0).u32(0).u32(0).u32(100).u32(100).zeros(8);
    block(beyond, 6, body);
    expect_error("beyond.pcapng", beyond, 1, "captured length 100 beyond the block");

    // Interface ids restart in a new section.
    Bytes second = good;
    shb(second);
    epb(second, 0, 1, payload(10));
    expect_error("second.pcapng", second, 1, "refers to interface 0");
}

// Bytes the process has allocated now (glibc; 0 under sanitizers, whose
// allocators do not report, so the check below is then vacuous).
std::size_t allocated_bytes() {
    const struct mallinfo2 m = ::mallinfo2();
    return m.uordblks + m.hblkhd;
}

// A length field is checked and the buffer grows only with bytes that are
// really in the file: a 12 KB file claiming a huge block costs no more
// memory than the read chunk. (Before, a claimed 256 MiB block made the
// reader allocate 256 MiB up front.)
TEST_F(CaptureFile, LengthFieldsDoNotSizeAllocations) {
    struct Case {
        const char* name;
        std::uint32_t type;
        std::uint32_t length;
        const char* error;
    };
    const Case cases[] = {
        {"epb-15m.pcapng", 6, 15u << 20, "truncated block at offset 48 (packet #1)"},
        {"epb-256m.pcapng", 6, (256u << 20) - 4, "more than the 16 MiB an interface or packet block may have"},
        {"idb-16m.pcapng", 1, (16u << 20) + 4, "more than the 16 MiB"},
        {"custom-256m.pcapng", 0xbad, (256u << 20) - 4, "truncated block at offset 48 (packet #1)"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        Bytes f;
        shb(f);
        idb(f, 1);
        f.u32(c.type).u32(c.length).zeros(12 * 1024);  // 12 KB of the claimed block
        const auto path = write(c.name, f.data());
        const std::size_t before = allocated_bytes();
        PcapFileSource source(path.string());
        Packet p;
        EXPECT_EQ(source.next(p), Status::Error);
        EXPECT_NE(source.error().find(c.error), std::string::npos) << source.error();
        const std::size_t grown = allocated_bytes() - std::min(before, allocated_bytes());
        EXPECT_LE(grown, PcapFileSource::kReadChunk + (256u << 10)) << "bytes held after reading a 12 KB file";
    }
    {
        // A section header claiming 200 MiB.
        Bytes f;
        f.u32(0x0a0d0d0a).u32(200u << 20).u32(0x1a2b3c4d).u16(1).u16(0).u64(~std::uint64_t{0}).zeros(8192);
        try {
            PcapFileSource source(write("shb-200m.pcapng", f.data()).string());
            ADD_FAILURE() << "accepted";
        } catch (const util::FatalError& e) {
            EXPECT_NE(std::string(e.what()).find("has bad length 209715200"), std::string::npos) << e.what();
        }
    }
    {
        // pcap: a record claiming the largest captured length in a short file.
        Bytes f;
        pcap_header(f, 0xa1b2c3d4, 1);
        f.u32(0).u32(0).u32(PcapFileSource::kMaxCaptureLength).u32(PcapFileSource::kMaxCaptureLength).zeros(100);
        const auto path = write("caplen.pcap", f.data());
        const std::size_t before = allocated_bytes();
        PcapFileSource source(path.string());
        Packet p;
        EXPECT_EQ(source.next(p), Status::Error);
        EXPECT_NE(source.error().find("truncated record at offset 24"), std::string::npos) << source.error();
        EXPECT_LE(allocated_bytes() - std::min(before, allocated_bytes()), PcapFileSource::kReadChunk + (256u << 10));
    }
}

// A block really larger than the read chunk is still read (the buffer
// grows as its bytes arrive).
TEST_F(CaptureFile, LargeBlockGrowsTheBufferOnlyAsItsBytesArrive) {
    Bytes f;
    shb(f);
    idb(f, 1);
    epb(f, 0, 1, payload(64, 1), 0, 5 * 1024 * 1024);  // 5 MiB of options
    epb(f, 0, 2, payload(64, 2));
    const auto path = write("five-mib.pcapng", f.data());
    const std::size_t before = allocated_bytes();
    PcapFileSource source(path.string());
    Packet p;
    ASSERT_EQ(source.next(p), Status::Packet) << source.error();
    EXPECT_EQ(std::vector<std::uint8_t>(p.data.begin(), p.data.end()), payload(64, 1));
    ASSERT_EQ(source.next(p), Status::Packet);
    EXPECT_EQ(source.next(p), Status::End);
    EXPECT_LE(allocated_bytes() - std::min(before, allocated_bytes()), std::size_t{12} << 20)
        << "at most twice the block";
}

// Every public capture (tests/data) and pcaps/ against tshark's view
// (time, lengths, interface). Slow (one tshark run per file): ~50 s.
TEST(CaptureCrossCheck, AllCapturesMatchTshark) {
    std::vector<fs::path> files = test_data::public_captures();
    for (const auto& entry : fs::directory_iterator(kOwnPcaps)) {
        const auto ext = entry.path().extension();
        if ((ext == ".pcap" || ext == ".pcapng") && entry.path().filename() != "not-a-capture.pcap")
            files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    ASSERT_FALSE(files.empty());
    for (const auto& file : files) {
        SCOPED_TRACE(file.string());
        const std::string command = "tshark -r '" + file.string() +
                                    "' -T fields -e frame.time_epoch -e frame.cap_len -e frame.len "
                                    "-e frame.interface_id 2>/dev/null";
        FILE* pipe = ::popen(command.c_str(), "r");
        ASSERT_NE(pipe, nullptr);
        std::string expected;
        char line[512];
        while (std::fgets(line, sizeof line, pipe) != nullptr) expected += line;
        ::pclose(pipe);

        const auto r = read_all(file);
        std::ostringstream ours;
        std::uint64_t previous_ts = ~std::uint64_t{0};
        for (const auto& rec : r.records) {
            char ts[40];
            std::snprintf(ts, sizeof ts, "%llu.%09llu", static_cast<unsigned long long>(rec.ts / 1000000000),
                          static_cast<unsigned long long>(rec.ts % 1000000000));
            const bool pcapng = file.extension() == ".pcapng";
            // tshark prints no time for Simple Packet Blocks (our time repeats the previous one).
            const bool spb_time = pcapng && rec.ts == previous_ts && file.filename() == "multi-interface.pcapng";
            ours << (spb_time ? "" : ts) << '\t' << rec.caplen << '\t' << rec.len << '\t'
                 << (pcapng ? std::to_string(rec.interface_id) : "") << '\n';
            previous_ts = rec.ts;
        }
        EXPECT_EQ(ours.str(), expected);
    }
}

}  // namespace
}  // namespace sidetap::capture
