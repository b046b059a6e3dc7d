#include "capture/pcap_file_source.h"

#include "util/error.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <limits>

namespace sidetap::capture {
namespace {

__extension__ using Int128 = __int128;
__extension__ using Uint128 = unsigned __int128;

constexpr std::uint32_t kPcapMagicMicro = 0xa1b2c3d4;
constexpr std::uint32_t kPcapMagicNano = 0xa1b23c4d;
constexpr std::uint32_t kPcapMagicPatched = 0xa1b2cd34;  // 24-byte record headers

constexpr std::uint32_t kBlockSectionHeader = 0x0a0d0d0a;  // same in both byte orders
constexpr std::uint32_t kBlockInterface = 0x00000001;
constexpr std::uint32_t kBlockPacketObsolete = 0x00000002;
constexpr std::uint32_t kBlockSimplePacket = 0x00000003;
constexpr std::uint32_t kBlockEnhancedPacket = 0x00000006;
constexpr std::uint32_t kByteOrderMagic = 0x1a2b3c4d;

// Smallest legal total length per block type (header + fixed fields + trailer).
constexpr std::uint32_t kMinBlock = 12;
constexpr std::uint32_t kMinSectionHeader = 28;
constexpr std::uint32_t kMinInterface = 20;
constexpr std::uint32_t kMinEnhancedPacket = 32;
constexpr std::uint32_t kMinPacketObsolete = 32;
constexpr std::uint32_t kMinSimplePacket = 16;

constexpr std::uint16_t kOptEnd = 0;
constexpr std::uint16_t kOptIfTsresol = 9;
constexpr std::uint16_t kOptIfTsoffset = 14;
constexpr std::uint16_t kOptIfName = 2;

constexpr std::uint64_t kNanosPerSecond = 1'000'000'000;

std::uint32_t load32_native(const std::uint8_t* p) {
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

std::string hex32(std::uint32_t v) {
    char text[16];
    std::snprintf(text, sizeof text, "0x%08" PRIx32, v);
    return text;
}

// Seconds + nanoseconds + signed offset in seconds, clamped to the uint64
// nanosecond range; 128-bit so that no input can overflow.
std::uint64_t to_epoch_ns(std::uint64_t seconds, std::uint64_t nanos, std::int64_t offset_seconds) {
    const Int128 total = static_cast<Int128>(seconds) * static_cast<Int128>(kNanosPerSecond) +
                         static_cast<Int128>(nanos) +
                         static_cast<Int128>(offset_seconds) * static_cast<Int128>(kNanosPerSecond);
    if (total < 0) return 0;
    if (total > static_cast<Int128>(std::numeric_limits<std::uint64_t>::max()))
        return std::numeric_limits<std::uint64_t>::max();
    return static_cast<std::uint64_t>(total);
}

std::string describe_magic(std::uint32_t magic_be) {
    // Compressed captures are common; say so instead of only "bad magic".
    if ((magic_be >> 16) == 0x1f8b) return " (gzip-compressed; decompress it first)";
    if (magic_be == 0xfd377a58) return " (xz-compressed; decompress it first)";
    if (magic_be == 0x28b52ffd) return " (zstd-compressed; decompress it first)";
    if (magic_be == 0x04224d18) return " (lz4-compressed; decompress it first)";
    if ((magic_be >> 8) == 0x425a68) return " (bzip2-compressed; decompress it first)";
    return "";
}

}  // namespace

PcapFileSource::PcapFileSource(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw util::FatalError("cannot open " + path + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
        const int err = errno;
        ::close(fd_);
        throw util::FatalError("cannot open " + path + ": " + std::strerror(err));
    }
    if (S_ISDIR(st.st_mode)) {
        ::close(fd_);
        throw util::FatalError("cannot open " + path + ": is a directory");
    }
    if (S_ISREG(st.st_mode)) total_ = static_cast<std::uint64_t>(st.st_size);

    // The destructor does not run when the constructor throws; close here.
    try {
        // A small file needs no megabyte of buffer (the buffer grows if the
        // file turns out longer and holds a larger block).
        // A pipe hands out at most its own buffer (64 KiB) per read anyway.
        const std::size_t initial = S_ISREG(st.st_mode)
                                        ? std::clamp<std::size_t>((total_ + 4095) / 4096 * 4096, 4096, kReadChunk)
                                        : std::size_t{64} << 10;
        buffer_.resize(initial);
        if (!fill(4)) {
            if (io_errno_ != 0) throw util::FatalError("cannot read " + path + ": " + std::strerror(io_errno_));
            throw util::FatalError(path + ": not a pcap or pcapng file (" +
                                   (available() == 0 ? std::string("empty") : "shorter than a file header") + ")");
        }
        const std::uint32_t native = load32_native(buffered());
        const std::uint32_t magic_be = std::uint32_t{buffered()[0]} << 24 | std::uint32_t{buffered()[1]} << 16 |
                                       std::uint32_t{buffered()[2]} << 8 | std::uint32_t{buffered()[3]};
        const std::uint32_t swapped = __builtin_bswap32(native);
        auto is = [&](std::uint32_t magic) { return native == magic || swapped == magic; };

        if (native == kBlockSectionHeader) {
            format_ = Format::PcapNg;
            if (read_section_header(0) != Status::Packet) throw util::FatalError(error_);
        } else if (is(kPcapMagicMicro) || is(kPcapMagicNano) || is(kPcapMagicPatched)) {
            format_ = Format::Pcap;
            swap_ = !(native == kPcapMagicMicro || native == kPcapMagicNano || native == kPcapMagicPatched);
            const std::uint32_t magic = swap_ ? swapped : native;
            pcap_nanoseconds_ = magic == kPcapMagicNano;
            pcap_record_header_ = magic == kPcapMagicPatched ? 24 : 16;
            if (!fill(24)) {
                if (io_errno_ != 0)
                    throw util::FatalError("cannot read " + path + ": " + std::strerror(io_errno_));
                throw util::FatalError(path + ": truncated pcap file header");
            }
            const std::uint8_t* h = buffered();
            const std::uint16_t major = u16(h + 4);
            if (major != 2)
                throw util::FatalError(path + ": unsupported pcap version " + std::to_string(major) + "." +
                                       std::to_string(u16(h + 6)));
            pcap_snaplen_ = u32(h + 16);
            // Bits 16-31 hold the FCS length and reserved bits (pcap spec,
            // "LinkType and additional information"); the link type is the
            // low 16 bits.
            pcap_link_type_ = u32(h + 20) & 0xffff;
            last_snaplen_ = pcap_snaplen_;
            consume(24);
        } else {
            throw util::FatalError(path + ": not a pcap or pcapng file (magic " + hex32(magic_be) + ")" +
                                   describe_magic(magic_be));
        }
    } catch (...) {
        ::close(fd_);
        fd_ = -1;
        throw;
    }
}

PcapFileSource::~PcapFileSource() {
    if (fd_ >= 0) ::close(fd_);
}

std::uint16_t PcapFileSource::u16(const std::uint8_t* p) const {
    std::uint16_t v;
    std::memcpy(&v, p, sizeof v);
    return swap_ ? __builtin_bswap16(v) : v;
}

std::uint32_t PcapFileSource::u32(const std::uint8_t* p) const {
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return swap_ ? __builtin_bswap32(v) : v;
}

std::uint64_t PcapFileSource::u64(const std::uint8_t* p) const {
    std::uint64_t v;
    std::memcpy(&v, p, sizeof v);
    return swap_ ? __builtin_bswap64(v) : v;
}

bool PcapFileSource::fill(std::size_t n) {
    if (available() >= n) return true;
    if (pos_ + n > buffer_.size()) {  // compact: the partial record/block to the front
        std::memmove(buffer_.data(), buffered(), available());
        end_ = available();
        pos_ = 0;
    }
    while (available() < n && !eof_ && io_errno_ == 0) {
        if (end_ == buffer_.size()) {
            // Only a pcapng block larger than the chunk gets here, and only
            // once the buffer is full of bytes that really are in the file:
            // grow, at most doubling, up to this block (rounded up to a
            // chunk). A block length alone allocates nothing, so a 12 KB
            // file claiming a 256 MiB block costs no more than any other.
            const std::size_t target = std::min((n + kReadChunk - 1) / kReadChunk * kReadChunk, 2 * buffer_.size());
            std::vector<std::uint8_t> bigger(target);
            std::memcpy(bigger.data(), buffered(), available());
            end_ = available();
            pos_ = 0;
            buffer_.swap(bigger);
        }
        const ssize_t got = ::read(fd_, buffer_.data() + end_, buffer_.size() - end_);
        if (got > 0) {
            end_ += static_cast<std::size_t>(got);
        } else if (got == 0) {
            eof_ = true;
        } else if (errno != EINTR) {
            io_errno_ = errno;
        }
    }
    return available() >= n;
}

bool PcapFileSource::skip(std::uint64_t n) {
    while (n > 0) {
        if (available() == 0 && !fill(1)) return false;
        const std::size_t step = static_cast<std::size_t>(std::min<std::uint64_t>(available(), n));
        consume(step);
        n -= step;
    }
    return true;
}

PacketSource::Status PcapFileSource::fail(std::string message) {
    error_ = path_ + ": " + std::move(message);
    state_ = Status::Error;
    return state_;
}

PacketSource::Status PcapFileSource::fail_at(const char* what, std::uint64_t offset) {
    // A read error is more useful than "truncated" when both apply.
    if (io_errno_ != 0)
        return fail(std::string("read error at offset ") + std::to_string(offset_ + available()) + ": " +
                    std::strerror(io_errno_));
    return fail(std::string(what) + " at offset " + std::to_string(offset) + " (packet #" +
                std::to_string(packets_ + 1) + ")");
}

PacketSource::Status PcapFileSource::next(Packet& out) {
    if (state_ != Status::Packet) return state_;
    return format_ == Format::Pcap ? next_pcap(out) : next_pcapng(out);
}

PacketSource::Status PcapFileSource::next_pcap(Packet& out) {
    const std::uint64_t record_start = offset_;
    if (!fill(pcap_record_header_)) {
        if (available() == 0 && io_errno_ == 0) return state_ = Status::End;
        return fail_at("truncated record header", record_start);
    }
    const std::uint8_t* h = buffered();
    const std::uint32_t seconds = u32(h);
    const std::uint32_t fraction = u32(h + 4);
    const std::uint32_t caplen = u32(h + 8);
    const std::uint32_t len = u32(h + 12);
    if (caplen > kMaxCaptureLength)
        return fail("record at offset " + std::to_string(record_start) + " (packet #" +
                    std::to_string(packets_ + 1) + ") has captured length " + std::to_string(caplen) +
                    " (more than " + std::to_string(kMaxCaptureLength) + ")");
    if (!fill(pcap_record_header_ + caplen)) return fail_at("truncated record", record_start);

    out.timestamp_ns = to_epoch_ns(seconds, pcap_nanoseconds_ ? fraction : std::uint64_t{fraction} * 1000, 0);
    out.link_type = pcap_link_type_;
    out.original_length = std::max(len, caplen);
    out.data = {buffered() + pcap_record_header_, caplen};
    out.interface = {};
    out.frame = packets_ + 1;
    consume(pcap_record_header_ + caplen);
    ++packets_;
    return Status::Packet;
}

PacketSource::Status PcapFileSource::read_section_header(std::uint64_t block_start) {
    if (!fill(12)) return fail_at("truncated section header block", block_start);
    const std::uint32_t bom = load32_native(buffered() + 8);
    if (bom == kByteOrderMagic) {
        swap_ = false;
    } else if (__builtin_bswap32(bom) == kByteOrderMagic) {
        swap_ = true;
    } else {
        return fail("bad byte-order magic " + hex32(bom) + " in section header block at offset " +
                    std::to_string(block_start));
    }
    const std::uint32_t length = u32(buffered() + 4);
    if (length < kMinSectionHeader || length % 4 != 0 || length > kMaxReadBlockLength)
        return fail("section header block at offset " + std::to_string(block_start) + " has bad length " +
                    std::to_string(length));
    if (!fill(length)) return fail_at("truncated section header block", block_start);
    const std::uint8_t* b = buffered();
    if (u32(b + length - 4) != length)
        return fail("section header block at offset " + std::to_string(block_start) +
                    ": trailing length does not match");
    const std::uint16_t major = u16(b + 12);
    if (major != 1)
        return fail("unsupported pcapng version " + std::to_string(major) + "." + std::to_string(u16(b + 14)) +
                    " in section at offset " + std::to_string(block_start));
    interfaces_.clear();
    consume(length);
    return Status::Packet;
}

PacketSource::Status PcapFileSource::read_interface_block(const std::uint8_t* block, std::uint32_t length,
                                                          std::uint64_t block_start) {
    // Bounded so that a stream of tiny IDBs cannot grow the table without
    // limit; real captures have a handful.
    constexpr std::size_t kMaxInterfaces = 1 << 16;
    if (interfaces_.size() >= kMaxInterfaces)
        return fail("more than " + std::to_string(kMaxInterfaces) + " interfaces in a section (block at offset " +
                    std::to_string(block_start) + ")");
    Interface ifc;
    ifc.link_type = u16(block + 8);
    ifc.snaplen = u32(block + 12);
    std::size_t pos = 16;
    const std::size_t end = length - 4;
    // Options that run past the block end are ignored rather than fatal:
    // the fixed fields are what matter for replay.
    while (pos + 4 <= end) {
        const std::uint16_t code = u16(block + pos);
        const std::uint16_t size = u16(block + pos + 2);
        const std::size_t padded = (std::size_t{size} + 3) & ~std::size_t{3};
        if (code == kOptEnd || pos + 4 + padded > end) break;
        const std::uint8_t* value = block + pos + 4;
        if (code == kOptIfTsresol && size >= 1) {
            ifc.binary_resolution = (value[0] & 0x80) != 0;
            ifc.resolution_exponent = value[0] & 0x7f;
            // 10^-38 and 2^-127 are the finest resolutions whose units per
            // second fit in 128 bits.
            if (!ifc.binary_resolution && ifc.resolution_exponent > 38)
                return fail("unsupported if_tsresol 10^-" + std::to_string(ifc.resolution_exponent) +
                            " in interface description block at offset " + std::to_string(block_start));
        } else if (code == kOptIfTsoffset && size >= 8) {
            ifc.offset_seconds = static_cast<std::int64_t>(u64(value));
        } else if (code == kOptIfName && size > 0) {
            // UTF-8, not terminated; some writers add a NUL anyway.
            std::size_t n = size;
            while (n > 0 && value[n - 1] == 0) --n;
            ifc.name.assign(reinterpret_cast<const char*>(value), n);
        }
        pos += 4 + padded;
    }
    if (ifc.name.empty()) ifc.name = std::to_string(interfaces_.size());
    interfaces_.push_back(std::move(ifc));
    return Status::Packet;
}

namespace {

// Ticks at 10^-e or 2^-e seconds -> (seconds, nanoseconds), floor.
void split_ticks(std::uint64_t ticks, bool binary, std::uint8_t exponent, std::uint64_t& seconds,
                 std::uint64_t& nanos) {
    if (!binary && exponent == 6) {  // the default
        seconds = ticks / 1'000'000;
        nanos = ticks % 1'000'000 * 1000;
        return;
    }
    if (!binary && exponent == 9) {
        seconds = ticks / kNanosPerSecond;
        nanos = ticks % kNanosPerSecond;
        return;
    }
    Uint128 units = 1;
    if (binary) {
        units <<= exponent;
    } else {
        for (std::uint8_t i = 0; i < exponent; ++i) units *= 10;
    }
    const Uint128 remainder = Uint128{ticks} % units;
    seconds = static_cast<std::uint64_t>(Uint128{ticks} / units);
    nanos = static_cast<std::uint64_t>(remainder * kNanosPerSecond / units);
}

}  // namespace

PacketSource::Status PcapFileSource::next_pcapng(Packet& out) {
    for (;;) {
        const std::uint64_t block_start = offset_;
        if (!fill(8)) {
            if (available() == 0 && io_errno_ == 0) return state_ = Status::End;
            return fail_at("truncated block header", block_start);
        }
        // The section header's type reads the same in both byte orders; its
        // byte-order magic decides how to read everything after it.
        if (load32_native(buffered()) == kBlockSectionHeader) {
            if (read_section_header(block_start) != Status::Packet) return state_;
            continue;
        }
        const std::uint32_t type = u32(buffered());
        const std::uint32_t length = u32(buffered() + 4);
        std::uint32_t min_length = kMinBlock;
        switch (type) {
            case kBlockInterface: min_length = kMinInterface; break;
            case kBlockEnhancedPacket: min_length = kMinEnhancedPacket; break;
            case kBlockPacketObsolete: min_length = kMinPacketObsolete; break;
            case kBlockSimplePacket: min_length = kMinSimplePacket; break;
            default: break;
        }
        if (length < min_length || length % 4 != 0 || length > kMaxBlockLength)
            return fail("block of type " + hex32(type) + " at offset " + std::to_string(block_start) +
                        " has bad length " + std::to_string(length) + " (packet #" + std::to_string(packets_ + 1) +
                        ")");

        if (type != kBlockInterface && type != kBlockEnhancedPacket && type != kBlockPacketObsolete &&
            type != kBlockSimplePacket) {
            if (!skip(length)) return fail_at("truncated block", block_start);
            continue;
        }
        if (length > kMaxReadBlockLength)
            return fail("block of type " + hex32(type) + " at offset " + std::to_string(block_start) + " has length " +
                        std::to_string(length) + ", more than the " + std::to_string(kMaxReadBlockLength >> 20) +
                        " MiB an interface or packet block may have (packet #" + std::to_string(packets_ + 1) + ")");

        if (!fill(length)) return fail_at("truncated block", block_start);
        const std::uint8_t* b = buffered();
        if (u32(b + length - 4) != length)
            return fail("block at offset " + std::to_string(block_start) + ": trailing length " +
                        std::to_string(u32(b + length - 4)) + " does not match " + std::to_string(length));

        if (type == kBlockInterface) {
            if (read_interface_block(b, length, block_start) != Status::Packet) return state_;
            consume(length);
            continue;
        }

        std::uint32_t interface_id = 0;
        std::uint64_t ticks = 0;
        std::uint32_t caplen = 0;
        std::uint32_t len = 0;
        std::uint32_t room = 0;
        std::size_t data_at = 0;
        if (type == kBlockSimplePacket) {
            len = u32(b + 8);
            room = length - kMinSimplePacket;
            data_at = 12;
        } else {
            interface_id = type == kBlockEnhancedPacket ? u32(b + 8) : u16(b + 8);
            ticks = std::uint64_t{u32(b + 12)} << 32 | u32(b + 16);
            caplen = u32(b + 20);
            len = u32(b + 24);
            room = length - kMinEnhancedPacket;
            data_at = 28;
        }
        if (interface_id >= interfaces_.size())
            return fail("packet block at offset " + std::to_string(block_start) + " (packet #" +
                        std::to_string(packets_ + 1) + ") refers to interface " + std::to_string(interface_id) +
                        ", which has no interface description block");
        const Interface& ifc = interfaces_[interface_id];
        if (type == kBlockSimplePacket) {
            caplen = std::min(len, room);
            if (ifc.snaplen != 0) caplen = std::min(caplen, ifc.snaplen);
        }
        if (caplen > kMaxCaptureLength || caplen > room)
            return fail("block at offset " + std::to_string(block_start) + " (packet #" +
                        std::to_string(packets_ + 1) + ") has captured length " + std::to_string(caplen) +
                        (caplen > room ? " beyond the block" : " (more than " + std::to_string(kMaxCaptureLength) + ")"));

        std::uint64_t seconds = 0;
        std::uint64_t nanos = 0;
        if (type != kBlockSimplePacket) split_ticks(ticks, ifc.binary_resolution, ifc.resolution_exponent, seconds, nanos);
        // Simple Packet Blocks carry no timestamp; repeating the previous
        // packet's keeps packet time monotonic for the timeout logic.
        out.timestamp_ns = type == kBlockSimplePacket ? last_timestamp_ns_ : to_epoch_ns(seconds, nanos, ifc.offset_seconds);
        last_timestamp_ns_ = out.timestamp_ns;
        out.link_type = ifc.link_type;
        out.original_length = std::max(len, caplen);
        out.data = {b + data_at, caplen};
        out.interface = ifc.name;
        out.frame = packets_ + 1;
        last_interface_ = interface_id;
        last_snaplen_ = ifc.snaplen;
        consume(length);
        ++packets_;
        return Status::Packet;
    }
}

std::unique_ptr<PacketSource> open_capture_file(const std::string& path) {
    return std::make_unique<PcapFileSource>(path);
}

}  // namespace sidetap::capture
