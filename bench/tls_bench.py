#!/usr/bin/env python3
"""What the TLS probes cost a DNS server, and whether they miss anything: the server's DNS over
TLS (or HTTPS) queries/s under dnsperf without the probes, with them, and without them again,
in one run, and the messages sidetap captured against what dnsperf sent and got back.

    sudo bench/tls_bench.py [--sidetap build/sidetap] [--server unbound,kresd,bind,dnsdist]
                            [--mode dot|doh] [-l SECONDS] [-c CLIENTS] [-q OUTSTANDING]
                            [-Q QPS] [-B MIB] [--probe-cost] [--append] [--keep]

Setup (tests/root/tls_servers.py, one network namespace, no route out): knotd serves
example.test; each server answers DoT on 853 and DoH on 443 with its own dnstap off (only the
probes' cost is measured), forwarding example.test to knotd; the resolvers' caches are warmed
by a first pass over the names (not measured), so the runs measure the server's TLS path rather
than knotd. dnsperf (`-m dot` or `-m doh`) keeps -c connections with -q queries outstanding
each, for -l seconds per run, over 5000 names under *.w.example.test.

Runs per server, in this order, each on the same running server:
    base      no probes
    probes    sidetap capture --tls-pid PID -B MIB -w FILE (the file on tmpfs when /dev/shm is there)
    base2     no probes again (how much the machine's load drifted)
Reported per run: queries/s, sent, completed, lost; for `probes` the queries and responses in
sidetap's output against dnsperf's sent and completed (after dnsperf ends sidetap is given time
to write what the ring still holds), and the probes' loss counters (ring_full_dropped,
copy_failed, truncated) and the stream stage's (tls_unattributed_messages, tls_gaps,
doh_streams_undecodable).

--probe-cost first measures what one probed call costs the calling process on this machine
(bench/tls_probe_cost.c, built with cc: a loop of SSL_free(NULL), which the probes hook at its
first instruction, without and with `sidetap capture --tls-pid`): most of a probe's cost is the
kernel's breakpoint trap, which varies a lot between machines (virtual machines more), and a
server pays it for every SSL_read/SSL_write, including the reads that find nothing.

--append adds the table to bench/RESULTS.md. Needs root, dnsperf and the servers
(scripts/install-deps.sh). Do not trust figures from a busy machine: base and base2 show it.
"""
import argparse
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "root"))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

from netns import NetNS, exit_on_sigterm, require_root, require_tools  # noqa: E402
import tls_servers as T  # noqa: E402
from sidetap_testlib import decode_dnstap, read_frames  # noqa: E402


def dnsperf(ns, addr, mode, names, secs, clients, outstanding, qps):
    argv = ["dnsperf", "-m", mode, "-s", addr, "-p", "853" if mode == "dot" else "443", "-d", names,
            "-l", str(secs), "-c", str(clients), "-q", str(outstanding), "-t", "5"]
    if qps:
        argv += ["-Q", str(qps)]
    p = ns.run(argv, check=False, timeout=secs + 60)
    out = p.stdout + p.stderr

    def num(label, cast=int):
        m = re.search(label + r":\s+([\d.]+)", out)
        return cast(m.group(1)) if m else None
    r = {"sent": num("Queries sent"), "completed": num("Queries completed"), "lost": num("Queries lost"),
         "qps": num("Queries per second", float)}
    if r["sent"] is None or r["qps"] is None:
        raise RuntimeError(f"dnsperf failed ({p.returncode}): {' '.join(argv)}\n{out}")
    return r


def count_messages(path):
    _, frames, _ = read_frames(path)
    q = r = 0
    for f in frames:
        m = decode_dnstap(f)
        if m.get("socket_protocol") not in ("DOT", "DOH"):
            continue
        if m["type"].endswith("QUERY"):
            q += 1
        else:
            r += 1
    return q, r


def bench_server(name, args, w, names_file):
    rows = []
    with NetNS(f"tlsb-{name}") as ns:
        T.add_addresses(ns)
        cert, key = T.make_certificate(w)
        T.start_backend(ns, os.path.join(w, "knot"))
        server = T.START[name](ns, os.path.join(w, name), cert, key)
        addr = server.addrs[0]
        # Warm the cache (and the server's allocators): not measured.
        dnsperf(ns, addr, args.mode, names_file, 2, args.clients, args.outstanding, None)
        load = os.getloadavg()[0]
        rows.append(("base", load, dnsperf(ns, addr, args.mode, names_file, args.seconds, args.clients,
                                             args.outstanding, args.qps), None))
        outdir = "/dev/shm" if os.path.isdir("/dev/shm") else w
        out = tempfile.mktemp(prefix="sidetap-tls-bench-", suffix=".dnstap", dir=outdir)
        load = os.getloadavg()[0]
        tap = T.Sidetap(ns, args.sidetap, out, ["--tls-pid", str(server.pid), "-B", str(args.buffer), "--queue",
                                                "1000000", "--stats-interval", "1s"])
        try:
            perf = dnsperf(ns, addr, args.mode, names_file, args.seconds, args.clients, args.outstanding, args.qps)
            # Let the reader empty the ring: chunks stop growing.
            last, deadline = -1, time.monotonic() + 30
            while time.monotonic() < deadline:
                time.sleep(1.0)
                m = [re.search(r"\| probes calls=(\d+)", l) for l in tap.proc.lines()]
                now = max((int(x.group(1)) for x in m if x), default=0)
                if now == last:
                    break
                last = now
        finally:
            rc, counters = tap.stop()
        q, r = count_messages(out)
        os.unlink(out)
        extra = {"captured_queries": q, "captured_responses": r, "rc": rc}
        for k in ("probe_ring_full_dropped", "probe_copy_failed", "probe_truncated", "probe_calls",
                  "tls_unattributed_messages", "tls_gaps", "doh_streams_undecodable", "dropped"):
            extra[k] = counters.get(k, 0)
        rows.append(("probes", load, perf, extra))
        load = os.getloadavg()[0]
        rows.append(("base2", load, dnsperf(ns, addr, args.mode, names_file, args.seconds, args.clients,
                                              args.outstanding, args.qps), None))
        server.stop()
    return rows


