#!/usr/bin/env python3
"""Root test: sidetap's replay of a capture equals Knot DNS's own dnstap of the same traffic.

In a private network namespace (loopback only, 127.0.0.1 and ::1) this test starts knotd with
mod-dnstap logging queries and responses to a file, captures port 53 with tcpdump, and sends
kdig queries over UDP, IPv4 and IPv6 (existing names with A/AAAA/MX/TXT/SOA, NODATA, NXDOMAIN,
an out-of-zone REFUSED, with and without EDNS). It then replays the capture with

    sidetap replay --role auth --identity I --version V -w side.dnstap cap.pcap

and compares, message for message, Knot's file and sidetap's file, both decoded by the
independent decoder in tests/lib: type, family, protocol, addresses, ports, identity, version,
the DNS wire bytes, and times.

Times. The capture carries kernel timestamps, Knot stamps in user space after receiving a query
and before sending a response; under CPU load Knot's stamp of a query lagged the packet by up to
29 ms on a busy 2-vCPU machine, so "within N ms" is either loose or flaky. What always holds,
because kdig sends one query at a time, is the order of events on the host's one clock:
    Knot AR[i-1] <= packet Q[i] <= Knot AQ[i] <= Knot AR[i] <= packet R[i] <= Knot AQ[i+1]
So each sidetap time must lie in the window between Knot's neighbouring stamps (plus
CAUSALITY_SLACK_NS for the capture's microsecond resolution); the first and last messages get
END_TOLERANCE_NS on their open side. A wrong unit, epoch, clock or pairing fails this; the
largest lag against Knot's own stamp is printed for information.

Ordering: both lists are sorted by (event time, query before response), where the event time is
query_time for *_QUERY and response_time for *_RESPONSE. sidetap writes in packet order; Knot
writes in the order its worker hands frames to libfstrm. By the chain above both sorts give the
same sequence, without depending on either writer's queueing.

Other modes:
    --capture-only PCAP [--knot-dnstap FILE]   only run the scenario and keep its capture
                                               (pcaps/make_sample.sh uses this)
    --keep                                     keep the work directory even on success
Not root -> fails loudly (exit 1); this test never passes without having run.
"""
import argparse
import difflib
import os
import shutil
import struct
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import netns  # noqa: E402
from sidetap_testlib import read_dnstap_file, read_frames, run, sidetap_arg  # noqa: E402

TEST = "root.test_knot_replay"
IDENTITY = "sidetap-knot-test"
VERSION = "knot-3.2-mod-dnstap"
CAUSALITY_SLACK_NS = 10_000          # pcap timestamps are truncated to microseconds
END_TOLERANCE_NS = 250_000_000       # open side of the first and last message's window
SERVERS = ["127.0.0.1", "::1"]

ZONE = """\
$ORIGIN example.test.
$TTL 3600
@       SOA   ns1 hostmaster 2024010101 3600 900 604800 300
@       NS    ns1
@       NS    ns2
@       A     192.0.2.1
@       AAAA  2001:db8::1
@       MX    10 mail
@       MX    20 mail2
@       TXT   "v=spf1 -all"
ns1     A     192.0.2.53
ns1     AAAA  2001:db8::53
ns2     A     192.0.2.54
www     A     192.0.2.80
www     A     192.0.2.81
www     AAAA  2001:db8::80
mail    A     192.0.2.25
mail    AAAA  2001:db8::25
mail2   A     192.0.2.26
txt     TXT   "hello" "world"
txt     TXT   "a second, longer text record for a bigger answer section"
"""

# (name, type, expected rcode, extra kdig options). Run once against each of SERVERS.
QUERIES = [
    ("www.example.test", "A", "NOERROR", []),
    ("www.example.test", "AAAA", "NOERROR", ["+edns"]),
    ("example.test", "MX", "NOERROR", []),
    ("txt.example.test", "TXT", "NOERROR", ["+edns", "+nsid"]),
    ("example.test", "SOA", "NOERROR", []),
    ("ns1.example.test", "AAAA", "NOERROR", ["+norecurse"]),
    ("www.example.test", "MX", "NOERROR", []),             # NODATA
    ("missing.example.test", "A", "NXDOMAIN", []),
    ("deep.nothing.example.test", "AAAA", "NXDOMAIN", ["+edns"]),
    ("outside.invalid", "A", "REFUSED", []),              # not our zone
]


