// Unit tests for sidetap::dns::parse_header_question.
#include "dns/message.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sidetap::dns {
namespace {

using Bytes = std::vector<std::uint8_t>;

// 12-byte header: id 0xBEEF, given flags and counts.
Bytes header(std::uint16_t flags, std::uint16_t qd = 1, std::uint16_t an = 0, std::uint16_t ns = 0,
             std::uint16_t ar = 0) {
    Bytes b;
    for (std::uint16_t v : {std::uint16_t{0xBEEF}, flags, qd, an, ns, ar}) {
        b.push_back(static_cast<std::uint8_t>(v >> 8));
        b.push_back(static_cast<std::uint8_t>(v));
    }
    return b;
}

Bytes name(std::initializer_list<std::string> labels) {
    Bytes b;
    for (const std::string& l : labels) {
        b.push_back(static_cast<std::uint8_t>(l.size()));
        b.insert(b.end(), l.begin(), l.end());
    }
    b.push_back(0);
    return b;
}

Bytes cat(Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

const Bytes kTypeA_IN{0, 1, 0, 1};

struct Parsed {
    ParseStatus status;
    Header header;
    Question question;
};

Parsed parse(const Bytes& wire) {
    Parsed p{};
    p.status = parse_header_question(wire, p.header, p.question);
    return p;
}

Bytes name_of(const Question& q) { return {q.name_view().begin(), q.name_view().end()}; }

TEST(DnsParse, ReadsHeaderFieldsAndTheQuestion) {
    // QR, opcode 5 (UPDATE), AA, TC, RD, RA, rcode 3 (NXDOMAIN)
    const std::uint16_t flags = 0x8000 | (5 << 11) | 0x0400 | 0x0200 | 0x0100 | 0x0080 | 3;
    const Bytes wire = cat(cat(header(flags, 1, 2, 3, 4), name({"www", "example", "com"})), {0, 28, 0, 1});
    const Parsed p = parse(wire);
    ASSERT_EQ(p.status, ParseStatus::Ok);
    EXPECT_EQ(p.header.id, 0xBEEF);
    EXPECT_EQ(p.header.flags, flags);
    EXPECT_TRUE(p.header.qr);
    EXPECT_EQ(p.header.opcode, 5);
    EXPECT_TRUE(p.header.tc);
    EXPECT_EQ(p.header.rcode, 3);
    EXPECT_EQ(p.header.qdcount, 1);
    EXPECT_EQ(p.header.ancount, 2);
    EXPECT_EQ(p.header.nscount, 3);
    EXPECT_EQ(p.header.arcount, 4);
    EXPECT_TRUE(p.question.present);
    EXPECT_EQ(name_of(p.question), name({"www", "example", "com"}));
    EXPECT_EQ(p.question.name_length, 17);
    EXPECT_EQ(p.question.qtype, 28);
    EXPECT_EQ(p.question.qclass, 1);
}

TEST(DnsParse, QueryFlagsAreClear) {
    const Parsed p = parse(cat(cat(header(0x0100), name({"a"})), kTypeA_IN));
    ASSERT_EQ(p.status, ParseStatus::Ok);
    EXPECT_FALSE(p.header.qr);
    EXPECT_FALSE(p.header.tc);
    EXPECT_EQ(p.header.opcode, 0);
    EXPECT_EQ(p.header.rcode, 0);
}

TEST(DnsParse, LowerCasesMixedCaseNameAsciiOnly) {
    const Bytes mixed = name({"WwW", "ExAmPlE", "CoM"});
    // A non-ASCII byte and '@'/'[' (neighbours of A-Z) stay as they are.
    const Bytes odd = name({std::string("\xC4@[Z")});
    const Parsed p = parse(cat(cat(header(0), mixed), kTypeA_IN));
    ASSERT_EQ(p.status, ParseStatus::Ok);
    EXPECT_EQ(name_of(p.question), name({"www", "example", "com"}));
    const Parsed q = parse(cat(cat(header(0), odd), kTypeA_IN));
    ASSERT_EQ(q.status, ParseStatus::Ok);
    EXPECT_EQ(name_of(q.question), name({std::string("\xC4@[z")}));
}

TEST(DnsReadName, LowerCasesEveryByteValueWhateverTheLabelLengthAndWhereTheBuffersEnd) {
    // Word-at-a-time lower-casing must equal the byte rule for every byte
    // value, label length, and distance to the end of the message (whole
    // words fit, or only the exact bytes do) and of the 255-byte name.
    auto lower = [](std::uint8_t c) { return static_cast<std::uint8_t>(c >= 'A' && c <= 'Z' ? c + 32 : c); };
    for (std::size_t len = 1; len <= 63; ++len) {
        for (std::size_t tail = 0; tail <= 9; ++tail) {
            for (unsigned first = 0; first < 256; first += 7) {
                Bytes wire;
                Bytes want;
                // A long first label puts the second one near the end of the
                // 255-byte name for the longer lengths.
                const std::size_t pad = len > 40 ? 180 : 0;
                if (pad != 0) {
                    for (std::size_t part = 0; part < pad / 60; ++part) {
                        wire.push_back(59);
                        want.push_back(59);
                        for (std::size_t i = 0; i < 59; ++i) {
                            wire.push_back('Q');
                            want.push_back('q');
                        }
                    }
                }
                wire.push_back(static_cast<std::uint8_t>(len));
                want.push_back(static_cast<std::uint8_t>(len));
                for (std::size_t i = 0; i < len; ++i) {
                    const auto c = static_cast<std::uint8_t>((first + i * 37) & 0xFF);
                    wire.push_back(c);
                    want.push_back(lower(c));
                }
                wire.push_back(0);
                want.push_back(0);
                for (std::size_t i = 0; i < tail; ++i) wire.push_back('Z');
                std::array<std::uint8_t, kMaxNameWire> out{};
                std::uint8_t out_length = 0;
                std::size_t next = 0;
                ASSERT_TRUE(read_name(wire, 0, out, out_length, next)) << len << " " << tail;
                EXPECT_EQ(Bytes(out.begin(), out.begin() + out_length), want) << len << " " << tail << " " << first;
                EXPECT_EQ(next, wire.size() - tail);
            }
        }
    }
}

TEST(DnsParse, RootNameQuestion) {
    const Parsed p = parse(cat(cat(header(0), Bytes{0}), {0, 6, 0, 1}));  // SOA? .
    ASSERT_EQ(p.status, ParseStatus::Ok);
    EXPECT_EQ(name_of(p.question), Bytes{0});
    EXPECT_EQ(p.question.qtype, 6);
}

TEST(DnsParse, FollowsABackwardPointerAndReadsTypeAfterIt) {
    // Offset 4 holds QDCOUNT's high byte, 0x00: a root label. "www" + pointer
    // to it is the name "www.".
    const Parsed p = parse(cat(cat(header(0), Bytes{3, 'w', 'w', 'w', 0xC0, 0x04}), {0, 16, 0, 3}));
    ASSERT_EQ(p.status, ParseStatus::Ok);
    EXPECT_EQ(name_of(p.question), name({"www"}));
    EXPECT_EQ(p.question.qtype, 16);
    EXPECT_EQ(p.question.qclass, 3);
}

TEST(DnsParse, CompressionPointerLoopIsRejected) {
    // zlip: a label then a pointer back to it, forever.
    const Parsed p = parse(cat(cat(header(0), Bytes{3, 'a', 'b', 'c', 0xC0, 0x0C}), kTypeA_IN));
    EXPECT_EQ(p.status, ParseStatus::BadQuestionName);
    EXPECT_FALSE(p.question.present);
    EXPECT_EQ(p.header.id, 0xBEEF);  // the header is still usable
    // A pointer to itself.
    EXPECT_EQ(parse(cat(cat(header(0), Bytes{0xC0, 0x0C}), kTypeA_IN)).status, ParseStatus::BadQuestionName);
    // A pointer loop through the header counts: 12 -> 10 -> 12 would need a
    // forward hop, which is refused.
    Bytes loop = header(0, 1, 0, 0, 0xC00C);  // ARCOUNT bytes are a pointer to 12
    loop.insert(loop.end(), {0xC0, 10});
    EXPECT_EQ(parse(cat(loop, kTypeA_IN)).status, ParseStatus::BadQuestionName);
}

TEST(DnsReadName, PointerChainsAreBoundedByTheJumpLimit) {
    // A name ("x.") at 12, then a chain of pointers each pointing to the one
    // before it. Every hop goes backwards; only the jump count ends a long chain.
    auto chain = [](int hops) {
        Bytes wire = header(0);
        wire.insert(wire.end(), {1, 'x', 0});
        std::size_t prev = 12;
        for (int i = 0; i < hops; ++i) {
            const std::size_t here = wire.size();
            wire.push_back(static_cast<std::uint8_t>(0xC0 | (prev >> 8)));
            wire.push_back(static_cast<std::uint8_t>(prev));
            prev = here;
        }
        return std::make_pair(wire, prev);
    };
    std::array<std::uint8_t, kMaxNameWire> out{};
    std::uint8_t out_len = 0;
    std::size_t next = 0;
    {
        const auto [wire, last] = chain(kMaxPointerJumps);
        ASSERT_TRUE(read_name(wire, last, out, out_len, next));
        EXPECT_EQ(out_len, 3);
        EXPECT_EQ(next, last + 2);
    }
    {
        const auto [wire, last] = chain(kMaxPointerJumps + 1);
        EXPECT_FALSE(read_name(wire, last, out, out_len, next));
    }
}

TEST(DnsReadName, ReadsAnAnswerNameThatPointsToTheQuestion) {
    const Bytes wire = cat(cat(header(0x8000), name({"Example", "COM"})), {0, 1, 0, 1, 3, 'w', 'w', 'w', 0xC0, 12});
    std::array<std::uint8_t, kMaxNameWire> out{};
    std::uint8_t out_len = 0;
    std::size_t next = 0;
    ASSERT_TRUE(read_name(wire, 29, out, out_len, next));
    EXPECT_EQ(Bytes(out.begin(), out.begin() + out_len), name({"www", "example", "com"}));
    EXPECT_EQ(next, wire.size());
}

TEST(DnsParse, ForwardPointerIsRejected) {
    // suricata-dns-forward-pointer / tcpdump dns_fwdptr.
    const Parsed p = parse(cat(cat(header(0), Bytes{3, 'w', 'w', 'w', 0xC0, 20}), cat(name({"x"}), kTypeA_IN)));
    EXPECT_EQ(p.status, ParseStatus::BadQuestionName);
}

TEST(DnsParse, ReservedLabelTypesAreRejected) {
    for (std::uint8_t type : {std::uint8_t{0x40}, std::uint8_t{0x80}, std::uint8_t{0x7F}, std::uint8_t{0xBF}}) {
        Bytes wire = header(0);
        wire.push_back(type);
        wire.insert(wire.end(), 200, 'a');
        SCOPED_TRACE(static_cast<int>(type));
        EXPECT_EQ(parse(wire).status, ParseStatus::BadQuestionName);
    }
}

TEST(DnsParse, NameOf255BytesIsAcceptedAnd256Refused) {
    const std::string l63(63, 'a');
    const Bytes max = name({l63, l63, l63, std::string(61, 'b')});
    ASSERT_EQ(max.size(), 255u);
    const Parsed ok = parse(cat(cat(header(0), max), kTypeA_IN));
    ASSERT_EQ(ok.status, ParseStatus::Ok);
    EXPECT_EQ(ok.question.name_length, 255);
    EXPECT_EQ(name_of(ok.question), max);

    const Bytes over = name({l63, l63, l63, std::string(62, 'b')});
    ASSERT_EQ(over.size(), 256u);
    EXPECT_EQ(parse(cat(cat(header(0), over), kTypeA_IN)).status, ParseStatus::BadQuestionName);
    const Bytes way_over = name({l63, l63, l63, l63, l63});
    EXPECT_EQ(parse(cat(cat(header(0), way_over), kTypeA_IN)).status, ParseStatus::BadQuestionName);
}

TEST(DnsParse, LabelRunningPastTheEndIsRejected) {
    EXPECT_EQ(parse(cat(header(0), Bytes{5, 'a', 'b'})).status, ParseStatus::BadQuestionName);
    EXPECT_EQ(parse(cat(header(0), Bytes{3, 'a', 'b', 'c'})).status, ParseStatus::BadQuestionName);  // no root
    EXPECT_EQ(parse(header(0)).status, ParseStatus::BadQuestionName);                              // no name
    EXPECT_EQ(parse(cat(header(0), Bytes{0xC0})).status, ParseStatus::BadQuestionName);          // half pointer
}

TEST(DnsParse, MissingQtypeOrQclassIsQuestionTruncated) {
    const Bytes base = cat(header(0), name({"example", "com"}));
    EXPECT_EQ(parse(base).status, ParseStatus::QuestionTruncated);
    EXPECT_EQ(parse(cat(base, {0, 1})).status, ParseStatus::QuestionTruncated);
    EXPECT_EQ(parse(cat(base, {0, 1, 0})).status, ParseStatus::QuestionTruncated);
    const Parsed p = parse(cat(base, {0, 1, 0}));
    EXPECT_FALSE(p.question.present);
    EXPECT_EQ(p.header.qdcount, 1);
}

TEST(DnsParse, QdcountZeroIsOkWithoutQuestion) {
    const Parsed p = parse(header(0x8000, 0));
    EXPECT_EQ(p.status, ParseStatus::Ok);
    EXPECT_FALSE(p.question.present);
    EXPECT_EQ(p.question.name_length, 0);
    // Bytes after the header are not looked at.
    EXPECT_EQ(parse(cat(header(0, 0), Bytes{0xC0, 0xFF})).status, ParseStatus::Ok);
}

TEST(DnsParse, ElevenBytesIsTooShort) {
    Bytes wire = header(0);
    wire.pop_back();
    Header h;
    h.id = 7;
    Question q;
    q.present = true;
    EXPECT_EQ(parse_header_question(wire, h, q), ParseStatus::TooShort);
    EXPECT_EQ(h.id, 0);
    EXPECT_FALSE(q.present);
    EXPECT_EQ(parse(Bytes{}).status, ParseStatus::TooShort);
}

TEST(DnsParse, ReusedQuestionIsResetBetweenMessages) {
    Header h;
    Question q;
    const Bytes good = cat(cat(header(0), name({"example"})), kTypeA_IN);
    ASSERT_EQ(parse_header_question(good, h, q), ParseStatus::Ok);
    EXPECT_TRUE(q.present);
    EXPECT_EQ(parse_header_question(cat(header(0), Bytes{9}), h, q), ParseStatus::BadQuestionName);
    EXPECT_FALSE(q.present);
    EXPECT_EQ(q.name_length, 0);
    EXPECT_EQ(q.qtype, 0);
}

TEST(DnsParse, QuestionsCompareByNameTypeAndClass) {
    Header h;
    Question a;
    Question b;
    ASSERT_EQ(parse_header_question(cat(cat(header(0), name({"Example"})), kTypeA_IN), h, a), ParseStatus::Ok);
    ASSERT_EQ(parse_header_question(cat(cat(header(0x8000), name({"eXAMPLE"})), kTypeA_IN), h, b), ParseStatus::Ok);
    EXPECT_EQ(a, b);
    ASSERT_EQ(parse_header_question(cat(cat(header(0), name({"example"})), {0, 28, 0, 1}), h, b), ParseStatus::Ok);
    EXPECT_FALSE(a == b);
}

TEST(DnsParse, ToStringNamesEveryStatus) {
    EXPECT_EQ(to_string(ParseStatus::Ok), "ok");
    EXPECT_EQ(to_string(ParseStatus::TooShort), "too_short");
    EXPECT_EQ(to_string(ParseStatus::BadQuestionName), "bad_question_name");
    EXPECT_EQ(to_string(ParseStatus::QuestionTruncated), "question_truncated");
}

}  // namespace
}  // namespace sidetap::dns
