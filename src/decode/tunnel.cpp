#include "decode/tunnel.h"

#include <algorithm>

namespace sidetap::decode::tunnel {

namespace {

// Callers check the bounds first.
std::uint16_t be16(Bytes b, std::size_t off) { return static_cast<std::uint16_t>((b[off] << 8) | b[off + 1]); }
std::uint32_t be32(Bytes b, std::size_t off) {
    return (std::uint32_t{b[off]} << 24) | (std::uint32_t{b[off + 1]} << 16) | (std::uint32_t{b[off + 2]} << 8) |
           std::uint32_t{b[off + 3]};
}

namespace gre {
constexpr std::uint16_t kChecksum = 0x8000;
constexpr std::uint16_t kRouting = 0x4000;
constexpr std::uint16_t kKey = 0x2000;
constexpr std::uint16_t kSequence = 0x1000;
constexpr std::uint16_t kStrictRoute = 0x0800;
constexpr std::uint16_t kVersionMask = 0x0007;
}  // namespace gre

namespace proto {
constexpr std::uint16_t kIpv4 = 0x0800;
constexpr std::uint16_t kIpv6 = 0x86DD;
constexpr std::uint16_t kEthernet = 0x6558;  // transparent Ethernet bridging
constexpr std::uint16_t kErspan2 = 0x88BE;   // ERSPAN type I and II
constexpr std::uint16_t kErspan3 = 0x22EB;
}  // namespace proto

// Protocol types shared by GRE and Geneve (ethertype space).
bool next_from_protocol(std::uint16_t type, Next& next) {
    switch (type) {
    case proto::kIpv4: next = Next::Ipv4; return true;
    case proto::kIpv6: next = Next::Ipv6; return true;
    case proto::kEthernet: next = Next::Ethernet; return true;
    default: return false;
    }
}

constexpr std::uint8_t kGtpuGpdu = 0xFF;
constexpr int kMaxGtpuExtensions = 16;

constexpr std::uint16_t kNflogPayload = 9;
constexpr std::uint8_t kLinuxAfInet = 2;
constexpr std::uint8_t kLinuxAfInet6 = 10;

}  // namespace

bool parse_gre(Bytes in, Layer& out, Anomaly& why) {
    if (in.size() < 4) {
        why = Anomaly::GreTruncated;
        return false;
    }
    const std::uint16_t flags = be16(in, 0);
    const std::uint16_t type = be16(in, 2);
    // Version 1 is PPTP's enhanced GRE (PPP inside); routing (RFC 1701) is
    // obsolete and RFC 2784 receivers discard it.
    if ((flags & gre::kVersionMask) != 0 || (flags & (gre::kRouting | gre::kStrictRoute)) != 0) {
        why = Anomaly::GreUnsupported;
        return false;
    }
    std::size_t len = 4;
    if (flags & gre::kChecksum) len += 4;
    const std::size_t key_at = len;
    if (flags & gre::kKey) len += 4;
    if (flags & gre::kSequence) len += 4;
    if (in.size() < len) {
        why = Anomaly::GreTruncated;
        return false;
    }
    out = Layer{};
    out.kind = TunnelKind::Gre;
    if (flags & gre::kKey) {
        out.id = be32(in, key_at);
        out.has_id = true;
    }
    const Bytes rest = in.subspan(len);
    if (type == proto::kErspan3 || (type == proto::kErspan2 && (flags & gre::kSequence))) return parse_erspan(rest, out, why);
    if (type == proto::kErspan2) {
        // Type I: no ERSPAN header (and no session id).
        out = Layer{TunnelKind::Erspan, Next::Ethernet, rest, 0, false};
        return true;
    }
    if (!next_from_protocol(type, out.next)) {
        why = Anomaly::GreUnsupported;
        return false;
    }
    out.payload = rest;
    return true;
}

bool parse_erspan(Bytes in, Layer& out, Anomaly& why) {
    if (in.size() < 2) {
        why = Anomaly::ErspanTruncated;
        return false;
    }
    const int version = in[0] >> 4;
    std::size_t len = 0;
    Next next = Next::Ethernet;
    if (version == 1) {
        len = 8;
    } else if (version == 2) {
        len = 12;
        if (in.size() < len) {
            why = Anomaly::ErspanTruncated;
            return false;
        }
        const std::uint16_t word = be16(in, 10);
        const unsigned frame_type = (word >> 10) & 0x1Fu;
        if (word & 1u) len += 8;  // O: platform-specific subheader
        if (frame_type == 2) {
            next = Next::Ip;
        } else if (frame_type != 0) {
            why = Anomaly::ErspanUnsupported;
            return false;
        }
    } else {
        why = Anomaly::ErspanUnsupported;
        return false;
    }
    if (in.size() < len) {
        why = Anomaly::ErspanTruncated;
        return false;
    }
    out = Layer{TunnelKind::Erspan, next, in.subspan(len), be16(in, 2) & 0x03FFu, true};
    return true;
}

bool parse_vxlan(Bytes in, Layer& out, Anomaly& why) {
    if (in.size() < 8) {
        why = Anomaly::VxlanTruncated;
        return false;
    }
    if ((in[0] & 0x08u) == 0) {
        why = Anomaly::VxlanBadFlags;
        return false;
    }
    out = Layer{TunnelKind::Vxlan, Next::Ethernet, in.subspan(8), be32(in, 4) >> 8, true};
    return true;
}

bool parse_geneve(Bytes in, Layer& out, Anomaly& why) {
    if (in.size() < 8) {
        why = Anomaly::GeneveTruncated;
        return false;
    }
    if ((in[0] >> 6) != 0) {
        why = Anomaly::GeneveUnsupported;
        return false;
    }
    const std::size_t len = 8 + std::size_t{in[0] & 0x3Fu} * 4;
    if (in.size() < len) {
        why = Anomaly::GeneveTruncated;
        return false;
    }
    // Each option needs 4 bytes of header; the walk ends within 63 steps.
    std::size_t pos = 8;
    while (pos < len) {
        if (pos + 4 > len) {
            why = Anomaly::GeneveBadOptions;
            return false;
        }
        pos += 4 + std::size_t{in[pos + 3] & 0x1Fu} * 4;
    }
    if (pos != len) {
        why = Anomaly::GeneveBadOptions;
        return false;
    }
    Next next = Next::Ip;
    if (!next_from_protocol(be16(in, 2), next)) {
        why = Anomaly::GeneveUnsupported;
        return false;
    }
    out = Layer{TunnelKind::Geneve, next, in.subspan(len), be32(in, 4) >> 8, true};
    return true;
}

bool parse_gtpu(Bytes in, Layer& out, Anomaly& why) {
    if (in.size() < 8) {
        why = Anomaly::GtpuTruncated;
        return false;
    }
    const std::uint8_t flags = in[0];
    if ((flags >> 5) != 1 || (flags & 0x10u) == 0) {
        why = Anomaly::GtpuUnsupported;
        return false;
    }
    const std::size_t length = be16(in, 2);
    if (8 + length > in.size()) {
        why = Anomaly::GtpuTruncated;
        return false;
    }
    if (in[1] != kGtpuGpdu) {
        why = Anomaly::GtpuNotGpdu;
        return false;
    }
    const Bytes body = in.subspan(8, length);
    std::size_t pos = 0;
    if (flags & 0x07u) {
        if (body.size() < 4) {
            why = Anomaly::GtpuTruncated;
            return false;
        }
        std::uint8_t next_type = body[3];
        pos = 4;
        // The next-type field is meaningful only with E set.
        for (int i = 0; (flags & 0x04u) && next_type != 0; ++i) {
            if (i == kMaxGtpuExtensions || pos >= body.size()) {
                why = Anomaly::GtpuBadExtension;
                return false;
            }
            const std::size_t ext_len = std::size_t{body[pos]} * 4;
            if (ext_len == 0 || pos + ext_len > body.size()) {
                why = Anomaly::GtpuBadExtension;
                return false;
            }
            next_type = body[pos + ext_len - 1];
            pos += ext_len;
        }
    }
    out = Layer{TunnelKind::Gtpu, Next::Ip, body.subspan(pos), be32(in, 4), true};
    return true;
}

namespace {

// Whether TLVs read with `big_endian` give a plausible type: the first TLV
// with a non-zero type (low 15 bits) decides; it must be below 256.
bool nflog_order_fits(Bytes in, bool big_endian) {
    auto rd = [&](std::size_t off) {
        return big_endian ? be16(in, off) : static_cast<std::uint16_t>(in[off] | (in[off + 1] << 8));
    };
    for (std::size_t pos = 4; pos + 4 <= in.size();) {
        const std::size_t len = rd(pos);
        const unsigned type = rd(pos + 2) & 0x7FFFu;
        if (len < 4 || type >= 0x100) return false;
        if (type != 0) return true;
        pos += (len + 3) & ~std::size_t{3};
    }
    return false;
}

}  // namespace

bool parse_nflog(Bytes in, Bytes& payload, int& ip_version, Anomaly& why) {
    if (in.size() < 4) {
        why = Anomaly::LinkTruncated;
        return false;
    }
    bool big_endian = true;
    if (!nflog_order_fits(in, true)) {
        if (!nflog_order_fits(in, false)) {
            why = in.size() < 8 ? Anomaly::NflogNoPayload : Anomaly::NflogBadTlv;
            return false;
        }
        big_endian = false;
    }
    auto rd = [&](std::size_t off) {
        return big_endian ? be16(in, off) : static_cast<std::uint16_t>(in[off] | (in[off + 1] << 8));
    };
    // Every step advances by at least 4 bytes.
    for (std::size_t pos = 4; pos + 4 <= in.size();) {
        const std::size_t len = rd(pos);
        const unsigned type = rd(pos + 2) & 0x7FFFu;
        if (len < 4) {
            why = Anomaly::NflogBadTlv;
            return false;
        }
        if (type == kNflogPayload) {
            // Cut by the snaplen: pass on what was captured; the IP layer
            // then reports it as snapped.
            payload = in.subspan(pos + 4, std::min(len, in.size() - pos) - 4);
            ip_version = in[0] == kLinuxAfInet ? 4 : in[0] == kLinuxAfInet6 ? 6 : 0;
            return true;
        }
        if (pos + len > in.size()) {
            why = Anomaly::NflogBadTlv;
            return false;
        }
        pos += (len + 3) & ~std::size_t{3};
    }
    why = Anomaly::NflogNoPayload;
    return false;
}

}  // namespace sidetap::decode::tunnel
