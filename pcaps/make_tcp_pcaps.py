#!/usr/bin/env python3
"""Write the purpose-made DNS-over-TCP and pairing captures, and their
section of README.md.

These cover cases no public capture does (see tests/data/public*/SOURCES.md,
"Gaps"): overlapping TCP segments with conflicting bytes, sequence-number
wraparound, a length prefix split 1 + 1 bytes, one message in three segments
delivered out of order, an IPv6 TCP stream, non-DNS bytes on TCP port 53,
and pairing corner cases (a response a few µs before its query, a response
after the query timeout).

Deterministic and stdlib-only; it reuses make_pcaps.py's DNS/IP/link helpers:

    python3 pcaps/make_tcp_pcaps.py            # writes next to this script
    python3 pcaps/make_tcp_pcaps.py --out DIR  # writes somewhere else

make_pcaps.py rewrites README.md from scratch: run this script after it
(its section sits between the TCP-PCAPS markers and is replaced in place).
"""

import ipaddress
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_pcaps as mp  # noqa: E402

PROTO_TCP = 6
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
US = 1000
MS = 1000 * US
BASE = 1_700_001_000_000_000_000  # 2023-11-14T22:30:00Z, whole µs (pcap µs files)


def tcp(src, dst, sport, dport, seq, ack, flags, payload=b"", options=b""):
    """TCP header + payload with a correct checksum."""
    offset = (20 + len(options)) // 4
    header = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, offset << 4, flags,
                         65535, 0, 0) + options
    seg = header + payload
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if a.version == 4:
        pseudo = a.packed + b.packed + struct.pack("!BBH", 0, PROTO_TCP, len(seg))
    else:
        pseudo = a.packed + b.packed + struct.pack("!IxxxB", len(seg), PROTO_TCP)
    csum = mp.checksum(pseudo + seg)
    return seg[:16] + struct.pack("!H", csum) + seg[18:]


def ip_tcp(src, dst, *args, **kw):
    seg = tcp(src, dst, *args, **kw)
    if ipaddress.ip_address(src).version == 4:
        return mp.ipv4(src, dst, PROTO_TCP, seg)
    return mp.ipv6(src, dst, PROTO_TCP, seg)


def framed(msg):
    return struct.pack("!H", len(msg)) + msg


class Conn:
    """One TCP connection between the fixed client and server; collects
    Ethernet frames with times. Sequence numbers are absolute stream offsets
    from the ISN (client data offset 0 = ISN + 1)."""

    def __init__(self, frames, cport, v6=False, cisn=0x10000000, sisn=0x20000000, sport=53):
        self.frames, self.cport, self.sport = frames, cport, sport
        self.c, self.s = (mp.CLIENT6, mp.SERVER6) if v6 else (mp.CLIENT4, mp.SERVER4)
        self.cisn, self.sisn = cisn, sisn
        self.cnext, self.snext = 0, 0  # bytes sent so far (for acks)

    def _add(self, t, to_server, seq, ack, flags, payload=b""):
        if to_server:
            d = ip_tcp(self.c, self.s, self.cport, self.sport, seq, ack, flags, payload)
        else:
            d = ip_tcp(self.s, self.c, self.sport, self.cport, seq, ack, flags, payload)
        self.frames.append((t, mp.ethernet(d, to_server)))

    def handshake(self, t):
        self._add(t, True, self.cisn, 0, SYN)
        self._add(t + 100 * US, False, self.sisn, self.cisn + 1, SYN | ACK)
        self._add(t + 200 * US, True, self.cisn + 1, self.sisn + 1, ACK)

    def client(self, t, offset, data, flags=PSH | ACK):
        """Client bytes at stream offset `offset`."""
        self._add(t, True, self.cisn + 1 + offset, self.sisn + 1 + self.snext, flags, data)
        self.cnext = max(self.cnext, offset + len(data))

    def server(self, t, offset, data, flags=PSH | ACK):
        self._add(t, False, self.sisn + 1 + offset, self.cisn + 1 + self.cnext, flags, data)
        self.snext = max(self.snext, offset + len(data))

    def close(self, t):
        self._add(t, True, self.cisn + 1 + self.cnext, self.sisn + 1 + self.snext, FIN | ACK)
        self._add(t + 100 * US, False, self.sisn + 1 + self.snext, self.cisn + 2 + self.cnext, FIN | ACK)
        self._add(t + 200 * US, True, self.cisn + 2 + self.cnext, self.sisn + 2 + self.snext, ACK)


