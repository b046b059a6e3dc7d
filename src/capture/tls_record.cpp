#include "capture/tls_record.h"

#include <cstring>

namespace sidetap::capture {

bool parse_tls_record(std::span<const std::uint8_t> bytes, StreamChunk& out) {
    sidetap_tls_record r;
    if (bytes.size() < sizeof r) return false;
    std::memcpy(&r, bytes.data(), sizeof r);
    if (r.len > SIDETAP_TLS_CHUNK || bytes.size() - sizeof r < r.len) return false;
    if (r.kind != SIDETAP_TLS_DATA && r.kind != SIDETAP_TLS_CLOSE) return false;
    if (r.direction > SIDETAP_TLS_WRITE || r.attribution > SIDETAP_TLS_ATTR_OBJECT) return false;
    const auto& t = r.tuple;
    if (t.family != 0 && t.family != 4 && t.family != 6) return false;
    out.kind = r.kind == SIDETAP_TLS_DATA ? StreamChunk::Kind::Data : StreamChunk::Kind::Close;
    out.pid = r.tgid;
    out.object = r.object;
    out.generation = r.generation;
    out.outgoing = r.direction == SIDETAP_TLS_WRITE;
    out.from_start = (r.flags & SIDETAP_TLS_FLAG_HANDSHAKE) != 0;
    out.family = t.family;
    std::memcpy(out.local.data(), t.local, 16);
    std::memcpy(out.remote.data(), t.remote, 16);
    out.local_port = t.local_port;
    out.remote_port = t.remote_port;
    switch (r.attribution) {
        case SIDETAP_TLS_ATTR_IN_CALL: out.attribution = StreamChunk::Attribution::InCall; break;
        case SIDETAP_TLS_ATTR_FD: out.attribution = StreamChunk::Attribution::Fd; break;
        case SIDETAP_TLS_ATTR_LAST_RECV: out.attribution = StreamChunk::Attribution::LastRecv; break;
        case SIDETAP_TLS_ATTR_OBJECT: out.attribution = StreamChunk::Attribution::Object; break;
        default: out.attribution = StreamChunk::Attribution::None; break;
    }
    out.offset = r.offset;
    out.timestamp_ns = r.ktime_ns;
    out.data = bytes.subspan(sizeof r, r.len);
    return true;
}

}  // namespace sidetap::capture
