#include "streams/http2_session.h"

#include "streams/base64url.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <string>
#include <string_view>

namespace sidetap::streams {

namespace {

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr std::size_t kFrameHeader = 9;
constexpr std::size_t kMaxBody = 65535;  // a DNS message
constexpr std::size_t kMaxPath = 8192;   // :path kept per stream (a GET query is ~4/3 of the message)
constexpr std::string_view kDnsMessage = "application/dns-message";

enum FrameType : std::uint8_t {
    kData = 0,
    kHeaders = 1,
    kRstStream = 3,
    kSettings = 4,
    kPushPromise = 5,
    kContinuation = 9,
};
constexpr std::uint8_t kEndStream = 0x1;
constexpr std::uint8_t kAck = 0x1;
constexpr std::uint8_t kEndHeaders = 0x4;
constexpr std::uint8_t kPadded = 0x8;
constexpr std::uint8_t kPriority = 0x20;
constexpr std::uint16_t kSettingsHeaderTableSize = 0x1;

std::uint32_t be24(const std::uint8_t* p) { return (std::uint32_t{p[0]} << 16) | (std::uint32_t{p[1]} << 8) | p[2]; }
std::uint32_t be32(const std::uint8_t* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

// Content types compare without parameters and case.
bool is_dns_content_type(std::string_view v) {
    const auto semi = v.find(';');
    if (semi != std::string_view::npos) v = v.substr(0, semi);
    while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
    if (v.size() != kDnsMessage.size()) return false;
    for (std::size_t i = 0; i < v.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(v[i])) != kDnsMessage[i]) return false;
    return true;
}

struct Stream {
    enum class Method : std::uint8_t { None, Get, Post, Other };
    std::uint32_t id = 0;
    std::uint64_t order = 0;
    bool used = false;
    Method method = Method::None;
    bool request_headers = false;  // first header block of the client seen
    bool dns = false;              // a DoH request: its response is wanted too
    bool query_sent = false;       // the query was emitted
    bool request_done = false;
    bool response_headers = false;
    bool response_ok = false;      // :status 200, DNS content type
    bool response_done = false;
    bool undecodable = false;      // counted once
    std::vector<std::uint8_t> request_body;
    std::vector<std::uint8_t> response_body;
    std::string path;
    bool content_type_dns = true;  // request content-type absent or application/dns-message
    int status = 0;
};

}  // namespace

struct Http2Session::Impl {
    struct Side {
        nghttp2_hd_inflater* hd = nullptr;
        std::size_t preface = 0;                // preface bytes still expected (client side)
        std::vector<std::uint8_t> frame;        // frame being gathered (header + payload)
        std::size_t skip = 0;                   // payload bytes of an oversized frame still to skip
        std::uint32_t skip_stream = 0;
        bool in_block = false;                  // a header block waits for CONTINUATION
        bool block_push = false;
        bool block_end_stream = false;
        std::uint32_t block_stream = 0;
        std::vector<std::uint8_t> block;
        bool dead = false;
        std::size_t table_limit = 4096;
    };

    Http2Limits limits;
    StreamCounters& ctr;
    std::array<Side, 2> sides;  // 0: server -> client, 1: client -> server
    std::vector<Stream> streams;
    std::uint64_t next_order = 0;
    std::uint32_t highest_client_stream = 0;
    std::vector<std::uint8_t> scratch;  // a decoded GET query

    Impl(const Http2Limits& l, StreamCounters& c) : limits(l), ctr(c) {
        sides[1].preface = kPreface.size();
        if (limits.max_streams == 0) limits.max_streams = 1;
    }
    ~Impl() {
        for (auto& s : sides)
            if (s.hd) nghttp2_hd_inflate_del(s.hd);
    }

    Side& side(bool from_client) { return sides[from_client ? 1 : 0]; }

    void kill(Side& s) {
        if (s.dead) return;
        s.dead = true;
        ctr.add(StreamEvent::DohHeaderErrors);
        std::vector<std::uint8_t>().swap(s.frame);
        std::vector<std::uint8_t>().swap(s.block);
        if (s.hd) {
            nghttp2_hd_inflate_del(s.hd);
            s.hd = nullptr;
        }
    }

    Stream* find(std::uint32_t id) {
        for (auto& st : streams)
            if (st.used && st.id == id) return &st;
        return nullptr;
    }

    void undecodable(Stream& st) {
        if (st.undecodable) return;
        st.undecodable = true;
        ctr.add(StreamEvent::DohStreamsUndecodable);
    }

    void release(Stream& st) {
        st.used = false;
        st.request_body.clear();
        st.response_body.clear();
        st.path.clear();
    }

