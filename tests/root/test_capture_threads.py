#!/usr/bin/env python3
"""Root test: `sidetap capture --threads N` (shards) beside Knot writes the same dnstap as Knot
itself, and every shard gets traffic.

Setup as in test_live_capture's Knot scenario (namespaces joined by a veth pair, MTU 1500,
tso/gso/gro off, so IP fragments and MSS-sized segments are real), with 32 extra client
addresses per family on the client side, so that there are many address pairs to split.
Workload: test_real_servers.knot_steps() (UDP, fragmented 4 KB UDP answers over IPv4 and IPv6,
truncation and TCP retry, 16 KB over TCP, keepopen, one-write pipelining, split writes) plus a
"many clients" step: a UDP query and a TCP query from every extra address, each family.

Scenarios (--only NAME): pcap2 and pcap4 (libpcap -i st-srv --threads 2 / 4: an AF_PACKET
PACKET_FANOUT_CBPF group; 4 is more threads than this machine's cores), tc2 and socket4
(--ebpf tc -i st-srv --threads 2, --ebpf socket --threads 4: the BPF program picks its shard's
rings).

Checks per scenario (helpers of test_live_capture and test_real_servers, not copies): exit 0
with STOP; no drop counter above 0; every packet the kernel counted was processed; sidetap's
messages equal Knot's one for one (rs.compare: bytes, addresses, ports, times in causal windows;
so a response whose query went to another shard would show up without its query_time, and a
fragment or TCP segment in the wrong shard as a missing message); "N capture threads" at start,
a summary line per shard with packets > 0 for every shard, and per-shard packets that add up to
the total; the stats line shows per-shard packets; the metrics page has sidetap_shard_packets_total
for every shard (pcap2, socket4).

Options: --keep, --only SCENARIO. Not root -> fails loudly.
"""
import argparse
import json
import os
import re
import socket
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

EXTRA_CLIENTS = 32


def extra_clients(family):
    """The extra client addresses of the client namespace."""
    if family == "INET":
        return [f"192.0.2.{100 + i}" for i in range(EXTRA_CLIENTS)]
    return [f"2001:db8:53::{0x100 + i:x}" for i in range(EXTRA_CLIENTS)]


