#include "output/socket_writer.h"

#include "framestream/codec.h"

#include <algorithm>
#include <array>

namespace sidetap::output {

namespace {
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

milliseconds remaining(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    return std::max(left, milliseconds(1));
}

std::vector<std::uint8_t> control_bytes(framestream::ControlType type, bool with_content_type) {
    std::vector<std::uint8_t> out;
    const std::string_view content_type[] = {framestream::kDnstapContentType};
    if (with_content_type) {
        framestream::append_control(out, type, content_type);
    } else {
        framestream::append_control(out, type);
    }
    return out;
}
}  // namespace

SocketWriter::SocketWriter(std::unique_ptr<Connector> connector, const QueueSettings& settings)
    : connector_(std::move(connector)),
      connect_timeout_(settings.connect_timeout),
      finish_timeout_(settings.finish_timeout),
      handshake_(settings.handshake) {}

SocketWriter::~SocketWriter() { close(); }

std::optional<framestream::ControlFrame> SocketWriter::read_control(milliseconds timeout, std::string& error) {
    const auto deadline = Clock::now() + timeout;
    std::array<std::uint8_t, 8> header{};
    if (!connection_->read_exact(header, timeout)) {
        error = connection_->error();
        return std::nullopt;
    }
    if (framestream::get_be32(header.data()) != 0) {
        error = "expected a control frame, got a data frame";
        return std::nullopt;
    }
    const std::uint32_t length = framestream::get_be32(header.data() + 4);
    if (length > framestream::kControlFrameMax) {
        error = "control frame of " + std::to_string(length) + " bytes exceeds 512";
        return std::nullopt;
    }
    std::array<std::uint8_t, framestream::kControlFrameMax> payload{};
    if (length > 0 && !connection_->read_exact(std::span(payload.data(), length), remaining(deadline))) {
        error = connection_->error();
        return std::nullopt;
    }
    return framestream::decode_control(std::span<const std::uint8_t>(payload.data(), length), error);
}

bool SocketWriter::open(std::string& error) {
    if (connection_) return true;
    const auto deadline = Clock::now() + connect_timeout_;
    auto connection = connector_->connect(connect_timeout_, error);
    if (!connection) {
        if (error.empty()) error = "connect to " + describe() + " failed";
        return false;
    }
    connection_ = std::move(connection);
    healthy_ = false;
    auto fail = [&](const std::string& what) {
        error = what;
        connection_.reset();
        return false;
    };
    if (!handshake_) {
        if (!connection_->write_all(control_bytes(framestream::ControlType::Start, true)))
            return fail("sending START to " + describe() + ": " + connection_->error());
        healthy_ = true;
        tracks_reads_ = connection_->caught_up().has_value();
        data_frames_ = read_frames_ = 0;
        return true;
    }
    if (!connection_->write_all(control_bytes(framestream::ControlType::Ready, true)))
        return fail("sending READY to " + describe() + ": " + connection_->error());
    std::string reason;
    const auto accept = read_control(remaining(deadline), reason);
    if (!accept) return fail("handshake with " + describe() + ": waiting for ACCEPT: " + reason);
    if (accept->type != framestream::ControlType::Accept)
        return fail("handshake with " + describe() + ": expected ACCEPT, got " +
                    std::string(framestream::to_string(accept->type)));
    const auto& types = accept->content_types;
    if (std::find(types.begin(), types.end(), framestream::kDnstapContentType) == types.end()) {
        std::string list;
        for (const auto& type : types) list += (list.empty() ? "" : ", ") + type;
        return fail("collector accepted content types [" + list + "] but not " +
                    std::string(framestream::kDnstapContentType));
    }
    if (!connection_->write_all(control_bytes(framestream::ControlType::Start, true)))
        return fail("sending START to " + describe() + ": " + connection_->error());
    healthy_ = true;
    tracks_reads_ = connection_->caught_up().has_value();
    data_frames_ = read_frames_ = 0;
    return true;
}

bool SocketWriter::write(std::span<const std::span<const std::uint8_t>> pieces, std::string& error) {
    if (!connection_) {
        error = describe() + " is not connected";
        return false;
    }
    note_reads();
    if (!connection_->writev_all(pieces)) {
        error = "write to " + describe() + ": " + connection_->error();
        healthy_ = false;
        return false;
    }
    for (const auto& framed : pieces)
        for (std::size_t pos = 0; pos + 4 <= framed.size(); pos += 4 + framestream::get_be32(framed.data() + pos))
            ++data_frames_;
    return true;
}

void SocketWriter::note_reads() {
    if (!tracks_reads_ || !connection_ || read_frames_ == data_frames_) return;
    const auto all_read = connection_->caught_up();
    // Asked after the count: a peer that is gone had its unread data freed,
    // which must not look like "read".
    if (all_read && *all_read && !connection_->peer_closed()) read_frames_ = data_frames_;
}

void SocketWriter::end_connection(bool finished) {
    if (!finished) unconfirmed_ += data_frames_ - read_frames_;
    data_frames_ = read_frames_ = 0;
}

bool SocketWriter::close() {
    if (!connection_) return true;
    bool finished = false;
    if (healthy_) {
        note_reads();
        // STOP must not wait longer than FINISH would.
        connection_->set_write_timeout(finish_timeout_);
        if (connection_->write_all(control_bytes(framestream::ControlType::Stop, false)) && handshake_) {
            // FINISH is the only proof that the collector read everything.
            // What it says beyond that does not matter any more.
            std::string ignored;
            const auto answer = read_control(finish_timeout_, ignored);
            finished = answer && answer->type == framestream::ControlType::Finish;
        }
    }
    end_connection(finished);
    healthy_ = false;
    connection_.reset();
    return true;
}

bool SocketWriter::broken() {
    if (!connection_) return false;
    note_reads();
    if (connection_->peer_closed()) {
        healthy_ = false;
        return true;
    }
    return false;
}

std::unique_ptr<Output> make_socket_output(std::unique_ptr<Connector> connector, const QueueSettings& settings) {
    auto writer = std::make_unique<SocketWriter>(std::move(connector), settings);
    return std::make_unique<QueuedOutput>(std::move(writer), settings);
}

}  // namespace sidetap::output
