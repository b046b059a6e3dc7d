#!/usr/bin/env python3
"""IP defragmentation and DNS-over-TCP reassembly, cross-checked with tshark
(its reassembly on) capture by capture, for every file of the by-case rows of
tests/data/public*/SOURCES.md: fragments, pipelined TCP, a length prefix in its
own segment, messages across segments, no-SYN and mid-message starts, holes,
out-of-order and retransmitted segments, TFO, QinQ, SLL2, pcapng with many
interfaces, malformed DNS, DNS over TLS.

For each file:
  * our tshark run reproduces SOURCES.md's DNS count (so the oracle's tshark
    setup is the one the corpus was described with);
  * sidetap's exact query/response counts equal tshark's, and its messages
    equal the oracle's exactly (order, type, addresses, ports, times,
    query_time of responses, bytes) -- or, where sidetap legitimately
    differs from tshark, the file is in TSHARK_DIFFERENCES with the reason,
    tshark's and sidetap's exact counts (asserted, so an entry cannot go
    stale) and what exactly sidetap must emit instead.
"""
import os
import re
import subprocess
import sys
import tempfile
import unittest
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402

tl = oracle.tl
SIDETAP = {}

# file -> server ports (-p) sidetap is run with (default 53).
BY_CASE = {}
for _names, _ports in (
    # IPv4 / IPv6 fragmented UDP (incomplete: ndpi-badpackets)
    ("dnscollector-dnsdump_ip4_fragmented+udp dnscollector-dnsdump_ip4_fragmented_query dnscap-frags "
     "zeek-dns-edns-ecs derived-dnscollector-ip4-frags-reversed ndpi-badpackets "
     "dnscollector-dnsdump_ip6_fragmented+udp dnscollector-dnsdump_ip6_fragmented_query zeek-ipv6-fragmented-dns "
     "derived-dnscollector-ip6-frags-reversed", (53,)),
    ("pcapplusplus-ip6_fragments", (5353,)),                  # mDNS in 7-13 IPv6 fragments
    # TCP baseline, pipelined, length prefix alone, across segments, holes,
    # retransmissions, out of order, no SYN / mid-message, TFO
    ("drool-1qtcp tcpdump-dns_tcp dnscollector-dnsdump_tcp dnscollector-dnsdump_udp+tcp zeek-dns-edns-tcp-keepalive "
     "dnscap-dnsotcp-many1pkt suricata-dns-tcp-multirequest-buffer dnscap-dnso1tcp dnscap-dnsotcp-manyopkts "
     "dnscollector-dnsdump_udp_truncated+tcp_fragmented zeek-dns-inverse-query dnscap-dnso1tcp-bighole "
     "dnscap-dnso1tcp-midmiss suricata-dns-tcp-ts-gap pcapplusplus-dns_over_tcp derived-dnscap-dnso1tcp-ooo-retrans "
     "dnscap-1qtcpnosyn dnscap-1qtcppadd dnscap-do1t-nosyn-1nolen suricata-dns-reversed-tcp-1 "
     "dnscollector-dnsdump_tcp_fastopen dnsjit-tcp-response-with-trailing-junk dnsjit-ip6-tcp-padd "
     "suricata-dns-answer-emptydata", (53,)),
    ("suricata-dns-truncated-rname", (1053,)),
    ("suricata-dns-incomplete", (5353,)),
    ("suricata-llmnr-tcp-reassembly suricata-llmnr-tcp", (5355,)),
    ("tcpdump-dns_tcp_8053", (8053,)),
    # VLAN / QinQ, SLL2, pcapng with several interfaces
    ("zeek-loc-29-trunc ndpi-dns-qinq-pppoe dnscap-vlan11 dnscap-sll2 zeek-pcapng-multi-interface "
     "ndpi-dns-google-nsid pcapplusplus-many_interfaces-1 pcapplusplus-too_many_interfaces ndpi-dns_invert_query "
     "tcpdump-time_2107", (53,)),
    # Malformed / truncated DNS
    ("tcpdump-dns-zlip-1 tcpdump-dns-zlip-2 tcpdump-dns-zlip-3 tcpdump-dns_fwdptr zeek-dns-invalid-names "
     "zeek-dns-edns-bad-length zeek-max-compression-depth zeek-conn-count-too-large suricata-dns-forward-pointer "
     "suricata-dns-corrupt-additionals suricata-dns-udp-junkrequest-first ndpi-malformed_dns "
     "ndpi-fuzz-2006-06-26-2594 pcapplusplus-DnsTooManyResources pcapplusplus-dns_stack_overflow "
     "packetq-sample-rfc1035escape zeek-dns-corrupt", (53,)),
    # DNS over TLS
    ("ndpi-dns_dot ndpi-googledns_android10", (53,)),
):
    for _n in _names.split():
        _f = _n + ".pcap"
        if not any(os.path.exists(os.path.join(d, _f)) for d in tl.PUBLIC_CAPTURE_DIRS):
            _f = _n + ".pcapng"
        BY_CASE[_f] = _ports

