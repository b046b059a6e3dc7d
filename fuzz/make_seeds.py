#!/usr/bin/env python3
"""Write seed inputs for the fuzz targets from real captures.

Stdlib only and deterministic. Reads pcap/pcapng files (our own small
reader), decodes link/IP/UDP/TCP just enough, and writes inputs in each
target's format (see the header comment of fuzz/fuzz_<target>.cpp):

    python3 fuzz/make_seeds.py --out /tmp/seeds      # -> /tmp/seeds/<target>/
    python3 fuzz/make_seeds.py --out /tmp/seeds --pcaps DIR [DIR...]

Seeds are a starting point for libFuzzer; the committed corpus under
fuzz/corpus/<target>/ is the minimized result of a fuzzing run (-merge=1)
over these seeds, not the seeds themselves.
"""

import argparse
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PCAPS = [os.path.join(HERE, "..", "pcaps"), os.path.join(HERE, "..", "tests", "data", "public"),
                 os.path.join(HERE, "..", "tests", "data", "public-copyleft")]

# Index = the link-type selector byte of fuzz_decode / fuzz_pipeline.
LINK_TYPES = [0, 1, 101, 108, 113, 228, 229, 276, 14, 12, 147, 239]

MAX_SEED = 16 * 1024


# ------------------------------------------------------------------ readers

def read_pcap(data):
    magic = data[:4]
    for endian in "<>":
        (m,) = struct.unpack(endian + "I", magic)
        if m in (0xA1B2C3D4, 0xA1B23C4D, 0xA1B2CD34):
            break
    else:
        return
    nano = m == 0xA1B23C4D
    rec = 24 if m == 0xA1B2CD34 else 16
    link = struct.unpack(endian + "I", data[20:24])[0] & 0xFFFF
    pos = 24
    while pos + rec <= len(data):
        sec, frac, incl, _orig = struct.unpack(endian + "IIII", data[pos:pos + 16])
        pos += rec
        if incl > 262144 or pos + incl > len(data):
            return
        ts = sec * 10**9 + (frac if nano else frac * 1000)
        yield link, ts, data[pos:pos + incl]
        pos += incl


def read_pcapng(data):
    pos, endian, links, tsres = 0, "<", [], []
    while pos + 12 <= len(data):
        btype = struct.unpack(endian + "I", data[pos:pos + 4])[0]
        if btype == 0x0A0D0D0A:
            bom = data[pos + 8:pos + 12]
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            links, tsres = [], []
        blen = struct.unpack(endian + "I", data[pos + 4:pos + 8])[0]
        if blen < 12 or pos + blen > len(data):
            return
        body = data[pos + 8:pos + blen - 4]
        if btype == 1:
            links.append(struct.unpack(endian + "H", body[:2])[0])
            tsres.append(10**3)  # default microseconds -> ns factor (options ignored)
        elif btype == 6 and len(body) >= 20:
            iface, hi, lo, cap = struct.unpack(endian + "IIII", body[:16])
            if iface < len(links):
                yield links[iface], ((hi << 32) | lo) * tsres[iface], body[20:20 + cap]
        elif btype == 3 and links:
            orig = struct.unpack(endian + "I", body[:4])[0]
            yield links[0], 0, body[4:4 + orig]
        pos += blen


