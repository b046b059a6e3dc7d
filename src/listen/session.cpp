#include "listen/session.h"

#include "framestream/codec.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <vector>

namespace sidetap::listen {

namespace fs = framestream;

const char* to_string(SessionEnd end) {
    switch (end) {
    case SessionEnd::Finished: return "finished";
    case SessionEnd::ClosedWithoutStop: return "closed_without_stop";
    case SessionEnd::Reset: return "reset";
    case SessionEnd::Truncated: return "truncated";
    case SessionEnd::TooLarge: return "too_large";
    case SessionEnd::ProtocolError: return "protocol_error";
    case SessionEnd::Shutdown: return "shutdown";
    case SessionEnd::IdleTimeout: return "idle_timeout";
    case SessionEnd::OutOfMemory: return "out_of_memory";
    case SessionEnd::WrongContentType: return "wrong_content_type";
    case SessionEnd::HandshakeFailed: return "handshake_failed";
    case SessionEnd::HandshakeTimeout: return "handshake_timeout";
    case SessionEnd::RefusedUnidirectional: return "unidirectional";
    case SessionEnd::ClientCertificate: return "client_certificate";
    }
    return "?";
}

namespace {

enum class Handshake { Ok, Garbage, Timeout, Eof, Cancelled, IoError };

// Reads one control frame (escape, length, payload) during the handshake.
// Returns Ok with `control` and the raw bytes in `raw`, or sets `why`.
Handshake read_control(Stream& stream, Clock::time_point deadline, std::vector<std::uint8_t>& raw,
                       fs::ControlFrame& control, std::string& why) {
    auto io = [&](Io r) {
        switch (r) {
        case Io::Timeout: why = "timed out"; return Handshake::Timeout;
        case Io::Eof: why = "connection closed"; return Handshake::Eof;
        case Io::Cancelled: why = "shutdown"; return Handshake::Cancelled;
        default: why = stream.error(); return Handshake::IoError;
        }
    };
    raw.assign(8, 0);
    if (const Io r = read_exact(stream, raw, deadline); r != Io::Ok) return io(r);
    const std::uint32_t escape = fs::get_be32(raw.data());
    const std::uint32_t length = fs::get_be32(raw.data() + 4);
    if (escape != 0) {
        why = "not a Frame Streams control frame (first bytes " + std::to_string(escape) + ")";
        return Handshake::Garbage;
    }
    // Checked before anything is sized from it.
    if (length < 4 || length > fs::kControlFrameMax) {
        why = "bad control frame length " + std::to_string(length);
        return Handshake::Garbage;
    }
    raw.resize(8 + length);
    if (const Io r = read_exact(stream, {raw.data() + 8, length}, deadline); r != Io::Ok) return io(r);
    auto decoded = fs::decode_control({raw.data() + 8, length}, why);
    if (!decoded) {
        why = "bad control frame: " + why;
        return Handshake::Garbage;
    }
    control = std::move(*decoded);
    return Handshake::Ok;
}

bool offers_dnstap(const fs::ControlFrame& control) {
    return std::find(control.content_types.begin(), control.content_types.end(), fs::kDnstapContentType) !=
           control.content_types.end();
}

std::string quoted_list(const std::vector<std::string>& items) {
    if (items.empty()) return "no content type";
    std::string out;
    for (const auto& s : items) {
        if (!out.empty()) out += ", ";
        out += "\"";
        for (const char c : s) out += (c >= 0x20 && c < 0x7f) ? c : '?';
        out += "\"";
    }
    return out;
}

}  // namespace

SessionResult run_session(Stream& stream, const SessionOptions& options, SessionHost& host,
                          fs::BufferBudget* budget) {
    SessionResult result;
    auto end = [&](SessionEnd e, std::string detail) {
        result.end = e;
        result.detail = std::move(detail);
        return result;
    };
    auto handshake_failed = [&](Handshake h, const std::string& why) {
        if (h == Handshake::Cancelled) return end(SessionEnd::Shutdown, "shutdown during handshake");
        if (h == Handshake::Timeout)
            return end(SessionEnd::HandshakeTimeout, "handshake timed out after " +
                                                         std::to_string(options.handshake_timeout.count()) +
                                                         " ms (--handshake-timeout)");
        return end(SessionEnd::HandshakeFailed, "handshake failed: " + why);
    };

    // --- handshake -----------------------------------------------------
    const auto deadline = Clock::now() + options.handshake_timeout;
    if (const Io r = stream.handshake(deadline); r != Io::Ok) {
        if (stream.rejected_peer_certificate())
            return end(SessionEnd::ClientCertificate, "refused: " + stream.error());
        return handshake_failed(r == Io::Timeout     ? Handshake::Timeout
                                : r == Io::Cancelled ? Handshake::Cancelled
                                                     : Handshake::IoError,
                                r == Io::Eof ? "connection closed during the TLS handshake" : stream.error());
    }
    std::vector<std::uint8_t> raw;
    fs::ControlFrame control;
    std::string why;
    if (const auto h = read_control(stream, deadline, raw, control, why); h != Handshake::Ok)
        return handshake_failed(h, why);

    std::vector<std::uint8_t> prefix;  // replayed to the Reader: the START frame
    if (control.type == fs::ControlType::Ready) {
        if (!offers_dnstap(control))
            return end(SessionEnd::WrongContentType, "refused: READY offers " + quoted_list(control.content_types) +
                                                         ", not \"" + std::string(fs::kDnstapContentType) +
                                                         "\" (no ACCEPT sent)");
        std::vector<std::uint8_t> accept;
        const std::string_view types[] = {fs::kDnstapContentType};
        fs::append_control(accept, fs::ControlType::Accept, types);
        if (const Io r = stream.write_all(accept, deadline); r != Io::Ok)
            return handshake_failed(r == Io::Timeout ? Handshake::Timeout : Handshake::IoError,
                                    "sending ACCEPT: " + (r == Io::Timeout ? std::string("timed out") : stream.error()));
        if (const auto h = read_control(stream, deadline, raw, control, why); h != Handshake::Ok)
            return handshake_failed(h, why + " (after ACCEPT)");
        if (control.type != fs::ControlType::Start)
            return handshake_failed(Handshake::Garbage,
                                    "expected START after ACCEPT, got " + std::string(fs::to_string(control.type)));
        if (!control.content_types.empty() && control.content_types.front() != fs::kDnstapContentType)
            return end(SessionEnd::WrongContentType, "refused: START content type " + quoted_list(control.content_types));
        result.bidirectional = true;
    } else if (control.type == fs::ControlType::Start) {
        if (!options.accept_unidirectional)
            return end(SessionEnd::RefusedUnidirectional, "refused: unidirectional writer (START without READY)");
        if (!control.content_types.empty() && control.content_types.front() != fs::kDnstapContentType)
            return end(SessionEnd::WrongContentType, "refused: START content type " + quoted_list(control.content_types));
    } else {
        return handshake_failed(Handshake::Garbage,
                                "expected READY (or START), got " + std::string(fs::to_string(control.type)));
    }
    prefix = std::move(raw);
    result.started = true;
    host.started(result.bidirectional);

    // --- data frames ---------------------------------------------------
    auto last_frame = Clock::now();
    auto idle_deadline = [&] {
        return options.idle_timeout.count() == 0 ? no_deadline() : last_frame + options.idle_timeout;
    };
    auto idle_detail = [&] {
        return "no complete frame for " + std::to_string(options.idle_timeout.count()) + " ms (--idle-timeout)";
    };
    // An idle writer costs no read buffer until it sends something.
    // (Cancelled means shutdown with nothing received: bytes already in the
    // kernel make the socket readable and are still read below.)
    switch (stream.wait_readable(idle_deadline())) {
    case Io::Cancelled: return end(SessionEnd::Shutdown, "shutdown");
    case Io::Timeout: return end(SessionEnd::IdleTimeout, idle_detail());
    default: break;
    }
    enum class IoEnd { None, Cancelled, Idle, Error } io_end = IoEnd::None;
    std::size_t prefix_pos = 0;
    fs::Reader reader(
        [&](void* buffer, std::size_t size) -> std::ptrdiff_t {
            if (prefix_pos < prefix.size()) {
                const std::size_t n = std::min(size, prefix.size() - prefix_pos);
                std::memcpy(buffer, prefix.data() + prefix_pos, n);
                prefix_pos += n;
                return static_cast<std::ptrdiff_t>(n);
            }
            if (host.stop_reading()) {
                io_end = IoEnd::Cancelled;
                errno = ECANCELED;
                return -1;
            }
            std::size_t got = 0;
            switch (stream.read_some(buffer, size, got, idle_deadline())) {
            case Io::Ok: return static_cast<std::ptrdiff_t>(got);
            case Io::Eof: return 0;
            case Io::Cancelled:
                io_end = IoEnd::Cancelled;
                errno = ECANCELED;
                return -1;
            case Io::Timeout:
                io_end = IoEnd::Idle;
                errno = ETIMEDOUT;
                return -1;
            default:
                io_end = IoEnd::Error;
                errno = EIO;
                return -1;
            }
        },
        {.max_frame_size = options.max_frame_size, .read_chunk = options.read_chunk, .budget = budget});

    std::span<const std::uint8_t> frame;
    fs::ReadStatus status;
    while ((status = reader.next(frame)) == fs::ReadStatus::Frame) {
        if (!host.deliver(frame)) return end(SessionEnd::Shutdown, "shutdown");
        ++result.frames;
        result.bytes += frame.size();
        last_frame = Clock::now();
        host.progress();
    }
    if (status == fs::ReadStatus::End) {
        if (!reader.saw_stop()) return end(SessionEnd::ClosedWithoutStop, "closed without STOP");
        if (result.bidirectional) {
            std::vector<std::uint8_t> fin;
            fs::append_control(fin, fs::ControlType::Finish);
            if (stream.write_all(fin, Clock::now() + options.handshake_timeout) != Io::Ok)
                return end(SessionEnd::Finished, "STOP (FINISH not delivered: " + stream.error() + ")");
        }
        return end(SessionEnd::Finished, "STOP");
    }
    switch (io_end) {
    case IoEnd::Cancelled: return end(SessionEnd::Shutdown, "shutdown");
    case IoEnd::Idle: return end(SessionEnd::IdleTimeout, idle_detail());
    case IoEnd::Error: return end(SessionEnd::Reset, stream.error());
    case IoEnd::None: break;
    }
    const std::string& error = reader.error();
    switch (reader.failure()) {
    case fs::ReadFailure::TooLarge: return end(SessionEnd::TooLarge, error + ": connection closed");
    case fs::ReadFailure::Truncated: return end(SessionEnd::Truncated, error);
    case fs::ReadFailure::OutOfMemory:
        return end(SessionEnd::OutOfMemory, error + " (--max-receive-memory): connection closed");
    default: return end(SessionEnd::ProtocolError, error + ": connection closed");
    }
}

}  // namespace sidetap::listen
