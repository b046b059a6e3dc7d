// Fuzz target: link + IP decoding, then the transport layer.
//
// Input: byte 0 picks the link type (index into kLinkTypes, modulo its size;
// the last entry is a link type the decoder does not know); the rest is the
// captured packet.
//
// Checks: every view the decoder returns lies inside the packet's bytes;
// a true decode_link() is never a truncated packet; decapsulate() (applied
// while it finds tunnels) stays inside the bytes and within the depth bound;
// decode_transport() gives UDP/TCP only and refuses fragments.
#include "fuzz_common.h"

#include "capture/packet_source.h"
#include "decode/decoder.h"

#include <array>

namespace {

using namespace sidetap;
namespace lt = capture::linktype;

constexpr std::array<std::uint32_t, 12> kLinkTypes{
    lt::kNull, lt::kEthernet, lt::kRaw,       lt::kLoop,        lt::kLinuxSll, lt::kIpv4,
    lt::kIpv6, lt::kLinuxSll2, lt::kRawOpenBsd, lt::kRawDlt12, 147 /* LINKTYPE_USER0: unknown */,
    lt::kNflog};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Reader in(data, size);
    const std::uint8_t selector = in.u8();
    const auto bytes = in.rest();

    capture::Packet packet;
    packet.timestamp_ns = 1'700'000'000'000'000'000ULL;
    packet.link_type = kLinkTypes[selector % kLinkTypes.size()];
    packet.data = bytes;
    // High bit: the wire length was larger than what was captured (snaplen).
    packet.original_length = static_cast<std::uint32_t>(bytes.size() + ((selector & 0x80) ? 1000 : 0));

    decode::Decoder decoder;
    decode::IpPacket ip;
    const bool link_ok = decoder.decode_link(packet, ip);
    FUZZ_CHECK(fuzz::within(ip.payload, bytes));
    if (!link_ok) return 0;

    FUZZ_CHECK(!ip.truncated);
    FUZZ_CHECK(ip.src.family == 4 || ip.src.family == 6);
    FUZZ_CHECK(ip.dst.family == ip.src.family);
    fuzz::touch(ip.payload);

    // Tunnels, as the pipeline removes them (fragments stop the walk here).
    for (unsigned i = 0; !ip.is_fragment; ++i) {
        FUZZ_CHECK(i <= decode::DecapConfig{}.max_depth);
        decode::IpPacket inner;
        const decode::Decap r = decoder.decapsulate(ip, inner);
        if (r == decode::Decap::Dropped) return 0;
        if (r == decode::Decap::None) break;
        FUZZ_CHECK(fuzz::within(inner.payload, bytes));
        FUZZ_CHECK(!inner.truncated);
        FUZZ_CHECK(inner.encap.depth == ip.encap.depth + 1);
        fuzz::touch(inner.payload);
        ip = inner;
    }

    decode::Segment segment;
    const bool transport_ok = decoder.decode_transport(ip, packet.timestamp_ns, segment);
    if (ip.is_fragment) {
        FUZZ_CHECK(!transport_ok);
        return 0;
    }
    if (!transport_ok) return 0;
    FUZZ_CHECK(segment.transport == decode::Transport::Udp || segment.transport == decode::Transport::Tcp);
    FUZZ_CHECK(segment.transport == decode::Transport::Udp ? ip.protocol == 17 : ip.protocol == 6);
    FUZZ_CHECK(segment.src == ip.src && segment.dst == ip.dst);
    FUZZ_CHECK(segment.encap.depth == ip.encap.depth);
    FUZZ_CHECK(segment.timestamp_ns == packet.timestamp_ns);
    FUZZ_CHECK(fuzz::within(segment.payload, ip.payload));
    fuzz::touch(segment.payload);
    return 0;
}