def many_clients(argv):
    """--many-clients SERVER: from every extra address of the server's family, one UDP query
    and one TCP query (sequential); prints one JSON line per answer (rs.script_check)."""
    server = argv[0]
    import test_real_servers as rs  # noqa: E402 (only for the query builder)
    fam = socket.AF_INET6 if ":" in server else socket.AF_INET
    rows = []
    for i, src in enumerate(extra_clients("INET6" if fam == socket.AF_INET6 else "INET")):
        for tcp in (False, True):
            q = rs.build_query(0x6000 + 2 * i + tcp, f"c{i}.small.example.test", "A")
            s = socket.socket(fam, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
            s.settimeout(5)
            s.bind((src, 0))
            if tcp:
                s.connect((server, 53))
                s.sendall(struct.pack(">H", len(q)) + q)
                buf = b""
                while len(buf) < 2 or len(buf) < 2 + struct.unpack_from(">H", buf)[0]:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise SystemExit(f"{src}: connection closed")
                    buf += chunk
                msg = buf[2:]
            else:
                s.sendto(q, (server, 53))
                msg, _ = s.recvfrom(65536)
            s.close()
            qid, flags, _, an = struct.unpack_from(">HHHH", msg)
            rows.append({"id": qid, "rcode": flags & 0xF, "tc": bool(flags & 0x200), "an": an})
    for r in rows:
        print(json.dumps(r))
    return 0


if len(sys.argv) > 1 and sys.argv[1] == "--many-clients":
    sys.exit(many_clients(sys.argv[2:]))

import netns  # noqa: E402
import test_live_capture as lc  # noqa: E402
import test_real_servers as rs  # noqa: E402
from sidetap_testlib import read_dnstap_file, sidetap_arg  # noqa: E402

TEST = "root.test_capture_threads"
METRICS_PORT = lc.METRICS_PORT
SCENARIOS = {
    # name: (threads, sidetap arguments before the common ones, -i interfaces, channel, ready)
    "pcap2": (2, [], ["st-srv"], "st-srv", "st-srv"),
    "pcap4": (4, [], ["st-srv"], "st-srv", "st-srv"),
    "tc2": (2, ["--ebpf", "tc"], ["st-srv"], "tc:st-srv", "st-srv"),
    "socket4": (4, ["--ebpf", "socket"], [], "socket:any", "any"),
}


def many_clients_step(server):
    f = rs.fam(server)
    v = "v4" if f == "INET" else "v6"
    return rs.Step(f"many-clients-{v}", [sys.executable, os.path.abspath(__file__), "--many-clients", server],
                   [(f, "UDP"), (f, "TCP")] * EXTRA_CLIENTS, check=rs.script_check(2 * EXTRA_CLIENTS))


def add_client_addresses(cli):
    for a in extra_clients("INET"):
        cli.run(["ip", "addr", "add", f"{a}/24", "dev", "st-cli"])
    for a in extra_clients("INET6"):
        cli.run(["ip", "-6", "addr", "add", f"{a}/64", "dev", "st-cli", "nodad"])


def shard_lines(st):
    """{shard: packets} from the summary's 'sidetap: shard I packets=N' lines."""
    out = {}
    for line in st.proc.lines():
        m = re.match(r"sidetap: shard (\d+) packets=(\d+) ", line)
        if m:
            out[int(m.group(1))] = int(m.group(2))
    return out


def scenario(sidetap, workdir, name):
    threads, frontend, ifaces, channel, ready = SCENARIOS[name]
    problems = []
    d = os.path.join(workdir, f"knot-{name}")
    out = os.path.join(workdir, f"{name}.dnstap")
    steps = rs.knot_steps() + [many_clients_step(rs.SRV4), many_clients_step(rs.SRV6)]
    want_metrics = name in ("pcap2", "socket4")
    metrics_text = None
    with netns.NetNS(f"th{name}-srv") as srv, netns.NetNS(f"th{name}-cli") as cli:
        rs.setup_veth(srv, cli)
        add_client_addresses(cli)
        knotd = rs.start_knot(srv, d, [f"{rs.SRV4}@53", f"{rs.SRV6}@53"], ["example.test"], rs.SRV4)
        args = [*frontend, "--threads", str(threads), "--role", "auth", "--identity", rs.KNOT_ID,
                "--version", rs.KNOT_VER, "--stats-interval", "1s"]
        if want_metrics:
            args += ["--metrics", f"127.0.0.1:{METRICS_PORT}"]
        st = lc.LiveSidetap(sidetap, srv, f"sidetap-{name}", ifaces, out, args, channels=[channel],
                            ready=[ready])
        st.proc.wait_for_line(r"^sidetap: %d capture threads" % threads, 5)
        if want_metrics:
            st.proc.wait_for_line(r"metrics on port %d" % METRICS_PORT, 5)
        p = rs.run_steps(cli, steps)
        rs.report(f"{name}: clients", p)
        problems += p
        rc = knotd.stop(timeout=20)
        if rc != 0:
            problems.append(f"knotd exited {rc}\n{knotd.text()}")
        knot = read_dnstap_file(os.path.join(d, "knot.dnstap"), require_stop=False)
        got = st.wait_frames(len(knot), via_metrics=want_metrics)
        if want_metrics:
            try:
                metrics_text, vals = st.metrics(METRICS_PORT)
                for i in range(threads):
                    key = f'sidetap_shard_packets_total{{shard="{i}"}}'
                    if vals.get(key, 0) <= 0:
                        problems.append(f"{name}: metrics: {key} = {vals.get(key)}, expected > 0")
            except RuntimeError as e:
                problems.append(f"{name}: metrics: {e}")
        print(f"{name}: sidetap encoded {got} frames before SIGTERM; Knot logged {len(knot)}", flush=True)
        st.stop()
    p = rs.check_counts("Knot", knot, steps, ("AUTH_QUERY", "AUTH_RESPONSE"), False)
    rs.report(f"{name}: Knot's own dnstap vs the queries made", p)
    problems += p

    side, counters, p = lc.check_sidetap_run("Knot", st, len(knot))
    if side is not None:
        q, lag = rs.compare("Knot", knot, side, steps)
        p += q
        if len(side) != len(knot):
            p.append(f"sidetap wrote {len(side)} messages, Knot logged {len(knot)}")
        unpaired = [m for m in side if m["type"] == "AUTH_RESPONSE" and m.get("query_time_ns") is None]
        if unpaired:
            p.append(f"{len(unpaired)} responses without their query's time (query in another shard?)")
        print(f"{name}: largest distance between sidetap's time and Knot's stamp: {lag / 1e6:.3f} ms",
              flush=True)
    for counter in ("defrag_reassembled", "tcp_messages", "paired"):
        if rs.counter(counters, counter) <= 0:
            p.append(f"sidetap counter {counter} is {rs.counter(counters, counter)}, expected > 0")
    shards = shard_lines(st)
    print(f"{name}: packets per shard {shards}", flush=True)
    if sorted(shards) != list(range(threads)):
        p.append(f"summary has shard lines {sorted(shards)}, expected 0..{threads - 1}")
    idle = [s for s, n in shards.items() if n == 0]
    if idle:
        p.append(f"shards {idle} received no traffic: {shards}")
    if sum(shards.values()) != rs.counter(counters, "packets"):
        p.append(f"per-shard packets {shards} do not add up to packets={rs.counter(counters, 'packets')}")
    stats = [l for l in st.proc.lines() if l.startswith("sidetap: stats ")]
    if not any(re.search(r" shard_packets=\d+(/\d+){%d} " % (threads - 1), l) for l in stats):
        p.append(f"no stats line with {threads} per-shard packet counts: {stats[-1:]}")
    rs.report(f"{name}: live sidetap --threads {threads} vs Knot's dnstap", p)
    problems += p
    p = lc.check_stats_and_metrics(st, metrics_text, min_lines=2, want_metrics=want_metrics,
                                   drop_counter="ring_full_dropped" if frontend else "kernel_dropped")
    rs.report(f"{name}: --stats-interval, --metrics", p)
    problems += p
    return problems


def main():
    sidetap = sidetap_arg()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep", action="store_true", help="keep the work directory on success")
    ap.add_argument("--only", choices=sorted(SCENARIOS))
    args = ap.parse_args()

    def body(workdir):
        problems = []
        for name in SCENARIOS:
            if args.only in (None, name):
                problems += scenario(sidetap, workdir, name)
        return problems

    return netns.run_root_test(TEST, sidetap, ("ip", "knotd", "kdig", "sysctl", "ethtool", "curl"),
                               "sidetap-th-", args.keep, body)


if __name__ == "__main__":
    sys.exit(main())
