// SocketWriter: the FrameWriter of socket outputs — a bidirectional Frame
// Streams connection over a Connector (unix://, tcp://, tls://).
//
// Contract:
//  - open(): Connector::connect(connect_timeout), then READY (content type
//    protobuf:dnstap.Dnstap) → ACCEPT (a control frame of at most 512 bytes,
//    read within what is left of connect_timeout; it must list the dnstap
//    content type, else the error is "collector accepted content types
//    [a, b] but not protobuf:dnstap.Dnstap") → START. Every open is a new
//    connection with a fresh handshake. On failure: false + one-line error.
//    With settings.handshake false (?handshake=none) the stream is
//    unidirectional, as Frame Streams allows for receivers that do not
//    answer: open() writes START (with the content type) at once, close()
//    writes STOP and drops the connection without waiting for FINISH (its
//    frames count as unconfirmed unless a Unix socket's collector is known
//    to have read them).
//  - write(): Connection::write_all() of the framed batch.
//  - close(): on a healthy connection, STOP (its write bounded by
//    finish_timeout too), then waits at most finish_timeout for FINISH; then
//    drops the connection. After a failed
//    write or a peer that went away, it just drops the connection (no STOP
//    into a dead socket, no FINISH wait).
//  - broken(): Connection::peer_closed() (checked between batches).
//  - Frame Streams has no acknowledgements. Only FINISH, the answer to STOP,
//    says that the collector read everything; a collector that dies (or
//    closes) mid-stream may have accepted frames into its socket buffer
//    without ever reading them, and nobody can tell which. So every
//    connection that ends without FINISH adds to unconfirmed_frames() the
//    frames written on it since the collector was last known to have read
//    everything: on Unix sockets the kernel tells when the collector has
//    caught up (Connection::caught_up(), asked before every batch, when
//    idle and before STOP), so the count starts there; on TCP and TLS
//    nothing tells, and every frame of the connection counts. It is an
//    upper bound of what was lost.
//  - Relies on the transport's write timeout (connect_timeout by default):
//    a batch written to a collector that never reads fails after it, which
//    is what bounds close() with a stuck collector.
#pragma once

#include "framestream/codec.h"
#include "output/queued_output.h"
#include "output/transport.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sidetap::output {

class SocketWriter final : public FrameWriter {
public:
    // Uses settings.connect_timeout and settings.finish_timeout.
    SocketWriter(std::unique_ptr<Connector> connector, const QueueSettings& settings);
    ~SocketWriter() override;
    SocketWriter(const SocketWriter&) = delete;
    SocketWriter& operator=(const SocketWriter&) = delete;

    bool open(std::string& error) override;
    bool write(std::span<const std::span<const std::uint8_t>> pieces, std::string& error) override;
    bool close() override;  // always true: losses show as unconfirmed_frames()
    bool broken() override;
    [[nodiscard]] std::uint64_t unconfirmed_frames() const override { return unconfirmed_; }
    [[nodiscard]] const std::string& describe() const override { return connector_->describe(); }

private:
    // Reads one control frame (escape, length ≤ 512, payload) within `timeout`.
    std::optional<framestream::ControlFrame> read_control(std::chrono::milliseconds timeout, std::string& error);
    // Moves the confirmed mark up when the collector has caught up (Unix).
    void note_reads();
    // The connection is over: frames not confirmed become unconfirmed_.
    void end_connection(bool finished);

    std::unique_ptr<Connector> connector_;
    std::chrono::milliseconds connect_timeout_;
    std::chrono::milliseconds finish_timeout_;
    bool handshake_ = true;
    std::unique_ptr<Connection> connection_;
    bool healthy_ = false;

    // What this connection carried, for unconfirmed_frames().
    bool tracks_reads_ = false;       // the transport tells when the collector caught up
    std::uint64_t data_frames_ = 0;   // written on this connection
    std::uint64_t read_frames_ = 0;   // of which known to have been read
    std::uint64_t unconfirmed_ = 0;    // over all connections
};

// A QueuedOutput over a SocketWriter: what the CLI builds for unix://,
// tcp:// and tls:// destinations. Never fails at construction: a collector
// that is not there yet is retried with backoff.
std::unique_ptr<Output> make_socket_output(std::unique_ptr<Connector> connector, const QueueSettings& settings);

}  // namespace sidetap::output
