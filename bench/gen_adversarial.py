#!/usr/bin/env python3
"""Writes adversarial pcaps for the memory benchmark: traffic that fills sidetap's bounded
tables (IP fragment trackers, TCP streams, pending queries) and never lets them drain.

    bench/gen_adversarial.py frags   -n 1000000 -o /tmp/frags.pcap
    bench/gen_adversarial.py tcp     -n 100000  -o /tmp/tcp.pcap
    bench/gen_adversarial.py queries -n 1000000 -o /tmp/queries.pcap

Kinds (every item has its own tuple, so nothing ever merges; --ipv6-share of them IPv6):
- frags:   N first fragments (offset 0, MF=1) of large UDP DNS responses from the server to
           N distinct clients, whose other fragments never come. IPv4: id = i & 0xffff,
           destination 10.0.0.0/8 + i (distinct); IPv6: Fragment header, 32-bit id = i,
           destination 2001:db8:1::/64 + i. Each fragment carries --frag-payload bytes after
           the IP (+ Fragment) header (UDP header + the start of a DNS response); default
           256 — any size up to 2048 costs the defragmenter the same 2 KiB buffer block.
           Every --interval-us (default 10: 1M fragments in 10 s of packet time, all inside
           the default 30 s fragment timeout). --frag-offset K sends instead a middle
           fragment at byte offset K (MF=1, no UDP header): the defragmenter sizes the
           datagram buffer by the highest end seen, so K near 64000 costs a 64 KiB block
           each and exercises its byte bound (EvictedMemory) rather than its count bound.
- tcp:     N connections to port 53 that never close: client SYN, then one segment with a
           2-byte length prefix and only part of a DNS query (--tcp-sent bytes of a message
           announced as --tcp-claimed bytes; default: the query's real length, half of it
           sent). Distinct client address/port per connection. Every --interval-us
           (default 200: 100k connections in 20 s, inside the default 60 s idle timeout).
- hashflood: N unanswered UDP queries from one client/port/ID whose qnames
           ("example.XXXXX") are chosen so that the pairing table's hash (ExchangeKeyHash:
           FNV-1a, no seed; index of 131072 slots for the default 65536 queries) puts all of
           them into the first --flood-window slots. Linear probing then turns every insert,
           lookup and backward-shift erase into a walk of one giant cluster. --control writes
           the same shape with random names instead. (Model of src/pairing/pairer.cpp as of
           2026-11-22; if the hash changes, this kind no longer collides.)
- queries: N UDP queries to port 53 that are never answered; distinct (client address,
           port) per query: port 1024 + i % 64512, client number i // 64512 (or, with
           --random-tuples, random ones). Every --interval-us (default 20: 1M queries in 20 s).

Classic pcap, Ethernet, microsecond timestamps, valid IPv4 header / UDP / TCP checksums
(the UDP checksum of a fragment's datagram covers bytes that never come: it is computed
over a zero-filled rest). Deterministic for a given --seed. On stderr: packets written and
the number of items (datagrams, connections, queries) the counters must account for.

Speed: packets are built from a per-kind template by one struct.pack of the varying header
fields; checksums come from precomputed partial sums; output goes out in 4 MiB chunks.
"""
import argparse
import random
import struct
import sys
import time

SERVER4 = bytes([192, 0, 2, 53])
SERVER6 = bytes.fromhex("20010db8000000000000000000000053")
MAC_SERVER = bytes.fromhex("020000000053")
MAC_ROUTER = bytes.fromhex("020000000001")
ETH4_TO_SERVER = MAC_SERVER + MAC_ROUTER + b"\x08\x00"
ETH6_TO_SERVER = MAC_SERVER + MAC_ROUTER + b"\x86\xdd"
ETH4_FROM_SERVER = MAC_ROUTER + MAC_SERVER + b"\x08\x00"
ETH6_FROM_SERVER = MAC_ROUTER + MAC_SERVER + b"\x86\xdd"
PCAP_REC = struct.Struct("<IIII")


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


def client4(i):
    """Distinct IPv4 client for i < 2^24: 10.0.0.0/8 + i (skipping nothing: .0/.255 are fine
    as packet addresses here)."""
    return bytes([10, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF])


def client6(i):
    return bytes.fromhex("20010db800010000") + struct.pack("!Q", i + 1)


def query_body(name, qtype=1, edns=True):
    """DNS query without its 2-byte ID."""
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0) if edns else b""
    return (struct.pack("!HHHHH", 0x0100, 1, 0, 0, 1 if edns else 0)
            + encode_name(name) + struct.pack("!HH", qtype, 1) + opt)