# Where sidetap and tshark (reassembly on) legitimately differ. Each entry:
#   reason:   why;
#   tshark:   tshark's (queries, responses) -- asserted, with SOURCES.md's;
#   sidetap:  sidetap's exact (queries, responses);
#   and what sidetap must emit instead of tshark's messages:
#   oracle_reason: the oracle's own rule for the skipped messages (the
#             oracle's reason counter must be non-zero: the rule still
#             applies) -> sidetap's output equals the oracle's;
#   extra:    messages sidetap recovers that tshark does not show, as the
#             frames whose TCP payloads, concatenated, are exactly the
#             length prefix and the message (the last one completes it);
#   subset_of: holes -- every emitted message is one of that (complete)
#             capture's messages, byte for byte, with its time, addresses
#             and ports: no garbage, no duplicates; tshark's are among them;
#   counters: sidetap summary counters that must have these values.
TSHARK_DIFFERENCES = {
    "ndpi-badpackets.pcap": dict(
        tshark=(0, 91), sidetap=(0, 0), oracle_reason="ip_fragment", counters={"ip_snapped": 93},
        reason="93 first fragments cut by the capture (IP total length 1500, 43-305 bytes captured) whose later "
               "fragments were never captured: tshark decodes the DNS header from each lone first fragment; "
               "sidetap never parses a datagram it cannot rebuild (ip_snapped, not emitted)."),
    "zeek-dns-inverse-query.pcap": dict(
        tshark=(1, 1), sidetap=(0, 0), oracle_reason="link_not_decoded_by_sidetap",
        counters={"unknown_link_type": 11},
        reason="FDDI link type (10) is not one sidetap decodes: its 11 packets are unknown_link_type."),
    "zeek-max-compression-depth.pcap": dict(
        tshark=(0, 1), sidetap=(0, 0), oracle_reason="qr_direction_mismatch", counters={"qr_direction_mismatch": 1},
        reason="a 'response' (QR=1) sent TO port 53: the port says query, the QR bit says response; sidetap drops "
               "it (qr_direction_mismatch), tshark goes by the QR bit."),
    "ndpi-fuzz-2006-06-26-2594.pcap": dict(
        tshark=(251, 47), sidetap=(203, 37), oracle_reason="udp_bad_length",
        counters={"udp_bad_length": 25, "dns_bad_question": 41},
        reason="fuzzed frames: tshark decodes DNS from datagrams whose UDP length exceeds the IP payload "
               "(udp_bad_length), whose IP length exceeds the captured bytes (ip_snapped), DNS quoted inside "
               "ICMP errors, and 41 whose question does not parse (2 of them also with QR contradicting the "
               "port); sidetap skips and counts each (the last kind is emitted with --keep-malformed)."),
    # Messages whose (first) question does not parse: tshark decodes what it
    # can; sidetap drops them by default, like Knot and BIND, and emits them
    # with --keep-malformed, like Unbound (then equal to tshark: keep=True).
    "tcpdump-dns_fwdptr.pcap": dict(
        tshark=(0, 1), sidetap=(0, 0), oracle_reason="dns_bad_question", counters={"dns_bad_question": 1}, keep=True,
        reason="a response whose question name has a forward compression pointer (dns_bad_question)."),
    "zeek-dns-invalid-names.pcap": dict(
        tshark=(3, 0), sidetap=(0, 0), oracle_reason="dns_bad_question", counters={"dns_bad_question": 3}, keep=True,
        reason="three queries whose names have invalid label types (dns_bad_question)."),
    "suricata-dns-forward-pointer.pcap": dict(
        tshark=(1, 1), sidetap=(0, 1), oracle_reason="dns_bad_question", counters={"dns_bad_question": 1}, keep=True,
        reason="the query's name is a forward compression pointer (dns_bad_question); its response is then "
               "unsolicited."),
    "suricata-dns-udp-junkrequest-first.pcap": dict(
        tshark=(2, 2), sidetap=(1, 2), oracle_reason="dns_bad_question", counters={"dns_bad_question": 1}, keep=True,
        reason="a junk datagram to port 53 (SNMP bytes) whose 'question' does not parse (dns_bad_question)."),
    "pcapplusplus-DnsTooManyResources.pcap": dict(
        tshark=(1, 0), sidetap=(0, 0), oracle_reason="dns_bad_question", counters={"dns_bad_question": 1}, keep=True,
        reason="a query with 1000s of claimed records whose question runs past the datagram (dns_bad_question)."),
    "pcapplusplus-dns_stack_overflow.pcap": dict(
        tshark=(0, 1), sidetap=(0, 0), oracle_reason="dns_bad_question", counters={"dns_bad_question": 1}, keep=True,
        reason="a response whose question name is a compression loop (dns_bad_question)."),
    "suricata-dns-truncated-rname.pcap": dict(
        tshark=(1, 0), sidetap=(0, 0), oracle_reason="dns_bad_question", counters={"dns_bad_question": 1}, keep=True,
        reason="a TCP query whose question name is cut short (dns_bad_question)."),
    "pcapplusplus-ip6_fragments.pcap": dict(
        tshark=(0, 0), sidetap=(1, 1), oracle_reason="ok",
        reason="with -p 5353 the two reassembled mDNS datagrams are DNS messages for sidetap; tshark calls them "
               "mDNS (SOURCES.md: mDNS=2), not DNS. Their content equals the oracle's exactly."),
    "suricata-dns-tcp-ts-gap.pcap": dict(
        tshark=(1, 3), sidetap=(2, 3), extra=[dict(frames=(10,), at=13)], counters={"tcp_holes": 1},
        reason="the client segment with query ID 1 is missing; tshark waits for it forever and never decodes "
               "query ID 2 (frame 10) behind the gap. sidetap gives the hole up once the server has acknowledged "
               "beyond it and the close grace (--reorder-window) has passed, at frame 13, and emits query 2 "
               "(exact bytes of frame 10, its time), which then pairs with response 2 (frame 11, held for its "
               "query); response 1 stays unsolicited."),
    "dnscap-do1t-nosyn-1nolen.pcap": dict(
        tshark=(0, 2), sidetap=(1, 2), extra=[(5, 7)], counters={"tcp_nosyn_streams": 2,
                                                                 "tcp_resync_skipped_bytes": 28},
        reason="no SYN and the client's first segment (frame 1) is the 28-byte body of a query whose length "
               "prefix was not captured: tshark reads its first bytes as a length prefix and loses the client "
               "stream; sidetap's untrusted-stream resync skips those 28 bytes and finds query 0x8b51 "
               "(prefix in frame 5, body in frame 7), which pairs with its response."),
    "dnscap-dnso1tcp-bighole.pcap": dict(
        tshark=(3, 2), sidetap=(38, 38), subset_of="dnscap-dnso1tcp.pcap", counters={"tcp_holes": 2},
        reason="dnscap-dnso1tcp with long runs of segments missing in both directions: tshark stops at the first "
               "hole of each direction; sidetap gives each hole up (the peer acknowledged beyond it), "
               "resynchronises on a plausible header and recovers every complete message after it."),
    "dnscap-dnso1tcp-midmiss.pcap": dict(
        tshark=(2, 1), sidetap=(3, 3), subset_of="dnscap-dnso1tcp.pcap", counters={"tcp_holes": 2},
        reason="as bighole, with segments missing in the middle: sidetap recovers the messages after the holes."),
}