    // Streams end when both sides did; a stream whose other side can no
    // longer be decoded ends with the side that can.
    void maybe_release(Stream& st) {
        const bool request_end = st.request_done || sides[1].dead;
        const bool response_end = st.response_done || sides[0].dead;
        if (request_end && response_end) release(st);
    }

    Stream& open(std::uint32_t id) {
        Stream* slot = nullptr;
        for (auto& st : streams)
            if (!st.used) {
                slot = &st;
                break;
            }
        if (!slot && streams.size() < limits.max_streams) slot = &streams.emplace_back();
        if (!slot) {
            slot = &*std::min_element(streams.begin(), streams.end(),
                                      [](const Stream& a, const Stream& b) { return a.order < b.order; });
            ctr.add(StreamEvent::DohStreamsEvicted);
            if (slot->dns && !slot->response_done) undecodable(*slot);
            release(*slot);
        }
        auto keep_req = std::move(slot->request_body);
        auto keep_resp = std::move(slot->response_body);
        auto keep_path = std::move(slot->path);
        *slot = Stream{};
        slot->request_body = std::move(keep_req);
        slot->response_body = std::move(keep_resp);
        slot->path = std::move(keep_path);
        slot->id = id;
        slot->used = true;
        slot->order = next_order++;
        return *slot;
    }

