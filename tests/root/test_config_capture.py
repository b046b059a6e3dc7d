#!/usr/bin/env python3
"""Root test: `sidetap capture --config FILE` behaves as the equivalent
command line. In a private network namespace, two captures run side by side
on lo, one configured by flags and one by a file (and a third by a
sectioned file run as `sidetap --config FILE`); the same queries and
responses go by; all three write the same dnstap messages and report the
same counters."""
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import netns  # noqa: E402
import sidetap_testlib as tl  # noqa: E402

SIDETAP = tl.sidetap_arg()
QUERY = bytes.fromhex("00000100000100000000000003777777076578616d706c6503636f6d0000010001")
# Queries to 127.0.0.1:5300 and answers from it (a responder answers each).
TRAFFIC = """
import socket, struct, sys, time
srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
srv.bind(("127.0.0.1", 5300))
cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
q = bytes.fromhex(sys.argv[1])
for i in range(int(sys.argv[2])):
    cli.sendto(struct.pack(">H", i) + q[2:], ("127.0.0.1", 5300))
    data, peer = srv.recvfrom(512)
    if i % 3:  # every third query stays unanswered
        srv.sendto(data[:2] + b"\\x81\\x80" + data[4:], peer)
    time.sleep(0.005)
"""


def check(cond, message):
    if not cond:
        print("FAIL:", message, flush=True)
        sys.exit(1)
    print("ok:", message, flush=True)


def counters(text):
    """The summary's counters (name=value pairs of the stats lines), without the output path."""
    values = {}
    for line in text.splitlines():
        if "sidetap:" not in line or "capturing on" in line:
            continue
        line = re.sub(r"output \S+", "output", line)
        for k, v in re.findall(r"(\w+)=(\d+)", line):
            values[(line.split()[2] if len(line.split()) > 2 else "", k)] = int(v)
    return values


def main():
    netns.require_root("test_config_capture")
    netns.exit_on_sigterm()
    with tempfile.TemporaryDirectory() as work, netns.NetNS("cfgcap") as ns:
        out = {name: os.path.join(work, name + ".dnstap") for name in ("cli", "file", "section")}
        common = {"interface": ["lo"], "port": [5300], "role": "auth", "identity": "cfg", "version": "pinned",
                  "query-timeout": "500ms", "max-pending-queries": 100, "buffer-size": "4"}

        def toml(keys, section=None):
            lines = [f"[{section}]"] if section else []
            for k, v in keys.items():
                if isinstance(v, list):
                    v = "[" + ", ".join(f'"{x}"' if isinstance(x, str) else str(x) for x in v) + "]"
                elif isinstance(v, str):
                    v = f'"{v}"'
                lines.append(f"{k} = {v}")
            return "\n".join(lines) + "\n"

        file_cfg = os.path.join(work, "capture.toml")
        with open(file_cfg, "w") as f:
            f.write(toml(dict(common, output=[out["file"]])))
        section_cfg = os.path.join(work, "section.toml")
        with open(section_cfg, "w") as f:
            f.write(toml(dict(common, output=[out["section"]]), section="capture"))
        cli = [SIDETAP, "capture", "-i", "lo", "-p", "5300", "--role", "auth", "--identity", "cfg",
               "--version", "pinned", "--query-timeout", "500ms", "--max-pending-queries", "100", "-B", "4",
               "-w", out["cli"]]
        procs = {"cli": ns.spawn(cli, name="cli"),
                 "file": ns.spawn([SIDETAP, "capture", "--config", file_cfg], name="file"),
                 "section": ns.spawn([SIDETAP, "--config", section_cfg], name="section")}
        try:
            for p in procs.values():
                p.wait_for_line(r"capturing on", 20)
            ns.run(["python3", "-c", TRAFFIC, QUERY.hex(), "60"])
            time.sleep(1.0)  # the unanswered queries time out (500ms) on the idle link
            rcs = {n: p.stop() for n, p in procs.items()}
        finally:
            for p in procs.values():
                p.stop()
        for n, p in procs.items():
            print(p.text())
        check(all(rc == 0 for rc in rcs.values()), f"all three exit 0 ({rcs})")
        recs = {n: tl.read_dnstap_file(path) for n, path in out.items()}
        key = lambda r: (r.get("type"), r.get("query_port"), r.get("query_message") or r.get("response_message"))
        check(len(recs["cli"]) == 60 + 40, f"command line: 60 AUTH_QUERY + 40 AUTH_RESPONSE ({len(recs['cli'])})")
        for n in ("file", "section"):
            check(sorted(map(key, recs[n])) == sorted(map(key, recs["cli"])),
                  f"{n}: the same dnstap messages as the command line")
            check(all(r.get("identity") == b"cfg" and r.get("version") == b"pinned" for r in recs[n]),
                  f"{n}: identity and version from the file")
        c = {n: counters("\n".join(p.lines())) for n, p in procs.items()}
        check(c["cli"].get(("counters:", "unanswered_queries")) == 20 or
              any(k[1] == "unanswered_queries" and v == 20 for k, v in c["cli"].items()),
              "command line: 20 unanswered queries")
        for n in ("file", "section"):
            check(c[n] == c["cli"], f"{n}: the same counters as the command line")
    print("test_config_capture: all checks passed")


if __name__ == "__main__":
    main()
