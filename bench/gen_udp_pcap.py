#!/usr/bin/env python3
"""Writes a large pcap of DNS over UDP for benchmarks: N query/response pairs to a server on
port 53, from many clients (IPv4, and about --ipv6-share over IPv6), many names and query
types, with valid IPv4 header and UDP checksums.

    bench/gen_udp_pcap.py -n 500000 -o /tmp/bench.pcap

Shape of the traffic (deterministic for a given --seed):
- Ethernet (DLT_EN10MB), classic pcap with microsecond timestamps;
- a query every ~20 us (--interval-us, +/- jitter), its response 8 queries later (~160 us),
  so pairs interleave as on a busy server; file order = time order;
- 2000 names under 8 zones x 8 query types (A, AAAA, MX, TXT, NS, SOA, PTR, HTTPS), ~10%
  NXDOMAIN, half of the (name, type) templates with EDNS, random client ports and IDs.

Speed: DNS payloads are built once per (name, type) template with their checksum partial
sums; a packet is one struct.pack of the headers plus the template bytes, and output is
written in large chunks.
"""
import argparse
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
    args = ap.parse_args()
    if args.interval_us < 4:
        ap.error("--interval-us must be >= 4 (responses are placed between queries)")

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
    pending = []        # (v6, client, client_sum, port, qid, response body, body sum)
    packets = 0

    def emit_response(r, now_us):
        v6, caddr, csum, port, qid, body, bsum = r
        ulen = 10 + len(body)
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

    for i in range(args.pairs):
        t_us += interval + randrange(-jitter // 2, jitter // 2 + 1)
        v6 = random_() < ipv6_share
        ni = randrange(nnames)
        ti = type_choices[randrange(ntypes)]
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
        append(rec(t_us // 1_000_000, t_us % 1_000_000, caplen, caplen))
        append(eth)
        append(hdr)
        append(qbody)
        pending.append((v6, caddr, csum, port, qid, rbody, rsum))
        packets += 1
        if len(pending) > REORDER:
            emit_response(pending.pop(0), t_us + 2)
            packets += 1
        if len(chunk) >= 200_000:
            out.write(b"".join(chunk))
            chunk.clear()
    for r in pending:
        t_us += 3
        emit_response(r, t_us)
        packets += 1
    out.write(b"".join(chunk))
    out.close()
    print(f"gen_udp_pcap: {args.pairs} pairs, {packets} packets -> {args.output} "
          f"in {time.monotonic() - t_begin:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
