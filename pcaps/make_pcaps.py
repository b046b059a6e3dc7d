#!/usr/bin/env python3
"""Write the small purpose-made captures in this folder, and README.md.

Deterministic and stdlib-only: the same script always writes the same bytes
(fixed timestamps, addresses, ports and DNS IDs). Run it from anywhere:

    python3 pcaps/make_pcaps.py            # writes next to this script
    python3 pcaps/make_pcaps.py --out DIR  # writes somewhere else

Each capture holds a few DNS query/response exchanges wrapped in one link
type or file-format feature; README.md (generated from FILES below) lists
what each file exercises and how many DNS queries/responses sidetap must
emit with default options (server port 53).
"""

import argparse
import ipaddress
import os
import struct

# ---------------------------------------------------------------- DNS wire

TYPE_A, TYPE_NS, TYPE_SOA, TYPE_MX, TYPE_TXT, TYPE_AAAA, TYPE_OPT = 1, 2, 6, 15, 16, 28, 41
CLASS_IN = 1
RCODE_NOERROR, RCODE_NXDOMAIN, RCODE_REFUSED = 0, 3, 5


def dns_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\x00"


def dns_rr(name, rtype, rdata, ttl=300, rclass=CLASS_IN):
    return dns_name(name) + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def opt_rr(udp_size=1232, options=b""):
    # OPT: root owner, CLASS = requestor's UDP size, TTL = ext-rcode/version/DO.
    return b"\x00" + struct.pack("!HHIH", TYPE_OPT, udp_size, 0, len(options)) + options


def dns_message(msg_id, qname, qtype, response=False, rcode=RCODE_NOERROR, answers=(), authority=(),
                additional=(), rd=True, ra=True, aa=False):
    flags = (0x8000 if response else 0) | (0x0400 if aa and response else 0) | (0x0100 if rd else 0)
    flags |= (0x0080 if ra and response else 0) | rcode
    header = struct.pack("!HHHHHH", msg_id, flags, 1, len(answers), len(authority), len(additional))
    question = dns_name(qname) + struct.pack("!HH", qtype, CLASS_IN)
    return header + question + b"".join(answers) + b"".join(authority) + b"".join(additional)


def soa_rdata(zone):
    return dns_name("ns1." + zone) + dns_name("hostmaster." + zone) + struct.pack("!IIIII", 2024010101, 7200,
                                                                                   3600, 1209600, 300)


# Each exchange: (query bytes, response bytes). IDs are distinct so the
# pairs are unambiguous.
def exchange_a(msg_id=0x1001):
    q = dns_message(msg_id, "www.example.test", TYPE_A)
    r = dns_message(msg_id, "www.example.test", TYPE_A, response=True,
                    answers=[dns_rr("www.example.test", TYPE_A, ipaddress.IPv4Address("192.0.2.80").packed)])
    return q, r


def exchange_aaaa(msg_id=0x1002):
    q = dns_message(msg_id, "www.example.test", TYPE_AAAA)
    r = dns_message(msg_id, "www.example.test", TYPE_AAAA, response=True,
                    answers=[dns_rr("www.example.test", TYPE_AAAA, ipaddress.IPv6Address("2001:db8::80").packed)])
    return q, r


def exchange_mx(msg_id=0x1003):
    q = dns_message(msg_id, "example.test", TYPE_MX)
    r = dns_message(msg_id, "example.test", TYPE_MX, response=True,
                    answers=[dns_rr("example.test", TYPE_MX, struct.pack("!H", 10) + dns_name("mail.example.test"))])
    return q, r


def exchange_txt_edns(msg_id=0x1004):
    # EDNS in both directions; the response also carries an NSID option.
    q = dns_message(msg_id, "www.example.test", TYPE_TXT, additional=[opt_rr(1232)])
    txt = b"v=sidetap test"
    nsid = struct.pack("!HH", 3, 4) + b"ns01"
    r = dns_message(msg_id, "www.example.test", TYPE_TXT, response=True,
                    answers=[dns_rr("www.example.test", TYPE_TXT, bytes([len(txt)]) + txt)],
                    additional=[opt_rr(1232, nsid)])
    return q, r


