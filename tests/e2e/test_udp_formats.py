#!/usr/bin/env python3
"""Every input format and link type, replayed and compared exactly with the
tshark oracle (count, order, type, family, protocol, addresses, ports,
time in ns, message bytes).

Formats: pcap µs and ns, both byte orders, pcapng with several interfaces /
link types / time resolutions / sections, several files in one run.
Link types: Ethernet (+802.1Q, 802.1ad QinQ, double 0x8100, PPPoE), Linux SLL
and SLL2, NULL (host byte order, several AF_INET6 values) and LOOP, RAW,
IPV4 (228), IPV6 (229); IPv6 extension headers.
"""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402

tl = oracle.tl
SIDETAP = {}

# Own captures (pcaps/README.md gives the expected query/response counts) and
# the sidetap link.* counter each must show.
OWN = {
    "udp-ethernet.pcap": "link.ethernet",
    "udp-ethernet-ns-be.pcap": "link.ethernet",
    "udp-vlan-qinq.pcap": "link.ethernet",
    "udp-sll.pcap": "link.linux_sll",
    "udp-sll2.pcap": "link.linux_sll2",
    "udp-null.pcap": "link.null",
    "udp-loop.pcap": "link.loop",
    "udp-raw.pcap": "link.raw",
    "udp-ipv4.pcap": "link.ipv4",
    "udp-ipv6.pcap": "link.ipv6",
    "udp-ipv6-exthdr.pcap": "link.ethernet",
    "multi-interface.pcapng": None,
    "two-sections.pcapng": None,
    "sample.pcap": None,
}

# Public captures: (file, link counter, queries, responses) - the counts are
# SOURCES.md's tshark counts (UDP-only files, nothing fragmented).
SHARED = [
    ("dnscap-dns.pcap", "link.ethernet", 41, 41),
    ("dnscap-vlan11.pcap", "link.ethernet", 41, 41),            # 802.1Q
    ("zeek-dns_notify2.pcap", "link.ethernet", 2, 2),            # 802.1Q
    ("zeek-loc-29-trunc.pcap", "link.ethernet", 1, 1),           # QinQ
    ("ndpi-dns-qinq-pppoe.pcapng", "link.ethernet", 2, 3),       # QinQ + PPPoE
    ("dnscap-dns6.pcap", "link.ethernet", 1, 1),                 # IPv6
    ("pcapplusplus-sll.pcap", "link.linux_sll", 10, 10),         # SLL v1
    ("dnscap-sll2.pcap", "link.linux_sll2", 1, 1),               # SLL2
    ("tcpdump-dns-badcookie.pcap", "link.null", 2, 2),           # NULL, host order
    ("derived-tcpdump-dns-badcookie-dlt_loop.pcap", "link.loop", 2, 2),  # LOOP
    ("tcpdump-LINKTYPE_RAW_ipv4.pcap", "link.raw", 1, 0),
    ("tcpdump-LINKTYPE_RAW_ipv6.pcap", "link.raw", 1, 0),
    ("dnsjit-pellets.pcap", "link.raw", 91, 0),
    ("tcpdump-LINKTYPE_IPV4.pcap", "link.ipv4", 1, 0),           # 228
    ("tcpdump-LINKTYPE_IPV6.pcap", "link.ipv6", 1, 0),           # 229
    ("packetq-sample-bigendian.pcap", "link.ethernet", 1, 1),    # big-endian pcap
    ("derived-dnscap-edns-nsec.pcap", "link.ethernet", 7, 7),    # ns pcap
    ("derived-dnscap-edns-nsec.pcapng", "link.ethernet", 7, 7),  # pcapng tsresol 9
    ("zeek-pcapng-multi-interface.pcapng", "link.ethernet", 3, 3),
    ("ndpi-dns-google-nsid.pcapng", "link.ethernet", 7, 7),      # 3 IDBs, v4+v6
    ("pcapplusplus-many_interfaces-1.pcapng", None, 7, 7),       # 11 IDBs, mixed
    ("pcapplusplus-too_many_interfaces.pcapng", "link.ethernet", 1, 0),  # iface 82
    ("tcpdump-time_2038_overflow.pcap", "link.ethernet", 1, 0),
    ("tcpdump-time_2106_max.pcap", "link.ethernet", 1, 0),
    ("tcpdump-time_2107.pcapng", "link.ethernet", 1, 0),
]


