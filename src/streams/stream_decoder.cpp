#include "streams/stream_decoder.h"

#include "reassembly/dns_tcp_framing.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sidetap::streams {

namespace {

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr std::uint32_t kNil = 0xFFFFFFFFu;
constexpr int kRead = 0;   // bytes the process read (from its peer)
constexpr int kWrite = 1;  // bytes it wrote

struct Key {
    std::uint32_t pid = 0;
    std::uint64_t object = 0;
    std::uint64_t generation = 0;
    friend bool operator==(const Key&, const Key&) = default;
};

struct KeyHash {
    std::size_t operator()(const Key& k) const {
        std::uint64_t h = k.object * 0x9E3779B97F4A7C15ULL;
        h ^= (k.generation + 0xBF58476D1CE4E5B9ULL + (h << 6) + (h >> 2));
        h ^= (std::uint64_t{k.pid} * 0x94D049BB133111EBULL);
        return static_cast<std::size_t>(h ^ (h >> 31));
    }
};

enum class State : std::uint8_t { Undecided, Dot, Doh, Http1, NotDns };

enum class Verdict : std::uint8_t { NeedMore, Dot, H2Client, H2Server, Http1 };

// What the first bytes of a direction say (see the header).
Verdict first_bytes(std::span<const std::uint8_t> b) {
    if (b.size() >= 2 && b[0] == 0 && b[1] == 0) return Verdict::H2Server;
    const std::size_t n = std::min(b.size(), kPreface.size());
    if (std::memcmp(b.data(), kPreface.data(), n) == 0) return b.size() >= kPreface.size() ? Verdict::H2Client : Verdict::NeedMore;
    bool http1_prefix = false;
    for (std::string_view method : {"GET ", "POST", "HEAD", "PUT "}) {
        const std::size_t m = std::min(b.size(), method.size());
        if (std::memcmp(b.data(), method.data(), m) == 0) {
            if (b.size() >= method.size()) return Verdict::Http1;
            http1_prefix = true;
        }
    }
    if (http1_prefix || b.size() < 2) return Verdict::NeedMore;
    return Verdict::Dot;
}

decode::IpAddress address(std::uint8_t family, const std::array<std::uint8_t, 16>& bytes) {
    decode::IpAddress a;
    a.family = family;
    a.bytes = bytes;
    if (family == 4) std::fill(a.bytes.begin() + 4, a.bytes.end(), 0);
    return a;
}

bool v4_mapped(const decode::IpAddress& a) {
    static constexpr std::uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return a.family == 6 && std::memcmp(a.bytes.data(), kPrefix, 12) == 0;
}

decode::IpAddress unmapped(const decode::IpAddress& a) {
    decode::IpAddress v4;
    v4.family = 4;
    std::memcpy(v4.bytes.data(), a.bytes.data() + 12, 4);
    return v4;
}

}  // namespace

struct StreamDecoder::Impl {
    struct Dir {
        std::uint64_t next = 0;            // offset expected next
        std::vector<std::uint8_t> prelude; // first bytes while the protocol is undecided
        reassembly::DnsStreamFramer framer;
    };
    struct Conn {
        Key key;
        bool used = false;
        State state = State::Undecided;
        int process_client = -1;  // -1: not known yet; 1: the probed process is the TLS client
        bool attributed = false;
        bool from_start = false;  // the handshake was seen before the first chunk
        decode::IpAddress local;
        decode::IpAddress remote;
        std::uint16_t local_port = 0;
        std::uint16_t remote_port = 0;
        std::array<Dir, 2> dir;
        std::unique_ptr<Http2Session> h2;
        std::uint64_t messages = 0;
        std::uint64_t last_ns = 0;
        std::size_t memory = 0;
        std::uint32_t lru_prev = kNil;
        std::uint32_t lru_next = kNil;
        std::uint32_t free_next = kNil;
    };

    StreamConfig cfg;
    StreamCounters& ctr;
    std::deque<Conn> conns;  // references stay valid as it grows
    std::unordered_map<Key, std::uint32_t, KeyHash> index;
    std::uint32_t free_head = kNil;
    std::uint32_t lru_head = kNil;  // least recently active
    std::uint32_t lru_tail = kNil;
    std::size_t active = 0;
    std::size_t total_memory = 0;
    // The last connections closed (process, object), to count objects reused
    // for new connections (servers free a TLS object and allocate the next at
    // the same address): a fixed ring, searched when a connection opens.
    std::array<std::pair<std::uint32_t, std::uint64_t>, 256> closed{};
    std::size_t closed_next = 0;

