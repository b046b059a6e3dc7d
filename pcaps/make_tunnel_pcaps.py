#!/usr/bin/env python3
"""Write the purpose-made tunnel and NFLOG captures, and their section of
README.md.

DNS exchanges as a traffic mirror or an overlay network delivers them: GRE
(checksum/key/sequence fields, IPv4, IPv6 and Ethernet payloads), ERSPAN
types I, II and III, VXLAN, Geneve (with options, Ethernet and IP payloads),
GTP-U (sequence numbers, extension headers), IP-in-IP and IPv6-in-IP in
IPv4 and IPv6, tunnels nested in tunnels, VLAN tags inside tunnels, outer
and inner IP fragments, DNS over TCP inside a tunnel, malformed and
truncated encapsulations, and Linux NFLOG records (LINKTYPE_NFLOG 239) in
both TLV byte orders.

Deterministic and stdlib-only; it reuses make_pcaps.py's DNS/IP helpers:

    python3 pcaps/make_tunnel_pcaps.py            # writes next to this script
    python3 pcaps/make_tunnel_pcaps.py --out DIR  # writes somewhere else

make_pcaps.py rewrites README.md from scratch: run this script after it
(its section sits between the TUNNEL-PCAPS markers and is replaced in place).
All IPv4 header, UDP, TCP and GRE checksums are correct.
"""

import ipaddress
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_pcaps as mp  # noqa: E402

US = 1000
MS = 1000 * US
BASE = 1_700_002_000_000_000_000  # 2023-11-14T22:46:40Z, whole µs (pcap µs files)

PROTO_IPIP, PROTO_TCP, PROTO_UDP, PROTO_IPV6, PROTO_FRAG, PROTO_GRE, PROTO_DSTOPTS = 4, 6, 17, 41, 44, 47, 60
ETH_TEB, ETH_ERSPAN2, ETH_ERSPAN3, ETH_MPLS, ETH_ARP = 0x6558, 0x88BE, 0x22EB, 0x8847, 0x0806
VXLAN_PORT, GENEVE_PORT, GTPU_PORT = 4789, 6081, 2152
LINKTYPE_NFLOG = 239

# Tunnel endpoints: a mirror source and the collector sidetap runs on.
MIRROR4, COLLECTOR4 = "198.51.100.1", "198.51.100.2"
MIRROR6, COLLECTOR6 = "2001:db8:ffff::1", "2001:db8:ffff::2"
# Endpoints of tunnels nested inside the outer one.
HOP4 = ["203.0.113.%d" % i for i in range(1, 11)]


# ---------------------------------------------------------------- IP layers

_ids = [0x6000]


def next_id():
    _ids[0] += 1
    return _ids[0]


def ipv4(src, dst, proto, payload, ident=None, frag_field=0x4000):
    """IPv4 header (checksum correct) + payload; frag_field = flags + offset/8."""
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), next_id() if ident is None else ident,
                         frag_field, 64, proto, 0, ipaddress.IPv4Address(src).packed,
                         ipaddress.IPv4Address(dst).packed)
    return header[:10] + struct.pack("!H", mp.checksum(header)) + header[12:] + payload


def ipv6(src, dst, nh, payload):
    return mp.ipv6(src, dst, nh, payload)


def ip(src, dst, proto, payload):
    if ipaddress.ip_address(src).version == 4:
        return ipv4(src, dst, proto, payload)
    return ipv6(src, dst, proto, payload)


def udp(src, dst, sport, dport, payload):
    return mp.udp(src, dst, sport, dport, payload)


def ip_udp(src, dst, sport, dport, payload):
    return ip(src, dst, PROTO_UDP, udp(src, dst, sport, dport, payload))


def tcp(src, dst, sport, dport, seq, ack, flags, payload=b""):
    header = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    seg = header + payload
    if a.version == 4:
        pseudo = a.packed + b.packed + struct.pack("!BBH", 0, PROTO_TCP, len(seg))
    else:
        pseudo = a.packed + b.packed + struct.pack("!IxxxB", len(seg), PROTO_TCP)
    return seg[:16] + struct.pack("!H", mp.checksum(pseudo + seg)) + seg[18:]


