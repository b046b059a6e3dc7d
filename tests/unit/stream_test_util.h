// Builders shared by the stream-decoding unit tests (DNS over TLS framing,
// HTTP/2 + HPACK for DNS over HTTPS): DNS messages, DoT framing, HTTP/2
// frames and a real HPACK encoder (libnghttp2's deflater, an independent
// implementation of the header compression the decoder undoes).
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace sidetap::test_streams {

using Bytes = std::vector<std::uint8_t>;

// A well-formed DNS message: header + one question (<label>.example. A IN);
// a response carries one A record whose RDATA is grown by `pad` bytes so
// that sizes can be chosen (answers over 16 KiB).
inline Bytes dns_message(std::uint16_t id, bool response, const std::string& label = "www", std::size_t pad = 0) {
    Bytes m{static_cast<std::uint8_t>(id >> 8), static_cast<std::uint8_t>(id),
            static_cast<std::uint8_t>(response ? 0x81 : 0x01), static_cast<std::uint8_t>(response ? 0x80 : 0x00),
            0, 1, 0, static_cast<std::uint8_t>(response ? 1 : 0), 0, 0, 0, 0};
    m.push_back(static_cast<std::uint8_t>(label.size()));
    m.insert(m.end(), label.begin(), label.end());
    const std::string zone = "example";
    m.push_back(static_cast<std::uint8_t>(zone.size()));
    m.insert(m.end(), zone.begin(), zone.end());
    m.insert(m.end(), {0, 0, 1, 0, 1});
    if (response) {
        const std::size_t rdlen = 4 + pad;
        m.insert(m.end(), {0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, static_cast<std::uint8_t>(rdlen >> 8),
                           static_cast<std::uint8_t>(rdlen)});
        for (std::size_t i = 0; i < rdlen; ++i) m.push_back(static_cast<std::uint8_t>(10 + i));
    }
    return m;
}

inline Bytes framed(const Bytes& msg) {
    Bytes b{static_cast<std::uint8_t>(msg.size() >> 8), static_cast<std::uint8_t>(msg.size())};
    b.insert(b.end(), msg.begin(), msg.end());
    return b;
}

inline Bytes cat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

inline Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

// ------------------------------------------------------------ HTTP/2

inline const std::string kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

namespace h2 {
constexpr std::uint8_t kData = 0, kHeaders = 1, kPriority = 2, kRstStream = 3, kSettings = 4, kPushPromise = 5,
                       kPing = 6, kGoaway = 7, kWindowUpdate = 8, kContinuation = 9;
constexpr std::uint8_t kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4, kPadded = 0x8, kPriorityFlag = 0x20;
}  // namespace h2

inline Bytes frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream, const Bytes& payload) {
    Bytes b{static_cast<std::uint8_t>(payload.size() >> 16), static_cast<std::uint8_t>(payload.size() >> 8),
            static_cast<std::uint8_t>(payload.size()), type, flags,
            static_cast<std::uint8_t>(stream >> 24), static_cast<std::uint8_t>(stream >> 16),
            static_cast<std::uint8_t>(stream >> 8), static_cast<std::uint8_t>(stream)};
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
}

inline Bytes settings(std::initializer_list<std::pair<std::uint16_t, std::uint32_t>> values = {}) {
    Bytes p;
    for (auto [id, v] : values)
        p.insert(p.end(), {static_cast<std::uint8_t>(id >> 8), static_cast<std::uint8_t>(id),
                           static_cast<std::uint8_t>(v >> 24), static_cast<std::uint8_t>(v >> 16),
                           static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)});
    return frame(h2::kSettings, 0, 0, p);
}

// One side's HPACK encoder (its dynamic table persists across blocks, as a
// real peer's does).
class Hpack {
public:
    explicit Hpack(std::size_t table = 4096) {
        if (nghttp2_hd_deflate_new(&deflater_, table) != 0) throw std::runtime_error("nghttp2_hd_deflate_new");
    }
    ~Hpack() { nghttp2_hd_deflate_del(deflater_); }
    Hpack(const Hpack&) = delete;
    Hpack& operator=(const Hpack&) = delete;

    Bytes encode(const std::vector<std::pair<std::string, std::string>>& headers) {
        std::vector<nghttp2_nv> nva;
        for (const auto& [n, v] : headers)
            nva.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())),
                           reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                           NGHTTP2_NV_FLAG_NONE});
        Bytes out(nghttp2_hd_deflate_bound(deflater_, nva.data(), nva.size()));
        const auto n = nghttp2_hd_deflate_hd(deflater_, out.data(), out.size(), nva.data(), nva.size());
        if (n < 0) throw std::runtime_error("nghttp2_hd_deflate_hd");
        out.resize(static_cast<std::size_t>(n));
        return out;
    }

private:
    nghttp2_hd_deflater* deflater_ = nullptr;
};

inline std::string base64url(const Bytes& data) {
    static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < data.size(); i += 3) {
        const unsigned v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
        out += abc[(v >> 18) & 63];
        out += abc[(v >> 12) & 63];
        out += abc[(v >> 6) & 63];
        out += abc[v & 63];
    }
    if (i + 1 == data.size()) {
        const unsigned v = data[i] << 16;
        out += abc[(v >> 18) & 63];
        out += abc[(v >> 12) & 63];
    } else if (i + 2 == data.size()) {
        const unsigned v = (data[i] << 16) | (data[i + 1] << 8);
        out += abc[(v >> 18) & 63];
        out += abc[(v >> 12) & 63];
        out += abc[(v >> 6) & 63];
    }
    return out;
}

}  // namespace sidetap::test_streams
