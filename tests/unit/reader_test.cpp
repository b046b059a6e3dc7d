// framestream::Reader: files with and without STOP, truncation, content
// types, frame-size limit, malformed protobuf frames (decode + skip).
#include "framestream/reader.h"
#include "present/formatter.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "dnstap.pb.h"

using namespace sidetap;
using framestream::ReadStatus;
using framestream::Reader;

namespace {

using Bytes = std::vector<std::uint8_t>;

void add_start(Bytes& out, std::string_view content_type = framestream::kDnstapContentType) {
    if (content_type.empty()) {
        framestream::append_control(out, framestream::ControlType::Start);
    } else {
        const std::string_view ct[] = {content_type};
        framestream::append_control(out, framestream::ControlType::Start, ct);
    }
}
void add_stop(Bytes& out) { framestream::append_control(out, framestream::ControlType::Stop); }
void add_frame(Bytes& out, std::string_view payload) {
    std::uint8_t len[4];
    framestream::put_be32(len, static_cast<std::uint32_t>(payload.size()));
    out.insert(out.end(), len, len + 4);
    out.insert(out.end(), payload.begin(), payload.end());
}

std::string dnstap_payload(int i) {
    ::dnstap::Dnstap dt;
    dt.set_type(::dnstap::Dnstap::MESSAGE);
    dt.set_identity("id-" + std::to_string(i));
    auto* m = dt.mutable_message();
    m->set_type(::dnstap::Message::CLIENT_QUERY);
    m->set_query_port(static_cast<std::uint32_t>(1000 + i));
    return dt.SerializeAsString();
}

// A source over memory that hands out at most `chunk` bytes per call.
Reader::Source memory_source(const Bytes& data, std::size_t chunk = SIZE_MAX) {
    auto pos = std::make_shared<std::size_t>(0);
    return [&data, pos, chunk](void* buf, std::size_t size) -> std::ptrdiff_t {
        const std::size_t n = std::min({size, chunk, data.size() - *pos});
        if (n != 0) std::memcpy(buf, data.data() + *pos, n);
        *pos += n;
        return static_cast<std::ptrdiff_t>(n);
    };
}

struct Result {
    std::vector<std::string> frames;
    ReadStatus last = ReadStatus::Frame;
    std::string error;
    bool saw_stop = false;
};

Result read_all(Reader& reader) {
    Result r;
    std::span<const std::uint8_t> frame;
    while ((r.last = reader.next(frame)) == ReadStatus::Frame)
        r.frames.emplace_back(reinterpret_cast<const char*>(frame.data()), frame.size());
    r.error = reader.error();
    r.saw_stop = reader.saw_stop();
    return r;
}

Result read_bytes(const Bytes& data, framestream::ReaderOptions options = {}, std::size_t chunk = SIZE_MAX) {
    Reader reader(memory_source(data, chunk), options);
    return read_all(reader);
}

}  // namespace

TEST(FramestreamReader, ReadsAllFramesUpToStop) {
    Bytes data;
    add_start(data);
    for (int i = 0; i < 3; ++i) add_frame(data, dnstap_payload(i));
    add_stop(data);
    data.push_back(0xAB);  // bytes after STOP are not read
    for (std::size_t chunk : {SIZE_MAX, std::size_t{1}, std::size_t{7}}) {
        auto r = read_bytes(data, {}, chunk);
        ASSERT_EQ(r.last, ReadStatus::End) << r.error;
        EXPECT_TRUE(r.saw_stop);
        ASSERT_EQ(r.frames.size(), 3u);
        for (int i = 0; i < 3; ++i) EXPECT_EQ(r.frames[static_cast<std::size_t>(i)], dnstap_payload(i));
    }
}

TEST(FramestreamReader, EofWithoutStopIsANormalEnd) {
    Bytes data;
    add_start(data);
    add_frame(data, dnstap_payload(0));
    add_frame(data, dnstap_payload(1));
    auto r = read_bytes(data);
    EXPECT_EQ(r.last, ReadStatus::End);
    EXPECT_FALSE(r.saw_stop);
    EXPECT_EQ(r.frames.size(), 2u);
    EXPECT_TRUE(r.error.empty());
}

