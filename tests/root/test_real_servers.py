#!/usr/bin/env python3
"""Root test: sidetap's replay of captures equals the dnstap of real servers (Knot, Unbound)
for TCP, truncation, big EDNS answers, IPv4/IPv6 and IP fragments.

Everything runs in private network namespaces with no route out; every packet stays in them.

Scenario "knot" (authoritative, role auth) -- two namespaces joined by a veth pair, MTU 1500:
    client ns  st-cli 192.0.2.2/24 2001:db8:53::2/64  <-veth->  st-srv 192.0.2.1 2001:db8:53::1
    server ns: knotd on 192.0.2.1@53 and [2001:db8:53::1]@53, mod-dnstap to a file.
  Offloads are off on both ends (ethtool -K tso/gso/gro off) so tcpdump on the server's veth sees
  real IP fragments and MSS-sized TCP segments, as on a real wire; checksum offload stays on (as
  on real servers, sent packets are captured with partial checksums). The zone has big TXT
  RRsets: big4k (~3.9 KB answer) and big16k (~16 KB). Workloads, each over IPv4 and IPv6:
    udp-small        kdig UDP, small answers
    udp-frag-4k      kdig +bufsize=4096 big4k TXT         -> fragmented UDP response (3-4 frags;
                     Knot's udp-max-payload cannot exceed 4096, so no 16 KB over UDP)
    udp-trunc        kdig +bufsize=512 big4k TXT          -> TC=1, kdig retries over TCP
    udp-trunc-noedns kdig +noedns big4k TXT               -> TC=1, retried over TCP
    tcp-16k          kdig +tcp big16k TXT                 -> response in ~12 TCP segments
    tcp-keepopen     kdig +tcp +keepopen q1 q2 q3 q4      -> 4 exchanges on one connection
    tcp-pipeline     this script: 5 length-prefixed queries in ONE write (one segment)
    tcp-split        this script: 2 queries written as [len][10 bytes][rest + len2 + 5 bytes]
                     [rest], with pauses: prefix alone, a message across 3 segments, and a
                     segment that completes one message and starts the next
  Replay: sidetap replay --role auth -> compared with Knot's dnstap file.

Scenario "unbound" (forwarding resolver, role resolver) -- one namespace, loopback:
    unbound on 127.0.0.1@53 and [::1]@53 (outgoing-interface 127.0.0.1 and ::1),
    knotd on 127.0.0.2@53 and [fd00:53::53]@53 (fd00:53::53/128 added to lo);
    forward-zone fwd.test -> 127.0.0.2, forward-zone fwd6.test -> fd00:53::53,
    stub-zone stub.test -> 127.0.0.2 (iterator without validation, no root hints needed, no
    cache surprises: every query uses a new name, answered by wildcards).
  Unbound logs dnstap to a Unix socket read by fstrm_capture. Its upstream EDNS size is 1232,
  so the ~4 KB and ~16 KB answers come back truncated from Knot and Unbound retries over TCP;
  its max-udp-size is 1232 too, so kdig's UDP query for them is truncated and retried over TCP.
  Workloads: small UDP v4/v6 (forward and stub zones, upstream over v4 and v6), big4k/big16k
  via UDP+retry and TCP, kdig +keepopen, one-write pipelining and split writes to Unbound.
  Replay: sidetap replay --role resolver --server-addr 127.0.0.1 --server-addr ::1 -> compared
  with Unbound's dnstap: CLIENT_* one to one; Unbound's FORWARDER_* (forward zones) and
  RESOLVER_* (stub zone) against sidetap's RESOLVER_* (a capture cannot tell a forwarder from
  an iterator; the type class is compared as "upstream").
  Known, documented difference: the client side (query_address, query_port) of Unbound's
  upstream messages is not what went on the wire, so it is not compared. Unbound 1.17 does not
  know its outgoing socket's address: on a wildcard socket (outgoing-interface 0.0.0.0, used
  here for IPv4) it writes query_address 0.0.0.0, on a socket bound to outgoing-interface ::1
  it writes ::1 with port 53 or 0; and the port it writes is often not the exchange's port
  (seen: the port of another query's socket for concurrent queries, the previous UDP port for
  the TCP retry). Upstream messages are therefore matched on protocol, family, upstream
  address and port and DNS ID, and sidetap's own client side is checked for consistency
  instead: the resolver's address of that family (127.0.0.1 / ::1), an ephemeral port, the
  same port in the query and its response.
  Unbound's upstream UDP queries can be retransmitted under load; an upstream answer that
  arrives after Unbound closed that socket is on the wire (sidetap shows it) but not in
  Unbound's log: such an extra RESOLVER_RESPONSE is accepted only when the capture (which
  includes ICMP) shows the port-unreachable it caused.
  Unbound's dnstap thread sends its queue every second (or at 32 messages) and drops what is
  queued on SIGTERM, so the test waits 1.5 s after the last query before stopping it.

Checks, per scenario:
  * the server's own dnstap holds exactly the exchanges the clients made (per workload step:
    number, family and protocol of queries and responses; upstream traffic for Unbound);
  * every message the server logged is in sidetap's output with the same type (class), family,
    protocol, addresses, ports, identity/version and DNS bytes; sidetap has no extra messages;
    fields the server leaves out (query_time in responses, query_zone) are not compared;
  * times: as in test_knot_replay.py, not a fixed tolerance but causal windows on the host's one
    clock. A message the server RECEIVED (AQ, CQ, FR, RR) is on the wire before the server's
    user-space stamp; a message it SENT (AR, CR, FQ, RQ) is on the wire after it. The other
    side of the window is the server's previous (for received) / next (for sent) stamp in a
    sequential workload step (the client waits for each answer before it sends again), or
    the step's own start / end (wall clock taken by this script around the client process) in
    steps where queries overlap (pipelining). The largest distance to the server's stamp is
    printed;
  * the captures really contain what the workloads claim: IPv4 and IPv6 fragments, TCP;
  * sidetap's counters (stderr "name=N"): defrag_reassembled > 0 for the fragment capture and
    tcp_messages > 0 for both.
If sidetap lacks a feature (TCP, fragments, role resolver), this test FAILS with the list of
differences; it never skips. Not root -> fails loudly.

Options: --keep (keep the work directory on success), --only knot|unbound.
Internal: --tcp-client MODE ... is the TCP client run inside the namespaces (see tcp_client()).
"""
import argparse
import json
import os
import re
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

