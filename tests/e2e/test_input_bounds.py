#!/usr/bin/env python3
"""A length field read from the input never sizes an allocation: small
crafted files that claim huge pcapng blocks, pcap records or Frame Streams
frames are refused with a clear error, and sidetap's peak RSS (measured by
a fresh python process whose only child is sidetap) stays small. Before,
a 12 KB pcapng file made `sidetap replay` allocate 256 MiB."""
import os
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402

tl = oracle.tl
SIDETAP = {}

# Runs the command as the only child of a fresh interpreter and prints the
# child's peak RSS in KiB, then its exit code, then its stderr.
PEAK = r"""
import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(p.returncode)
sys.stdout.write(p.stderr)
"""


def peak_rss(cmd):
    out = subprocess.run([sys.executable, "-c", PEAK, *cmd], capture_output=True, text=True, check=True).stdout
    rss, rc, err = out.split("\n", 2)
    return int(rss), int(rc), err


def shb():
    body = struct.pack("<IHHq", 0x1a2b3c4d, 1, 0, -1)
    return struct.pack("<II", 0x0a0d0d0a, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def idb():
    body = struct.pack("<HHI", 1, 0, 0)
    return struct.pack("<II", 1, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


class InputBounds(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="sib-", dir="/tmp")
        # What replaying a tiny valid file costs: the baseline.
        ok = cls.write("ok.pcapng", shb() + idb())
        cls.baseline, rc, err = peak_rss([SIDETAP["path"], "replay", "-q", "-w", "/dev/null", ok])
        assert rc == 0, err

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @classmethod
    def write(cls, name, data):
        path = os.path.join(cls.tmp.name, name)
        with open(path, "wb") as fh:
            fh.write(data)
        return path

    def check(self, cmd, expect_error):
        rss, rc, err = peak_rss(cmd)
        self.assertEqual(rc, 1, err)
        self.assertIn(expect_error, err)
        # A few MiB of slack over the baseline; the lie was 15-256 MiB.
        self.assertLess(rss, self.baseline + 8 * 1024, "peak RSS %d KiB (baseline %d KiB)" % (rss, self.baseline))

    def test_pcapng_blocks_claiming_more_than_the_file_holds(self):
        for name, block_type, length, error in (
                ("epb-256m", 6, (256 << 20) - 4, "more than the 16 MiB an interface or packet block may have"),
                ("epb-15m", 6, 15 << 20, "truncated block at offset 48 (packet #1)"),
                ("idb-12m", 1, 12 << 20, "truncated block at offset 48"),
                ("custom-256m", 0xbad, (256 << 20) - 4, "truncated block at offset 48")):
            with self.subTest(name):
                data = shb() + idb() + struct.pack("<II", block_type, length) + b"\0" * 12000
                path = self.write(name + ".pcapng", data)
                self.assertLess(os.path.getsize(path), 13000)
                self.check([SIDETAP["path"], "replay", "-q", "-w", "/dev/null", path], error)

    def test_pcapng_section_header_claiming_200_mib(self):
        body = struct.pack("<IHHq", 0x1a2b3c4d, 1, 0, -1)
        path = self.write("shb.pcapng", struct.pack("<II", 0x0a0d0d0a, 200 << 20) + body + b"\0" * 12000)
        self.check([SIDETAP["path"], "replay", "-q", "-w", "/dev/null", path], "has bad length 209715200")

    def test_pcap_record_claiming_the_largest_captured_length(self):
        header = struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1)
        path = self.write("caplen.pcap", header + struct.pack("<IIII", 0, 0, 262144, 262144) + b"\0" * 100)
        self.check([SIDETAP["path"], "replay", "-q", "-w", "/dev/null", path], "truncated record at offset 24")

    def test_dnstap_frame_claiming_200_mib(self):
        ct = b"protobuf:dnstap.Dnstap"
        start = struct.pack(">I", 2) + struct.pack(">II", 1, len(ct)) + ct
        data = struct.pack(">II", 0, len(start)) + start + struct.pack(">I", 200 << 20) + b"\x0a" * 12000
        path = self.write("frame.fstrm", data)
        self.check([SIDETAP["path"], "read", "--max-frame-size", "256M", path], "truncated frame at offset")


if __name__ == "__main__":
    oracle.main(SIDETAP)