def read_capture(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        return list(read_pcapng(data))
    return list(read_pcap(data))


# ------------------------------------------------------------------ decoding

def link_to_ip(link, pkt):
    """Returns (ip bytes) or None."""
    if link in (101, 12, 14, 228, 229):
        return pkt
    if link == 0 or link == 108:
        return pkt[4:]
    if link == 113:
        proto, rest = struct.unpack("!H", pkt[14:16])[0] if len(pkt) >= 16 else 0, pkt[16:]
    elif link == 276:
        proto, rest = struct.unpack("!H", pkt[0:2])[0] if len(pkt) >= 20 else 0, pkt[20:]
    elif link == 1:
        if len(pkt) < 14:
            return None
        proto, rest = struct.unpack("!H", pkt[12:14])[0], pkt[14:]
    else:
        return None
    for _ in range(8):
        if proto in (0x8100, 0x88A8, 0x9100) and len(rest) >= 4:
            proto, rest = struct.unpack("!H", rest[2:4])[0], rest[4:]
        elif proto == 0x8864 and len(rest) >= 8:
            ppp = struct.unpack("!H", rest[6:8])[0]
            proto, rest = {0x21: 0x0800, 0x57: 0x86DD}.get(ppp, 0), rest[8:]
        else:
            break
    return rest if proto in (0x0800, 0x86DD) else None


def parse_ip(ip):
    """Returns dict(family, src, dst, proto, frag (id, offset, mf) or None, payload) or None."""
    if not ip:
        return None
    v = ip[0] >> 4
    if v == 4 and len(ip) >= 20:
        ihl = (ip[0] & 15) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        ident, fl = struct.unpack("!HH", ip[4:8])
        frag = None
        if fl & 0x2000 or fl & 0x1FFF:
            frag = (ident, (fl & 0x1FFF) * 8, bool(fl & 0x2000))
        return dict(family=4, src=ip[12:16], dst=ip[16:20], proto=ip[9], frag=frag, payload=ip[ihl:total])
    if v == 6 and len(ip) >= 40:
        plen = struct.unpack("!H", ip[4:6])[0]
        nh, rest, frag = ip[6], ip[40:40 + plen], None
        for _ in range(16):
            if nh in (0, 43, 60) and len(rest) >= 8:
                nh, rest = rest[0], rest[(rest[1] + 1) * 8:]
            elif nh == 44 and len(rest) >= 8:
                off = struct.unpack("!H", rest[2:4])[0]
                frag = (struct.unpack("!I", rest[4:8])[0], off & 0xFFF8, bool(off & 1))
                nh, rest = rest[0], rest[8:]
                break
            else:
                break
        return dict(family=6, src=ip[8:24], dst=ip[24:40], proto=nh, frag=frag, payload=rest)
    return None


def transport(ipd):
    p = ipd["payload"]
    if ipd["frag"] and (ipd["frag"][1] != 0 or ipd["frag"][2]):
        return None
    if ipd["proto"] == 17 and len(p) >= 8:
        sp, dp = struct.unpack("!HH", p[:4])
        return dict(tcp=False, sport=sp, dport=dp, payload=p[8:])
    if ipd["proto"] == 6 and len(p) >= 20:
        sp, dp, seq, ack = struct.unpack("!HHII", p[:12])
        off = (p[12] >> 4) * 4
        return dict(tcp=True, sport=sp, dport=dp, seq=seq, ack=ack, flags=p[13], payload=p[off:])
    return None


# ------------------------------------------------------------------ writers

class Seeds:
    def __init__(self, out):
        self.out, self.count = out, {}

    def add(self, target, data):
        if not data or len(data) > MAX_SEED:
            return
        d = os.path.join(self.out, target)
        os.makedirs(d, exist_ok=True)
        name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
        path = os.path.join(d, name)
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
            self.count[target] = self.count.get(target, 0) + 1


def fstrm_control(ctype, types=()):
    payload = struct.pack(">I", ctype)
    for t in types:
        payload += struct.pack(">II", 1, len(t)) + t
    return struct.pack(">II", 0, len(payload)) + payload


def fstrm_frames(path, limit=40):
    """Data frames of a Frame Streams file (our own reader, like tests/lib)."""
    with open(path, "rb") as f:
        data = f.read()
    pos, frames = 0, []
    while pos + 4 <= len(data) and len(frames) < limit:
        (n,) = struct.unpack_from(">I", data, pos)
        pos += 4
        if n == 0:
            if pos + 4 > len(data):
                break
            (clen,) = struct.unpack_from(">I", data, pos)
            pos += 4 + clen
            continue
        frames.append(data[pos:pos + n])
        pos += n
    return frames


def listener_seeds(seeds, frames):
    """fuzz_listener inputs: config byte + what a writer sends."""
    ct = b"protobuf:dnstap.Dnstap"
    ready, accept, start, stop = (fstrm_control(4, [ct]), fstrm_control(1, [ct]), fstrm_control(2, [ct]),
                                  fstrm_control(3))
    body = b"".join(struct.pack(">I", len(f)) + f for f in frames[:20])
    big = max(frames, key=len) if frames else b"\x0a" * 100
    for config in (0x07 | 0x60, 0x06 | 0x20, 0x03 | 0x08 | 0x40, 0x07 | 0x10):
        seeds.add("listener", bytes([config]) + ready + start + body + stop)         # bidirectional
        seeds.add("listener", bytes([config]) + start + body + stop)                 # unidirectional
        seeds.add("listener", bytes([config]) + ready + start + body)                # no STOP
    seeds.add("listener", bytes([0x07]) + ready + start + body[: len(body) // 2])     # cut mid-frame
    seeds.add("listener", bytes([0x07]) + fstrm_control(4, [b"protobuf:other.Thing"]) + start)
    seeds.add("listener", bytes([0x07]) + fstrm_control(4, [b"x:y", ct]) + start + body + stop)
    seeds.add("listener", bytes([0x07]) + fstrm_control(4) + start + stop)             # READY, no type
    seeds.add("listener", bytes([0x07]) + ready + fstrm_control(2, [b"x:y"]) + body)   # START, wrong type
    seeds.add("listener", bytes([0x07]) + ready + ready)                               # READY twice
    seeds.add("listener", bytes([0x07]) + accept + start)                              # writer sends ACCEPT
    seeds.add("listener", bytes([0x03]) + struct.pack(">I", len(big)) + big)           # data first
    seeds.add("listener", bytes([0x07]) + ready + start + body + fstrm_control(5) + body)  # FINISH mid-stream
    seeds.add("listener", bytes([0x0f]) + ready + start + struct.pack(">I", 1 << 20) + big)  # huge claim
    seeds.add("listener", bytes([0x00]) + ready + start + struct.pack(">I", 5000) + b"\x0a" * 5000 + stop)
    seeds.add("listener", bytes([0x07]) + b"\x00\x00\x00\x00\x7f\xff\xff\xff")     # absurd control length
    seeds.add("listener", bytes([0x07]) + b"GET / HTTP/1.0\r\n\r\n")


def pcapfile_seeds(seeds, files):
    """fuzz_pcapfile inputs: config byte (bit 0: pipe) + a capture file.
    Whole files only from our own pcaps/ (the committed corpus keeps what
    the fuzzer derives from them; third-party captures are not copied in)."""
    own = os.path.realpath(os.path.join(HERE, "..", "pcaps"))
    files = [f for f in files if os.path.realpath(os.path.dirname(f)) == own]
    for i, path in enumerate(files):
        with open(path, "rb") as f:
            data = f.read()
        seeds.add("pcapfile", bytes([i & 1]) + data[:MAX_SEED - 1])
    le = "<"
    shb = struct.pack(le + "IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack(le + "I", 28)
    idb_opts = struct.pack(le + "HHB3x", 9, 1, 9) + struct.pack(le + "HHq", 14, 8, -3600) + struct.pack(le + "HH", 0, 0)
    idb = struct.pack(le + "IIHHI", 1, 20 + len(idb_opts), 1, 0, 0) + idb_opts + struct.pack(le + "I", 20 + len(idb_opts))
    seeds.add("pcapfile", bytes([0]) + shb + idb + struct.pack(le + "II", 6, (256 << 20) - 4) + b"\0" * 64)
    seeds.add("pcapfile", bytes([1]) + shb + idb + struct.pack(le + "II", 0xBAD, 1 << 20) + b"\0" * 64)
    spb = struct.pack(le + "III", 3, 16 + 64, 64) + b"\x45" * 64 + struct.pack(le + "I", 16 + 64)
    seeds.add("pcapfile", bytes([0]) + shb + idb + spb)


def tcp_record(b0, seq_delta, ack_delta, payload, step):
    return bytes([b0, seq_delta & 0xFF, ack_delta & 0xFF, len(payload), step]) + payload


def tcp_session(messages, split=None, syn=True, reverse_order=False):
    """A DNS-over-TCP exchange in fuzz_tcp's format: (client?, message) pairs."""
    recs = []
    if syn:
        recs.append(tcp_record(0x08, 0, 0, b"", 1))            # SYN
        recs.append(tcp_record(0x08 | 0x40 | 0x04, 0, 0, b"", 1))  # SYN-ACK
        recs.append(tcp_record(0x40, 0, 0, b"", 1))            # ACK
    body = []
    for from_server, msg in messages:
        wire = struct.pack("!H", len(msg)) + msg
        d = 0x04 if from_server else 0
        chunks = [wire[i:i + (split or 255)] for i in range(0, len(wire), split or 255)]
        body.append([(d, c) for c in chunks])
    for group in body:
        if reverse_order and len(group) > 1:
            # The second chunk first (out of order, one chunk ahead), then
            # the first one fills the gap; the rest in order.
            (d, c0), (_, c1) = group[0], group[1]
            recs.append(tcp_record(d | 0x40, len(c0), 0, c1, 1))
            recs.append(tcp_record(d | 0x40, 0, 0, c0, 1))
            group = group[2:]
        for d, c in group:
            recs.append(tcp_record(d | 0x40, 0, 0, c, 1))
    recs.append(tcp_record(0x10 | 0x40, 0, 0, b"", 1))  # client FIN
    recs.append(tcp_record(0x04 | 0x10 | 0x40, 0, 0, b"", 1))  # server FIN
    return b"".join(recs)


# ------------------------------------------------------------------ streams (fuzz_streams)

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frame(ftype, flags, stream, payload):
    return struct.pack("!I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack("!I", stream) + payload


def hpack_literal(headers, index=False):
    """HPACK literal fields with literal names, no Huffman (RFC 7541 6.2): with
    incremental indexing (0x40) or without (0x00)."""
    out = b""
    for name, value in headers:
        out += bytes([0x40 if index else 0x00])
        for text in (name, value):
            b = text.encode()
            assert len(b) < 127
            out += bytes([len(b)]) + b
    return out


def b64url(data):
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def stream_record(conn, outgoing, data, flags=0, step=1):
    """fuzz_streams records: header + data, data split into <= 255-byte records."""
    out = b""
    for i in range(0, max(len(data), 1), 255):
        piece = data[i:i + 255]
        out += bytes([(conn & 3) | (4 if outgoing else 0) | flags, len(piece), step]) + piece
    return out


def doh_session(pairs, get=False, index=False, split=None):
    """Client and server bytes of one DoH connection carrying (query, response) pairs."""
    client = H2_PREFACE + h2_frame(4, 0, 0, b"")
    server = h2_frame(4, 0, 0, struct.pack("!HI", 3, 100))
    for i, (q, r) in enumerate(pairs):
        sid = 1 + 2 * i
        if get:
            h = [(":method", "GET"), (":scheme", "https"), (":authority", "d"), (":path", "/q?dns=" + b64url(q)[:90])]
            client += h2_frame(1, 0x5, sid, hpack_literal(h, index))
        else:
            h = [(":method", "POST"), (":scheme", "https"), (":authority", "d"), (":path", "/dns-query"),
                 ("content-type", "application/dns-message")]
            client += h2_frame(1, 0x4, sid, hpack_literal(h, index)) + h2_frame(0, 0x1, sid, q)
        server += h2_frame(1, 0x4, sid, hpack_literal([(":status", "200")], index)) + h2_frame(0, 0x1, sid, r)
    return client, server


def stream_seeds(seeds, queries, responses):
    pairs = list(zip(queries, responses))[:24]
    for i in range(0, len(pairs), 3):
        chunk = pairs[i:i + 3]
        # DoT: the process reads queries (length alone first) and writes answers.
        dot = b""
        for q, r in chunk:
            fq, fr = struct.pack("!H", len(q)) + q, struct.pack("!H", len(r)) + r
            dot += stream_record(0, False, fq[:2], flags=0x20) + stream_record(0, False, fq[2:], flags=0x20)
            dot += stream_record(0, True, fr, flags=0x20)
        seeds.add("streams", bytes([0x07]) + dot[:MAX_SEED])
        # DoH, POST and GET, the server's SETTINGS first, on another connection.
        for get in (False, True):
            client, server = doh_session(chunk, get=get, index=(i % 2 == 0))
            seed = bytes([0x7F]) + stream_record(1, True, server[:15]) + stream_record(1, False, client) + \
                stream_record(1, True, server[15:])
            seeds.add("streams", seed[:MAX_SEED])
    # Object reuse: a DoH connection, SSL_free, then DoT on the same object.
    if pairs:
        q, r = pairs[0]
        client, server = doh_session([(q, r)])
        fq = struct.pack("!H", len(q)) + q
        seed = bytes([0x05]) + stream_record(3, False, client) + stream_record(3, True, server) + \
            stream_record(3, False, b"", flags=0x08) + stream_record(3, False, fq, flags=0x80)
        seeds.add("streams", seed)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--pcaps", nargs="*", default=DEFAULT_PCAPS)
    args = ap.parse_args()
    seeds = Seeds(args.out)

    files = []
    for d in args.pcaps:
        if os.path.isdir(d):
            files += sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith((".pcap", ".pcapng")))

    dns_messages = []
    for path in files:
        try:
            pkts = read_capture(path)
        except (OSError, struct.error, IndexError):
            continue
        if not pkts:
            continue
        base = os.path.basename(path)

        # pipeline: the first packets of every capture, as one input.
        seed, prev_ts = bytes([0]), None
        for link, ts, pkt in pkts[:64]:
            sel = LINK_TYPES.index(link) if link in LINK_TYPES else 10  # 10: unknown (147)
            step = 0 if prev_ts is None else max(0, min(254, (ts - prev_ts) // 10_000_000))
            prev_ts = ts
            rec = bytes([sel, step]) + struct.pack("!H", len(pkt)) + pkt
            if len(seed) + len(rec) > MAX_SEED:
                break
            seed += rec
        seeds.add("pipeline", seed)

        frags, tcp_recs, tcp_next = [], [], {}
        for i, (link, ts, pkt) in enumerate(pkts):
            sel = LINK_TYPES.index(link) if link in LINK_TYPES else 10
            if i < 12:
                seeds.add("decode", bytes([sel]) + pkt[:4096])
            ip = link_to_ip(link, pkt)
            ipd = parse_ip(ip) if ip else None
            if not ipd:
                continue
            if ipd["frag"]:
                frags.append(ipd)
            t = transport(ipd)
            if not t or (53 not in (t["sport"], t["dport"]) and 5353 not in (t["sport"], t["dport"])):
                continue
            if not t["tcp"]:
                dns_messages.append((t["sport"] == 53, t["payload"]))
                continue
            # fuzz_tcp record: connection 0, direction by port, deltas from
            # a tracker like the target's.
            server = t["sport"] == 53
            key = server
            flags = t["flags"]
            b0 = (0x04 if server else 0) | (0x08 if flags & 2 else 0) | (0x10 if flags & 1 else 0) | \
                 (0x20 if flags & 4 else 0) | (0x40 if flags & 16 else 0)
            seq = t["seq"] + (1 if flags & 2 else 0)
            if key not in tcp_next:
                tcp_next[key] = seq
            delta = (seq - tcp_next[key] + 2**31) % 2**32 - 2**31
            delta = max(-128, min(127, delta))
            payload = t["payload"][:255]
            tcp_recs.append(tcp_record(b0, delta, 0, payload, 1))
            end = seq + len(payload) + (1 if flags & 1 else 0)
            if (end - tcp_next[key]) % 2**32 < 2**31:
                tcp_next[key] = end % 2**32
            if t["payload"]:
                p = t["payload"]
                while len(p) >= 2:
                    n = struct.unpack("!H", p[:2])[0]
                    if n < 12 or len(p) < 2 + n:
                        break
                    dns_messages.append((server, p[2:2 + n]))
                    p = p[2 + n:]
        if tcp_recs:
            seeds.add("tcp", bytes([0x13]) + b"".join(tcp_recs)[:MAX_SEED])
        if frags:
            # fuzz_defrag records, config: 200 KiB, 4 datagrams, 8 fragments.
            ids = {}
            recs = [bytes([0x02 | (2 << 3) | (2 << 5)])]
            for f in frags[:64]:
                ident = ids.setdefault((f["family"], f["frag"][0]), len(ids) & 0xFF)
                proto = {17: 0, 6: 1, 1: 2}.get(f["proto"], 3)
                b0 = (1 if f["family"] == 6 else 0) | (2 if f["frag"][2] else 0) | (proto << 6)
                length = min(len(f["payload"]), 0x3FFF)
                recs.append(bytes([b0, ident]) + struct.pack("!HH", (f["frag"][1] // 8) & 0x1FFF, length))
            seeds.add("defrag", b"".join(recs))

    # dns: messages as they are; a few with upper case and compression.
    for _server, msg in dns_messages:
        seeds.add("dns", msg[:4096])

    # encoder: every field shape (family, transport, direction, query time,
    # extra set or per message, varint lengths of ports and times) around
    # real DNS messages (fuzz_encoder.cpp's format).
    for i, (server, msg) in enumerate(dns_messages[:48]):
        flags = (i & 1) | (i & 2) | (4 if server else 0) | (8 if i % 3 else 0) | (16 if i % 4 == 1 else 0) | \
            (32 if i % 8 == 5 else 0)
        ports = [(40000 + i, 53), (1, 127), (128, 16384), (65535, 0)][i % 4]
        times = [(1_700_000_000_123_456_789, 1_700_000_000_000_000_001), (0, 2**64 - 1), (999_999_999, 1)][i % 3]
        addrs = bytes(range(i, i + 32))
        ident = (b"ns%d.example" % i)[: (i * 7) % 40]
        seed = bytes([flags, 1 + i % 14]) + struct.pack("!HHQQ", *ports, *times) + addrs
        seed += bytes([len(ident)]) + ident + bytes([5]) + b"0.1.0" + bytes([i % 9]) + b"extra-xyz"[: i % 9] + msg
        seeds.add("encoder", seed)

    # Synthetic defrag inputs: in order, reversed, overlapping, duplicate.
    def frag(family6, mf, ident, off8, length, pattern=0, step=0, proto=0):
        b0 = (1 if family6 else 0) | (2 if mf else 0) | (proto << 6)
        return bytes([b0, ident]) + struct.pack("!HH", (off8 & 0x1FFF) | (step << 13), length | (pattern << 14))
    for fam in (False, True):
        seeds.add("defrag", bytes([0x7A]) + frag(fam, 1, 1, 0, 1480) + frag(fam, 1, 1, 185, 1480) +
                  frag(fam, 0, 1, 370, 100))
        seeds.add("defrag", bytes([0x7A]) + frag(fam, 0, 2, 370, 100) + frag(fam, 1, 2, 185, 1480) +
                  frag(fam, 1, 2, 0, 1480))
        seeds.add("defrag", bytes([0x7E]) + frag(fam, 1, 3, 0, 24) + frag(fam, 1, 3, 2, 24, pattern=1) +
                  frag(fam, 1, 3, 0, 24) + frag(fam, 0, 3, 4, 9))
        seeds.add("defrag", bytes([0x00]) + frag(fam, 1, 4, 0, 8000) + frag(fam, 0, 4, 8000 // 8, 8000))
        seeds.add("defrag", bytes([0x7B]) + frag(fam, 1, 5, 0, 1480) + frag(fam, 0, 5, 8191, 100, step=7))

    # Synthetic TCP sessions from real DNS messages.
    queries = [m for s, m in dns_messages if not s and len(m) >= 12][:40]
    responses = [m for s, m in dns_messages if s and len(m) >= 12][:40]
    for i, (q, r) in enumerate(zip(queries, responses)):
        if i % 4 == 0:
            seeds.add("tcp", bytes([0x1D]) + tcp_session([(False, q), (True, r)]))
        elif i % 4 == 1:
            seeds.add("tcp", bytes([0x1D]) + tcp_session([(False, q), (True, r)], split=7))
        elif i % 4 == 2:
            seeds.add("tcp", bytes([0x13]) + tcp_session([(False, q), (False, q), (True, r), (True, r)], syn=False))
        else:
            seeds.add("tcp", bytes([0x1D]) + tcp_session([(False, q), (True, r)], split=1 + len(q) // 2,
                                                         reverse_order=True))

    stream_seeds(seeds, queries, responses)
    pcapfile_seeds(seeds, files)
    frames = []
    for d in args.pcaps:
        if os.path.isdir(d):
            for name in sorted(os.listdir(d)):
                if name.endswith((".dnstap", ".fstrm")):
                    frames += fstrm_frames(os.path.join(d, name))
    listener_seeds(seeds, frames)

    for target in ("decode", "defrag", "tcp", "dns", "pipeline", "listener", "pcapfile", "streams"):
        print(f"{target}: {seeds.count.get(target, 0)} seeds")


if __name__ == "__main__":
    main()
