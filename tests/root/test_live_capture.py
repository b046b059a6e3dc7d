#!/usr/bin/env python3
"""Root test: `sidetap capture` running LIVE beside real servers (Knot, Unbound) writes the
same dnstap as the servers themselves.

This is test_real_servers.py with the replay of a tcpdump capture replaced by `sidetap capture`
on the server's interfaces while the workload runs. Zones, server configurations, workload
steps, the TCP client and the comparison (message for message; times in causal windows) are
imported from test_real_servers.py, not copied; see its docstring for the details.

Scenario "knot" -- namespaces joined by a veth pair (MTU 1500, tso/gso/gro off):
    knotd 192.0.2.1 / 2001:db8:53::1 in the server namespace, mod-dnstap to a file;
    sidetap capture -i st-srv -i lo --role auth --write-pcap --stats-interval 1s
                    --metrics 127.0.0.1:9153   (in the server namespace)
  Workload: test_real_servers.knot_steps() (UDP, fragmented 4 KB UDP answers, truncated then
  TCP, 16 KB over TCP, keepopen, one-write pipelining, split writes; IPv4 and IPv6) and a
  dnsperf burst (DNSPERF_QUERIES UDP queries at a limited rate, from the client namespace).
Scenario "unbound" -- one namespace, loopback: unbound 127.0.0.1/::1 (dnstap -> fstrm_capture)
  forwarding/stubbing to knotd 127.0.0.2/fd00:53::53 (mod-dnstap to a file); two captures on lo:
    sidetap capture -i lo --role resolver --server-addr 127.0.0.1 --server-addr ::1
        -> compared with Unbound's dnstap (CLIENT_*, and upstream as RESOLVER_*);
    sidetap capture -i lo --role auth --server-addr 127.0.0.2 --server-addr fd00:53::53
        -> compared with the upstream Knot's dnstap.
  Workload: test_real_servers.unbound_steps(). A tcpdump of ICMP only, to recognise upstream
  answers that arrived after Unbound closed the socket (see test_real_servers.compare).

Sequence per scenario: servers up; sidetap started and awaited on its "capturing on" line;
workload; servers stopped (their dnstap is flushed); sidetap awaited until it has encoded at
least as many frames as the server logged (its metrics page, or its periodic stats line);
SIGTERM; exit code 0 and a file ending in STOP.
Checks: each server's messages equal sidetap's (rs.compare); the summary's kernel and interface
drop counters and the output's dropped counter are 0 (otherwise completeness, emitted vs
expected, is printed and the test fails), and on the veth every packet the kernel counted
(pcap_stats received - dropped) was processed before exit (not on lo: there libpcap's
received also counts the outgoing copies it discards); periodic stats lines; Prometheus text with sidetap_
counters from inside the namespace; the --write-pcap file is read by tcpdump and holds the
packets sidetap counted (and the IPv4/IPv6 fragments and TCP segments of the workload).

Options: --keep, --only knot|unbound. Not root -> fails loudly.
"""
import argparse
import os
import re
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import netns  # noqa: E402
import test_real_servers as rs  # noqa: E402
from sidetap_testlib import read_dnstap_file, sidetap_arg  # noqa: E402

TEST = "root.test_live_capture"
METRICS_PORT = 9153
DNSPERF_QUERIES = 3000
DNSPERF_QPS = 3000


# ----------------------------------------------------------------------------- sidetap capture