class Writer:
    def __init__(self, path):
        self.out = open(path, "wb", buffering=1 << 22)
        self.out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        self.chunk = []
        self.packets = 0

    def packet(self, t_us, *parts):
        n = sum(len(p) for p in parts)
        self.chunk.append(PCAP_REC.pack(t_us // 1_000_000, t_us % 1_000_000, n, n))
        self.chunk.extend(parts)
        self.packets += 1
        if len(self.chunk) >= 400_000:
            self.flush()

    def flush(self):
        self.out.write(b"".join(self.chunk))
        self.chunk.clear()

    def close(self):
        self.flush()
        self.out.close()


def gen_frags(args, rng, w):
    """First fragments of big responses, server -> distinct clients."""
    p = args.frag_payload
    if p % 8 or p < 16 or p > 1480:
        sys.exit("gen_adversarial: --frag-payload must be a multiple of 8 in [16, 1480]")
    off = args.frag_offset
    if off % 8 or off < 0 or off + p > 65535:
        sys.exit("gen_adversarial: --frag-offset must be a multiple of 8, offset + payload <= 65535")
    total_udp = 4000                      # the datagram the fragment claims to start
    dns = struct.pack("!HHHHH", 0x8180, 1, 1, 0, 1) + encode_name("big.example.com") \
        + struct.pack("!HH", 16, 1)
    dns = (dns + bytes(range(256)) * 8)[:p - 8 - 2]      # without the 2-byte DNS ID
    rest_sum = word_sum(dns)                             # zero-filled rest adds nothing
    s4, s6 = word_sum(SERVER4), word_sum(SERVER6)
    ip4 = struct.Struct("!HHHHHH4s4s")
    ip6 = struct.Struct("!IHBB16s16sBBHI")               # IPv6 + Fragment header
    udp = struct.Struct("!HHHHH")                        # UDP header + DNS ID
    t_us = args.start * 1_000_000
    n6 = 0
    if off:
        middle = (bytes(range(256)) * 6)[:p]
        for i in range(args.count):
            t_us += args.interval_us
            if rng.random() < args.ipv6_share:
                n6 += 1
                w.packet(t_us, ETH6_FROM_SERVER,
                         ip6.pack(0x60000000, 8 + p, 44, 64, SERVER6, client6(i), 17, 0,
                                  off | 1, i), middle)
            else:
                dst = client4(i)
                ipid = i & 0xFFFF
                fl = 0x2000 | (off >> 3)
                ipck = ~fold(0x4500 + 20 + p + ipid + fl + 0x4011 + s4 + word_sum(dst)) & 0xFFFF
                w.packet(t_us, ETH4_FROM_SERVER,
                         ip4.pack(0x4500, 20 + p, ipid, fl, 0x4011, ipck, SERVER4, dst), middle)
        return {"datagrams": args.count, "ipv6": n6, "offset": off}
    for i in range(args.count):
        t_us += args.interval_us
        port = 1024 + rng.randrange(64512)
        qid = rng.randrange(65536)
        if rng.random() < args.ipv6_share:
            n6 += 1
            dst = client6(i)
            ck = ~fold(s6 + word_sum(dst) + 17 + total_udp + 53 + port + total_udp + qid
                       + rest_sum) & 0xFFFF or 0xFFFF
            w.packet(t_us, ETH6_FROM_SERVER,
                     ip6.pack(0x60000000, 8 + p, 44, 64, SERVER6, dst, 17, 0, 0x0001, i),
                     udp.pack(53, port, total_udp, ck, qid), dns)
        else:
            dst = client4(i)
            ipid = i & 0xFFFF
            tlen = 20 + p
            ipck = ~fold(0x4500 + tlen + ipid + 0x2000 + 0x4011 + s4 + word_sum(dst)) & 0xFFFF
            ck = ~fold(s4 + word_sum(dst) + 17 + total_udp + 53 + port + total_udp + qid
                       + rest_sum) & 0xFFFF or 0xFFFF
            w.packet(t_us, ETH4_FROM_SERVER,
                     ip4.pack(0x4500, tlen, ipid, 0x2000, 0x4011, ipck, SERVER4, dst),
                     udp.pack(53, port, total_udp, ck, qid), dns)
    return {"datagrams": args.count, "ipv6": n6}


def gen_tcp(args, rng, w):
    """SYN + part of a length-prefixed query per connection; no FIN, no RST."""
    body = query_body("never-finished.example.com", 1)   # without ID
    claimed = args.tcp_claimed or (2 + len(body))         # DNS message length incl. ID
    sent = args.tcp_sent if args.tcp_sent is not None else (2 + len(body)) // 2
    if not 0 < sent < claimed or claimed > 65535:
        sys.exit("gen_adversarial: need 0 < --tcp-sent < --tcp-claimed <= 65535")
    # Payload: 2-byte length + first `sent` bytes of (ID + body), padded with zeros if the
    # claimed message is longer than the template.
    s4, s6 = word_sum(SERVER4), word_sum(SERVER6)
    ip4 = struct.Struct("!HHHHHH4s4s")
    ip6 = struct.Struct("!IHBB16s16s")
    tcp = struct.Struct("!HHIIHHHH")
    syn_opts = bytes.fromhex("020405b4") + bytes.fromhex("01030307")    # MSS 1460, WS 7
    t_us = args.start * 1_000_000
    n6 = 0
    for i in range(args.count):
        t_us += args.interval_us
        port = 1024 + (i % 64512)
        isn = rng.randrange(1 << 32)
        qid = rng.randrange(65536)
        msg = (struct.pack("!HH", claimed, qid) + body + bytes(max(0, claimed - 2 - len(body))))
        payload = msg[:2 + sent]
        psum = word_sum(payload)
        v6 = rng.random() < args.ipv6_share
        if v6:
            n6 += 1
            src = client6(i // 64512)
            ab = s6 + word_sum(src) + 6
        else:
            src = client4(i // 64512)
            ab = s4 + word_sum(src) + 6
        for flags_len, seq, ack, pl, popts, dt in (
                ((7 << 12) | 0x002, isn, 0, b"", syn_opts, 0),              # SYN (28-byte hdr)
                ((5 << 12) | 0x018, (isn + 1) & 0xFFFFFFFF, 1, payload, b"", 150)):  # PSH|ACK
            tl = len(popts) + 20 + len(pl)
            s = (ab + tl + port + 53 + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF)
                 + flags_len + 64240 + word_sum(popts) + (psum if pl else 0))
            ck = ~fold(s) & 0xFFFF
            hdr = tcp.pack(port, 53, seq, ack, flags_len, 64240, ck, 0)
            if v6:
                w.packet(t_us + dt, ETH6_TO_SERVER, ip6.pack(0x60000000, tl, 6, 64, src, SERVER6),
                         hdr, popts, pl)
            else:
                ipid = (i + dt) & 0xFFFF
                tlen = 20 + tl
                ipck = ~fold(0x4500 + tlen + ipid + 0x4000 + 0x4006 + s4 + word_sum(src)) & 0xFFFF
                w.packet(t_us + dt, ETH4_TO_SERVER,
                         ip4.pack(0x4500, tlen, ipid, 0x4000, 0x4006, ipck, src, SERVER4),
                         hdr, popts, pl)
    return {"connections": args.count, "ipv6": n6, "partial_bytes_each": 2 + sent,
            "claimed_length": claimed}


def gen_queries(args, rng, w):
    """Queries never answered: distinct (client, port) per query."""
    names = [f"q{k}.unanswered.example" for k in range(256)]
    bodies = [(b, word_sum(b)) for b in (query_body(n, 1) for n in names)]
    s4, s6 = word_sum(SERVER4), word_sum(SERVER6)
    ip4 = struct.Struct("!HHHHHH4s4sHHHHH")
    ip6 = struct.Struct("!IHBB16s16sHHHHH")
    t_us = args.start * 1_000_000
    n6 = 0
    for i in range(args.count):
        t_us += args.interval_us
        port = 1024 + (i % 64512)
        qid = rng.randrange(65536)
        j = i // 64512
        if args.random_tuples:      # random client and port (rare repeats: duplicate_queries)
            port = 1024 + rng.randrange(64512)
            j = rng.randrange(1 << 20)
        body, bsum = bodies[i & 255]
        ulen = 10 + len(body)
        if rng.random() < args.ipv6_share:
            n6 += 1
            src = client6(j)
            ck = ~fold(word_sum(src) + s6 + 17 + ulen + port + 53 + ulen + qid + bsum) & 0xFFFF \
                or 0xFFFF
            w.packet(t_us, ETH6_TO_SERVER,
                     ip6.pack(0x60000000, ulen, 17, 64, src, SERVER6, port, 53, ulen, ck, qid), body)
        else:
            src = client4(j)
            tlen = 20 + ulen
            ipid = i & 0xFFFF
            ipck = ~fold(0x4500 + tlen + ipid + 0x4000 + 0x4011 + word_sum(src) + s4) & 0xFFFF
            ck = ~fold(word_sum(src) + s4 + 17 + ulen + port + 53 + ulen + qid + bsum) & 0xFFFF \
                or 0xFFFF
            w.packet(t_us, ETH4_TO_SERVER,
                     ip4.pack(0x4500, tlen, ipid, 0x4000, 0x4011, ipck, src, SERVER4,
                              port, 53, ulen, ck, qid), body)
    return {"queries": args.count, "ipv6": n6}


def gen_hashflood(args, rng, w):
    P, M = 1099511628211, (1 << 64) - 1
    src, cport, qid = bytes([10, 9, 9, 9]), 40000, 0x1234
    h = 1469598103934665603
    for b in src + SERVER4 + bytes([cport & 0xFF, cport >> 8, 53, 0, qid & 0xFF, qid >> 8, 1, 0]) \
            + b"\x07example\x05":
        h = ((h ^ b) * P) & M
    alpha = b"abcdefghijklmnopqrstuvwxyz0123456789"
    names = []
    if args.control:
        names = [bytes(rng.choice(alpha) for _ in range(5)) for _ in range(args.count)]
    else:
        import itertools
        for combo in itertools.product(alpha, repeat=5):
            g = h
            for b in combo:
                g = ((g ^ b) * P) & M
            g = (g * P) & M                      # the root label's 0 byte
            if ((g ^ (g >> 29)) & 131071) < args.flood_window:
                names.append(bytes(combo))
                if len(names) == args.count:
                    break
    s4 = word_sum(SERVER4)
    t_us = args.start * 1_000_000
    for i, n in enumerate(names):
        t_us += args.interval_us
        body = (struct.pack("!HHHHH", 0x0100, 1, 0, 0, 0) + b"\x07example\x05" + n + b"\x00"
                + struct.pack("!HH", 1, 1))
        ulen, ipid = 10 + len(body), i & 0xFFFF
        ipck = ~fold(0x4500 + 20 + ulen + ipid + 0x4000 + 0x4011 + word_sum(src) + s4) & 0xFFFF
        ck = ~fold(word_sum(src) + s4 + 17 + ulen + cport + 53 + ulen + qid + word_sum(body)) \
            & 0xFFFF or 0xFFFF
        w.packet(t_us, ETH4_TO_SERVER,
                 struct.pack("!HHHHHH4s4sHHHHH", 0x4500, 20 + ulen, ipid, 0x4000, 0x4011, ipck,
                             src, SERVER4, cport, 53, ulen, ck, qid), body)
    return {"queries": len(names), "window": 0 if args.control else args.flood_window}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("kind", choices=["frags", "tcp", "queries", "hashflood"])
    ap.add_argument("-n", "--count", type=int, help="items (default: frags/queries 1000000, "
                    "tcp 100000)")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ipv6-share", type=float, default=0.2)
    ap.add_argument("--interval-us", type=int, help="packet time between items (default: "
                    "frags 10, tcp 200, queries 20)")
    ap.add_argument("--start", type=int, default=1_700_000_000, help="epoch seconds")
    ap.add_argument("--frag-payload", type=int, default=256,
                    help="frags: bytes after the IP/Fragment header (multiple of 8)")
    ap.add_argument("--frag-offset", type=int, default=0,
                    help="frags: send a middle fragment at this byte offset instead of a first one")
    ap.add_argument("--random-tuples", action="store_true",
                    help="queries: random client address/port instead of sequential ones")
    ap.add_argument("--flood-window", type=int, default=2048,
                    help="hashflood: slots the crafted keys fall into")
    ap.add_argument("--control", action="store_true",
                    help="hashflood: random names (the same traffic without collisions)")
    ap.add_argument("--tcp-claimed", type=int, default=0,
                    help="tcp: DNS message length in the 2-byte prefix (default: the query's)")
    ap.add_argument("--tcp-sent", type=int, help="tcp: bytes of the message actually sent")
    args = ap.parse_args()
    defaults = {"frags": (1_000_000, 10), "tcp": (100_000, 200), "queries": (1_000_000, 20),
                "hashflood": (10_000, 20)}
    if args.count is None:
        args.count = defaults[args.kind][0]
    if args.interval_us is None:
        args.interval_us = defaults[args.kind][1]
    if args.kind == "tcp" and args.interval_us <= 150:
        ap.error("tcp: --interval-us must be > 150 (the data segment follows its SYN by 150 us)")
    if args.count >= (1 << 24) or (args.kind != "frags" and args.count >= 64512 * 256):
        ap.error("--count too large for distinct addresses")

    t0 = time.monotonic()
    rng = random.Random(args.seed)
    w = Writer(args.output)
    info = {"frags": gen_frags, "tcp": gen_tcp, "queries": gen_queries,
            "hashflood": gen_hashflood}[args.kind](args, rng, w)
    w.close()
    extra = " ".join(f"{k}={v}" for k, v in info.items())
    print(f"gen_adversarial: {args.kind}: {w.packets} packets, {extra} -> {args.output} "
          f"in {time.monotonic() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
