#!/usr/bin/env python3
"""Root test: outputs on a full disk, and capture's exit code when an output fails.

A 1 MiB tmpfs is mounted in the work directory (unmounted at the end) and filled by
sidetap itself:
  A. replay -w FULL/out.dnstap of a ~5 MB capture;
  B. the same with --rotate-size 300K;
  C. capture -i lo in a namespace (20000 queries sent there), --metrics on, then SIGTERM.
Each time: exit code 1; FAILED in the summary; the path given with -w exists, is not empty
and is a complete Frame Streams file (STOP last) that fstrm_dump and `dnstap -r` read to the
end; every rotated file likewise, none of them empty and no other file on the tmpfs; the
frames in the files are exactly frames_written, and frames_written + dropped equals the
frames encoded (the counters say what was lost).
  D. capture -w FIFO whose reader goes away, then SIGTERM: exit code 1 (a clean stop is 0
     only when no output failed); the FIFO is still a FIFO and nothing was created beside it.
C also reads the metrics page: output_frames_unconfirmed is exposed for every output.

Run as: flock /work/wt/root.lock ctest --test-dir build -L root -R test_output_full_disk
Options: --keep. Not root -> fails loudly.
"""
import argparse
import os
import re
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import netns  # noqa: E402
import sidetap_testlib as tl  # noqa: E402

TEST = "root.test_output_full_disk"
GEN_PCAP = os.path.join(HERE, "..", "..", "bench", "gen_udp_pcap.py")
METRICS_PORT = 9155
SUMMARY = re.compile(r"^sidetap: output (\S+) frames_written=(\d+) bytes=\d+ dropped=(\d+) too_large=(\d+) "
                     r"errors=\d+ reconnects=\d+ open_failures=\d+ unconfirmed=\d+( FAILED)?$", re.M)
SENDER = """
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
q = bytes.fromhex(sys.argv[1])
for i in range(int(sys.argv[2])):
    s.sendto(struct.pack(">H", i & 0xffff) + q[2:], ("127.0.0.1", 53))
"""
QUERY = bytes.fromhex("00000100000100000000000003777777076578616d706c6503636f6d0000010001")


def summary(stderr, dest):
    for m in SUMMARY.finditer(stderr):
        if m.group(1) == dest:
            return {"written": int(m.group(2)), "dropped": int(m.group(3)), "too_large": int(m.group(4)),
                    "failed": m.group(5) is not None}
    return None


def encoded(stderr):
    m = re.search(r"^sidetap: .*\bframes=(\d+)", stderr, re.M)
    return int(m.group(1)) if m else None


def check_files(label, directory, dest, stderr, problems):
    """The checks shared by A, B and C; returns the frames found."""
    files = sorted(os.listdir(directory))
    path = os.path.join(directory, os.path.basename(dest))
    if os.path.basename(dest) not in files:
        problems.append(f"{label}: {dest} does not exist any more ({files})")
        return 0
    frames = 0
    for name in files:
        f = os.path.join(directory, name)
        if not re.fullmatch(re.escape(os.path.basename(dest)) + r"(\.\d{8}T\d{6}(\.\d+)?)?", name):
            problems.append(f"{label}: unexpected file {name} on the tmpfs")
            continue
        size = os.path.getsize(f)
        try:
            ct, fr, stop = tl.read_frames(f)
        except ValueError as e:
            problems.append(f"{label}: {name} ({size} bytes) is not a whole Frame Streams file: {e}")
            continue
        if not stop or not fr:
            problems.append(f"{label}: {name} ({size} bytes): STOP={stop}, {len(fr)} frames "
                            "(every file must end with STOP and hold frames)")
        dump = subprocess.run(["fstrm_dump", f], capture_output=True, text=True)
        if "FSTRM_CONTROL_STOP" not in dump.stdout + dump.stderr:
            problems.append(f"{label}: fstrm_dump does not reach STOP in {name}: {dump.stderr.strip()[-200:]}")
        dec = subprocess.run(["dnstap", "-r", f, "-q"], capture_output=True, text=True)
        if dec.returncode != 0 or len(dec.stdout.splitlines()) != len(fr):
            problems.append(f"{label}: dnstap -r {name}: exit {dec.returncode}, {len(dec.stdout.splitlines())} "
                            f"messages for {len(fr)} frames: {dec.stderr.strip()[-200:]}")
        frames += len(fr)
    s = summary(stderr, dest)
    if s is None:
        problems.append(f"{label}: no summary line for {dest}:\n{stderr[-1500:]}")
        return frames
    if not s["failed"]:
        problems.append(f"{label}: the summary does not say FAILED")
    if s["written"] != frames:
        problems.append(f"{label}: frames_written={s['written']} but the files hold {frames}")
    total = encoded(stderr)
    if total is None or s["written"] + s["dropped"] + s["too_large"] != total:
        problems.append(f"{label}: written {s['written']} + dropped {s['dropped']} != encoded {total}")
    if s["dropped"] == 0:
        problems.append(f"{label}: nothing dropped: the disk never filled?")
    print(f"{label}: {len(files)} file(s), {frames} frames written, {s['dropped']} dropped and counted",
          flush=True)
    return frames