TEST = "root.test_real_servers"
SLACK_NS = 10_000            # pcap timestamps have microsecond resolution; Unbound stamps in µs

# tcpdump's default 2 MB ring holds only 8 frames at the default 256 KiB snapshot length, and
# 8 packets of a 16 KB loopback burst were dropped; a snapshot length just above the loopback
# MTU and a 32 MB ring leave room for hundreds.
TCPDUMP_BUF = ("-B", "32768", "-s", "65600")
STEP_GAP_S = 0.05
KNOT_ID, KNOT_VER = "sidetap-rs-knot", "knot-3.2-mod-dnstap"
UNB_ID, UNB_VER = "sidetap-rs-unbound", "unbound-1.17-dnstap"


# ----------------------------------------------------------------------------- DNS helpers

def build_query(qid, name, qtype, edns=4096, rd=True):
    qtypes = {"A": 1, "NS": 2, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28}
    hdr = struct.pack(">HHHHHH", qid, 0x0100 if rd else 0, 1, 0, 0, 1 if edns else 0)
    q = b"".join(bytes([len(l)]) + l.encode() for l in name.strip(".").split(".")) + b"\0"
    q += struct.pack(">HH", qtypes[qtype], 1)
    if edns:
        q += b"\0" + struct.pack(">HHIH", 41, edns, 0, 0)
    return hdr + q


def dns_id(w):
    return struct.unpack_from(">H", w)[0] if w and len(w) >= 2 else None


def tcp_client(argv):
    """--tcp-client MODE ADDR PORT NAME:TYPE...; prints one JSON line per answer.

    pipeline: all queries, each with its 2-byte length, in ONE send() (one TCP segment).
    split:    the queries' bytes cut as [len1] [10 bytes] [rest of q1 + len2 + 5 bytes] [rest...]
              with 80 ms pauses and TCP_NODELAY, so each piece is its own segment.
    """
    mode, addr, port = argv[0], argv[1], int(argv[2])
    qs = []
    for i, spec in enumerate(argv[3:]):
        name, qtype = spec.split(":")
        qs.append(build_query(0x5100 + i * 7 + (1 if mode == "split" else 0), name, qtype))
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(5)
    s.connect((addr, port))
    stream = b"".join(struct.pack(">H", len(q)) + q for q in qs)
    if mode == "pipeline":
        s.sendall(stream)
    elif mode == "split":
        cuts = [2, 12, 2 + len(qs[0]) + 2 + 5]
        pieces, prev = [], 0
        for c in cuts + [len(stream)]:
            if c > prev:
                pieces.append(stream[prev:c])
                prev = c
        for i, p in enumerate(pieces):
            if i:
                time.sleep(0.08)
            s.sendall(p)
    else:
        raise SystemExit(f"unknown mode {mode}")
    buf = b""
    answers = {}
    while len(answers) < len(qs):
        while len(buf) < 2 or len(buf) < 2 + struct.unpack_from(">H", buf)[0]:
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit(f"connection closed after {len(answers)} answers")
            buf += chunk
        n = struct.unpack_from(">H", buf)[0]
        msg, buf = buf[2:2 + n], buf[2 + n:]
        qid, flags, _, an = struct.unpack_from(">HHHH", msg)
        answers[qid] = {"id": qid, "rcode": flags & 0xF, "tc": bool(flags & 0x200), "an": an,
                        "size": n}
    s.close()
    for q in qs:
        print(json.dumps(answers[dns_id(q)]))
    return 0


if len(sys.argv) > 1 and sys.argv[1] == "--tcp-client":
    sys.exit(tcp_client(sys.argv[2:]))

import netns  # noqa: E402
from sidetap_testlib import read_dnstap_file, run, sidetap_arg  # noqa: E402


# ----------------------------------------------------------------------------- zones

def zone_text(origin, ns_addr4="192.0.2.1"):
    """A zone with small names, big TXT RRsets and wildcards (so that every Unbound query can
    use a new name). Each big TXT RR is 12 + 201 bytes on the wire with name compression."""
    lines = [f"$ORIGIN {origin}.", "$TTL 3600",
             "@ SOA ns1 hostmaster 2024010101 3600 900 604800 300", "@ NS ns1",
             f"ns1 A {ns_addr4}", "www A 192.0.2.80", "www AAAA 2001:db8::80",
             "txt TXT \"hello\" \"world\"", "*.small A 192.0.2.81", "*.small AAAA 2001:db8::81",
             "*.small TXT \"small wildcard\""]
    for owner, n in (("big4k", 18), ("big16k", 75)):
        for i in range(n):
            rdata = f"{owner} record {i:03d} " + "x" * 200
            lines.append(f"{owner} TXT \"{rdata[:200]}\"")
            lines.append(f"*.{owner} TXT \"{rdata[:200]}\"")
    return "\n".join(lines) + "\n"


def knot_config(d, listen, zones, identity, version):
    zl = "".join(f"  - domain: {z}\n    file: \"{d}/{z}.zone\"\n" for z in zones)
    return f"""\
server:
    rundir: "{d}"
    listen: [ {", ".join(listen)} ]
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
    udp-max-payload: 4096
database:
    storage: "{d}/db"
control:
    listen: "{d}/knot.sock"
log:
  - target: stderr
    any: info
mod-dnstap:
  - id: capture
    sink: "{d}/knot.dnstap"
    identity: "{identity}"
    version: "{version}"
    log-queries: on
    log-responses: on
template:
  - id: default
    storage: "{d}"
    global-module: mod-dnstap/capture
zone:
{zl}"""


def start_knot(ns, d, listen, zones, ns_addr4, cgroup=None):
    """knotd in `ns` (and in the cgroup v2 directory `cgroup`, when given)."""
    os.makedirs(os.path.join(d, "db"))
    for z in zones:
        with open(os.path.join(d, f"{z}.zone"), "w") as f:
            f.write(zone_text(z, ns_addr4))
    conf = os.path.join(d, "knot.conf")
    with open(conf, "w") as f:
        f.write(knot_config(d, listen, zones, KNOT_ID, KNOT_VER))
    knotd = ns.spawn(["knotd", "-c", conf], name="knotd", cgroup=cgroup)
    for z in zones:
        knotd.wait_for_line(r"\[" + re.escape(z) + r"\.\] loaded", 20)
    knotd.wait_for_line(r"server started", 20)
    return knotd


