#!/usr/bin/env python3
"""Sweep over ALL public captures in tests/data/ (and our own pcaps/): sidetap
never crashes (exit 0 or 1, no signal), its output always decodes with
`dnstap -r` and read_dnstap_file, and its messages equal the oracle's
(exactly: count, order, type, addresses, ports, times, bytes).

For speed the oracle runs tshark once over all files concatenated with
`mergecap -a` (pcapng keeps each file's link types and time resolution);
files whose TCP connections or fragmented datagrams share a key with another
file's get their own tshark run (oracle.messages_for_files)."""
import os
import subprocess
import sys
import tempfile
import unittest
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402
import test_pairing  # noqa: E402
import test_reassembly_cases  # noqa: E402
import test_tunnels  # noqa: E402

tl = oracle.tl
SIDETAP = {}

# Where sidetap and the oracle legitimately differ. file: reason. The TCP
# ones are documented (with exact expectations) in test_reassembly_cases.py
# and test_pairing.py; here they are only checked to still differ.
KNOWN_DIFFERENCES = {
    # NULL link header 0x0008000f (non-standard AF; tshark reads it as an
    # ethertype-like value and decodes IPv4). sidetap accepts only the AF
    # values of real OSes (2, 10, 24, 28, 30) and counts it as not_ip.
    "pcapplusplus-null_loopback.pcap": "non-standard NULL family value",
}
KNOWN_DIFFERENCES.update({f: d["reason"] for f, d in test_reassembly_cases.TSHARK_DIFFERENCES.items()
                          if "oracle_reason" not in d})
KNOWN_DIFFERENCES.update(test_pairing.OWN_TSHARK_DIFFERENCES)
KNOWN_DIFFERENCES.update(test_tunnels.OWN_TSHARK_DIFFERENCES)
# Input files sidetap must refuse (exit 1); everything else exits 0.
EXIT_1 = {"not-a-capture.pcap", "truncated-record.pcap"}


def all_captures():
    shared = tl.public_captures()
    own = sorted(os.path.join(tl.OWN_PCAPS, f) for f in os.listdir(tl.OWN_PCAPS)
                 if f.endswith((".pcap", ".pcapng")) and f not in ("not-a-capture.pcap",))
    return shared + own


class Sweep(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        files = all_captures()
        readable = [f for f in files if os.path.basename(f) not in EXIT_1]
        found = oracle.messages_for_files(readable)
        cls.expected = {f: oracle.finish_expected(found[f]) for f in readable}
        for f in files:  # cut/invalid files: tshark reads what it can
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
        seen = set()
        for f, out, _, _ in self.results:
            name = os.path.basename(f)
            if name in KNOWN_DIFFERENCES:
                seen.add(name)
                with self.subTest(capture=name):
                    self.assertNotEqual([oracle.actual_view(a) for a in tl.read_dnstap_file(out)],
                                        [oracle.expected_view(e) for e in self.expected[f]], KNOWN_DIFFERENCES[name])
        self.assertEqual(seen, set(KNOWN_DIFFERENCES))

    def test_all_shared_captures_swept(self):
        public = set(tl.public_captures())
        shared = [f for f, *_ in self.results if f in public]
        self.assertEqual(len(shared), 120)

    def test_reassembly_counts(self):
        # The files that need IP defragmentation or TCP reassembly give
        # exactly SOURCES.md's (tshark's) message counts.
        names = {os.path.basename(f): out for f, out, _, _ in self.results}
        for name, (feature, q, r) in sorted(oracle.EXPECTED_COUNTS.items()):
            self.assertTrue(oracle.FEATURES[feature])
            with self.subTest(capture=name):
                recs = tl.read_dnstap_file(names[name])
                self.assertEqual(sum(x["type"].endswith("QUERY") for x in recs), q)
                self.assertEqual(sum(x["type"].endswith("RESPONSE") for x in recs), r)


if __name__ == "__main__":
    oracle.main(SIDETAP)