def knot_config(d):
    return f"""\
server:
    rundir: "{d}"
    listen: [ 127.0.0.1@53, ::1@53 ]
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1

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
    identity: "{IDENTITY}"
    version: "{VERSION}"
    log-queries: on
    log-responses: on

template:
  - id: default
    storage: "{d}"
    global-module: mod-dnstap/capture

zone:
  - domain: example.test
    file: "{d}/example.test.zone"
"""


def capture(workdir):
    """Runs the Knot scenario. Returns (pcap path, Knot dnstap path, list of kdig results)."""
    knotdir = os.path.join(workdir, "knot")
    os.makedirs(os.path.join(knotdir, "db"))
    with open(os.path.join(knotdir, "example.test.zone"), "w") as f:
        f.write(ZONE)
    conf = os.path.join(knotdir, "knot.conf")
    with open(conf, "w") as f:
        f.write(knot_config(knotdir))
    pcap = os.path.join(workdir, "cap.pcap")
    knot_dnstap = os.path.join(knotdir, "knot.dnstap")
    results = []

    with netns.NetNS("knot") as ns:
        print(f"namespace {ns.name}", flush=True)
        knotd = ns.spawn(["knotd", "-c", conf], name="knotd")
        knotd.wait_for_line(r"\[example\.test\.\] loaded", 20)
        knotd.wait_for_line(r"server started", 20)
        # Capture starts after knotd is up, so the pcap holds exactly the kdig traffic.
        dump = netns.Tcpdump(ns, pcap, iface="lo", bpf="port 53")

        for server in SERVERS:
            for name, qtype, rcode, opts in QUERIES:
                p = ns.run(["kdig", f"@{server}", "-p", "53", "+notcp", "+retry=0", "+timeout=3",
                            *opts, name, qtype], check=False)
                status = _kdig_field(p.stdout, "status")
                qid = _kdig_field(p.stdout, "id")
                if p.returncode != 0 or status != rcode:
                    raise AssertionError(f"kdig @{server} {name} {qtype}: exit {p.returncode}, "
                                         f"status {status}, expected {rcode}\n{p.stdout}{p.stderr}"
                                         f"\n{knotd.text()}")
                results.append({"server": server, "name": name, "qtype": qtype,
                                "rcode": status, "id": int(qid)})

        dump.wait_for_packets(2 * len(results))
        captured = dump.stop()
        # SIGTERM makes knotd unload its modules; mod-dnstap then destroys its fstrm writer,
        # which flushes the file (and writes STOP).
        rc = knotd.stop(timeout=20)
        if rc != 0:
            raise AssertionError(f"knotd exited {rc}\n{knotd.text()}")

    if captured != 2 * len(results):
        raise AssertionError(f"tcpdump captured {captured} packets, expected {2 * len(results)}")
    n = netns.count_pcap_packets(pcap)
    if n != 2 * len(results):
        raise AssertionError(f"{pcap} holds {n} packets, expected {2 * len(results)}")
    print(f"{len(results)} queries answered; {n} packets captured", flush=True)
    return pcap, knot_dnstap, results


def _kdig_field(out, field):
    # ";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 4242"
    for line in out.splitlines():
        if "->>HEADER<<-" in line:
            for part in line.split(";"):
                k, _, v = part.strip().partition(": ")
                if k == field:
                    return v.strip()
    return None


# ---------------------------------------------------------------------------- comparison

def event_time(m):
    return m.get("query_time_ns") if m["type"].endswith("_QUERY") else m.get("response_time_ns")


def canonical(msgs):
    return sorted(msgs, key=lambda m: (event_time(m) or 0, 0 if m["type"].endswith("_QUERY") else 1))


def _dns_id(wire):
    return struct.unpack_from(">H", wire)[0] if wire and len(wire) >= 2 else None


def summary(m):
    if m is None:
        return "(none)"
    short = {"AUTH_QUERY": "AQ", "AUTH_RESPONSE": "AR"}.get(m.get("type"), m.get("type"))
    w = wire(m)
    t = event_time(m)
    ts = "-" if t is None else f"{t // 1_000_000_000}.{t % 1_000_000_000:09d}"
    return (f"{short} {m.get('socket_family')}/{m.get('socket_protocol')} "
            f"{m.get('query_address')}#{m.get('query_port')} -> "
            f"{m.get('response_address')}#{m.get('response_port')} t={ts} "
            f"{'-' if w is None else len(w)}b id={_dns_id(w)}")