def exchange_nxdomain(msg_id=0x1005):
    q = dns_message(msg_id, "nonexistent.example.test", TYPE_A)
    r = dns_message(msg_id, "nonexistent.example.test", TYPE_A, response=True, rcode=RCODE_NXDOMAIN, aa=True,
                    authority=[dns_rr("example.test", TYPE_SOA, soa_rdata("example.test"))])
    return q, r


# ---------------------------------------------------------------- IP / UDP

CLIENT4, SERVER4 = "192.0.2.10", "192.0.2.53"
CLIENT6, SERVER6 = "2001:db8::10", "2001:db8::53"
PROTO_UDP, PROTO_ICMP = 17, 1


def checksum(data):
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def udp(src, dst, sport, dport, payload, length=None):
    """UDP header + payload with a correct checksum (over the real length)."""
    real_len = 8 + len(payload)
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if a.version == 4:
        pseudo = a.packed + b.packed + struct.pack("!BBH", 0, PROTO_UDP, real_len)
    else:
        pseudo = a.packed + b.packed + struct.pack("!IxxxB", real_len, PROTO_UDP)
    header = struct.pack("!HHHH", sport, dport, real_len, 0)
    csum = checksum(pseudo + header + payload) or 0xFFFF
    return struct.pack("!HHHH", sport, dport, real_len if length is None else length, csum) + payload


_ip_id = [0x4000]


def ipv4(src, dst, proto, payload, ihl=5):
    _ip_id[0] += 1
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(payload), _ip_id[0], 0x4000, 64, proto, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def ipv6(src, dst, next_header, payload, hop_limit=64):
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), next_header, hop_limit,
                       ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed) + payload


def ip_udp(src, dst, sport, dport, payload):
    segment = udp(src, dst, sport, dport, payload)
    if ipaddress.ip_address(src).version == 4:
        return ipv4(src, dst, PROTO_UDP, segment)
    return ipv6(src, dst, PROTO_UDP, segment)


def ip_pair(exchange, sport, v6=False):
    """(query datagram, response datagram) between the fixed client/server."""
    q, r = exchange
    c, s = (CLIENT6, SERVER6) if v6 else (CLIENT4, SERVER4)
    return ip_udp(c, s, sport, 53, q), ip_udp(s, c, 53, sport, r)


# ---------------------------------------------------------------- link layers

MAC_CLIENT = bytes.fromhex("02000000000c")
MAC_SERVER = bytes.fromhex("020000000053")
ETH_IPV4, ETH_IPV6, ETH_ARP, ETH_8021Q, ETH_8021AD = 0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8


def ethertype_of(datagram):
    return ETH_IPV4 if datagram[0] >> 4 == 4 else ETH_IPV6


def ethernet(datagram, to_server, tags=(), ethertype=None):
    """Ethernet II; `tags` is a list of (TPID, VLAN id) from outer to inner."""
    dst, src = (MAC_SERVER, MAC_CLIENT) if to_server else (MAC_CLIENT, MAC_SERVER)
    out = dst + src
    for tpid, vid in tags:
        out += struct.pack("!HH", tpid, vid)
    return out + struct.pack("!H", ethertype or ethertype_of(datagram)) + datagram


def sll(datagram, to_server):
    # packet type: 0 = to us (the server host), 4 = outgoing
    return struct.pack("!HHH8sH", 0 if to_server else 4, 1, 6, (MAC_CLIENT if to_server else MAC_SERVER) + b"\0\0",
                       ethertype_of(datagram)) + datagram


def sll2(datagram, to_server):
    return struct.pack("!HHIHBB8s", ethertype_of(datagram), 0, 2, 1, 0 if to_server else 4, 6,
                       (MAC_CLIENT if to_server else MAC_SERVER) + b"\0\0") + datagram


