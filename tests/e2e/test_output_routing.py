#!/usr/bin/env python3
"""Several outputs at once, each with its own message-type filter and wire
setting (URI parameters ?types=...&wire=no), the global --types/--no-wire
defaults they override, and a file and a socket output side by side.

Expected frames come from single-output reference replays of the same input
(`--types X`, `--no-wire`), compared byte for byte and in order.
"""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_output_support as sup  # noqa: E402

tl = sup.tl
SIDETAP = {}
ID = ["--identity", "routing-test"]


class Routing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ctmp = tempfile.TemporaryDirectory(prefix="oute2e-")
        d = cls.ctmp.name
        cls.pcap = sup.generate_pcap(os.path.join(d, "mixed.pcap"), 1500, "--tcp-share", "0.2")
        cls.all = sup.reference_frames(SIDETAP["path"], cls.pcap, d, *ID)
        cls.nowire = sup.reference_frames(SIDETAP["path"], cls.pcap, d, *ID, "--no-wire")
        cls.types = [sup.dnstap_type(f) for f in cls.all]
        assert set(cls.types) == {"CLIENT_QUERY", "CLIENT_RESPONSE"}, set(cls.types)

    @classmethod
    def tearDownClass(cls):
        cls.ctmp.cleanup()

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="oute2e-", dir=self.ctmp.name)
        self.d = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.d, name)

    def subset(self, frames, t):
        return [f for f, ft in zip(frames, self.types) if ft == t]

    def frames(self, path):
        ct, frames, stop = tl.read_frames(path)
        self.assertEqual(ct, sup.CT)
        self.assertTrue(stop, path)
        return frames

    def replay(self, *args):
        return tl.run([SIDETAP["path"], "replay", *ID, *args, self.pcap])

    def test_two_outputs_with_different_type_filters_and_wire(self):
        a, b = self.path("a.fstrm"), self.path("b.fstrm")
        p = self.replay("-w", a + "?types=CQ", "-w", b + "?types=CR&wire=no")
        fa, fb = self.frames(a), self.frames(b)
        self.assertTrue(fa == self.subset(self.all, "CLIENT_QUERY"))
        self.assertTrue(fb == self.subset(self.nowire, "CLIENT_RESPONSE"))
        for r in map(tl.decode_dnstap, fb):
            self.assertNotIn("response_message", r)
            self.assertNotIn("query_message", r)
        for r in map(tl.decode_dnstap, fa):
            self.assertIn("query_message", r)
        s = sup.output_summaries(p.stderr)
        # Summaries are keyed by the destination as given (path without parameters).
        counts = sorted(v["frames_written"] for v in s.values())
        self.assertEqual(counts, sorted([len(fa), len(fb)]), p.stderr)
        self.assertEqual(len(fa) + len(fb), len(self.all))

    def test_full_type_names_work_like_mnemonics(self):
        a = self.path("a.fstrm")
        self.replay("-w", a + "?types=CLIENT_RESPONSE")
        self.assertTrue(self.frames(a) == self.subset(self.all, "CLIENT_RESPONSE"))

    def test_global_types_is_the_default_that_uri_types_override(self):
        a, b = self.path("a.fstrm"), self.path("b.fstrm")
        self.replay("--types", "CQ", "-w", a, "-w", b + "?types=CQ,CR")
        self.assertTrue(self.frames(a) == self.subset(self.all, "CLIENT_QUERY"))
        self.assertTrue(self.frames(b) == self.all)

    def test_global_types_filter_with_no_matching_messages_gives_an_empty_valid_file(self):
        a = self.path("a.fstrm")
        self.replay("--types", "AQ,AR", "-w", a)
        self.assertEqual(self.frames(a), [])

    def test_global_no_wire_is_the_default_that_wire_yes_overrides(self):
        a, b = self.path("a.fstrm"), self.path("b.fstrm")
        self.replay("--no-wire", "-w", a, "-w", b + "?wire=yes")
        self.assertTrue(self.frames(a) == self.nowire)
        self.assertTrue(self.frames(b) == self.all)
        self.assertLess(sum(map(len, self.nowire)), sum(map(len, self.all)))

    def test_file_and_socket_outputs_side_by_side(self):
        a = self.path("a.fstrm")
        sock = self.path("c.sock")
        srv = sup.FstrmServer(sock, "read")
        try:
            self.replay("-w", a + "?types=CQ", "-w", "unix://" + sock + "?types=CR&wire=no")
        finally:
            srv.close()
        self.assertTrue(self.frames(a) == self.subset(self.all, "CLIENT_QUERY"))
        self.assertTrue(srv.frames == self.subset(self.nowire, "CLIENT_RESPONSE"))
        self.assertEqual(srv.stops, 1)

    def test_bad_per_output_settings_are_usage_errors(self):
        a = self.path("a.fstrm")
        for dest, words in ((a + "?types=CQ,XX", "XX"), (a + "?wire=maybe", "wire"),
                            (a + "?colour=blue", "colour"), (a + "?on-full=wait", "on-full")):
            p = tl.run([SIDETAP["path"], "replay", "-w", dest, self.pcap], check=False)
            self.assertEqual(p.returncode, 2, dest + "\n" + p.stderr)
            self.assertIn(words, p.stderr, dest)


if __name__ == "__main__":
    SIDETAP["path"] = tl.sidetap_arg()
    unittest.main()
