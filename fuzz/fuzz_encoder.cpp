// Fuzz target: the hand-written dnstap encoder (st::dnstap::Encoder) against
// libprotobuf (st::dnstap::ReferenceEncoder), byte for byte.
//
// Input: flags byte (bit 0 IPv6, bit 1 TCP, bit 2 response, bit 3 query
// time given, bit 4 extra set, bit 5 extra given per message), message type
// byte (any value 0..255), client port, server port (2 bytes each), time
// and query time (8 bytes each), client and server address (16 bytes each),
// then identity, version and extra, each a length byte and that many bytes,
// and the rest: the DNS message bytes (at most 65535).
//
// Checks: size(wire) equals the reference frame's size and write() writes
// exactly the reference bytes (with and without the DNS bytes), never past
// size(); the frame parses back with libprotobuf.
#include "fuzz_common.h"

#include "dnstap.pb.h"
#include "dnstap/encoder.h"
#include "dnstap/reference_encoder.h"

#include <cstring>
#include <string>
#include <vector>

namespace st = sidetap;
using sidetap::fuzz::Reader;

namespace {
std::uint64_t u64(Reader& in) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | in.u8();
    return v;
}

std::string text(Reader& in) {
    const auto b = in.bytes(in.u8());
    return std::string(b.begin(), b.end());
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Reader in(data, size);
    const std::uint8_t flags = in.u8();
    // A Message.Type the pipeline emits (1-14): 0 or 15+ are not valid enum
    // values, and libprotobuf would not parse them back (a required field).
    const auto type = static_cast<st::dnstap::MessageType>(1 + in.u8() % 14);
    st::dns::DnsMessage m;
    m.client_port = in.u16();
    m.server_port = in.u16();
    m.timestamp_ns = u64(in);
    const std::uint64_t qt = u64(in);
    m.client.family = m.server.family = (flags & 1) ? 6 : 4;
    const auto client = in.bytes(16);
    const auto server = in.bytes(16);
    std::memcpy(m.client.bytes.data(), client.data(), client.size());
    std::memcpy(m.server.bytes.data(), server.data(), server.size());
    m.transport = (flags & 2) ? st::decode::Transport::Tcp : st::decode::Transport::Udp;
    m.is_response = flags & 4;
    // Bits 6-7: plaintext UDP/TCP, DNS over TLS, DNS over HTTPS (3: also DoH).
    m.encryption = (flags >> 6) == 0 ? st::dns::Encryption::None
                   : (flags >> 6) == 1 ? st::dns::Encryption::Dot
                                       : st::dns::Encryption::Doh;
    st::dnstap::Envelope envelope;
    envelope.identity = text(in);
    envelope.version = text(in);
    const std::string extra = text(in);
    if (flags & 16) envelope.extra = extra;
    m.wire = in.bytes(65535);
    const std::optional<std::uint64_t> query_time = (flags & 8) ? std::optional(qt) : std::nullopt;

    st::dnstap::Encoder encoder(envelope);
    std::optional<std::span<const std::uint8_t>> per_message;
    st::dnstap::Envelope reference_envelope = envelope;
    if (flags & 32) {
        per_message = std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(extra.data()), extra.size());
        reference_envelope.extra = extra;
    }
    st::dnstap::ReferenceEncoder reference(reference_envelope);
    encoder.prepare(m, type, query_time, per_message);
    for (const bool wire : {true, false}) {
        const auto expected = reference.encode(m, type, query_time, wire);
        FUZZ_CHECK(encoder.size(wire) == expected.size());
        std::vector<std::uint8_t> out(expected.size() + 8, 0xa5);
        encoder.write(out.data(), wire);
        for (std::size_t i = expected.size(); i < out.size(); ++i) FUZZ_CHECK(out[i] == 0xa5);
        FUZZ_CHECK(std::memcmp(out.data(), expected.data(), expected.size()) == 0);
        ::dnstap::Dnstap parsed;
        FUZZ_CHECK(parsed.ParseFromArray(out.data(), static_cast<int>(expected.size())));
        FUZZ_CHECK(parsed.has_message());
    }
    return 0;
}