TEST(FramestreamReader, TruncatedLastFrameIsReportedAfterTheCompleteOnes) {
    Bytes data;
    add_start(data);
    add_frame(data, dnstap_payload(0));
    add_frame(data, dnstap_payload(1));
    const std::size_t third = data.size();
    add_frame(data, dnstap_payload(2));
    data.resize(data.size() - 5);
    for (std::size_t chunk : {SIZE_MAX, std::size_t{3}}) {
        auto r = read_bytes(data, {}, chunk);
        EXPECT_EQ(r.last, ReadStatus::Error);
        EXPECT_EQ(r.frames.size(), 2u);
        EXPECT_EQ(r.error.rfind("truncated frame at offset " + std::to_string(third) + " ", 0), 0u) << r.error;
    }
    // Cut inside the 4-byte length.
    data.resize(third + 2);
    auto r = read_bytes(data);
    EXPECT_EQ(r.last, ReadStatus::Error);
    EXPECT_EQ(r.frames.size(), 2u);
    EXPECT_EQ(r.error.rfind("truncated frame at offset " + std::to_string(third), 0), 0u) << r.error;
}

TEST(FramestreamReader, ErrorIsSticky) {
    Bytes data;
    add_start(data);
    data.push_back(0);
    Reader reader(memory_source(data));
    std::span<const std::uint8_t> frame;
    EXPECT_EQ(reader.next(frame), ReadStatus::Error);
    EXPECT_EQ(reader.next(frame), ReadStatus::Error);
}

TEST(FramestreamReader, WrongContentTypeIsRefusedByName) {
    Bytes data;
    add_start(data, "protobuf:other.Thing");
    add_frame(data, dnstap_payload(0));
    auto r = read_bytes(data);
    EXPECT_EQ(r.last, ReadStatus::Error);
    EXPECT_TRUE(r.frames.empty());
    EXPECT_EQ(r.error, "content type \"protobuf:other.Thing\" is not \"protobuf:dnstap.Dnstap\"");

    // An empty expected content type accepts any.
    auto any = read_bytes(data, {.content_type = {}});
    EXPECT_EQ(any.last, ReadStatus::End);
    EXPECT_EQ(any.frames.size(), 1u);
}

TEST(FramestreamReader, StartWithoutContentTypeIsAccepted) {
    Bytes data;
    add_start(data, "");
    add_frame(data, dnstap_payload(0));
    Reader reader(memory_source(data));
    auto r = read_all(reader);
    EXPECT_EQ(r.last, ReadStatus::End);
    EXPECT_EQ(r.frames.size(), 1u);
    EXPECT_TRUE(reader.content_type().empty());
}

TEST(FramestreamReader, NotAFrameStreamsFile) {
    EXPECT_EQ(read_bytes({}).error, "not a Frame Streams stream: empty input");
    Bytes data;
    add_frame(data, dnstap_payload(0));
    auto r = read_bytes(data);
    EXPECT_EQ(r.last, ReadStatus::Error);
    EXPECT_NE(r.error.find("does not begin with a START"), std::string::npos) << r.error;

    Bytes ready;
    const std::string_view ct[] = {framestream::kDnstapContentType};
    framestream::append_control(ready, framestream::ControlType::Ready, ct);
    r = read_bytes(ready);
    EXPECT_NE(r.error.find("READY"), std::string::npos) << r.error;

    Bytes second_start;
    add_start(second_start);
    add_frame(second_start, dnstap_payload(0));
    add_start(second_start);
    r = read_bytes(second_start);
    EXPECT_EQ(r.frames.size(), 1u);
    EXPECT_NE(r.error.find("unexpected START control frame at offset"), std::string::npos) << r.error;
}