    Impl(const StreamConfig& c, StreamCounters& counters) : cfg(c), ctr(counters) {
        if (cfg.max_connections == 0) cfg.max_connections = 1;
        index.reserve(cfg.max_connections);
    }

    // ------------------------------------------------------------ table

    void lru_unlink(std::uint32_t i) {
        Conn& c = conns[i];
        if (c.lru_prev != kNil) conns[c.lru_prev].lru_next = c.lru_next; else lru_head = c.lru_next;
        if (c.lru_next != kNil) conns[c.lru_next].lru_prev = c.lru_prev; else lru_tail = c.lru_prev;
        c.lru_prev = c.lru_next = kNil;
    }

    void lru_push(std::uint32_t i) {
        Conn& c = conns[i];
        c.lru_prev = lru_tail;
        c.lru_next = kNil;
        if (lru_tail != kNil) conns[lru_tail].lru_next = i; else lru_head = i;
        lru_tail = i;
    }

    std::uint32_t open(const Key& key, StreamMessageSink& sink) {
        if (active >= cfg.max_connections && lru_head != kNil) end(lru_head, StreamEvent::ConnectionsEvicted, sink);
        std::uint32_t i;
        if (free_head != kNil) {
            i = free_head;
            free_head = conns[i].free_next;
        } else {
            i = static_cast<std::uint32_t>(conns.size());
            conns.emplace_back();
        }
        Conn& c = conns[i];
        c.key = key;
        c.used = true;
        c.state = State::Undecided;
        c.process_client = -1;
        c.attributed = false;
        c.messages = 0;
        c.memory = 0;
        for (auto& d : c.dir) {
            d.next = 0;
            d.prelude.clear();
        }
        index.emplace(key, i);
        ++active;
        lru_push(i);
        ctr.add(StreamEvent::Connections);
        for (const auto& [pid, object] : closed)
            if (object == key.object && pid == key.pid && object != 0) {
                ctr.add(StreamEvent::ObjectReuses);
                break;
            }
        return i;
    }

    // Ends a connection: what was unfinished is counted; buffers are freed
    // (a slot's next connection grows its own).
    void end(std::uint32_t i, StreamEvent why, StreamMessageSink&) {
        Conn& c = conns[i];
        if (c.state == State::Dot) {
            for (auto& d : c.dir) ctr.add(StreamEvent::PartialAtClose, d.framer.pending_bytes());
        } else if (c.state == State::Doh && c.h2) {
            c.h2->finish();
        }
        ctr.add(why);
        if (why == StreamEvent::ConnectionsClosed) {
            closed[closed_next] = {c.key.pid, c.key.object};
            closed_next = (closed_next + 1) % closed.size();
        }
        for (auto& d : c.dir) {
            d.framer.release();
            std::vector<std::uint8_t>().swap(d.prelude);
        }
        c.h2.reset();
        total_memory -= std::min(total_memory, c.memory);
        c.memory = 0;
        index.erase(c.key);
        lru_unlink(i);
        c.used = false;
        c.free_next = free_head;
        free_head = i;
        --active;
    }

    void account(std::uint32_t i, StreamMessageSink& sink) {
        Conn& c = conns[i];
        std::size_t m = sizeof(Conn);
        for (const auto& d : c.dir) m += d.prelude.capacity() + d.framer.capacity();
        if (c.h2) m += c.h2->memory();
        total_memory = total_memory - std::min(total_memory, c.memory) + m;
        c.memory = m;
        while (total_memory > cfg.max_total_bytes && lru_head != kNil && lru_head != i)
            end(lru_head, StreamEvent::ConnectionsEvicted, sink);
    }

    // ------------------------------------------------------------ messages

    void emit(Conn& c, bool from_client, std::uint32_t stream_id, std::span<const std::uint8_t> wire,
              std::uint64_t ts, StreamMessageSink& sink) {
        ++c.messages;
        if (!c.attributed) {
            ctr.add(StreamEvent::UnattributedMessages);
            return;
        }
        StreamMessage m;
        m.protocol = c.state == State::Doh ? Protocol::Doh : Protocol::Dot;
        m.process_is_client = c.process_client == 1;
        if (m.process_is_client) {
            m.client = c.local;
            m.client_port = c.local_port;
            m.server = c.remote;
            m.server_port = c.remote_port;
        } else {
            m.client = c.remote;
            m.client_port = c.remote_port;
            m.server = c.local;
            m.server_port = c.local_port;
        }
        if (v4_mapped(m.client) && v4_mapped(m.server)) {
            m.client = unmapped(m.client);
            m.server = unmapped(m.server);
        }
        m.from_client = from_client;
        m.stream_id = stream_id;
        m.timestamp_ns = ts;
        m.wire = wire;
        ctr.add(m.protocol == Protocol::Dot ? StreamEvent::DotMessages : StreamEvent::DohMessages);
        sink.on_stream_message(m);
    }