# ----------------------------------------------------------------------------- workload steps

class Step:
    """One client action (one process). expect: list of (family, proto) of the exchanges the
    client makes with the server under test; sequential: the client waits for each answer
    before it sends the next query."""

    def __init__(self, name, argv, expect, sequential=True, upstream_min=0, upstream_tcp=False,
                 check=None):
        self.name, self.argv, self.expect, self.sequential = name, argv, expect, sequential
        self.upstream_min, self.upstream_tcp, self.check = upstream_min, upstream_tcp, check
        self.start = self.end = None
        self.output = ""


def fam(addr):
    return "INET6" if ":" in addr else "INET"


def kdig(server, *args):
    return ["kdig", f"@{server}", "-p", "53", "+retry=0", "+timeout=3", *args]


def tcp_script(mode, server, *specs):
    return [sys.executable, os.path.abspath(__file__), "--tcp-client", mode, server, "53", *specs]


def kdig_check(status="NOERROR", min_answers=1, tcp_retry=False):
    def check(out):
        problems = []
        headers = re.findall(r"->>HEADER<<- opcode: \w+; status: (\w+); id: (\d+)", out)
        if not headers:
            return ["no answer"]
        for st, _ in headers:
            if st != status:
                problems.append(f"status {st}, expected {status}")
        ans = [int(x) for x in re.findall(r"ANSWER: (\d+)", out)]
        if not ans or min(ans) < min_answers:
            problems.append(f"answer counts {ans}, expected >= {min_answers}")
        if tcp_retry and "retrying over TCP" not in out:
            problems.append("kdig did not retry over TCP after a truncated answer")
        return problems
    return check


def script_check(n, min_answers=1):
    def check(out):
        rows = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        if len(rows) != n:
            return [f"{len(rows)} answers, expected {n}"]
        return [f"answer {r}" for r in rows if r["rcode"] != 0 or r["an"] < min_answers or r["tc"]]
    return check


def run_steps(ns, steps):
    problems = []
    for st in steps:
        st.start = time.time_ns()
        p = ns.run(st.argv, check=False, timeout=30)
        st.end = time.time_ns()
        st.output = p.stdout + p.stderr
        errs = [] if p.returncode == 0 else [f"exit code {p.returncode}"]
        if st.check:
            errs += st.check(p.stdout + p.stderr)
        if errs:
            problems.append(f"step {st.name}: client failed: {'; '.join(errs)}\n"
                            f"  {' '.join(st.argv)}\n{st.output}")
        time.sleep(STEP_GAP_S)    # keeps the steps' time ranges apart (see assign_steps)
    return problems


# ----------------------------------------------------------------------------- pcap checks

def pcap_stats(path):
    """Counts IPv4 fragments, IPv6 fragments, TCP segments with payload to/from port 53."""
    with open(path, "rb") as f:
        data = f.read()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    pos = 24
    st = {"packets": 0, "ipv4_frags": 0, "ipv6_frags": 0, "tcp_payload_segments": 0}
    while pos + 16 <= len(data):
        incl = struct.unpack_from(endian + "I", data, pos + 8)[0]
        pkt = data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        st["packets"] += 1
        if linktype == 1:
            off, et = 14, struct.unpack_from(">H", pkt, 12)[0]
        elif linktype == 113:
            off, et = 16, struct.unpack_from(">H", pkt, 14)[0]
        elif linktype in (101, 228, 229) and pkt:   # raw IP (eBPF capture's --write-pcap)
            off, et = 0, 0x0800 if pkt[0] >> 4 == 4 else 0x86DD
        else:
            continue
        if et == 0x0800:
            ihl = (pkt[off] & 0xF) * 4
            fo = struct.unpack_from(">H", pkt, off + 6)[0]
            if fo & 0x3FFF:
                st["ipv4_frags"] += 1
            elif pkt[off + 9] == 6:
                t = off + ihl
                doff = (pkt[t + 12] >> 4) * 4
                total = struct.unpack_from(">H", pkt, off + 2)[0]
                if total - ihl - doff > 0:
                    st["tcp_payload_segments"] += 1
        elif et == 0x86DD:
            nh = pkt[off + 6]
            if nh == 44:
                st["ipv6_frags"] += 1
            elif nh == 6:
                t = off + 40
                doff = (pkt[t + 12] >> 4) * 4
                plen = struct.unpack_from(">H", pkt, off + 4)[0]
                if plen - doff > 0:
                    st["tcp_payload_segments"] += 1
    return st


def port_unreachables(path):
    """{(client addr, client port, server addr, server port)} of UDP datagrams that the host
    answered with ICMP/ICMPv6 port unreachable (quoted in the ICMP message): responses that
    arrived after the client had closed its socket."""
    with open(path, "rb") as f:
        data = f.read()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    pos, out = 24, set()
    while pos + 16 <= len(data):
        incl = struct.unpack_from(endian + "I", data, pos + 8)[0]
        pkt = data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        try:
            et = struct.unpack_from(">H", pkt, 12)[0]
            if et == 0x0800 and pkt[23] == 1:
                ihl = (pkt[14] & 0xF) * 4
                icmp = 14 + ihl
                if pkt[icmp] != 3 or pkt[icmp + 1] != 3:
                    continue
                inner = icmp + 8
                iihl = (pkt[inner] & 0xF) * 4
                src = socket.inet_ntop(socket.AF_INET, pkt[inner + 12:inner + 16])
                dst = socket.inet_ntop(socket.AF_INET, pkt[inner + 16:inner + 20])
                sp, dp = struct.unpack_from(">HH", pkt, inner + iihl)
            elif et == 0x86DD and pkt[20] == 58:
                icmp = 14 + 40
                if pkt[icmp] != 1 or pkt[icmp + 1] != 4:
                    continue
                inner = icmp + 8
                src = socket.inet_ntop(socket.AF_INET6, pkt[inner + 8:inner + 24])
                dst = socket.inet_ntop(socket.AF_INET6, pkt[inner + 24:inner + 40])
                sp, dp = struct.unpack_from(">HH", pkt, inner + 40)
            else:
                continue
        except (IndexError, struct.error):
            continue
        out.add((dst, dp, src, sp))     # the quoted datagram went server -> client
    return out


