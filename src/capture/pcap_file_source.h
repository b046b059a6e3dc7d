// PcapFileSource: reads pcap and pcapng capture files with our own parser.
//
// Why not libpcap: libpcap refuses pcapng files whose interfaces have
// different link types; we must replay those (every packet carries the link
// type of its own interface).
//
// Formats accepted:
//  - pcap: magic a1b2c3d4 (microseconds), a1b23c4d (nanoseconds) and
//    a1b2cd34 (Kuznetzov's patched format, 24-byte record headers), in
//    either byte order. The link type is the low 16 bits of the header's
//    LinkType field (the upper bits carry FCS information and are ignored).
//  - pcapng: any number of sections, each in either byte order (interface
//    ids restart at 0 in every section); Interface Description Blocks with
//    if_tsresol (10^-n, or 2^-n when the high bit is set; default 10^-6) and
//    if_tsoffset (seconds added to every timestamp); Enhanced Packet Blocks,
//    Simple Packet Blocks (interface 0; captured length = min(original
//    length, interface snaplen, room in the block)) and obsolete Packet
//    Blocks (type 2). Every other block type is skipped by its length.
//    Simple Packet Blocks have no timestamp: they get the previous packet's
//    (0 if none), so packet time never goes backwards because of them.
//
// Contract (in addition to PacketSource's):
//  - Construction opens the file and reads the file header; it throws
//    util::FatalError when the file cannot be opened, is a directory, is
//    empty, or does not start with a pcap/pcapng header. The message names
//    the file.
//  - next() never throws and does not allocate, except to grow the read
//    buffer for a pcapng block larger than it. Memory follows the bytes
//    that are really in the file, never a length field: the buffer grows
//    (at most doubling) only when it is full of the block's bytes, so a
//    truncated or lying block costs at most twice the file's size, and
//    blocks that are read into memory are capped at kMaxReadBlockLength
//    (other block types are skipped without being buffered).
//  - Damaged input ends the stream with Status::Error and error() naming the
//    file, the byte offset of the bad record/block and the 1-based number of
//    the packet it would have been, e.g.
//    "x.pcap: truncated record at offset 1234 (packet #5)". Cases: a record
//    or block cut short, a captured length above kMaxCaptureLength or beyond
//    its block, a block length not a multiple of 4, below the block type's
//    minimum or above kMaxBlockLength (kMaxReadBlockLength for section
//    header, interface and packet blocks), mismatched leading/trailing block
//    lengths, a packet for an interface with no Interface Description Block,
//    a bad byte-order magic in a later section, and read errors.
//  - Timestamps are exact (floor) conversions to nanoseconds since the epoch
//    for any resolution; results below 0 (negative if_tsoffset) clamp to 0.
//  - Packet::original_length is max(original length field, captured length).
#pragma once

#include "capture/packet_source.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sidetap::capture {

class PcapFileSource final : public PacketSource {
public:
    enum class Format { Pcap, PcapNg };

    // Largest captured length accepted for one packet (libpcap's maximum
    // snaplen); larger values mean the file is damaged.
    static constexpr std::uint32_t kMaxCaptureLength = 256 * 1024;
    // Largest pcapng block accepted (of any type; skipped types are never
    // buffered).
    static constexpr std::uint32_t kMaxBlockLength = 256 * 1024 * 1024;
    // Largest section header, interface or packet block (read into memory):
    // a packet is at most kMaxCaptureLength, the rest is options.
    static constexpr std::uint32_t kMaxReadBlockLength = 16 * 1024 * 1024;
    // Size of the read buffer (one read() per this many bytes); smaller
    // for a smaller regular file (and 64 KiB for pipes), larger only while
    // a larger pcapng block is read.
    static constexpr std::size_t kReadChunk = 1024 * 1024;