def null_header(af, byteorder):
    return struct.pack(byteorder + "I", af)


# ---------------------------------------------------------------- file writers

LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LOOP = 0, 1, 101, 108
LINKTYPE_LINUX_SLL, LINKTYPE_USER0, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL2 = 113, 147, 228, 229, 276

BASE_NS = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789Z


def times(count, start=BASE_NS, step=1_234_567):
    """Packet times: queries and responses 1.234567 ms apart, 10 ms per pair."""
    out = []
    for i in range(count):
        pair, member = divmod(i, 2)
        out.append(start + pair * 10_000_111 + member * step)
    return out


def pcap_bytes(records, linktype, nanosecond=False, big_endian=False, snaplen=65535):
    """records: list of (timestamp_ns, captured bytes, original length or None)."""
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    out = struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)
    for ts, data, orig in records:
        sec, frac = divmod(ts, 1_000_000_000)
        if not nanosecond:
            frac //= 1000
        captured = data[:snaplen]
        out += struct.pack(e + "IIII", sec, frac, len(captured), orig if orig is not None else len(data)) + captured
    return out


def pad4(data):
    return data + b"\x00" * (-len(data) % 4)


def pcapng_option(e, code, value):
    return struct.pack(e + "HH", code, len(value)) + pad4(value)


def pcapng_block(e, block_type, body):
    length = 12 + len(body)
    return struct.pack(e + "II", block_type, length) + body + struct.pack(e + "I", length)


def pcapng_shb(e, comment=None):
    options = b""
    if comment:
        options = pcapng_option(e, 1, comment.encode()) + pcapng_option(e, 0, b"")
    return pcapng_block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options)


def pcapng_idb(e, linktype, snaplen=0, tsresol=None, name=None):
    options = b""
    if name:
        options += pcapng_option(e, 2, name.encode())
    if tsresol is not None:
        options += pcapng_option(e, 9, bytes([tsresol]))
    if options:
        options += pcapng_option(e, 0, b"")
    return pcapng_block(e, 1, struct.pack(e + "HHI", linktype, 0, snaplen) + options)


def ticks_for(ts_ns, tsresol):
    """Timestamp in the interface's units (floor), as pcapng writers do."""
    if tsresol is None:
        tsresol = 6
    if tsresol & 0x80:
        return ts_ns * (1 << (tsresol & 0x7F)) // 1_000_000_000
    return ts_ns * 10 ** tsresol // 1_000_000_000


def ns_from_ticks(ticks, tsresol):
    """What a reader must compute back (floor), for the README and tests."""
    if tsresol is None:
        tsresol = 6
    units = 1 << (tsresol & 0x7F) if tsresol & 0x80 else 10 ** (tsresol & 0x7F)
    return ticks // units * 1_000_000_000 + ticks % units * 1_000_000_000 // units


def pcapng_epb(e, interface, ticks, data, orig=None):
    body = struct.pack(e + "IIIII", interface, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                       len(data) if orig is None else orig) + pad4(data)
    return pcapng_block(e, 6, body)


def pcapng_spb(e, data):
    return pcapng_block(e, 3, struct.pack(e + "I", len(data)) + pad4(data))


def pcapng_isb(e, interface, ticks):
    # Interface Statistics Block (type 5), no options: readers skip it.
    return pcapng_block(e, 5, struct.pack(e + "III", interface, ticks >> 32, ticks & 0xFFFFFFFF))


def pcapng_nrb(e, address, name):
    # Name Resolution Block (type 4) with one IPv4 record: readers skip it.
    record = ipaddress.IPv4Address(address).packed + name.encode() + b"\x00"
    return pcapng_block(e, 4, struct.pack(e + "HH", 1, len(record)) + pad4(record) + struct.pack(e + "HH", 0, 0))


# ---------------------------------------------------------------- the captures

ALL_EXCHANGES = [  # (exchange, client port, IPv6?)
    (exchange_a(), 40001, False),
    (exchange_aaaa(), 40002, True),
    (exchange_mx(), 40003, False),
    (exchange_txt_edns(), 40004, True),
    (exchange_nxdomain(), 40005, False),
]


