#!/usr/bin/env python3
"""Writes a large pcap of DNS over UDP for benchmarks: N query/response pairs to a server on
port 53, from many clients (IPv4, and about --ipv6-share over IPv6), many names and query
types, with valid IPv4 header and UDP checksums. Optionally a share of the exchanges over TCP
and a share of large UDP responses that arrive IP-fragmented (a "mixed" capture).

    bench/gen_udp_pcap.py -n 500000 -o /tmp/bench.pcap
    bench/gen_udp_pcap.py -n 500000 --tcp-share 0.15 --frag-share 0.01 -o /tmp/mixed.pcap

Shape of the traffic (deterministic for a given --seed):
- Ethernet (DLT_EN10MB), classic pcap with microsecond timestamps;
- a query every ~20 us (--interval-us, +/- jitter), its response 8 queries later (~160 us),
  so pairs interleave as on a busy server; file order = time order;
- 2000 names under 8 zones x 8 query types (A, AAAA, MX, TXT, NS, SOA, PTR, HTTPS), ~10%
  NXDOMAIN, half of the (name, type) templates with EDNS, random client ports and IDs.

Mixed traffic (--tcp-share, --frag-share > 0; with both 0 the file is byte-identical to
the UDP-only one, the choices come from a second generator seeded from --seed):
- --tcp-share of the exchanges go over TCP connections (same clients, random port):
  SYN, SYN-ACK, ACK, then 1-3 queries (60% one, 25% two, 15% three; several queries are
  pipelined, in one segment half of the time, else back to back), one response segment per
  query after 30-300 us of server time, the client's ACK, FIN/ACK both ways and the last ACK;
  RTT 40-400 us; valid TCP checksums. Connections overlap the UDP traffic in time order.
- --frag-share of the UDP exchanges are TXT queries with EDNS 4096 whose response is 1.6 to
  4 KB and crosses the wire IP-fragmented at a 1500-byte MTU (IPv4: 1480-byte fragments;
  IPv6: Fragment header, 1448-byte fragments), fragments in order.
- Every exchange is one query and one response, so dnstap frames = 2 x pairs either way.

Speed: DNS payloads are built once per (name, type) template with their checksum partial
sums; a packet is one struct.pack of the headers plus the template bytes, and output is
written in large chunks.
"""
import argparse
import heapq
import random
import struct
import sys
import time

QTYPES = [("A", 1, 50), ("AAAA", 28, 22), ("MX", 15, 5), ("TXT", 16, 5), ("NS", 2, 5),
          ("SOA", 6, 3), ("PTR", 12, 5), ("HTTPS", 65, 5)]
ZONES = ["example.com", "example.net", "example.org", "shop.example", "cdn.example.com",
         "mail.example.net", "api.example.io", "internal.corp.example"]
LABELS = ["www", "api", "mail", "cdn", "img", "static", "login", "auth", "db", "vpn", "ns",
          "smtp", "imap", "git", "ci", "docs", "blog", "shop", "pay", "edge"]
REORDER = 8             # a response follows its query by this many queries
SERVER4 = bytes([192, 0, 2, 53])
SERVER6 = bytes.fromhex("20010db8000000000000000000000053")
MAC_SERVER = bytes.fromhex("020000000053")
MAC_ROUTER = bytes.fromhex("020000000001")

