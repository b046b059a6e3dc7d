#!/usr/bin/env python3
"""Root test: `sidetap capture --ebpf socket|tc|cgroup` beside Knot writes the same dnstap as
Knot itself; the in-kernel filter passes exactly the wanted packets; ring-buffer overflow is
counted exactly; errors name the capability or object at fault; detach is clean.

Scenarios (--only NAME runs one):
  socket, tc, cgroup -- Knot with mod-dnstap in a server namespace joined to a client namespace
      by a veth pair (MTU 1500, tso/gso/gro off: real IP fragments and MSS-sized segments), the
      workload of test_real_servers.knot_steps() (UDP, fragmented 4 KB UDP answers over IPv4
      and IPv6, truncation and TCP retry, a 16 KB TCP answer, keepopen, one-write pipelining,
      split writes) plus a dnsperf burst; sidetap --role auth:
        socket: --ebpf socket (no -i: every interface of the server namespace), --metrics
        tc:     --ebpf tc -i st-srv, --metrics, --write-pcap (raw IP)
        cgroup: sidetap on the host, --ebpf cgroup --cgroup <test cgroup>; knotd in a child
                cgroup; a second knotd outside it (client namespace, 127.0.0.1/::1) gets
                queries that must not appear in sidetap's output.
      Checks (test_live_capture's helpers): sidetap's messages equal Knot's one for one
      (test_real_servers.compare: bytes, addresses, ports, times in causal windows), exit 0
      with STOP, no drop counter above 0, every record the kernel passed was processed.
  filter -- four sidetaps at the same time on the server's veth (tc and socket with -p 53;
      tc with --server-addr of the IPv4 server only; socket with --role resolver
      --upstream-port 5353); a client sends fragmented (3 fragments) DNS queries to ports 53 and
      5353, and small ones to 53, 5353 and 9999, over IPv4 and IPv6. Each sidetap's kernel
      counters must show exactly: passed = every fragment of its wanted datagrams + its wanted
      single ones, fragments_followed = their non-first fragments, fragments_unknown = the
      non-first fragments of the unwanted fragmented datagrams (not delivered); every wanted
      query is emitted and reassembled.
  vlan -- DNS queries in Ethernet frames with an 802.1Q tag, and with two tags (802.1ad +
      802.1Q), written through AF_PACKET on each end of the veth pair (both directions, IPv4
      and IPv6): tc capture on the server's veth sees all of them, the socket filter all but
      the received double-tagged ones (kernel_passed, messages emitted).
  overflow -- --ebpf socket -i lo -B 256K (the smallest rings), sidetap stopped with SIGSTOP
      while N queries are sent, then continued: ring_full_dropped > 0 and emitted +
      ring_full_dropped = N = kernel_passed.
  errors -- missing interface, missing cgroup, a directory that is not cgroup v2, --filter;
      capabilities (as nobody through setpriv): tc without CAP_NET_ADMIN, without CAP_BPF,
      socket without CAP_NET_RAW name the missing one; --user nobody after attaching (tc):
      CapBnd=0, NoNewPrivs=1, still captures and counts; after SIGTERM and after SIGKILL no
      sidetap program is left loaded (tcx links and sockets go with the process).
  netlink -- the tc path for kernels without tcx (forced with SIDETAP_EBPF_NO_TCX=1): without
      a clsact qdisc sidetap adds one, captures, and removes it on SIGTERM; with an existing one
      it adds only its filter and removes only that.
"""
import argparse
import json
import os
import re
import signal
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import netns  # noqa: E402
import test_live_capture as lc  # noqa: E402
import test_real_servers as rs  # noqa: E402
from sidetap_testlib import read_dnstap_file, sidetap_arg  # noqa: E402

TEST = "root.test_ebpf_capture"
METRICS_PORT = lc.METRICS_PORT   # inside the server namespace
SCENARIOS = ("socket", "tc", "cgroup", "filter", "vlan", "overflow", "errors", "netlink")


