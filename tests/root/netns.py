"""Helpers for root-only tests: network namespaces and the processes run in them.

    with NetNS("knot") as ns:                       # ip netns add sidetap-knot-<pid>, lo up, ::1
        srv = ns.spawn(["knotd", "-c", conf])       # ip netns exec ... knotd, stderr captured
        srv.wait_for_line(r"server started", 10)    # no blind sleeps
        ns.run(["kdig", "@127.0.0.1", "example.test"])
        srv.stop()                                  # SIGTERM by PID, wait, SIGKILL only on timeout
    # every process started through ns that is still running is stopped, then the namespace
    # is deleted, even when the body raised

Rules these helpers follow (and tests using them should too): only processes started here
are signalled, always by PID; children get PR_SET_PDEATHSIG so that a test killed by a
ctest timeout does not leave a knotd or tcpdump behind; a namespace left by a killed test
(name ending in the PID of a process that no longer exists) is removed by the next run.
"""
import ctypes
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

NS_PREFIX = "sidetap-"
_PR_SET_PDEATHSIG = 1
# Resolved before any fork: the child between fork and exec must not load libraries.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def require_root(test_name):
    """Fails loudly (exit 1, not a skip) when not running as root."""
    if os.geteuid() != 0:
        bar = "!" * 78
        print(f"{bar}\n{test_name}: FAILED: this test needs root (network namespaces, a DNS "
              f"server on port 53, packet capture).\nRun it as root, e.g. `sudo "
              f"scripts/test.sh -L root`. It is not skipped on purpose: a silent pass would "
              f"hide that it never ran.\n{bar}", file=sys.stderr, flush=True)
        sys.exit(1)


def require_tools(*tools):
    """Fails loudly when a program the test runs is not installed."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        print(f"FAILED: missing programs: {' '.join(missing)} (scripts/install-deps.sh installs "
              f"them)", file=sys.stderr, flush=True)
        sys.exit(1)


def exit_on_sigterm():
    """Turns SIGTERM/SIGHUP into SystemExit so that `finally` and `with` cleanup runs."""
    def handler(signum, _frame):
        raise SystemExit(f"terminated by signal {signum}")
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def _die_with_parent():
    # Runs in the child between fork and exec. ip netns exec execs the target in place,
    # so the daemon itself keeps this setting (it is cleared only on credential changes).
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


class Process:
    """A started process whose stdout and stderr are drained by threads into line lists.

    Draining continuously means a chatty daemon never blocks on a full pipe, and
    wait_for_line() can wait for a readiness message instead of sleeping.
    """

    def __init__(self, argv, name=None, env=None, cwd=None):
        self.argv = list(argv)
        self.name = name or os.path.basename(self.argv[0])
        self._lines = {"stdout": [], "stderr": []}
        self._cond = threading.Condition()
        self._eof = {"stdout": False, "stderr": False}
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, env=env, cwd=cwd,
                                      preexec_fn=_die_with_parent)
        self.pid = self.popen.pid
        self._threads = [threading.Thread(target=self._drain, args=(s,), daemon=True)
                         for s in ("stdout", "stderr")]
        for t in self._threads:
            t.start()

    def _drain(self, stream_name):
        stream = getattr(self.popen, stream_name)
        for raw in iter(stream.readline, b""):
            with self._cond:
                self._lines[stream_name].append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof[stream_name] = True
            self._cond.notify_all()

    def lines(self, stream="stderr"):
        with self._cond:
            return list(self._lines[stream])

    def text(self):
        with self._cond:
            return ("\n".join(f"[{self.name} stdout] {l}" for l in self._lines["stdout"]) + "\n" +
                    "\n".join(f"[{self.name} stderr] {l}" for l in self._lines["stderr"]))

    def wait_for_line(self, pattern, timeout, stream="stderr"):
        """Waits until a line of `stream` matches `pattern` (regex); returns the match.

        Raises RuntimeError with everything the process printed when the process exits or
        the timeout passes first.
        """
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                buf = self._lines[stream]
                for line in buf[seen:]:
                    m = rx.search(line)
                    if m:
                        return m
                seen = len(buf)
                if self._eof[stream]:
                    raise RuntimeError(f"{self.name} (pid {self.pid}) closed {stream} before "
                                       f"printing /{pattern}/; exit code "
                                       f"{self.popen.poll()}\n{self.text()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"{self.name} (pid {self.pid}) did not print /{pattern}/ "
                                       f"within {timeout}s\n{self.text()}")
                self._cond.wait(left)

    def running(self):
        return self.popen.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signals this process (by PID) and waits; SIGKILL if it outlives `timeout`.
        Returns the exit code. Safe to call more than once."""
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"{self.name} (pid {self.pid}) ignored signal {sig} for {timeout}s; "
                      f"sending SIGKILL", file=sys.stderr, flush=True)
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait()
        for t in self._threads:
            t.join(5)
        return self.popen.returncode


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_netns():
    p = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def reap_stale_namespaces(prefix=NS_PREFIX):
    """Deletes namespaces named PREFIX...-<pid> whose creating process no longer exists
    (left behind by a test that was SIGKILLed). Touches nothing else."""
    for name in list_netns():
        m = re.fullmatch(re.escape(prefix) + r"[A-Za-z0-9_.-]*-(\d+)", name)
        if m and not _pid_alive(int(m.group(1))):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
            print(f"removed stale namespace {name}", file=sys.stderr)


