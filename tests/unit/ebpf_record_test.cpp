// Tests for the user side of the eBPF ABI that needs no kernel: record
// parsing, the ring-buffer consumer (over a ring laid out in memory as the
// kernel lays it out) and the monotonic -> wall clock conversion.
#include "capture/ebpf_record.h"

#include <gtest/gtest.h>

#include <time.h>

#include <cstring>
#include <vector>

namespace sidetap::capture::ebpf {
namespace {

std::vector<std::uint8_t> make_record(std::uint64_t ktime, std::uint32_t ifindex, std::uint32_t orig_len,
                                      std::uint8_t direction, const std::vector<std::uint8_t>& data,
                                      std::size_t slack = 0) {
    sidetap_record header{};
    header.ktime_ns = ktime;
    header.ifindex = ifindex;
    header.orig_len = orig_len;
    header.caplen = static_cast<std::uint32_t>(data.size());
    header.direction = direction;
    std::vector<std::uint8_t> bytes(sizeof header + data.size() + slack, 0xee);
    std::memcpy(bytes.data(), &header, sizeof header);
    std::memcpy(bytes.data() + sizeof header, data.data(), data.size());
    return bytes;
}

TEST(EbpfRecord, ParsesHeaderAndExactlyCaplenBytesEvenWhenTheEntryIsLarger) {
    const std::vector<std::uint8_t> ip{0x45, 0, 0, 28, 1, 2, 3, 4};
    const auto bytes = make_record(123456789, 7, 1500, SIDETAP_DIR_EGRESS, ip, 100);  // size class slack
    Record r;
    ASSERT_TRUE(parse_record(bytes, r));
    EXPECT_EQ(r.ktime_ns, 123456789u);
    EXPECT_EQ(r.ifindex, 7u);
    EXPECT_EQ(r.orig_len, 1500u);
    EXPECT_EQ(r.direction, SIDETAP_DIR_EGRESS);
    ASSERT_EQ(r.data.size(), ip.size());
    EXPECT_TRUE(std::equal(ip.begin(), ip.end(), r.data.begin()));
}

TEST(EbpfRecord, RejectsRecordsShorterThanTheirHeaderOrCaplen) {
    const std::vector<std::uint8_t> ip(64, 0x45);
    auto bytes = make_record(1, 1, 64, 0, ip);
    Record r;
    EXPECT_FALSE(parse_record(std::span(bytes).first(sizeof(sidetap_record) - 1), r));
    EXPECT_FALSE(parse_record(std::span(bytes).first(bytes.size() - 1), r));
    EXPECT_TRUE(parse_record(bytes, r));
}

TEST(EbpfRecord, RejectsCaplenAboveTheMaximumAndRaisesOrigLenToCaplen) {
    std::vector<std::uint8_t> big(sizeof(sidetap_record) + SIDETAP_MAX_CAPTURE + 8, 0);
    sidetap_record header{};
    header.caplen = SIDETAP_MAX_CAPTURE + 1;
    std::memcpy(big.data(), &header, sizeof header);
    Record r;
    EXPECT_FALSE(parse_record(big, r));
    const auto small = make_record(1, 1, 3, 0, {1, 2, 3, 4, 5});  // orig_len < caplen: never shorter than the data
    ASSERT_TRUE(parse_record(small, r));
    EXPECT_EQ(r.orig_len, 5u);
}

// A ring laid out like the kernel's: positions, and the data area twice in
// a row (records that wrap are contiguous).
class FakeRing {
public:
    explicit FakeRing(std::uint64_t size) : size_(size), data_(2 * size) {}