    // Opens `path` and reads the file header. Throws util::FatalError.
    explicit PcapFileSource(const std::string& path);
    ~PcapFileSource() override;
    PcapFileSource(const PcapFileSource&) = delete;
    PcapFileSource& operator=(const PcapFileSource&) = delete;

    Status next(Packet& out) override;
    [[nodiscard]] const std::string& error() const override { return error_; }
    [[nodiscard]] std::uint64_t bytes_read() const override { return offset_; }
    // File size for regular files, 0 for pipes and other streams.
    [[nodiscard]] std::uint64_t bytes_total() const override { return total_; }

    [[nodiscard]] Format format() const { return format_; }
    // Interface id (within its section) of the packet last returned; 0 for
    // pcap files.
    [[nodiscard]] std::uint32_t interface_id() const { return last_interface_; }
    // Number of packets returned so far.
    [[nodiscard]] std::uint64_t packets() const { return packets_; }
    // pcap: the snaplen from the file header. pcapng: the snaplen of the
    // last packet's interface (0 = unlimited).
    [[nodiscard]] std::uint32_t snaplen() const { return last_snaplen_; }

private:
    struct Interface {
        std::uint32_t link_type = 0;
        std::uint32_t snaplen = 0;
        // Timestamp units per second, as a power of 10 or 2.
        bool binary_resolution = false;
        std::uint8_t resolution_exponent = 6;
        std::int64_t offset_seconds = 0;
        std::string name;  // if_name, else the interface's index in its section
    };

    Status next_pcap(Packet& out);
    Status next_pcapng(Packet& out);
    Status read_section_header(std::uint64_t block_start);
    Status read_interface_block(const std::uint8_t* block, std::uint32_t length, std::uint64_t block_start);
    Status fail(std::string message);
    Status fail_at(const char* what, std::uint64_t offset);

    // Buffer management: fill() makes `n` bytes available at buffered(),
    // reading (and growing the buffer if needed); false at end of input or
    // on a read error (io_errno_ set).
    bool fill(std::size_t n);
    void consume(std::size_t n) { pos_ += n; offset_ += n; }
    bool skip(std::uint64_t n);
    [[nodiscard]] std::size_t available() const { return end_ - pos_; }
    [[nodiscard]] const std::uint8_t* buffered() const { return buffer_.data() + pos_; }

    [[nodiscard]] std::uint16_t u16(const std::uint8_t* p) const;
    [[nodiscard]] std::uint32_t u32(const std::uint8_t* p) const;
    [[nodiscard]] std::uint64_t u64(const std::uint8_t* p) const;

    std::string path_;
    int fd_ = -1;
    std::uint64_t total_ = 0;
    Format format_ = Format::Pcap;
    bool swap_ = false;  // file byte order differs from the host's

    std::vector<std::uint8_t> buffer_;
    std::size_t pos_ = 0;
    std::size_t end_ = 0;
    std::uint64_t offset_ = 0;  // file offset of buffered()
    bool eof_ = false;
    int io_errno_ = 0;

    // pcap
    std::uint32_t pcap_link_type_ = 0;
    std::uint32_t pcap_snaplen_ = 0;
    bool pcap_nanoseconds_ = false;
    std::size_t pcap_record_header_ = 16;

    // pcapng: interfaces of the current section.
    std::vector<Interface> interfaces_;

    Status state_ = Status::Packet;  // End or Error once finished
    std::string error_;
    std::uint64_t packets_ = 0;
    std::uint32_t last_interface_ = 0;
    std::uint32_t last_snaplen_ = 0;
    std::uint64_t last_timestamp_ns_ = 0;
};

// Opens a pcap or pcapng file (format detected from its magic number).
// Throws util::FatalError with a message naming the file, e.g.
// "cannot open x.pcap: No such file or directory" or
// "x.txt: not a pcap or pcapng file (magic 0x68656c6c)".
std::unique_ptr<PacketSource> open_capture_file(const std::string& path);

}  // namespace sidetap::capture