SOURCES_COUNTS = {}
# SOURCES.md counted DNS on any port; the oracle asks tshark only about
# frames on DNS ports (53, 1053, 5355, 8053 and the -p ports). file:
# (queries, responses) on other ports, reason.
NOT_ON_DNS_PORTS = {
    "ndpi-fuzz-2006-06-26-2594.pcap": ((4, 2), "fuzzed UDP ports (e.g. frame 8: 2712 -> 49973) that tshark still "
                                               "decodes as DNS; sidetap counts them not_dns_port"),
}


def sources_md():
    """Both SOURCES.md files of the public captures (permissive and copyleft), one text."""
    return "\n".join(open(os.path.join(d, "SOURCES.md"), encoding="utf-8").read() for d in tl.PUBLIC_CAPTURE_DIRS)


def sources_counts():
    if not SOURCES_COUNTS:
        lines = sources_md().splitlines()
        for line in lines:
            cells = [c.strip() for c in line.split("|")]
            if len(cells) > 8 and cells[1].endswith((".pcap", ".pcapng")):
                m = re.search(r"DNS q=(\d+) r=(\d+)", cells[7])
                SOURCES_COUNTS[cells[1]] = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    return SOURCES_COUNTS


def counts(recs):
    return (sum(r["type"].endswith("_QUERY") for r in recs), sum(r["type"].endswith("_RESPONSE") for r in recs))