def table(name, rows, args):
    base = rows[0][2]["qps"]
    lines = [f"#### {name} ({args.mode}, dnsperf -c {args.clients} -q {args.outstanding} -l {args.seconds}"
             + (f" -Q {args.qps}" if args.qps else "") + ")", "",
             "| run | load | queries/s | vs base | sent | completed | lost | captured (q / r) | losses |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run, load, perf, extra in rows:
        change = (perf["qps"] - base) / base * 100 if base else 0.0
        cap, losses = "", ""
        if extra:
            cap = f"{extra['captured_queries']} / {extra['captured_responses']}"
            losses = ", ".join(f"{k.replace('probe_', '')}={v}" for k, v in extra.items()
                               if k not in ("captured_queries", "captured_responses", "probe_calls", "rc") and v)
            losses = losses or "none"
        lines.append(f"| {run} | {load:.2f} | {perf['qps']:.0f} | {change:+.1f}% | {perf['sent']} | "
                     f"{perf['completed']} | {perf['lost']} | {cap} | {losses} |")
    return "\n".join(lines)


def probe_cost(args, w):
    """(ns per call without probes, ns per call with them)."""
    exe = os.path.join(w, "tls_probe_cost")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(HERE, "tls_probe_cost.c"), "-lssl", "-lcrypto"], check=True)
    from netns import Host
    with Host() as host:
        loop = host.spawn([exe], name="tls_probe_cost")
        pid = int(loop.wait_for_line(r"ready (\d+)", 10, stream="stdout").group(1))
        loop.wait_for_line(r"ns/call", 10, stream="stdout")
        before = len(loop.lines("stdout"))
        loop.wait_for_line(r"ns/call", 10, stream="stdout")
        time.sleep(2.2)
        base = [float(l.split()[0]) for l in loop.lines("stdout")[before:] if "ns/call" in l]
        tap = T.Sidetap(host, args.sidetap, os.path.join(w, "cost.dnstap"), ["--tls-pid", str(pid)], where=host)
        time.sleep(1.2)
        before = len(loop.lines("stdout"))
        time.sleep(3.2)
        probed = [float(l.split()[0]) for l in loop.lines("stdout")[before:] if "ns/call" in l]
        tap.stop()
        loop.stop()
    return min(base), min(probed)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sidetap", default=os.path.join(ROOT, "build", "sidetap"))
    ap.add_argument("--server", default="unbound,kresd,bind,dnsdist")
    ap.add_argument("--mode", choices=("dot", "doh"), default="dot")
    ap.add_argument("-l", "--seconds", type=int, default=10)
    ap.add_argument("-c", "--clients", type=int, default=8)
    ap.add_argument("-q", "--outstanding", type=int, default=20)
    ap.add_argument("-Q", "--qps", type=int, default=0)
    ap.add_argument("-B", "--buffer", type=int, default=64, help="ring buffer MiB")
    ap.add_argument("--probe-cost", action="store_true", help="measure one probed call's cost first")
    ap.add_argument("--append", action="store_true")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    exit_on_sigterm()
    require_root("bench/tls_bench.py")
    require_tools("dnsperf", *T.TOOLS)
    w = tempfile.mkdtemp(prefix="sidetap-tls-bench-")
    os.chmod(w, 0o755)
    names_file = os.path.join(w, "names")
    with open(names_file, "w") as f:
        for i in range(5000):
            f.write(f"n{i}.w.example.test A\n")
    sections = []
    try:
        if args.probe_cost:
            base, probed = probe_cost(args, w)
            sections.append(f"One probed call (SSL_free(NULL), probe at the function's first instruction): "
                            f"{base:.0f} ns without the probes, {probed:.0f} ns with them "
                            f"(+{(probed - base) / 1000:.1f} µs per call)")
            print(sections[-1] + "\n", flush=True)
        for name in args.server.split(","):
            d = os.path.join(w, name)
            os.makedirs(d)
            rows = bench_server(name, args, d, names_file)
            sections.append(table(name, rows, args))
            print(sections[-1] + "\n", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(w, ignore_errors=True)
    if args.append:
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        head = (f"\n## TLS probes (`bench/tls_bench.py`, {when}, {os.cpu_count()} CPUs, "
                f"kernel {platform.release()})\n\n")
        with open(os.path.join(HERE, "RESULTS.md"), "a") as f:
            f.write(head + "\n\n".join(sections) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