def datagrams(selection):
    """Query/response datagrams, in order, with a to_server flag."""
    out = []
    for exchange, port, v6 in selection:
        q, r = ip_pair(exchange, port, v6)
        out += [(q, True), (r, False)]
    return out


def records(frames, start=BASE_NS):
    return [(ts, frame, None) for ts, frame in zip(times(len(frames), start), frames)]


def make_udp_ethernet():
    frames = [ethernet(d, s) for d, s in datagrams(ALL_EXCHANGES)]
    return pcap_bytes(records(frames), LINKTYPE_ETHERNET)


def make_udp_ethernet_ns_be():
    frames = [ethernet(d, s) for d, s in datagrams(ALL_EXCHANGES)]
    return pcap_bytes(records(frames), LINKTYPE_ETHERNET, nanosecond=True, big_endian=True)


def make_udp_vlan_qinq():
    a = datagrams([(exchange_a(0x2001), 41001, False)])
    b = datagrams([(exchange_aaaa(0x2002), 41002, True)])
    c = datagrams([(exchange_mx(0x2003), 41003, False)])
    frames = [ethernet(d, s, tags=[(ETH_8021Q, 100)]) for d, s in a]
    frames += [ethernet(d, s, tags=[(ETH_8021AD, 200), (ETH_8021Q, 300)]) for d, s in b]
    # Some switches use 0x8100 for the outer tag as well.
    frames += [ethernet(d, s, tags=[(ETH_8021Q, 10), (ETH_8021Q, 20)]) for d, s in c]
    return pcap_bytes(records(frames), LINKTYPE_ETHERNET)


def make_udp_sll():
    frames = [sll(d, s) for d, s in datagrams(ALL_EXCHANGES[:2])]
    return pcap_bytes(records(frames), LINKTYPE_LINUX_SLL)


def make_udp_sll2():
    frames = [sll2(d, s) for d, s in datagrams(ALL_EXCHANGES[:2])]
    return pcap_bytes(records(frames), LINKTYPE_LINUX_SLL2)


def make_udp_null():
    # DLT_NULL: the AF value in the byte order of the capturing host (this
    # file is little-endian, so is the AF). AF_INET6 is 24 (NetBSD/OpenBSD),
    # 28 (FreeBSD) or 30 (macOS).
    frames = []
    plan = [(exchange_a(0x3001), 42001, False, 2), (exchange_aaaa(0x3002), 42002, True, 24),
            (exchange_mx(0x3003), 42003, True, 28), (exchange_nxdomain(0x3004), 42004, True, 30)]
    for exchange, port, v6, af in plan:
        for d, s in datagrams([(exchange, port, v6)]):
            frames.append(null_header(af, "<") + d)
    return pcap_bytes(records(frames), LINKTYPE_NULL)


def make_udp_loop():
    # DLT_LOOP: AF in network byte order; OpenBSD's AF_INET6 is 24.
    frames = []
    for exchange, port, v6, af in [(exchange_a(0x3101), 42101, False, 2), (exchange_aaaa(0x3102), 42102, True, 24)]:
        for d, s in datagrams([(exchange, port, v6)]):
            frames.append(null_header(af, ">") + d)
    return pcap_bytes(records(frames), LINKTYPE_LOOP)


def make_udp_raw():
    frames = [d for d, s in datagrams(ALL_EXCHANGES[:2])]
    return pcap_bytes(records(frames), LINKTYPE_RAW)


def make_udp_ipv4():
    frames = [d for d, s in datagrams([ALL_EXCHANGES[0], ALL_EXCHANGES[2]])]
    return pcap_bytes(records(frames), LINKTYPE_IPV4)


def make_udp_ipv6():
    frames = [d for d, s in datagrams([ALL_EXCHANGES[1], ALL_EXCHANGES[3]])]
    return pcap_bytes(records(frames), LINKTYPE_IPV6)