class UdpFormats(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # One tshark run for all the captures used here (see oracle.messages_for_files).
        oracle.messages_for_files([oracle.own_pcap(n) for n in OWN] +
                                  [oracle.shared_pcap(n) for n, *_ in SHARED] +
                                  [oracle.shared_pcap(n) for n in ("dnscap-edns.pcap", "dnscap-dns6.pcap",
                                   "dnscap-ipv6-with-ethernet-padding.pcap", "dnsjit-46vs45.pcap",
                                   "dnsjit-ip6-udp-padd.pcap", "dnscap-dnspad.pcap")])

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.sidetap = SIDETAP["path"]

    def tearDown(self):
        self.tmp.cleanup()

    def replay_and_compare(self, pcaps, label, *args):
        out = os.path.join(self.tmp.name, "out.fstrm")
        p = oracle.replay(self.sidetap, pcaps, out, *args)
        actual = tl.read_dnstap_file(out)
        expected = []
        for f in pcaps:
            expected += oracle.expected_messages(f)
        oracle.compare(self, expected, actual, label)
        return expected, actual, oracle.parse_stats(p.stderr)

    def check_counts(self, expected, actual, stats, q, r, label):
        self.assertEqual(sum(not e["is_response"] for e in expected), q, label + ": oracle queries")
        self.assertEqual(sum(e["is_response"] for e in expected), r, label + ": oracle responses")
        self.assertEqual(stats.get("dns_queries"), q, label)
        self.assertEqual(stats.get("dns_responses"), r, label)
        self.assertEqual(stats.get("frames"), q + r, label)
        self.assertEqual(len(actual), q + r, label)

    def test_own_captures_match_oracle_and_readme_counts(self):
        counts = oracle.readme_counts()
        for name, link in OWN.items():
            path = oracle.own_pcap(name)
            if not os.path.exists(path):
                self.fail("missing own capture %s (run pcaps/make_pcaps.py)" % path)
            with self.subTest(capture=name):
                exp, act, stats = self.replay_and_compare([path], name)
                if name in counts:
                    self.check_counts(exp, act, stats, *counts[name], label=name)
                if link:
                    self.assertEqual(stats.get(link), stats.get("packets"), "%s: %s" % (name, link))

    def test_shared_link_types_and_formats_match_oracle(self):
        for name, link, q, r in SHARED:
            with self.subTest(capture=name):
                exp, act, stats = self.replay_and_compare([oracle.shared_pcap(name)], name)
                self.check_counts(exp, act, stats, q, r, name)
                if link:
                    self.assertEqual(stats.get(link), stats.get("packets"), "%s: %s" % (name, link))

    def test_nanosecond_files_keep_sub_microsecond_digits(self):
        # derived-dnscap-edns-nsec is dnscap-edns shifted by +123 ns.
        _, base, _ = self.replay_and_compare([oracle.shared_pcap("dnscap-edns.pcap")], "edns")
        for ns_file in ("derived-dnscap-edns-nsec.pcap", "derived-dnscap-edns-nsec.pcapng"):
            _, shifted, _ = self.replay_and_compare([oracle.shared_pcap(ns_file)], ns_file)
            t = oracle.message_time
            self.assertEqual([t(d) + 123 for d in base], [t(d) for d in shifted], ns_file)
            self.assertTrue(all(t(d) % 1000 == 123 for d in shifted), ns_file)
        # Own ns big-endian file == µs little-endian file except the ns digits.
        _, us, _ = self.replay_and_compare([oracle.own_pcap("udp-ethernet.pcap")], "us")
        _, ns, _ = self.replay_and_compare([oracle.own_pcap("udp-ethernet-ns-be.pcap")], "ns")
        self.assertEqual(ns[0].get("query_time_ns"), 1700000000123456789)
        self.assertEqual(len(us), len(ns))
        for a, b in zip(us, ns):
            ta, tb = oracle.message_time(a), oracle.message_time(b)
            self.assertEqual(ta, tb // 1000 * 1000)
            self.assertEqual({k: v for k, v in a.items() if not k.endswith("_ns")},
                             {k: v for k, v in b.items() if not k.endswith("_ns")})

    def test_pcapng_per_interface_time_resolution(self):
        # pcaps/README.md "multi-interface.pcapng timestamps" table.
        want = [1700000000123456000, 1700000000124691000, 1700000000133456900, 1700000000134691467,
                1700000000143456459, 1700000000144691467, 1700000000144691467, 1700000000154691000]
        _, act, stats = self.replay_and_compare([oracle.own_pcap("multi-interface.pcapng")], "multi")
        self.assertEqual([oracle.message_time(d) for d in act], want)
        self.assertEqual(stats.get("link.ethernet"), 4)
        self.assertEqual(stats.get("link.raw"), 2)
        self.assertEqual(stats.get("link.linux_sll2"), 2)

    def test_timestamps_beyond_2038_and_2106(self):
        for name, sec in (("tcpdump-time_2038_overflow.pcap", 2 ** 31),
                          ("tcpdump-time_2106_max.pcap", 0xFFFFFFFF),
                          ("tcpdump-time_2107.pcapng", 4323283200)):
            with self.subTest(capture=name):
                _, act, _ = self.replay_and_compare([oracle.shared_pcap(name)], name)
                self.assertEqual(act[0]["query_time_ns"] // 10 ** 9, sec)

    def test_ipv6_extension_headers_are_skipped(self):
        exp, act, _ = self.replay_and_compare([oracle.own_pcap("udp-ipv6-exthdr.pcap")], "exthdr")
        self.assertEqual(len(act), 4)
        self.assertTrue(all(d["socket_family"] == "INET6" for d in act))

    def test_several_files_in_one_run_keep_file_order(self):
        files = [oracle.own_pcap("udp-sll2.pcap"), oracle.shared_pcap("dnscap-dns6.pcap"),
                 oracle.own_pcap("multi-interface.pcapng"), oracle.shared_pcap("packetq-sample-bigendian.pcap"),
                 oracle.own_pcap("udp-ethernet-ns-be.pcap")]
        exp, act, stats = self.replay_and_compare(files, "several files")
        self.assertEqual(len(act), 4 + 2 + 8 + 2 + 10)
        # The order is the command-line order, not time order (sll2 is 2023, dns6 older).
        self.assertGreater(act[0]["query_time_ns"], act[4]["query_time_ns"])

    def test_link_padding_and_trailing_bytes(self):
        # Link padding after the IP length is cut; bytes after the DNS message
        # but inside the UDP length are kept (the wire is the UDP payload),
        # although tshark's DNS dissector stops at the end of the message.
        for name, wire_len in (("dnscap-ipv6-with-ethernet-padding.pcap", None),
                               ("dnsjit-46vs45.pcap", None), ("dnsjit-ip6-udp-padd.pcap", None),
                               ("dnscap-dnspad.pcap", 31)):
            with self.subTest(capture=name):
                exp, act, _ = self.replay_and_compare([oracle.shared_pcap(name)], name)
                self.assertEqual(len(act), 1)
                if wire_len:
                    self.assertEqual(len(act[0]["query_message"]), wire_len)


if __name__ == "__main__":
    oracle.main(SIDETAP)
