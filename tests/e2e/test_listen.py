#!/usr/bin/env python3
"""`sidetap listen` with real writers: sidetap's own socket output (replay),
fstrm_replay (libfstrm) and golang-dnstap (`dnstap -U`); the listener's file
is checked with the independent decoder in tests/lib, JSON against
`dnstap -j`, and the relay mode against fstrm_capture. Only loopback and
Unix sockets; every process started here is stopped by its PID."""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402

tl = oracle.tl
SIDETAP = {}
PCAP = oracle.shared_pcap("dnscap-dns.pcap")
CT = b"protobuf:dnstap.Dnstap"


def control(ctype, types=()):
    payload = struct.pack(">I", ctype)
    for t in types:
        payload += struct.pack(">II", 1, len(t)) + t
    return struct.pack(">II", 0, len(payload)) + payload


def data_frame(payload):
    return struct.pack(">I", len(payload)) + payload


def have(tool):
    return any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get("PATH", "").split(":"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Listener:
    """A `sidetap listen` process; stderr goes to a file. Killed (by PID) at
    the end of the test if still running."""

    def __init__(self, test, tmp, *args, stdout=subprocess.DEVNULL):
        self.err_path = os.path.join(tmp, "listen-%d.err" % time.monotonic_ns())
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen([SIDETAP["path"], "listen", *args], stdout=stdout, stderr=self.err)
        test.addCleanup(self.kill)
        deadline = time.monotonic() + 10
        while "listening on" not in self.stderr():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("listener did not start: " + self.stderr())
            time.sleep(0.02)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.err.close()

    def stderr(self):
        with open(self.err_path) as fh:
            return fh.read()

    def tcp_port(self):
        line = [l for l in self.stderr().splitlines() if "listening on" in l][0]
        return int(line.rsplit(":", 1)[1])

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.err.close()
        return rc

    def wait_for(self, text, timeout=10):
        deadline = time.monotonic() + timeout
        while text not in self.stderr():
            if time.monotonic() > deadline:
                raise AssertionError("no %r in listener stderr:\n%s" % (text, self.stderr()))
            time.sleep(0.02)


def closed_by_peer(s, timeout=5):
    """EOF or reset (closing with our bytes unread resets), nothing sent."""
    s.settimeout(timeout)
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True


def summary(stderr):
    for line in stderr.splitlines():
        if line.startswith("sidetap: listen "):
            return {k: int(v) for k, v in (kv.split("=") for kv in line.split()[2:])}
    raise AssertionError("no summary in:\n" + stderr)


class Listen(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmpdir = tempfile.TemporaryDirectory(prefix="sl-", dir="/tmp")
        cls.src = os.path.join(cls.tmpdir.name, "src.fstrm")
        tl.run([SIDETAP["path"], "replay", "-q", "--identity", "e2e", "-w", cls.src, PCAP])
        _, cls.src_frames, _ = tl.read_frames(cls.src)
        assert len(cls.src_frames) > 50

    @classmethod
    def tearDownClass(cls):
        cls.tmpdir.cleanup()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(dir=self.tmpdir.name)
        self.sock = os.path.join(self.tmp, "l.sock")
        self.out = os.path.join(self.tmp, "out.fstrm")

    def frames_of(self, path):
        tl.read_dnstap_file(path)  # content type, STOP, decodable
        return tl.read_frames(path)[1]

    def test_sidetap_replay_as_writer_gives_exactly_its_frames(self):
        lst = Listener(self, self.tmp, "-u", self.sock, "-w", self.out)
        tl.run([SIDETAP["path"], "replay", "-q", "--identity", "e2e", "-w", "unix://" + self.sock, PCAP])
        self.assertEqual(lst.stop(), 0)
        self.assertEqual(self.frames_of(self.out), self.src_frames)
        s = summary(lst.stderr())
        self.assertEqual((s["bidirectional"], s["finished"], s["frames_received"]), (1, 1, len(self.src_frames)))
        self.assertFalse(os.path.exists(self.sock), "socket file removed at exit")

    def test_fstrm_replay_as_writer(self):
        tl.require_tool("fstrm_replay")
        lst = Listener(self, self.tmp, "-u", self.sock, "-w", self.out)
        tl.run(["fstrm_replay", "-t", CT.decode(), "-u", self.sock, "-r", self.src])
        self.assertEqual(lst.stop(), 0)
        self.assertEqual(self.frames_of(self.out), self.src_frames)

    def test_golang_dnstap_as_writer(self):
        tl.require_tool("dnstap")
        lst = Listener(self, self.tmp, "-u", self.sock, "-w", self.out)
        tl.run(["dnstap", "-r", self.src, "-U", self.sock])
        # dnstap -U returns after STOP/FINISH: every frame is queued by then.
        self.assertEqual(lst.stop(), 0)
        self.assertEqual(self.frames_of(self.out), self.src_frames)
        self.assertEqual(summary(lst.stderr())["finished"], 1)

    def test_json_output_matches_golang_dnstap(self):
        tl.require_tool("dnstap")
        out_json = os.path.join(self.tmp, "out.json")
        lst = Listener(self, self.tmp, "-u", self.sock, "--format", "json", "-w", out_json)
        tl.run(["fstrm_replay", "-t", CT.decode(), "-u", self.sock, "-r", self.src] if have("fstrm_replay")
               else [SIDETAP["path"], "replay", "-q", "--identity", "e2e", "-w", "unix://" + self.sock, PCAP])
        self.assertEqual(lst.stop(), 0)
        with open(out_json) as fh:
            ours = [json.loads(l) for l in fh if l.strip()]
        theirs = [json.loads(l) for l in tl.run(["dnstap", "-r", self.src, "-j"]).stdout.splitlines() if l.strip()]
        self.assertEqual(len(ours), len(theirs))
        for a, b in zip(ours, theirs):
            for m in (a.get("message", {}), b.get("message", {})):
                m.pop("query_message", None)
                m.pop("response_message", None)
            self.assertEqual(a, b)

    def test_sigterm_mid_stream_flushes_and_writes_stop(self):
        lst = Listener(self, self.tmp, "-u", self.sock, "-w", self.out, "-v")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.sock)
        s.sendall(control(4, [CT]))
        accept = s.recv(4096)
        self.assertEqual(accept, control(1, [CT]))
        s.sendall(control(2, [CT]) + b"".join(data_frame(f) for f in self.src_frames))
        lst.wait_for("session started")
        time.sleep(0.5)  # the frames are on the listener's side of the socket
        self.assertEqual(lst.stop(signal.SIGTERM), 0)
        s.close()
        self.assertEqual(self.frames_of(self.out), self.src_frames)  # ends with STOP
        self.assertEqual(summary(lst.stderr())["closed_at_shutdown"], 1)

    def test_tcp_listener_on_ephemeral_port(self):
        lst = Listener(self, self.tmp, "-l", "127.0.0.1:0", "-w", self.out)
        port = lst.tcp_port()
        self.assertNotEqual(port, 0)
        tl.run([SIDETAP["path"], "replay", "-q", "--identity", "e2e", "-w", "tcp://127.0.0.1:%d" % port, PCAP])
        self.assertEqual(lst.stop(), 0)
        self.assertEqual(self.frames_of(self.out), self.src_frames)

    def test_tls_listener_when_a_certificate_is_given(self):
        tl.require_tool("openssl")
        cert, key = os.path.join(self.tmp, "cert.pem"), os.path.join(self.tmp, "key.pem")
        tl.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                "-keyout", key, "-out", cert])
        lst = Listener(self, self.tmp, "-l", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, "-w", self.out)
        self.assertIn("listening on tls://127.0.0.1:", lst.stderr())
        port = lst.tcp_port()
        tl.run([SIDETAP["path"], "replay", "-q", "--identity", "e2e", "-w",
                "tls://127.0.0.1:%d?tls-ca=%s" % (port, cert), PCAP])
        self.assertEqual(lst.stop(), 0)
        self.assertEqual(self.frames_of(self.out), self.src_frames)

    def test_relay_into_fstrm_capture(self):
        tl.require_tool("fstrm_capture")
        port = free_port()
        captured = os.path.join(self.tmp, "captured.fstrm")
        cap_err = open(os.path.join(self.tmp, "capture.err"), "w")
        cap = subprocess.Popen(["fstrm_capture", "-t", CT.decode(), "-a", "127.0.0.1", "-p", str(port), "-w", captured],
                               stdout=cap_err, stderr=cap_err)
        try:
            time.sleep(0.5)
            lst = Listener(self, self.tmp, "-u", self.sock, "-w", "tcp://127.0.0.1:%d" % port)
            tl.run([SIDETAP["path"], "replay", "-q", "--identity", "e2e", "-w", "unix://" + self.sock, PCAP])
            self.assertEqual(lst.stop(), 0)  # STOP, FINISH from fstrm_capture
            self.assertIn("frames_written=%d" % len(self.src_frames), lst.stderr())
        finally:
            cap.send_signal(signal.SIGTERM)
            try:
                cap.wait(10)
            except subprocess.TimeoutExpired:
                cap.kill()
                cap.wait()
            cap_err.close()
        self.assertEqual(tl.read_frames(captured)[1], self.src_frames)

    def test_wrong_content_type_and_garbage_are_refused_and_counted(self):
        lst = Listener(self, self.tmp, "-u", self.sock, "-w", self.out)
        for payload in (control(4, [b"protobuf:other.Thing"]), b"GET / HTTP/1.0\r\n\r\n"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.sock)
            s.sendall(payload)
            self.assertTrue(closed_by_peer(s), "closed without ACCEPT")
            s.close()
        tl.run([SIDETAP["path"], "replay", "-q", "--identity", "e2e", "-w", "unix://" + self.sock, PCAP])
        self.assertEqual(lst.stop(), 0)
        err = lst.stderr()
        self.assertIn('READY offers "protobuf:other.Thing"', err)
        s = summary(err)
        self.assertEqual((s["wrong_content_type"], s["handshake_failed"], s["finished"]), (1, 1, 1))
        self.assertEqual(self.frames_of(self.out), self.src_frames)

    def test_frame_over_max_frame_size_closes_the_connection(self):
        lst = Listener(self, self.tmp, "-u", self.sock, "-w", self.out, "--max-frame-size", "1K")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.sock)
        s.sendall(control(4, [CT]))
        s.recv(4096)
        s.sendall(control(2, [CT]) + data_frame(self.src_frames[0]) + data_frame(b"\x0a" * 5000))
        self.assertTrue(closed_by_peer(s))
        s.close()
        self.assertEqual(lst.stop(), 0)
        self.assertIn("frame of 5000 bytes exceeds the 1 KiB limit (--max-frame-size)", lst.stderr())
        self.assertEqual(summary(lst.stderr())["too_large"], 1)
        self.assertEqual(self.frames_of(self.out), self.src_frames[:1])

    def test_slow_stdout_reader_gets_everything_with_bounded_memory(self):
        # 100 copies of the capture; nobody reads stdout for a while.
        big = os.path.join(self.tmp, "big.fstrm")
        tl.run([SIDETAP["path"], "replay", "-q", "--identity", "e2e", "-w", big] + [PCAP] * 100)
        n = len(tl.read_frames(big)[1])
        lst = Listener(self, self.tmp, "-u", self.sock, "--format", "text", "--receive-queue", "100",
                       stdout=subprocess.PIPE)
        writer = subprocess.Popen(["fstrm_replay", "-t", CT.decode(), "-u", self.sock, "-r", big]
                                  if have("fstrm_replay") else
                                  [SIDETAP["path"], "replay", "-q", "-w", "unix://" + self.sock] + [PCAP] * 100,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        with open("/proc/%d/status" % lst.proc.pid) as fh:
            rss_kib = int([l for l in fh if l.startswith("VmRSS:")][0].split()[1])
        self.assertLess(rss_kib, 100 * 1024, "listener memory while stdout is not read")
        lines = 0
        # Now read: everything arrives (backpressure, no drops).
        deadline = time.monotonic() + 60
        while lines < n and time.monotonic() < deadline:
            line = lst.proc.stdout.readline()
            if not line:
                break
            lines += 1
        writer.wait(30)
        rc = lst.stop()
        lst.proc.stdout.close()
        self.assertEqual(rc, 0)
        self.assertEqual(lines, n)
        self.assertGreater(summary(lst.stderr())["queue_waits"], 0)

    def test_usage_errors(self):
        p = tl.run([SIDETAP["path"], "listen", "-w", self.out], check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        p = tl.run([SIDETAP["path"], "listen", "-l", "127.0.0.1", "-w", self.out], check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("missing :PORT", p.stderr)
        p = tl.run([SIDETAP["path"], "listen", "-l", "tls://127.0.0.1:0", "-w", self.out], check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--tls-cert", p.stderr)


if __name__ == "__main__":
    oracle.main(SIDETAP)
