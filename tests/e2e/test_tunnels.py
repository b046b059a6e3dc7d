#!/usr/bin/env python3
"""Mirrored and tunnelled DNS: every tunnel kind and the NFLOG link type,
replayed and compared exactly with tshark's decoding of the same files
(count, order, type, family, protocol, INNER addresses and ports, time in
ns, message bytes, query_time), plus the decap_* and anomaly counters.

Captures: pcaps/make_tunnel_pcaps.py (see the TUNNEL-PCAPS section of
pcaps/README.md). tshark decodes GRE, ERSPAN, VXLAN (4789), Geneve (6081),
GTP-U (2152), IP-in-IP and NFLOG natively and reassembles outer and inner IP
fragments; oracle.innermost_messages() takes the last IP/UDP/TCP layers of
each frame.
"""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402

tl = oracle.tl
SIDETAP = {}

INNER = {"192.0.2.10", "192.0.2.53", "2001:db8::10", "2001:db8::53"}
OUTER = {"198.51.100.1", "198.51.100.2", "2001:db8:ffff::1", "2001:db8:ffff::2"} | {
    "203.0.113.%d" % i for i in range(1, 11)}

# file -> (queries, responses, counters that must have exactly these values,
#          minimum tunnel depth tshark sees for every message)
CAPTURES = {
    "tunnel-gre.pcap": (6, 6, {"decap_gre": 12, "link.ethernet": 12}, 1),
    "tunnel-erspan.pcap": (6, 6, {"decap_erspan": 12, "decap_gre": None}, 1),
    "tunnel-vxlan.pcap": (6, 6, {"decap_vxlan": 18, "tcp_messages": 2}, 1),
    "tunnel-geneve.pcap": (4, 4, {"decap_geneve": 8}, 1),
    "tunnel-gtpu.pcap": (5, 5, {"decap_gtpu": 10, "gtpu_not_gpdu": 1}, 1),
    "tunnel-ipip.pcap": (5, 5, {"decap_ipip": 4, "decap_ipv6_in_ip": 6}, 1),
    "tunnel-nested.pcap": (3, 3, {"decap_gre": 4, "decap_vxlan": 4, "decap_erspan": 2, "decap_gtpu": 2,
                                  "decap_ipip": 2, "decap_geneve": 2, "tunnel_too_deep": None}, 2),
    "tunnel-fragments.pcap": (4, 4, {"decap_gre": 6, "decap_vxlan": 6, "defrag_fragments": 16,
                                     "defrag_reassembled": 6, "defrag_incomplete_at_end": None}, 1),
    "nflog.pcap": (3, 3, {"link.nflog": 8, "nflog_no_payload": 1, "nflog_bad_tlv": 1}, 0),
    "nflog-be.pcap": (3, 3, {"link.nflog": 6}, 0),
}

# Public captures: file -> (queries, responses, counters).
SHARED = {
    # tcpdump's tests/nflog.pcap: four DNS responses in NFLOG records (their
    # queries were not logged).
    "tcpdump-nflog.pcap": (0, 4, {"link.nflog": 4, "unsolicited_responses": 4}),
    # DNS in VXLAN in Geneve whose frames the capture cut short: snapped at
    # the outer IP layer, nothing to emit (tshark: a truncated DNS message).
    "zeek-geneve-vxlan-dns-truncated.pcap": (0, 0, {"ip_snapped": 2}),
}

# tunnel-malformed.pcap: frames where tshark still finds a DNS message but
# sidetap drops the packet on purpose (each counted), with the reason.
MALFORMED_BY_DESIGN = {
    4: "gre_unsupported: GRE carrying MPLS (tshark guesses IPv4 behind the label)",
    7: "vxlan_bad_flags: I flag clear (RFC 7348: not a valid VNI; Linux drops it too)",
    10: "geneve_unsupported: Geneve version 1",
    12: "gtpu_truncated: GTP-U length field beyond the datagram",
    18: "tunnel_too_deep: five nested tunnels, beyond the bound of four",
}
# For test_sweep_shared.py: own captures where sidetap and tshark differ.
OWN_TSHARK_DIFFERENCES = {
    "tunnel-malformed.pcap": "encapsulations sidetap refuses and tshark still decodes (MALFORMED_BY_DESIGN "
                             "in test_tunnels.py)"}
MALFORMED_COUNTERS = {
    "gre_truncated": 2, "gre_unsupported": 2, "erspan_unsupported": 1, "erspan_truncated": 1,
    "vxlan_bad_flags": 1, "vxlan_truncated": 1, "geneve_bad_options": 1, "geneve_unsupported": 1,
    "geneve_truncated": 1, "gtpu_truncated": 1, "gtpu_bad_extension": 1, "gtpu_unsupported": 1,
    "link_truncated": 1, "not_ip": 1, "ip_snapped": 1, "tunnel_too_deep": 1, "decap_vxlan": 4, "decap_ipip": 5,
}