def wait_capture_settled(dump, quiet=0.3, timeout=10.0):
    """tcpdump writes asynchronously: waits until the file stops growing."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = netns.count_pcap_packets(dump.path)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
        time.sleep(0.05)
    return last


# ----------------------------------------------------------------------------- comparison

RECEIVED = {"AUTH_QUERY", "CLIENT_QUERY", "FORWARDER_RESPONSE", "RESOLVER_RESPONSE"}
SHORT = {"AUTH_QUERY": "AQ", "AUTH_RESPONSE": "AR", "CLIENT_QUERY": "CQ", "CLIENT_RESPONSE": "CR",
         "RESOLVER_QUERY": "RQ", "RESOLVER_RESPONSE": "RR", "FORWARDER_QUERY": "FQ",
         "FORWARDER_RESPONSE": "FR"}


def is_query(m):
    return m.get("type", "").endswith("_QUERY")


def type_class(t):
    """FORWARDER_* and RESOLVER_* are one class: both are the server's upstream exchanges."""
    if t and (t.startswith("FORWARDER_") or t.startswith("RESOLVER_")):
        return "UPSTREAM_" + t.rsplit("_", 1)[1]
    return t


def upstream(m):
    return type_class(m.get("type", "")).startswith("UPSTREAM_")


def event_time(m):
    return m.get("query_time_ns") if is_query(m) else m.get("response_time_ns")


def wire(m):
    return m.get("query_message") if is_query(m) else m.get("response_message")


def txn(m):
    """The exchange: protocol, family, client and server address/port, DNS ID. Upstream
    messages leave out the client address and port (Unbound's are not reliable, see above)."""
    up = upstream(m)
    return (m.get("socket_protocol"), m.get("socket_family"),
            None if up else m.get("query_address"), None if up else m.get("query_port"),
            m.get("response_address"), m.get("response_port"), dns_id(wire(m)))


def summary(m):
    if m is None:
        return "(none)"
    t = event_time(m)
    ts = "-" if t is None else f"{t // 10**9}.{t % 10**9:09d}"
    w = wire(m)
    return (f"{SHORT.get(m.get('type'), m.get('type'))} {m.get('socket_family')}/"
            f"{m.get('socket_protocol')} {m.get('query_address')}#{m.get('query_port')} -> "
            f"{m.get('response_address')}#{m.get('response_port')} t={ts} "
            f"{'-' if w is None else len(w)}b id={dns_id(w)}")


def hexs(b):
    return "(absent)" if b is None else f"{len(b)}b {b[:48].hex()}{'...' if len(b) > 48 else ''}"


def assign_steps(server, steps, who):
    """Maps each server message (index) to the last step that started before its stamp.

    Not "the step whose range holds the stamp": Unbound stamps a UDP response after sendto(),
    and under load the client had received it and exited before that (seen: a CLIENT_RESPONSE
    stamped after its step's end). STEP_GAP_S between steps keeps such a lag in its step."""
    out, problems = {}, []
    for i, m in enumerate(server):
        t = event_time(m)
        st = None
        for s in steps:
            if t is not None and s.start <= t:
                st = s
        if st is not None and t > st.end + 10**9:
            st = None
        if st is None:
            problems.append(f"{who} logged a message outside every workload step: {summary(m)}")
        out[i] = st
    return out, problems


def windows(server, step_of, udp_stamped_after_send):
    """index -> (lo, hi, stamp): where the wire time of that message must lie.

    A message the server RECEIVED is on the wire before the server's stamp. For a message it
    SENT it depends on the server: Knot stamps before sending, so the packet follows the
    stamp. Unbound (udp_stamped_after_send) stamps a UDP message after sendto() -- its
    FORWARDER_QUERY stamp was 80-220 µs after the packet, and the upstream's answer arrived
    before that stamp -- but a TCP message when it queues it, before the write (seen: 76 ms
    before the packet when the client was still sending its next query in pieces).
    Bounds on the other side, in a sequential step (one query outstanding at a time):
      - a packet that precedes its stamp comes after the previous "anchor" stamp of the step:
        a stamp that is known to precede the packets that follow it causally (received
        messages, and sent messages stamped before they were sent);
      - a packet that follows its stamp comes before the next received message's stamp.
    In other steps, the step's own start and end (wall clock around the client process)."""
    def received(m):
        return m["type"] in RECEIVED

    def stamp_after_packet(m):
        return received(m) or (udp_stamped_after_send and m.get("socket_protocol") == "UDP")

    order = sorted(range(len(server)), key=lambda i: (event_time(server[i]) or 0))
    w = {}
    for k, i in enumerate(order):
        m, st = server[i], step_of.get(i)
        t = event_time(m)
        if st is None or t is None:
            continue
        if stamp_after_packet(m):
            lo = st.start
            if st.sequential:
                anchors = [j for j in order[:k] if step_of.get(j) is st and
                           (received(server[j]) or not stamp_after_packet(server[j]))]
                if anchors:
                    lo = event_time(server[anchors[-1]])
            w[i] = (lo - SLACK_NS, t + SLACK_NS, t)
        else:
            hi = st.end
            if st.sequential:
                nxt = [j for j in order[k + 1:] if step_of.get(j) is st and received(server[j])]
                if nxt:
                    hi = event_time(server[nxt[0]])
            w[i] = (t - SLACK_NS, hi + SLACK_NS, t)
    return w