def extra_record(pcap, frames, ports, at=None):
    """A message made of the TCP payloads of `frames` (prefix + message),
    with the time of the last one; emitted at frame `at` when sidetap
    recovers it later (a hole given up after the close grace)."""
    by_no = {int(l["frame"]["frame.number"]): l for l in oracle.tshark_packets(pcap, ports=ports)}
    data = b"".join(bytes.fromhex(by_no[n]["tcp"]["tcp.payload"].replace(":", "")) for n in frames)
    n = int.from_bytes(data[:2], "big")
    assert n == len(data) - 2, "frames %r are not exactly one framed message" % (frames,)
    last = by_no[frames[-1]]
    netinfo, _ = oracle._network(last)
    _, _, family, src, dst = netinfo
    sport, dport = int(last["tcp"]["tcp.srcport"]), int(last["tcp"]["tcp.dstport"])
    wire = data[2:]
    is_response, why = oracle._direction(sport, dport, wire, ports)
    assert why is None, why
    rec = oracle._record(family, "TCP", src, dst, sport, dport, is_response,
                         oracle.epoch_to_ns(last["frame"]["frame.time_epoch"]), wire, frames[-1])
    at = frames[-1] if at is None else at
    rec["frame"] = at
    rec["clock_ns"] = oracle.clock_by_frame(pcap)[at]
    return rec


