#!/usr/bin/env python3
"""Determinism (same input + flags -> byte-identical output; several files in
one run == the separate runs' messages concatenated) and clean stop on
SIGINT/SIGTERM (exit 0, output ends with STOP and decodes)."""
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402

tl = oracle.tl
SIDETAP = {}
PIN = ("--identity", "det", "--version", "det-1")
FILES = [oracle.shared_pcap("dnscap-dns.pcap"), oracle.own_pcap("multi-interface.pcapng"),
         oracle.own_pcap("udp-ethernet-ns-be.pcap"), oracle.shared_pcap("ndpi-dns-google-nsid.pcapng"),
         oracle.own_pcap("udp-null.pcap")]


def big_pcap(path, src, copies, fifo=False):
    """`src`'s records repeated `copies` times, timestamps shifted forward.
    With fifo=True `path` is a named pipe that gets the records as sidetap
    reads them (so the replay is surely still running when signalled)."""
    data = open(src, "rb").read()
    header, recs, pos = data[:24], [], 24
    while pos < len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, pos)
        recs.append((sec, usec, data[pos + 16:pos + 16 + incl], orig))
        pos += 16 + incl
    span = recs[-1][0] - recs[0][0] + 1
    try:
        with open(path, "wb") as f:
            f.write(header)
            for c in range(copies):
                chunk = bytearray()
                for sec, usec, body, orig in recs:
                    chunk += struct.pack("<IIII", sec + c * span, usec, len(body), orig) + body
                f.write(chunk)
    except BrokenPipeError:
        pass  # the reader stopped (signalled)
    return len(recs) * copies


class Determinism(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def test_same_input_same_flags_byte_identical(self):
        for flags in (PIN, PIN + ("--role", "auth", "--no-wire", "--extra", "x")):
            oracle.replay(SIDETAP["path"], FILES, self.path("a"), "-q", *flags)
            oracle.replay(SIDETAP["path"], FILES, self.path("b"), "-q", *flags)
            self.assertEqual(open(self.path("a"), "rb").read(), open(self.path("b"), "rb").read(), flags)

    def test_several_files_equal_concatenated_separate_runs(self):
        oracle.replay(SIDETAP["path"], FILES, self.path("all"), "-q", *PIN)
        _, all_frames, _ = tl.read_frames(self.path("all"))
        concat = []
        for i, f in enumerate(FILES):
            oracle.replay(SIDETAP["path"], [f], self.path("one%d" % i), "-q", *PIN)
            concat += tl.read_frames(self.path("one%d" % i))[1]
        self.assertEqual(len(all_frames), len(concat))
        self.assertEqual(all_frames, concat)  # frame bytes, in order

    def stop_with(self, sig):
        # A large generated capture (dnscap-dns.pcap's 133 records x 100000,
        # 13.3M packets, ~1.8 GB) streamed through a FIFO: never on disk, and
        # far too big to finish before the signal.
        big = self.path("big.pcap")
        os.mkfifo(big)
        n = 133 * 100000
        writer = threading.Thread(target=big_pcap, args=(big, oracle.shared_pcap("dnscap-dns.pcap"), 100000),
                                  daemon=True)
        writer.start()
        out = self.path("out.fstrm")
        proc = subprocess.Popen([SIDETAP["path"], "replay", "-w", out, "--", big],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        while time.time() < deadline and (not os.path.exists(out) or os.path.getsize(out) < 200000):
            time.sleep(0.05)
        self.assertIsNone(proc.poll(), "replay finished before the signal")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        writer.join(timeout=30)
        self.assertEqual(proc.returncode, 0, err)
        recs = tl.read_dnstap_file(out)            # requires STOP at the end
        self.assertTrue(open(out, "rb").read().endswith(b"\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x03"))
        rows = oracle.dnstap_json(out)
        self.assertEqual(len(rows), len(recs))
        stats = oracle.parse_stats(err)
        self.assertLess(stats.get("packets", n), n, "stopped early")
        self.assertEqual(stats.get("frames_written"), len(recs))
        # What was written is a prefix of the full replay (82 messages per copy).
        one = oracle.expected_messages(oracle.shared_pcap("dnscap-dns.pcap"))
        for i, r in enumerate(recs[:len(one)]):
            self.assertEqual(oracle.actual_view(r)["wire"], one[i]["wire"])

    def test_sigint_stops_cleanly_with_stop_frame(self):
        self.stop_with(signal.SIGINT)

    def test_sigterm_stops_cleanly_with_stop_frame(self):
        self.stop_with(signal.SIGTERM)


if __name__ == "__main__":
    oracle.main(SIDETAP)
