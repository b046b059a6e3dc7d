#!/usr/bin/env python3
"""Root test: `sidetap capture` on the underlay of a real VXLAN tunnel writes
the same DNS messages as the server's own dnstap, with the INNER addresses.

Two namespaces joined by a veth pair (st-ta 10.99.0.1 <-> st-tb 10.99.0.2,
offloads off); a Linux VXLAN device (VNI 42, UDP 4789) over it in each:
    client ns  vx0 192.0.2.10/24 2001:db8:42::10/64
    server ns  vx0 192.0.2.53/24 2001:db8:42::53/64, knotd on them (mod-dnstap to a file)
In the server namespace, on the veth (where the packets are still VXLAN):
    sidetap capture -i st-tb --role auth            (tunnels admitted by default)
    sidetap capture -i st-tb --role auth --no-tunnels
    sidetap capture --ebpf tc -i st-tb --role auth  (the BPF program admits tunnel packets too)
    sidetap capture --ebpf socket -i st-tb --role auth --no-tunnels
Workload (kdig from the client namespace, IPv4 and IPv6): small UDP answers, a
~3.9 KB UDP answer that the kernel fragments at the VXLAN MTU (inner IP
fragments, each in its own VXLAN packet), the same answer over TCP.

Checks: the libpcap and eBPF tc sidetaps' messages equal Knot's (type, family,
protocol, addresses and ports, message bytes; as multisets), every address is
an inner one, decap_vxlan > 0, and the eBPF program counted tunnels_passed;
the --no-tunnels sidetaps (libpcap filter, eBPF program) saw no DNS at all
(their kernel filters left the VXLAN packets out); all exit 0.

Options: --keep. Not root -> fails loudly.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import netns  # noqa: E402
import servers  # noqa: E402
import test_live_capture as lc  # noqa: E402
import test_real_servers as rs  # noqa: E402
from sidetap_testlib import read_dnstap_file, sidetap_arg  # noqa: E402

TEST = "root.test_live_tunnels"
UNDER = {"st-ta": "10.99.0.1", "st-tb": "10.99.0.2"}
CLI4, CLI6, SRV4, SRV6 = "192.0.2.10", "2001:db8:42::10", "192.0.2.53", "2001:db8:42::53"


def setup(srv, cli):
    srv.run(["ip", "link", "add", "st-tb", "type", "veth", "peer", "name", "st-ta", "netns", cli.name])
    for ns, dev, peer, a4, a6 in ((srv, "st-tb", "st-ta", SRV4, SRV6), (cli, "st-ta", "st-tb", CLI4, CLI6)):
        ns.run(["ip", "addr", "add", UNDER[dev] + "/24", "dev", dev])
        ns.run(["ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off"])
        ns.run(["ip", "link", "set", dev, "up"])
        ns.run(["ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789", "local", UNDER[dev],
                "remote", UNDER[peer], "dev", dev])
        ns.run(["sysctl", "-q", "-w", "net.ipv6.conf.vx0.disable_ipv6=0"], check=False)
        ns.run(["sysctl", "-q", "-w", "net.ipv6.conf.vx0.accept_dad=0"], check=False)
        ns.run(["ip", "addr", "add", a4 + "/24", "dev", "vx0"])
        ns.run(["ip", "-6", "addr", "add", a6 + "/64", "dev", "vx0", "nodad"])
        ns.run(["ethtool", "-K", "vx0", "tso", "off", "gso", "off", "gro", "off"], check=False)
        ns.run(["ip", "link", "set", "vx0", "up"])
    deadline = time.monotonic() + 10
    for ns, dev in ((srv, "st-tb"), (cli, "st-ta"), (srv, "vx0"), (cli, "vx0")):
        while "LOWER_UP" not in ns.run(["ip", "link", "show", "dev", dev]).stdout:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ns.name}: {dev} did not come up\n" + ns.run(["ip", "addr"]).stdout)
            time.sleep(0.05)


def start_knot(ns, d):
    os.makedirs(os.path.join(d, "db"), exist_ok=True)
    servers.write(os.path.join(d, "example.test.zone"), rs.zone_text("example.test", SRV4))
    out = os.path.join(d, "knot.dnstap")  # where rs.knot_config's mod-dnstap writes
    # rs.knot_config: udp-max-payload 4096, so big4k goes over UDP.
    conf = servers.write(os.path.join(d, "knot.conf"),
                         rs.knot_config(d, [f"{SRV4}@53", f"{SRV6}@53"], ["example.test"], "knot-tunnel", "1"))
    knotd = ns.spawn(["knotd", "-c", conf], name="knotd-tunnel")
    knotd.wait_for_line(r"server started", 20)
    servers.wait_listening(ns, (SRV4, SRV6), proc=knotd)
    return knotd, out


def workload(cli):
    runs = []
    for srv in (SRV4, SRV6):
        runs += [rs.kdig(srv, "+notcp", "www.example.test", "A", "txt.example.test", "TXT"),
                 rs.kdig(srv, "+notcp", "+bufsize=4096", "+ignore", "big4k.example.test", "TXT"),
                 rs.kdig(srv, "+tcp", "big4k.example.test", "TXT", "www.example.test", "AAAA")]
    problems = []
    for argv in runs:
        p = cli.run(argv, check=False)
        if p.returncode != 0 or "status: NOERROR" not in p.stdout:
            problems.append(f"workload {' '.join(argv)}: exit {p.returncode}\n{p.stdout}{p.stderr}")
    return problems


def view(d):
    wire = d.get("response_message") if d.get("type", "").endswith("RESPONSE") else d.get("query_message")
    return (d.get("type"), d.get("socket_family"), d.get("socket_protocol"), d.get("query_address"),
            d.get("query_port"), d.get("response_address"), d.get("response_port"), wire)


def body(sidetap, workdir):
    problems = []
    with netns.NetNS("tuns") as srv, netns.NetNS("tunc") as cli:
        setup(srv, cli)
        knotd, knot_out = start_knot(srv, workdir)
        t1 = lc.LiveSidetap(sidetap, srv, "sidetap-tunnels", ["st-tb"], os.path.join(workdir, "tunnels.dnstap"),
                            ["--role", "auth", "--stats-interval", "200ms"])
        t2 = lc.LiveSidetap(sidetap, srv, "sidetap-no-tunnels", ["st-tb"],
                            os.path.join(workdir, "no-tunnels.dnstap"), ["--role", "auth", "--no-tunnels"])
        t3 = lc.LiveSidetap(sidetap, srv, "sidetap-ebpf-tunnels", ["st-tb"],
                            os.path.join(workdir, "ebpf-tunnels.dnstap"), ["--ebpf", "tc", "--role", "auth"],
                            channels=["tc:st-tb"])
        t4 = lc.LiveSidetap(sidetap, srv, "sidetap-ebpf-no-tunnels", ["st-tb"],
                            os.path.join(workdir, "ebpf-no-tunnels.dnstap"),
                            ["--ebpf", "socket", "--role", "auth", "--no-tunnels"], channels=["socket:st-tb"])
        filters = [line for line in t1.proc.lines() + t2.proc.lines() if "filter:" in line]
        print("\n".join(filters))
        problems += workload(cli)
        p = servers.stop_checked(knotd)
        if p:
            problems.append(p)
        knot = read_dnstap_file(knot_out)
        got = t1.wait_frames(len(knot))
        got3 = t3.wait_frames(len(knot))
        print(f"knot logged {len(knot)} messages; sidetap encoded {got} (libpcap), {got3} (eBPF tc)")
        for st in (t1, t2, t3, t4):
            if st.stop() != 0:
                problems.append(f"{st.name}: exit code {st.rc}\n{st.proc.text()}")
        side = read_dnstap_file(t1.out)
        none = read_dnstap_file(t2.out)
        counters, _, _ = t1.summary()
        counters2, _, _ = t2.summary()
        ebpf_side = read_dnstap_file(t3.out)
        ebpf_none = read_dnstap_file(t4.out)
        counters3, chans3, _ = t3.summary()
        counters4, chans4, _ = t4.summary()
    if len(knot) < 12:
        problems.append(f"knot logged only {len(knot)} messages")
    want, have = sorted(map(view, knot), key=repr), sorted(map(view, side), key=repr)
    if want != have:
        missing = [v[:7] for v in want if v not in have]
        extra = [v[:7] for v in have if v not in want]
        problems.append(f"sidetap differs from knot: only in knot {missing[:5]}, only in sidetap {extra[:5]}")
    inner = {CLI4, CLI6, SRV4, SRV6}
    outer = [v for v in have if v[3] not in inner or v[5] not in inner]
    if outer:
        problems.append(f"messages with non-inner addresses: {outer[:3]}")
    if not counters.get("decap_vxlan"):
        problems.append(f"no decap_vxlan in the summary: {counters}")
    if not counters.get("defrag_reassembled"):
        problems.append(f"the 4 KB UDP answers were not reassembled from inner fragments: {counters}")
    if none or counters2.get("dns_queries", 0) or counters2.get("decap_vxlan", 0):
        problems.append(f"--no-tunnels still saw DNS: {len(none)} messages, {counters2}")
    have3 = sorted(map(view, ebpf_side), key=repr)
    if want != have3:
        missing = [v[:7] for v in want if v not in have3]
        extra = [v[:7] for v in have3 if v not in want]
        problems.append(f"eBPF tc differs from knot: only in knot {missing[:5]}, only in sidetap {extra[:5]}")
    if not counters3.get("decap_vxlan") or not chans3.get("tc:st-tb", {}).get("tunnels_passed"):
        problems.append(f"eBPF tc: no decap_vxlan or tunnels_passed: {counters3} {chans3}")
    if ebpf_none or counters4.get("dns_queries", 0) or chans4.get("socket:st-tb", {}).get("tunnels_passed"):
        problems.append(f"eBPF --no-tunnels still saw DNS or tunnels: {len(ebpf_none)} messages, {counters4} {chans4}")
    for p in problems:
        print("FAIL:", p, file=sys.stderr)
    if not problems:
        print(f"ok: {len(side)} messages (libpcap) and {len(ebpf_side)} (eBPF tc) equal knot's, inner addresses "
              f"only, decap_vxlan={counters.get('decap_vxlan')}, defrag_reassembled={counters.get('defrag_reassembled')}, "
              f"tunnels_passed={chans3['tc:st-tb'].get('tunnels_passed')}; --no-tunnels (libpcap, eBPF) saw none")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sidetap")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    sidetap = os.path.abspath(args.sidetap or sidetap_arg())
    return netns.run_root_test(TEST, sidetap, ("ip", "knotd", "kdig", "ethtool", "sysctl"), "sidetap-tunnels-",
                               args.keep, lambda workdir: body(sidetap, workdir))


if __name__ == "__main__":
    sys.exit(main())