def make_udp_ipv6_exthdr():
    def with_ext(src, dst, sport, dport, payload):
        segment = udp(src, dst, sport, dport, payload)
        # Destination options (next = UDP): PadN filling 6 bytes.
        dest_opts = struct.pack("!BB", PROTO_UDP, 0) + b"\x01\x04\x00\x00\x00\x00"
        # Hop-by-hop (next = destination options, 60): Router Alert + PadN,
        # 16 bytes long (Hdr Ext Len = 1).
        hop_by_hop = struct.pack("!BB", 60, 1) + b"\x05\x02\x00\x00" + b"\x01\x08" + b"\x00" * 8
        return ipv6(src, dst, 0, hop_by_hop + dest_opts + segment)

    frames = []
    for exchange, port in [(exchange_aaaa(0x4001), 43001), (exchange_txt_edns(0x4002), 43002)]:
        q, r = exchange
        frames.append(ethernet(with_ext(CLIENT6, SERVER6, port, 53, q), True))
        frames.append(ethernet(with_ext(SERVER6, CLIENT6, 53, port, r), False))
    return pcap_bytes(records(frames), LINKTYPE_ETHERNET)


# multi-interface.pcapng: interface -> (link type, if_tsresol option)
MULTI_INTERFACES = [(LINKTYPE_ETHERNET, None), (LINKTYPE_RAW, 9), (LINKTYPE_LINUX_SLL2, 0x94)]


def multi_interface_packets():
    """[(interface, timestamp_ns as written, frame, block kind)], shared with README."""
    wrap = [lambda d, s: ethernet(d, s), lambda d, s: d, sll2]
    out = []
    ts = times(8)
    plan = [(0, ALL_EXCHANGES[0]), (1, ALL_EXCHANGES[1]), (2, ALL_EXCHANGES[2])]
    i = 0
    for interface, selection in plan:
        for d, s in datagrams([selection]):
            out.append((interface, ts[i], wrap[interface](d, s), "EPB"))
            i += 1
    # The NXDOMAIN query in a Simple Packet Block (interface 0, no
    # timestamp), its response in an EPB on interface 0.
    (q, qs), (r, rs) = datagrams([ALL_EXCHANGES[4]])
    out.append((0, None, ethernet(q, qs), "SPB"))
    out.append((0, ts[7], ethernet(r, rs), "EPB"))
    return out


def make_multi_interface():
    e = "<"
    out = pcapng_shb(e, "sidetap multi-interface test")
    for n, (linktype, tsresol) in enumerate(MULTI_INTERFACES):
        out += pcapng_idb(e, linktype, 0 if n else 65535, tsresol, name="if%d" % n)
    for interface, ts, frame, kind in multi_interface_packets():
        if kind == "SPB":
            out += pcapng_spb(e, frame)
        else:
            out += pcapng_epb(e, interface, ticks_for(ts, MULTI_INTERFACES[interface][1]), frame)
    return out


def make_two_sections():
    ts = times(4)
    out = pcapng_shb("<", "section 1, little-endian")
    out += pcapng_idb("<", LINKTYPE_ETHERNET)
    for k, (d, s) in enumerate(datagrams([ALL_EXCHANGES[0]])):
        out += pcapng_epb("<", 0, ticks_for(ts[k], None), ethernet(d, s))
    out += pcapng_isb("<", 0, ticks_for(ts[1], None))
    # Section 2 is big-endian; its interface 0 is a different interface
    # (RAW, nanoseconds).
    out += pcapng_shb(">", "section 2, big-endian")
    out += pcapng_nrb(">", SERVER4, "ns.example.test")
    out += pcapng_idb(">", LINKTYPE_RAW, 0, 9)
    for k, (d, s) in enumerate(datagrams([ALL_EXCHANGES[1]])):
        out += pcapng_epb(">", 0, ticks_for(ts[2 + k], 9), d)
    return out


