#!/usr/bin/env python3
"""Root test: `sidetap capture` as a long-running process.

In a private network namespace (loopback only):
  - a missing interface is a clear error, exit 1;
  - without CAP_NET_RAW (run as nobody through setpriv, or as root with
    net_raw removed from the bounding set) the error names CAP_NET_RAW and
    only it; with CAP_NET_RAW as its only capability, capture works;
  - --user nobody: the process runs as nobody once capture and outputs are
    open, with an empty capability bounding set (CapBnd=0), no ambient or
    effective capability and no_new_privs set (NoNewPrivs=1), and still
    captures;
  - SIGHUP while the network is quiet reopens the output (logrotate create
    mode: the renamed file ends with STOP, the new one starts with START),
    and no message is lost across the reopen;
  - SIGTERM drains and exits 0.
Traffic: plain UDP DNS queries to 127.0.0.1:53 inside the namespace (no
server needed: sidetap counts the queries it sees).
"""
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import netns  # noqa: E402
import sidetap_testlib as tl  # noqa: E402

SIDETAP = tl.sidetap_arg()
QUERY = bytes.fromhex("00000100000100000000000003777777076578616d706c6503636f6d0000010001")

SENDER = """
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
q = bytes.fromhex(sys.argv[1])
start, n = int(sys.argv[2]), int(sys.argv[3])
for i in range(start, start + n):
    s.sendto(struct.pack(">H", i) + q[2:], ("127.0.0.1", 53))
"""


def send_queries(ns, start, n):
    ns.run(["python3", "-c", SENDER, QUERY.hex(), str(start), str(n)])


def check(cond, message):
    if not cond:
        print("FAIL:", message)
        sys.exit(1)
    print("ok:", message)


def status_of(pid):
    """/proc/PID/status as {field: value text}."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return fields


def uid_of(pid):
    return int(status_of(pid)["Uid"].split()[0])


def threads_of(pid):
    return [int(t) for t in os.listdir(f"/proc/{pid}/task")]


def main():
    netns.require_root("test_capture_cli")
    netns.exit_on_sigterm()
    with tempfile.TemporaryDirectory() as work, netns.NetNS("capcli") as ns:
        os.chmod(work, 0o777)  # --user nobody must be able to reopen files here

        # 1. A missing interface.
        p = ns.run([SIDETAP, "capture", "-i", "nosuchif0", "-w", os.path.join(work, "x.dnstap")], check=False)
        check(p.returncode == 1, f"missing interface exits 1 (got {p.returncode})")
        check("nosuchif0" in p.stderr and "no such device" in p.stderr, "missing interface is named: " +
              p.stderr.strip().splitlines()[-1])

        # 2. No capability.
        p = ns.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                    SIDETAP, "capture", "-i", "lo", "-w", "-"], check=False)
        check(p.returncode == 1, f"capture without privileges exits 1 (got {p.returncode})")
        check("CAP_NET_RAW" in p.stderr, "the missing capability is named: " + p.stderr.strip().splitlines()[-1])
        check("CAP_NET_ADMIN" not in p.stderr, "and only the one libpcap capture needs (no CAP_NET_ADMIN)")

        # 2b. Root, but net_raw gone from the bounding set (and so from every set).
        p = ns.run(["setpriv", "--inh-caps=-all", "--bounding-set=-net_raw", SIDETAP, "capture", "-i", "lo",
                    "-w", "-"], check=False)
        check(p.returncode == 1 and "CAP_NET_RAW" in p.stderr,
              "root without net_raw in its bounding set: exit 1, CAP_NET_RAW named")

        # 2c. CAP_NET_RAW alone (as nobody, ambient) is enough for libpcap capture,
        # promiscuous mode and a 64 MiB buffer included.
        out_raw = os.path.join(work, "netraw.dnstap")
        proc = ns.spawn(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                         "--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw",
                         SIDETAP, "capture", "-i", "lo", "--promisc", "-B", "64", "-w", out_raw,
                         "--flush-interval", "100ms"], name="sidetap-netraw")
        proc.wait_for_line(r"capturing on lo", timeout=10)
        send_queries(ns, 0, 20)
        time.sleep(0.5)
        code = proc.stop(signal.SIGTERM, timeout=15)
        check(code == 0 and len(tl.read_dnstap_file(out_raw)) == 20,
              f"with CAP_NET_RAW only: exit {code}, 20 queries captured")

        # 3. --user, SIGHUP while idle, SIGTERM.
        out = os.path.join(work, "live.dnstap")
        proc = ns.spawn([SIDETAP, "capture", "-i", "lo", "--user", "nobody", "-w", out, "--flush-interval", "100ms"],
                        name="sidetap")
        proc.wait_for_line(r"capturing on lo", timeout=10)
        deadline = time.time() + 5
        while uid_of(proc.pid) != 65534 and time.time() < deadline:
            time.sleep(0.05)
        check(uid_of(proc.pid) == 65534, "runs as nobody after --user")
        # Every thread (the output and flush threads too), not only the main one.
        for tid in threads_of(proc.pid):
            st = status_of(f"{proc.pid}/task/{tid}")
            check(int(st["CapBnd"], 16) == 0 and int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0
                  and int(st["CapAmb"], 16) == 0 and int(st["CapInh"], 16) == 0,
                  f"thread {tid}: no capability left, bounding set empty (CapBnd={st['CapBnd']})")
            check(st["NoNewPrivs"] == "1", f"thread {tid}: NoNewPrivs=1 after --user")

        send_queries(ns, 0, 300)
        time.sleep(0.5)  # let the capture and the 100 ms flush catch up
        rotated = out + ".rotated"
        os.rename(out, rotated)
        os.kill(proc.pid, signal.SIGHUP)  # no traffic now: the reopen must happen while idle
        deadline = time.time() + 5
        while not os.path.exists(out) and time.time() < deadline:
            time.sleep(0.05)
        check(os.path.exists(out), "SIGHUP while idle reopened the output file")
        send_queries(ns, 300, 200)
        time.sleep(0.5)
        code = proc.stop(signal.SIGTERM, timeout=15)
        check(code == 0, f"SIGTERM exits 0 (got {code})")

        first = tl.read_dnstap_file(rotated)   # require_stop: the renamed file was closed with STOP
        second = tl.read_dnstap_file(out)
        ids = sorted(struct.unpack(">H", r["query_message"][:2])[0] for r in first + second)
        check(len(first) + len(second) == 500, f"500 queries captured across the reopen "
              f"({len(first)} + {len(second)})")
        check(ids == list(range(500)), "every query exactly once, none lost or doubled")
        check(all(r["type"] == "CLIENT_QUERY" for r in first + second), "all CLIENT_QUERY")
    print("PASS test_capture_cli")


if __name__ == "__main__":
    main()