def loaded_sidetap_programs():
    """Names of loaded BPF programs that are sidetap's (bpftool prog show)."""
    p = netns.subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"bpftool prog show: {p.stderr}")
    return sorted(x.get("name", "") for x in json.loads(p.stdout or "[]")
                  if x.get("name", "").startswith("sidetap_"))


# ----------------------------------------------------------------------------- Knot scenarios

def scenario_knot(sidetap, workdir, mode):
    problems = []
    d = os.path.join(workdir, f"knot-{mode}")
    out = os.path.join(workdir, f"knot-{mode}.dnstap")
    pcap = os.path.join(workdir, f"knot-{mode}.pcap")
    steps = rs.knot_steps() + [lc.dnsperf_step(workdir, rs.SRV4)]
    metrics_text = None
    base = ["--role", "auth", "--identity", rs.KNOT_ID, "--version", rs.KNOT_VER,
            "--stats-interval", "1s"]
    outside = []
    with netns.NetNS(f"eb{mode[:2]}-srv") as srv, netns.NetNS(f"eb{mode[:2]}-cli") as cli, \
            netns.Host() as host, netns.Cgroup(f"eb-{mode}") as cg:
        rs.setup_veth(srv, cli)
        server_cg = cg.child("server") if mode == "cgroup" else None
        knotd = rs.start_knot(srv, d, [f"{rs.SRV4}@53", f"{rs.SRV6}@53"], ["example.test"],
                              rs.SRV4, cgroup=server_cg)
        if mode == "socket":
            st = lc.LiveSidetap(sidetap, srv, "sidetap-ebpf-socket", [], out,
                                ["--ebpf", "socket", *base, "--metrics",
                                 f"127.0.0.1:{METRICS_PORT}"],
                                channels=["socket:any"], ready=["any"])
        elif mode == "tc":
            st = lc.LiveSidetap(sidetap, srv, "sidetap-ebpf-tc", ["st-srv"], out,
                                ["--ebpf", "tc", *base, "--write-pcap", pcap, "--metrics",
                                 f"127.0.0.1:{METRICS_PORT}"],
                                channels=["tc:st-srv"])
        else:
            # The second server, outside the cgroup, on the client's loopback.
            d2 = os.path.join(workdir, "knot-outside")
            knot2 = rs.start_knot(cli, d2, ["127.0.0.1@53", "::1@53"], ["example.test"],
                                  "127.0.0.1")
            st = lc.LiveSidetap(sidetap, host, "sidetap-ebpf-cgroup", [], out,
                                ["--ebpf", "cgroup", "--cgroup", cg.path, *base],
                                channels=[f"cgroup:{cg.path}"], ready=[f"cgroup {cg.path}"])
            if knotd.pid not in cg.procs(server_cg):
                problems.append(f"knotd (pid {knotd.pid}) is not in {server_cg}")
        if mode != "cgroup":
            st.proc.wait_for_line(r"metrics on port %d" % METRICS_PORT, 5)
        p = rs.run_steps(cli, steps)
        if mode == "cgroup":
            outside = [rs.Step("outside-udp-v4", rs.kdig("127.0.0.1", "+notcp", "www.example.test",
                                                         "A"), [("INET", "UDP")],
                               check=rs.kdig_check()),
                       rs.Step("outside-tcp-v6", rs.kdig("::1", "+tcp", "www.example.test", "AAAA"),
                               [("INET6", "TCP")], check=rs.kdig_check()),
                       rs.Step("outside-frag-v4", rs.kdig("127.0.0.1", "+notcp", "+bufsize=4096",
                                                          "+ignore", "big4k.example.test", "TXT"),
                               [("INET", "UDP")], check=rs.kdig_check(min_answers=18))]
            p += rs.run_steps(cli, outside)
        rs.report(f"{mode}: clients", p)
        problems += p
        rc = knotd.stop(timeout=20)
        if rc != 0:
            problems.append(f"knotd exited {rc}\n{knotd.text()}")
        knot = read_dnstap_file(os.path.join(d, "knot.dnstap"), require_stop=False)
        if mode == "cgroup":
            knot2.stop(timeout=20)
            other = read_dnstap_file(os.path.join(d2, "knot.dnstap"), require_stop=False)
            if len(other) != 6:
                problems.append(f"the server outside the cgroup logged {len(other)} messages, "
                                f"expected 6")
        got = st.wait_frames(len(knot), via_metrics=mode != "cgroup")
        if mode != "cgroup":
            try:
                metrics_text, _ = st.metrics(METRICS_PORT)
            except RuntimeError as e:
                problems.append(f"{mode}: metrics: {e}")
        print(f"{mode}: sidetap encoded {got} frames before SIGTERM; Knot logged {len(knot)}",
              flush=True)
        st.stop()
    p = rs.check_counts("Knot", knot, steps, ("AUTH_QUERY", "AUTH_RESPONSE"), False)
    rs.report(f"{mode}: Knot's own dnstap vs the queries made", p)
    problems += p
    side, counters, p = lc.check_sidetap_run("Knot", st, len(knot))
    if side is not None:
        q, lag = rs.compare("Knot", knot, side, steps)
        p += q
        print(f"{mode}: largest distance between sidetap's time and Knot's stamp: "
              f"{lag / 1e6:.3f} ms", flush=True)
        if len(side) != len(knot):
            p.append(f"sidetap wrote {len(side)} messages, Knot logged {len(knot)}")
        leaked = [m for m in side if m.get("response_address") in ("127.0.0.1", "::1")]
        if leaked:
            p.append(f"{len(leaked)} messages of the server outside the cgroup were captured")
    needed = ["tcp_messages"] + (["defrag_reassembled"] if mode != "cgroup" else [])
    for name in needed:
        if rs.counter(counters, name) <= 0:
            p.append(f"sidetap counter {name} is {rs.counter(counters, name)}, expected > 0")
    rs.report(f"{mode}: live sidetap --ebpf {mode} --role auth vs Knot's dnstap", p)
    problems += p
    p = lc.check_stats_and_metrics(st, metrics_text, min_lines=2, want_metrics=mode != "cgroup",
                                   drop_counter="ring_full_dropped")
    if mode == "tc":
        p += lc.check_pcap(st, pcap, True)
    rs.report(f"{mode}: --stats-interval, --metrics, --write-pcap", p)
    problems += p
    return problems