def truncated_record_frames():
    frames = [ethernet(d, s) for d, s in datagrams(ALL_EXCHANGES[:2])]
    frames.append(ethernet(*datagrams([ALL_EXCHANGES[2]])[0]))
    return frames


def make_truncated_record():
    frames = truncated_record_frames()
    data = pcap_bytes(records(frames), LINKTYPE_ETHERNET)
    # Cut the last record 30 bytes into its packet data.
    return data[:len(data) - len(frames[-1]) + 30]


# File offset of the cut record (24-byte file header, 16-byte record headers).
TRUNCATED_OFFSET = 24 + sum(16 + len(f) for f in truncated_record_frames()[:-1])


def make_snapped():
    # RAW link, snaplen 64: 28 bytes of IPv4+UDP headers leave 36 bytes of
    # DNS; IPv6+UDP leave 16.
    root_q = dns_message(0x5002, ".", TYPE_NS)
    root_r = dns_message(0x5002, ".", TYPE_NS, response=True, rcode=RCODE_REFUSED)
    plan = [(exchange_a(0x5001), 44001, False),      # query whole (62 bytes), response cut (78)
            ((root_q, root_r), 44002, False),        # both whole (45 bytes each)
            (exchange_aaaa(0x5003), 44003, True)]    # both cut
    frames = [d for d, s in datagrams(plan)]
    return pcap_bytes(records(frames), LINKTYPE_RAW, snaplen=64)


def make_malformed():
    frames = []
    # 1. UDP to port 53 with 5 bytes of payload: too short for a DNS header.
    frames.append(ethernet(ip_udp(CLIENT4, SERVER4, 45001, 53, b"\x12\x34\x01\x00\x00"), True))
    # 2. IPv4 header with IHL 4 (< 5).
    good_q, good_r = ip_pair(exchange_a(0x6002), 45002)
    frames.append(ethernet(bytes([0x44]) + good_q[1:], True))
    # 3. UDP length field 200 > the 8 + 34 bytes of IP payload.
    q3 = exchange_a(0x6003)[0]
    frames.append(ethernet(ipv4(CLIENT4, SERVER4, PROTO_UDP, udp(CLIENT4, SERVER4, 45003, 53, q3, length=200)), True))
    # 4. ARP request (not IP).
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, MAC_CLIENT, ipaddress.IPv4Address(CLIENT4).packed,
                      b"\0" * 6, ipaddress.IPv4Address(SERVER4).packed)
    frames.append(b"\xff" * 6 + MAC_CLIENT + struct.pack("!H", ETH_ARP) + arp)
    # 5. ICMP echo request (IP, not UDP/TCP).
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x77, 1) + b"sidetap!"
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    frames.append(ethernet(ipv4(CLIENT4, SERVER4, PROTO_ICMP, icmp), True))
    # 6-7. One good query/response pair.
    frames.append(ethernet(good_q, True))
    frames.append(ethernet(good_r, False))
    ts = [BASE_NS + k * 1_000_123 for k in range(len(frames))]
    return pcap_bytes([(t, f, None) for t, f in zip(ts, frames)], LINKTYPE_ETHERNET)


def make_not_a_capture():
    return b"This is not a capture file, just text.\nsidetap must refuse it with a clear message.\n"


def make_unknown_linktype():
    frames = [ethernet(d, s) for d, s in datagrams(ALL_EXCHANGES[:2])]
    return pcap_bytes(records(frames), LINKTYPE_USER0)


