#include "decode/decoder.h"

#include "decode/tunnel.h"

#include <algorithm>

namespace sidetap::decode {

namespace {

using Bytes = std::span<const std::uint8_t>;

// Callers check `off + 2 <= b.size()` / `off + 4 <= b.size()` first.
std::uint16_t be16(Bytes b, std::size_t off) {
    return static_cast<std::uint16_t>((b[off] << 8) | b[off + 1]);
}
std::uint32_t be32(Bytes b, std::size_t off) {
    return (std::uint32_t{b[off]} << 24) | (std::uint32_t{b[off + 1]} << 16) | (std::uint32_t{b[off + 2]} << 8) |
           std::uint32_t{b[off + 3]};
}

namespace ethertype {
constexpr std::uint16_t kIpv4 = 0x0800;
constexpr std::uint16_t kIpv6 = 0x86DD;
constexpr std::uint16_t kVlan = 0x8100;     // 802.1Q
constexpr std::uint16_t kQinQ = 0x88A8;     // 802.1ad
constexpr std::uint16_t kQinQOld = 0x9100;  // pre-standard double tagging
constexpr std::uint16_t kPppoeSession = 0x8864;
}  // namespace ethertype

namespace ipproto {
constexpr std::uint8_t kHopByHop = 0;
constexpr std::uint8_t kIpIp = 4;
constexpr std::uint8_t kIpv6 = 41;
constexpr std::uint8_t kGre = 47;
constexpr std::uint8_t kTcp = 6;
constexpr std::uint8_t kUdp = 17;
constexpr std::uint8_t kRouting = 43;
constexpr std::uint8_t kFragment = 44;
constexpr std::uint8_t kAh = 51;
constexpr std::uint8_t kDestOpts = 60;
}  // namespace ipproto

// Stacked tags beyond this are not real traffic; the bound keeps the loop finite.
constexpr int kMaxVlanTags = 8;
constexpr int kMaxIpv6ExtHeaders = 16;

// Address families seen in NULL/LOOP headers: AF_INET is 2 everywhere,
// AF_INET6 is 10 (Linux), 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS).
int version_from_af(std::uint32_t af) {
    switch (af) {
    case 2: return 4;
    case 10:
    case 24:
    case 28:
    case 30: return 6;
    default: return 0;
    }
}

void copy_address(IpAddress& addr, std::uint8_t family, Bytes from) {
    addr.family = family;
    std::memcpy(addr.bytes.data(), from.data(), family == 6 ? 16 : 4);
}

enum class ExtWalk { Done, Bad, Fragment };

// Skips IPv6 extension headers at the front of `p`, updating `nh`. Stops at
// the first header that is not an extension header (UDP, TCP, ESP, No Next
// Header...) or at a Fragment header that really fragments (its fields go to
// `frag`, unless null; `p` then holds the fragment data).
ExtWalk walk_ipv6_extensions(std::uint8_t& nh, Bytes& p, IpPacket* frag) {
    for (int i = 0; i < kMaxIpv6ExtHeaders; ++i) {
        std::size_t len = 0;
        switch (nh) {
        case ipproto::kHopByHop:
        case ipproto::kRouting:
        case ipproto::kDestOpts:
            if (p.size() < 2) return ExtWalk::Bad;
            len = (std::size_t{p[1]} + 1) * 8;
            break;
        case ipproto::kAh:
            if (p.size() < 2) return ExtWalk::Bad;
            len = (std::size_t{p[1]} + 2) * 4;
            break;
        case ipproto::kFragment: {
            if (p.size() < 8) return ExtWalk::Bad;
            const std::uint16_t off_flags = be16(p, 2);
            nh = p[0];
            const std::uint32_t offset = off_flags & 0xFFF8u;  // 13-bit offset in 8-byte units, already << 3
            const bool more = (off_flags & 1u) != 0;
            const std::uint32_t id = be32(p, 4);
            p = p.subspan(8);
            // An atomic fragment (offset 0, M clear; RFC 6946) is a whole datagram.
            if (offset != 0 || more) {
                if (frag) {
                    frag->is_fragment = true;
                    frag->more_fragments = more;
                    frag->fragment_offset = offset;
                    frag->fragment_id = id;
                }
                return ExtWalk::Fragment;
            }
            continue;
        }
        default:
            return ExtWalk::Done;
        }
        if (len > p.size()) return ExtWalk::Bad;
        nh = p[0];
        p = p.subspan(len);
    }
    return ExtWalk::Bad;
}

// RFC 2675: payload length 0 with a Hop-by-Hop header carrying a Jumbo
// Payload option. Returns 0 when there is none.
std::uint32_t ipv6_jumbo_length(Bytes hbh) {
    if (hbh.size() < 2) return 0;
    const std::size_t len = (std::size_t{hbh[1]} + 1) * 8;
    if (len > hbh.size()) return 0;
    std::size_t pos = 2;
    while (pos < len) {
        const std::uint8_t type = hbh[pos];
        if (type == 0) {  // Pad1
            ++pos;
            continue;
        }
        if (pos + 2 > len) return 0;
        const std::size_t opt_len = hbh[pos + 1];
        if (pos + 2 + opt_len > len) return 0;
        if (type == 0xC2 && opt_len == 4) return be32(hbh, pos + 2);
        pos += 2 + opt_len;
    }
    return 0;
}

}  // namespace

std::string_view Decoder::link_type_name(std::uint32_t link_type) {
    switch (link_type) {
    case capture::linktype::kNull: return "null";
    case capture::linktype::kEthernet: return "ethernet";
    case capture::linktype::kRaw: return "raw";
    case capture::linktype::kLoop: return "loop";
    case capture::linktype::kLinuxSll: return "linux_sll";
    case capture::linktype::kIpv4: return "ipv4";
    case capture::linktype::kIpv6: return "ipv6";
    case capture::linktype::kLinuxSll2: return "linux_sll2";
    case capture::linktype::kRawOpenBsd: return "raw_dlt14";
    case capture::linktype::kRawDlt12: return "raw_dlt12";
    case capture::linktype::kNflog: return "nflog";
    default: return "other";
    }
}

void Decoder::count_link(std::uint32_t link_type) {
    for (std::size_t i = 0; i < kLinkSlots; ++i) {
        if (kLinkValues[i] == link_type) {
            ++link_counts_[i];
            return;
        }
    }
    ++other_link_count_;
}

std::uint64_t Decoder::link_type_count(std::uint32_t link_type) const {
    for (std::size_t i = 0; i < kLinkSlots; ++i)
        if (kLinkValues[i] == link_type) return link_counts_[i];
    return 0;
}

bool Decoder::decode_link(const capture::Packet& packet, IpPacket& out) {
    reset(out);
    count_link(packet.link_type);
    const Bytes data = packet.data;

    switch (packet.link_type) {
    case capture::linktype::kEthernet:
        if (data.size() < 14) break;
        return decode_ethertype(be16(data, 12), data.subspan(14), out);
    case capture::linktype::kLinuxSll:
        if (data.size() < 16) break;
        return decode_ethertype(be16(data, 14), data.subspan(16), out);
    case capture::linktype::kLinuxSll2:
        if (data.size() < 20) break;
        return decode_ethertype(be16(data, 0), data.subspan(20), out);
    case capture::linktype::kNull:
    case capture::linktype::kLoop: {
        if (data.size() < 4) break;
        std::uint32_t af = be32(data, 0);
        // NULL is in the capturing host's byte order, which the file does not
        // say; AF values are small, so the order with a non-zero high half is
        // the wrong one.
        if (packet.link_type == capture::linktype::kNull && (af & 0xFFFF0000u) != 0)
            af = (af >> 24) | ((af >> 8) & 0xFF00u) | ((af << 8) & 0xFF0000u) | (af << 24);
        const int version = version_from_af(af);
        if (version == 0) {
            anomalies_.add(Anomaly::NotIp);
            return false;
        }
        return decode_ip(data.subspan(4), version, out);
    }
    case capture::linktype::kRaw:
    case capture::linktype::kRawOpenBsd:
    case capture::linktype::kRawDlt12:
        return decode_ip(data, 0, out);
    case capture::linktype::kIpv4:
        return decode_ip(data, 4, out);
    case capture::linktype::kIpv6:
        return decode_ip(data, 6, out);
    case capture::linktype::kNflog: {
        Bytes payload;
        int version = 0;
        Anomaly why{};
        if (!tunnel::parse_nflog(data, payload, version, why)) {
            anomalies_.add(why);
            return false;
        }
        if (version == 0) {
            anomalies_.add(Anomaly::NotIp);
            return false;
        }
        return decode_ip(payload, version, out);
    }
    default:
        anomalies_.add(Anomaly::UnknownLinkType);
        return false;
    }
    anomalies_.add(Anomaly::LinkTruncated);
    return false;
}

bool Decoder::decode_ethertype(std::uint16_t type, Bytes rest, IpPacket& out) {
    for (int tags = 0;; ++tags) {
        switch (type) {
        case ethertype::kVlan:
        case ethertype::kQinQ:
        case ethertype::kQinQOld:
            if (tags == kMaxVlanTags) {
                anomalies_.add(Anomaly::NotIp);
                return false;
            }
            if (rest.size() < 4) {
                anomalies_.add(Anomaly::LinkTruncated);
                return false;
            }
            if (!out.encap.has_vlan) {
                out.encap.vlan = be16(rest, 0) & 0x0FFFu;
                out.encap.has_vlan = true;
            }
            type = be16(rest, 2);
            rest = rest.subspan(4);
            continue;
        case ethertype::kPppoeSession: {
            // 6-byte PPPoE header, then the 2-byte PPP protocol.
            if (rest.size() < 8) {
                anomalies_.add(Anomaly::LinkTruncated);
                return false;
            }
            const std::uint16_t ppp = be16(rest, 6);
            if (ppp == 0x0021) return decode_ip(rest.subspan(8), 4, out);
            if (ppp == 0x0057) return decode_ip(rest.subspan(8), 6, out);
            anomalies_.add(Anomaly::NotIp);
            return false;
        }
        case ethertype::kIpv4: return decode_ip(rest, 4, out);
        case ethertype::kIpv6: return decode_ip(rest, 6, out);
        default: anomalies_.add(Anomaly::NotIp); return false;
        }
    }
}

bool Decoder::decode_ip(Bytes bytes, int expect_version, IpPacket& out) {
    if (bytes.empty()) {
        anomalies_.add(Anomaly::IpTruncated);
        return false;
    }
    const int version = bytes[0] >> 4;
    if ((expect_version != 0 && version != expect_version) || (version != 4 && version != 6)) {
        anomalies_.add(Anomaly::IpBadVersion);
        return false;
    }
    return version == 4 ? decode_ipv4(bytes, out) : decode_ipv6(bytes, out);
}

bool Decoder::decode_ipv4(Bytes bytes, IpPacket& out) {
    if (bytes.size() < 20) {
        anomalies_.add(Anomaly::IpTruncated);
        return false;
    }
    const std::size_t header_len = std::size_t{bytes[0] & 0x0Fu} * 4;
    if (header_len < 20) {
        anomalies_.add(Anomaly::IpBadHeaderLength);
        return false;
    }
    const std::size_t total_len = be16(bytes, 2);
    if (total_len < header_len) {
        anomalies_.add(Anomaly::IpBadTotalLength);
        return false;
    }
    copy_address(out.src, 4, bytes.subspan(12, 4));
    copy_address(out.dst, 4, bytes.subspan(16, 4));
    out.protocol = bytes[9];
    const std::uint16_t frag = be16(bytes, 6);
    out.fragment_id = be16(bytes, 4);
    out.fragment_offset = std::uint32_t{frag & 0x1FFFu} * 8;
    out.more_fragments = (frag & 0x2000u) != 0;
    out.is_fragment = out.more_fragments || out.fragment_offset != 0;
    if (total_len > bytes.size()) {
        out.truncated = true;
        anomalies_.add(Anomaly::IpSnapped);
        return false;
    }
    // Cutting at total_len drops Ethernet padding and trailers.
    out.payload = bytes.subspan(header_len, total_len - header_len);
    return true;
}

bool Decoder::decode_ipv6(Bytes bytes, IpPacket& out) {
    if (bytes.size() < 40) {
        anomalies_.add(Anomaly::IpTruncated);
        return false;
    }
    std::size_t payload_len = be16(bytes, 4);
    std::uint8_t nh = bytes[6];
    copy_address(out.src, 6, bytes.subspan(8, 16));
    copy_address(out.dst, 6, bytes.subspan(24, 16));
    out.protocol = nh;
    Bytes rest = bytes.subspan(40);
    if (payload_len == 0 && nh == ipproto::kHopByHop) payload_len = ipv6_jumbo_length(rest);
    if (payload_len > rest.size()) {
        out.truncated = true;
        anomalies_.add(Anomaly::IpSnapped);
        return false;
    }
    rest = rest.first(payload_len);
    const ExtWalk walk = walk_ipv6_extensions(nh, rest, &out);
    if (walk == ExtWalk::Bad) {
        anomalies_.add(Anomaly::Ipv6BadExtension);
        return false;
    }
    out.protocol = nh;
    out.payload = rest;
    return true;
}

bool Decoder::decode_transport(const IpPacket& ip, std::uint64_t timestamp_ns, Segment& out) {
    if (ip.is_fragment || ip.truncated) return false;
    reset(out);
    out.timestamp_ns = timestamp_ns;
    out.src = ip.src;
    out.dst = ip.dst;
    out.encap = ip.encap;

    Bytes p(ip.payload.data(), ip.payload.size());  // see decapsulate()
    std::uint8_t proto = ip.protocol;
    if (ip.src.family == 6) {
        // No IpPacket for fragment fields it would not keep: one cleared per
        // IPv6 packet is what decode::reset() avoids.
        if (walk_ipv6_extensions(proto, p, nullptr) != ExtWalk::Done) {
            anomalies_.add(Anomaly::Ipv6BadExtension);
            return false;
        }
    }

    if (proto == ipproto::kUdp) {
        if (p.size() < 8) {
            anomalies_.add(Anomaly::UdpTruncated);
            return false;
        }
        std::size_t udp_len = be16(p, 4);
        // 0 is a jumbogram (RFC 2675): the length is the IP payload's.
        if (udp_len == 0) udp_len = p.size();
        if (udp_len < 8 || udp_len > p.size()) {
            anomalies_.add(Anomaly::UdpBadLength);
            return false;
        }
        out.transport = Transport::Udp;
        out.src_port = be16(p, 0);
        out.dst_port = be16(p, 2);
        out.payload = p.subspan(8, udp_len - 8);
        return true;
    }
    if (proto == ipproto::kTcp) {
        if (p.size() < 20) {
            anomalies_.add(Anomaly::TcpTruncated);
            return false;
        }
        const std::size_t data_offset = std::size_t{static_cast<std::uint8_t>(p[12] >> 4)} * 4;
        if (data_offset < 20 || data_offset > p.size()) {
            anomalies_.add(Anomaly::TcpBadOffset);
            return false;
        }
        out.transport = Transport::Tcp;
        out.src_port = be16(p, 0);
        out.dst_port = be16(p, 2);
        out.seq = be32(p, 4);
        out.ack = be32(p, 8);
        out.tcp_flags = p[13];
        out.payload = p.subspan(data_offset);
        return true;
    }
    anomalies_.add(Anomaly::NotUdpTcp);
    return false;
}

bool Decoder::is_dns_port(std::uint16_t port) const {
    return std::find(config_.dns_ports.begin(), config_.dns_ports.end(), port) != config_.dns_ports.end();
}

Decap Decoder::decapsulate(const IpPacket& outer, IpPacket& inner) {
    if (outer.is_fragment || outer.truncated) return Decap::None;
    // Pointer and size read apart: decode_link() has just stored them
    // apart, and one 16-byte load of both cannot be forwarded from those
    // two stores (a stall of a dozen cycles per packet, measured).
    Bytes p(outer.payload.data(), outer.payload.size());
    std::uint8_t proto = outer.protocol;
    if (outer.src.family == 6) {
        // A reassembled IPv6 datagram may still start with extension
        // headers; a bad chain is decode_transport's to count.
        if (walk_ipv6_extensions(proto, p, nullptr) != ExtWalk::Done) return Decap::None;
    }

    // Which tunnel, if any (cheap checks only: the common case is DNS).
    enum class Kind : std::uint8_t { Gre, IpIp, Ipv6InIp, Vxlan, Geneve, Gtpu } kind{};
    switch (proto) {
    case ipproto::kGre: kind = Kind::Gre; break;
    case ipproto::kIpIp: kind = Kind::IpIp; break;
    case ipproto::kIpv6: kind = Kind::Ipv6InIp; break;
    case ipproto::kUdp: {
        if (p.size() < 8) return Decap::None;  // decode_transport counts it
        const std::uint16_t sport = be16(p, 0);
        const std::uint16_t dport = be16(p, 2);
        if (dport == 0) return Decap::None;
        if (dport == config_.vxlan_port)
            kind = Kind::Vxlan;
        else if (dport == config_.geneve_port)
            kind = Kind::Geneve;
        else if (dport == config_.gtpu_port)
            kind = Kind::Gtpu;
        else
            return Decap::None;
        if (is_dns_port(sport) || is_dns_port(dport)) return Decap::None;
        std::size_t udp_len = be16(p, 4);
        if (udp_len == 0) udp_len = p.size();  // jumbogram
        if (udp_len < 8 || udp_len > p.size()) return Decap::None;  // decode_transport counts it
        p = p.subspan(8, udp_len - 8);
        break;
    }
    default: return Decap::None;
    }
    if (outer.encap.depth >= config_.max_depth) {
        anomalies_.add(Anomaly::TunnelTooDeep);
        return Decap::Dropped;
    }

    tunnel::Layer layer;
    Anomaly why{};
    bool ok = true;
    switch (kind) {
    case Kind::Gre: ok = tunnel::parse_gre(p, layer, why); break;
    case Kind::IpIp: layer = tunnel::Layer{TunnelKind::IpIp, tunnel::Next::Ipv4, p, 0, false}; break;
    case Kind::Ipv6InIp: layer = tunnel::Layer{TunnelKind::Ipv6InIp, tunnel::Next::Ipv6, p, 0, false}; break;
    case Kind::Vxlan: ok = tunnel::parse_vxlan(p, layer, why); break;
    case Kind::Geneve: ok = tunnel::parse_geneve(p, layer, why); break;
    case Kind::Gtpu: ok = tunnel::parse_gtpu(p, layer, why); break;
    }
    if (!ok) {
        anomalies_.add(why);
        return Decap::Dropped;
    }
    decapsulated_.add(layer.kind);

    reset(inner);
    inner.encap = outer.encap;
    if (inner.encap.depth == 0) {
        inner.encap.tunnel = layer.kind;
        inner.encap.tunnel_id = layer.id;
        inner.encap.has_tunnel_id = layer.has_id;
        inner.encap.outer_src = outer.src;
        inner.encap.outer_dst = outer.dst;
    }
    ++inner.encap.depth;

    const Bytes b = layer.payload;
    bool decoded = false;
    switch (layer.next) {
    case tunnel::Next::Ethernet:
        if (b.size() < 14) {
            anomalies_.add(Anomaly::LinkTruncated);
            return Decap::Dropped;
        }
        decoded = decode_ethertype(be16(b, 12), b.subspan(14), inner);
        break;
    case tunnel::Next::Ipv4: decoded = decode_ip(b, 4, inner); break;
    case tunnel::Next::Ipv6: decoded = decode_ip(b, 6, inner); break;
    case tunnel::Next::Ip: decoded = decode_ip(b, 0, inner); break;
    }
    return decoded ? Decap::Inner : Decap::Dropped;
}

}  // namespace sidetap::decode