# ----------------------------------------------------------------------------- filter

def dns_query(qid, name, pad=0):
    """A DNS query; with pad > 0 an OPT RR carrying an EDNS padding option of `pad` bytes."""
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 1 if pad else 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack(">HH", 1, 1)
    if pad:
        q += b"\x00" + struct.pack(">HHIH", 41, 4096, 0, pad + 4) + struct.pack(">HH", 12, pad)
        q += b"\x00" * pad
    return q


SENDER = r"""
import socket, struct, sys, json
spec = json.loads(sys.argv[1])
for fam, addr in ((socket.AF_INET, spec["v4"]), (socket.AF_INET6, spec["v6"])):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    for port, payload_hex, count in spec["sends"]:
        payload = bytes.fromhex(payload_hex)
        for i in range(count):
            s.sendto(struct.pack(">H", i + (port & 0xff) * 256) + payload[2:], (addr, port))
"""


def scenario_filter(sidetap, workdir):
    problems = []
    n_big, n_frag_other, n_small, n_other = 20, 20, 10, 30
    big = dns_query(0, "big.example.test", pad=2950)      # ~3000 bytes: 3 fragments at MTU 1500
    small = dns_query(0, "small.example.test")
    sends = [(53, big.hex(), n_big), (5353, big.hex(), n_frag_other), (53, small.hex(), n_small),
             (5353, small.hex(), n_other), (9999, small.hex(), n_other)]
    frags = 3
    # (name, mode, args, families, datagrams wanted per family: (fragmented, single), unwanted
    # fragmented datagrams per family (their first fragment fails the filter))
    configs = [
        ("tc", "tc", ["--role", "auth"], 2, (n_big, n_small), n_frag_other),
        ("socket", "socket", ["--role", "auth"], 2, (n_big, n_small), n_frag_other),
        # only the IPv4 server address: the IPv6 datagrams are all unwanted
        ("server-addr", "tc", ["--role", "auth", "--server-addr", rs.SRV4], 1, (n_big, n_small),
         None),
        # role resolver: the upstream port 5353 is wanted too
        ("resolver", "socket", ["--role", "resolver", "--upstream-port", "5353"], 2,
         (n_big + n_frag_other, n_small + n_other), 0),
    ]
    runs = []
    with netns.NetNS("ebf-srv") as srv, netns.NetNS("ebf-cli") as cli:
        rs.setup_veth(srv, cli)
        for name, mode, args, fams, wanted, unwanted in configs:
            st = lc.LiveSidetap(sidetap, srv, f"sidetap-filter-{name}", ["st-srv"],
                                os.path.join(workdir, f"filter-{name}.dnstap"),
                                ["--ebpf", mode, *args], channels=[f"{mode}:st-srv"])
            runs.append((st, fams, wanted, unwanted))
        cli.run([sys.executable, "-c", SENDER, json.dumps({"v4": rs.SRV4, "v6": rs.SRV6,
                                                            "sends": sends})])
        for st, fams, wanted, _ in runs:
            st.wait_frames(fams * sum(wanted), timeout=3)
        for st, *_ in runs:
            st.stop()
    for st, fams, (fragmented, single), unwanted in runs:
        if unwanted is None:   # one family wanted: the other's fragmented datagrams are unwanted
            unwanted_frags = n_frag_other * (frags - 1) + (n_big + n_frag_other) * (frags - 1)
        else:
            unwanted_frags = fams * unwanted * (frags - 1)
        want_frames = fams * (fragmented + single)
        expect = {"kernel_passed": fams * (fragmented * frags + single),
                  "fragments_followed": fams * fragmented * (frags - 1),
                  "fragments_unknown": unwanted_frags}
        side, counters, p = lc.check_sidetap_run("the sender", st, want_frames)
        _, chans, _ = st.summary()
        got = chans.get(st.channels[0], {})
        for k, v in expect.items():
            if got.get(k) != v:
                p.append(f"{st.name}: {k}={got.get(k)}, expected exactly {v} ({got})")
        if got.get("packets") != expect["kernel_passed"]:
            p.append(f"{st.name}: {got.get('packets')} packets delivered, expected "
                     f"{expect['kernel_passed']}")
        if side is not None and len(side) != want_frames:
            p.append(f"{st.name}: {len(side)} queries emitted, expected {want_frames}")
        if rs.counter(counters, "defrag_reassembled") != fams * fragmented:
            p.append(f"{st.name}: defrag_reassembled={rs.counter(counters, 'defrag_reassembled')}"
                     f", expected {fams * fragmented}")
        print(f"{st.name}: {got}", flush=True)
        rs.report(f"filter: {st.name}: the kernel passes exactly the wanted packets", p)
        problems += p
    return problems


