#!/usr/bin/env python3
"""Write the purpose-made captures for query/response pairing, packet time and
TCP closing out of order, and their section of README.md.

  pair-qdcount0.pcap        answers without a question section (QDCOUNT 0)
  pair-retransmit.pcap      retransmitted queries, one response per copy
  malformed-to-server.pcap  messages that are not well-formed DNS, to and from port 53
  time-clean.pcap           traffic whose timeouts matter ...
  time-far-future.pcap      ... the same with one record dated 2096 in the middle
  time-step-back.pcap       ... the same with the clock stepped back one hour in the middle
  tcp-close-reordered.pcap  FIN / RST captured before the last data, a SYN after its data

Deterministic and stdlib-only; it reuses make_pcaps.py's and
make_tcp_pcaps.py's helpers:

    python3 pcaps/make_pairing_pcaps.py            # writes next to this script
    python3 pcaps/make_pairing_pcaps.py --out DIR  # writes somewhere else

Run it after make_pcaps.py (which rewrites README.md); its section sits
between the PAIRING-PCAPS markers and is replaced in place.
"""

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_pcaps as mp  # noqa: E402
import make_tcp_pcaps as mtp  # noqa: E402

US, MS, S = 1000, 1_000_000, 1_000_000_000
BASE = 1_700_002_000_000_000_000   # 2023-11-14T22:46:40Z, whole µs
HOUR = 3600 * S
FAR_FUTURE = 4_000_000_000 * S     # 2096-10-02: a damaged record's time
RCODE_FORMERR, RCODE_SERVFAIL, RCODE_NOTIMP, RCODE_REFUSED, RCODE_NOTAUTH = 1, 2, 4, 5, 9


def bare_response(msg_id, rcode, rd=True):
    """A response with no question section (QDCOUNT 0), as servers send for
    errors when they do not (or cannot) echo the question."""
    flags = 0x8000 | (0x0100 if rd else 0) | 0x0080 | rcode
    return struct.pack("!HHHHHH", msg_id, flags, 0, 0, 0, 0)


def udp(t, to_server, msg, cport):
    return mtp.udp_frame(t, to_server, msg, cport)


def ntp(t):
    """A packet that is not DNS (UDP 123 both ways)."""
    return t, mp.ethernet(mp.ip_udp(mp.CLIENT4, mp.SERVER4, 123, 123, b"\x23" + b"\x00" * 47), True)


def fragments(t0, step, to_server, msg, cport, first_len=64):
    """A UDP datagram in two IPv4 fragments (`first_len` bytes of the UDP
    segment in the first), at t0 and t0 + step."""
    src, dst = (mp.CLIENT4, mp.SERVER4) if to_server else (mp.SERVER4, mp.CLIENT4)
    sport, dport = (cport, 53) if to_server else (53, cport)
    seg = mp.udp(src, dst, sport, dport, msg)
    mp._ip_id[0] += 1
    ident = mp._ip_id[0]
    out = []
    for off, part, more in ((0, seg[:first_len], True), (first_len, seg[first_len:], False)):
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(part), ident, (0x2000 if more else 0) | off // 8,
                             64, mp.PROTO_UDP, 0, mp.ipaddress.IPv4Address(src).packed,
                             mp.ipaddress.IPv4Address(dst).packed)
        header = header[:10] + struct.pack("!H", mp.checksum(header)) + header[12:]
        out.append(mp.ethernet(header + part, to_server))
    return [(t0, out[0]), (t0 + step, out[1])]


def pcap(frames):
    return mtp.pcap(frames)


# ---------------------------------------------------------------- captures

QDCOUNT0_RCODES = (RCODE_FORMERR, RCODE_SERVFAIL, RCODE_NOTIMP, RCODE_REFUSED, RCODE_NOTAUTH)