    void feed(bool from_client, std::span<const std::uint8_t> data, DohSink& sink) {
        Side& s = side(from_client);
        while (!data.empty() && !s.dead) {
            if (s.preface > 0) {
                const std::size_t at = kPreface.size() - s.preface;
                const std::size_t n = std::min(s.preface, data.size());
                if (std::memcmp(data.data(), kPreface.data() + at, n) != 0) {
                    kill(s);
                    return;
                }
                s.preface -= n;
                data = data.subspan(n);
                continue;
            }
            if (s.skip > 0) {
                const std::size_t n = std::min(s.skip, data.size());
                s.skip -= n;
                data = data.subspan(n);
                continue;
            }
            // Gather the frame header, then the payload.
            if (s.frame.size() < kFrameHeader) {
                const std::size_t n = std::min(kFrameHeader - s.frame.size(), data.size());
                s.frame.insert(s.frame.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n));
                data = data.subspan(n);
                if (s.frame.size() < kFrameHeader) continue;
                const std::uint32_t length = be24(s.frame.data());
                if (length > limits.max_frame_bytes) {
                    oversized(from_client, s, length);
                    continue;
                }
            }
            const std::size_t want = kFrameHeader + be24(s.frame.data());
            if (s.frame.size() < want) {
                const std::size_t n = std::min(want - s.frame.size(), data.size());
                s.frame.insert(s.frame.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n));
                data = data.subspan(n);
                if (s.frame.size() < want) continue;
            }
            frame(from_client, s, sink);
            s.frame.clear();
        }
    }

    void oversized(bool from_client, Side& s, std::uint32_t length) {
        const std::uint8_t type = s.frame[3];
        const std::uint32_t id = be32(s.frame.data() + 5) & 0x7fffffffu;
        s.frame.clear();
        if (type == kHeaders || type == kContinuation || type == kPushPromise || s.in_block) {
            kill(s);  // the HPACK state cannot follow a block it did not see
            return;
        }
        s.skip = length;
        if (type == kData) {
            if (Stream* st = find(id)) {
                undecodable(*st);
                if (from_client)
                    st->dns = false;
                else
                    st->response_ok = false;
            }
        }
    }

    void frame(bool from_client, Side& s, DohSink& sink) {
        const std::uint8_t* h = s.frame.data();
        const std::uint32_t length = be24(h);
        const std::uint8_t type = h[3];
        const std::uint8_t flags = h[4];
        const std::uint32_t id = be32(h + 5) & 0x7fffffffu;
        std::span<const std::uint8_t> payload(h + kFrameHeader, length);

        if (s.in_block && (type != kContinuation || id != s.block_stream)) {
            kill(s);  // RFC 9113 §6.10: nothing may come between a block's frames
            return;
        }
        switch (type) {
            case kData: {
                if (!strip_padding(flags, payload)) return kill(s);
                data(from_client, id, payload, (flags & kEndStream) != 0, sink);
                return;
            }
            case kHeaders: {
                if (!strip_padding(flags, payload)) return kill(s);
                if (flags & kPriority) {
                    if (payload.size() < 5) return kill(s);
                    payload = payload.subspan(5);
                }
                begin_block(s, id, false, (flags & kEndStream) != 0);
                return block_fragment(from_client, s, payload, (flags & kEndHeaders) != 0, sink);
            }
            case kPushPromise: {
                if (!strip_padding(flags, payload) || payload.size() < 4) return kill(s);
                begin_block(s, id, true, false);
                return block_fragment(from_client, s, payload.subspan(4), (flags & kEndHeaders) != 0, sink);
            }
            case kContinuation:
                if (!s.in_block) return kill(s);
                return block_fragment(from_client, s, payload, (flags & kEndHeaders) != 0, sink);
            case kSettings:
                if (flags & kAck) return;
                for (std::size_t i = 0; i + 6 <= payload.size(); i += 6) {
                    const std::uint16_t key = static_cast<std::uint16_t>((payload[i] << 8) | payload[i + 1]);
                    const std::uint32_t value = be32(payload.data() + i + 2);
                    // The sender of SETTINGS decodes what the other side encodes.
                    if (key == kSettingsHeaderTableSize) raise_table(side(!from_client), value);
                }
                return;
            case kRstStream:
                if (Stream* st = find(id)) {
                    ctr.add(StreamEvent::DohStreamsReset);
                    release(*st);
                }
                return;
            default:
                return;  // PRIORITY, PING, GOAWAY, WINDOW_UPDATE, extensions
        }
    }

    static bool strip_padding(std::uint8_t flags, std::span<const std::uint8_t>& payload) {
        if (!(flags & kPadded)) return true;
        if (payload.empty()) return false;
        const std::size_t pad = payload[0];
        if (pad + 1 > payload.size()) return false;
        payload = payload.subspan(1, payload.size() - 1 - pad);
        return true;
    }

    void raise_table(Side& s, std::uint32_t value) {
        const std::size_t limit = std::min<std::size_t>(value, limits.max_table_bytes);
        if (limit <= s.table_limit) return;
        s.table_limit = limit;
        if (s.hd && nghttp2_hd_inflate_change_table_size(s.hd, limit) != 0) kill(s);
    }

    void begin_block(Side& s, std::uint32_t id, bool push, bool end_stream) {
        s.in_block = true;
        s.block_push = push;
        s.block_stream = id;
        s.block_end_stream = end_stream;
        s.block.clear();
    }

    void block_fragment(bool from_client, Side& s, std::span<const std::uint8_t> fragment, bool end, DohSink& sink) {
        if (s.block.size() + fragment.size() > limits.max_header_block) return kill(s);
        s.block.insert(s.block.end(), fragment.begin(), fragment.end());
        if (!end) return;
        s.in_block = false;
        headers(from_client, s, sink);
    }

    // Inflates the whole block (the dynamic table must see it even when the
    // stream does not interest us) and hands the fields to the stream.
    void headers(bool from_client, Side& s, DohSink& sink) {
        if (!s.hd) {
            if (nghttp2_hd_inflate_new(&s.hd) != 0) return kill(s);
            if (s.table_limit != 4096 && nghttp2_hd_inflate_change_table_size(s.hd, s.table_limit) != 0)
                return kill(s);
        }
        Stream* st = nullptr;
        bool first_request_block = false;
        if (!s.block_push) {
            st = find(s.block_stream);
            if (from_client && !st && s.block_stream > highest_client_stream && (s.block_stream & 1u)) {
                highest_client_stream = s.block_stream;
                st = &open(s.block_stream);
                first_request_block = true;
            }
        }
        const bool request = from_client && st && first_request_block;
        const bool response = !from_client && st && !st->response_headers;
        std::uint8_t* in = s.block.data();
        std::size_t left = s.block.size();
        for (;;) {
            nghttp2_nv nv{};
            int inflate_flags = 0;
            const auto rv = nghttp2_hd_inflate_hd2(s.hd, &nv, &inflate_flags, in, left, 1);
            if (rv < 0) {
                if (st && st->dns) undecodable(*st);
                return kill(s);
            }
            in += rv;
            left -= static_cast<std::size_t>(rv);
            if (inflate_flags & NGHTTP2_HD_INFLATE_EMIT) {
                const std::string_view name(reinterpret_cast<const char*>(nv.name), nv.namelen);
                const std::string_view value(reinterpret_cast<const char*>(nv.value), nv.valuelen);
                if (request) request_field(*st, name, value);
                if (response) response_field(*st, name, value);
            }
            if (inflate_flags & NGHTTP2_HD_INFLATE_FINAL) {
                nghttp2_hd_inflate_end_headers(s.hd);
                break;
            }
            if ((inflate_flags & NGHTTP2_HD_INFLATE_EMIT) == 0 && left == 0) break;
        }
        s.block.clear();
        if (!st) return;
        if (request) start_request(*st, sink);
        if (response) {
            st->response_headers = true;
            st->response_ok = st->status == 200 && st->response_ok;
            if (st->dns && !st->response_ok) ctr.add(StreamEvent::DohStreamsNotDns);
        }
        if (s.block_end_stream) end_of_stream(from_client, *st, sink);
    }

    void request_field(Stream& st, std::string_view name, std::string_view value) {
        if (name == ":method") {
            st.method = value == "GET" ? Stream::Method::Get : value == "POST" ? Stream::Method::Post : Stream::Method::Other;
        } else if (name == ":path") {
            st.path.assign(value.substr(0, kMaxPath + 1));
        } else if (name == "content-type") {
            st.content_type_dns = is_dns_content_type(value);
        }
    }

    void response_field(Stream& st, std::string_view name, std::string_view value) {
        if (name == ":status") {
            // Three digits (RFC 9110 §15); anything else is not a status we accept.
            st.status = -1;
            if (value.size() == 3 && std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
                st.status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
            st.response_ok = true;
        } else if (name == "content-type" && !is_dns_content_type(value)) {
            st.response_ok = false;
            st.status = -1;
        }
    }

    void start_request(Stream& st, DohSink& sink) {
        st.request_headers = true;
        if (st.method == Stream::Method::Get) {
            std::string_view param;
            if (st.path.size() > kMaxPath) {
                st.dns = true;  // too long to be a DNS query we keep
                undecodable(st);
                st.dns = false;
                return;
            }
            if (!query_parameter(st.path, "dns", param)) {
                ctr.add(StreamEvent::DohStreamsNotDns);
                return;
            }
            st.dns = true;
            if (!decode_base64url(param, scratch) || scratch.empty() || scratch.size() > kMaxBody) {
                undecodable(st);
                st.dns = false;
                return;
            }
            st.query_sent = true;
            sink.on_doh_message(true, st.id, scratch);
        } else if (st.method == Stream::Method::Post && st.content_type_dns) {
            st.dns = true;
        } else {
            ctr.add(StreamEvent::DohStreamsNotDns);
        }
    }

    void data(bool from_client, std::uint32_t id, std::span<const std::uint8_t> payload, bool end, DohSink& sink) {
        Stream* st = find(id);
        if (!st) return;
        if (from_client) {
            if (st->dns && !st->query_sent && st->method == Stream::Method::Post) {
                if (st->request_body.size() + payload.size() > kMaxBody) {
                    undecodable(*st);
                    st->dns = false;
                    st->request_body.clear();
                } else {
                    st->request_body.insert(st->request_body.end(), payload.begin(), payload.end());
                }
            }
        } else if (st->dns && st->response_ok) {
            if (st->response_body.size() + payload.size() > kMaxBody) {
                undecodable(*st);
                st->response_ok = false;
                st->response_body.clear();
            } else {
                st->response_body.insert(st->response_body.end(), payload.begin(), payload.end());
            }
        }
        if (end) end_of_stream(from_client, *st, sink);
    }

    void end_of_stream(bool from_client, Stream& st, DohSink& sink) {
        if (from_client) {
            if (st.request_done) return;
            st.request_done = true;
            if (st.dns && !st.query_sent && st.method == Stream::Method::Post) {
                if (st.request_body.empty()) {
                    undecodable(st);
                    st.dns = false;
                } else {
                    st.query_sent = true;
                            sink.on_doh_message(true, st.id, st.request_body);
                }
            }
        } else {
            if (st.response_done) return;
            st.response_done = true;
            if (st.dns && st.response_ok) {
                if (st.response_body.empty()) {
                    undecodable(st);
                } else {
                            sink.on_doh_message(false, st.id, st.response_body);
                }
            }
        }
        maybe_release(st);
    }
};

