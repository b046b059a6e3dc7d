#!/usr/bin/env python3
"""Helpers for the output e2e tests (test_output_*.py), plus self-tests of the
helpers themselves (so a broken helper shows up as a failure here, not as a
puzzling failure in a fault test).

- Procs: background processes started by a test, stopped by PID at teardown.
- pcap helpers: split a classic pcap into header + records, write pcaps,
  a SlowSource that streams a pcap into a FIFO with pause()/resume() so a
  replay lasts as long as a test needs.
- FstrmServer: a Python Frame Streams collector on a Unix socket that does
  the READY/ACCEPT/START handshake itself; it can answer with a wrong content
  type, never read after START, or read and answer STOP with FINISH.
- make_certs(): a CA, a server certificate for 127.0.0.1/localhost and an
  unrelated CA, made with the openssl CLI.
- output_summaries(): the `sidetap: output DEST frames_written=N ...` lines.
"""
import os
import re
import shutil
import signal
import socket
import struct
import tempfile
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import sidetap_testlib as tl  # noqa: E402

SOURCE_DIR = tl.SOURCE_DIR
GEN_PCAP = os.path.join(SOURCE_DIR, "bench", "gen_udp_pcap.py")
CT = b"protobuf:dnstap.Dnstap"
FSTRM_CAPTURE = shutil.which("fstrm_capture")
DNSTAP = shutil.which("dnstap")
SOCAT = shutil.which("socat")
OPENSSL = shutil.which("openssl")


# ---------------------------------------------------------------- processes

class Procs:
    """Processes a test started; stop_all() ends the ones still running, by PID."""

    def __init__(self):
        self.procs = []

    def start(self, cmd, stdout=subprocess.DEVNULL, stderr=None, **kw):
        if stderr is None:
            stderr = subprocess.PIPE
        p = subprocess.Popen([str(c) for c in cmd], stdout=stdout, stderr=stderr, **kw)
        self.procs.append(p)
        return p

    @staticmethod
    def stop(p, sig=signal.SIGTERM, timeout=10):
        """Sends sig to p (by PID) and waits; returns (returncode, stderr text)."""
        if p.poll() is None:
            os.kill(p.pid, sig)
        try:
            _, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            _, err = p.communicate()
        if isinstance(err, bytes):
            err = err.decode(errors="replace")
        return p.returncode, err or ""

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                p.communicate(timeout=5)
            except Exception:
                pass


class OutputTestCase(unittest.TestCase):
    """Shared frame of the output e2e tests: a class-wide temporary directory
    (prepare(d) makes the class's inputs there), one per test (self.d) and
    the test's processes (self.procs), stopped after each test."""

    @classmethod
    def setUpClass(cls):
        cls.ctmp = tempfile.TemporaryDirectory(prefix="oute2e-")
        cls.prepare(cls.ctmp.name)

    @classmethod
    def prepare(cls, d):
        pass

    @classmethod
    def tearDownClass(cls):
        cls.ctmp.cleanup()

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="oute2e-", dir=self.ctmp.name)
        self.d = self.tmp.name
        self.procs = Procs()

    def tearDown(self):
        self.procs.stop_all()
        self.tmp.cleanup()


def wait_for(cond, timeout, interval=0.01, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))


def wait_unix_listening(path, timeout=5):
    """Waits until something listens on path, without connecting (ss), so receivers see no probe."""
    def ok():
        out = subprocess.run(["ss", "-Hlxn"], capture_output=True, text=True).stdout
        return any(len(l.split()) >= 5 and l.split()[4] == path for l in out.splitlines())
    wait_for(ok, timeout, 0.02, "Unix socket %s" % path)