def ex(msg_id, name="www.example.test", qtype=mp.TYPE_A):
    q = mp.dns_message(msg_id, name, qtype)
    if qtype == mp.TYPE_AAAA:
        rdata = ipaddress.IPv6Address("2001:db8::80").packed
    else:
        rdata = ipaddress.IPv4Address("192.0.2.80").packed
    r = mp.dns_message(msg_id, name, qtype, response=True, answers=[mp.dns_rr(name, qtype, rdata)])
    return q, r


def pcap(frames):
    return mp.pcap_bytes([(t, f, None) for t, f in frames], mp.LINKTYPE_ETHERNET)


# ---------------------------------------------------------------- captures

def make_tcp_overlap_conflict():
    """Query 0x3001 arrives as [prefix + 20 bytes], then a segment that
    overlaps bytes 10..21 with conflicting bytes ('X') and brings the rest.
    First wins: the query is the original one. Then the same with the
    conflicting segment last (out of order): query 0x3002's framed bytes 30..
    arrive ahead of a gap, then a segment covering all of it fills the gap and
    conflicts ('Y') at 30 to the end."""
    frames = []
    c = Conn(frames, 40001)
    c.handshake(BASE)
    q1, r1 = ex(0x3001)
    f1 = framed(q1)
    c.client(BASE + 1 * MS, 0, f1[:22])
    bad = bytearray(f1[10:])
    bad[0:12] = b"X" * 12
    c.client(BASE + 2 * MS, 10, bytes(bad))
    c.server(BASE + 3 * MS, 0, framed(r1))
    q2, r2 = ex(0x3002, "mail.example.test")
    f2 = framed(q2)
    base2 = len(f1)
    c.client(BASE + 4 * MS, base2 + 30, f2[30:])          # ahead of a gap
    bad2 = bytearray(f2)
    bad2[30:] = b"Y" * (len(f2) - 30)
    c.client(BASE + 5 * MS, base2, bytes(bad2))            # fills the gap, conflicts at 30..end
    c.server(BASE + 6 * MS, len(framed(r1)), framed(r2))
    c.close(BASE + 7 * MS)
    return pcap(frames)


def make_tcp_seq_wrap():
    """Both ISNs just below 2^32: the client's second query and the server's
    first response straddle the wrap to 0."""
    frames = []
    c = Conn(frames, 40002, cisn=0xFFFFFFF0, sisn=0xFFFFFF80)
    c.handshake(BASE)
    exs = [ex(0x3101), ex(0x3102, "mail.example.test", mp.TYPE_AAAA), ex(0x3103, "ns.example.test")]
    coff = soff = 0
    for i, (q, r) in enumerate(exs):
        c.client(BASE + (10 * i + 1) * MS, coff, framed(q))
        coff += len(framed(q))
        fr = framed(r)
        c.server(BASE + (10 * i + 2) * MS, soff, fr[:40])
        c.server(BASE + (10 * i + 3) * MS, soff + 40, fr[40:])
        soff += len(fr)
    c.close(BASE + 40 * MS)
    return pcap(frames)


def make_tcp_len_split():
    """Length prefixes sent 1 + 1 bytes, then the body; the response's
    prefix too, and its body in two parts."""
    frames = []
    c = Conn(frames, 40003)
    c.handshake(BASE)
    q, r = ex(0x3201)
    fq, fr = framed(q), framed(r)
    c.client(BASE + 1 * MS, 0, fq[:1])
    c.client(BASE + 2 * MS, 1, fq[1:2])
    c.client(BASE + 3 * MS, 2, fq[2:])
    c.server(BASE + 4 * MS, 0, fr[:1])
    c.server(BASE + 5 * MS, 1, fr[1:2])
    c.server(BASE + 6 * MS, 2, fr[2:20])
    c.server(BASE + 7 * MS, 20, fr[20:])
    c.close(BASE + 8 * MS)
    return pcap(frames)


