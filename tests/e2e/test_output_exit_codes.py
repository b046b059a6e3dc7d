#!/usr/bin/env python3
"""Exit codes and summaries that tell the truth about outputs.

  - Exit code 1 whenever an output failed or gave up, for every subcommand
    (replay, read, listen here; capture in tests/root/test_output_full_disk.py),
    also after SIGINT/SIGTERM: a clean stop is 0 only if no output failed.
  - `| head -c 100`: EPIPE on stdout is an output failure (exit 1), and the
    run stops early instead of encoding the rest for nobody.
  - A collector that dies mid-stream (SIGKILL) loses what it had accepted
    into its socket buffer but not read. Frame Streams has no
    acknowledgements, so sidetap cannot know which frames those were; it
    reports them as `unconfirmed` (an upper bound): on a Unix socket, the
    frames written since the collector was last seen caught up; on TCP,
    every frame of the connection.
"""
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_output_support as sup  # noqa: E402

tl = sup.tl
SIDETAP = {}
ID = ["--identity", "exit-test"]

# A Frame Streams collector as its own process (so that it can be SIGKILLed):
# bidirectional handshake, then every data frame is appended to OUT with one
# unbuffered write as soon as it is read, so a SIGKILL loses nothing it read.
# SIGSTOP makes it stop reading. Prints "listening" when ready.
COLLECTOR = r"""
import os, socket, struct, sys
where, out = sys.argv[1], sys.argv[2]
if where.startswith("unix:"):
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(where[5:])
else:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", int(where[4:])))
srv.listen(1)
print("listening", flush=True)
conn, _ = srv.accept()
def exact(n):
    b = b""
    while len(b) < n:
        c = conn.recv(n - len(b))
        if not c:
            sys.exit(0)
        b += c
    return b
def control():
    assert struct.unpack(">I", exact(4))[0] == 0
    return exact(struct.unpack(">I", exact(4))[0])
control()                                              # READY
ct = b"protobuf:dnstap.Dnstap"
payload = struct.pack(">III", 1, 1, len(ct)) + ct      # ACCEPT
conn.sendall(struct.pack(">II", 0, len(payload)) + payload)
control()                                              # START
fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
while True:
    n = struct.unpack(">I", exact(4))[0]
    if n == 0:
        break
    os.write(fd, struct.pack(">I", n) + exact(n))
"""


def frames_in(path):
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        data = f.read()
    n, pos = 0, 0
    while pos + 4 <= len(data):
        pos += 4 + struct.unpack_from(">I", data, pos)[0]
        n += 1
    return n


