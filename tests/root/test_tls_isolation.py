#!/usr/bin/env python3
"""Which processes the TLS probes follow, and TLS objects reused for new connections.

Two Unbound servers map the same libssl: `unbound` and a copy of the binary named
`unbound-other`. sidetap #1 runs `--tls-process unbound` from before either starts; sidetap #2
runs `--tls-pid` of the first one. Both must capture exactly the first server's DoT/DoH
messages (equal to its native dnstap) and nothing of the other one, though it uses the same
library. Unbound (one thread) frees each connection's SSL object and allocates the next at the
same address: every message must still carry its own connection's client port
(tls_object_reuses > 0 shows that reuse happened). Then the first server exits (sidetap #1
says so and removes its probes) and a new `unbound` starts, as a shell (`sh`, which sidetap
#1 looks at and does not follow) that execs unbound 1.5 s later under the same PID: sidetap #1
follows it from then on.
"""
import argparse
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netns import NetNS, run_root_test  # noqa: E402
import tls_servers as T  # noqa: E402

TEST = "root.test_tls_isolation"


def wait_line(proc, pattern, timeout=15.0):
    return proc.wait_for_line(pattern, timeout)


def queries(ns, server, tag, n_dot=12):
    """Sequential DoT connections (object reuse), DoH POST and GET, both families."""
    a4, a6 = server.addrs
    sent = 0
    for i in range(n_dot):
        T.kdig(ns, a4 if i % 3 else a6, f"{tag}-seq{i}.w.example.test", "A", "tls")
        sent += 1
    for mode in ("https", "https-get"):
        for addr in (a4, a6):
            T.kdig(ns, addr, f"{tag}-{mode}-{addr.count(':')}.w.example.test", "A", mode)
            sent += 1
    sent += T.dot_client(ns, a4, "pipelined", 4, 2, 7000)
    return sent


def body(sidetap, w):
    problems = []
    with NetNS("tls-iso") as ns:
        T.add_addresses(ns)
        cert, key = T.make_certificate(w)
        T.start_backend(ns, os.path.join(w, "knot"))
        os.makedirs(os.path.join(w, "bin"))
        other_binary = os.path.join(w, "bin", "unbound-other")
        shutil.copy(shutil.which("unbound"), other_binary)

        out1, out2 = os.path.join(w, "by-name.dnstap"), os.path.join(w, "by-pid.dnstap")
        tap1 = T.Sidetap(ns, sidetap, out1, ["--tls-process", "unbound"])
        first = T.start_unbound(ns, os.path.join(w, "unbound"), cert, key)
        other = T.start_unbound(ns, os.path.join(w, "unbound-other"), cert, key, name="unbound2",
                                binary=other_binary)
        wait_line(tap1.proc, rf"following process {first.pid} \(unbound\)")
        tap2 = T.Sidetap(ns, sidetap, out2, ["--tls-pid", str(first.pid)])
        sent = queries(ns, first, "first")
        queries(ns, other, "other")
        time.sleep(0.5)
        rc2, c2 = tap2.stop()

        # The first server goes; a new one of the same name comes and is followed.
        problems += first.stop()
        wait_line(tap1.proc, rf"process {first.pid} \(unbound\) exited")
        shutil.rmtree(os.path.join(w, "unbound-2"), ignore_errors=True)
        again = T.start_unbound(ns, os.path.join(w, "unbound-2"), cert, key, exec_after=1.5)
        wait_line(tap1.proc, rf"following process {again.pid} \(unbound\)")
        sent_again = queries(ns, again, "again", n_dot=4)
        time.sleep(0.5)
        rc1, c1 = tap1.stop()
        problems += again.stop()
        problems += other.stop()

        followed = [l for l in tap1.proc.lines() if "following process" in l]
        if any("unbound-other" in l or f"process {other.pid} " in l for l in followed):
            problems.append(f"sidetap --tls-process unbound followed unbound-other: {followed}")
        for rc, name in ((rc1, "--tls-process"), (rc2, "--tls-pid")):
            if rc != 0:
                problems.append(f"sidetap {name} exited {rc}")

        native_first, native_again = T.load(first.native_path), T.load(again.native_path)
        native_other = T.load(other.native_path)
        any_protocol = {None, "UDP", "TCP", "DOT", "DOH"}
        tls_ports = {853, 443}
        mine = set(first.addrs)
        expected1 = (T.split(native_first, mine, tls_ports, any_protocol)
                     + T.split(native_again, mine, tls_ports, any_protocol))
        got1 = T.load(out1)
        got2 = T.load(out2)
        problems += T.compare("--tls-process unbound", expected1, got1, False, "DoT/DoH messages")
        problems += T.compare("--tls-pid", T.split(native_first, mine, tls_ports, any_protocol), got2, False,
                              "DoT/DoH messages")
        other_msgs = T.split(native_other, set(other.addrs), tls_ports, any_protocol)
        if len(other_msgs) < 2 * (12 + 4 + 8):
            problems.append(f"unbound-other logged only {len(other_msgs)} DoT/DoH messages itself")
        for name, got in (("--tls-process", got1), ("--tls-pid", got2)):
            leaked = [m for m in got if m.get("response_address") in other.addrs]
            if leaked:
                problems.append(f"sidetap {name} captured {len(leaked)} messages of unbound-other")
        n1 = sum(1 for m in got1 if m["type"] == "CLIENT_QUERY")
        if n1 != sent + sent_again:
            problems.append(f"--tls-process: {sent + sent_again} queries sent to unbound, {n1} captured")
        if c1.get("tls_object_reuses", 0) == 0:
            problems.append("no TLS object was reused for a new connection: the reuse case was not exercised")
        if c1.get("probe_processes_exited") != 1 or c1.get("probe_processes_followed") != 2:
            problems.append(f"--tls-process: processes_followed={c1.get('probe_processes_followed')} "
                            f"processes_exited={c1.get('probe_processes_exited')}, expected 2 and 1")
        for name, c in (("--tls-process", c1), ("--tls-pid", c2)):
            for k in ("tls_unattributed_messages", "tls_gaps", "probe_ring_full_dropped"):
                if c.get(k, 0):
                    problems.append(f"sidetap {name}: {k}={c[k]}")
        print(f"--tls-process: {n1} queries, object reuses {c1.get('tls_object_reuses')}; "
              f"--tls-pid: {sum(1 for m in got2 if m['type'] == 'CLIENT_QUERY')} queries", file=sys.stderr)
    for p in problems:
        print(p, file=sys.stderr)
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sidetap", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    return run_root_test(TEST, args.sidetap, T.TOOLS, "sidetap-tls-iso-", args.keep,
                         lambda w: body(args.sidetap, w))


if __name__ == "__main__":
    sys.exit(main())