def wait_tcp_listening(port, host="127.0.0.1", timeout=5):
    """Waits until something listens, without connecting (ss), so receivers see no probe."""
    def ok():
        out = subprocess.run(["ss", "-Hltn", "sport = :%d" % port], capture_output=True, text=True).stdout
        return str(port) in out
    wait_for(ok, timeout, 0.02, "TCP listener on port %d" % port)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def unix_recv_queue_empty(path):
    """True when no connected socket bound to path has unread bytes (ss -x Recv-Q)."""
    out = subprocess.run(["ss", "-Hxn"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        cols = line.split()
        # Netid State Recv-Q Send-Q Local Port Peer Port
        if len(cols) >= 6 and cols[4] == path and cols[1] == "ESTAB" and cols[2] != "0":
            return False
    return True


# ---------------------------------------------------------------- sidetap output

SUMMARY_RE = re.compile(r"^sidetap: output (\S+) frames_written=(\d+) bytes=(\d+) dropped=(\d+) "
                        r"too_large=(\d+) errors=(\d+) reconnects=(\d+) open_failures=(\d+) "
                        r"unconfirmed=(\d+)( FAILED)?\s*$", re.M)


def output_summaries(stderr):
    """{dest: {frames_written, bytes, dropped, too_large, errors, reconnects, open_failures, unconfirmed,
    failed}}"""
    out = {}
    for m in SUMMARY_RE.finditer(stderr):
        keys = ("frames_written", "bytes", "dropped", "too_large", "errors", "reconnects", "open_failures",
                "unconfirmed")
        out[m.group(1)] = dict(zip(keys, map(int, m.groups()[1:9])))
        out[m.group(1)]["failed"] = m.group(10) is not None
    return out


def frames_encoded(stderr):
    """frames= of the pipeline stats line: what sidetap encoded (before type filters)."""
    m = re.search(r"^sidetap: .*\bframes=(\d+)", stderr, re.M)
    if not m:
        raise AssertionError("no frames= in stderr:\n" + stderr[-2000:])
    return int(m.group(1))


def reference_frames(sidetap, pcap, tmp, *args):
    """The data frames of `sidetap replay -w FILE` of the same input: what every output must carry."""
    path = os.path.join(tmp, "reference-%d.fstrm" % len(os.listdir(tmp)))
    tl.run([sidetap, "replay", "-q", *args, "-w", path, pcap])
    ct, frames, stop = tl.read_frames(path)
    assert ct == CT and stop, (ct, stop)
    return frames


def read_frames_lenient(path):
    """Like tl.read_frames, but stops at a truncated tail instead of raising:
    (content_type, [frames], saw_stop, bytes_of_truncated_tail)."""
    with open(path, "rb") as f:
        data = f.read()
    pos, frames, ct, stop = 0, [], None, False
    while pos + 4 <= len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        if n == 0:
            if pos + 8 > len(data):
                break
            (clen,) = struct.unpack_from(">I", data, pos + 4)
            if pos + 8 + clen > len(data):
                break
            ctrl = data[pos + 8:pos + 8 + clen]
            if struct.unpack_from(">I", ctrl)[0] == 2 and len(ctrl) >= 12:
                ct = ctrl[12:12 + struct.unpack_from(">I", ctrl, 8)[0]]
            elif struct.unpack_from(">I", ctrl)[0] == 3:
                stop = True
            pos += 8 + clen
            continue
        if pos + 4 + n > len(data):
            break
        frames.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return ct, frames, stop, len(data) - pos


def dnstap_type(frame):
    return tl.decode_dnstap(frame)["type"]


def is_subsequence(small, big):
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


def rotated_files(path):
    """path's rotated siblings (<path>.<YYYYmmddTHHMMSS>[.<n>]) in rotation order, then path."""
    d, base = os.path.split(path)
    pat = re.compile(re.escape(base) + r"\.(\d{8}T\d{6})(?:\.(\d+))?$")
    found = []
    for name in os.listdir(d or "."):
        m = pat.match(name)
        if m:
            found.append(((m.group(1), int(m.group(2) or 0)), os.path.join(d, name)))
    files = [p for _, p in sorted(found)]
    if os.path.exists(path):
        files.append(path)
    return files


# ---------------------------------------------------------------- pcaps

PCAP_GLOBAL = struct.Struct("<IHHiIII")
PCAP_REC = struct.Struct("<IIII")


def generate_pcap(path, pairs, *extra):
    tl.run([sys.executable, GEN_PCAP, "-n", str(pairs), "-o", path, *extra])
    return path


def split_pcap(path):
    """(global header bytes, [record bytes]) of a classic pcap."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack_from("<I", data, 0)[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        rec = PCAP_REC
    elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
        rec = struct.Struct(">IIII")
    else:
        raise ValueError("not a classic pcap: %s" % path)
    header = data[:24]
    records = []
    pos = 24
    while pos < len(data):
        _, _, caplen, _ = rec.unpack_from(data, pos)
        records.append(data[pos:pos + 16 + caplen])
        pos += 16 + caplen
    return header, records


def write_pcap(path, header, records):
    with open(path, "wb") as f:
        f.write(header)
        for r in records:
            f.write(r)


class SlowSource:
    """Streams a pcap into a FIFO at `rate` packets/s from a thread.

    pause()/resume() stop and restart the flow (sidetap then sits in read());
    finish() sends the rest at once and closes the FIFO (EOF: the replay ends).
    `sent` is the number of records written so far.
    """

    def __init__(self, fifo, pcap, rate=2000, chunk=20):
        self.fifo = fifo
        self.header, self.records = split_pcap(pcap)
        self.rate = rate
        self.chunk = chunk
        self.sent = 0
        self._go = threading.Event()
        self._go.set()
        self._rush = threading.Event()
        self._done = threading.Event()
        if not os.path.exists(fifo):
            os.mkfifo(fifo, 0o600)
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        try:
            with open(self.fifo, "wb", buffering=0) as f:
                f.write(self.header)
                period = self.chunk / float(self.rate)
                next_t = time.monotonic()
                while self.sent < len(self.records):
                    if not self._rush.is_set():
                        self._go.wait()
                    if self._rush.is_set():
                        f.write(b"".join(self.records[self.sent:]))
                        self.sent = len(self.records)
                        break
                    part = self.records[self.sent:self.sent + self.chunk]
                    f.write(b"".join(part))
                    self.sent += len(part)
                    next_t = max(next_t + period, time.monotonic() - period)
                    delay = next_t - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
        except BrokenPipeError as e:
            self.error = e
        finally:
            self._done.set()

    def pause(self):
        self._go.clear()

    def resume(self):
        self._go.set()

    def finish(self, timeout=30):
        self._rush.set()
        self._go.set()
        self._done.wait(timeout)

    def stop(self):
        """Ends the stream now (EOF after what was sent)."""
        self.records = self.records[:self.sent]
        self._go.set()
        self._done.wait(5)


# ---------------------------------------------------------------- Frame Streams server

def control(ctype, content_types=()):
    payload = struct.pack(">I", ctype)
    for c in content_types:
        payload += struct.pack(">II", 1, len(c)) + c
    return struct.pack(">II", 0, len(payload)) + payload


READY, ACCEPT, START, STOP, FINISH = 4, 1, 2, 3, 5


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def recv_control(conn):
    escape, length = struct.unpack(">II", recv_exact(conn, 8))
    if escape != 0:
        raise ValueError("expected a control frame, got a data frame of %d bytes" % escape)
    payload = recv_exact(conn, length)
    ctype = struct.unpack_from(">I", payload)[0]
    cts, pos = [], 4
    while pos < len(payload):
        ftype, flen = struct.unpack_from(">II", payload, pos)
        cts.append(payload[pos + 8:pos + 8 + flen])
        pos += 8 + flen
    return ctype, cts


class FstrmServer:
    """A Unix-socket Frame Streams collector in a thread.

    mode: "read"       handshake, read data frames until STOP, answer FINISH;
          "never-read" handshake (READY -> ACCEPT, START), then never read again;
          "wrong-ct"   answer READY with ACCEPT for another content type, close.
    Counts connections (`connections`), READYs seen, data frames read.
    """

    def __init__(self, path, mode="read", accept_ct=CT):
        self.path = path
        self.mode = mode
        self.accept_ct = accept_ct
        self.connections = 0
        self.readies = []
        self.frames = []
        self.stops = 0
        self.errors = []
        self.held = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(path):
            os.unlink(path)
        self.sock.bind(path)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            try:
                self._handle(conn)
            except Exception as e:  # recorded, the test decides
                self.errors.append(repr(e))
                conn.close()

    def _handle(self, conn):
        conn.settimeout(10)
        ctype, cts = recv_control(conn)
        self.readies.append((ctype, cts))
        if ctype != READY:
            conn.close()
            return
        conn.sendall(control(ACCEPT, [self.accept_ct]))
        if self.mode == "wrong-ct":
            # Leave the close to the writer (it must refuse the ACCEPT); close
            # after a moment in case it does not.
            conn.settimeout(2)
            try:
                conn.recv(4096)
            except OSError:
                pass
            conn.close()
            return
        ctype, cts = recv_control(conn)
        if ctype != START:
            raise ValueError("expected START, got control type %d" % ctype)
        if self.mode == "never-read":
            self.held.append(conn)   # keep it open, unread, until close()
            return
        while True:
            (n,) = struct.unpack(">I", recv_exact(conn, 4))
            if n == 0:
                (clen,) = struct.unpack(">I", recv_exact(conn, 4))
                ctype = struct.unpack(">I", recv_exact(conn, clen)[:4])[0]
                if ctype == STOP:
                    self.stops += 1
                    conn.sendall(control(FINISH))
                    conn.close()
                    return
                continue
            self.frames.append(recv_exact(conn, n))

    def close(self):
        self._stop.set()
        self.sock.close()
        for c in self.held:
            c.close()
        self.thread.join(5)
        if os.path.exists(self.path):
            os.unlink(self.path)


# ---------------------------------------------------------------- TLS material

def make_certs(d):
    """CA, server cert (SAN IP:127.0.0.1, IP:::1, DNS:localhost) signed by it, and an unrelated CA."""
    def ossl(*args):
        tl.run([OPENSSL, *args], cwd=d)

    for ca in ("ca", "otherca"):
        ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", ca + ".key", "-out", ca + ".pem", "-days", "2", "-subj", "/CN=sidetap test " + ca)
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n"
                "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    return {k: os.path.join(d, v) for k, v in
            (("ca", "ca.pem"), ("other_ca", "otherca.pem"), ("cert", "server.pem"), ("key", "server.key"))}


# ---------------------------------------------------------------- self-tests

SIDETAP = {}


class Helpers(unittest.TestCase):
    def setUp(self):
        import tempfile
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_split_and_write_pcap_round_trip(self):
        pcap = generate_pcap(os.path.join(self.d, "g.pcap"), 50)
        header, records = split_pcap(pcap)
        self.assertEqual(len(records), 100)
        copy = os.path.join(self.d, "copy.pcap")
        write_pcap(copy, header, records)
        with open(pcap, "rb") as a, open(copy, "rb") as b:
            self.assertEqual(a.read(), b.read())

    def test_slow_source_paces_a_replay_and_pause_holds_it(self):
        pcap = generate_pcap(os.path.join(self.d, "g.pcap"), 200)
        fifo = os.path.join(self.d, "src.fifo")
        src = SlowSource(fifo, pcap, rate=1000).start()
        out = os.path.join(self.d, "out.fstrm")
        t0 = time.monotonic()
        p = subprocess.Popen([SIDETAP["path"], "replay", "-w", out, fifo],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.1)
        src.pause()
        sent = src.sent
        time.sleep(0.3)
        self.assertEqual(src.sent, sent, "pause() did not hold the source")
        self.assertIsNone(p.poll())
        src.resume()
        _, err = p.communicate(timeout=20)
        elapsed = time.monotonic() - t0
        self.assertEqual(p.returncode, 0, err)
        self.assertGreater(elapsed, 0.5, "400 packets at 1000/s (~0.38 s) plus a 0.3 s pause")
        self.assertEqual(len(tl.read_dnstap_file(out)), 400)

    def test_python_collector_reads_what_sidetap_sends(self):
        pcap = generate_pcap(os.path.join(self.d, "g.pcap"), 100)
        sock = os.path.join(self.d, "c.sock")
        srv = FstrmServer(sock, "read")
        try:
            p = tl.run([SIDETAP["path"], "replay", "-w", "unix://" + sock, pcap])
            s = output_summaries(p.stderr)["unix://" + sock]
        finally:
            srv.close()
        self.assertEqual(srv.readies, [(READY, [CT])])
        self.assertEqual(srv.stops, 1)
        self.assertEqual(srv.frames, reference_frames(SIDETAP["path"], pcap, self.d))
        self.assertEqual(s["frames_written"], 200)

    def test_rotated_files_sorts_numeric_suffixes(self):
        base = os.path.join(self.d, "o.fstrm")
        for name in ("o.fstrm", "o.fstrm.20261122T010203.10", "o.fstrm.20261122T010203",
                     "o.fstrm.20261122T010203.2", "o.fstrm.20261122T010159", "other"):
            open(os.path.join(self.d, name), "w").close()
        self.assertEqual([os.path.basename(p) for p in rotated_files(base)],
                         ["o.fstrm.20261122T010159", "o.fstrm.20261122T010203", "o.fstrm.20261122T010203.2",
                          "o.fstrm.20261122T010203.10", "o.fstrm"])


if __name__ == "__main__":
    SIDETAP["path"] = tl.sidetap_arg()
    unittest.main()