class LiveSidetap:
    """`sidetap capture` started in a namespace and awaited on its readiness line."""

    def __init__(self, sidetap, ns, name, ifaces, out, args, channels=None, ready=None,
                 buffer="64"):
        """ifaces: -i options; channels: the names of the summary's per-channel lines
        (default: the interfaces; an eBPF source has one, e.g. "tc:st-srv"); ready: what each
        "capturing on" line starts with (default: the interfaces)."""
        self.ns, self.name, self.out, self.ifaces = ns, name, out, list(ifaces)
        self.channels = list(channels) if channels is not None else list(ifaces)
        argv = [sidetap, "capture"]
        for i in ifaces:
            argv += ["-i", i]
        argv += ["-w", out, "-B", buffer, *args]
        self.argv = argv
        self.proc = ns.spawn(argv, name=name)
        for i in (ready if ready is not None else ifaces):
            self.proc.wait_for_line(r"^sidetap: capturing on " + re.escape(i) + r" ", 10)
        self.rc = None

    def metrics(self, port=METRICS_PORT):
        """{series: value} of the Prometheus text served inside the namespace."""
        p = self.ns.run(["curl", "-sf", "--max-time", "3", f"http://127.0.0.1:{port}/metrics"],
                        check=False)
        if p.returncode != 0:
            raise RuntimeError(f"curl metrics: exit {p.returncode} {p.stderr}")
        vals = {}
        for line in p.stdout.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            k, _, v = line.rpartition(" ")
            vals[k] = float(v)
        return p.stdout, vals

    def stats_frames(self):
        """frames= of the last periodic stats line (or None)."""
        for line in reversed(self.proc.lines()):
            m = re.match(r"sidetap: stats .*\bframes=(\d+)", line)
            if m:
                return int(m.group(1))
        return None

    def wait_frames(self, n, timeout=8.0, via_metrics=False):
        """Waits until sidetap has encoded at least n frames (it reads the kernel ring
        asynchronously); returns the last count seen."""
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline and self.proc.running():
            if via_metrics:
                got = int(self.metrics()[1].get("sidetap_frames_total", -1))
            else:
                got = self.stats_frames()
            if got is not None and got >= n:
                break
            time.sleep(0.2)
        return got

    def stop(self):
        self.rc = self.proc.stop(signal.SIGTERM, timeout=20)
        return self.rc

    def summary(self):
        """Counters from the exit summary: pipeline/output 'name=N' and per interface."""
        counters, ifaces, outputs = {}, {}, {}
        for line in self.proc.lines():
            m = re.match(r"sidetap: (?:interface|ebpf) (\S+) (packets=.*)", line)
            if m:
                ifaces[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
                continue
            m = re.match(r"sidetap: output (\S+) (.*)", line)
            if m:
                outputs[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)",
                                                                        m.group(2))}
                continue
            # Per-shard lines (--threads N) repeat what the totals already say.
            if line.startswith(("sidetap: stats ", "sidetap: pcap ", "sidetap: shard ")):
                continue
            if line.startswith("sidetap:"):
                for k, v in re.findall(r"([A-Za-z_][\w.]*)=(\d+)", line):
                    k = k.replace(".", "_")
                    counters[k] = counters.get(k, 0) + int(v)
        return counters, ifaces, outputs

    def cmdline(self):
        return "ip netns exec NS " + " ".join(os.path.basename(a) if a == self.argv[0] else a
                                              for a in self.argv)


# Per-channel summary counters that mean a packet was lost (libpcap, eBPF).
DROP_COUNTERS = ("kernel_dropped", "interface_dropped", "ring_full_dropped", "truncated",
                 "copy_failed", "bad_records")


