// Fuzz target: the read side — Frame Streams reader, dnstap protobuf
// decoding, the text/YAML/JSON formatters (with ldns for DNS messages) and
// the filters, as `sidetap read` and `sidetap listen` run them.
//
// Input: the first byte picks the frame-size limit (small limits exercise
// the "frame too large" path); the rest is the byte stream, fed to the
// reader in chunks whose sizes come from the data itself.
//
// Checks: the reader yields frames no larger than the limit, keeps
// returning Error after an error, and never reads past the input; every
// frame that decodes can be formatted in all three formats.
#include "fuzz_common.h"

#include "framestream/reader.h"
#include "present/filter.h"
#include "present/formatter.h"

#include "dnstap.pb.h"

#include <algorithm>
#include <cstring>
#include <string>

using namespace sidetap;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    static const std::size_t kLimits[] = {64, 512, 4096, 1u << 20};
    const std::size_t limit = kLimits[data[0] % 4];
    std::span<const std::uint8_t> input(data + 1, size - 1);

    std::size_t pos = 0;
    framestream::Reader reader(
        [&](void* buffer, std::size_t n) -> std::ptrdiff_t {
            if (pos >= input.size()) return 0;
            // Short reads of varying size, as from a socket.
            const std::size_t chunk = std::min<std::size_t>({n, input.size() - pos, std::size_t{1} + input[pos] % 97u});
            std::memcpy(buffer, input.data() + pos, chunk);
            pos += chunk;
            return static_cast<std::ptrdiff_t>(chunk);
        },
        {.max_frame_size = limit});

    static const present::Formatter text(present::Format::Text);
    static const present::Formatter yaml(present::Format::Yaml);
    static const present::Formatter json(present::Format::Json);
    static present::Filter filter = [] {
        present::Filter f;
        std::string error;
        f.add_qname_suffix("example.com", error);
        f.add_client("192.0.2.0/24", error);
        f.add_client("2001:db8::/32", error);
        return f;
    }();

    ::dnstap::Dnstap message;
    std::string out;
    std::span<const std::uint8_t> frame;
    framestream::ReadStatus status;
    int frames = 0;
    while ((status = reader.next(frame)) == framestream::ReadStatus::Frame) {
        FUZZ_CHECK(frame.size() <= limit);
        FUZZ_CHECK(pos <= input.size());
        ++frames;
        if (!present::decode(frame, message)) continue;
        (void)filter.matches(message);
        out.clear();
        text.append(message, out);
        yaml.append(message, out);
        json.append(message, out);
        FUZZ_CHECK(!out.empty());
    }
    if (status == framestream::ReadStatus::Error) {
        FUZZ_CHECK(!reader.error().empty());
        FUZZ_CHECK(reader.next(frame) == framestream::ReadStatus::Error);
    }
    (void)frames;
    return 0;
}