TEST(FramestreamReader, FrameLargerThanTheLimitIsAClearError) {
    Bytes data;
    add_start(data);
    add_frame(data, dnstap_payload(0));
    const std::uint8_t huge[4] = {0x7F, 0xFF, 0xFF, 0xFF};
    data.insert(data.end(), huge, huge + 4);
    auto r = read_bytes(data);
    EXPECT_EQ(r.frames.size(), 1u);
    EXPECT_EQ(r.last, ReadStatus::Error);
    EXPECT_EQ(r.error.rfind("frame of 2147483647 bytes exceeds the 1 MiB limit (--max-frame-size)", 0), 0u)
        << r.error;

    Bytes limited;
    add_start(limited);
    add_frame(limited, std::string(98305, 'x'));
    r = read_bytes(limited, {.max_frame_size = 96 * 1024});
    EXPECT_EQ(r.error.rfind("frame of 98305 bytes exceeds the 96 KiB limit (--max-frame-size)", 0), 0u) << r.error;
    // A frame of exactly the limit is fine, and bigger than the read-ahead chunk.
    Bytes exact;
    add_start(exact);
    add_frame(exact, std::string(96 * 1024, 'y'));
    add_frame(exact, "z");
    r = read_bytes(exact, {.max_frame_size = 96 * 1024}, 1000);
    ASSERT_EQ(r.last, ReadStatus::End) << r.error;
    ASSERT_EQ(r.frames.size(), 2u);
    EXPECT_EQ(r.frames[0], std::string(96 * 1024, 'y'));
    EXPECT_EQ(r.frames[1], "z");
}

TEST(FramestreamReader, MalformedProtobufFrameIsCountedAndSkippedByTheCaller) {
    Bytes data;
    add_start(data);
    add_frame(data, dnstap_payload(0));
    add_frame(data, "\xff\xff\xff");  // not a protobuf
    ::dnstap::Dnstap missing_required;
    missing_required.set_identity("no type");
    add_frame(data, missing_required.SerializePartialAsString());
    add_frame(data, dnstap_payload(1));
    add_stop(data);
    Reader reader(memory_source(data));
    std::span<const std::uint8_t> frame;
    ::dnstap::Dnstap dt;
    std::vector<std::string> identities;
    int malformed = 0;
    while (reader.next(frame) == ReadStatus::Frame) {
        if (!present::decode(frame, dt)) {
            ++malformed;
            continue;
        }
        identities.push_back(dt.identity());
    }
    EXPECT_TRUE(reader.error().empty());
    EXPECT_EQ(malformed, 2);
    EXPECT_EQ(identities, (std::vector<std::string>{"id-0", "id-1"}));
}

TEST(FramestreamReader, NoAllocationPerFrameAfterWarmUp) {
    Bytes data;
    add_start(data);
    for (int i = 0; i < 5000; ++i) add_frame(data, dnstap_payload(i));
    add_stop(data);
    Reader reader(memory_source(data, 4096));
    std::span<const std::uint8_t> frame;
    const std::uint8_t* low = nullptr;
    const std::uint8_t* high = nullptr;
    int n = 0;
    while (reader.next(frame) == ReadStatus::Frame) {
        ++n;
        if (low == nullptr) low = high = frame.data();
        low = std::min(low, frame.data());
        high = std::max(high, frame.data() + frame.size());
    }
    EXPECT_EQ(n, 5000);
    EXPECT_EQ(reader.frames(), 5000u);
    EXPECT_LE(high - low, 64 * 1024);  // always the same buffer
    EXPECT_EQ(reader.offset(), data.size());
}