def make_pair_qdcount0():
    """Five UDP queries answered without a question section, one per rcode
    (FORMERR, SERVFAIL, NOTIMP, REFUSED, NOTAUTH), 300 µs after each query;
    one TCP query answered REFUSED without a question; then a QDCOUNT 0
    answer with an ID no query used (unsolicited)."""
    frames = []
    for i, rcode in enumerate(QDCOUNT0_RCODES):
        q, _ = mtp.ex(0x3800 + rcode, "q%d.example.test" % rcode)
        t = BASE + i * 10 * MS
        frames += [udp(t, True, q, 42000 + i), udp(t + 300 * US, False, bare_response(0x3800 + rcode, rcode), 42000 + i)]
    c = mtp.Conn(frames, 42010, cisn=0x50000000, sisn=0x60000000)
    q, _ = mtp.ex(0x3820, "tcp.example.test")
    c.handshake(BASE + 100 * MS)
    c.client(BASE + 101 * MS, 0, mtp.framed(q))
    c.server(BASE + 102 * MS, 0, mtp.framed(bare_response(0x3820, RCODE_REFUSED)))
    c.close(BASE + 103 * MS)
    frames.append(udp(BASE + 200 * MS, False, bare_response(0x38ff, RCODE_SERVFAIL), 42020))
    return pcap(frames)


def make_pair_retransmit():
    """Retransmitted UDP queries (same ports, ID and question):
      0x3901: copies at +0 and +1 s, responses at +1.2 s and +1.3 s;
      0x3902: copies at +20 s and +29.5 s, one response at +30.5 s (the first
              copy timed out at +30 s with --query-timeout 10s; the response
              answers the retransmission);
      0x3903: copies at +50 s and +50.5 s, one response at +50.6 s."""
    (q1, r1), (q2, r2), (q3, r3) = (mtp.ex(0x3901), mtp.ex(0x3902, "mail.example.test"),
                                    mtp.ex(0x3903, "ns.example.test"))
    frames = [udp(BASE, True, q1, 43001), udp(BASE + 1000 * MS, True, q1, 43001),
              udp(BASE + 1200 * MS, False, r1, 43001), udp(BASE + 1300 * MS, False, r1, 43001),
              udp(BASE + 20000 * MS, True, q2, 43002), udp(BASE + 29500 * MS, True, q2, 43002),
              udp(BASE + 30500 * MS, False, r2, 43002),
              udp(BASE + 50000 * MS, True, q3, 43003), udp(BASE + 50500 * MS, True, q3, 43003),
              udp(BASE + 50600 * MS, False, r3, 43003)]
    return pcap(frames)


def malformed_messages():
    """(name, to_server, bytes) of every message of malformed-to-server.pcap
    (UDP unless the name says TCP)."""
    q, r = mtp.ex(0x3a01)
    bad_q = struct.pack("!HHHHHH", 0x3a02, 0x0100, 1, 0, 0, 0) + b"\x05ab"   # label runs past the end
    bad_r = struct.pack("!HHHHHH", 0x3a03, 0x8180, 1, 0, 0, 0) + b"\xc0\x20\x00\x01\x00\x01"  # forward pointer
    return [
        ("short query", True, b"\x3a\x00\x01\x00\x00"),                       # 5 bytes
        ("QR set, to port 53", True, r[:2] + bytes([r[2] | 0x80]) + r[3:]),  # a "response" sent to the server
        ("bad question", True, bad_q),
        ("FORMERR without question", False, bare_response(0x3a02, RCODE_FORMERR)),  # answers the bad question
        ("QR clear, from port 53", False, q[:2] + b"\x01\x00" + q[4:]),      # a "query" from the server
        ("response with a bad question", False, bad_r),
        ("short response", False, b"\x3a\x04\x81"),                          # 3 bytes
        ("good query", True, q),
        ("good response", False, r),
        ("TCP query with a bad question", True, struct.pack("!HHHHHH", 0x3a05, 0x0100, 1, 0, 0, 0) + b"\x40abc"),
    ]


