#!/usr/bin/env python3
"""Root test: on a live capture the timers run while the link is idle.

In a private network namespace (loopback only), `sidetap capture -i lo
--query-timeout 1s --stats-interval 200ms --metrics ...`:
  1. one UDP query to 127.0.0.1:53, where nothing answers, then silence: within
     about --query-timeout the periodic stats line reports unanswered=1 and the
     metrics page sidetap_unanswered_queries_total 1, while the packet count
     stays where it was (no packet moved the timers: before, the query waited
     for the next packet);
  2. one response from port 53 that no query asked for, then silence: it is
     held --reorder-window (500ms here) for its query, then emitted without
     waiting for another packet (frames= grows, sidetap_unsolicited_responses_total 1);
  3. SIGTERM: exit 0, both messages in the output file (the response unpaired).

Options: --keep (keep the work directory). Not root -> fails loudly.
"""
import argparse
import os
import re
import signal
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import netns  # noqa: E402
import sidetap_testlib as tl  # noqa: E402

TEST = "root.test_idle_timers"
METRICS_PORT = 9154
QUERY = bytes.fromhex("4242010000010000000000000469646c650474657374000001" "0001")
RESPONSE = bytes.fromhex("4343818000010000000000000469646c650474657374000001" "0001")

SEND = """
import socket, sys
data, sport, dport = bytes.fromhex(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", sport))
s.sendto(data, ("127.0.0.1", dport))
"""


def last_stats(proc):
    for line in reversed(proc.lines()):
        if line.startswith("sidetap: stats "):
            return {k: int(v) for k, v in re.findall(r"\b(\w+)=(\d+)", line.split("|")[0])}
    return None


def metrics(ns):
    p = ns.run(["curl", "-sf", "--max-time", "3", f"http://127.0.0.1:{METRICS_PORT}/metrics"], check=False)
    vals = {}
    for line in p.stdout.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            vals[k] = float(v)
    return vals


def wait_for(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    return None


def body(sidetap, workdir):
    problems = []

    def check(cond, what):
        print(("ok: " if cond else "FAIL: ") + what, flush=True)
        if not cond:
            problems.append(what)

    out = os.path.join(workdir, "idle.dnstap")
    with netns.NetNS("idle") as ns:
        proc = ns.spawn([sidetap, "capture", "-i", "lo", "-w", out, "--flush-interval", "100ms",
                         "--query-timeout", "1s", "--reorder-window", "500ms", "--stats-interval", "200ms",
                         "--metrics", f"127.0.0.1:{METRICS_PORT}"], name="sidetap")
        proc.wait_for_line(r"capturing on lo", 10)

        # 1. A query nobody answers.
        ns.run(["python3", "-c", SEND, QUERY.hex(), "40001", "53"])
        seen = wait_for(lambda: (lambda s: s if s and s["dns_queries"] == 1 else None)(last_stats(proc)), 5)
        check(seen is not None, "the query is captured (dns_queries=1 in the stats line)")
        t_query = time.monotonic()
        packets = seen["packets"] if seen else None
        st = wait_for(lambda: (lambda s: s if s and s["unanswered"] == 1 else None)(last_stats(proc)), 6)
        waited = time.monotonic() - t_query
        check(st is not None, "the idle link's unanswered query is reported (unanswered=1)")
        check(st is not None and waited < 3.0, f"within about --query-timeout 1s of the query ({waited:.1f} s)")
        check(st is not None and st["packets"] == packets,
              f"with no further packet (packets={st['packets'] if st else None}, was {packets})")
        # (the metrics page is refreshed once a second)
        m = wait_for(lambda: (lambda v: v if v.get("sidetap_unanswered_queries_total") == 1.0 else None)(metrics(ns)),
                     3) or metrics(ns)
        check(m.get("sidetap_unanswered_queries_total") == 1.0,
              f"metrics: sidetap_unanswered_queries_total {m.get('sidetap_unanswered_queries_total')}")

        # 2. A response nobody asked for.
        frames_before = last_stats(proc)["frames"]
        ns.run(["python3", "-c", SEND, RESPONSE.hex(), "53", "40002"])
        t_resp = time.monotonic()
        st = wait_for(lambda: (lambda s: s if s and s["frames"] == frames_before + 1 else None)(last_stats(proc)), 6)
        waited = time.monotonic() - t_resp
        check(st is not None, "the held response is emitted on the idle link (frames grew by 1)")
        check(st is not None and waited < 2.5, f"within about --reorder-window 500ms ({waited:.1f} s)")
        m = wait_for(lambda: (lambda v: v if v.get("sidetap_unsolicited_responses_total") == 1.0 else None)(
            metrics(ns)), 3) or metrics(ns)
        check(m.get("sidetap_unsolicited_responses_total") == 1.0,
              f"metrics: sidetap_unsolicited_responses_total {m.get('sidetap_unsolicited_responses_total')}")

        # 3. Stop.
        code = proc.stop(signal.SIGTERM, timeout=15)
        check(code == 0, f"SIGTERM exits 0 (got {code})")
        recs = tl.read_dnstap_file(out)
        check([r["type"] for r in recs] == ["CLIENT_QUERY", "CLIENT_RESPONSE"], f"output: {[r['type'] for r in recs]}")
        check(len(recs) == 2 and "query_time_ns" not in recs[1], "the response is unpaired")
        check(len(recs) == 2 and struct.unpack(">H", recs[1]["response_message"][:2])[0] == 0x4343,
              "the response is the one sent")
        if problems:
            print(proc.text(), file=sys.stderr)
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sidetap", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    sys.exit(netns.run_root_test(TEST, args.sidetap, ["curl", "python3"], "sidetap-idle-", args.keep,
                                 lambda w: body(args.sidetap, w)))


if __name__ == "__main__":
    main()
