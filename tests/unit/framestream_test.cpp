#include "framestream/codec.h"
#include "output/file_output.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <unistd.h>

using namespace sidetap;

namespace {
std::vector<std::uint8_t> hex(const std::string& text) {
    std::vector<std::uint8_t> out;
    for (std::size_t i = 0; i + 1 < text.size();) {
        if (text[i] == ' ') { ++i; continue; }
        out.push_back(static_cast<std::uint8_t>(std::stoi(text.substr(i, 2), nullptr, 16)));
        i += 2;
    }
    return out;
}

std::vector<std::uint8_t> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

std::string temp_path(const char* name) {
    return std::string(::testing::TempDir()) + "/" + name + "-" + std::to_string(::getpid());
}
}  // namespace

TEST(FramestreamCodec, StartFrameMatchesTheBytesBindWrites) {
    std::vector<std::uint8_t> out;
    const std::string_view ct[] = {framestream::kDnstapContentType};
    framestream::append_control(out, framestream::ControlType::Start, ct);
    auto expected = hex("00000000 00000022 00000002 00000001 00000016");
    expected.insert(expected.end(), ct[0].begin(), ct[0].end());
    EXPECT_EQ(out, expected);
}

TEST(FramestreamCodec, StopFrameIsTwelveBytes) {
    std::vector<std::uint8_t> out;
    framestream::append_control(out, framestream::ControlType::Stop);
    EXPECT_EQ(out, hex("00000000 00000004 00000003"));
}

TEST(FramestreamCodec, DecodesReadyWithTwoContentTypes) {
    std::vector<std::uint8_t> out;
    const std::string_view ct[] = {"a/b", framestream::kDnstapContentType};
    framestream::append_control(out, framestream::ControlType::Ready, ct);
    std::string error;
    auto frame = framestream::decode_control(std::span(out).subspan(8), error);
    ASSERT_TRUE(frame) << error;
    EXPECT_EQ(frame->type, framestream::ControlType::Ready);
    ASSERT_EQ(frame->content_types.size(), 2u);
    EXPECT_EQ(frame->content_types[1], framestream::kDnstapContentType);
}

TEST(FramestreamCodec, RejectsUnknownControlType) {
    std::string error;
    const auto payload = hex("00000009");
    EXPECT_FALSE(framestream::decode_control(payload, error));
    EXPECT_NE(error.find("unknown control frame type"), std::string::npos);
}

TEST(FramestreamCodec, RejectsFieldLengthPastTheEnd) {
    std::string error;
    const auto payload = hex("00000002 00000001 000000ff 6162");
    EXPECT_FALSE(framestream::decode_control(payload, error));
}

TEST(FramestreamCodec, RejectsContentTypeOnStop) {
    std::string error;
    const auto payload = hex("00000003 00000001 00000001 61");
    EXPECT_FALSE(framestream::decode_control(payload, error));
}

TEST(FramestreamCodec, RejectsStartWithTwoContentTypes) {
    std::vector<std::uint8_t> out;
    const std::string_view ct[] = {"a", "b"};
    framestream::append_control(out, framestream::ControlType::Start, ct);
    std::string error;
    EXPECT_FALSE(framestream::decode_control(std::span(out).subspan(8), error));
}

TEST(FramestreamCodec, RejectsOversizedControlFrame) {
    std::vector<std::uint8_t> payload(600, 0);
    payload[3] = 4;
    std::string error;
    EXPECT_FALSE(framestream::decode_control(payload, error));
}

TEST(FileOutput, WritesStartFramesAndStop) {
    const auto path = temp_path("fileout");
    {
        output::FileOutput out(path, 1024);
        const std::uint8_t a[] = {1, 2, 3};
        std::vector<std::uint8_t> big(5000, 7);  // larger than the buffer hint
        EXPECT_EQ(out.write(a), output::WriteResult::Written);
        EXPECT_EQ(out.write(big), output::WriteResult::Written);
        out.close();
        EXPECT_EQ(out.stats().frames_written, 2u);
    }
    const auto data = read_file(path);
    ASSERT_EQ(data.size(), 42u + 4 + 3 + 4 + 5000 + 12);
    EXPECT_EQ(framestream::get_be32(&data[42]), 3u);
    EXPECT_EQ(data[46], 1);
    EXPECT_EQ(framestream::get_be32(&data[49]), 5000u);
    EXPECT_EQ(std::vector<std::uint8_t>(data.end() - 12, data.end()), hex("00000000 00000004 00000003"));
    std::remove(path.c_str());
}

TEST(FileOutput, DestructorEndsTheFileWithStop) {
    const auto path = temp_path("fileout-dtor");
    { output::FileOutput out(path); }
    const auto data = read_file(path);
    ASSERT_EQ(data.size(), 42u + 12);
    EXPECT_EQ(std::vector<std::uint8_t>(data.end() - 12, data.end()), hex("00000000 00000004 00000003"));
    std::remove(path.c_str());
}

TEST(FileOutput, RefusesFramesOver96KiBAndCountsThem) {
    const auto path = temp_path("fileout-big");
    output::FileOutput out(path);
    std::vector<std::uint8_t> huge(96 * 1024 + 1, 1);
    EXPECT_EQ(out.write(huge), output::WriteResult::TooLarge);
    EXPECT_EQ(out.stats().frames_too_large, 1u);
    EXPECT_EQ(out.stats().frames_written, 0u);
    out.close();
    std::remove(path.c_str());
}

TEST(FileOutput, UnwritablePathIsAFatalError) {
    EXPECT_THROW(output::FileOutput("/nonexistent-dir/x.dnstap"), std::runtime_error);
}