def check_sidetap_run(who, st, expected_msgs):
    """Exit code, STOP, drop counters; returns (messages or None, counters, problems)."""
    problems = []
    if st.rc != 0:
        problems.append(f"{st.name}: exit code {st.rc}, expected 0 after SIGTERM\n"
                        f"  {st.cmdline()}\n{st.proc.text()[-3000:]}")
    counters, ifaces, outputs = st.summary()
    print(f"{st.name}: {' '.join(l for l in st.proc.lines() if not l.startswith('sidetap: stats'))}"
          .replace("sidetap: ", "\n    "), flush=True)
    side = None
    try:
        side = read_dnstap_file(st.out, require_stop=True)
    except Exception as e:  # noqa: BLE001
        problems.append(f"{st.name}: output {st.out} unreadable or without STOP: {e}")
    drops = []
    for name in st.channels:
        s = ifaces.get(name)
        if s is None:
            problems.append(f"{st.name}: no summary line for interface {name}")
            continue
        for k in DROP_COUNTERS:
            if s.get(k, 0):
                drops.append(f"interface {name} {k}={s[k]}")
        if "kernel_passed" in s:   # eBPF: what the kernel selected was all delivered
            left = s["kernel_passed"] - s.get("ring_full_dropped", 0) - s.get("copy_failed", 0)
            if left != s.get("packets"):
                problems.append(f"{st.name}: {name}: kernel_passed {s['kernel_passed']} - "
                                f"ring_full_dropped - copy_failed = {left} != packets processed "
                                f"{s.get('packets')} (records left in the ring at exit?)")
        elif name != "lo" and s.get("received", 0) - s.get("kernel_dropped", 0) != s.get("packets"):
            problems.append(f"{st.name}: interface {name}: received {s.get('received')} - "
                            f"kernel_dropped {s.get('kernel_dropped')} != packets processed "
                            f"{s.get('packets')} (packets left in the ring at exit?)")
    if not outputs:
        problems.append(f"{st.name}: no output summary line")
    for name, s in outputs.items():
        for k in ("dropped", "too_large", "errors"):
            if s.get(k, 0):
                drops.append(f"output {name} {k}={s[k]}")
    emitted = len(side) if side is not None else outputs.get(st.out, {}).get("frames_written", 0)
    print(f"{st.name}: completeness: {emitted} messages emitted, {who} logged {expected_msgs}",
          flush=True)
    if drops:
        problems.append(f"{st.name}: DROPS: {', '.join(drops)}; completeness {emitted} emitted "
                        f"vs {expected_msgs} logged by {who}")
    return side, counters, problems


def check_stats_and_metrics(st, metrics_text, min_lines, want_metrics=True,
                            drop_counter="kernel_dropped"):
    problems = []
    lines = [l for l in st.proc.lines() if l.startswith("sidetap: stats ")]
    if len(lines) < min_lines:
        problems.append(f"{st.name}: {len(lines)} periodic stats lines with --stats-interval 1s, "
                        f"expected >= {min_lines}")
    elif not all(re.search(r"packets=\d+ .*frames=\d+ .*" + drop_counter +
                           r"=\d+ .*output .*dropped=\d+", l) for l in lines):
        problems.append(f"{st.name}: unexpected stats line format: {lines[0]}")
    if not want_metrics:
        return problems
    if metrics_text is None:
        problems.append(f"{st.name}: no metrics page")
        return problems
    for series in ("sidetap_packets_total", "sidetap_frames_total", "sidetap_dns_queries_total",
                   f"sidetap_capture_{drop_counter}_total", "sidetap_output_frames_dropped_total"):
        if not re.search(r"^" + series + r"(\{|\s)", metrics_text, re.M):
            problems.append(f"{st.name}: metrics page lacks {series}")
    if "# TYPE sidetap_" not in metrics_text:
        problems.append(f"{st.name}: metrics page has no # TYPE lines")
    return problems


def check_pcap(st, pcap, need_frags):
    """--write-pcap: readable by tcpdump, holds the packets sidetap counted."""
    problems = []
    counted = None
    for line in st.proc.lines():
        m = re.match(r"sidetap: pcap \S+ packets=(\d+)", line)
        if m:
            counted = int(m.group(1))
    p = rs.run(["tcpdump", "-n", "-r", pcap], check=False)
    n = len([l for l in p.stdout.splitlines() if l.strip()])
    print(f"{st.name}: --write-pcap {pcap}: tcpdump read {n} packets, sidetap wrote {counted}; "
          f"{rs.pcap_stats(pcap)}", flush=True)
    if p.returncode != 0:
        problems.append(f"tcpdump -r {pcap} exited {p.returncode}: {p.stderr.strip()}")
    if counted is None or n != counted or n == 0:
        problems.append(f"--write-pcap: tcpdump read {n} packets, sidetap says {counted}")
    st_ = rs.pcap_stats(pcap)
    if need_frags and (st_["ipv4_frags"] == 0 or st_["ipv6_frags"] == 0):
        problems.append(f"--write-pcap: no IPv4 or no IPv6 fragments in {pcap}: {st_}")
    if st_["tcp_payload_segments"] == 0:
        problems.append(f"--write-pcap: no TCP payload in {pcap}: {st_}")
    return problems