# ----------------------------------------------------------------------------- vlan

RAW_SENDER = r"""
import json, socket, struct, sys
spec = json.loads(sys.argv[1])

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff

def frame(dst_mac, src_mac, tags, src, dst, qid, dns):
    udp_len = 8 + len(dns)
    if ":" in src:
        s6, d6 = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
        udp = struct.pack("!HHHH", 40000 + qid, 53, udp_len, 0) + dns
        c = csum(s6 + d6 + struct.pack("!IxxxB", udp_len, 17) + udp) or 0xffff
        udp = udp[:6] + struct.pack("!H", c) + udp[8:]
        ip, etype = struct.pack("!IHBB", 6 << 28, udp_len, 17, 64) + s6 + d6 + udp, 0x86DD
    else:
        s4, d4 = socket.inet_aton(src), socket.inet_aton(dst)
        udp = struct.pack("!HHHH", 40000 + qid, 53, udp_len, 0) + dns
        hdr = struct.pack("!BBHHHBBH", 0x45, 0, 20 + udp_len, qid, 0, 64, 17, 0) + s4 + d4
        ip, etype = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + udp, 0x0800
    eth = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", ""))
    for tpid, vid in tags:
        eth += struct.pack("!HH", tpid, vid)
    return eth + struct.pack("!H", etype) + ip

s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((spec["dev"], 0))
dns = bytes.fromhex(spec["dns"])
for tags in spec["tags"]:
    for src, dst in spec["pairs"]:
        for i in range(spec["n"]):
            s.send(frame(spec["dst_mac"], spec["src_mac"], tags, src, dst, i,
                         struct.pack("!H", i) + dns[2:]))
"""