class Tunnels(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.sidetap = SIDETAP["path"]

    def tearDown(self):
        self.tmp.cleanup()

    def replay(self, name, *args):
        out = os.path.join(self.tmp.name, "out.fstrm")
        p = oracle.replay(self.sidetap, [oracle.own_pcap(name)], out, *args)
        return tl.read_dnstap_file(out), oracle.parse_stats(p.stderr)

    def check_inner_addresses(self, actual, label):
        for i, d in enumerate(actual):
            for key in ("query_address", "response_address"):
                self.assertIn(d[key], INNER, "%s #%d %s is not an inner address" % (label, i, key))
            self.assertEqual(d["response_port"], 53, "%s #%d" % (label, i))

    def test_every_tunnel_kind_and_nflog_match_tshark(self):
        for name, (q, r, counters, min_depth) in CAPTURES.items():
            with self.subTest(capture=name):
                recs = oracle.innermost_messages(oracle.own_pcap(name))
                self.assertTrue(all(rec["depth"] >= min_depth for rec in recs), name)
                expected = oracle.finish_expected(recs)
                actual, stats = self.replay(name)
                oracle.compare(self, expected, actual, name)
                self.assertEqual(sum(not e["is_response"] for e in expected), q, name + ": tshark queries")
                self.assertEqual(sum(e["is_response"] for e in expected), r, name + ": tshark responses")
                self.assertEqual((stats.get("dns_queries"), stats.get("dns_responses")), (q, r), name)
                self.assertTrue(all(d.get("query_time_ns") for d in actual), name + ": every response paired")
                self.check_inner_addresses(actual, name)
                for key, value in counters.items():
                    self.assertEqual(stats.get(key), value, "%s: %s" % (name, key))

    def test_public_nflog_and_tunnel_captures_match_tshark(self):
        for name, (q, r, counters) in SHARED.items():
            with self.subTest(capture=name):
                path = oracle.shared_pcap(name)
                expected = oracle.expected_messages(path)
                out = os.path.join(self.tmp.name, "shared.fstrm")
                p = oracle.replay(self.sidetap, [path], out)
                actual, stats = tl.read_dnstap_file(out), oracle.parse_stats(p.stderr)
                oracle.compare(self, expected, actual, name)
                self.assertEqual((stats.get("dns_queries"), stats.get("dns_responses")), (q, r), name)
                for key, value in counters.items():
                    self.assertEqual(stats.get(key), value, "%s: %s" % (name, key))

    def test_readme_counts_are_the_tshark_counts(self):
        counts = oracle.readme_counts()
        for name, (q, r, _, _) in CAPTURES.items():
            self.assertEqual(counts.get(name), (q, r), name)
        self.assertEqual(counts.get("tunnel-malformed.pcap"), (2, 2))

    def test_both_ip_families_inside_and_outside(self):
        # Inner IPv4 and IPv6 in the same captures (and IPv6 outer headers
        # in gre/erspan/vxlan/geneve/gtpu/ipip): both families reach dnstap.
        for name in ("tunnel-gre.pcap", "tunnel-vxlan.pcap", "tunnel-gtpu.pcap", "tunnel-ipip.pcap",
                     "nflog.pcap", "nflog-be.pcap"):
            with self.subTest(capture=name):
                actual, _ = self.replay(name)
                self.assertEqual({d["socket_family"] for d in actual}, {"INET", "INET6"}, name)

    def test_dns_over_tcp_inside_vxlan(self):
        actual, stats = self.replay("tunnel-vxlan.pcap")
        tcp = [d for d in actual if d["socket_protocol"] == "TCP"]
        self.assertEqual([d["type"] for d in tcp], ["CLIENT_QUERY", "CLIENT_RESPONSE"])
        self.assertEqual(tcp[0]["query_address"], "192.0.2.10")
        self.assertEqual(stats.get("tcp_streams_closed"), 1)

    def test_malformed_encapsulations_are_counted_and_dropped(self):
        name = "tunnel-malformed.pcap"
        recs, reasons = oracle.innermost_messages(oracle.own_pcap(name), with_reasons=True)
        dropped = {rec["frame"] for rec in recs if rec["frame"] in MALFORMED_BY_DESIGN}
        self.assertEqual(dropped, set(MALFORMED_BY_DESIGN), "frames where tshark decodes what sidetap drops")
        self.assertEqual(reasons.get("ip_snapped"), 1)
        expected = oracle.finish_expected([rec for rec in recs if rec["frame"] not in MALFORMED_BY_DESIGN])
        actual, stats = self.replay(name)
        oracle.compare(self, expected, actual, name)
        self.assertEqual(len(actual), 4)
        # The last exchange has client port 4789: DNS, not VXLAN.
        self.assertEqual([d["query_port"] for d in actual[2:]], [4789, 4789])
        for key, value in MALFORMED_COUNTERS.items():
            self.assertEqual(stats.get(key), value, key)

    def test_tunnels_in_resolver_role_keep_upstream_port_4789_as_dns(self):
        # With --role resolver the upstream port list joins the DNS ports; a
        # datagram from port 53 to 4789 stays DNS either way.
        actual, stats = self.replay("tunnel-malformed.pcap", "--role", "resolver")
        self.assertEqual(len(actual), 4)
        self.assertEqual(stats.get("decap_vxlan"), 4)

    def test_fragments_outer_inner_and_both(self):
        name = "tunnel-fragments.pcap"
        actual, stats = self.replay(name)
        responses = [d for d in actual if d["type"] == "CLIENT_RESPONSE"]
        self.assertEqual(len(responses), 4)
        self.assertTrue(all(len(d["response_message"]) > 3000 for d in responses))
        self.assertEqual({d["socket_family"] for d in responses}, {"INET", "INET6"})


if __name__ == "__main__":
    oracle.main(SIDETAP)
