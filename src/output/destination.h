// Where the output goes, parsed from one command-line word.
//
// Accepted forms (each optionally followed by "?key=value&key=value"):
//   /path/out.dnstap, out.dnstap  File (a plain path, relative or absolute)
//   -                             Stdout
//   file:///abs/path, file:/abs   File
//   unix:///run/x.sock, unix:/x   Unix stream socket ("unix://rel.sock" is
//                                 relative, as in CoreDNS)
//   tcp://host:port               TCP; host is a name, an IPv4 literal or
//   tcp://[v6]:port               a bracketed IPv6 literal (zone: %25eth0)
//   tls://host:port               TLS over TCP, same host forms
//
// Contract:
//  - parse_destination() checks syntax only: it resolves nothing and opens
//    nothing. It throws util::FatalError(kExitUsage) with a message naming
//    the input for unknown schemes, missing/invalid ports (0, >65535), empty
//    paths or hosts, unbracketed IPv6, malformed or duplicate parameters.
//  - The scheme is case-insensitive. A word that merely contains ':' (e.g.
//    "out:1.dnstap") is a plain path unless it starts with a known scheme
//    ("tcp:host:6000" is an error, not a file) or with "scheme://".
//  - URI paths, hosts in brackets and parameter keys/values are
//    percent-decoded; plain paths are taken literally (up to the first '?').
//  - Parameter names are kept as given (lower-case recommended); which ones
//    are allowed is the caller's business (types=, wire=, queue=...).
//  - host holds IPv6 literals without brackets; port is 0 for non-network
//    kinds; path is empty for Tcp/Tls.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace sidetap::output {

struct Destination {
    enum Kind { File, Stdout, Unix, Tcp, Tls };
    Kind kind = File;
    std::string path;  // File, Unix
    std::string host;  // Tcp, Tls
    std::uint16_t port = 0;
    std::map<std::string, std::string> params;
};

Destination parse_destination(const std::string& text);

// "tcp://[::1]:6000", "unix:///run/x.sock", "-", the path: for messages.
std::string to_string(const Destination& destination);

}  // namespace sidetap::output