def compare(who, server, side, steps, udp_stamped_after_send=False, unreachable=frozenset()):
    """Matches every server message with one of sidetap's; returns (problems, max lag ns).

    A UDP response in sidetap's output that the server never logged is accepted only when the
    capture shows the server's host answering it with ICMP port unreachable (`unreachable`):
    it came after the server had given up on the query and closed the socket (seen with
    Unbound under load: it retransmitted, and the upstream's late answers to the first tries
    hit closed ports). The server cannot log what it never received; sidetap must show it."""
    problems = []
    step_of, p = assign_steps(server, steps, who)
    problems += p
    win = windows(server, step_of, udp_stamped_after_send)
    pool = {}
    for j, s in enumerate(side):
        pool.setdefault((type_class(s.get("type")),) + txn(s), []).append(j)
    matched = {}       # server index -> sidetap index
    for i, m in enumerate(server):
        lst = pool.get((type_class(m.get("type")),) + txn(m))
        if lst:
            matched[i] = lst.pop(0)
        else:
            problems.append(f"only in {who}: {summary(m)}"
                            + (f"  [step {step_of[i].name}]" if step_of.get(i) else ""))
    late = 0
    for lst in pool.values():
        for j in lst:
            s = side[j]
            if not is_query(s) and s.get("socket_protocol") == "UDP" and (
                    s.get("query_address"), s.get("query_port"), s.get("response_address"),
                    s.get("response_port")) in unreachable:
                late += 1
                continue
            problems.append(f"only in sidetap: {summary(s)}")
    if late:
        print(f"note: {late} responses in sidetap's output reached {who}'s host after the "
              f"socket was closed (ICMP port unreachable in the capture); {who} could not log "
              f"them", flush=True)
    # window of each exchange's query, for sidetap's query_time in responses
    qwin = {txn(server[i]): win[i] for i in win if is_query(server[i])}
    lags = []
    for i, j in sorted(matched.items()):
        m, s = server[i], side[j]
        diffs = []
        for key in ("socket_family", "socket_protocol", "query_address", "response_address",
                    "query_port", "response_port", "identity", "version", "query_message",
                    "response_message", "query_zone"):
            mv, sv = m.get(key), s.get(key)
            if key in ("query_address", "query_port") and upstream(m):
                continue   # Unbound's are not reliable (documented above); see upstream_checks
            if key == "query_zone" and (mv is None or sv is None):
                continue   # Unbound sets it on upstream messages, Knot never: not compared
            if key == "response_message" and is_query(m) or key == "query_message" and not is_query(m):
                if mv is None or sv is None:
                    continue   # the other direction's message: compare only when both have it
            if mv != sv:
                if isinstance(mv, bytes) or isinstance(sv, bytes):
                    at = (next((k for k, (x, y) in enumerate(zip(mv, sv)) if x != y),
                               min(len(mv), len(sv))) if mv is not None and sv is not None else 0)
                    diffs.append(f"{key}: first difference at byte {at}\n      {who:8} {hexs(mv)}"
                                 f"\n      sidetap  {hexs(sv)}")
                else:
                    diffs.append(f"{key}: {who} {mv!r}, sidetap {sv!r}")
        expected_type = m["type"].replace("FORWARDER_", "RESOLVER_")
        if s.get("type") != expected_type:
            diffs.append(f"type: {who} {m['type']}, sidetap {s.get('type')} (expected "
                         f"{expected_type})")
        # times
        ev = event_time(s)
        if ev is None:
            diffs.append(f"sidetap has no {'query' if is_query(s) else 'response'} time")
        elif i in win:
            lo, hi, t = win[i]
            lags.append(abs(ev - t))
            if not lo <= ev <= hi:
                diffs.append(f"time {ev} outside [{lo}, {hi}] ({(lo - ev) / 1e6:.3f} ms early"
                             if ev < lo else f"time {ev} outside [{lo}, {hi}] "
                             f"({(ev - hi) / 1e6:.3f} ms late")
                diffs[-1] += (f"; {who}'s stamp {t}, "
                              f"{'received' if m['type'] in RECEIVED else 'sent'} by {who})")
        if not is_query(s) and s.get("query_time_ns") is not None:
            qw = qwin.get(txn(m))
            if qw and not qw[0] <= s["query_time_ns"] <= qw[1]:
                diffs.append(f"response's query_time {s['query_time_ns']} outside its query's "
                             f"window [{qw[0]}, {qw[1]}]")
        if diffs:
            problems.append(f"{who} {summary(m)}\n    sidetap {summary(s)}\n    "
                            + "\n    ".join(diffs))
    return problems, max(lags, default=0)


def upstream_checks(side, local_addrs):
    """What can be said of sidetap's upstream client address/port without Unbound's help:
    the address is the resolver's own address of that family, the port an ephemeral one, and
    the query and response of one exchange carry the same port."""
    problems = []
    ports = {}
    for m in side:
        if not upstream(m):
            continue
        if m.get("query_address") != local_addrs.get(m.get("socket_family")):
            problems.append(f"upstream message with query_address {m.get('query_address')}, "
                            f"expected {local_addrs.get(m.get('socket_family'))}: {summary(m)}")
        qp = m.get("query_port")
        if not qp or qp == 53:
            problems.append(f"upstream message with query_port {qp}: {summary(m)}")
        k = (m.get("socket_protocol"), m.get("socket_family"), m.get("response_address"),
             m.get("response_port"), dns_id(wire(m)))
        ports.setdefault(k, set()).add(qp)
    for k, v in ports.items():
        if len(v) != 1:
            problems.append(f"upstream exchange {k}: query and response have query ports {v}")
    return problems


def check_counts(who, server, steps, client_types, expect_upstream):
    """The server's own log vs the exchanges each step made."""
    problems = []
    step_of, _ = assign_steps(server, steps, who)
    for st in steps:
        mine = [server[i] for i in step_of if step_of[i] is st]
        for qr, t in (("query", client_types[0]), ("response", client_types[1])):
            got = sorted((m.get("socket_family"), m.get("socket_protocol"))
                         for m in mine if m["type"] == t)
            if got != sorted(st.expect):
                problems.append(f"step {st.name}: {who} logged {t} {got}, the client made "
                                f"{sorted(st.expect)}")
        if expect_upstream:
            uq = [m for m in mine if type_class(m["type"]) == "UPSTREAM_QUERY"]
            ur = [m for m in mine if type_class(m["type"]) == "UPSTREAM_RESPONSE"]
            if len(uq) < st.upstream_min or len(ur) < st.upstream_min:
                problems.append(f"step {st.name}: {who} logged {len(uq)} upstream queries and "
                                f"{len(ur)} responses, expected >= {st.upstream_min}")
            if st.upstream_tcp and not any(m.get("socket_protocol") == "TCP" for m in uq):
                problems.append(f"step {st.name}: no upstream TCP query (truncation retry)")
    return problems


