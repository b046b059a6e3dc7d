// Named counters of the stream stage (TLS plaintext -> DNS messages). They
// appear in the summary and in --metrics like every other stage's.
#pragma once

#include "util/counters.h"

#include <array>
#include <cstddef>
#include <string_view>

namespace sidetap::streams {

enum class StreamEvent : std::size_t {
    Chunks,                // plaintext pieces received (reads and writes of the probed processes)
    Bytes,                 // their bytes
    Connections,           // TLS connections (object + generation) seen
    ConnectionsClosed,     // ended by SSL_free / gnutls_deinit
    ConnectionsEvicted,    // dropped to make room (max connections / memory)
    ConnectionsTimedOut,   // idle longer than the idle timeout
    ObjectReuses,          // connections on a TLS object (address) that an ended connection of the process had held
    DotConnections,        // decided DNS over TLS (length-prefixed messages)
    DohConnections,        // decided DNS over HTTPS (HTTP/2 preface)
    Http1Connections,      // HTTP/1.x: not decoded
    NotDnsConnections,     // neither DoT nor DoH could be found in them
    Gaps,                  // plaintext lost (ring buffer full, copy failed, call cut): the stream resynchronises
    UnattributedBytes,     // bytes of calls no TCP connection was found for
    UnattributedMessages,  // DNS messages not emitted: their connection's addresses are unknown
    DotMessages,           // DNS messages from DoT connections (handed on: attributed)
    DohMessages,           // DNS messages from DoH streams (handed on: attributed)
    DohStreamsUndecodable, // HTTP/2 streams whose DNS message could not be recovered (lost bytes, bad base64, too large)
    DohStreamsNotDns,      // HTTP/2 requests that are not DoH (other paths or methods) and non-200 answers
    DohStreamsReset,       // HTTP/2 streams reset (RST_STREAM) before they ended
    DohStreamsEvicted,     // HTTP/2 streams dropped: too many open on one connection
    DohHeaderErrors,       // directions whose HPACK state was lost (decoding error, a header block lost): later streams undecodable
    ResyncSkippedBytes,    // DoT bytes skipped looking for a message boundary
    PartialAtClose,        // bytes of unfinished messages when a connection ended
    Count_
};

inline constexpr std::array<std::string_view, static_cast<std::size_t>(StreamEvent::Count_)> kStreamEventNames{
    "tls_chunks",
    "tls_bytes",
    "tls_connections",
    "tls_connections_closed",
    "tls_connections_evicted",
    "tls_connections_timed_out",
    "tls_object_reuses",
    "dot_connections",
    "doh_connections",
    "tls_http1_connections",
    "tls_not_dns_connections",
    "tls_gaps",
    "tls_unattributed_bytes",
    "tls_unattributed_messages",
    "dot_messages",
    "doh_messages",
    "doh_streams_undecodable",
    "doh_streams_not_dns",
    "doh_streams_reset",
    "doh_streams_evicted",
    "doh_header_errors",
    "tls_resync_skipped_bytes",
    "tls_partial_at_close"};

using StreamCounters = util::CounterSet<StreamEvent, static_cast<std::size_t>(StreamEvent::Count_)>;

}  // namespace sidetap::streams