    // Writes one record at the producer position (8-byte header: length and
    // flags), as bpf_ringbuf_reserve + submit/discard would.
    std::uint64_t produce(const std::vector<std::uint8_t>& record, bool busy = false, bool discard = false) {
        const std::uint64_t pos = producer_.load();
        std::uint32_t word = static_cast<std::uint32_t>(record.size());
        if (busy) word |= 1u << 31;
        if (discard) word |= 1u << 30;
        write(pos, &word, 4);
        const std::uint32_t page_offset = 0;
        write(pos + 4, &page_offset, 4);
        write(pos + 8, record.data(), record.size());
        producer_.store(pos + ((record.size() + 8 + 7) & ~std::uint64_t{7}));
        return pos;
    }
    // bpf_ringbuf_submit of a record produced busy.
    void commit(std::uint64_t pos) {
        std::uint32_t word;
        read(pos, &word, 4);
        word &= ~(1u << 31);
        write(pos, &word, 4);
    }
    RingReader reader(std::uint64_t batch = 0) { return RingReader(&consumer_, &producer_, data_.data(), size_, batch); }
    [[nodiscard]] std::uint64_t consumer() const { return consumer_.load(); }
    [[nodiscard]] std::uint64_t producer() const { return producer_.load(); }

private:
    void write(std::uint64_t pos, const void* src, std::size_t n) {
        // Mirror into both copies, as the double mapping does.
        for (std::size_t i = 0; i < n; ++i) {
            const auto b = static_cast<const std::uint8_t*>(src)[i];
            const std::uint64_t at = (pos + i) & (size_ - 1);
            data_[at] = b;
            data_[at + size_] = b;
        }
    }
    void read(std::uint64_t pos, void* dst, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) static_cast<std::uint8_t*>(dst)[i] = data_[(pos + i) & (size_ - 1)];
    }