def replay(sidetap, args, pcap, out):
    """Runs sidetap; returns (messages or None, counters dict, problems)."""
    p = run([sidetap, "replay", *args, "-w", out, pcap], check=False)
    counters = {}
    for line in p.stderr.splitlines():
        if line.startswith("sidetap:"):
            for k, v in re.findall(r"([A-Za-z_][\w.]*)=(\d+)", line):
                counters[k.replace(".", "_")] = counters.get(k.replace(".", "_"), 0) + int(v)
    cmd = " ".join([os.path.basename(sidetap), "replay", *args, "-w", out, pcap])
    if p.returncode != 0:
        return None, counters, [f"`{cmd}` exited {p.returncode}:\n{p.stderr.strip()}"]
    try:
        return read_dnstap_file(out), counters, []
    except Exception as e:   # noqa: BLE001
        return None, counters, [f"`{cmd}`: output unreadable: {e}\n{p.stderr.strip()}"]


def counter(counters, name):
    return sum(v for k, v in counters.items() if k == name or k.endswith("_" + name))


def report(title, problems, limit=60):
    if problems:
        print(f"--- {title}: {len(problems)} problem(s)", file=sys.stderr)
        for p in problems[:limit]:
            print(p, file=sys.stderr)
        if len(problems) > limit:
            print(f"... and {len(problems) - limit} more", file=sys.stderr)
    else:
        print(f"--- {title}: OK", flush=True)
    sys.stderr.flush()


# ----------------------------------------------------------------------------- scenario: Knot

SRV4, SRV6, CLI4, CLI6 = "192.0.2.1", "2001:db8:53::1", "192.0.2.2", "2001:db8:53::2"


def setup_veth(srv, cli):
    """veth pair st-srv (server ns) <-> st-cli (client ns), MTU 1500, offloads off."""
    srv.run(["ip", "link", "add", "st-srv", "type", "veth", "peer", "name", "st-cli",
             "netns", cli.name])
    for ns, dev, a4, a6 in ((srv, "st-srv", SRV4, SRV6), (cli, "st-cli", CLI4, CLI6)):
        ns.run(["sysctl", "-q", "-w", f"net.ipv6.conf.{dev}.disable_ipv6=0"], check=False)
        ns.run(["sysctl", "-q", "-w", f"net.ipv6.conf.{dev}.accept_dad=0"], check=False)
        ns.run(["ip", "link", "set", dev, "mtu", "1500"])
        ns.run(["ip", "addr", "add", f"{a4}/24", "dev", dev])
        ns.run(["ip", "-6", "addr", "add", f"{a6}/64", "dev", dev, "nodad"])
        ns.run(["ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off"])
        ns.run(["ip", "link", "set", dev, "up"])
    # Addresses are usable at once (nodad); wait until both ends report carrier.
    deadline = time.monotonic() + 10
    for ns, dev in ((srv, "st-srv"), (cli, "st-cli")):
        while " UP " not in ns.run(["ip", "-br", "link", "show", "dev", dev]).stdout + " ":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ns.name}: {dev} did not come up\n"
                                   + ns.run(["ip", "addr"]).stdout)
            time.sleep(0.05)


def knot_steps():
    steps = []
    for srv in (SRV4, SRV6):
        f = fam(srv)
        v = "v4" if f == "INET" else "v6"
        steps += [
            Step(f"udp-small-{v}", kdig(srv, "+notcp", "www.example.test", "A",
                                        "txt.example.test", "TXT"),
                 [(f, "UDP")] * 2, check=kdig_check()),
            Step(f"udp-frag-4k-{v}", kdig(srv, "+notcp", "+bufsize=4096", "+ignore",
                                          "big4k.example.test", "TXT"),
                 [(f, "UDP")], check=kdig_check(min_answers=18)),
            Step(f"udp-trunc-{v}", kdig(srv, "+bufsize=512", "big4k.example.test",
                                        "TXT"),
                 [(f, "UDP"), (f, "TCP")], check=kdig_check(min_answers=18, tcp_retry=True)),
            Step(f"udp-trunc-noedns-{v}", kdig(srv, "+noedns", "a.big4k.example.test",
                                               "TXT"),
                 [(f, "UDP"), (f, "TCP")], check=kdig_check(min_answers=18, tcp_retry=True)),
            Step(f"tcp-16k-{v}", kdig(srv, "+tcp", "big16k.example.test", "TXT"),
                 [(f, "TCP")], check=kdig_check(min_answers=75)),
            Step(f"tcp-keepopen-{v}", kdig(srv, "+tcp", "+keepopen", "www.example.test", "A",
                                           "big4k.example.test", "TXT", "www.example.test",
                                           "AAAA", "x.small.example.test", "TXT"),
                 [(f, "TCP")] * 4, check=kdig_check()),
            Step(f"tcp-pipeline-{v}", tcp_script("pipeline", srv, "www.example.test:A",
                                                 "big4k.example.test:TXT", "txt.example.test:TXT",
                                                 "p.small.example.test:AAAA",
                                                 "big16k.example.test:TXT"),
                 [(f, "TCP")] * 5, sequential=False, check=script_check(5)),
            Step(f"tcp-split-{v}", tcp_script("split", srv, "www.example.test:AAAA",
                                              "big4k.example.test:TXT"),
                 [(f, "TCP")] * 2, sequential=False, check=script_check(2)),
        ]
    return steps