class NetNS:
    """A network namespace `sidetap-<tag>-<pid>` with only loopback up (127.0.0.1 and ::1),
    no other interfaces and no routes out."""

    def __init__(self, tag):
        self.name = f"{NS_PREFIX}{tag}-{os.getpid()}"
        self.processes = []
        self._created = False

    def __enter__(self):
        reap_stale_namespaces()
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        self._created = True
        try:
            self._setup_loopback()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _setup_loopback(self):
        # IPv6 may be disabled by default for new namespaces (net.ipv6.conf.default.*);
        # enable it on lo before bringing it up so that ::1 is configured.
        self.run(["sysctl", "-q", "-w", "net.ipv6.conf.lo.disable_ipv6=0"], check=False)
        self.run(["ip", "link", "set", "lo", "up"])
        if "::1/128" not in self.run(["ip", "-6", "addr", "show", "dev", "lo"]).stdout:
            self.run(["ip", "-6", "addr", "add", "::1/128", "dev", "lo"])
        addrs = self.run(["ip", "addr", "show", "dev", "lo"]).stdout
        if "127.0.0.1/8" not in addrs or "::1/128" not in addrs:
            raise RuntimeError(f"loopback in {self.name} lacks 127.0.0.1 or ::1:\n{addrs}")
        # ::1 must be usable at once: loopback addresses skip duplicate address detection,
        # but check that nothing left it 'tentative'.
        if "tentative" in addrs:
            raise RuntimeError(f"::1 is tentative in {self.name}:\n{addrs}")

    def argv(self, argv, cgroup=None):
        """`ip netns exec` argv; with `cgroup` (a cgroup v2 directory) the process first moves
        itself into that cgroup (before entering the namespace, whose private /sys does not
        show the cgroup hierarchy)."""
        inner = ["ip", "netns", "exec", self.name] + list(argv)
        if cgroup is None:
            return inner
        return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup] + inner

    def run(self, argv, check=True, timeout=60, **kw):
        """Runs a command inside the namespace to completion (text output)."""
        p = subprocess.run(self.argv(argv), capture_output=True, text=True, timeout=timeout, **kw)
        if check and p.returncode != 0:
            raise RuntimeError(f"in {self.name}: {' '.join(map(str, argv))} exited "
                               f"{p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
        return p

    def spawn(self, argv, name=None, cgroup=None, **kw):
        """Starts a long-running process inside the namespace (and in `cgroup`, a cgroup v2
        directory, when given); it is stopped on close()."""
        proc = Process(self.argv(argv, cgroup), name=name or os.path.basename(argv[0]), **kw)
        self.processes.append(proc)
        return proc

    def close(self):
        for proc in reversed(self.processes):
            if proc.running():
                proc.stop()
        self.processes.clear()
        if self._created:
            p = subprocess.run(["ip", "netns", "delete", self.name], capture_output=True,
                               text=True)
            if p.returncode != 0:
                print(f"could not delete namespace {self.name}: {p.stderr.strip()}",
                      file=sys.stderr)
            self._created = False


class Host:
    """The test's own network and mount namespace, with the NetNS interface (run, spawn), for
    processes that must see the host: e.g. sidetap attached to a cgroup (the cgroup v2
    hierarchy is not visible under `ip netns exec`, which mounts a private /sys)."""

    name = "host"

    def __init__(self):
        self.processes = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def argv(self, argv, cgroup=None):
        if cgroup is None:
            return list(argv)
        return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup] + list(argv)

    def run(self, argv, check=True, timeout=60, **kw):
        p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, **kw)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, argv))} exited {p.returncode}\n"
                               f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
        return p

    def spawn(self, argv, name=None, cgroup=None, **kw):
        proc = Process(self.argv(argv, cgroup), name=name or os.path.basename(argv[0]), **kw)
        self.processes.append(proc)
        return proc

    def close(self):
        for proc in reversed(self.processes):
            if proc.running():
                proc.stop()
        self.processes.clear()


