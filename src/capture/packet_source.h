// PacketSource: where packets come from (pcap/pcapng file, libpcap live,
// eBPF ring buffer, in-memory test input).
//
// Contract:
//  - next() fills `out` and returns Status::Packet; the bytes `out.data`
//    point into the source's own buffer and stay valid only until the next
//    call to next() (or the source is destroyed). No allocation per packet.
//  - Status::End: the input ended cleanly.
//  - Status::Error: the input cannot go on (truncated record, not a capture
//    file, I/O error); error() describes it. Packets returned before stay
//    valid results. After Error or End, next() keeps returning the same.
//  - Timestamps are nanoseconds since the Unix epoch, whatever the file's
//    resolution.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace sidetap::capture {

// LINKTYPE_* values as used in pcap/pcapng headers (tcpdump.org/linktypes).
namespace linktype {
inline constexpr std::uint32_t kNull = 0;        // BSD loopback, host-order AF
inline constexpr std::uint32_t kEthernet = 1;
inline constexpr std::uint32_t kRaw = 101;       // raw IPv4/IPv6
inline constexpr std::uint32_t kLoop = 108;      // OpenBSD loopback, network-order AF
inline constexpr std::uint32_t kLinuxSll = 113;
inline constexpr std::uint32_t kIpv4 = 228;
inline constexpr std::uint32_t kIpv6 = 229;
inline constexpr std::uint32_t kLinuxSll2 = 276;
// DLT_RAW as written by some OpenBSD-derived tools; treated like kRaw.
inline constexpr std::uint32_t kRawOpenBsd = 14;
inline constexpr std::uint32_t kRawDlt12 = 12;
// Linux netfilter NFLOG (tcpdump -i nflog:N): a TLV header before the IP packet.
inline constexpr std::uint32_t kNflog = 239;
}  // namespace linktype

struct Packet {
    std::uint64_t timestamp_ns = 0;
    std::uint32_t link_type = 0;
    std::uint32_t original_length = 0;   // length on the wire (>= data.size())
    std::span<const std::uint8_t> data;  // captured bytes
    // Where it was captured, for the extra templates: the interface's name
    // (live: the interface; pcapng: if_name, else the interface's index;
    // empty when unknown), valid as long as `data`; and the packet's number
    // in its file (files only; from 1, as Wireshark counts; 0: none).
    std::string_view interface;
    std::uint64_t frame = 0;
};

class PacketSource {
public:
    enum class Status { Packet, End, Error };

    virtual ~PacketSource() = default;
    virtual Status next(Packet& out) = 0;
    [[nodiscard]] virtual const std::string& error() const = 0;
    // Bytes consumed so far and total size when known (0 if unknown); used
    // for the progress line.
    [[nodiscard]] virtual std::uint64_t bytes_read() const { return 0; }
    [[nodiscard]] virtual std::uint64_t bytes_total() const { return 0; }
};

}  // namespace sidetap::capture