# (file, maker, format/link, what it exercises, DNS queries, DNS responses, packets, notes)
FILES = [
    ("udp-ethernet.pcap", make_udp_ethernet, "pcap µs LE; Ethernet (1)",
     "IPv4 and IPv6 UDP: A, AAAA, MX, TXT+EDNS (OPT with NSID in the response), NXDOMAIN (SOA in authority)",
     5, 5, 10, ""),
    ("udp-ethernet-ns-be.pcap", make_udp_ethernet_ns_be, "pcap ns BE; Ethernet (1)",
     "same traffic as udp-ethernet.pcap with nanosecond magic, big-endian byte order",
     5, 5, 10, "timestamps keep their nanoseconds (first: 1700000000.123456789)"),
    ("udp-vlan-qinq.pcap", make_udp_vlan_qinq, "pcap µs LE; Ethernet (1)",
     "802.1Q tag (VLAN 100, IPv4); 802.1ad 0x88a8 outer 200 + 802.1Q inner 300 (IPv6); "
     "double 0x8100 tags 10/20 (IPv4)", 3, 3, 6, ""),
    ("udp-sll.pcap", make_udp_sll, "pcap µs LE; LINUX_SLL (113)", "SLL v1 header, IPv4 and IPv6", 2, 2, 4, ""),
    ("udp-sll2.pcap", make_udp_sll2, "pcap µs LE; LINUX_SLL2 (276)", "SLL2 header, IPv4 and IPv6", 2, 2, 4, ""),
    ("udp-null.pcap", make_udp_null, "pcap µs LE; NULL (0)",
     "host-order (LE) AF: AF_INET 2 (IPv4), AF_INET6 as 24, 28 and 30 (IPv6)", 4, 4, 8, ""),
    ("udp-loop.pcap", make_udp_loop, "pcap µs LE; LOOP (108)",
     "network-order AF: 2 (IPv4) and 24 (IPv6)", 2, 2, 4, ""),
    ("udp-raw.pcap", make_udp_raw, "pcap µs LE; RAW (101)", "raw IPv4 and IPv6", 2, 2, 4, ""),
    ("udp-ipv4.pcap", make_udp_ipv4, "pcap µs LE; IPV4 (228)", "IPv4-only link type", 2, 2, 4, ""),
    ("udp-ipv6.pcap", make_udp_ipv6, "pcap µs LE; IPV6 (229)", "IPv6-only link type (AAAA, TXT+EDNS)", 2, 2, 4, ""),
    ("udp-ipv6-exthdr.pcap", make_udp_ipv6_exthdr, "pcap µs LE; Ethernet (1)",
     "IPv6 hop-by-hop (16 bytes) + destination options (8 bytes) headers before UDP", 2, 2, 4, ""),
    ("multi-interface.pcapng", make_multi_interface, "pcapng LE; 3 IDBs: Ethernet, RAW, LINUX_SLL2",
     "per-interface link types and if_tsresol (default 10^-6, 10^-9, 2^-20 via the high bit); "
     "one Simple Packet Block (NXDOMAIN query, interface 0, no timestamp)", 4, 4, 8,
     "the SPB packet gets the previous packet's timestamp"),
    ("two-sections.pcapng", make_two_sections, "pcapng: LE section + BE section",
     "two SHBs, interface ids restart in section 2 (if 0 = Ethernet, then RAW); ISB and NRB blocks skipped",
     2, 2, 4, ""),
    ("truncated-record.pcap", make_truncated_record, "pcap µs LE; Ethernet (1)",
     "4 good packets, then a record cut 30 bytes into its data", 2, 2, 4,
     "reading ends with an error: truncated record at offset %d (packet #5); exit code 1" % TRUNCATED_OFFSET),
    ("snapped.pcap", make_snapped, "pcap µs LE; RAW (101), snaplen 64",
     "DNS cut by the snaplen: packets 2, 5 and 6 are snapped (not emitted); packets 1, 3 and 4 are whole",
     2, 1, 6, "3 packets counted as snapped (ip_snapped)"),
    ("malformed.pcap", make_malformed, "pcap µs LE; Ethernet (1)",
     "UDP/53 with 5 bytes of payload; IPv4 IHL 4; UDP length 200 > IP payload; ARP; ICMP echo; one good pair",
     1, 1, 7, "anomalies: 1 short DNS, ip_bad_header_length, udp_bad_length, not_ip, not_udp_tcp"),
    ("not-a-capture.pcap", make_not_a_capture, "text", "not a capture file", 0, 0, 0,
     "open fails: not a pcap or pcapng file (magic 0x54686973), exit code 1"),
    ("unknown-linktype.pcap", make_unknown_linktype, "pcap µs LE; USER0 (147)",
     "Ethernet frames under a link type sidetap does not decode", 0, 0, 4, "4 packets counted as unknown_link_type"),
]