def scenario_knot(sidetap, workdir):
    problems = []
    d = os.path.join(workdir, "knot")
    pcap = os.path.join(workdir, "knot-veth.pcap")
    steps = knot_steps()
    with netns.NetNS("rs-srv") as srv, netns.NetNS("rs-cli") as cli:
        print(f"namespaces {srv.name} (knotd) and {cli.name} (clients), veth MTU 1500",
              flush=True)
        setup_veth(srv, cli)
        knotd = start_knot(srv, d, [f"{SRV4}@53", f"{SRV6}@53"], ["example.test"], SRV4)
        dump = netns.Tcpdump(srv, pcap, iface="st-srv", bpf="ip or ip6", extra=TCPDUMP_BUF)
        p = run_steps(cli, steps)
        report("knot: clients", p)
        problems += p
        wait_capture_settled(dump)
        dump.stop()
        rc = knotd.stop(timeout=20)
        if rc != 0:
            problems.append(f"knotd exited {rc}\n{knotd.text()}")
    st = pcap_stats(pcap)
    print(f"knot capture {pcap}: {st}", flush=True)
    if st["ipv4_frags"] == 0 or st["ipv6_frags"] == 0:
        problems.append(f"the capture has no IPv4 or no IPv6 fragments: {st}")
    if st["tcp_payload_segments"] == 0:
        problems.append(f"the capture has no TCP payload: {st}")

    knot = read_dnstap_file(os.path.join(d, "knot.dnstap"), require_stop=False)
    print(f"Knot logged {len(knot)} messages for {sum(len(s.expect) for s in steps)} exchanges",
          flush=True)
    p = check_counts("Knot", knot, steps, ("AUTH_QUERY", "AUTH_RESPONSE"), False)
    report("knot: Knot's own dnstap vs the queries made", p)
    problems += p

    out = os.path.join(workdir, "knot-sidetap.dnstap")
    side, counters, p = replay(sidetap, ["--role", "auth", "--identity", KNOT_ID, "--version",
                                         KNOT_VER], pcap, out)
    print(f"knot: sidetap counters: {counters}", flush=True)
    if side is not None:
        print(f"knot: sidetap wrote {len(side)} messages", flush=True)
        q, lag = compare("Knot", knot, side, steps)
        p += q
        print(f"knot: largest distance between sidetap's time and Knot's stamp: "
              f"{lag / 1e6:.3f} ms", flush=True)
    for name in ("defrag_reassembled", "tcp_messages"):
        if counter(counters, name) <= 0:
            p.append(f"sidetap counter {name} is {counter(counters, name) if any(k.endswith(name) for k in counters) else 'missing'}"
                     f", expected > 0")
    report("knot: sidetap --role auth vs Knot's dnstap", p)
    problems += p
    return problems


# ----------------------------------------------------------------------------- scenario: Unbound

KNOT_LO4, KNOT_LO6 = "127.0.0.2", "fd00:53::53"


def unbound_config(d, sock):
    return f"""\
server:
    verbosity: 1
    num-threads: 1
    interface: 127.0.0.1@53
    interface: ::1@53
    outgoing-interface: 0.0.0.0
    outgoing-interface: ::1
    access-control: 127.0.0.0/8 allow
    access-control: ::1/128 allow
    do-ip4: yes
    do-ip6: yes
    do-udp: yes
    do-tcp: yes
    username: ""
    chroot: ""
    directory: "{d}"
    pidfile: "{d}/unbound.pid"
    logfile: ""
    use-syslog: no
    do-daemonize: no
    module-config: "iterator"
    do-not-query-localhost: no
    qname-minimisation: no
    prefetch: no
    minimal-responses: yes
    target-fetch-policy: "0 0 0 0 0"
    edns-buffer-size: 1232
    max-udp-size: 1232
    so-reuseport: no
    local-zone: "test." nodefault
remote-control:
    control-enable: no
forward-zone:
    name: "fwd.test"
    forward-addr: {KNOT_LO4}@53
forward-zone:
    name: "fwd6.test"
    forward-addr: {KNOT_LO6}@53
stub-zone:
    name: "stub.test"
    stub-addr: {KNOT_LO4}@53
dnstap:
    dnstap-enable: yes
    dnstap-bidirectional: yes
    dnstap-socket-path: "{sock}"
    dnstap-send-identity: yes
    dnstap-send-version: yes
    dnstap-identity: "{UNB_ID}"
    dnstap-version: "{UNB_VER}"
    dnstap-log-client-query-messages: yes
    dnstap-log-client-response-messages: yes
    dnstap-log-resolver-query-messages: yes
    dnstap-log-resolver-response-messages: yes
    dnstap-log-forwarder-query-messages: yes
    dnstap-log-forwarder-response-messages: yes
"""


def unbound_steps():
    steps = []
    for srv in ("127.0.0.1", "::1"):
        f = fam(srv)
        v = "v4" if f == "INET" else "v6"
        steps += [
            Step(f"udp-small-fwd-{v}", kdig(srv, "+notcp", f"a{v}.small.fwd.test", "A"),
                 [(f, "UDP")], upstream_min=1, check=kdig_check()),
            Step(f"udp-small-fwd6-{v}", kdig(srv, "+notcp", f"b{v}.small.fwd6.test", "AAAA"),
                 [(f, "UDP")], upstream_min=1, check=kdig_check()),
            Step(f"udp-small-stub-{v}", kdig(srv, "+notcp", f"c{v}.small.stub.test", "TXT"),
                 [(f, "UDP")], upstream_min=1, check=kdig_check()),
            # Unbound -> Knot: UDP, TC, TCP; client: UDP with bufsize 4096 > max-udp-size:
            # TC, kdig retries over TCP (answered from the cache).
            Step(f"udp-trunc-4k-{v}", kdig(srv, "+bufsize=4096", f"d{v}.big4k.fwd.test",
                                           "TXT"),
                 [(f, "UDP"), (f, "TCP")], upstream_min=1, upstream_tcp=True,
                 check=kdig_check(min_answers=18, tcp_retry=True)),
            Step(f"tcp-16k-{v}", kdig(srv, "+tcp", f"e{v}.big16k.fwd6.test", "TXT"),
                 [(f, "TCP")], upstream_min=1, upstream_tcp=True,
                 check=kdig_check(min_answers=75)),
            Step(f"tcp-keepopen-{v}", kdig(srv, "+tcp", "+keepopen", f"f{v}.small.fwd.test", "A",
                                           f"g{v}.big4k.stub.test", "TXT",
                                           f"h{v}.small.fwd6.test", "AAAA"),
                 [(f, "TCP")] * 3, upstream_min=3, check=kdig_check()),
            Step(f"tcp-pipeline-{v}", tcp_script("pipeline", srv, f"i{v}.small.fwd.test:A",
                                                 f"j{v}.small.fwd6.test:TXT",
                                                 f"k{v}.big4k.fwd.test:TXT",
                                                 f"l{v}.small.stub.test:AAAA"),
                 [(f, "TCP")] * 4, sequential=False, upstream_min=4, check=script_check(4)),
            Step(f"tcp-split-{v}", tcp_script("split", srv, f"m{v}.small.fwd.test:AAAA",
                                              f"n{v}.small.fwd6.test:A"),
                 [(f, "TCP")] * 2, sequential=False, upstream_min=2, check=script_check(2)),
        ]
    return steps