def wire(m):
    return m.get("query_message") if m.get("type", "").endswith("_QUERY") \
        else m.get("response_message")


def transaction(m):
    """Client/server 5-tuple + DNS ID: unique per kdig query in this test."""
    return (m.get("query_address"), m.get("query_port"), m.get("response_address"),
            m.get("response_port"), _dns_id(wire(m)))


def identity_key(m):
    return (m.get("type"),) + transaction(m)


def time_windows(knot):
    """(type, transaction) -> (earliest, latest, Knot's stamp) allowed for sidetap's time of
    that event, from Knot's neighbouring stamps (see the module docstring)."""
    times = [event_time(m) for m in knot]
    windows = {}
    for i, m in enumerate(knot):
        t = times[i]
        if m["type"].endswith("_QUERY"):
            lo = times[i - 1] if i > 0 else t - END_TOLERANCE_NS
            hi = t
        else:
            lo = t
            hi = times[i + 1] if i + 1 < len(knot) else t + END_TOLERANCE_NS
        windows[(m["type"], transaction(m))] = (lo - CAUSALITY_SLACK_NS,
                                                hi + CAUSALITY_SLACK_NS, t)
    return windows


def compare_fields(k, s, windows):
    """Differences between two messages that should be equal; also returns the time lags."""
    diffs, dts = [], []
    for key in sorted(set(k) | set(s)):
        kv, sv = k.get(key), s.get(key)
        if key in ("query_time_ns", "response_time_ns"):
            if kv is None and sv is not None and key == "query_time_ns" \
                    and k.get("type", "").endswith("_RESPONSE"):
                # Knot leaves query_time out of AR; sidetap may copy it from the query,
                # so check it against the query's window.
                kv = "(absent; sidetap copied the query's time)"
            if kv is None or sv is None:
                if kv != sv:
                    diffs.append(f"{key}: Knot {kv}, sidetap {sv}")
                continue
            event = "_QUERY" if key == "query_time_ns" else "_RESPONSE"
            wkey = (k["type"].rsplit("_", 1)[0] + event, transaction(k))
            if wkey not in windows:
                diffs.append(f"{key}: sidetap {sv}, but Knot has no {wkey[0]} to compare with")
                continue
            lo, hi, knot_t = windows[wkey]
            dts.append(abs(sv - knot_t))
            if not lo <= sv <= hi:
                where = (f"{(lo - sv) / 1e6:.3f} ms too early" if sv < lo
                         else f"{(sv - hi) / 1e6:.3f} ms too late")
                diffs.append(f"{key}: sidetap {sv} is {where}: it must lie in [{lo}, {hi}], "
                             f"between Knot's neighbouring stamps (Knot's own: {knot_t})")
        elif kv != sv:
            if isinstance(kv, bytes) and isinstance(sv, bytes):
                at = next((j for j, (x, y) in enumerate(zip(kv, sv)) if x != y),
                          min(len(kv), len(sv)))
                diffs.append(f"{key}: first difference at byte {at}\n"
                             f"      Knot    {_hex(kv)}\n      sidetap {_hex(sv)}")
            elif isinstance(kv, bytes) or isinstance(sv, bytes):
                diffs.append(f"{key}: Knot {_hex(kv)}, sidetap {_hex(sv)}")
            else:
                diffs.append(f"{key}: Knot {kv!r}, sidetap {sv!r}")
    return diffs, dts


def compare(knot, side):
    """Compares two canonical (sorted) message lists. Returns (problems, max time deviation).

    The lists are aligned on (type, addresses, ports, DNS ID) with difflib, so one missing or
    extra message is reported as such instead of shifting every later comparison; messages
    that match a counterpart only out of sequence are reported as out of order.
    """
    problems = []
    dts = []
    if len(knot) != len(side):
        problems.append(f"message count: Knot {len(knot)}, sidetap {len(side)}")
    windows = time_windows(knot)
    sm = difflib.SequenceMatcher(a=[identity_key(m) for m in knot],
                                 b=[identity_key(m) for m in side], autojunk=False)
    only_knot, only_side = [], []
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2)):
                diffs, d = compare_fields(knot[i], side[j], windows)
                dts += d
                if diffs:
                    problems.append(f"Knot #{i} / sidetap #{j}:\n    Knot    {summary(knot[i])}\n"
                                    f"    sidetap {summary(side[j])}\n    " + "\n    ".join(diffs))
        else:
            only_knot += range(i1, i2)
            only_side += range(j1, j2)
    side_by_key = {identity_key(side[j]): j for j in only_side}
    for i in only_knot:
        j = side_by_key.pop(identity_key(knot[i]), None)
        if j is None:
            problems.append(f"only in Knot, #{i}: {summary(knot[i])}")
            continue
        diffs, _ = compare_fields(knot[i], side[j], windows)
        problems.append(f"out of order: Knot #{i} is sidetap #{j}: {summary(side[j])}"
                        + "".join("\n    " + x for x in diffs))
    for j in sorted(side_by_key.values()):
        problems.append(f"only in sidetap, #{j}: {summary(side[j])}")
    return problems, max(dts, default=0)


