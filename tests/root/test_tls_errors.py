#!/usr/bin/env python3
"""The TLS probes' setup errors are clear and exit with the documented code, and leave no
output file behind:

  --tls-pid of a process that does not exist                  -> exit 1, "no such process"
  --tls-pid of a process that maps no TLS library             -> exit 1, "maps no TLS library"
  --tls-pid of a process whose libssl.so* lacks the symbols   -> exit 1, names the missing symbols
  --tls-process '*' without --ebpf cgroup                     -> exit 2
  --tls-process with --user                                   -> exit 2
  --tls-process NAME with no such process yet                 -> runs, says it waits; SIGTERM -> 0

Needs root (uprobes), no network namespace.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netns import Host, run_root_test  # noqa: E402

TEST = "root.test_tls_errors"


def run(sidetap, args, timeout=30):
    return subprocess.run([sidetap, "capture", *args], capture_output=True, text=True, timeout=timeout)


def body(sidetap, w):
    problems = []

    def expect(args, code, text, what):
        out = os.path.join(w, "never.dnstap")
        p = run(sidetap, [*args, "-w", out])
        if p.returncode != code or text not in p.stderr:
            problems.append(f"{what}: exit {p.returncode} (want {code}), stderr:\n{p.stderr}")
        if os.path.exists(out):
            problems.append(f"{what}: left an output file behind")
            os.unlink(out)

    # A PID that is free: one of a process that just ended.
    gone = subprocess.Popen(["true"])
    gone.wait()
    expect(["--tls-pid", str(gone.pid)], 1, f"--tls-pid {gone.pid}: no such process", "process gone")

    with Host() as host:
        sleeper = host.spawn(["sleep", "60"], name="sleep")
        expect(["--tls-pid", str(sleeper.pid)], 1, "maps no TLS library", "no TLS library")

        # A "libssl.so" without OpenSSL's functions (a copy of libz), mapped by a process.
        fake = os.path.join(w, "libssl.so.99")
        libz = next((p for p in ("/usr/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1",
                                 "/usr/lib/aarch64-linux-gnu/libz.so.1") if os.path.exists(p)), None)
        if libz is None:
            problems.append("no libz.so.1 found to build a fake libssl from")
        else:
            shutil.copy(libz, fake)
            holder = host.spawn([sys.executable, "-c",
                                 "import ctypes, sys, time; ctypes.CDLL(sys.argv[1]); print('ready', flush=True); "
                                 "time.sleep(60)", fake], name="holder")
            holder.wait_for_line("ready", 10, stream="stdout")
            expect(["--tls-pid", str(holder.pid)], 1, "SSL_read, SSL_read_ex, SSL_set_fd, SSL_write", "symbols missing")

    expect(["--tls-process", "*"], 2, "only with --ebpf cgroup", "'*' without cgroup")
    expect(["--tls-process", "named", "--user", "nobody"], 2, "not with --user", "--tls-process with --user")

    # Nothing of that name yet: it waits (and says what it follows), and stops cleanly.
    out = os.path.join(w, "waiting.dnstap")
    with Host() as host:
        tap = host.spawn([sidetap, "capture", "--tls-process", "no-such-server-xyz", "-w", out], name="sidetap")
        tap.wait_for_line(r"processes: none yet; following names: no-such-server-xyz", 20)
        time.sleep(1.5)  # one scan of /proc at least
        rc = tap.stop(signal.SIGTERM)
        if rc != 0:
            problems.append(f"waiting --tls-process: exit {rc}\n{tap.text()}")
        if not os.path.exists(out):
            problems.append("waiting --tls-process: no output file (it should hold START and STOP)")
    for p in problems:
        print(p, file=sys.stderr)
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sidetap", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    return run_root_test(TEST, args.sidetap, [], "sidetap-tls-errors-", args.keep,
                         lambda w: body(args.sidetap, w))


if __name__ == "__main__":
    sys.exit(main())