# ----------------------------------------------------------------------------- dnsperf step

def dnsperf_step(workdir, server, n=DNSPERF_QUERIES, qps=DNSPERF_QPS):
    qfile = os.path.join(workdir, "dnsperf-queries.txt")
    with open(qfile, "w") as f:
        for i in range(n):
            f.write(f"p{i}.small.example.test {('A', 'AAAA', 'TXT')[i % 3]}\n")
    f_ = rs.fam(server)
    step = rs.Step(f"dnsperf-{n}", ["dnsperf", "-s", server, "-d", qfile, "-n", "1", "-c", "4",
                                    "-q", "64", "-Q", str(qps), "-t", "3"],
                   [], sequential=False)

    def check(out):
        sent = re.search(r"Queries sent:\s+(\d+)", out)
        done = re.search(r"Queries completed:\s+(\d+)", out)
        lost = re.search(r"Queries lost:\s+(\d+)", out)
        if not (sent and done and lost):
            return ["no dnsperf summary"]
        step.expect = [(f_, "UDP")] * int(done.group(1))
        if int(sent.group(1)) != n or int(lost.group(1)):
            return [f"dnsperf sent {sent.group(1)} of {n}, lost {lost.group(1)}"]
        return []
    step.check = check
    return step


# ----------------------------------------------------------------------------- scenario: Knot

def scenario_knot(sidetap, workdir):
    problems = []
    d = os.path.join(workdir, "knot")
    out = os.path.join(workdir, "knot-live.dnstap")
    pcap = os.path.join(workdir, "knot-live.pcap")
    steps = rs.knot_steps() + [dnsperf_step(workdir, rs.SRV4)]
    metrics_text = None
    with netns.NetNS("lc-srv") as srv, netns.NetNS("lc-cli") as cli:
        print(f"namespaces {srv.name} (knotd, sidetap) and {cli.name} (clients), veth MTU 1500",
              flush=True)
        rs.setup_veth(srv, cli)
        knotd = rs.start_knot(srv, d, [f"{rs.SRV4}@53", f"{rs.SRV6}@53"], ["example.test"],
                              rs.SRV4)
        st = LiveSidetap(sidetap, srv, "sidetap-auth", ["st-srv", "lo"], out,
                         ["--role", "auth", "--identity", rs.KNOT_ID, "--version", rs.KNOT_VER,
                          "--write-pcap", pcap, "--stats-interval", "1s",
                          "--metrics", f"127.0.0.1:{METRICS_PORT}"])
        st.proc.wait_for_line(r"metrics on port %d" % METRICS_PORT, 5)
        p = rs.run_steps(cli, steps)
        rs.report("knot: clients", p)
        problems += p
        rc = knotd.stop(timeout=20)
        if rc != 0:
            problems.append(f"knotd exited {rc}\n{knotd.text()}")
        knot = read_dnstap_file(os.path.join(d, "knot.dnstap"), require_stop=False)
        got = st.wait_frames(len(knot), via_metrics=True)
        try:
            metrics_text, vals = st.metrics()
            kd_key = 'sidetap_capture_kernel_dropped_total{interface="st-srv"}'
            print(f"knot: metrics: frames={vals.get('sidetap_frames_total')} "
                  f"kernel_dropped(st-srv)={vals.get(kd_key)}", flush=True)
        except RuntimeError as e:
            problems.append(f"knot: metrics: {e}")
        print(f"knot: sidetap encoded {got} frames before SIGTERM; Knot logged {len(knot)}",
              flush=True)
        st.stop()
    print(f"Knot logged {len(knot)} messages for {sum(len(s.expect) for s in steps)} exchanges",
          flush=True)
    p = rs.check_counts("Knot", knot, steps, ("AUTH_QUERY", "AUTH_RESPONSE"), False)
    rs.report("knot: Knot's own dnstap vs the queries made", p)
    problems += p

    side, counters, p = check_sidetap_run("Knot", st, len(knot))
    if side is not None:
        q, lag = rs.compare("Knot", knot, side, steps)
        p += q
        print(f"knot: largest distance between sidetap's live time and Knot's stamp: "
              f"{lag / 1e6:.3f} ms", flush=True)
    for name in ("defrag_reassembled", "tcp_messages"):
        if rs.counter(counters, name) <= 0:
            p.append(f"sidetap counter {name} is {rs.counter(counters, name)}, expected > 0")
    rs.report("knot: live sidetap --role auth vs Knot's dnstap", p)
    problems += p
    p = check_stats_and_metrics(st, metrics_text, min_lines=2) + check_pcap(st, pcap, True)
    rs.report("knot: --stats-interval, --metrics, --write-pcap", p)
    problems += p
    return problems