def make_malformed_to_server():
    """UDP and TCP messages to and from port 53 that are not well-formed DNS
    (too short, QR bit against the port direction, a question that does not
    parse), a FORMERR without question that answers the malformed query, and
    one good exchange."""
    frames = []
    msgs = malformed_messages()
    ports = {"bad question": 44003, "FORMERR without question": 44003}
    for i, (name, to_server, msg) in enumerate(msgs):
        t = BASE + i * 10 * MS
        if name.startswith("TCP"):
            c = mtp.Conn(frames, 44010, cisn=0x70000000, sisn=0x71000000)
            c.handshake(t)
            c.client(t + 1 * MS, 0, mtp.framed(msg))
            c.close(t + 2 * MS)
            continue
        cport = ports.get(name, 44100 + i)
        if name.startswith("good"):
            cport = 44020
        frames.append(udp(t, to_server, msg, cport))
    return pcap(frames)


def time_traffic(variant):
    """The traffic of time-*.pcap; `variant`: "clean", "far-future" (one
    non-DNS record dated 2096 at +5 s) or "step-back" (every packet from
    +5 s on is dated one hour earlier: the capturing host's clock stepped
    back). With --query-timeout 10s all three give the same counts:
      background: an exchange every 500 ms from +0 to +30 s (ports 45000..);
      0x3b01 query at +1 s, never answered (unanswered_queries);
      0x3b02 query at +2 s answered at +14 s (too late: unanswered and unsolicited);
      0x3b03 query at +3 s answered at +3.5 s;
      0x3b04 query at +4.9 s answered at +5.1 s (across the step);
      0x3b05 response at +20 s with no query (unsolicited);
      0x3b06 query at +29 s, still pending at the end (unanswered_at_end);
      0x3b07 response in two IPv4 fragments at +4.8 s and +5.2 s, its query at +4.7 s;
      TCP 0x3b08: SYN at +4.6 s, query at +4.95 s, response at +5.05 s, FIN at +6 s."""
    frames = []
    for k in range(61):
        t = BASE + k * 500 * MS
        qb, rb = mtp.ex(0x3000 + k, "bg%d.example.test" % k)
        frames += [udp(t + 50 * MS, True, qb, 45000 + k), udp(t + 51 * MS, False, rb, 45000 + k)]
    ex = {i: mtp.ex(0x3b00 + i, "t%d.example.test" % i) for i in range(1, 9)}
    frames += [udp(BASE + 1000 * MS, True, ex[1][0], 46001),
               udp(BASE + 2000 * MS, True, ex[2][0], 46002), udp(BASE + 14000 * MS, False, ex[2][1], 46002),
               udp(BASE + 3000 * MS, True, ex[3][0], 46003), udp(BASE + 3500 * MS, False, ex[3][1], 46003),
               udp(BASE + 4900 * MS, True, ex[4][0], 46004), udp(BASE + 5100 * MS, False, ex[4][1], 46004),
               udp(BASE + 20000 * MS, False, ex[5][1], 46005),
               udp(BASE + 29000 * MS, True, ex[6][0], 46006),
               udp(BASE + 4700 * MS, True, ex[7][0], 46007)]
    frames += fragments(BASE + 4800 * MS, 400 * MS, False, ex[7][1], 46007)  # the response, in two fragments
    c = mtp.Conn(frames, 46008, cisn=0x72000000, sisn=0x73000000)
    c.handshake(BASE + 4600 * MS)
    c.client(BASE + 4950 * MS, 0, mtp.framed(ex[8][0]))
    c.server(BASE + 5050 * MS, 0, mtp.framed(ex[8][1]))
    c.close(BASE + 6000 * MS)
    frames.sort(key=lambda f: f[0])
    if variant == "far-future":
        i = next(i for i, f in enumerate(frames) if f[0] >= BASE + 5000 * MS)
        frames.insert(i, ntp(FAR_FUTURE))
    elif variant == "step-back":
        frames = [(t - HOUR if t >= BASE + 5000 * MS else t, f) for t, f in frames]
    return frames


def make_time_clean():
    return pcap(time_traffic("clean"))


