#!/usr/bin/env python3
"""The Grafana dashboard (packaging/grafana/sidetap.json) queries only what
sidetap serves. Root (capture needs CAP_NET_RAW), in a private network
namespace: scrapes GET /metrics of `capture -i lo` (libpcap), `capture
--ebpf socket` (when built in) and `listen`, and checks that every sidetap_*
series a panel or variable queries exists, and that every label a panel
groups by (`sum by (output)`) is a label of the series it groups. Also checks
that the committed JSON is what packaging/grafana/make_dashboard.py writes."""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "root"))
import netns  # noqa: E402
import sidetap_testlib as tl  # noqa: E402

SIDETAP = tl.sidetap_arg()
GRAFANA = os.path.join(tl.SOURCE_DIR, "packaging", "grafana")
SCRAPE = """
import sys, time, urllib.request
deadline = time.monotonic() + 10
while True:
    try:
        body = urllib.request.urlopen("http://" + sys.argv[1] + "/metrics", timeout=5).read().decode()
        if "sidetap_output_queue_depth" in body:
            print(body)
            break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit("no metrics from " + sys.argv[1])
    time.sleep(0.2)
"""


def check(cond, message):
    if not cond:
        print("FAIL:", message, flush=True)
        sys.exit(1)
    print("ok:", message, flush=True)


def series(text):
    """{metric name: set of label names} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
        if not m or line.startswith("#"):
            continue
        labels = set(re.findall(r"(\w+)=\"", m.group(3) or ""))
        out.setdefault(m.group(1), set()).update(labels)
    return out


def main():
    netns.require_root("test_dashboard")
    netns.exit_on_sigterm()
    with tempfile.TemporaryDirectory() as work:
        regenerated = os.path.join(work, "sidetap.json")
        tl.run(["python3", os.path.join(GRAFANA, "make_dashboard.py"), regenerated])
        with open(regenerated) as a, open(os.path.join(GRAFANA, "sidetap.json")) as b:
            check(a.read() == b.read(), "sidetap.json is make_dashboard.py's output")
        with open(regenerated) as f:
            dashboard = json.load(f)

        exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
        check(len(exprs) > 20, f"{len(exprs)} queries in the dashboard")

        served = {}
        version = tl.run([SIDETAP, "--version"]).stdout
        runs = [("pcap", ["capture", "-i", "lo", "-p", "5300"], 19301),
                ("listen", ["listen", "-u", os.path.join(work, "l.sock")], 19303)]
        if "eBPF" in version:
            runs.append(("ebpf", ["capture", "--ebpf", "socket", "-i", "lo", "-p", "5300"], 19302))
        with netns.NetNS("dash") as ns:
            for name, args, port in runs:
                out = os.path.join(work, name + ".dnstap")
                proc = ns.spawn([SIDETAP, *args, "-w", out, "--metrics", f"127.0.0.1:{port}"], name=name)
                try:
                    proc.wait_for_line(r"metrics on port|listening on", 20)
                    text = ns.run(["python3", "-c", SCRAPE, f"127.0.0.1:{port}"]).stdout
                finally:
                    rc = proc.stop()
                check(rc == 0, f"{name} with --metrics exits 0")
                got = series(text)
                check(len(got) > 5, f"{name}: {len(got)} metrics scraped")
                for k, v in got.items():
                    served.setdefault(k, set()).update(v)

        for expr in exprs:
            names = set(re.findall(r"\b(sidetap_[a-z0-9_]+)", expr))
            check(names and names <= served.keys(),
                  f"served: {sorted(names)} ({sorted(names - served.keys())} missing)")
            for group in re.findall(r"by \(([^)]*)\)", expr):
                for label in (l.strip() for l in group.split(",")):
                    if label == "instance":  # added by Prometheus at scrape time
                        continue
                    check(any(label in served[n] for n in names), f"label {label} of {sorted(names)}")
    print("test_dashboard: all checks passed")


if __name__ == "__main__":
    main()