def mac_of(ns, dev):
    return re.search(r"link/ether (\S+)", ns.run(["ip", "link", "show", dev]).stdout).group(1)


def scenario_vlan(sidetap, workdir):
    """VLAN-tagged frames (the kernel here may have no 8021q module, so they are written by
    hand through AF_PACKET): tc sees them with the tags still in the frame on egress and with
    an inner (QinQ) tag on ingress; the socket filter sees all but received double-tagged
    frames (there the kernel leaves the network header at the inner tag)."""
    problems = []
    n = 10
    q = dns_query(0, "vlan.example.test")
    pairs_out = [("10.53.0.1", "10.53.0.2"), ("fd00:53::1", "fd00:53::2")]
    pairs_in = [(b, a) for a, b in pairs_out]
    one = [[[0x8100, 100]]]
    qinq = [[[0x88a8, 200], [0x8100, 100]]]
    with netns.NetNS("ebv-srv") as srv, netns.NetNS("ebv-cli") as cli:
        rs.setup_veth(srv, cli)
        smac, cmac = mac_of(srv, "st-srv"), mac_of(cli, "st-cli")
        runs = [(lc.LiveSidetap(sidetap, srv, "sidetap-vlan-tc", ["st-srv"],
                                os.path.join(workdir, "vlan-tc.dnstap"),
                                ["--ebpf", "tc", "--role", "auth"], channels=["tc:st-srv"]),
                 8 * n),   # 2 tag stacks x 2 directions x 2 families
                (lc.LiveSidetap(sidetap, srv, "sidetap-vlan-socket", ["st-srv"],
                                os.path.join(workdir, "vlan-socket.dnstap"),
                                ["--ebpf", "socket", "--role", "auth"], channels=["socket:st-srv"]),
                 6 * n)]   # all but received QinQ frames (documented: see the README)
        for tags in (one, qinq):
            srv.run([sys.executable, "-c", RAW_SENDER, json.dumps(
                {"dev": "st-srv", "src_mac": smac, "dst_mac": cmac, "tags": tags,
                 "pairs": pairs_out, "n": n, "dns": q.hex()})])   # egress of st-srv
            cli.run([sys.executable, "-c", RAW_SENDER, json.dumps(
                {"dev": "st-cli", "src_mac": cmac, "dst_mac": smac, "tags": tags,
                 "pairs": pairs_in, "n": n, "dns": q.hex()})])    # ingress of st-srv
        for st, want in runs:
            st.wait_frames(want, timeout=3)
        for st, _ in runs:
            st.stop()
    for st, want in runs:
        side, _, p = lc.check_sidetap_run("the senders", st, want)
        _, chans, _ = st.summary()
        got = chans.get(st.channels[0], {})
        if got.get("kernel_passed") != want or side is None or len(side) != want:
            p.append(f"{st.name}: kernel_passed {got.get('kernel_passed')}, "
                     f"{len(side or [])} messages; expected {want} of each ({got})")
        rs.report(f"vlan: {st.name}: tagged frames in both directions", p)
        problems += p
    return problems


