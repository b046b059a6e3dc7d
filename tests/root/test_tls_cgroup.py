#!/usr/bin/env python3
"""`capture --ebpf cgroup --cgroup CG --tls-process '*'`: the TLS probes follow every process
of a cgroup (and the cgroup_skb programs capture its UDP/TCP), into one output; a server of
the same name outside the cgroup, on the same TLS library, is not probed. The cgroup is given
relative to the cgroup v2 mount. sidetap runs in the test's own namespaces (it must see the
cgroup hierarchy), the servers in a network namespace.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netns import Cgroup, Host, NetNS, run_root_test  # noqa: E402
import tls_servers as T  # noqa: E402

TEST = "root.test_tls_cgroup"


def body(sidetap, w):
    problems = []
    with Cgroup("tls") as cg, NetNS("tls-cg") as ns, Host() as host:
        T.add_addresses(ns)
        cert, key = T.make_certificate(w)
        T.start_backend(ns, os.path.join(w, "knot"))
        inside = T.start_unbound(ns, os.path.join(w, "inside"), cert, key, cgroup=cg.path)
        outside = T.start_unbound(ns, os.path.join(w, "outside"), cert, key, name="unbound2")
        relative = os.path.relpath(cg.path, cg.root)
        out = os.path.join(w, "out.dnstap")
        tap = T.Sidetap(ns, sidetap, out, ["--ebpf", "cgroup", "--cgroup", relative, "--tls-process", "*"],
                        where=host)
        tap.proc.wait_for_line(rf"following process {inside.pid} \(unbound\)", 15)
        sent = 0
        for i, mode in enumerate(("tls", "https", "https-get", "tls")):
            for server in (inside, outside):
                T.kdig(ns, server.addrs[i % 2], f"cg{i}-{server.name}.w.example.test", "A", mode)
            sent += 1
        for server in (inside, outside):
            T.kdig(ns, server.addrs[0], f"udp-{server.name}.w.example.test", "A", "udp")
        time.sleep(0.5)
        rc, counters = tap.stop()
        problems += inside.stop()
        problems += outside.stop()
        if rc != 0:
            problems.append(f"sidetap exited {rc}\n{tap.proc.text()[-3000:]}")
        if any(f"process {outside.pid} " in l for l in tap.proc.lines()):
            problems.append("the server outside the cgroup was followed")
        got = T.load(out)
        any_protocol = {None, "UDP", "TCP", "DOT", "DOH"}
        addrs = set(inside.addrs)
        problems += T.compare("cgroup", T.split(T.load(inside.native_path), addrs, {853, 443}, any_protocol),
                              T.split(got, addrs, {853, 443}, {"DOT", "DOH"}), False, "DoT/DoH messages")
        problems += T.compare("cgroup", T.split(T.load(inside.native_path), addrs, {53}, {"UDP", "TCP"}),
                              T.split(got, addrs, {53}, {"UDP", "TCP"}), True, "UDP messages")
        leaked = [m for m in got if m.get("response_address") in outside.addrs]
        if leaked:
            problems.append(f"{len(leaked)} messages of the server outside the cgroup were captured")
        n = sum(1 for m in got if m["type"] == "CLIENT_QUERY" and m.get("socket_protocol") in ("DOT", "DOH"))
        if n != sent:
            problems.append(f"{sent} DoT/DoH queries sent inside the cgroup, {n} captured")
    for p in problems:
        print(p, file=sys.stderr)
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sidetap", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    return run_root_test(TEST, args.sidetap, T.TOOLS, "sidetap-tls-cg-", args.keep, lambda w: body(args.sidetap, w))


if __name__ == "__main__":
    sys.exit(main())