def fragments4(datagram, chunk):
    """Splits an IPv4 datagram (no options) into fragments of `chunk` data
    bytes (a multiple of 8), same id, checksums recomputed."""
    src, dst = datagram[12:16], datagram[16:20]
    proto, ident, data = datagram[9], struct.unpack("!H", datagram[4:6])[0], datagram[20:]
    out = []
    for off in range(0, len(data), chunk):
        part = data[off:off + chunk]
        more = off + chunk < len(data)
        out.append(ipv4(str(ipaddress.IPv4Address(src)), str(ipaddress.IPv4Address(dst)), proto, part, ident,
                        (0x2000 if more else 0) | (off // 8)))
    return out


def fragments6(src, dst, nh, payload, ident, chunk):
    """IPv6 datagram of `payload` split into Fragment-header fragments."""
    out = []
    for off in range(0, len(payload), chunk):
        part = payload[off:off + chunk]
        more = off + chunk < len(payload)
        fh = struct.pack("!BBHI", nh, 0, off | (1 if more else 0), ident)
        out.append(ipv6(src, dst, PROTO_FRAG, fh + part))
    return out


def eth(datagram, tags=(), ethertype=None, to_server=True):
    return mp.ethernet(datagram, to_server, tags=tags, ethertype=ethertype)


# ---------------------------------------------------------------- tunnel headers

def gre(proto, payload, key=None, seq=None, csum=False, flags_extra=0):
    flags = (0x8000 if csum else 0) | (0x2000 if key is not None else 0) | (0x1000 if seq is not None else 0)
    flags |= flags_extra
    fields = b""
    if csum:
        fields += b"\x00\x00\x00\x00"
    if key is not None:
        fields += struct.pack("!I", key)
    if seq is not None:
        fields += struct.pack("!I", seq)
    pkt = struct.pack("!HH", flags, proto) + fields + payload
    if csum:
        c = mp.checksum(pkt)
        pkt = pkt[:4] + struct.pack("!H", c) + pkt[6:]
    return pkt


def erspan2(frame, session, vlan=0, index=0):
    return struct.pack("!HHI", (1 << 12) | vlan, session & 0x3FF, index & 0xFFFFF) + frame


def erspan3(frame, session, vlan=0, ft=0, subheader=None, timestamp=0x01020304, sgt=0):
    word = (ft << 10) | (1 if subheader is not None else 0)
    return struct.pack("!HHIHH", (2 << 12) | vlan, session & 0x3FF, timestamp, sgt, word) + (subheader or b"") + frame


def vxlan(frame, vni, flags=0x08):
    return struct.pack("!BxxxI", flags, vni << 8) + frame


def geneve(payload, proto, vni, options=b"", version=0, optlen=None):
    optlen = len(options) // 4 if optlen is None else optlen
    return struct.pack("!BBHI", (version << 6) | optlen, 0, proto, vni << 8) + options + payload


def geneve_option(cls, typ, data):
    return struct.pack("!HBB", cls, typ, len(data) // 4) + data


def gtpu(packet, teid, seq=None, extensions=(), msg_type=0xFF, flags=None, length=None):
    """GTPv1-U; extensions: [(type, content)] with len(content) + 2 a multiple of 4."""
    e = bool(extensions)
    opt = b""
    if seq is not None or e:
        next_type = extensions[0][0] if e else 0
        opt = struct.pack("!HBB", seq or 0, 0, next_type)
        for i, (_, content) in enumerate(extensions):
            nxt = extensions[i + 1][0] if i + 1 < len(extensions) else 0
            opt += bytes([(len(content) + 2) // 4]) + content + bytes([nxt])
    if flags is None:
        flags = 0x30 | (0x04 if e else 0) | (0x02 if seq is not None else 0)
    body = opt + packet
    return struct.pack("!BBHI", flags, msg_type, len(body) if length is None else length, teid) + body


def udp_tunnel(src, dst, dport, payload, sport=None):
    """An outer UDP datagram to a tunnel port; the source port stands for
    the flow-hash ports tunnel endpoints use (above the destination port)."""
    return ip_udp(src, dst, sport or 50000 + len(payload) % 1000, dport, payload)


# ---------------------------------------------------------------- DNS

CLIENT4, SERVER4, CLIENT6, SERVER6 = mp.CLIENT4, mp.SERVER4, mp.CLIENT6, mp.SERVER6


class Exchanges:
    """Unique DNS ids and client ports per file."""

    def __init__(self, first_id, first_port):
        self.id, self.port = first_id, first_port

    def next(self, v6=False, big=False):
        """(query datagram, response datagram) between the fixed client and
        server; `big` makes a ~3 KB response (TXT records)."""
        self.id += 1
        self.port += 1
        name = "t%04x.example.test" % self.id
        q = mp.dns_message(self.id, name, mp.TYPE_TXT if big else (mp.TYPE_AAAA if v6 else mp.TYPE_A))
        if big:
            txt = b"x" * 250
            answers = [mp.dns_rr(name, mp.TYPE_TXT, bytes([len(txt)]) + txt) for _ in range(12)]
            r = mp.dns_message(self.id, name, mp.TYPE_TXT, response=True, answers=answers)
        elif v6:
            r = mp.dns_message(self.id, name, mp.TYPE_AAAA, response=True,
                               answers=[mp.dns_rr(name, mp.TYPE_AAAA, ipaddress.IPv6Address("2001:db8::80").packed)])
        else:
            r = mp.dns_message(self.id, name, mp.TYPE_A, response=True,
                               answers=[mp.dns_rr(name, mp.TYPE_A, ipaddress.IPv4Address("192.0.2.80").packed)])
        c, s = (CLIENT6, SERVER6) if v6 else (CLIENT4, SERVER4)
        return ip_udp(c, s, self.port, 53, q), ip_udp(s, c, 53, self.port, r)


class Frames:
    """Frames with times: each exchange 10 ms after the previous one, the
    response 1 ms after its query."""

    def __init__(self, start):
        self.t, self.frames = start, []

    def add(self, frame, dt=1 * MS):
        self.frames.append((self.t, frame))
        self.t += dt

    def pair(self, wrap, q, r):
        self.add(wrap(q, True))
        self.add(wrap(r, False), 9 * MS)

    def pcap(self, linktype=mp.LINKTYPE_ETHERNET, big_endian=False):
        return mp.pcap_bytes([(t, f, None) for t, f in self.frames], linktype, big_endian=big_endian)


def outer4(proto, payload, tags=()):
    return eth(ipv4(MIRROR4, COLLECTOR4, proto, payload), tags)


def outer6(nh, payload):
    return eth(ipv6(MIRROR6, COLLECTOR6, nh, payload))


# ---------------------------------------------------------------- captures

def make_gre():
    ex, f = Exchanges(0x7100, 44100), Frames(BASE)
    # Plain GRE, IPv4 inside, behind an 802.1Q tag on the captured link.
    f.pair(lambda d, s: outer4(PROTO_GRE, gre(mp.ETH_IPV4, d), tags=[(mp.ETH_8021Q, 42)]), *ex.next())
    # Checksum + key + sequence number (RFC 2784/2890), sequence per direction.
    q, r = ex.next()
    f.add(outer4(PROTO_GRE, gre(mp.ETH_IPV4, q, key=0x1234, seq=1, csum=True)))
    f.add(outer4(PROTO_GRE, gre(mp.ETH_IPV4, r, key=0x1234, seq=2, csum=True)), 9 * MS)
    # IPv6 inside, key only.
    f.pair(lambda d, s: outer4(PROTO_GRE, gre(mp.ETH_IPV6, d, key=7)), *ex.next(v6=True))
    # Transparent Ethernet bridging (0x6558, as NVGRE), inner frame VLAN-tagged.
    f.pair(lambda d, s: outer4(PROTO_GRE, gre(ETH_TEB, eth(d, [(mp.ETH_8021Q, 300)], to_server=s), key=0x10000)),
           *ex.next())
    # GRE over IPv6 carrying IPv4 and IPv6.
    f.pair(lambda d, s: outer6(PROTO_GRE, gre(mp.ETH_IPV4, d)), *ex.next())
    f.pair(lambda d, s: outer6(PROTO_GRE, gre(mp.ETH_IPV6, d, seq=9)), *ex.next(v6=True))
    return f.pcap()


def make_erspan():
    ex, f = Exchanges(0x7200, 44200), Frames(BASE)
    # Type I: GRE 0x88BE without the sequence bit, Ethernet right after GRE.
    f.pair(lambda d, s: outer4(PROTO_GRE, gre(ETH_ERSPAN2, eth(d, to_server=s))), *ex.next())
    # Type II (GRE sequence bit set), session 100, original VLAN 10.
    seq = [0]

    def type2(d, s, v6_outer=False):
        seq[0] += 1
        payload = gre(ETH_ERSPAN2, erspan2(eth(d, to_server=s), 100, vlan=10, index=5), seq=seq[0])
        return outer6(PROTO_GRE, payload) if v6_outer else outer4(PROTO_GRE, payload)

    f.pair(type2, *ex.next())
    f.pair(type2, *ex.next(v6=True))
    f.pair(lambda d, s: type2(d, s, v6_outer=True), *ex.next())
    # Type III (0x22EB), without and with the platform-specific subheader
    # (platform id 7: reserved, source index, upper timestamp).
    f.pair(lambda d, s: outer4(PROTO_GRE, gre(ETH_ERSPAN3, erspan3(eth(d, to_server=s), 200), seq=1)), *ex.next())
    sub = struct.pack("!II", (7 << 26) | 0x12345, 0x0A0B0C0D)
    f.pair(lambda d, s: outer4(PROTO_GRE, gre(ETH_ERSPAN3, erspan3(eth(d, [(mp.ETH_8021Q, 77)], to_server=s), 201,
                                                                subheader=sub), seq=2)), *ex.next(v6=True))
    return f.pcap()


def make_vxlan():
    ex, f = Exchanges(0x7300, 44300), Frames(BASE)

    def vx(d, s, vni=5001, tags=(), v6_outer=False):
        inner = vxlan(eth(d, tags, to_server=s), vni)
        if v6_outer:
            return eth(udp_tunnel(MIRROR6, COLLECTOR6, VXLAN_PORT, inner))
        return eth(udp_tunnel(MIRROR4, COLLECTOR4, VXLAN_PORT, inner))

    f.pair(vx, *ex.next())
    f.pair(lambda d, s: vx(d, s, 5002, tags=[(mp.ETH_8021Q, 100)]), *ex.next())                     # VLAN inside
    f.pair(lambda d, s: vx(d, s, 5003, tags=[(mp.ETH_8021AD, 200), (mp.ETH_8021Q, 300)]), *ex.next(v6=True))
    f.pair(lambda d, s: vx(d, s, 5004, v6_outer=True), *ex.next(v6=True))
    f.pair(lambda d, s: vx(d, s, 5005, v6_outer=True), *ex.next())
    # DNS over TCP inside VXLAN: handshake, query, response, close.
    cport, cisn, sisn = 44399, 0x10000000, 0x20000000
    q, r = (mp.dns_message(0x73FF, "tcp.example.test", mp.TYPE_A),
            mp.dns_message(0x73FF, "tcp.example.test", mp.TYPE_A, response=True,
                           answers=[mp.dns_rr("tcp.example.test", mp.TYPE_A,
                                              ipaddress.IPv4Address("192.0.2.81").packed)]))
    qf, rf = struct.pack("!H", len(q)) + q, struct.pack("!H", len(r)) + r
    segs = [(True, cisn, 0, 0x02, b""), (False, sisn, cisn + 1, 0x12, b""), (True, cisn + 1, sisn + 1, 0x10, b""),
            (True, cisn + 1, sisn + 1, 0x18, qf), (False, sisn + 1, cisn + 1 + len(qf), 0x18, rf),
            (True, cisn + 1 + len(qf), sisn + 1 + len(rf), 0x11, b""),
            (False, sisn + 1 + len(rf), cisn + 2 + len(qf), 0x11, b""),
            (True, cisn + 2 + len(qf), sisn + 2 + len(rf), 0x10, b"")]
    for to_server, seq, ack, flags, data in segs:
        a, b, sp, dp = (CLIENT4, SERVER4, cport, 53) if to_server else (SERVER4, CLIENT4, 53, cport)
        f.add(vx(ipv4(a, b, PROTO_TCP, tcp(a, b, sp, dp, seq, ack, flags, data)), to_server, 5006), 100 * US)
    return f.pcap()


def make_geneve():
    ex, f = Exchanges(0x7400, 44400), Frames(BASE)
    opts = geneve_option(0x0103, 0x80, b"\x00\x00\x00\x2a") + geneve_option(0x0104, 0x01, b"")

    def gen(d, s, proto, payload_fn, options=b"", v6_outer=False):
        inner = geneve(payload_fn(d, s), proto, 6001, options)
        if v6_outer:
            return eth(udp_tunnel(MIRROR6, COLLECTOR6, GENEVE_PORT, inner))
        return eth(udp_tunnel(MIRROR4, COLLECTOR4, GENEVE_PORT, inner))

    as_eth = lambda d, s: eth(d, to_server=s)  # noqa: E731
    as_ip = lambda d, s: d  # noqa: E731
    f.pair(lambda d, s: gen(d, s, ETH_TEB, as_eth), *ex.next())                      # no options
    f.pair(lambda d, s: gen(d, s, ETH_TEB, as_eth, opts), *ex.next(v6=True))         # two options
    f.pair(lambda d, s: gen(d, s, mp.ETH_IPV4, as_ip, opts), *ex.next())             # IPv4 directly (as AWS GWLB)
    f.pair(lambda d, s: gen(d, s, mp.ETH_IPV6, as_ip, v6_outer=True), *ex.next(v6=True))
    return f.pcap()


def make_gtpu():
    ex, f = Exchanges(0x7500, 44500), Frames(BASE)

    def gt(d, s, teid, v6_outer=False, **kw):
        inner = gtpu(d, teid, **kw)
        src, dst = (MIRROR6, COLLECTOR6) if v6_outer else (MIRROR4, COLLECTOR4)
        return eth(ip_udp(src, dst, GTPU_PORT, GTPU_PORT, inner))

    f.pair(lambda d, s: gt(d, s, 0x11111111), *ex.next())                                  # plain G-PDU
    f.pair(lambda d, s: gt(d, s, 0x22222222, seq=77), *ex.next(v6=True))                   # sequence number
    # PDU Session Container extension (0x85, 5G N3), QFI 9.
    f.pair(lambda d, s: gt(d, s, 0x33333333, extensions=[(0x85, b"\x10\x09")]), *ex.next())
    # Two extension headers: UDP port (0x40) then PDU Session Container.
    f.pair(lambda d, s: gt(d, s, 0x44444444, seq=3,
                           extensions=[(0x40, b"\x08\x68"), (0x85, b"\x00\x05")]), *ex.next(v6=True))
    f.pair(lambda d, s: gt(d, s, 0x55555555, v6_outer=True), *ex.next())
    # Echo request (not a G-PDU): counted, nothing to decode.
    f.add(eth(ip_udp(MIRROR4, COLLECTOR4, GTPU_PORT, GTPU_PORT, gtpu(b"", 0, seq=1, msg_type=1))), 9 * MS)
    return f.pcap()


def make_ipip():
    ex, f = Exchanges(0x7600, 44600), Frames(BASE)
    f.pair(lambda d, s: outer4(PROTO_IPIP, d), *ex.next())                 # 4in4
    f.pair(lambda d, s: outer4(PROTO_IPV6, d), *ex.next(v6=True))          # 6in4 (protocol 41)
    f.pair(lambda d, s: outer6(PROTO_IPIP, d), *ex.next())                 # 4in6
    f.pair(lambda d, s: outer6(PROTO_IPV6, d), *ex.next(v6=True))          # 6in6
    # 6in6 as Linux ip6tnl sends it: a Destination Options header with the
    # Tunnel Encapsulation Limit option (RFC 2473) before the inner packet.
    tel = struct.pack("!BB", PROTO_IPV6, 0) + b"\x04\x01\x04" + b"\x01\x01\x00"
    f.pair(lambda d, s: outer6(PROTO_DSTOPTS, tel + d), *ex.next(v6=True))
    return f.pcap()


def make_nested():
    ex, f = Exchanges(0x7700, 44700), Frames(BASE)

    # VXLAN inside GRE.
    def vx_in_gre(d, s):
        vx = udp_tunnel(HOP4[0], HOP4[1], VXLAN_PORT, vxlan(eth(d, to_server=s), 9001))
        return outer4(PROTO_GRE, gre(mp.ETH_IPV4, vx, key=1))

    # GTP-U (IPv6 user traffic) mirrored by ERSPAN II.
    def gtp_in_erspan(d, s):
        gt = eth(ip_udp(HOP4[2], HOP4[3], GTPU_PORT, GTPU_PORT, gtpu(d, 0xABCDEF01)), to_server=s)
        return outer4(PROTO_GRE, gre(ETH_ERSPAN2, erspan2(gt, 300), seq=1))

    # Four tunnels (the default bound): GRE -> IPIP -> VXLAN -> Geneve -> DNS.
    def four(d, s):
        g = udp_tunnel(HOP4[6], HOP4[7], GENEVE_PORT, geneve(d, mp.ETH_IPV4, 77))
        v = udp_tunnel(HOP4[4], HOP4[5], VXLAN_PORT, vxlan(eth(g, [(mp.ETH_8021Q, 5)], to_server=s), 66))
        i = ipv4(HOP4[8], HOP4[9], PROTO_IPIP, v)
        return outer6(PROTO_GRE, gre(mp.ETH_IPV4, i))

    f.pair(vx_in_gre, *ex.next())
    f.pair(gtp_in_erspan, *ex.next(v6=True))
    f.pair(four, *ex.next())
    return f.pcap()


def make_fragments():
    ex, f = Exchanges(0x7800, 44800), Frames(BASE)
    # (a) Outer IPv4 fragments: GRE carrying a 3 KB response, split by the
    # outer IP layer; the second outer fragment comes first.
    q, r = ex.next(big=True)
    f.add(outer4(PROTO_GRE, gre(mp.ETH_IPV4, q)))
    frs = fragments4(ipv4(MIRROR4, COLLECTOR4, PROTO_GRE, gre(mp.ETH_IPV4, r)), 1480)
    for fr in [frs[1], frs[0], frs[2]]:
        f.add(eth(fr), 100 * US)
    f.t += 9 * MS
    # (b) Inner IPv4 fragments, each in its own VXLAN packet.
    q, r = ex.next(big=True)
    f.add(eth(udp_tunnel(MIRROR4, COLLECTOR4, VXLAN_PORT, vxlan(eth(q), 10))))
    for fr in fragments4(r, 1400):
        f.add(eth(udp_tunnel(MIRROR4, COLLECTOR4, VXLAN_PORT, vxlan(eth(fr, to_server=False), 10))), 100 * US)
    f.t += 9 * MS
    # (c) Both: inner IPv6 fragments of 1448 bytes in GRE over IPv4, each
    # too large for the outer 1500-byte MTU, so the outer layer splits them.
    q, r = ex.next(v6=True, big=True)
    f.add(outer4(PROTO_GRE, gre(mp.ETH_IPV6, q)))
    inner = fragments6(SERVER6, CLIENT6, PROTO_UDP, r[40:], 0xC0FFEE, 1448)
    for fr in inner:
        for piece in fragments4(ipv4(MIRROR4, COLLECTOR4, PROTO_GRE, gre(mp.ETH_IPV6, fr)), 1480):
            f.add(eth(piece), 100 * US)
    f.t += 9 * MS
    # (d) Outer IPv6 fragments carrying VXLAN (IPv4 inside).
    q, r = ex.next(big=True)
    f.add(eth(udp_tunnel(MIRROR6, COLLECTOR6, VXLAN_PORT, vxlan(eth(q), 11))))
    outer_udp = udp(MIRROR6, COLLECTOR6, 50999, VXLAN_PORT, vxlan(eth(r, to_server=False), 11))
    for fr in fragments6(MIRROR6, COLLECTOR6, PROTO_UDP, outer_udp, 0xBEEF, 1448):
        f.add(eth(fr), 100 * US)
    return f.pcap()


# What tunnel-malformed.pcap holds, in order: (description, frame builder, anomaly counter or None).
def malformed_cases(ex):
    vx = lambda inner: eth(udp_tunnel(MIRROR4, COLLECTOR4, VXLAN_PORT, inner))  # noqa: E731
    gen = lambda inner: eth(udp_tunnel(MIRROR4, COLLECTOR4, GENEVE_PORT, inner))  # noqa: E731
    gt = lambda inner: eth(ip_udp(MIRROR4, COLLECTOR4, GTPU_PORT, GTPU_PORT, inner))  # noqa: E731
    q = [ex.next()[0] for _ in range(18)]

    def five_deep(d):
        for i in range(4):
            d = ipv4(HOP4[i], HOP4[i + 1], PROTO_IPIP, d)
        return outer4(PROTO_IPIP, d)

    return [
        ("GRE header cut after 2 bytes", outer4(PROTO_GRE, b"\x00\x00"), "gre_truncated"),
        ("GRE with K and S bits but no room for them", outer4(PROTO_GRE, struct.pack("!HH", 0x3000, 0x0800)),
         "gre_truncated"),
        ("GRE version 1 (PPTP)", outer4(PROTO_GRE, struct.pack("!HH", 0x2001, 0x880B) + b"\0\0\0\0" + q[0]),
         "gre_unsupported"),
        ("GRE carrying MPLS (0x8847)", outer4(PROTO_GRE, gre(ETH_MPLS, b"\x00\x01\x01\x40" + q[1])),
         "gre_unsupported"),
        ("ERSPAN version 3", outer4(PROTO_GRE, gre(ETH_ERSPAN2, struct.pack("!HHI", 3 << 12, 1, 0) + eth(q[2]),
                                                   seq=1)), "erspan_unsupported"),
        ("ERSPAN II header cut after 5 bytes", outer4(PROTO_GRE, gre(ETH_ERSPAN2, b"\x10\x00\x00\x01\x00", seq=1)),
         "erspan_truncated"),
        ("VXLAN with the I flag clear", vx(vxlan(eth(q[3]), 1, flags=0)), "vxlan_bad_flags"),
        ("VXLAN header of 4 bytes", vx(b"\x08\x00\x00\x00"), "vxlan_truncated"),
        ("Geneve option longer than the option length", gen(geneve(eth(q[4]), ETH_TEB, 1,
                                                                  geneve_option(1, 1, b"\0" * 8), optlen=2)),
         "geneve_bad_options"),
        ("Geneve version 1", gen(geneve(eth(q[5]), ETH_TEB, 1, version=1)), "geneve_unsupported"),
        ("Geneve option length beyond the packet", gen(geneve(b"", ETH_TEB, 1, optlen=16)), "geneve_truncated"),
        ("GTP-U length beyond the datagram", gt(gtpu(q[6], 1, length=len(q[6]) + 100)), "gtpu_truncated"),
        ("GTP-U extension header of length 0", gt(gtpu(q[7], 1, extensions=[(0x85, b"\x10\x09")])[:12] +
                                                   b"\x00\x00\x00\x00" + q[7]), "gtpu_bad_extension"),
        ("GTPv2-C on the GTP-U port", gt(struct.pack("!BBHI", 0x48, 1, 8, 0) + b"\0" * 4), "gtpu_unsupported"),
        ("VXLAN with a 10-byte inner frame", vx(vxlan(b"\x02" * 10, 1)), "link_truncated"),
        ("VXLAN carrying ARP", vx(vxlan(eth(b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\0" * 20,
                                            ethertype=ETH_ARP), 1)), "not_ip"),
        ("IP-in-IP whose inner IPv4 length exceeds the packet", outer4(PROTO_IPIP, q[8][:40]), "ip_snapped"),
        ("five nested IP-in-IP tunnels", five_deep(q[9]), "tunnel_too_deep"),
    ]


def make_malformed():
    ex, f = Exchanges(0x7900, 44900), Frames(BASE)
    for _, frame, _ in malformed_cases(Exchanges(0x7980, 44980)):
        f.add(frame)
    # A good VXLAN exchange, and a plain DNS exchange whose client port is
    # 4789 (a resolver's random source port): DNS, not VXLAN.
    f.t += 9 * MS
    f.pair(lambda d, s: eth(udp_tunnel(MIRROR4, COLLECTOR4, VXLAN_PORT, vxlan(eth(d, to_server=s), 1))), *ex.next())
    name = "port4789.example.test"
    qm = mp.dns_message(0x79FF, name, mp.TYPE_A)
    rm = mp.dns_message(0x79FF, name, mp.TYPE_A, response=True,
                        answers=[mp.dns_rr(name, mp.TYPE_A, ipaddress.IPv4Address("192.0.2.82").packed)])
    f.add(eth(ip_udp(CLIENT4, SERVER4, VXLAN_PORT, 53, qm)))
    f.add(eth(ip_udp(SERVER4, CLIENT4, 53, VXLAN_PORT, rm), to_server=False))
    return f.pcap()


# ---------------------------------------------------------------- NFLOG

NFULA_PACKET_HDR, NFULA_IFINDEX_INDEV, NFULA_PAYLOAD, NFULA_PREFIX, NFULA_UID = 1, 4, 9, 10, 11


def nflog_record(datagram, big_endian=False, prefix=b"dns-in\x00", family=None, tlvs=None):
    """NFLOG header + TLVs (length/type in the capturing host's byte order,
    values big-endian, every TLV padded to 4 bytes)."""
    e = ">" if big_endian else "<"
    v6 = datagram[0] >> 4 == 6 if datagram else False
    if family is None:
        family = 10 if v6 else 2

    def tlv(t, value):
        return struct.pack(e + "HH", 4 + len(value), t) + value + b"\x00" * (-len(value) % 4)

    if tlvs is None:
        tlvs = [(NFULA_PACKET_HDR, struct.pack("!HBx", 0x86DD if v6 else 0x0800, 1)),
                (NFULA_PREFIX, prefix),
                (NFULA_IFINDEX_INDEV, struct.pack("!I", 2)),
                (NFULA_UID, struct.pack("!I", 1000)),
                (NFULA_PAYLOAD, datagram)]
    return struct.pack("!BBH", family, 0, 5) + b"".join(tlv(t, v) for t, v in tlvs)


def make_nflog(big_endian=False):
    ex, f = Exchanges(0x7A00 if not big_endian else 0x7B00, 45000 if not big_endian else 45100), Frames(BASE)
    wrap = lambda d, s: nflog_record(d, big_endian)  # noqa: E731
    f.pair(wrap, *ex.next())
    f.pair(wrap, *ex.next(v6=True))
    # An odd-length prefix (padding before the next TLV).
    f.pair(lambda d, s: nflog_record(d, big_endian, prefix=b"dns\x00\x00"), *ex.next())
    if not big_endian:
        # No payload TLV; a TLV whose length is 2 (malformed).
        e = "<"
        f.add(struct.pack("!BBH", 2, 0, 5) + struct.pack(e + "HH", 8, NFULA_PACKET_HDR) + b"\x08\x00\x01\x00")
        f.add(struct.pack("!BBH", 2, 0, 5) + struct.pack(e + "HH", 8, NFULA_PACKET_HDR) + b"\x08\x00\x01\x00" +
              struct.pack(e + "HH", 2, NFULA_PAYLOAD))
    return f.pcap(LINKTYPE_NFLOG, big_endian=big_endian)


# ---------------------------------------------------------------- files

FILES = [  # (name, maker, link, what, queries, responses, counters)
    ("tunnel-gre.pcap", make_gre, "Ethernet (1)",
     "GRE over IPv4 (behind a VLAN tag) and IPv6: IPv4, IPv6 and Ethernet (0x6558, inner VLAN tag) payloads; "
     "checksum + key + sequence fields", 6, 6, "decap_gre=12"),
    ("tunnel-erspan.pcap", make_erspan, "Ethernet (1)",
     "ERSPAN type I (0x88BE, no S bit), type II (S bit; IPv4 and IPv6 outer), type III (0x22EB) without and "
     "with the 8-byte platform subheader (inner VLAN tag)", 6, 6, "decap_erspan=12"),
    ("tunnel-vxlan.pcap", make_vxlan, "Ethernet (1)",
     "VXLAN over IPv4 and IPv6; inner 802.1Q tag and inner QinQ; IPv6 inside; DNS over TCP inside VXLAN "
     "(handshake, query, response, close)", 6, 6, "decap_vxlan=18"),
    ("tunnel-geneve.pcap", make_geneve, "Ethernet (1)",
     "Geneve without and with options (12 bytes), Ethernet (0x6558), IPv4 (0x0800) and IPv6 (0x86DD) payloads, "
     "IPv6 outer", 4, 4, "decap_geneve=8"),
    ("tunnel-gtpu.pcap", make_gtpu, "Ethernet (1)",
     "GTP-U G-PDUs: plain, with sequence number, with a PDU Session Container extension, with two extension "
     "headers, IPv6 outer; one Echo Request", 5, 5, "decap_gtpu=10, gtpu_not_gpdu=1"),
    ("tunnel-ipip.pcap", make_ipip, "Ethernet (1)",
     "IPv4-in-IPv4 (4), IPv6-in-IPv4 (41), IPv4-in-IPv6, IPv6-in-IPv6, and IPv6-in-IPv6 after a Destination "
     "Options header (tunnel encapsulation limit, as Linux ip6tnl)", 5, 5, "decap_ipip=4, decap_ipv6_in_ip=6"),
    ("tunnel-nested.pcap", make_nested, "Ethernet (1)",
     "VXLAN inside GRE; GTP-U (IPv6 users) inside ERSPAN II; four tunnels GRE/IPv6 > IP-in-IP > VXLAN "
     "(inner VLAN) > Geneve", 3, 3,
     "decap_gre=4, decap_vxlan=4, decap_erspan=2, decap_gtpu=2, decap_ipip=2, decap_geneve=2"),
    ("tunnel-fragments.pcap", make_fragments, "Ethernet (1)",
     "3 KB responses: outer IPv4 fragments of GRE (out of order); inner IPv4 fragments each in its own VXLAN "
     "packet; inner IPv6 fragments in GRE, each split again by the outer IPv4 layer; outer IPv6 fragments of "
     "VXLAN", 4, 4, "decap_gre=6, decap_vxlan=6, defrag_fragments=16, defrag_reassembled=6"),
    ("tunnel-malformed.pcap", make_malformed, "Ethernet (1)",
     "one frame per malformed or unsupported encapsulation (see make_tunnel_pcaps.malformed_cases), then a good "
     "VXLAN exchange and a plain DNS exchange from client port 4789 (DNS, not VXLAN)", 2, 2,
     "gre_truncated=2, gre_unsupported=2, erspan_unsupported, erspan_truncated, vxlan_bad_flags, "
     "vxlan_truncated, geneve_bad_options, geneve_unsupported, geneve_truncated, gtpu_truncated, "
     "gtpu_bad_extension, gtpu_unsupported, link_truncated, not_ip, ip_snapped, tunnel_too_deep (1 each); "
     "decap_vxlan=4, decap_ipip=5"),
    ("nflog.pcap", lambda: make_nflog(False), "NFLOG (239), TLVs little-endian",
     "IPv4 and IPv6 records with PACKET_HDR, PREFIX, IFINDEX_INDEV, UID and PAYLOAD TLVs (odd-length prefix: "
     "padding); one record without a payload, one with a 2-byte TLV", 3, 3,
     "nflog_no_payload=1, nflog_bad_tlv=1"),
    ("nflog-be.pcap", lambda: make_nflog(True), "NFLOG (239), pcap and TLVs big-endian",
     "the same records from a big-endian host", 3, 3, ""),
]

BEGIN, END = "<!-- TUNNEL-PCAPS BEGIN (make_tunnel_pcaps.py) -->", "<!-- TUNNEL-PCAPS END -->"



def readme_section(packets):
    lines = [BEGIN, "", "## Tunnel and NFLOG captures (make_tunnel_pcaps.py)", "",
             "Generated by `make_tunnel_pcaps.py` (run it after `make_pcaps.py`; this section is replaced in "
             "place). pcap µs. Inner client 192.0.2.10 / 2001:db8::10, server 192.0.2.53 / 2001:db8::53 port "
             "53; outer (mirror) 198.51.100.1 / 2001:db8:ffff::1 to the collector 198.51.100.2 / "
             "2001:db8:ffff::2; nested tunnels between 203.0.113.x. IPv4, UDP, TCP and GRE checksums correct. "
             "Times start at 1700002000.000000 (2023-11-14T22:46:40Z). *Queries*/*responses*: what sidetap "
             "emits with default options (the inner addresses); *counters*: its decap/anomaly counters.", "",
             "| File | Format / link type | Exercises | Packets | Queries | Responses | Notes |",
             "|---|---|---|---|---|---|---|"]
    for name, _, link, what, q, r, counters in FILES:
        lines.append("| %s | pcap µs; %s | %s | %d | %d | %d | %s |" % (name, link, what, packets[name], q, r,
                                                                        counters))
    lines += ["", END, ""]
    return "\n".join(lines)


def main():
    def reset_ids():
        _ids[0] = 0x6000

    mp.write_captures(__doc__.splitlines()[0], FILES, readme_section, BEGIN, END, reset_ids)


if __name__ == "__main__":
    main()