# ----------------------------------------------------------------------------- overflow

def scenario_overflow(sidetap, workdir):
    problems = []
    n = 20000      # 3.2 MB of records: more than a 256 KiB ring holds, even spread over CPUs
    out = os.path.join(workdir, "overflow.dnstap")
    q = dns_query(0, "www.example.test")
    with netns.NetNS("ebo") as ns:
        st = lc.LiveSidetap(sidetap, ns, "sidetap-overflow", ["lo"], out, ["--ebpf", "socket"],
                            channels=["socket:lo"], buffer="256K")
        if not any(re.search(r"rings \d+ x 256 KiB", l) for l in st.proc.lines()):
            problems.append(f"rings are not 256 KiB: {st.proc.lines()}")
        os.kill(st.proc.pid, signal.SIGSTOP)
        try:
            ns.run([sys.executable, "-c", SENDER, json.dumps(
                {"v4": "127.0.0.1", "v6": "::1", "sends": [(53, q.hex(), n // 2)]})])
        finally:
            os.kill(st.proc.pid, signal.SIGCONT)
        time.sleep(1.0)
        st.stop()
    side, counters, p = lc.check_sidetap_run("the sender", st, n)
    p = [x for x in p if "DROPS" not in x]   # drops are the point here
    _, chans, _ = st.summary()
    got = chans.get("socket:lo", {})
    emitted = len(side) if side is not None else 0
    dropped = got.get("ring_full_dropped", 0)
    print(f"overflow: sent {n}, emitted {emitted}, ring_full_dropped {dropped}, {got}", flush=True)
    if dropped <= 0:
        p.append("the ring never overflowed (ring_full_dropped = 0)")
    if got.get("kernel_passed") != n:
        p.append(f"kernel_passed={got.get('kernel_passed')}, expected {n}")
    if emitted + dropped != n:
        p.append(f"emitted {emitted} + ring_full_dropped {dropped} = {emitted + dropped} != sent {n}")
    rs.report("overflow: drops counted exactly", p)
    problems += p
    return problems


# ----------------------------------------------------------------------------- errors

def status_of(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return fields


def scenario_errors(sidetap, workdir):
    problems = []

    def expect(desc, argv, code, *needles, ns=None, absent=()):
        runner = ns.run if ns else (lambda a, check: netns.subprocess.run(
            a, capture_output=True, text=True, timeout=30))
        p = runner(argv, check=False)
        last = (p.stderr.strip().splitlines() or [""])[-1]
        ok = p.returncode == code and all(n in p.stderr for n in needles) and \
            not any(a in p.stderr for a in absent)
        print(f"{'ok' if ok else 'FAIL'}: {desc}: exit {p.returncode}: {last}", flush=True)
        if not ok:
            problems.append(f"{desc}: exit {p.returncode} (expected {code}), stderr must name "
                            f"{needles}{' and not ' + str(absent) if absent else ''}:\n"
                            f"{p.stderr}")

    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

    def caps(c):
        return nobody + [f"--inh-caps=-all,{c}", f"--ambient-caps=-all,{c}"]

    p = netns.subprocess.run([sidetap, "--version"], capture_output=True, text=True)
    if "eBPF" not in p.stdout:
        problems.append(f"--version does not mention eBPF: {p.stdout}")
    with netns.NetNS("ebe") as ns, netns.Cgroup("ebe") as cg:
        w = ["-w", os.path.join(workdir, "e.dnstap")]
        expect("missing interface", [sidetap, "capture", "--ebpf", "tc", "-i", "nosuch0", *w], 1,
               "nosuch0", "no such interface", ns=ns)
        expect("tc without -i", [sidetap, "capture", "--ebpf", "tc", *w], 2, "-i", ns=ns)
        expect("missing cgroup", [sidetap, "capture", "--ebpf", "cgroup", "--cgroup",
                                  cg.path + "/nosuch", *w], 1, "no such cgroup")
        expect("not cgroup v2", [sidetap, "capture", "--ebpf", "cgroup", "--cgroup", workdir, *w],
               1, "not a cgroup v2 directory", cg.root)
        expect("--filter refused", [sidetap, "capture", "--ebpf", "socket", "--filter", "udp",
                                    *w], 2, "--filter", ns=ns)
        expect("tc without CAP_NET_ADMIN", caps("+bpf") + [sidetap, "capture", "--ebpf", "tc",
                                                          "-i", "lo", "-w", "-"], 1,
               "CAP_NET_ADMIN", "missing: CAP_NET_ADMIN", ns=ns)
        expect("tc without CAP_BPF", caps("+net_admin") + [sidetap, "capture", "--ebpf", "tc",
                                                          "-i", "lo", "-w", "-"], 1,
               "CAP_BPF", "missing: CAP_BPF", "CAP_SYS_ADMIN", ns=ns, absent=("missing: CAP_BPF CAP_NET_ADMIN",))
        expect("socket without CAP_NET_RAW", caps("+bpf") + [sidetap, "capture", "--ebpf",
                                                            "socket", "-w", "-"], 1,
               "CAP_NET_RAW", ns=ns)
        expect("cgroup without CAP_NET_ADMIN", caps("+bpf") + [sidetap, "capture", "--ebpf",
                                                              "cgroup", "--cgroup", cg.path,
                                                              "-w", "-"], 1, "CAP_NET_ADMIN")

        # --user after attaching; the kernel counters stay readable without privileges.
        before = loaded_sidetap_programs()
        os.chmod(workdir, 0o777)
        out = os.path.join(workdir, "user.dnstap")
        st = lc.LiveSidetap(sidetap, ns, "sidetap-user", ["lo"], out,
                            ["--ebpf", "tc", "--user", "nobody"], channels=["tc:lo"])
        deadline = time.monotonic() + 5
        while status_of(st.proc.pid)["Uid"].split()[0] != "65534" and time.monotonic() < deadline:
            time.sleep(0.05)
        for tid in os.listdir(f"/proc/{st.proc.pid}/task"):
            s = status_of(f"{st.proc.pid}/task/{tid}")
            if s["Uid"].split()[0] != "65534" or int(s["CapBnd"], 16) or int(s["CapEff"], 16) \
                    or s["NoNewPrivs"] != "1":
                problems.append(f"--user nobody: thread {tid}: Uid {s['Uid']} CapBnd {s['CapBnd']}"
                                f" CapEff {s['CapEff']} NoNewPrivs {s['NoNewPrivs']}")
        if len(loaded_sidetap_programs()) != len(before) + 1:
            problems.append(f"expected one more sidetap program while attached: "
                            f"{before} -> {loaded_sidetap_programs()}")
        q = dns_query(0, "www.example.test")
        ns.run([sys.executable, "-c", SENDER, json.dumps(
            {"v4": "127.0.0.1", "v6": "::1", "sends": [(53, q.hex(), 50)]})])
        st.wait_frames(100, timeout=3)
        st.stop()
        side, _, p = lc.check_sidetap_run("the sender", st, 100)
        _, chans, _ = st.summary()
        if side is None or len(side) != 100 or chans.get("tc:lo", {}).get("kernel_seen", 0) < 100:
            p.append(f"--user nobody: {len(side or [])} queries captured (expected 100), "
                     f"counters {chans}")
        if loaded_sidetap_programs() != before:
            p.append(f"programs left after SIGTERM: {loaded_sidetap_programs()} (before: {before})")
        rs.report("errors: --user after attaching, detach on SIGTERM", p)
        problems += p

        # A crash (SIGKILL) leaves nothing attached: tcx links and sockets die with the process.
        for mode, extra in (("tc", ["-i", "lo"]), ("socket", []), ("cgroup", ["--cgroup", cg.path])):
            runner = netns.Host() if mode == "cgroup" else ns
            proc = runner.spawn([sidetap, "capture", "--ebpf", mode, *extra, "-w", "/dev/null"],
                                name=f"sidetap-kill-{mode}")
            proc.wait_for_line(r"^sidetap: capturing on ", 10)
            attached = loaded_sidetap_programs()
            proc.stop(signal.SIGKILL)
            deadline = time.monotonic() + 5
            while loaded_sidetap_programs() != before and time.monotonic() < deadline:
                time.sleep(0.1)   # the kernel frees programs after an RCU grace period
            left = loaded_sidetap_programs()
            print(f"{'ok' if left == before else 'FAIL'}: SIGKILL with --ebpf {mode}: "
                  f"{attached} -> {left}", flush=True)
            if left != before:
                problems.append(f"--ebpf {mode}: after SIGKILL still loaded: {left}")
    return problems


# ----------------------------------------------------------------------------- netlink

def scenario_netlink(sidetap, workdir):
    problems = []
    env = dict(os.environ, SIDETAP_EBPF_NO_TCX="1")
    q = dns_query(0, "www.example.test")
    with netns.NetNS("ebn") as ns:
        for existing in (False, True):
            label = "existing clsact" if existing else "no clsact before"
            if existing:
                ns.run(["tc", "qdisc", "add", "dev", "lo", "clsact"])
            out = os.path.join(workdir, f"netlink-{existing}.dnstap")
            proc = ns.spawn([sidetap, "capture", "--ebpf", "tc", "-i", "lo", "-w", out],
                            name="sidetap-netlink", env=env)
            m = proc.wait_for_line(r"^sidetap: capturing on lo .*via ([^,]*clsact[^,]*), netlink", 10)
            filters = ns.run(["tc", "filter", "show", "dev", "lo", "ingress"]).stdout
            ns.run([sys.executable, "-c", SENDER, json.dumps(
                {"v4": "127.0.0.1", "v6": "::1", "sends": [(53, q.hex(), 10)]})])
            time.sleep(0.5)
            rc = proc.stop()
            qdiscs = ns.run(["tc", "qdisc", "show", "dev", "lo"]).stdout
            after = ns.run(["tc", "filter", "show", "dev", "lo", "ingress"]).stdout
            n = len(read_dnstap_file(out))
            p = []
            if ("existing" in m.group(1)) != existing:
                p.append(f"sidetap says '{m.group(1)}'")
            if "sidetap_tc_ingr" not in filters:   # names are cut at 15 characters
                p.append(f"no sidetap filter while running:\n{filters}")
            if rc != 0 or n != 20:
                p.append(f"exit {rc}, {n} queries captured (expected 0 and 20)")
            if "sidetap" in after:
                p.append(f"filter left after SIGTERM:\n{after}")
            if ("clsact" in qdiscs) != existing:
                p.append(f"clsact {'removed' if existing else 'left'} after SIGTERM:\n{qdiscs}")
            rs.report(f"netlink ({label}): attach, capture, detach", p)
            problems += p
    return problems


# ----------------------------------------------------------------------------- main

def main():
    sidetap = sidetap_arg()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep", action="store_true", help="keep the work directory on success")
    ap.add_argument("--only", choices=SCENARIOS, action="append")
    args = ap.parse_args()

    def body(workdir):
        problems = []
        for name in args.only or SCENARIOS:
            print(f"=== scenario {name}", flush=True)
            if name in ("socket", "tc", "cgroup"):
                problems += scenario_knot(sidetap, workdir, name)
            else:
                problems += globals()[f"scenario_{name}"](sidetap, workdir)
        return problems

    return netns.run_root_test(TEST, sidetap, ("ip", "knotd", "kdig", "tcpdump", "sysctl",
                                               "ethtool", "curl", "dnsperf", "bpftool", "setpriv", "tc"),
                               "sidetap-ebpf-", args.keep, body)


if __name__ == "__main__":
    sys.exit(main())
