"""The progress line: shown while replaying when stderr is a terminal, never
otherwise (scripts and CI get only the summary)."""
import os
import pty
import select
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import sidetap_testlib as tl  # noqa: E402

SIDETAP = tl.sidetap_arg()


def big_capture(path, copies=400):
    """dnscap-dns.pcap's packets repeated: ~53k packets, enough for a progress update."""
    with open(tl.public_capture("dnscap-dns.pcap"), "rb") as f:
        data = f.read()
    header, body = data[:24], data[24:]
    with open(path, "wb") as out:
        out.write(header)
        for _ in range(copies):
            out.write(body)


class ProgressLine(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.pcap = os.path.join(self.dir.name, "big.pcap")
        big_capture(self.pcap)

    def tearDown(self):
        self.dir.cleanup()

    def test_progress_line_is_shown_on_a_terminal(self):
        master, slave = pty.openpty()
        out = os.path.join(self.dir.name, "out.dnstap")
        proc = subprocess.Popen([SIDETAP, "replay", "-w", out, self.pcap], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        seen = b""
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        self.assertEqual(proc.wait(timeout=30), 0)
        os.close(master)
        text = seen.decode(errors="replace")
        self.assertIn("\rsidetap: " + self.pcap, text)
        self.assertRegex(text, r"\d+\.\d% \d+ packets")
        self.assertIn("sidetap: packets=", text)  # the summary follows

    def test_no_progress_line_when_stderr_is_not_a_terminal(self):
        out = os.path.join(self.dir.name, "out.dnstap")
        p = tl.run([SIDETAP, "replay", "-w", out, self.pcap])
        self.assertNotIn("\r", p.stderr)
        self.assertIn("sidetap: packets=", p.stderr)

    def test_quiet_shows_neither(self):
        master, slave = pty.openpty()
        out = os.path.join(self.dir.name, "out.dnstap")
        proc = subprocess.Popen([SIDETAP, "replay", "-q", "-w", out, self.pcap], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        self.assertEqual(proc.wait(timeout=30), 0)
        ready, _, _ = select.select([master], [], [], 0.2)
        data = b""
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                pass
        os.close(master)
        self.assertEqual(data, b"")


if __name__ == "__main__":
    unittest.main(verbosity=2)
