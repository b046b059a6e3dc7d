#!/usr/bin/env python3
"""Root test: --extra placeholders of live capture (issue 14). A server namespace joined to a
client namespace by two veth pairs (xa0-xb0: 10.77.0.0/24, xa1-xb1: 10.77.1.0/24); the client
sends DNS queries over both links from 16 source addresses each (nobody answers: every query
is emitted, unanswered). Two sidetaps in the server namespace at once:
  - libpcap -i xa0 -i xa1 --threads 2 --extra '{interface}|{shard}|{host}': each message
    names the interface its packet came in on, a shard 0 or 1 (both used; one shard per
    address pair), and the host name;
  - libpcap -i any --extra '{interface}': the interface named by the LINUX_SLL2 header's ifindex;
  - ebpf socket (every interface; skipped in a build without eBPF) --extra '{interface}': the
    interface name from the packet's ifindex.
Options: --keep. Not root -> fails loudly.
"""
import argparse
import os
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

from netns import NetNS, run_root_test  # noqa: E402
from sidetap_testlib import read_dnstap_file  # noqa: E402

TEST = "root.test_extra_live"
LINKS = (("xa0", "xb0", "10.77.0"), ("xa1", "xb1", "10.77.1"))
CLIENTS = range(10, 26)


def setup_links(srv, cli):
    for a, b, net in LINKS:
        srv.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b, "netns", cli.name])
        srv.run(["ip", "addr", "add", f"{net}.1/24", "dev", a])
        for i in CLIENTS:
            cli.run(["ip", "addr", "add", f"{net}.{i}/24", "dev", b])
        for ns, dev in ((srv, a), (cli, b)):
            ns.run(["ip", "link", "set", dev, "up"])
    deadline = time.monotonic() + 10
    for ns, dev in [(srv, a) for a, _, _ in LINKS] + [(cli, b) for _, b, _ in LINKS]:
        while " UP " not in ns.run(["ip", "-br", "link", "show", "dev", dev]).stdout + " ":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{dev} did not come up")
            time.sleep(0.05)


def query(qid, name):
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack("!HH", 1, 1)


def send_queries():
    """In the client namespace: one query per (link, source address)."""
    qid = 0x4000
    for _, _, net in LINKS:
        for i in CLIENTS:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((f"{net}.{i}", 0))
            s.sendto(query(qid, f"q{qid}.example.test"), (f"{net}.1", 53))
            s.close()
            qid += 1
            time.sleep(0.002)


def ebpf_supported(sidetap):
    p = subprocess.run([sidetap, "capture", "--help"], capture_output=True, text=True)
    return "--ebpf" in p.stdout


def body(sidetap, w):
    problems = []
    host = socket.gethostname()
    with NetNS("xsrv") as srv, NetNS("xcli") as cli:
        setup_links(srv, cli)
        out_pcap = os.path.join(w, "pcap.dnstap")
        taps = [("pcap", out_pcap, srv.spawn(
            [sidetap, "capture", "-i", "xa0", "-i", "xa1", "--threads", "2", "--extra",
             "{interface}|{shard}|{host}", "-w", out_pcap], name="sidetap-pcap"))]
        out_any = os.path.join(w, "any.dnstap")
        taps.append(("any", out_any, srv.spawn(
            [sidetap, "capture", "-i", "any", "--extra", "{interface}", "-w", out_any], name="sidetap-any")))
        if ebpf_supported(sidetap):
            out_ebpf = os.path.join(w, "ebpf.dnstap")
            taps.append(("ebpf", out_ebpf, srv.spawn(
                [sidetap, "capture", "--ebpf", "socket", "--extra", "{interface}", "-w", out_ebpf],
                name="sidetap-ebpf")))
        for _, _, proc in taps:
            proc.wait_for_line(r"^sidetap: capturing on", 15)
        time.sleep(1.5)  # past the shards' startup window
        cli.run([sys.executable, os.path.abspath(__file__), "--send"])
        time.sleep(0.5)
        for name, out, proc in taps:
            rc = proc.stop(timeout=30)
            if rc != 0:
                problems.append(f"{name}: sidetap exited {rc}\n{proc.text()[-3000:]}")
                continue
            msgs = [m for m in read_dnstap_file(out) if m.get("type") == "CLIENT_QUERY"]
            if len(msgs) != len(LINKS) * len(CLIENTS):
                problems.append(f"{name}: {len(msgs)} queries, sent {len(LINKS) * len(CLIENTS)}")
            shards, by_pair = set(), {}
            for m in msgs:
                extra = m.get("extra", b"").decode()
                link = [a for a, _, net in LINKS if m["response_address"] == f"{net}.1"]
                fields = extra.split("|")
                if not link or fields[0] != link[0]:
                    problems.append(f"{name}: query to {m['response_address']} has extra {extra!r}")
                    continue
                if name == "pcap":
                    if len(fields) != 3 or fields[1] not in ("0", "1") or fields[2] != host:
                        problems.append(f"pcap: extra {extra!r}: want IFACE|0 or 1|{host}")
                        continue
                    shards.add(fields[1])
                    pair = (m["query_address"], m["response_address"])
                    if by_pair.setdefault(pair, fields[1]) != fields[1]:
                        problems.append(f"pcap: address pair {pair} in two shards")
                elif extra != link[0]:
                    problems.append(f"{name}: extra {extra!r}, want {link[0]}")
            if name == "pcap" and shards != {"0", "1"}:
                problems.append(f"pcap: shards seen {sorted(shards)}, want both 0 and 1")
    for p in problems:
        print(p, file=sys.stderr)
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sidetap")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--send", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.send:
        send_queries()
        return 0
    return run_root_test(TEST, args.sidetap, ["ip"], "sidetap-extra-live-", args.keep,
                         lambda w: body(args.sidetap, w))


if __name__ == "__main__":
    sys.exit(main())