class ExitCodes(sup.OutputTestCase):
    @classmethod
    def prepare(cls, d):
        cls.pcap = sup.generate_pcap(os.path.join(d, "mixed.pcap"), 3000, "--tcp-share", "0.1")
        cls.big = sup.generate_pcap(os.path.join(d, "big.pcap"), 100000)
        cls.ref = sup.reference_frames(SIDETAP["path"], cls.pcap, d, *ID)
        cls.ref_file = os.path.join(d, "ref.fstrm")
        tl.run([SIDETAP["path"], "replay", "-q", *ID, "-w", cls.ref_file, cls.pcap])

    def into_head(self, *args):
        """sidetap ARGS | head -c 100: (sidetap's exit code, its stderr)."""
        p = subprocess.Popen([SIDETAP["path"], *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        head = subprocess.Popen(["head", "-c", "100"], stdin=p.stdout, stdout=subprocess.DEVNULL)
        p.stdout.close()
        err = p.stderr.read().decode(errors="replace")
        p.stderr.close()
        p.wait(timeout=120)
        head.wait(timeout=10)
        return p.returncode, err

    # --------------------------------------------------------------- | head

    def test_replay_into_head_exits_1_and_stops_early(self):
        rc, err = self.into_head("replay", *ID, "-w", "-", self.big)
        self.assertEqual(rc, 1, err)
        self.assertIn("failed: write to - failed: Broken pipe (its reader went away)", err)
        self.assertTrue(sup.output_summaries(err)["-"]["failed"], err)
        packets = int(err.split("sidetap: packets=")[1].split()[0])
        self.assertLess(packets, 200000, "the replay went on encoding for nobody")

    def test_read_text_into_head_exits_1(self):
        rc, err = self.into_head("read", self.ref_file)
        self.assertEqual(rc, 1, err)
        self.assertIn("sidetap: text output failed: Broken pipe", err)

    def test_read_dnstap_into_head_exits_1(self):
        rc, err = self.into_head("read", "-w", "-", self.ref_file)
        self.assertEqual(rc, 1, err)
        self.assertTrue(sup.output_summaries(err)["-"]["failed"], err)

    # ------------------------------------------------------- SIGTERM / SIGINT

    def test_a_stop_signal_after_an_output_failed_exits_1_and_a_clean_one_0(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            for fail in (True, False):
                with self.subTest(signal=sig, failed_output=fail):
                    fifo = os.path.join(self.d, "src-%d-%d.fifo" % (sig, fail))
                    out = os.path.join(self.d, "out-%d-%d.fifo" % (sig, fail))
                    os.mkfifo(out)
                    reader = threading.Thread(target=self._read_fifo, args=(out, 200 if fail else None), daemon=True)
                    reader.start()
                    src = sup.SlowSource(fifo, self.pcap, rate=2000).start()
                    p = self.procs.start([SIDETAP["path"], "replay", *ID, "--flush-interval", "20ms", "-w", out, fifo],
                                         stderr=subprocess.PIPE)
                    try:
                        time.sleep(0.6)
                        self.assertIsNone(p.poll())
                        rc, err = sup.Procs.stop(p, sig)
                    finally:
                        src.stop()
                    reader.join(10)
                    self.assertEqual(rc, 1 if fail else 0, err)
                    self.assertEqual(sup.output_summaries(err)[out]["failed"], fail, err)

    @staticmethod
    def _read_fifo(path, limit):
        with open(path, "rb", buffering=0) as f:
            got = 0
            while limit is None or got < limit:
                b = f.read(4096 if limit is None else limit - got)
                if not b:
                    break
                got += len(b)

    def test_listen_whose_output_failed_exits_1_after_sigterm(self):
        for fail in (True, False):
            with self.subTest(failed_output=fail):
                sock = os.path.join(self.d, "in-%d.sock" % fail)
                out = os.path.join(self.d, "listen-out-%d.fifo" % fail)
                os.mkfifo(out)
                reader = threading.Thread(target=self._read_fifo, args=(out, 100 if fail else None), daemon=True)
                reader.start()
                lst = self.procs.start([SIDETAP["path"], "listen", "-u", sock, "-w", out], stderr=subprocess.PIPE)
                sup.wait_unix_listening(sock)
                tl.run([SIDETAP["path"], "replay", "-q", *ID, "-w", "unix://" + sock, self.pcap], timeout=60)
                rc, err = sup.Procs.stop(lst, signal.SIGTERM)
                reader.join(10)
                self.assertEqual(rc, 1 if fail else 0, err)
                s = sup.output_summaries(err)[out]
                self.assertEqual(s["failed"], fail, err)
                if not fail:
                    self.assertEqual(s["frames_written"], len(self.ref), err)

    # ------------------------------------------------- collector killed: unconfirmed

    def start_collector(self, where, out):
        p = self.procs.start([sys.executable, "-c", COLLECTOR, where, out], stdout=subprocess.PIPE)
        self.assertEqual(p.stdout.readline().strip(), b"listening")
        return p

    def kill_collector_mid_stream(self, where, dest):
        out = os.path.join(self.d, "collected.fstrm")
        col = self.start_collector(where, out)
        fifo = os.path.join(self.d, "src.fifo")
        src = sup.SlowSource(fifo, self.pcap, rate=3000).start()
        p = self.procs.start([SIDETAP["path"], "replay", *ID, "--on-full", "drop", "--flush-interval", "20ms",
                              "--reconnect-attempts", "2", "--reconnect-initial", "50ms", "-w", dest, fifo],
                             stderr=subprocess.PIPE)
        try:
            time.sleep(0.7)                 # the collector keeps up
            os.kill(col.pid, signal.SIGSTOP)
            time.sleep(0.5)                 # frames pile up in its socket buffer, unread
            os.kill(col.pid, signal.SIGKILL)
            col.wait(10)
            src.finish()
            _, err = p.communicate(timeout=60)
        finally:
            src.stop()
        err = err.decode(errors="replace")
        return p.returncode, err, sup.output_summaries(err)[dest], frames_in(out)

    def test_collector_killed_on_a_unix_socket_shows_what_it_had_not_read_as_unconfirmed(self):
        sock = os.path.join(self.d, "col.sock")
        rc, err, s, got = self.kill_collector_mid_stream("unix:" + sock, "unix://" + sock)
        self.assertEqual(rc, 1, err)        # it never came back: the output gave up
        lost = s["frames_written"] - got
        self.assertGreater(lost, 0, err)
        self.assertGreaterEqual(s["unconfirmed"], lost, err)
        # It had caught up before it hung: frames it read are not counted.
        self.assertLess(s["unconfirmed"], s["frames_written"], err)
        self.assertRegex(err, r"\d+ messages written before the connection ended were not confirmed as read by "
                              r"the collector \(Frame Streams has no acknowledgements\): they may be lost")
        self.assertTrue(s["failed"])

    def test_collector_killed_on_tcp_leaves_every_frame_of_the_connection_unconfirmed(self):
        port = sup.free_port()
        rc, err, s, got = self.kill_collector_mid_stream("tcp:%d" % port, "tcp://127.0.0.1:%d" % port)
        self.assertEqual(rc, 1, err)
        self.assertGreater(s["frames_written"] - got, 0, err)
        self.assertEqual(s["unconfirmed"], s["frames_written"], err)

    def test_a_clean_stop_with_finish_leaves_nothing_unconfirmed(self):
        tl.require_tool(sup.FSTRM_CAPTURE, "fstrm_capture")
        sock, out = os.path.join(self.d, "cap.sock"), os.path.join(self.d, "cap.fstrm")
        cap = self.procs.start([sup.FSTRM_CAPTURE, "-t", "protobuf:dnstap.Dnstap", "-u", sock, "-w", out])
        sup.wait_unix_listening(sock)
        p = tl.run([SIDETAP["path"], "replay", *ID, "-w", "unix://" + sock, self.pcap], timeout=60)
        sup.Procs.stop(cap)
        s = sup.output_summaries(p.stderr)["unix://" + sock]
        self.assertEqual((s["frames_written"], s["unconfirmed"], s["failed"]), (len(self.ref), 0, False))


if __name__ == "__main__":
    SIDETAP["path"] = tl.sidetap_arg()
    unittest.main()