def clear(directory):
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))


def replay_scenarios(sidetap, pcap, full, problems):
    for label, extra in (("A (replay)", []), ("B (replay, --rotate-size 300K)", ["--rotate-size", "300K"])):
        dest = os.path.join(full, "out.dnstap")
        p = subprocess.run([sidetap, "replay", *extra, "-w", dest, pcap], capture_output=True, text=True,
                           timeout=120)
        if p.returncode != 1:
            problems.append(f"{label}: exit code {p.returncode}, expected 1:\n{p.stderr[-1500:]}")
        if "No space left on device" not in p.stderr:
            problems.append(f"{label}: the full disk is not named:\n{p.stderr[-1500:]}")
        check_files(label, full, dest, p.stderr, problems)
        if extra and len(os.listdir(full)) < 2:
            problems.append(f"{label}: no rotation happened before the disk filled")
        clear(full)


def capture_scenarios(sidetap, full, workdir, problems):
    with netns.NetNS("fulldisk") as ns:
        label = "C (capture)"
        dest = os.path.join(full, "live.dnstap")
        proc = ns.spawn([sidetap, "capture", "-i", "lo", "--flush-interval", "100ms", "--reconnect-initial", "50ms",
                         "--metrics", f"127.0.0.1:{METRICS_PORT}", "-w", dest], name="sidetap")
        proc.wait_for_line(r"capturing on lo", timeout=10)
        ns.run(["python3", "-c", SENDER, QUERY.hex(), "20000"])
        try:
            proc.wait_for_line(r"giving up on " + re.escape(dest), timeout=30)
        except RuntimeError as e:
            problems.append(f"{label}: the output did not give up on the full disk: {e}")
        page = ns.run(["curl", "-s", f"http://127.0.0.1:{METRICS_PORT}/metrics"], check=False).stdout
        if not re.search(r'^sidetap_output_frames_unconfirmed_total\{output="' + re.escape(dest) + r'"\} 0$', page, re.M):
            problems.append(f"{label}: no sidetap_output_frames_unconfirmed_total on the metrics page:\n{page[-1500:]}")
        code = proc.stop(signal.SIGTERM, timeout=15)
        stderr = "\n".join(proc.lines())
        if code != 1:
            problems.append(f"{label}: SIGTERM after the output failed exits {code}, expected 1")
        check_files(label, full, dest, stderr, problems)
        clear(full)

        label = "D (capture into a FIFO whose reader goes away)"
        fifo_dir = os.path.join(workdir, "fifo")
        os.mkdir(fifo_dir)
        fifo = os.path.join(fifo_dir, "out.fifo")
        os.mkfifo(fifo)

        def short_reader():
            with open(fifo, "rb", buffering=0) as f:
                f.read(100)

        reader = threading.Thread(target=short_reader, daemon=True)
        reader.start()
        proc = ns.spawn([sidetap, "capture", "-i", "lo", "--flush-interval", "50ms", "-w", fifo], name="sidetap-fifo")
        proc.wait_for_line(r"capturing on lo", timeout=10)
        reader.join(10)
        ns.run(["python3", "-c", SENDER, QUERY.hex(), "500"])
        try:
            proc.wait_for_line(r"failed: write to .*Broken pipe \(its reader went away\)", timeout=10)
        except RuntimeError as e:
            problems.append(f"{label}: the cut pipe was not reported: {e}")
        code = proc.stop(signal.SIGTERM, timeout=15)
        if code != 1:
            problems.append(f"{label}: SIGTERM after the output failed exits {code}, expected 1")
        if not stat.S_ISFIFO(os.lstat(fifo).st_mode) or os.listdir(fifo_dir) != ["out.fifo"]:
            problems.append(f"{label}: the FIFO was replaced or a file appeared beside it: {os.listdir(fifo_dir)}")
        print(f"{label}: exit {code}", flush=True)


def main():
    sidetap = tl.sidetap_arg()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep", action="store_true", help="keep the work directory on success")
    args = ap.parse_args()

    def body(workdir):
        problems = []
        pcap = os.path.join(workdir, "big.pcap")
        tl.run([sys.executable, GEN_PCAP, "-n", "20000", "-o", pcap])
        full = os.path.join(workdir, "full")
        os.mkdir(full)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "sidetap-full", full], check=True)
        try:
            replay_scenarios(sidetap, pcap, full, problems)
            capture_scenarios(sidetap, full, workdir, problems)
        finally:
            subprocess.run(["umount", full], check=False)
        for p in problems:
            print("FAIL:", p, flush=True)
        return problems

    return netns.run_root_test(TEST, sidetap, ("ip", "mount", "umount", "fstrm_dump", "dnstap", "curl"),
                               "sidetap-full-", args.keep, body)


if __name__ == "__main__":
    sys.exit(main())
