#!/usr/bin/env python3
"""Root test: --extra placeholders of the eBPF cgroup mode and the TLS probes (issue 14).
`capture --ebpf cgroup --cgroup CG --tls-process '*' --extra '{cgroup}|{pid}|{comm}'` beside
Unbound (DoT, DoH and plain UDP) running in the cgroup, as test_tls_cgroup sets it up:
  - every message has {cgroup} = the --cgroup value as given;
  - DoT/DoH messages (from the TLS probes) carry Unbound's PID and its comm "unbound";
  - UDP messages (packets of the cgroup_skb programs: no process known) have them empty.
Options: --keep. Not root -> fails loudly.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netns import Cgroup, Host, NetNS, run_root_test  # noqa: E402
import tls_servers as T  # noqa: E402

TEST = "root.test_ebpf_extra"


def body(sidetap, w):
    problems = []
    with Cgroup("xtra") as cg, NetNS("xtra") as ns, Host() as host:
        T.add_addresses(ns)
        cert, key = T.make_certificate(w)
        T.start_backend(ns, os.path.join(w, "knot"))
        inside = T.start_unbound(ns, os.path.join(w, "inside"), cert, key, cgroup=cg.path)
        relative = os.path.relpath(cg.path, cg.root)
        out = os.path.join(w, "out.dnstap")
        tap = T.Sidetap(ns, sidetap, out, ["--ebpf", "cgroup", "--cgroup", relative, "--tls-process", "*",
                                           "--extra", "{cgroup}|{pid}|{comm}"], where=host)
        tap.proc.wait_for_line(rf"following process {inside.pid} \(unbound\)", 15)
        for i, mode in enumerate(("tls", "https", "udp")):
            T.kdig(ns, inside.addrs[i % 2], f"x{i}.w.example.test", "A", mode)
        time.sleep(0.5)
        rc, _ = tap.stop()
        problems += inside.stop()
        if rc != 0:
            problems.append(f"sidetap exited {rc}\n{tap.proc.text()[-3000:]}")
        got = [m for m in T.load(out) if m.get("response_address") in inside.addrs]
        kinds = {}
        for m in got:
            proto = m.get("socket_protocol")
            extra = m.get("extra", b"").decode()
            want = f"{relative}|{inside.pid}|unbound" if proto in ("DOT", "DOH") else f"{relative}||"
            kinds[proto] = kinds.get(proto, 0) + 1
            if extra != want:
                problems.append(f"{m.get('type')} {proto}: extra {extra!r}, want {want!r}")
        for proto in ("DOT", "DOH", "UDP"):
            if kinds.get(proto, 0) < 2:
                problems.append(f"{proto}: {kinds.get(proto, 0)} messages, want a query and a response")
    for p in problems:
        print(p, file=sys.stderr)
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sidetap", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    return run_root_test(TEST, args.sidetap, T.TOOLS, "sidetap-ebpf-extra-", args.keep,
                         lambda w: body(args.sidetap, w))


if __name__ == "__main__":
    sys.exit(main())
