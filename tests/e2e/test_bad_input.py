#!/usr/bin/env python3
"""Bad input: unreadable / non-capture / truncated files (exit 1, output
still a valid Frame Streams file ending in STOP, everything before the error
present), unknown link types and snapped or malformed packets (counted,
exit 0, no crash)."""
import os
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402

tl = oracle.tl
SIDETAP = {}

# SOURCES.md "Malformed / truncated DNS" (UDP ones) and the length-mismatch row.
MALFORMED = ["tcpdump-dns-zlip-1.pcap", "tcpdump-dns-zlip-2.pcap", "tcpdump-dns-zlip-3.pcap",
             "tcpdump-dns_fwdptr.pcap", "zeek-dns-invalid-names.pcap", "zeek-dns-edns-bad-length.pcap",
             "zeek-max-compression-depth.pcap", "zeek-conn-count-too-large.pcap",
             "suricata-dns-forward-pointer.pcap", "suricata-dns-corrupt-additionals.pcap",
             "suricata-dns-udp-junkrequest-first.pcap", "suricata-dns-truncated-rname.pcap",
             "suricata-dns-answer-emptydata.pcap", "ndpi-malformed_dns.pcap", "ndpi-fuzz-2006-06-26-2594.pcap",
             "pcapplusplus-DnsTooManyResources.pcap", "pcapplusplus-dns_stack_overflow.pcap",
             "packetq-sample-rfc1035escape.pcap", "zeek-dns-corrupt.pcap",
             # length mismatches / padding
             "dnscap-1qtcppadd.pcap", "dnscap-ipv6-with-ethernet-padding.pcap", "dnscap-dnspad.pcap",
             "dnsjit-46vs45.pcap", "dnsjit-ip6-udp-padd.pcap", "dnsjit-ip6-tcp-padd.pcap",
             "dnsjit-tcp-response-with-trailing-junk.pcap", "tcpdump-ipv4_invalid_total_length.pcap",
             "tcpdump-ipv6_invalid_length_2.pcap", "tcpdump-LINKTYPE_IPV4_invalid.pcap",
             "tcpdump-LINKTYPE_IPV6_invalid.pcap", "ndpi-badpackets.pcap"]


class BadInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # One tshark run for all the shared captures used here.
        oracle.messages_for_files([oracle.shared_pcap(n) for n in MALFORMED + ["dnscap-dns.pcap"]] +
                                  [oracle.own_pcap(n) for n in ("udp-raw.pcap", "snapped.pcap", "malformed.pcap")])

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = os.path.join(self.tmp.name, "out.fstrm")

    def tearDown(self):
        self.tmp.cleanup()

    def run_sidetap(self, inputs, *args):
        p = oracle.replay(SIDETAP["path"], inputs, self.out, *args, check=False)
        self.assertGreaterEqual(p.returncode, 0, "killed by signal %d" % -p.returncode)
        return p

    def assert_valid_output(self):
        recs = tl.read_dnstap_file(self.out)  # raises without START/STOP
        tl.run(["dnstap", "-r", self.out, "-j"])
        controls, _, sizes = oracle.fstrm_dump(self.out)
        self.assertEqual(controls, ["START", "STOP"])
        self.assertEqual(len(sizes), len(recs))
        with open(self.out, "rb") as f:
            self.assertTrue(f.read().endswith(b"\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x03"))
        return recs

    def test_not_a_capture_exits_1_with_message_and_valid_empty_output(self):
        p = self.run_sidetap([oracle.own_pcap("not-a-capture.pcap")])
        self.assertEqual(p.returncode, 1)
        self.assertIn("not a pcap or pcapng file", p.stderr)
        self.assertIn("not-a-capture.pcap", p.stderr)
        self.assertEqual(self.assert_valid_output(), [])

    def test_not_a_capture_between_good_files_keeps_the_others(self):
        good = oracle.own_pcap("udp-raw.pcap")
        p = self.run_sidetap([good, oracle.own_pcap("not-a-capture.pcap"), good])
        self.assertEqual(p.returncode, 1)
        recs = self.assert_valid_output()
        oracle.compare(self, oracle.expected_messages(good) * 2, recs, "good+bad+good")

    def test_nonexistent_input_exits_1(self):
        p = self.run_sidetap([os.path.join(self.tmp.name, "does-not-exist.pcap")])
        self.assertEqual(p.returncode, 1)
        self.assertIn("does-not-exist.pcap", p.stderr)
        self.assertEqual(self.assert_valid_output(), [])

    def test_unwritable_output_exits_1(self):
        p = oracle.replay(SIDETAP["path"], [oracle.own_pcap("udp-raw.pcap")],
                          os.path.join(self.tmp.name, "no-such-dir", "out.fstrm"), check=False)
        self.assertIn(p.returncode, (1, 2), p.stderr)
        self.assertTrue(p.stderr.strip())

    def test_truncated_record_own_capture(self):
        # pcaps/README.md: 4 good packets, then a record cut 30 bytes into its data.
        pcap = oracle.own_pcap("truncated-record.pcap")
        p = self.run_sidetap([pcap])
        self.assertEqual(p.returncode, 1)
        self.assertIn("truncated", p.stderr)
        recs = self.assert_valid_output()
        oracle.compare(self, oracle.expected_messages(pcap), recs, "truncated-record")
        self.assertEqual(len(recs), 4)

    def test_truncated_record_cut_from_shared_capture(self):
        # Cut dnscap-dns.pcap in the middle of record K's data: records
        # before K must all be there, then STOP, exit 1.
        src = open(oracle.shared_pcap("dnscap-dns.pcap"), "rb").read()
        pos, k, cut_at = 24, 0, None
        while pos < len(src):
            incl = struct.unpack_from("<I", src, pos + 8)[0]
            if k == 60:
                cut_at = pos + 16 + incl // 2
                break
            pos += 16 + incl
            k += 1
        cut = os.path.join(self.tmp.name, "cut.pcap")
        with open(cut, "wb") as f:
            f.write(src[:cut_at])
        p = self.run_sidetap([cut])
        self.assertEqual(p.returncode, 1)
        recs = self.assert_valid_output()
        expected = oracle.expected_messages(cut)  # tshark stops at the cut too
        self.assertTrue(expected)
        self.assertTrue(all(e["frame"] <= 60 for e in expected))
        oracle.compare(self, expected, recs, "cut")
        self.assertEqual(oracle.parse_stats(p.stderr).get("packets"), 60)

    def test_unknown_link_type_counted_with_message_exit_0(self):
        p = self.run_sidetap([oracle.own_pcap("unknown-linktype.pcap")])
        self.assertEqual(p.returncode, 0)
        self.assertIn("link type 147 is not supported", p.stderr)
        self.assertEqual(oracle.parse_stats(p.stderr).get("unknown_link_type"), 4)
        self.assertEqual(self.assert_valid_output(), [])
        # (tcpdump-nflog.pcap was here: NFLOG is decoded now, see test_tunnels.py.)
        for name, n in (("tcpdump-LINKTYPE_PKTAP.pcap", 1),
                        ("zeek-dns-inverse-query.pcap", 11)):
            with self.subTest(capture=name):
                p = self.run_sidetap([oracle.shared_pcap(name)])
                self.assertEqual(p.returncode, 0)
                self.assertEqual(oracle.parse_stats(p.stderr).get("unknown_link_type"), n)
                self.assertEqual(p.stderr.count("is not supported"), 1, "warned once per link type")

    def test_snapped_packets_counted_not_emitted(self):
        pcap = oracle.own_pcap("snapped.pcap")
        p = self.run_sidetap([pcap])
        self.assertEqual(p.returncode, 0)
        stats = oracle.parse_stats(p.stderr)
        self.assertEqual(stats.get("ip_snapped"), 3)
        recs = self.assert_valid_output()
        oracle.compare(self, oracle.expected_messages(pcap), recs, "snapped")
        self.assertEqual((stats["dns_queries"], stats["dns_responses"]), (2, 1))
        # tcpdump-dns_udp_2: the response is cut by snaplen 98.
        p = self.run_sidetap([oracle.shared_pcap("tcpdump-dns_udp_2.pcap")])
        self.assertEqual(oracle.parse_stats(p.stderr).get("ip_snapped"), 1)
        self.assertEqual([r["type"] for r in self.assert_valid_output()], ["CLIENT_QUERY"])

    def test_own_malformed_capture_counts_each_anomaly(self):
        pcap = oracle.own_pcap("malformed.pcap")
        p = self.run_sidetap([pcap])
        self.assertEqual(p.returncode, 0)
        stats = oracle.parse_stats(p.stderr)
        for name in ("dns_too_short", "ip_bad_header_length", "udp_bad_length", "not_ip", "not_udp_tcp"):
            self.assertEqual(stats.get(name), 1, name)
        oracle.compare(self, oracle.expected_messages(pcap), self.assert_valid_output(), "malformed")

    def test_malformed_shared_captures_do_not_crash(self):
        for name in MALFORMED:
            with self.subTest(capture=name):
                pcap = oracle.shared_pcap(name)
                p = self.run_sidetap([pcap])
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertRegex(p.stderr, r"(?m)^sidetap: counters: (none|\S+=\d+( \S+=\d+)*)$")
                stats = oracle.parse_stats(p.stderr)
                self.assertIn("packets", stats)
                recs = self.assert_valid_output()
                oracle.compare(self, oracle.expected_messages(pcap), recs, name)


if __name__ == "__main__":
    oracle.main(SIDETAP)