    std::uint64_t size_;
    std::vector<std::uint8_t> data_;
    std::atomic<std::uint64_t> consumer_{0};
    std::atomic<std::uint64_t> producer_{0};
};

TEST(EbpfRing, ReturnsRecordsInOrderAndHandsSpaceBackOnlyAtTheNextCall) {
    FakeRing ring(4096);
    auto reader = ring.reader();
    ring.produce({1, 2, 3});
    ring.produce({4, 5, 6, 7, 8, 9, 10, 11, 12});
    std::span<const std::uint8_t> out;
    ASSERT_TRUE(reader.next(out));
    EXPECT_EQ(std::vector<std::uint8_t>(out.begin(), out.end()), (std::vector<std::uint8_t>{1, 2, 3}));
    EXPECT_EQ(ring.consumer(), 0u) << "the record is still in use: not handed back yet";
    ASSERT_TRUE(reader.next(out));
    EXPECT_EQ(out.size(), 9u);
    EXPECT_EQ(ring.consumer(), 16u);
    EXPECT_FALSE(reader.next(out));
    EXPECT_EQ(ring.consumer(), ring.producer()) << "all handed back once the ring is empty";
}

TEST(EbpfRing, HandsSpaceBackInBatchesAndWhenTheRingIsEmpty) {
    FakeRing ring(4096);
    auto reader = ring.reader(64);
    for (int i = 0; i < 6; ++i) ring.produce(std::vector<std::uint8_t>(8, static_cast<std::uint8_t>(i)));  // 16 bytes each
    std::span<const std::uint8_t> out;
    for (int i = 0; i < 5; ++i) {
        ASSERT_TRUE(reader.next(out));
        EXPECT_EQ(out[0], i);
    }
    EXPECT_EQ(ring.consumer(), 64u) << "published once 64 bytes were done with, not before or per record";
    ASSERT_TRUE(reader.next(out));
    EXPECT_EQ(out[0], 5);
    EXPECT_EQ(ring.consumer(), 64u) << "records 4 and 5 (5 still in use) are not handed back yet";
    EXPECT_FALSE(reader.next(out));
    EXPECT_EQ(ring.consumer(), ring.producer()) << "an empty ring: everything handed back";
}

TEST(EbpfRing, StopsAtABusyRecordAndSkipsDiscardedOnes) {
    FakeRing ring(4096);
    auto reader = ring.reader();
    ring.produce({1});
    ring.produce({2}, false, true);  // discarded
    ring.produce({3});
    const auto busy = ring.produce({4}, true);  // reserved, not yet submitted
    ring.produce({5});
    std::span<const std::uint8_t> out;
    ASSERT_TRUE(reader.next(out));
    EXPECT_EQ(out[0], 1);
    ASSERT_TRUE(reader.next(out));
    EXPECT_EQ(out[0], 3);
    EXPECT_FALSE(reader.next(out)) << "a busy record keeps its place: nothing after it is read";
    ring.commit(busy);
    ASSERT_TRUE(reader.next(out));
    EXPECT_EQ(out[0], 4);
    ASSERT_TRUE(reader.next(out));
    EXPECT_EQ(out[0], 5);
    EXPECT_FALSE(reader.next(out));
}

TEST(EbpfRing, ARecordThatWrapsAroundTheEndIsContiguous) {
    FakeRing ring(256);
    auto reader = ring.reader();
    std::span<const std::uint8_t> out;
    std::vector<std::uint8_t> filler(200, 9);
    ring.produce(filler);  // 208 bytes used
    ASSERT_TRUE(reader.next(out));
    std::vector<std::uint8_t> wrapping(100);
    for (std::size_t i = 0; i < wrapping.size(); ++i) wrapping[i] = static_cast<std::uint8_t>(i);
    ring.produce(wrapping);  // starts at 208, ends past 256
    ASSERT_TRUE(reader.next(out));
    EXPECT_EQ(std::vector<std::uint8_t>(out.begin(), out.end()), wrapping);
}

TEST(EbpfClock, ConvertsWithTheTightestSampleOffset) {
    WallClock clock;
    // Real time 1,700,000,000 s; monotonic around 5,000 s. The second sample
    // is the tightest bracket (10 ns), its middle is 5000 s + 105 ns.
    const std::int64_t real = 1'700'000'000'000'000'000;
    const std::int64_t mono = 5'000'000'000'000;
    const ClockSample samples[] = {{mono, real + 500, mono + 1000}, {mono + 100, real + 200, mono + 110},
                                   {mono + 2000, real + 2100, mono + 2300}};
    clock.update(samples);
    EXPECT_EQ(clock.offset_ns(), real + 200 - (mono + 105));
    EXPECT_EQ(clock.to_wall(static_cast<std::uint64_t>(mono + 105)), static_cast<std::uint64_t>(real + 200));
}

TEST(EbpfClock, FollowsAStepOfTheWallClockAtTheNextUpdate) {
    WallClock clock;
    const std::int64_t real = 1'700'000'000'000'000'000;
    const std::int64_t mono = 5'000'000'000'000;
    const ClockSample before[] = {{mono, real, mono}};
    clock.update(before);
    const std::uint64_t record = static_cast<std::uint64_t>(mono + 1'000'000'000);  // one second later
    EXPECT_EQ(clock.to_wall(record), static_cast<std::uint64_t>(real + 1'000'000'000));
    // The wall clock is stepped back one hour; monotonic time goes on.
    const std::int64_t hour = 3600ll * 1'000'000'000;
    const ClockSample after[] = {{mono + 2'000'000'000, real + 2'000'000'000 - hour, mono + 2'000'000'000}};
    clock.update(after);
    EXPECT_EQ(clock.to_wall(record), static_cast<std::uint64_t>(real + 1'000'000'000 - hour));
}

TEST(EbpfClock, RefreshAgreesWithTheSystemClocks) {
    WallClock clock;
    clock.refresh();
    timespec mono{}, real{};
    ::clock_gettime(CLOCK_MONOTONIC, &mono);
    ::clock_gettime(CLOCK_REALTIME, &real);
    const auto m = static_cast<std::uint64_t>(mono.tv_sec) * 1'000'000'000 + static_cast<std::uint64_t>(mono.tv_nsec);
    const auto r = static_cast<std::int64_t>(real.tv_sec) * 1'000'000'000 + real.tv_nsec;
    const auto converted = static_cast<std::int64_t>(clock.to_wall(m));
    EXPECT_LT(std::abs(converted - r), 5'000'000) << "within 5 ms of CLOCK_REALTIME";
}

}  // namespace
}  // namespace sidetap::capture::ebpf
