// Fuzz target: IPv4/IPv6 defragmentation (reassembly::IpDefragmenter) with
// small limits, so eviction, memory pressure and timeouts are all reached.
//
// Input: byte 0 = configuration (bits 0-1: max_bytes 8 KiB / 80 KiB /
// 200 KiB / 1 MiB; bit 2: OverlapPolicy::Last; bits 3-4: max_datagrams
// 1/2/4/8; bits 5-6: max_fragments 2/4/8/64), then 6-byte records, one
// fragment each:
//   b0  bit 0 family (0: IPv4, 1: IPv6), bit 1 MF, bits 2-3 source (of 4),
//       bit 4 destination (of 2), bit 5 truncated, bits 6-7 protocol
//       (UDP, TCP, ICMP, 99)
//   b1  fragment id
//   b2-3  bits 0-12 offset in 8-byte units; bits 13-15 time step
//       (x 250 ms; 7 also calls expire())
//   b4-5  bits 0-13 payload length; bits 14-15 payload pattern (of 4)
// Payload bytes come from a fixed pattern indexed by the datagram offset,
// so a repeated fragment with the same pattern is a true duplicate and
// another pattern an overlap with different bytes.
//
// Checks after every call: active_datagrams() <= max_datagrams,
// buffered_bytes() <= max_bytes; every reassembled datagram is whole
// (is_fragment/MF false, offset 0), of the fragment's family and tuple,
// at most 65535 bytes, readable; finish() leaves nothing open.
#include "fuzz_common.h"

#include "reassembly/ip_defragmenter.h"

#include <array>
#include <vector>

namespace {

using namespace sidetap;

constexpr std::size_t kMaxPayload = 0x3FFF;
constexpr std::size_t kPatternSize = 65536 + kMaxPayload + 8;
constexpr std::uint64_t kStepNs = 250'000'000;

const std::array<std::vector<std::uint8_t>, 4>& patterns() {
    static const auto p = [] {
        std::array<std::vector<std::uint8_t>, 4> out;
        for (std::size_t v = 0; v < out.size(); ++v) {
            out[v].resize(kPatternSize);
            for (std::size_t i = 0; i < kPatternSize; ++i)
                out[v][i] = static_cast<std::uint8_t>(i * 7 + v * 89 + (i >> 8));
        }
        return out;
    }();
    return p;
}

decode::IpAddress address(std::uint8_t family, std::uint8_t index, bool destination) {
    decode::IpAddress a;
    a.family = family;
    if (family == 4) {
        a.bytes[0] = destination ? 192 : 10;
        a.bytes[1] = 0;
        a.bytes[2] = 2;
        a.bytes[3] = static_cast<std::uint8_t>(1 + index);
    } else {
        a.bytes[0] = 0x20;
        a.bytes[1] = 0x01;
        a.bytes[2] = 0x0d;
        a.bytes[3] = 0xb8;
        a.bytes[7] = destination ? 0x53 : 0x01;
        a.bytes[15] = static_cast<std::uint8_t>(1 + index);
    }
    return a;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Reader in(data, size);
    const std::uint8_t cfg_byte = in.u8();
    constexpr std::array<std::size_t, 4> kMaxBytes{8u << 10, 80u << 10, 200u << 10, 1u << 20};
    constexpr std::array<std::size_t, 4> kMaxDatagrams{1, 2, 4, 8};
    constexpr std::array<std::size_t, 4> kMaxFragments{2, 4, 8, 64};
    reassembly::DefragConfig config;
    config.max_bytes = kMaxBytes[cfg_byte & 3];
    config.overlap = (cfg_byte & 4) ? reassembly::OverlapPolicy::Last : reassembly::OverlapPolicy::First;
    config.max_datagrams = kMaxDatagrams[(cfg_byte >> 3) & 3];
    config.max_fragments = kMaxFragments[(cfg_byte >> 5) & 3];
    config.timeout_ns = 1'000'000'000;

    reassembly::IpDefragmenter defrag(config);
    const auto& pattern = patterns();
    constexpr std::array<std::uint8_t, 4> kProtocols{17, 6, 1, 99};
    std::uint64_t now = 1'000'000'000'000ULL;

    auto check_bounds = [&] {
        FUZZ_CHECK(defrag.active_datagrams() <= config.max_datagrams);
        FUZZ_CHECK(defrag.buffered_bytes() <= config.max_bytes);
    };

    while (in.remaining() >= 6) {
        const std::uint8_t b0 = in.u8();
        const std::uint8_t id = in.u8();
        const std::uint16_t off_word = in.u16();
        const std::uint16_t len_word = in.u16();

        decode::IpPacket frag;
        const std::uint8_t family = (b0 & 1) ? 6 : 4;
        frag.src = address(family, (b0 >> 2) & 3, false);
        frag.dst = address(family, (b0 >> 4) & 1, true);
        frag.protocol = kProtocols[b0 >> 6];
        frag.is_fragment = true;
        frag.more_fragments = (b0 & 2) != 0;
        frag.fragment_id = family == 4 ? id : (0x01000000u | id);
        frag.fragment_offset = (off_word & 0x1FFFu) * 8u;
        frag.truncated = (b0 & 0x20) != 0;
        const std::size_t length = len_word & kMaxPayload;
        frag.payload = {pattern[len_word >> 14].data() + frag.fragment_offset, length};

        const unsigned step = off_word >> 13;
        now += step * kStepNs;
        if (step == 7) {
            defrag.expire(now);
            check_bounds();
        }

        decode::IpPacket out;
        if (defrag.add(frag, now, out)) {
            FUZZ_CHECK(!out.is_fragment && !out.more_fragments && out.fragment_offset == 0);
            FUZZ_CHECK(out.payload.size() <= 65535);
            FUZZ_CHECK(out.src == frag.src && out.dst == frag.dst);
            FUZZ_CHECK(out.fragment_id == frag.fragment_id);
            FUZZ_CHECK(!out.truncated);
            fuzz::touch(out.payload);
        }
        check_bounds();
    }
    defrag.finish();
    FUZZ_CHECK(defrag.active_datagrams() == 0);
    FUZZ_CHECK(defrag.buffered_bytes() <= config.max_bytes);
    return 0;
}