Http2Session::Http2Session(const Http2Limits& limits, StreamCounters& counters)
    : impl_(std::make_unique<Impl>(limits, counters)) {}

Http2Session::~Http2Session() = default;

void Http2Session::feed(bool from_client, std::span<const std::uint8_t> data, DohSink& sink) {
    impl_->feed(from_client, data, sink);
}

void Http2Session::gap(bool from_client) { impl_->kill(impl_->side(from_client)); }

void Http2Session::finish() {
    for (auto& st : impl_->streams) {
        if (!st.used) continue;
        const bool waiting = st.dns && (!st.query_sent || (!st.response_done && !impl_->sides[0].dead));
        if (waiting) impl_->undecodable(st);
        impl_->release(st);
    }
}

bool Http2Session::dead(bool from_client) const { return impl_->sides[from_client ? 1 : 0].dead; }

std::size_t Http2Session::memory() const {
    std::size_t n = sizeof(Impl) + impl_->scratch.capacity();
    for (const auto& s : impl_->sides) n += s.frame.capacity() + s.block.capacity() + (s.hd ? s.table_limit + 1024 : 0);
    for (const auto& st : impl_->streams)
        n += sizeof(Stream) + st.request_body.capacity() + st.response_body.capacity() + st.path.capacity();
    return n;
}

std::size_t Http2Session::open_streams() const {
    return static_cast<std::size_t>(
        std::count_if(impl_->streams.begin(), impl_->streams.end(), [](const Stream& s) { return s.used; }));
}

}  // namespace sidetap::streams