def make_tcp_three_segments_ooo():
    """A query in three segments sent as 3, 1, 2 (completes on the third
    frame), and a response in three segments sent as 2, 3, 1."""
    frames = []
    c = Conn(frames, 40004)
    c.handshake(BASE)
    q, r = ex(0x3301, "a-rather-long-name.for-three-segments.example.test")
    fq, fr = framed(q), framed(r)
    a, b = len(fq) // 3, 2 * len(fq) // 3
    c.client(BASE + 1 * MS, b, fq[b:])
    c.client(BASE + 2 * MS, 0, fq[:a])
    c.client(BASE + 3 * MS, a, fq[a:b])
    a, b = len(fr) // 3, 2 * len(fr) // 3
    c.server(BASE + 4 * MS, a, fr[a:b])
    c.server(BASE + 5 * MS, b, fr[b:])
    c.server(BASE + 6 * MS, 0, fr[:a])
    c.close(BASE + 7 * MS)
    return pcap(frames)


def make_tcp_ipv6():
    """IPv6 TCP: handshake, two pipelined queries in one segment, two
    responses in one segment, FIN."""
    frames = []
    c = Conn(frames, 40005, v6=True)
    c.handshake(BASE)
    (q1, r1), (q2, r2) = ex(0x3401, "www.example.test", mp.TYPE_AAAA), ex(0x3402)
    c.client(BASE + 1 * MS, 0, framed(q1) + framed(q2))
    c.server(BASE + 2 * MS, 0, framed(r1) + framed(r2))
    c.close(BASE + 3 * MS)
    return pcap(frames)


HTTP = b"GET / HTTP/1.1\r\nHost: www.example.test\r\nUser-Agent: probe\r\nAccept: */*\r\n\r\n"
HTTP_RESPONSE = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def make_tcp_not_dns():
    """HTTP text on TCP port 53: one connection with its handshake (trusted
    framing: 'GE' reads as a 18245-byte length that never completes), one
    picked up without SYN (no plausible DNS header anywhere). No DNS message."""
    frames = []
    c = Conn(frames, 40006)
    c.handshake(BASE)
    c.client(BASE + 1 * MS, 0, HTTP)
    c.server(BASE + 2 * MS, 0, HTTP_RESPONSE)
    c.close(BASE + 3 * MS)
    c = Conn(frames, 40007, cisn=0x30000000, sisn=0x40000000)
    c.client(BASE + 10 * MS, 0, HTTP)
    c.server(BASE + 11 * MS, 0, HTTP_RESPONSE)
    c.close(BASE + 12 * MS)
    return pcap(frames)


def udp_frame(t, to_server, msg, cport):
    if to_server:
        d = mp.ip_udp(mp.CLIENT4, mp.SERVER4, cport, 53, msg)
    else:
        d = mp.ip_udp(mp.SERVER4, mp.CLIENT4, 53, cport, msg)
    return t, mp.ethernet(d, to_server)


def make_pair_response_first():
    """UDP: a normal exchange; then a response captured 7 µs BEFORE its query
    (capture reordering); then a normal exchange 50 ms later."""
    (q1, r1), (q2, r2), (q3, r3) = ex(0x3501), ex(0x3502, "mail.example.test"), ex(0x3503, "ns.example.test")
    frames = [udp_frame(BASE, True, q1, 41001), udp_frame(BASE + 1 * MS, False, r1, 41001),
              udp_frame(BASE + 10 * MS, False, r2, 41002), udp_frame(BASE + 10 * MS + 7 * US, True, q2, 41002),
              udp_frame(BASE + 60 * MS, True, q3, 41003), udp_frame(BASE + 61 * MS, False, r3, 41003)]
    return pcap(frames)


