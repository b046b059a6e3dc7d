// One writer's Frame Streams session on an accepted stream, from the first
// byte to the close: the handshake, the data frames, STOP and FINISH. The
// Server runs one per connection (on that connection's thread); the
// listener fuzz target runs the same function over a socketpair.
//
// Protocol:
//  - TLS: the server handshake first (Stream::handshake), under
//    handshake_timeout. A client certificate that is missing or does not
//    verify (--tls-client-ca) ends as ClientCertificate.
//  - Bidirectional: READY (must offer "protobuf:dnstap.Dnstap") -> ACCEPT
//    (that content type only) -> START -> data frames -> STOP -> FINISH.
//    A READY without the dnstap content type gets no ACCEPT
//    (WrongContentType).
//  - Unidirectional: a first frame START (a dnstap file streamed into the
//    socket) is accepted when accept_unidirectional, else
//    RefusedUnidirectional. It gets no FINISH.
//  - Anything else first, or no complete handshake within
//    handshake_timeout: HandshakeFailed / HandshakeTimeout.
//  - After START: data frames go to SessionHost::deliver() one by one.
//    idle_timeout (when not zero) closes a session that completes no frame
//    for that long (IdleTimeout): an idle writer, or one trickling a frame
//    that never ends. EOF between frames without STOP keeps every frame
//    (ClosedWithoutStop); EOF inside a frame is Truncated; a read error is
//    Reset; a frame over max_frame_size is TooLarge; a bad control frame is
//    ProtocolError; a buffer the budget refuses is OutOfMemory.
//  - Shutdown (the stream's cancel descriptor, or host.stop_reading()):
//    what the kernel already holds is still read and delivered, then
//    Shutdown.
//
// Memory: nothing is buffered before the writer sends its first data byte
// after START; from then on one framestream::Reader buffer (read_chunk, more
// only while a larger frame arrives), every byte of it acquired from
// `budget` when one is given. Handshake buffers are a few hundred bytes
// (control frames are at most 512).
#pragma once

#include "framestream/reader.h"
#include "listen/stream.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace sidetap::listen {

struct SessionOptions {
    std::chrono::milliseconds handshake_timeout{5000};
    std::chrono::milliseconds idle_timeout{0};  // 0 = never
    std::size_t max_frame_size = std::size_t{1} << 20;
    std::size_t read_chunk = std::size_t{16} << 10;
    bool accept_unidirectional = true;
};

enum class SessionEnd : std::uint8_t {
    // After START
    Finished,           // STOP (FINISH sent to bidirectional writers)
    ClosedWithoutStop,
    Reset,
    Truncated,
    TooLarge,
    ProtocolError,
    Shutdown,
    IdleTimeout,
    OutOfMemory,
    // Before START (refusals)
    WrongContentType,
    HandshakeFailed,
    HandshakeTimeout,
    RefusedUnidirectional,
    ClientCertificate,
};

// Short stable name ("finished", "idle_timeout", "client_certificate"...),
// used for counters and metric labels.
const char* to_string(SessionEnd end);

// What a session needs from the server that runs it. Called on the
// session's thread.
class SessionHost {
public:
    // Takes one data frame (copy it); false = shutting down, not taken.
    virtual bool deliver(std::span<const std::uint8_t> frame) = 0;
    // True once reading must stop even though data may be waiting (the
    // shutdown drain time is over).
    virtual bool stop_reading() = 0;
    // START was received (before any data frame).
    virtual void started(bool bidirectional) = 0;
    // A frame was completed and delivered.
    virtual void progress() = 0;

protected:
    ~SessionHost() = default;
};

struct SessionResult {
    SessionEnd end = SessionEnd::HandshakeFailed;
    std::string detail;  // for the log: "STOP", "handshake failed: ...", reader error
    bool started = false;  // got past START
    bool bidirectional = false;
    std::uint64_t frames = 0;  // delivered
    std::uint64_t bytes = 0;
};

// Runs the whole session; never throws for anything the peer sends.
SessionResult run_session(Stream& stream, const SessionOptions& options, SessionHost& host,
                          framestream::BufferBudget* budget = nullptr);

}  // namespace sidetap::listen