    struct DohAdapter final : DohSink {
        Impl& impl;
        Conn& c;
        std::uint64_t ts;
        StreamMessageSink& sink;
        DohAdapter(Impl& i, Conn& conn, std::uint64_t t, StreamMessageSink& s) : impl(i), c(conn), ts(t), sink(s) {}
        void on_doh_message(bool from_client, std::uint32_t stream_id, std::span<const std::uint8_t> wire) override {
            impl.emit(c, from_client, stream_id, wire, ts, sink);
        }
    };

    void dot(Conn& c, int d, std::span<const std::uint8_t> data, std::uint64_t ts, StreamMessageSink& sink) {
        auto& framer = c.dir[d].framer;
        const auto skipped = framer.counts().resync_skipped;
        framer.push(data, [&](std::span<const std::uint8_t> wire) {
            if (c.process_client < 0) {
                // The first message tells who is the client: a query read,
                // or a response written, makes the process the server.
                const bool response = wire.size() > 2 && (wire[2] & 0x80) != 0;
                c.process_client = (d == kRead) == response ? 1 : 0;
            }
            const bool from_client = (d == kWrite) == (c.process_client == 1);
            emit(c, from_client, 0, wire, ts, sink);
        });
        ctr.add(StreamEvent::ResyncSkippedBytes, framer.counts().resync_skipped - skipped);
        if (framer.not_dns() && c.messages == 0 && c.state == State::Dot) {
            c.state = State::NotDns;
            ctr.add(StreamEvent::NotDnsConnections);
        }
    }

    void doh(Conn& c, int d, std::span<const std::uint8_t> data, std::uint64_t ts, StreamMessageSink& sink) {
        DohAdapter adapter(*this, c, ts, sink);
        const bool from_client = (d == kWrite) == (c.process_client == 1);
        c.h2->feed(from_client, data, adapter);
    }

    void decide(Conn& c, int d, Verdict v, bool from_start) {
        switch (v) {
            case Verdict::H2Client:
            case Verdict::H2Server: {
                const bool client_is_d = v == Verdict::H2Client;
                // The side that sent the preface is the client.
                c.process_client = (d == kWrite) == client_is_d ? 1 : 0;
                c.state = State::Doh;
                c.h2 = std::make_unique<Http2Session>(cfg.http2, ctr);
                ctr.add(StreamEvent::DohConnections);
                break;
            }
            case Verdict::Http1:
                c.state = State::Http1;
                ctr.add(StreamEvent::Http1Connections);
                break;
            case Verdict::Dot:
                c.state = State::Dot;
                // Trusted when the handshake was seen (the streams start at
                // a boundary); otherwise the probes may have come in the
                // middle of the connection: the first message must look
                // like one (then the framing is known).
                for (auto& dir : c.dir) dir.framer.start(from_start);
                ctr.add(StreamEvent::DotConnections);
                break;
            case Verdict::NeedMore: break;
        }
    }