PCAP_REC = struct.Struct("<IIII")
TCP_HDR = struct.Struct("!HHIIHHHH")
IP4_HDR = struct.Struct("!HHHHHH4s4s")
IP6_HDR = struct.Struct("!IHBB16s16s")
FRAG6_HDR = struct.Struct("!BBHI")
TCP_SYN, TCP_ACK, TCP_PSH, TCP_FIN = 0x02, 0x10, 0x08, 0x01
IP4_UDP = struct.Struct("!HHHHHH4s4sHHHHH")     # IPv4 header + UDP header + DNS ID
IP6_UDP = struct.Struct("!IHBB16s16sHHHHH")     # IPv6 header + UDP header + DNS ID


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def word_sum(b):
    if len(b) % 2:
        b += b"\0"
    return sum(struct.unpack("!%dH" % (len(b) // 2), b))


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def rr(typ, ttl, rdata, owner=b"\xc0\x0c"):
    return owner + struct.pack("!HHIH", typ, 1, ttl, len(rdata)) + rdata


class Templates:
    """(name index, qtype index) -> (query body, its word sum, response body, its word sum);
    a body is the DNS message without its 2-byte ID."""

    def __init__(self, rng, nnames):
        self.names = []
        for i in range(nnames):
            zone = ZONES[i % len(ZONES)]
            self.names.append(f"{rng.choice(LABELS)}{i}.{zone}")
        self.rng = random.Random(rng.random())
        self.cache = {}

    def get(self, ni, ti):
        key = (ni, ti)
        t = self.cache.get(key)
        if t is None:
            t = self.cache[key] = self._build(ni, ti)
        return t

    def get_large(self, ni):
        """A TXT query with EDNS 4096 and a 1.6-4 KB response, for fragmented responses."""
        key = ("large", ni)
        t = self.cache.get(key)
        if t is None:
            rng = random.Random(ni * 7 + 3)
            name = self.names[ni]
            opt = b"\x00" + struct.pack("!HHIH", 41, 4096, 0, 0)
            question = encode_name(name) + struct.pack("!HH", 16, 1)
            query = struct.pack("!HHHHH", 0x0100, 1, 0, 0, 1) + question + opt
            n = rng.randrange(6, 16)
            answers = [rr(16, 300, bytes([250]) + rng.randbytes(125).hex().encode())
                       for _ in range(n)]
            response = (struct.pack("!HHHHH", 0x8580, 1, n, 0, 1) + question
                        + b"".join(answers) + opt)
            t = self.cache[key] = (query, word_sum(query), response, word_sum(response))
        return t

    def _build(self, ni, ti):
        rng = random.Random(ni * 100 + ti)
        name = self.names[ni]
        zone = ZONES[ni % len(ZONES)]
        qtype = QTYPES[ti][1]
        edns = (ni + ti) % 2 == 0
        opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0) if edns else b""
        question = encode_name(name) + struct.pack("!HH", qtype, 1)
        query = struct.pack("!HHHHH", 0x0100, 1, 0, 0, 1 if edns else 0) + question + opt

        nxdomain = rng.random() < 0.10
        soa = rr(6, 300, encode_name("ns1." + zone) + encode_name("hostmaster." + zone)
                 + struct.pack("!IIIII", 2024010101, 3600, 900, 604800, 300),
                 owner=encode_name(zone))
        answers = []
        if not nxdomain:
            if qtype == 1:
                answers = [rr(1, 300, bytes([198, 51, 100, rng.randrange(1, 255)]))
                           for _ in range(rng.choice((1, 1, 2, 4)))]
            elif qtype == 28:
                answers = [rr(28, 300, bytes.fromhex("20010db8") + rng.randbytes(12))]
            elif qtype == 15:
                answers = [rr(15, 3600, struct.pack("!H", 10 * (k + 1))
                              + encode_name(f"mx{k}.{zone}")) for k in range(2)]
            elif qtype == 16:
                answers = [rr(16, 300, bytes([40]) + rng.randbytes(20).hex().encode())]
            elif qtype == 2:
                answers = [rr(2, 86400, encode_name(f"ns{k}.{zone}")) for k in (1, 2)]
            elif qtype == 6:
                answers = [soa]
            elif qtype == 12:
                answers = [rr(12, 3600, encode_name(f"host{ni}.{zone}"))]
        authority = [soa] if (nxdomain or not answers) else []
        flags = 0x8500 | (3 if nxdomain else 0)
        response = (struct.pack("!HHHHH", flags, 1, len(answers), len(authority),
                                1 if edns else 0)
                    + question + b"".join(answers) + b"".join(authority) + opt)
        return query, word_sum(query), response, word_sum(response)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--pairs", type=int, default=500_000)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ipv6-share", type=float, default=0.2)
    ap.add_argument("--clients", type=int, default=5000)
    ap.add_argument("--names", type=int, default=2000)
    ap.add_argument("--interval-us", type=int, default=20)
    ap.add_argument("--start", type=int, default=1_700_000_000, help="epoch seconds")
    ap.add_argument("--tcp-share", type=float, default=0.0,
                    help="share of the exchanges over TCP connections (e.g. 0.15)")
    ap.add_argument("--frag-share", type=float, default=0.0,
                    help="share of the UDP exchanges with a large, IP-fragmented response")
    args = ap.parse_args()
    if args.interval_us < 4:
        ap.error("--interval-us must be >= 4 (responses are placed between queries)")
    if args.interval_us < 8 and args.frag_share > 0:
        ap.error("--frag-share needs --interval-us >= 8 (fragments are 1 us apart)")

    t_begin = time.monotonic()
    rng = random.Random(args.seed)
    tpl = Templates(rng, args.names)
    weights = [w for _, _, w in QTYPES]
    type_choices = [i for i, w in enumerate(weights) for _ in range(w)]

    n6 = max(1, args.clients // 5)
    clients4 = []
    for _ in range(args.clients):
        a = bytes([10, rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)])
        clients4.append((a, word_sum(a)))
    clients6 = []
    for _ in range(n6):
        a = bytes.fromhex("20010db80001") + rng.randbytes(10)
        clients6.append((a, word_sum(a)))
    s4_sum, s6_sum = word_sum(SERVER4), word_sum(SERVER6)

    eth4_q = MAC_SERVER + MAC_ROUTER + b"\x08\x00"
    eth4_r = MAC_ROUTER + MAC_SERVER + b"\x08\x00"
    eth6_q = MAC_SERVER + MAC_ROUTER + b"\x86\xdd"
    eth6_r = MAC_ROUTER + MAC_SERVER + b"\x86\xdd"
    ip4_const = 0x4500 + 0x4000 + 0x4011        # version/IHL/TOS, DF, TTL 64 + UDP

    out = open(args.output, "wb", buffering=1 << 22)
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    chunk = []
    append = chunk.append
    rec = PCAP_REC.pack
    p4 = IP4_UDP.pack
    p6 = IP6_UDP.pack
    randrange = rng.randrange
    random_ = rng.random
    ipv6_share = args.ipv6_share
    ntypes = len(type_choices)
    nnames = args.names
    interval = args.interval_us
    jitter = max(1, interval // 2)
    t_us = args.start * 1_000_000
    pending = []        # (v6, client, client_sum, port, qid, response body, body sum, big)
    packets = 0
    mixed = args.tcp_share > 0 or args.frag_share > 0
    mix = random.Random(args.seed * 1_000_003 + 7)     # only used for mixed traffic
    events = []         # TCP packets scheduled ahead: (time us, sequence, frame bytes)
    stats = {"tcp_connections": 0, "tcp_pairs": 0, "frag_responses": 0, "fragments": 0}

    def flush_events(upto_us):
        # TCP packets due at or before `upto_us` go out first: file order = time order.
        nonlocal packets
        while events and events[0][0] <= upto_us:
            t, _, frame = heapq.heappop(events)
            append(rec(t // 1_000_000, t % 1_000_000, len(frame), len(frame)))
            append(frame)
            packets += 1

    def emit_fragments(v6, src, dst, datagram, now_us):
        # One UDP datagram as IP fragments at a 1500-byte MTU, in order, 1 us apart.
        nonlocal packets
        step = 1448 if v6 else 1480
        ident = mix.randrange(1 << 32) if v6 else mix.randrange(65536)
        for off in range(0, len(datagram), step):
            part = datagram[off:off + step]
            more = off + step < len(datagram)
            if v6:
                hdr = (IP6_HDR.pack(0x60000000, 8 + len(part), 44, 64, src, dst)
                       + FRAG6_HDR.pack(17, 0, off | int(more), ident))
                eth = eth6_r
            else:
                tlen = 20 + len(part)
                fl = (0x2000 if more else 0) | (off >> 3)
                ipck = ~fold(0x4500 + tlen + ident + fl + 0x4011 + word_sum(src)
                             + word_sum(dst)) & 0xFFFF
                hdr = IP4_HDR.pack(0x4500, tlen, ident, fl, 0x4011, ipck, src, dst)
                eth = eth4_r
            caplen = 14 + len(hdr) + len(part)
            flush_events(now_us)
            append(rec(now_us // 1_000_000, now_us % 1_000_000, caplen, caplen))
            append(eth)
            append(hdr)
            append(part)
            packets += 1
            stats["fragments"] += 1
            now_us += 1

    def emit_response(r, now_us):
        nonlocal packets
        v6, caddr, csum, port, qid, body, bsum, big = r
        if mixed:
            flush_events(now_us)
        ulen = 10 + len(body)
        if big:
            s = (s6_sum if v6 else s4_sum) + csum + 17 + ulen + 53 + port + ulen + qid + bsum
            ck = ~fold(s) & 0xFFFF or 0xFFFF
            datagram = struct.pack("!HHHHH", 53, port, ulen, ck, qid) + body
            emit_fragments(v6, SERVER6 if v6 else SERVER4, caddr, datagram, now_us)
            stats["frag_responses"] += 1
            return
        if v6:
            s = s6_sum + csum + 17 + ulen + 53 + port + ulen + qid + bsum
            ck = ~fold(s) & 0xFFFF or 0xFFFF
            hdr = p6(0x60000000, ulen, 17, 64, SERVER6, caddr, 53, port, ulen, ck, qid)
            eth = eth6_r
        else:
            tlen = 20 + ulen
            ipid = qid ^ 0x5A5A
            ipck = ~fold(ip4_const + tlen + ipid + s4_sum + csum) & 0xFFFF
            s = s4_sum + csum + 17 + ulen + 53 + port + ulen + qid + bsum
            ck = ~fold(s) & 0xFFFF or 0xFFFF
            hdr = p4(0x4500, tlen, ipid, 0x4000, 0x4011, ipck, SERVER4, caddr, 53, port,
                     ulen, ck, qid)
            eth = eth4_r
        caplen = 14 + len(hdr) + len(body)
        append(rec(now_us // 1_000_000, now_us % 1_000_000, caplen, caplen))
        append(eth)
        append(hdr)
        append(body)
        packets += 1

    seq_no = 0

    def tcp_packet(t, v6, src, dst, sport, dport, seq, ack, flags, payload=b""):
        nonlocal seq_no
        tl = 20 + len(payload)
        hdr0 = TCP_HDR.pack(sport, dport, seq, ack, (5 << 12) | flags, 65535, 0, 0)
        s = word_sum(src) + word_sum(dst) + 6 + tl + word_sum(hdr0) + word_sum(payload)
        hdr = TCP_HDR.pack(sport, dport, seq, ack, (5 << 12) | flags, 65535, ~fold(s) & 0xFFFF, 0)
        to_server = dport == 53
        if v6:
            ip = IP6_HDR.pack(0x60000000, tl, 6, 64, src, dst)
            eth = eth6_q if to_server else eth6_r
        else:
            ipid = mix.randrange(65536)
            ipck = ~fold(0x4500 + 20 + tl + ipid + 0x4000 + 0x4006 + word_sum(src)
                         + word_sum(dst)) & 0xFFFF
            ip = IP4_HDR.pack(0x4500, 20 + tl, ipid, 0x4000, 0x4006, ipck, src, dst)
            eth = eth4_q if to_server else eth4_r
        seq_no += 1
        heapq.heappush(events, (t, seq_no, eth + ip + hdr + payload))

    def tcp_connection(t0, k):
        # One DNS-over-TCP connection with k exchanges, scheduled into `events`.
        v6 = mix.random() < ipv6_share
        if v6:
            caddr, server = clients6[mix.randrange(n6)][0], SERVER6
        else:
            caddr, server = clients4[mix.randrange(args.clients)][0], SERVER4
        port = mix.randrange(1024, 65536)
        cseq, sseq = mix.randrange(1 << 32), mix.randrange(1 << 32)
        rtt = mix.randrange(40, 400)
        M = 0xFFFFFFFF
        c = lambda t, seq, ack, fl, pl=b"": tcp_packet(t, v6, caddr, server, port, 53,
                                                       seq & M, ack & M, fl, pl)
        s = lambda t, seq, ack, fl, pl=b"": tcp_packet(t, v6, server, caddr, 53, port,
                                                       seq & M, ack & M, fl, pl)
        c(t0, cseq, 0, TCP_SYN)
        s(t0 + 2, sseq, cseq + 1, TCP_SYN | TCP_ACK)
        t = t0 + rtt
        c(t, cseq + 1, sseq + 1, TCP_ACK)
        cseq += 1
        sseq += 1
        msgs = []
        for _ in range(k):
            qbody, _, rbody, _ = tpl.get(mix.randrange(nnames), type_choices[mix.randrange(ntypes)])
            qid = mix.randrange(65536)
            msgs.append((struct.pack("!HH", len(qbody) + 2, qid) + qbody,
                         struct.pack("!HH", len(rbody) + 2, qid) + rbody))
        t += 1
        if k > 1 and mix.random() < 0.5:
            payload = b"".join(q for q, _ in msgs)
            c(t, cseq, sseq, TCP_PSH | TCP_ACK, payload)
            cseq += len(payload)
        else:
            for q, _ in msgs:
                c(t, cseq, sseq, TCP_PSH | TCP_ACK, q)
                cseq += len(q)
                t += 1
        t += mix.randrange(30, 300)
        for _, r in msgs:
            s(t, sseq, cseq, TCP_PSH | TCP_ACK, r)
            sseq += len(r)
            t += mix.randrange(3, 30)
        t += rtt
        c(t, cseq, sseq, TCP_ACK)
        t += 5
        c(t, cseq, sseq, TCP_FIN | TCP_ACK)
        s(t + 2, sseq, cseq + 1, TCP_FIN | TCP_ACK)
        c(t + 2 + rtt, cseq + 1, sseq + 1, TCP_ACK)
        stats["tcp_connections"] += 1
        stats["tcp_pairs"] += k

    # A TCP connection carries 1.55 exchanges on average: the per-step probability of a
    # connection that makes --tcp-share of the exchanges TCP.
    mean_k = 0.6 * 1 + 0.25 * 2 + 0.15 * 3
    p_tcp = args.tcp_share / (mean_k - args.tcp_share * (mean_k - 1))
    i = 0
    while i < args.pairs:
        t_us += interval + randrange(-jitter // 2, jitter // 2 + 1)
        if mixed and mix.random() < p_tcp:
            k = min(args.pairs - i, 1 if (x := mix.random()) < 0.6 else 2 if x < 0.85 else 3)
            tcp_connection(t_us, k)
            i += k
            flush_events(t_us)
            continue
        i += 1
        v6 = random_() < ipv6_share
        ni = randrange(nnames)
        ti = type_choices[randrange(ntypes)]
        big = mixed and mix.random() < args.frag_share
        if big:
            qbody, qsum, rbody, rsum = tpl.get_large(ni)
        else:
            qbody, qsum, rbody, rsum = tpl.get(ni, ti)
        port = randrange(1024, 65536)
        qid = randrange(65536)
        ulen = 10 + len(qbody)
        if v6:
            caddr, csum = clients6[randrange(n6)]
            s = csum + s6_sum + 17 + ulen + port + 53 + ulen + qid + qsum
            ck = ~fold(s) & 0xFFFF or 0xFFFF
            hdr = p6(0x60000000, ulen, 17, 64, caddr, SERVER6, port, 53, ulen, ck, qid)
            eth = eth6_q
        else:
            caddr, csum = clients4[randrange(args.clients)]
            tlen = 20 + ulen
            ipid = randrange(65536)
            ipck = ~fold(ip4_const + tlen + ipid + csum + s4_sum) & 0xFFFF
            s = csum + s4_sum + 17 + ulen + port + 53 + ulen + qid + qsum
            ck = ~fold(s) & 0xFFFF or 0xFFFF
            hdr = p4(0x4500, tlen, ipid, 0x4000, 0x4011, ipck, caddr, SERVER4, port, 53,
                     ulen, ck, qid)
            eth = eth4_q
        caplen = 14 + len(hdr) + len(qbody)
        if mixed:
            flush_events(t_us)
        append(rec(t_us // 1_000_000, t_us % 1_000_000, caplen, caplen))
        append(eth)
        append(hdr)
        append(qbody)
        pending.append((v6, caddr, csum, port, qid, rbody, rsum, big))
        packets += 1
        if len(pending) > REORDER:
            emit_response(pending.pop(0), t_us + 2)
        if len(chunk) >= 200_000:
            out.write(b"".join(chunk))
            chunk.clear()
    for r in pending:
        t_us += 3 if not r[7] else 8
        emit_response(r, t_us)
    flush_events(1 << 62)
    out.write(b"".join(chunk))
    out.close()
    extra = ""
    if mixed:
        extra = " (" + ", ".join(f"{k} {v}" for k, v in stats.items()) + ")"
    print(f"gen_udp_pcap: {args.pairs} pairs, {2 * args.pairs} messages, {packets} packets{extra}"
          f" -> {args.output} in {time.monotonic() - t_begin:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