TEST(FramestreamReader, ReadsFromAFileDescriptor) {
    const std::string path = std::string(::testing::TempDir()) + "/reader-fd-" + std::to_string(::getpid());
    Bytes data;
    add_start(data);
    for (int i = 0; i < 100; ++i) add_frame(data, dnstap_payload(i));
    add_stop(data);
    {
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    Reader reader(fd);
    auto r = read_all(reader);
    ::close(fd);
    std::remove(path.c_str());
    EXPECT_EQ(r.last, ReadStatus::End);
    EXPECT_TRUE(r.saw_stop);
    EXPECT_EQ(r.frames.size(), 100u);
    EXPECT_EQ(reader.content_type(), framestream::kDnstapContentType);
}

TEST(FramestreamReader, ReadErrorsAreReported) {
    Reader reader([](void*, std::size_t) -> std::ptrdiff_t {
        errno = EIO;
        return -1;
    });
    std::span<const std::uint8_t> frame;
    EXPECT_EQ(reader.next(frame), ReadStatus::Error);
    EXPECT_EQ(reader.error().rfind("read error: ", 0), 0u) << reader.error();
}

TEST(FramestreamReader, DescribeSize) {
    EXPECT_EQ(framestream::describe_size(1 << 20), "1 MiB");
    EXPECT_EQ(framestream::describe_size(98304), "96 KiB");
    EXPECT_EQ(framestream::describe_size(1000), "1000 bytes");
}

// --- memory follows the bytes that arrived -----------------------------

namespace {

// Grants up to `limit` bytes; records what is held and the most ever held.
class CountingBudget final : public framestream::BufferBudget {
public:
    explicit CountingBudget(std::size_t limit) : limit_(limit) {}
    bool acquire(std::size_t bytes) override {
        if (held_ + bytes > limit_) return false;
        held_ += bytes;
        peak_ = std::max(peak_, held_);
        return true;
    }
    void release(std::size_t bytes) noexcept override { held_ -= bytes; }
    std::size_t held_ = 0;
    std::size_t peak_ = 0;

private:
    std::size_t limit_;
};

}  // namespace

TEST(FramestreamReader, ClaimedFrameLengthAllocatesNothingUntilTheBytesArrive) {
    // START, then a length prefix claiming 1 MiB and ten bytes of it.
    Bytes data;
    add_start(data);
    std::uint8_t len[4];
    framestream::put_be32(len, 1u << 20);
    data.insert(data.end(), len, len + 4);
    data.insert(data.end(), 10, 0x0a);
    CountingBudget budget(SIZE_MAX);
    {
        Reader reader(memory_source(data), {.max_frame_size = 1u << 20, .read_chunk = 4096, .budget = &budget});
        std::span<const std::uint8_t> frame;
        EXPECT_EQ(reader.next(frame), ReadStatus::Error);
        EXPECT_EQ(reader.failure(), framestream::ReadFailure::Truncated);
        EXPECT_EQ(budget.peak_, 4096u) << "one chunk, not the claimed megabyte";
        EXPECT_EQ(reader.buffer_size(), 4096u);
    }
    EXPECT_EQ(budget.held_, 0u) << "released on destruction";
}

TEST(FramestreamReader, BufferGrowsWithTheFrameAndShrinksBackWithABudget) {
    Bytes data;
    add_start(data);
    add_frame(data, std::string(300'000, 'x'));
    add_frame(data, "small");
    add_stop(data);
    CountingBudget budget(SIZE_MAX);
    Reader reader(memory_source(data, 1000), {.read_chunk = 4096, .budget = &budget});
    std::span<const std::uint8_t> frame;
    ASSERT_EQ(reader.next(frame), ReadStatus::Frame);
    EXPECT_EQ(frame.size(), 300'000u);
    EXPECT_LE(budget.peak_, 300'004u) << "never more than the frame being read";
    ASSERT_EQ(reader.next(frame), ReadStatus::Frame);
    EXPECT_EQ(std::string(frame.begin(), frame.end()), "small");
    EXPECT_EQ(reader.buffer_size(), 4096u) << "back to one chunk once the large frame was consumed";
    EXPECT_EQ(budget.held_, 4096u);
    EXPECT_EQ(reader.next(frame), ReadStatus::End);
}

TEST(FramestreamReader, RefusedBudgetIsOutOfMemoryAfterEveryEarlierFrame) {
    Bytes data;
    add_start(data);
    add_frame(data, "first");
    add_frame(data, std::string(20'000, 'y'));
    add_stop(data);
    CountingBudget budget(8192);
    Reader reader(memory_source(data, 512), {.read_chunk = 4096, .budget = &budget});
    const Result r = read_all(reader);
    ASSERT_EQ(r.frames.size(), 1u);
    EXPECT_EQ(r.frames[0], "first");
    EXPECT_EQ(r.last, ReadStatus::Error);
    EXPECT_EQ(reader.failure(), framestream::ReadFailure::OutOfMemory);
    EXPECT_NE(r.error.find("out of receive memory"), std::string::npos) << r.error;
    EXPECT_LE(budget.peak_, 8192u);
}