# ----------------------------------------------------------------------------- scenario: Unbound

def scenario_unbound(sidetap, workdir):
    problems = []
    d = os.path.join(workdir, "unbound")
    os.makedirs(d)
    kd = os.path.join(workdir, "knot-upstream")
    sock = os.path.join(d, "dnstap.sock")
    unb_file = os.path.join(d, "unbound.dnstap")
    icmp_pcap = os.path.join(workdir, "unbound-icmp.pcap")
    out_res = os.path.join(workdir, "unbound-live.dnstap")
    out_auth = os.path.join(workdir, "knot-upstream-live.dnstap")
    steps = rs.unbound_steps()
    with netns.NetNS("lc-unb") as ns:
        print(f"namespace {ns.name} (unbound 127.0.0.1/::1, knotd {rs.KNOT_LO4}/{rs.KNOT_LO6})",
              flush=True)
        ns.run(["ip", "-6", "addr", "add", f"{rs.KNOT_LO6}/128", "dev", "lo", "nodad"])
        knotd = rs.start_knot(ns, kd, [f"{rs.KNOT_LO4}@53", f"{rs.KNOT_LO6}@53"],
                              ["fwd.test", "fwd6.test", "stub.test"], rs.KNOT_LO4)
        cap = ns.spawn(["fstrm_capture", "-d", "-d", "-d", "-t", "protobuf:dnstap.Dnstap",
                        "-u", sock, "-w", unb_file], name="fstrm_capture")
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            if time.monotonic() > deadline or not cap.running():
                raise RuntimeError(f"fstrm_capture did not create {sock}\n{cap.text()}")
            time.sleep(0.02)
        conf = os.path.join(d, "unbound.conf")
        with open(conf, "w") as f:
            f.write(rs.unbound_config(d, sock))
        ns.run(["unbound-checkconf", conf])
        unbound = ns.spawn(["unbound", "-d", "-c", conf], name="unbound")
        unbound.wait_for_line(r"start of service", 20)
        cap.wait_for_line(r"(?i)accept|start|connection|opened", 10)
        time.sleep(0.2)
        res = LiveSidetap(sidetap, ns, "sidetap-resolver", ["lo"], out_res,
                          ["--role", "resolver", "--server-addr", "127.0.0.1", "--server-addr",
                           "::1", "--identity", rs.UNB_ID, "--version", rs.UNB_VER,
                           "--stats-interval", "1s"])
        auth = LiveSidetap(sidetap, ns, "sidetap-auth-upstream", ["lo"], out_auth,
                           ["--role", "auth", "--server-addr", rs.KNOT_LO4, "--server-addr",
                            rs.KNOT_LO6, "--identity", rs.KNOT_ID, "--version", rs.KNOT_VER,
                            "--stats-interval", "1s"])
        dump = netns.Tcpdump(ns, icmp_pcap, iface="lo", bpf="icmp or icmp6",
                             extra=rs.TCPDUMP_BUF)
        p = rs.run_steps(ns, steps)
        rs.report("unbound: clients", p)
        problems += p
        time.sleep(1.5)       # Unbound's dnstap thread flushes every second (test_real_servers)
        rs.wait_capture_settled(dump)
        dump.stop()
        rc = unbound.stop(timeout=20)
        if rc != 0:
            problems.append(f"unbound exited {rc}\n{unbound.text()}")
        time.sleep(0.2)
        cap.stop()
        rc = knotd.stop(timeout=20)
        if rc != 0:
            problems.append(f"knotd exited {rc}\n{knotd.text()}")
        unb = read_dnstap_file(unb_file, require_stop=False)
        knot = read_dnstap_file(os.path.join(kd, "knot.dnstap"), require_stop=False)
        for st, n in ((res, len(unb)), (auth, len(knot))):
            got = st.wait_frames(n)
            print(f"{st.name}: encoded {got} frames before SIGTERM; the server logged {n}",
                  flush=True)
            st.stop()
    types = {}
    for m in unb:
        types[m["type"]] = types.get(m["type"], 0) + 1
    print(f"Unbound logged {len(unb)} messages {types}; upstream Knot logged {len(knot)}",
          flush=True)
    p = rs.check_counts("Unbound", unb, steps, ("CLIENT_QUERY", "CLIENT_RESPONSE"), True)
    rs.report("unbound: Unbound's own dnstap vs the queries made", p)
    problems += p
    unreachable = rs.port_unreachables(icmp_pcap)

    side, counters, p = check_sidetap_run("Unbound", res, len(unb))
    if side is not None:
        bad = [m for m in side if rs.upstream(m) and m["type"].startswith("FORWARDER_")]
        if bad:
            p.append(f"sidetap wrote FORWARDER_* ({len(bad)}); role resolver writes RESOLVER_*")
        q, lag = rs.compare("Unbound", unb, side, steps, udp_stamped_after_send=True,
                            unreachable=unreachable)
        p += q
        p += rs.upstream_checks(side, {"INET": "127.0.0.1", "INET6": "::1"})
        print(f"unbound: largest distance between sidetap's live time and Unbound's stamp: "
              f"{lag / 1e6:.3f} ms", flush=True)
    if rs.counter(counters, "tcp_messages") <= 0:
        p.append("sidetap-resolver counter tcp_messages is missing or 0")
    p += check_stats_and_metrics(res, None, min_lines=2, want_metrics=False)
    rs.report("unbound: live sidetap --role resolver vs Unbound's dnstap", p)
    problems += p

    side, counters, p = check_sidetap_run("upstream Knot", auth, len(knot))
    if side is not None:
        q, lag = rs.compare("Knot", knot, side, steps, unreachable=unreachable)
        p += q
        print(f"unbound: largest distance between sidetap's live time and the upstream Knot's "
              f"stamp: {lag / 1e6:.3f} ms", flush=True)
    rs.report("unbound: live sidetap --role auth on lo vs the upstream Knot's dnstap", p)
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

    return netns.run_root_test(TEST, sidetap, ("ip", "knotd", "kdig", "tcpdump", "sysctl", "ethtool", "curl",
                                "dnsperf", "unbound", "unbound-checkconf", "fstrm_capture"), "sidetap-lc-", args.keep, body)


if __name__ == "__main__":
    sys.exit(main())