def make_pair_late_response():
    """UDP: query 0x3601 answered 12 s later (beyond the default 10 s
    --query-timeout); meanwhile a normal exchange at +5 s."""
    (q1, r1), (q2, r2) = ex(0x3601), ex(0x3602, "mail.example.test")
    frames = [udp_frame(BASE, True, q1, 41011),
              udp_frame(BASE + 5000 * MS, True, q2, 41012), udp_frame(BASE + 5001 * MS, False, r2, 41012),
              udp_frame(BASE + 12000 * MS, False, r1, 41011)]
    return pcap(frames)


# (file, maker, exercises, packets, queries, responses, notes)
FILES = [
    ("tcp-overlap-conflict.pcap", make_tcp_overlap_conflict,
     "TCP overlapping segments with conflicting bytes: an in-order overlap (bytes 10..21 differ) and an "
     "out-of-order one (the gap-filling segment differs from byte 30 on); the bytes received first win",
     None, 2, 2, "sidetap counts tcp_overlaps; both queries are the original bytes"),
    ("tcp-seq-wrap.pcap", make_tcp_seq_wrap,
     "TCP sequence numbers wrapping past 2^32 in both directions (ISNs 0xfffffff0 / 0xffffff80); "
     "responses in two segments", None, 3, 3, ""),
    ("tcp-len-split.pcap", make_tcp_len_split,
     "the 2-byte length prefix split 1 + 1 bytes in both directions, body after it", None, 1, 1, ""),
    ("tcp-three-segments-ooo.pcap", make_tcp_three_segments_ooo,
     "one query in three segments delivered 3,1,2 and one response delivered 2,3,1", None, 1, 1,
     "each message's time is the frame that completes it (the 3rd of its segments)"),
    ("tcp-ipv6.pcap", make_tcp_ipv6,
     "IPv6 TCP stream: two pipelined queries in one segment, two responses in one segment", None, 2, 2, ""),
    ("tcp-not-dns.pcap", make_tcp_not_dns,
     "HTTP text on TCP port 53, one connection with SYN and one without", None, 0, 0,
     "no message; counted (tcp_partial_at_close, tcp_resync_skipped_bytes)"),
    ("pair-response-first.pcap", make_pair_response_first,
     "UDP: a response captured 7 µs before its query, between two normal exchanges", None, 3, 3,
     "output order: query, then its response with query_time (responses_before_query=1)"),
    ("pair-late-response.pcap", make_pair_late_response,
     "UDP: a response 12 s after its query (beyond --query-timeout 10s), a normal exchange in between",
     None, 2, 2, "default: the late response is unpaired (unanswered_queries=1, unsolicited_responses=1)"),
]

BEGIN, END = "<!-- TCP-PCAPS BEGIN (make_tcp_pcaps.py) -->", "<!-- TCP-PCAPS END -->"



def readme_section(packets):
    lines = [BEGIN, "", "## DNS over TCP and pairing captures (make_tcp_pcaps.py)", "",
             "Generated by `make_tcp_pcaps.py` (run it after `make_pcaps.py`, which rewrites this README; "
             "this section is replaced in place). pcap µs LE, Ethernet (1); client 192.0.2.10 / 2001:db8::10, "
             "server 192.0.2.53 / 2001:db8::53 port 53; TCP and UDP checksums correct. Times start at "
             "1700001000.000000 (2023-11-14T22:30:00Z).", "",
             "| File | Format / link type | Exercises | Packets | Queries | Responses | Notes |",
             "|---|---|---|---|---|---|---|"]
    for name, _, what, _, q, r, notes in FILES:
        lines.append("| %s | pcap µs LE; Ethernet (1) | %s | %d | %d | %d | %s |" % (name, what, packets[name], q, r,
                                                                                   notes))
    lines += ["", END, ""]
    return "\n".join(lines)


def main():
    def reset_ids():
        mp._ip_id[0] = 0x5000

    mp.write_captures(__doc__.splitlines()[0], FILES, readme_section, BEGIN, END, reset_ids)


if __name__ == "__main__":
    main()