def scenario_unbound(sidetap, workdir):
    problems = []
    d = os.path.join(workdir, "unbound")
    os.makedirs(d)
    kd = os.path.join(workdir, "knot-upstream")
    sock = os.path.join(d, "dnstap.sock")
    unb_file = os.path.join(d, "unbound.dnstap")
    pcap = os.path.join(workdir, "unbound-lo.pcap")
    steps = unbound_steps()
    with netns.NetNS("rs-unb") as ns:
        print(f"namespace {ns.name} (unbound 127.0.0.1/::1, knotd {KNOT_LO4}/{KNOT_LO6})",
              flush=True)
        ns.run(["ip", "-6", "addr", "add", f"{KNOT_LO6}/128", "dev", "lo", "nodad"])
        knotd = start_knot(ns, kd, [f"{KNOT_LO4}@53", f"{KNOT_LO6}@53"],
                           ["fwd.test", "fwd6.test", "stub.test"], KNOT_LO4)
        cap = ns.spawn(["fstrm_capture", "-d", "-d", "-d", "-t", "protobuf:dnstap.Dnstap",
                        "-u", sock, "-w", unb_file], name="fstrm_capture")
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            if time.monotonic() > deadline or not cap.running():
                raise RuntimeError(f"fstrm_capture did not create {sock}\n{cap.text()}")
            time.sleep(0.02)
        conf = os.path.join(d, "unbound.conf")
        with open(conf, "w") as f:
            f.write(unbound_config(d, sock))
        ns.run(["unbound-checkconf", conf])
        unbound = ns.spawn(["unbound", "-d", "-c", conf], name="unbound")
        unbound.wait_for_line(r"start of service", 20)
        # The dnstap connection is made in the background; wait for the handshake so that
        # the first client query is not dropped by a writer that is not open yet.
        cap.wait_for_line(r"(?i)accept|start|connection|opened", 10)
        time.sleep(0.2)
        # ICMP too: a late upstream answer to a closed port shows as port unreachable.
        dump = netns.Tcpdump(ns, pcap, iface="lo", bpf="port 53 or icmp or icmp6",
                             extra=TCPDUMP_BUF)
        p = run_steps(ns, steps)
        report("unbound: clients", p)
        problems += p
        # Unbound's dnstap thread sends queued messages when 32 are waiting or when its 1 s
        # wake-up timer fires, and on SIGTERM it closes the socket without sending what is
        # still queued (seen: the last 12 messages lost, "Broken pipe" in fstrm_capture).
        # Nothing shows when the queue is empty, so wait out the timer.
        time.sleep(1.5)
        wait_capture_settled(dump)
        dump.stop()
        rc = unbound.stop(timeout=20)      # drains, sends STOP, waits for FINISH
        if rc != 0:
            problems.append(f"unbound exited {rc}\n{unbound.text()}")
        time.sleep(0.2)
        cap.stop()
        knotd.stop(timeout=20)
    st = pcap_stats(pcap)
    print(f"unbound capture {pcap}: {st}", flush=True)
    if st["tcp_payload_segments"] == 0:
        problems.append(f"the capture has no TCP payload: {st}")

    unb = read_dnstap_file(unb_file, require_stop=False)
    types = {}
    for m in unb:
        types[m["type"]] = types.get(m["type"], 0) + 1
    print(f"Unbound logged {len(unb)} messages {types}", flush=True)
    p = check_counts("Unbound", unb, steps, ("CLIENT_QUERY", "CLIENT_RESPONSE"), True)
    for t in ("FORWARDER_QUERY", "FORWARDER_RESPONSE", "RESOLVER_QUERY", "RESOLVER_RESPONSE"):
        if not types.get(t):
            p.append(f"Unbound logged no {t}")
    ups = [m for m in unb if upstream(m)]
    # Documented, not asserted (it is Unbound's behaviour, not sidetap's): the client side of
    # Unbound's upstream messages. Printed so that a change in a newer Unbound shows.
    for f in ("INET", "INET6"):
        got = sorted({f"{m.get('query_address')}#{m.get('query_port')}" for m in ups
                      if m.get("socket_family") == f})
        print(f"note: Unbound's {f} upstream query_address#port values: "
              f"{', '.join(got[:6])}{' ...' if len(got) > 6 else ''}", flush=True)
    report("unbound: Unbound's own dnstap vs the queries made", p)
    problems += p

    out = os.path.join(workdir, "unbound-sidetap.dnstap")
    side, counters, p = replay(sidetap, ["--role", "resolver", "--server-addr", "127.0.0.1",
                                         "--server-addr", "::1", "--identity", UNB_ID,
                                         "--version", UNB_VER], pcap, out)
    print(f"unbound: sidetap counters: {counters}", flush=True)
    if side is not None:
        stypes = {}
        for m in side:
            stypes[m["type"]] = stypes.get(m["type"], 0) + 1
        print(f"unbound: sidetap wrote {len(side)} messages {stypes}", flush=True)
        bad = [m for m in side if upstream(m) and m["type"].startswith("FORWARDER_")]
        if bad:
            p.append(f"sidetap wrote FORWARDER_* ({len(bad)}); role resolver should write "
                     f"RESOLVER_*")
        q, lag = compare("Unbound", unb, side, steps, udp_stamped_after_send=True,
                         unreachable=port_unreachables(pcap))
        p += q
        p += upstream_checks(side, {"INET": "127.0.0.1", "INET6": "::1"})
        print(f"unbound: largest distance between sidetap's time and Unbound's stamp: "
              f"{lag / 1e6:.3f} ms", flush=True)
    if counter(counters, "tcp_messages") <= 0:
        p.append("sidetap counter tcp_messages is missing or 0, expected > 0")
    report("unbound: sidetap --role resolver vs Unbound's dnstap", p)
    problems += p
    return problems


# ----------------------------------------------------------------------------- main

def main():
    sidetap = sidetap_arg()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep", action="store_true", help="keep the work directory on success")
    ap.add_argument("--only", choices=["knot", "unbound"])
    args = ap.parse_args()

    def body(workdir):
        problems = []
        if args.only in (None, "knot"):
            problems += scenario_knot(sidetap, workdir)
        if args.only in (None, "unbound"):
            problems += scenario_unbound(sidetap, workdir)
        return problems

    return netns.run_root_test(TEST, sidetap, ("ip", "knotd", "kdig", "tcpdump", "sysctl", "ethtool",
                                "unbound", "unbound-checkconf", "fstrm_capture"), "sidetap-rs-", args.keep, body)


if __name__ == "__main__":
    sys.exit(main())