class ReassemblyCases(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        files = sorted(BY_CASE)
        by_ports = {}
        for f in files:
            by_ports.setdefault(BY_CASE[f], []).append(oracle.shared_pcap(f))
        for ports, paths in by_ports.items():
            oracle.messages_for_files(paths, ports)   # warms the cache: few tshark runs

        def one(f):
            out = os.path.join(cls.tmp.name, f + ".fstrm")
            args = sum((["-p", str(p)] for p in BY_CASE[f]), [])
            p = oracle.replay(SIDETAP["path"], [oracle.shared_pcap(f)], out, *args, check=False)
            return f, p, (tl.read_dnstap_file(out) if p.returncode == 0 else None)
        with ThreadPoolExecutor(2) as ex:
            cls.results = {f: (p, recs) for f, p, recs in ex.map(one, files)}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_by_case_list_covers_sources_md_rows(self):
        # Every file named in the by-case rows this test is about is here.
        text = sources_md()
        seen = 0
        rows = ("TCP, several", "TCP, one message", "TCP, missing", "TCP, retransmission", "TCP, out-of-order",
                "TCP, no SYN", "TCP Fast Open", "IPv4 fragmented", "IPv6 fragmented", "DNS over TLS")
        for line in text.splitlines():
            if line.startswith("| ") and any(line[2:].startswith(r) for r in rows):
                for name in re.findall(r"((?:dnscap|dnscollector|dnsjit|drool|ndpi|pcapplusplus|suricata|tcpdump|"
                                       r"zeek|derived)-[A-Za-z0-9_.+-]+?)(?=[ ,;()|]|$)", line.split("|")[2]):
                    seen += 1
                    with self.subTest(name=name):
                        self.assertTrue(name + ".pcap" in BY_CASE or name + ".pcapng" in BY_CASE, name)
        self.assertGreaterEqual(seen, 30, "SOURCES.md by-case rows not found")

    def test_tshark_reproduces_sources_md_counts(self):
        src = sources_counts()
        for f, ports in sorted(BY_CASE.items()):
            with self.subTest(capture=f):
                q, r = oracle.tshark_dns_counts(oracle.shared_pcap(f), ports)
                (oq, orr), _ = NOT_ON_DNS_PORTS.get(f, ((0, 0), ""))
                self.assertEqual((q + oq, r + orr), src[f])

    def test_sidetap_equals_tshark_or_the_documented_difference(self):
        for f, ports in sorted(BY_CASE.items()):
            p, recs = self.results[f]
            with self.subTest(capture=f):
                self.assertEqual(p.returncode, 0, p.stderr)
                pcap = oracle.shared_pcap(f)
                tshark = oracle.tshark_dns_counts(pcap, ports)
                stats = oracle.parse_stats(p.stderr)
                self.assertEqual((stats.get("dns_queries"), stats.get("dns_responses")), counts(recs))
                d = TSHARK_DIFFERENCES.get(f)
                if d is None:
                    self.assertEqual(counts(recs), tshark, "sidetap vs tshark")
                    oracle.compare(self, oracle.expected_messages(pcap, ports=ports), recs, f)
                    continue
                # The documented difference still holds (else drop the entry).
                self.assertEqual(tshark, d["tshark"], "tshark's count changed: " + d["reason"])
                self.assertEqual(counts(recs), d["sidetap"], d["reason"])
                self.assertNotEqual(d["sidetap"], d["tshark"])
                for k, v in d.get("counters", {}).items():
                    self.assertEqual(stats.get(k), v, k)
                if "oracle_reason" in d:
                    exp, reasons = oracle.expected_messages(pcap, ports=ports, with_reasons=True)
                    self.assertGreater(reasons.get(d["oracle_reason"], 0), 0, d["oracle_reason"])
                    oracle.compare(self, exp, recs, f)
                elif "extra" in d:
                    msgs = oracle.messages_in_completion_order(pcap, ports)
                    msgs += [extra_record(pcap, e["frames"], ports, e["at"]) if isinstance(e, dict)
                             else extra_record(pcap, e, ports) for e in d["extra"]]
                    msgs.sort(key=lambda m: m["frame"])  # stable: TCP order within a frame kept
                    oracle.annotate_timer_runs(msgs, oracle.clock_by_frame(pcap))
                    oracle.compare(self, oracle.finish_expected(msgs, ports=ports), recs, f)
                else:
                    self.check_hole_recovery(f, d, recs, ports)

    def test_keep_malformed_emits_what_tshark_decodes(self):
        # With --keep-malformed the messages whose question does not parse
        # are emitted too (direction from the ports), and equal tshark's.
        for f, d in sorted(TSHARK_DIFFERENCES.items()):
            if not d.get("keep"):
                continue
            with self.subTest(capture=f):
                pcap = oracle.shared_pcap(f)
                ports = BY_CASE[f]
                out = os.path.join(self.tmp.name, f + ".keep.fstrm")
                args = sum((["-p", str(p)] for p in ports), [])
                p = oracle.replay(SIDETAP["path"], [pcap], out, "--keep-malformed", *args)
                recs = tl.read_dnstap_file(out)
                stats = oracle.parse_stats(p.stderr)
                self.assertEqual(counts(recs), d["tshark"])
                self.assertEqual(stats.get("malformed_kept"), d["counters"]["dns_bad_question"])
                self.assertEqual(stats.get("dns_bad_question"), d["counters"]["dns_bad_question"])
                oracle.compare(self, oracle.expected_messages(pcap, ports=ports, keep_malformed=True), recs, f)

    def check_hole_recovery(self, f, d, recs, ports):
        """Never garbage: each message is a complete message of the whole
        capture (same bytes, time, addresses, ports), none twice; tshark's
        are all there; responses carry their emitted query's time."""
        full = oracle.expected_messages(oracle.shared_pcap(d["subset_of"]), ports=ports)
        strip = lambda v: {k: v[k] for k in v if k != "query_time_ns"}
        full_views = [strip(oracle.expected_view(e)) for e in full]
        views = [strip(oracle.actual_view(a)) for a in recs]
        for i, v in enumerate(views):
            self.assertIn(v, full_views, "%s #%d is not a message of %s" % (f, i, d["subset_of"]))
            self.assertEqual(oracle.parse_question(v["wire"])[1] is not None, True, "%s #%d question" % (f, i))
        self.assertEqual(len({(v["type"], v["wire"], v["time_ns"]) for v in views}), len(views), "duplicates")
        for e in oracle.expected_messages(oracle.shared_pcap(f), ports=ports):
            self.assertIn(strip(oracle.expected_view(e)), views, "a message tshark decodes is missing")
        query_times = {}
        for r in recs:
            key = oracle.exchange_key({"query_address": r["query_address"], "query_port": r["query_port"],
                                       "response_address": r["response_address"],
                                       "response_port": r["response_port"],
                                       "socket_protocol": r["socket_protocol"],
                                       "wire": r.get("query_message") or r.get("response_message")})
            if r["type"].endswith("_QUERY"):
                query_times[key] = r["query_time_ns"]
            else:
                self.assertEqual(r.get("query_time_ns"), query_times.pop(key, None), "query_time")

    def test_dns_over_tls_is_skipped_and_counted(self):
        for f, n in (("ndpi-dns_dot.pcap", 24), ("ndpi-googledns_android10.pcap", 528)):
            p, recs = self.results[f]
            with self.subTest(capture=f):
                self.assertEqual(recs, [])
                stats = oracle.parse_stats(p.stderr)
                self.assertEqual(stats.get("dot_skipped"), n)
                self.assertNotIn("tcp_segments", stats)
                self.assertNotIn("tcp_messages", stats)

    def test_large_tcp_response_over_gro_segments(self):
        # 32,827-byte response in 4344-byte coalesced segments with
        # retransmissions: one message, exact bytes, time of the completing
        # frame, paired with the TCP retry (not with the UDP query).
        f = "dnscollector-dnsdump_udp_truncated+tcp_fragmented.pcap"
        p, recs = self.results[f]
        big = [r for r in recs if r["socket_protocol"] == "TCP" and r["type"] == "CLIENT_RESPONSE"]
        self.assertEqual(len(big), 1)
        self.assertEqual(len(big[0]["response_message"]), 32827)
        tq = [r for r in recs if r["socket_protocol"] == "TCP" and r["type"] == "CLIENT_QUERY"]
        self.assertEqual(big[0]["query_time_ns"], tq[0]["query_time_ns"])
        uq = [r for r in recs if r["socket_protocol"] == "UDP" and r["type"] == "CLIENT_QUERY"]
        self.assertNotEqual(big[0]["query_time_ns"], uq[0]["query_time_ns"])
        stats = oracle.parse_stats(p.stderr)
        self.assertEqual(stats.get("tcp_duplicates"), 2)
        self.assertEqual(stats.get("paired"), 2)

    def test_pipelined_and_split_messages_keep_completing_frame_time(self):
        # many1pkt: three queries in one segment share its time; manyopkts:
        # the straddling query takes the time of the second segment.
        _, recs = self.results["dnscap-dnsotcp-many1pkt.pcap"]
        qs = [r for r in recs if r["type"] == "CLIENT_QUERY"]
        self.assertEqual(len({r["query_time_ns"] for r in qs}), 1)
        _, recs = self.results["dnscap-dnsotcp-manyopkts.pcap"]
        times = [r["query_time_ns"] for r in recs]
        self.assertEqual(len(times), 3)
        self.assertEqual(times[0] < times[1] == times[2], True)
        _, recs = self.results["suricata-dns-tcp-multirequest-buffer.pcap"]
        self.assertEqual(len({r["query_time_ns"] for r in recs if r["type"] == "CLIENT_QUERY"}), 1)
        self.assertTrue(all(r.get("query_time_ns") for r in recs if r["type"] == "CLIENT_RESPONSE"))


if __name__ == "__main__":
    oracle.main(SIDETAP)