def make_time_far_future():
    return pcap(time_traffic("far-future"))


def make_time_step_back():
    return pcap(time_traffic("step-back"))


def make_tcp_close_reordered():
    """Four TCP connections whose packets were captured slightly out of order
    (as from several CPUs or interfaces), 1 ms apart:
      A (port 47001): the server's FIN captured before the second half of its
        response;
      B (port 47002): the client's FIN captured before the last segment of
        its query, and the server's response in one segment with its FIN;
      C (port 47003): the client's RST (acknowledging the whole response)
        captured before the last segment of the response;
      D (port 47004): the client's first data captured before its SYN, and
        the server's response before its SYN-ACK."""
    frames = []
    qa, ra = mtp.ex(0x3c01, "a-fin.example.test")
    qb, rb = mtp.ex(0x3c02, "b-fin.example.test")
    qc, rc = mtp.ex(0x3c03, "c-rst.example.test")
    qd, rd = mtp.ex(0x3c04, "d-syn.example.test")
    t = BASE
    a = mtp.Conn(frames, 47001, cisn=0x74000000, sisn=0x75000000)
    a.handshake(t)
    a.client(t + 1 * MS, 0, mtp.framed(qa))
    w = mtp.framed(ra)
    a.server(t + 2 * MS, 0, w[:30])
    # FIN (sequence after the whole response) before the response's second half
    a._add(t + 3 * MS, False, a.sisn + 1 + len(w), a.cisn + 1 + a.cnext, mtp.FIN | mtp.ACK)
    a.server(t + 4 * MS, 30, w[30:])
    a._add(t + 5 * MS, True, a.cisn + 1 + a.cnext, a.sisn + 2 + len(w), mtp.FIN | mtp.ACK)
    a._add(t + 6 * MS, False, a.sisn + 2 + len(w), a.cisn + 2 + a.cnext, mtp.ACK)

    t = BASE + 100 * MS
    b = mtp.Conn(frames, 47002, cisn=0x76000000, sisn=0x77000000)
    b.handshake(t)
    w = mtp.framed(qb)
    b.client(t + 1 * MS, 0, w[:20])
    b._add(t + 2 * MS, True, b.cisn + 1 + len(w), b.sisn + 1, mtp.FIN | mtp.ACK)
    b.client(t + 3 * MS, 20, w[20:])
    b._add(t + 4 * MS, False, b.sisn + 1, b.cisn + 2 + len(w), mtp.FIN | mtp.PSH | mtp.ACK, mtp.framed(rb))
    b._add(t + 5 * MS, True, b.cisn + 2 + len(w), b.sisn + 2 + len(mtp.framed(rb)), mtp.ACK)

    t = BASE + 200 * MS
    c = mtp.Conn(frames, 47003, cisn=0x78000000, sisn=0x79000000)
    c.handshake(t)
    c.client(t + 1 * MS, 0, mtp.framed(qc))
    w = mtp.framed(rc)
    c.server(t + 2 * MS, 0, w[:25])
    c._add(t + 3 * MS, True, c.cisn + 1 + c.cnext, c.sisn + 1 + len(w), mtp.RST | mtp.ACK)
    c.server(t + 4 * MS, 25, w[25:])

    t = BASE + 300 * MS
    d = mtp.Conn(frames, 47004, cisn=0x7a000000, sisn=0x7b000000)
    d.client(t, 0, mtp.framed(qd))                                   # data first ...
    d._add(t + 1 * MS, True, d.cisn, 0, mtp.SYN)                     # ... then its SYN
    d.server(t + 2 * MS, 0, mtp.framed(rd))                          # response first ...
    d._add(t + 3 * MS, False, d.sisn, d.cisn + 1, mtp.SYN | mtp.ACK)  # ... then the SYN-ACK
    d._add(t + 4 * MS, True, d.cisn + 1, d.sisn + 1, mtp.ACK)
    d.close(t + 5 * MS)
    frames.sort(key=lambda f: f[0])
    return pcap(frames)