def cgroup2_mount():
    """Mount point of the cgroup v2 hierarchy (/sys/fs/cgroup, /sys/fs/cgroup/unified...)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            if post.split()[0] == "cgroup2":
                return pre.split()[4]
    raise RuntimeError("no cgroup v2 hierarchy mounted (see /proc/self/mountinfo)")


class Cgroup:
    """A cgroup v2 directory `sidetap-<tag>-<pid>` (with optional children) below the v2
    mount. close() stops nothing: the processes put into it must be gone first (they are
    started through NetNS/Host, which stop them); then the directories are removed. A
    directory left by a killed test is removed by the next run when it is empty."""

    def __init__(self, tag):
        self.root = cgroup2_mount()
        self.path = os.path.join(self.root, f"{NS_PREFIX}{tag}-{os.getpid()}")
        self._made = []

    def __enter__(self):
        for name in os.listdir(self.root):
            m = re.fullmatch(re.escape(NS_PREFIX) + r"[A-Za-z0-9_.-]*-(\d+)", name)
            if m and not _pid_alive(int(m.group(1))):
                self._rmtree(os.path.join(self.root, name))
        os.mkdir(self.path)
        self._made.append(self.path)
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def child(self, name):
        path = os.path.join(self.path, name)
        os.mkdir(path)
        self._made.append(path)
        return path

    def procs(self, path=None):
        with open(os.path.join(path or self.path, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]

    @staticmethod
    def _rmtree(path):
        for entry in os.listdir(path):
            sub = os.path.join(path, entry)
            if os.path.isdir(sub):
                Cgroup._rmtree(sub)
        try:
            os.rmdir(path)
        except OSError as e:
            print(f"could not remove cgroup {path}: {e}", file=sys.stderr)

    def close(self):
        if self._made:
            deadline = time.monotonic() + 5
            # Processes leave a cgroup when they have exited and been reaped.
            while time.monotonic() < deadline and any(self.procs(p) for p in self._made
                                                      if os.path.isdir(p)):
                time.sleep(0.05)
            self._rmtree(self.path)
            self._made = []


class Tcpdump:
    """tcpdump writing a pcap inside a namespace, started only when it really captures.

    -U writes each packet as it arrives; -Z root keeps tcpdump from switching to the
    `tcpdump` user, which could not write into a 0700 temporary directory.
    """

    def __init__(self, ns, path, iface="lo", bpf="port 53", extra=()):
        # --immediate-mode: without it, TPACKET_V3 hands packets over per filled block or
        # after a 1 s timeout, and packets in the last block are lost on SIGTERM.
        self.path = path
        self.proc = ns.spawn(["tcpdump", "-i", iface, "-w", path, "-U", "--immediate-mode",
                              "-n", "-Z", "root", *extra, bpf], name="tcpdump")
        self.proc.wait_for_line(r"listening on", 10)

    def wait_for_packets(self, n, timeout=10.0):
        """Waits until the file holds at least n packets (tcpdump reads the kernel ring
        asynchronously: a packet the client already received may not be written yet, and
        SIGTERM would lose it). Returns the count."""
        deadline = time.monotonic() + timeout
        while True:
            have = count_pcap_packets(self.path)
            if have >= n or time.monotonic() > deadline or not self.proc.running():
                return have
            time.sleep(0.01)

    def stop(self):
        """SIGTERM, wait; returns the number of packets tcpdump says it captured."""
        self.proc.stop()
        captured = None
        dropped = 0
        for line in self.proc.lines():
            m = re.match(r"(\d+) packets? captured", line)
            if m:
                captured = int(m.group(1))
            m = re.match(r"(\d+) packets? dropped by kernel", line)
            if m:
                dropped = int(m.group(1))
        if dropped:
            raise RuntimeError(f"tcpdump: {dropped} packets dropped by kernel\n{self.proc.text()}")
        return captured


def count_pcap_packets(path):
    """Number of packet records in a classic pcap file (a record cut short at the end, as
    in a file still being written, is not counted)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return 0
    endian = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<",
              b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}.get(data[:4])
    if endian is None:
        raise ValueError(f"{path}: not a classic pcap file (magic {data[:4].hex()})")
    pos, n = 24, 0
    while pos + 16 <= len(data):
        incl = struct.unpack_from(endian + "I", data, pos + 8)[0]
        if pos + 16 + incl > len(data):
            break
        pos += 16 + incl
        n += 1
    return n


def run_root_test(test, sidetap, tools, workdir_prefix, keep, body):
    """The common frame of a root test: root and tools checked, the sidetap
    binary present, a work directory that is kept when the test fails (or
    with --keep), and body(workdir) -> list of problems. Returns the exit
    code: 0 when body found no problem."""
    exit_on_sigterm()
    require_root(test)
    require_tools(*tools)
    if not os.access(sidetap, os.X_OK):
        print(f"{test}: FAILED: sidetap binary not found at {sidetap}", file=sys.stderr)
        return 1
    workdir = tempfile.mkdtemp(prefix=workdir_prefix)
    os.chmod(workdir, 0o755)
    ok = False
    t0 = time.monotonic()
    try:
        problems = body(workdir)
        if problems:
            print(f"{test}: FAILED: {len(problems)} problem(s), listed above "
                  f"({time.monotonic() - t0:.1f} s)", file=sys.stderr)
            return 1
        print(f"{test}: OK ({time.monotonic() - t0:.1f} s)")
        ok = True
        return 0
    finally:
        if ok and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work directory kept: {workdir}", file=sys.stderr)
