#include "util/units.h"

#include <gtest/gtest.h>

using sidetap::util::parse_duration_ns;
using sidetap::util::parse_size_bytes;

TEST(ParseDuration, AcceptsTheDocumentedUnits) {
    EXPECT_EQ(parse_duration_ns("500ms"), 500'000'000u);
    EXPECT_EQ(parse_duration_ns("10s"), 10'000'000'000u);
    EXPECT_EQ(parse_duration_ns("5m"), 300'000'000'000u);
    EXPECT_EQ(parse_duration_ns("1h"), 3'600'000'000'000u);
    EXPECT_EQ(parse_duration_ns("2"), 2'000'000'000u);
    EXPECT_EQ(parse_duration_ns("1.5s"), 1'500'000'000u);
    EXPECT_EQ(parse_duration_ns("250us"), 250'000u);
}

TEST(ParseDuration, RejectsGarbage) {
    EXPECT_FALSE(parse_duration_ns(""));
    EXPECT_FALSE(parse_duration_ns("ms"));
    EXPECT_FALSE(parse_duration_ns("-1s"));
    EXPECT_FALSE(parse_duration_ns("10 s"));
    EXPECT_FALSE(parse_duration_ns("10days"));
}

TEST(ParseSize, AcceptsTheDocumentedUnits) {
    EXPECT_EQ(parse_size_bytes("64K"), 65536u);
    EXPECT_EQ(parse_size_bytes("16M"), 16u << 20);
    EXPECT_EQ(parse_size_bytes("1G"), 1u << 30);
    EXPECT_EQ(parse_size_bytes("1MiB"), 1u << 20);
    EXPECT_EQ(parse_size_bytes("4096"), 4096u);
}

TEST(ParseSize, RejectsGarbage) {
    EXPECT_FALSE(parse_size_bytes("K"));
    EXPECT_FALSE(parse_size_bytes("12X"));
    EXPECT_FALSE(parse_size_bytes(""));
}