# (file, maker, exercises, queries, responses, notes) -- counts with default options
FILES = [
    ("pair-qdcount0.pcap", make_pair_qdcount0,
     "UDP queries answered without a question section (QDCOUNT 0) with FORMERR, SERVFAIL, NOTIMP, REFUSED and "
     "NOTAUTH; a TCP query answered REFUSED without question; a QDCOUNT 0 SERVFAIL with an unused ID", 6, 7,
     "six responses paired on addresses, ports, transport and ID (paired_without_question=6); one unsolicited"),
    ("pair-retransmit.pcap", make_pair_retransmit,
     "retransmitted UDP queries: two copies and two responses; two copies 9.5 s apart and one response 1 s after "
     "the second; two copies 0.5 s apart and one response", 6, 4,
     "each response takes the oldest pending copy; each copy times out from its own time"),
    ("malformed-to-server.pcap", make_malformed_to_server,
     "to/from port 53: a 5-byte and a 3-byte message, QR set towards the server and clear from it, a query and "
     "a response whose question does not parse (and a TCP one), a FORMERR without question answering the bad "
     "query, one good exchange", 1, 2,
     "default: 7 malformed messages counted, not emitted; --keep-malformed: 5 queries + 5 responses"),
    ("time-clean.pcap", make_time_clean,
     "61 background exchanges over 30 s; an unanswered query, a response 12 s late, a response with no query, a "
     "query pending at the end, a fragmented response and a TCP exchange around +5 s", 68, 67,
     "with the default --query-timeout: unanswered_queries=2, unsolicited_responses=2, unanswered_at_end=1"),
    ("time-far-future.pcap", make_time_far_future,
     "time-clean.pcap with one non-DNS record dated 2096 at +5 s", 68, 67,
     "the same messages and counts as time-clean.pcap; time_discontinuities=1"),
    ("time-step-back.pcap", make_time_step_back,
     "time-clean.pcap with every packet from +5 s on dated one hour earlier (clock stepped back)", 68, 67,
     "the same messages (times shifted) and counts as time-clean.pcap; time_discontinuities=1; the 3 responses "
     "whose query came before the step carry no query_time (query_time_omitted=3)"),
    ("tcp-close-reordered.pcap", make_tcp_close_reordered,
     "TCP captured out of order: a server FIN before the end of its response, a client FIN before the end of "
     "its query, an RST before the end of the response, data before its SYN and SYN-ACK", 4, 4,
     "no message lost (tcp_reordered_closes=3, tcp_late_syns=2)"),
]

BEGIN, END = "<!-- PAIRING-PCAPS BEGIN (make_pairing_pcaps.py) -->", "<!-- PAIRING-PCAPS END -->"


def readme_section(packets):
    lines = [BEGIN, "", "## Pairing, packet time and TCP closing captures (make_pairing_pcaps.py)", "",
             "Generated by `make_pairing_pcaps.py` (run it after `make_pcaps.py`, which rewrites this README; "
             "this section is replaced in place). pcap µs LE, Ethernet (1); client 192.0.2.10, server "
             "192.0.2.53 port 53; checksums correct. Times start at 1700002000.000000 (2023-11-14T22:46:40Z). "
             "Queries and responses: what sidetap emits with default options.", "",
             "| File | Format / link type | Exercises | Packets | Queries | Responses | Notes |",
             "|---|---|---|---|---|---|---|"]
    for name, _, what, q, r, notes in FILES:
        lines.append("| %s | pcap µs LE; Ethernet (1) | %s | %d | %d | %d | %s |" % (name, what, packets[name], q, r,
                                                                                   notes))
    lines += ["", END, ""]
    return "\n".join(lines)


def main():
    def reset_ids():
        mp._ip_id[0] = 0x6000

    mp.write_captures(__doc__.splitlines()[0], FILES, readme_section, BEGIN, END, reset_ids)


if __name__ == "__main__":
    main()