    void dispatch(Conn& c, int d, std::span<const std::uint8_t> data, std::uint64_t ts, StreamMessageSink& sink) {
        if (c.state == State::Undecided) {
            auto& prelude = c.dir[d].prelude;
            Verdict v;
            if (prelude.empty()) {
                v = first_bytes(data);
            } else {
                // At most the preface's 24 bytes are ever kept here.
                const std::size_t n = std::min(data.size(), kPreface.size());
                std::array<std::uint8_t, 2 * 24> joined{};
                std::copy(prelude.begin(), prelude.end(), joined.begin());
                std::copy(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n), joined.begin() + prelude.size());
                v = first_bytes(std::span(joined.data(), prelude.size() + n));
            }
            if (v == Verdict::NeedMore) {
                prelude.insert(prelude.end(), data.begin(), data.end());
                return;
            }
            decide(c, d, v, c.from_start);
            // What waited: the other direction's first bytes (earlier), then
            // this one's.
            std::vector<std::uint8_t> other;
            other.swap(c.dir[1 - d].prelude);
            std::vector<std::uint8_t> mine;
            mine.swap(prelude);
            if (!other.empty()) dispatch(c, 1 - d, other, ts, sink);
            if (!mine.empty()) dispatch(c, d, mine, ts, sink);
        }
        switch (c.state) {
            case State::Dot: dot(c, d, data, ts, sink); return;
            case State::Doh: doh(c, d, data, ts, sink); return;
            default: return;
        }
    }

    void gap(Conn& c, int d) {
        ctr.add(StreamEvent::Gaps);
        switch (c.state) {
            case State::Undecided:
                // The first bytes may be what was lost: nothing can show the
                // HTTP/2 preface any more; length-prefixed DNS can still be
                // found (resynchronising).
                c.dir[d].prelude.clear();
                decide(c, d, Verdict::Dot, false);
                c.dir[d].framer.gap();
                break;
            case State::Dot: c.dir[d].framer.gap(); break;
            case State::Doh: c.h2->gap((d == kWrite) == (c.process_client == 1)); break;
            default: break;
        }
    }

    void add(const capture::StreamChunk& chunk, std::uint64_t now, StreamMessageSink& sink) {
        ctr.add(StreamEvent::Chunks);
        ctr.add(StreamEvent::Bytes, chunk.data.size());
        const Key key{chunk.pid, chunk.object, chunk.generation};
        auto it = index.find(key);
        if (chunk.kind == capture::StreamChunk::Kind::Close) {
            if (it != index.end()) end(it->second, StreamEvent::ConnectionsClosed, sink);
            return;
        }
        if (chunk.family == 0) ctr.add(StreamEvent::UnattributedBytes, chunk.data.size());
        const bool fresh = it == index.end();
        const std::uint32_t i = fresh ? open(key, sink) : it->second;
        Conn& c = conns[i];
        if (fresh) c.from_start = chunk.from_start && chunk.offset == 0;
        if (chunk.family == 4 || chunk.family == 6) {
            c.attributed = true;
            c.local = address(chunk.family, chunk.local);
            c.remote = address(chunk.family, chunk.remote);
            c.local_port = chunk.local_port;
            c.remote_port = chunk.remote_port;
        }
        c.last_ns = now;
        lru_unlink(i);
        lru_push(i);

        const int d = chunk.outgoing ? kWrite : kRead;
        auto& dir = c.dir[d];
        std::span<const std::uint8_t> data = chunk.data;
        if (chunk.offset > dir.next) {
            gap(c, d);
        } else if (chunk.offset < dir.next) {
            // Bytes already seen (never expected from the probes): only the new ones.
            const std::uint64_t seen = dir.next - chunk.offset;
            data = seen >= data.size() ? std::span<const std::uint8_t>{} : data.subspan(seen);
        }
        dir.next = std::max(dir.next, chunk.offset + chunk.data.size());
        if (!data.empty()) dispatch(c, d, data, chunk.timestamp_ns, sink);
        // The connection handled is the most recent: never evicted for memory.
        if (c.used) account(i, sink);
    }

    void expire(std::uint64_t now, StreamMessageSink& sink) {
        while (lru_head != kNil && conns[lru_head].last_ns + cfg.idle_timeout_ns < now)
            end(lru_head, StreamEvent::ConnectionsTimedOut, sink);
    }

    void finish(StreamMessageSink& sink) {
        while (lru_head != kNil) end(lru_head, StreamEvent::ConnectionsClosed, sink);
    }
};

StreamDecoder::StreamDecoder(const StreamConfig& config)
    : counters_(kStreamEventNames), impl_(std::make_unique<Impl>(config, counters_)) {}

StreamDecoder::~StreamDecoder() = default;

void StreamDecoder::add(const capture::StreamChunk& chunk, std::uint64_t now_ns, StreamMessageSink& sink) {
    impl_->add(chunk, now_ns, sink);
}

void StreamDecoder::expire(std::uint64_t now_ns, StreamMessageSink& sink) { impl_->expire(now_ns, sink); }

void StreamDecoder::finish(StreamMessageSink& sink) { impl_->finish(sink); }

std::size_t StreamDecoder::active_connections() const { return impl_->active; }

std::size_t StreamDecoder::memory() const { return impl_->total_memory; }

}  // namespace sidetap::streams