def fmt_ns(ns):
    return "%d.%09d" % divmod(ns, 1_000_000_000)


def readme():
    lines = [
        "# Purpose-made captures",
        "",
        "Generated by `make_pcaps.py` (Python 3, standard library only, deterministic). Do not edit the",
        "captures by hand: change the script and run `python3 pcaps/make_pcaps.py`, which rewrites every",
        "file and this README.",
        "",
        "Addresses: client 192.0.2.10 / 2001:db8::10, server 192.0.2.53 / 2001:db8::53 (port 53);",
        "client ports differ per exchange. UDP and IPv4 checksums are correct. DNS IDs are unique per",
        "file. Timestamps start at %s (2023-11-14T22:13:20Z); µs files keep the first 6 digits." % fmt_ns(BASE_NS),
        "",
        "*Queries* and *responses* are the DNS messages sidetap must emit with default options (server",
        "port 53); end-to-end tests assert on them. Packets that do not become DNS messages are counted",
        "(decode anomalies, snapped packets, unknown link types) and not emitted.",
        "",
        "`sample.pcap` and `sample.knot.dnstap` are not made by this script: see `make_sample.sh`.",
        "",
        "| File | Format / link type | Exercises | Packets | Queries | Responses | Notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, _, fmt, what, q, r, packets, notes in FILES:
        lines.append("| %s | %s | %s | %d | %d | %d | %s |" % (name, fmt, what, packets, q, r, notes))
    lines += ["", "## multi-interface.pcapng timestamps", "",
              "What a reader must return (ns since the epoch, floor of ticks / units per second):", "",
              "| # | Interface | Block | Link type | Timestamp |", "|---|---|---|---|---|"]
    last = 0
    for n, (interface, ts, frame, kind) in enumerate(multi_interface_packets(), 1):
        linktype, tsresol = MULTI_INTERFACES[interface]
        if kind == "EPB":
            last = ns_from_ticks(ticks_for(ts, tsresol), tsresol)
        lines.append("| %d | %d | %s | %d | %s |" % (n, interface, kind, linktype, fmt_ns(last)))
    return "\n".join(lines) + "\n"


def count_packets(data):
    """Records in a classic pcap file (either byte order)."""
    e = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    n, pos = 0, 24
    while pos < len(data):
        incl = struct.unpack_from(e + "I", data, pos + 8)[0]
        pos += 16 + incl
        n += 1
    return n


def write_captures(description, files, readme_section, begin, end, reset_ids):
    """The main() of the generator scripts that add to this folder: writes each
    (name, maker, ...) of `files` into --out (calling reset_ids() first, so every
    file numbers its IP ids from the same start), then replaces the README.md
    section between `begin` and `end` with readme_section({name: packets})."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    packets = {}
    for name, maker, *_ in files:
        reset_ids()
        data = maker()
        packets[name] = count_packets(data)
        with open(os.path.join(args.out, name), "wb") as f:
            f.write(data)
    readme = os.path.join(args.out, "README.md")
    text = open(readme, encoding="utf-8").read() if os.path.exists(readme) else ""
    if begin in text and end in text:
        text = text[:text.index(begin)] + text[text.index(end) + len(end):].lstrip("\n")
    text = text.rstrip("\n") + "\n\n" + readme_section(packets)
    with open(readme, "w", encoding="utf-8") as f:
        f.write(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name, maker, *_ in FILES:
        _ip_id[0] = 0x4000  # every file numbers its IPv4 ids from the same start
        with open(os.path.join(args.out, name), "wb") as f:
            f.write(maker())
    with open(os.path.join(args.out, "README.md"), "w", encoding="utf-8") as f:
        f.write(readme())


if __name__ == "__main__":
    main()