def _hex(b):
    if b is None:
        return "(absent)"
    return f"{len(b)}b {b.hex()}"


def check_against_queries(who, msgs, results):
    """n kdig queries -> n AQ + n AR, in query order, with kdig's DNS IDs and addresses."""
    problems = []
    msgs = canonical(msgs)
    aq = [m for m in msgs if m["type"] == "AUTH_QUERY"]
    ar = [m for m in msgs if m["type"] == "AUTH_RESPONSE"]
    if len(aq) != len(results) or len(ar) != len(results) or len(msgs) != 2 * len(results):
        problems.append(f"{who} logged {len(aq)} AQ + {len(ar)} AR ({len(msgs)} messages) for "
                        f"{len(results)} queries")
    for i, (r, q) in enumerate(zip(results, aq)):
        if _dns_id(q.get("query_message")) != r["id"] or q.get("response_address") != r["server"]:
            problems.append(f"query {i} ({r['server']} {r['name']} {r['qtype']} id {r['id']}) "
                            f"vs {who} {summary(q)}")
    return problems


def main():
    sidetap = sidetap_arg()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--capture-only", metavar="PCAP")
    ap.add_argument("--knot-dnstap", metavar="FILE")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    netns.exit_on_sigterm()
    netns.require_root(TEST)
    netns.require_tools("ip", "knotd", "kdig", "tcpdump", "sysctl")
    if not args.capture_only and not os.access(sidetap, os.X_OK):
        print(f"{TEST}: FAILED: sidetap binary not found at {sidetap}", file=sys.stderr)
        return 1

    workdir = tempfile.mkdtemp(prefix="sidetap-knot-")
    ok = False
    try:
        pcap, knot_path, results = capture(workdir)
        _, _, knot_stop = read_frames(knot_path)
        knot = read_dnstap_file(knot_path, require_stop=False)
        print(f"Knot wrote {len(knot)} messages to its dnstap file "
              f"({'with' if knot_stop else 'without'} a STOP frame)", flush=True)
        problems = check_against_queries("Knot", knot, results)
        if problems:
            raise AssertionError("Knot's own dnstap does not match the queries sent:\n"
                                 + "\n".join(problems))

        if args.capture_only:
            shutil.copyfile(pcap, args.capture_only)
            print(f"wrote {args.capture_only}")
            if args.knot_dnstap:
                shutil.copyfile(knot_path, args.knot_dnstap)
                print(f"wrote {args.knot_dnstap}")
            ok = True
            return 0

        side_path = os.path.join(workdir, "side.dnstap")
        run([sidetap, "replay", "--role", "auth", "--identity", IDENTITY, "--version", VERSION,
             "-w", side_path, pcap])
        side = read_dnstap_file(side_path)
        print(f"sidetap wrote {len(side)} messages", flush=True)

        problems = check_against_queries("sidetap", side, results)
        more, max_dt = compare(canonical(knot), canonical(side))
        problems += more
        if problems:
            print(f"{TEST}: FAILED: {len(problems)} differences between Knot's dnstap and "
                  f"sidetap's (listed as Knot, then sidetap):", file=sys.stderr)
            for p in problems[:40]:
                print(p, file=sys.stderr)
            if len(problems) > 40:
                print(f"... and {len(problems) - 40} more", file=sys.stderr)
            return 1
        print(f"{TEST}: OK: {len(side)} messages equal to Knot's, every time inside its "
              f"causal window; largest difference from Knot's stamp {max_dt / 1e6:.3f} ms")
        ok = True
        return 0
    finally:
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work directory kept: {workdir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
