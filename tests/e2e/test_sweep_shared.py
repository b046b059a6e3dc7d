#!/usr/bin/env python3
"""Sweep over ALL captures in ../shared/pcaps (and our own pcaps/): sidetap
never crashes (exit 0 or 1, no signal), its output always decodes with
`dnstap -r` and read_dnstap_file, and its messages equal the oracle's
(exactly: count, order, type, addresses, ports, times, bytes).

For speed the oracle runs tshark once over all files concatenated with
`mergecap -a` (pcapng keeps each file's link types and time resolution);
`capinfos` gives each file's packet count to slice the result back."""
import os
import subprocess
import sys
import tempfile
import unittest
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402

tl = oracle.tl
SIDETAP = {}

# Where sidetap and the oracle legitimately differ today. file: reason.
KNOWN_DIFFERENCES = {
    # NULL link header 0x0008000f (non-standard AF; tshark reads it as an
    # ethertype-like value and decodes IPv4). sidetap accepts only the AF
    # values of real OSes (2, 10, 24, 28, 30) and counts it as not_ip.
    "pcapplusplus-null_loopback.pcap": "non-standard NULL family value",
}
# Input files sidetap must refuse (exit 1); everything else exits 0.
EXIT_1 = {"not-a-capture.pcap", "truncated-record.pcap"}


def all_captures():
    shared = sorted(os.path.join(tl.SHARED_PCAPS, f) for f in os.listdir(tl.SHARED_PCAPS)
                    if not f.endswith(".md"))
    own = sorted(os.path.join(tl.OWN_PCAPS, f) for f in os.listdir(tl.OWN_PCAPS)
                 if f.endswith((".pcap", ".pcapng")) and f not in ("not-a-capture.pcap",))
    return shared + own


class Sweep(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        files = all_captures()
        counts = subprocess.run(["capinfos", "-c", "-M", "-T", "-r", *files], capture_output=True, text=True).stdout
        cls.npackets = {}
        for line in counts.splitlines():
            name, _, n = line.rpartition("\t")
            cls.npackets[name] = int(n)
        # Only the shared captures are merged (mergecap cannot write our
        # two-sections.pcapng as one stream); our own get one tshark each.
        readable = [f for f in files if f in cls.npackets and f.startswith(tl.SHARED_PCAPS + os.sep)]
        merged = os.path.join(cls.tmp.name, "all.pcapng")
        m = subprocess.run(["mergecap", "-a", "-F", "pcapng", "-w", merged, *readable], capture_output=True,
                           text=True)
        if m.returncode != 0:
            raise AssertionError("mergecap failed: " + m.stderr)
        exp = oracle.expected_messages(merged)
        cls.expected, first = {}, 1
        for f in readable:
            last = first + cls.npackets[f]
            cls.expected[f] = [e for e in exp if first <= e["frame"] < last]
            for e in cls.expected[f]:
                e["frame"] -= first - 1
            first = last
        for f in files:  # cut/invalid files cannot be merged: one tshark each
            if f not in cls.expected:
                cls.expected[f] = oracle.expected_messages(f)
        cls.files = files

        def one(f):
            out = os.path.join(cls.tmp.name, os.path.basename(f) + ".fstrm")
            p = oracle.replay(SIDETAP["path"], [f], out, "-q", check=False)
            d = subprocess.run(["dnstap", "-r", out, "-j"], capture_output=True, text=True)
            return f, out, p, d
        with ThreadPoolExecutor(4) as ex:
            cls.results = list(ex.map(one, files))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_never_crashes_and_exit_code_is_0_or_1(self):
        for f, _, p, _ in self.results:
            with self.subTest(capture=os.path.basename(f)):
                self.assertGreaterEqual(p.returncode, 0, "killed by signal %d" % -p.returncode)
                want = 1 if os.path.basename(f) in EXIT_1 else 0
                self.assertEqual(p.returncode, want, p.stderr)

    def test_output_always_decodes(self):
        for f, out, _, d in self.results:
            with self.subTest(capture=os.path.basename(f)):
                recs = tl.read_dnstap_file(out)
                self.assertEqual(d.returncode, 0, d.stderr)
                self.assertEqual(len([l for l in d.stdout.splitlines() if l.strip()]), len(recs))

    def test_messages_equal_oracle(self):
        for f, out, _, _ in self.results:
            name = os.path.basename(f)
            if f not in self.expected or name in KNOWN_DIFFERENCES:
                continue
            with self.subTest(capture=name):
                oracle.compare(self, self.expected[f], tl.read_dnstap_file(out), name)

    def test_known_differences_still_differ(self):
        # If one starts to agree, drop it from KNOWN_DIFFERENCES.
        for f, out, _, _ in self.results:
            if os.path.basename(f) in KNOWN_DIFFERENCES:
                with self.subTest(capture=os.path.basename(f)):
                    self.assertNotEqual(len(tl.read_dnstap_file(out)), len(self.expected[f]))

    def test_udp_only_counts_match_sources_md(self):
        # For the UDP-only DNS files the count must equal the oracle's; the
        # fragment/TCP files give today only their unfragmented UDP messages.
        # FUTURE: when oracle.FEATURES is switched on, these counts apply.
        for f, out, _, _ in self.results:
            name = os.path.basename(f)
            if name in oracle.FUTURE_EXPECTED_COUNTS:
                feature, q, r = oracle.FUTURE_EXPECTED_COUNTS[name]
                recs = tl.read_dnstap_file(out)
                with self.subTest(capture=name):
                    if oracle.FEATURES[feature]:
                        self.assertEqual(sum(x["type"].endswith("QUERY") for x in recs), q)
                        self.assertEqual(sum(x["type"].endswith("RESPONSE") for x in recs), r)
                    else:
                        self.assertLessEqual(len(recs), q + r)


if __name__ == "__main__":
    oracle.main(SIDETAP)
