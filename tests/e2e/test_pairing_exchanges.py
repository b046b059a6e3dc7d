#!/usr/bin/env python3
"""Pairing at the edges, on the captures of pcaps/make_pairing_pcaps.py:
answers without a question section (QDCOUNT 0), retransmitted queries (one
response per pending copy, each copy timed out from its own time), and
--keep-malformed. Each replay is compared exactly with the oracle, and every
response tshark pairs (dns.response_to) carries the time of that query."""
import os
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402

tl = oracle.tl
SIDETAP = {}
sys.path.insert(0, tl.OWN_PCAPS)
import make_pairing_pcaps as mpp  # noqa: E402  (the generator: the true message bytes and times)

MS = 1_000_000


def q_r(recs):
    return [r for r in recs if r["type"].endswith("_QUERY")], [r for r in recs if r["type"].endswith("_RESPONSE")]


def msg_time(r):
    return r["response_time_ns"] if r["type"].endswith("_RESPONSE") else r["query_time_ns"]


class PairingExchanges(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = os.path.join(self.tmp.name, "out.fstrm")

    def tearDown(self):
        self.tmp.cleanup()

    def replay(self, pcap, *args):
        p = oracle.replay(SIDETAP["path"], [pcap], self.out, *args)
        return tl.read_dnstap_file(self.out), oracle.parse_stats(p.stderr)

    def assert_tshark_pairs_agree(self, pcap, recs):
        """Every response tshark pairs carries that query's time; returns
        tshark's pairing."""
        times = oracle.frame_times(pcap)
        frame_of = {t: i + 1 for i, t in enumerate(times)}
        tshark = oracle.tshark_pairing(pcap)
        for r in recs:
            if not r["type"].endswith("_RESPONSE"):
                continue
            to, _ = tshark[frame_of[r["response_time_ns"]]]
            if to is not None:
                self.assertEqual(r.get("query_time_ns"), times[to - 1], "response in frame %d"
                                 % frame_of[r["response_time_ns"]])
        return tshark, frame_of

    def test_answers_without_question_pair_on_the_exchange_for_five_rcodes(self):
        pcap = oracle.own_pcap("pair-qdcount0.pcap")
        recs, stats = self.replay(pcap)
        oracle.compare(self, oracle.expected_messages(pcap), recs, "pair-qdcount0.pcap")
        qs, rs = q_r(recs)
        self.assertEqual((len(qs), len(rs)), (6, 7))
        rcodes = {}
        for r in rs:
            wire = r["response_message"]
            self.assertEqual(struct.unpack("!H", wire[4:6])[0], 0, "QDCOUNT")
            msg_id = struct.unpack("!H", wire[:2])[0]
            q = [x for x in qs if x["query_message"][:2] == wire[:2] and x["query_port"] == r["query_port"]
                 and x["socket_protocol"] == r["socket_protocol"]]
            if msg_id == 0x38ff:  # nobody asked
                self.assertEqual(q, [])
                self.assertNotIn("query_time_ns", r)
                continue
            self.assertEqual(r["query_time_ns"], q[0]["query_time_ns"], hex(msg_id))
            self.assertGreaterEqual(r["response_time_ns"], r["query_time_ns"])
            rcodes.setdefault(r["socket_protocol"], set()).add(wire[3] & 0x0F)
        self.assertEqual(rcodes, {"UDP": set(mpp.QDCOUNT0_RCODES), "TCP": {mpp.RCODE_REFUSED}})
        self.assertEqual((stats.get("paired"), stats.get("paired_without_question"),
                          stats.get("unsolicited_responses")), (6, 6, 1))
        self.assertNotIn("unanswered_at_end", stats)
        self.assertNotIn("unanswered_queries", stats)
        tshark, _ = self.assert_tshark_pairs_agree(pcap, recs)
        self.assertEqual(sum(to is not None for to, _ in tshark.values()), 6)

    def test_retransmitted_queries_pair_one_response_per_copy(self):
        pcap = oracle.own_pcap("pair-retransmit.pcap")
        recs, stats = self.replay(pcap)
        oracle.compare(self, oracle.expected_messages(pcap), recs, "pair-retransmit.pcap")
        base = mpp.BASE
        _, rs = q_r(recs)
        got = [(r["response_message"][:2], r["response_time_ns"] - base, r.get("query_time_ns", 0) - base)
               for r in rs]
        self.assertEqual(got, [
            # two copies, two responses: oldest copy first, then the retransmission
            (b"\x39\x01", 1200 * MS, 0), (b"\x39\x01", 1300 * MS, 1000 * MS),
            # the first copy timed out 10 s after ITS time; the answer pairs with the
            # retransmission (1 s latency, not 10.5 s, and not unsolicited)
            (b"\x39\x02", 30500 * MS, 29500 * MS),
            # one answer for two copies 0.5 s apart: the oldest (as tshark)
            (b"\x39\x03", 50600 * MS, 50000 * MS)])
        self.assertEqual((stats.get("paired"), stats.get("duplicate_queries"), stats.get("unanswered_queries"),
                          stats.get("unanswered_at_end")), (4, 3, 1, 1))
        self.assertNotIn("unsolicited_responses", stats)
        # tshark agrees on every response it pairs; the second answer to 0x3901
        # is a "retransmitted response" for tshark, for sidetap the answer to the
        # second copy.
        tshark, frame_of = self.assert_tshark_pairs_agree(pcap, recs)
        second = frame_of[base + 1300 * MS]
        self.assertEqual(tshark[second], (None, {"retransmitted_response"}))
        # With --query-timeout 800ms each copy still times out from its own time:
        # 0x3901's first copy is gone at +1.2 s (its first answer takes the
        # second copy, its second answer finds none), both 0x3902 copies are gone
        # at +30.5 s, 0x3903's first copy is still there at +50.6 s.
        recs, stats = self.replay(pcap, "--query-timeout", "800ms")
        oracle.compare(self, oracle.expected_messages(pcap, query_timeout_ns=800 * MS), recs, "pair-retransmit 800ms")
        _, rs = q_r(recs)
        self.assertEqual([r.get("query_time_ns", 0) - base for r in rs], [1000 * MS, -base, -base, 50000 * MS])
        self.assertEqual((stats.get("paired"), stats.get("unanswered_queries"), stats.get("unsolicited_responses"),
                          stats.get("unanswered_at_end")), (2, 3, 2, 1))

    def test_malformed_messages_are_counted_and_kept_only_on_request(self):
        pcap = oracle.own_pcap("malformed-to-server.pcap")
        msgs = mpp.malformed_messages()
        # Default: counted, not emitted; the FORMERR answering the dropped query is unsolicited.
        recs, stats = self.replay(pcap)
        oracle.compare(self, oracle.expected_messages(pcap), recs, "malformed default")
        # (the FORMERR waits --reorder-window for a query, so it comes out last)
        self.assertEqual([r.get("query_message") or r.get("response_message") for r in recs],
                         [m for name, _, m in msgs if name in ("good query", "good response")] +
                         [m for name, _, m in msgs if name == "FORMERR without question"])
        self.assertNotIn("query_time_ns", recs[2])
        counted = {"dns_too_short": 2, "qr_direction_mismatch": 2, "dns_bad_question": 3}
        for k, v in counted.items():
            self.assertEqual(stats.get(k), v, k)
        self.assertNotIn("malformed_kept", stats)
        self.assertEqual((stats.get("paired"), stats.get("unsolicited_responses")), (1, 1))
        # --keep-malformed: every message, in capture order, its direction from
        # the ports (to port 53: query; from port 53: response), counted the same.
        recs, stats = self.replay(pcap, "--keep-malformed")
        oracle.compare(self, oracle.expected_messages(pcap, keep_malformed=True), recs, "malformed kept")
        # (responses with no query wait --reorder-window: compared as a multiset)
        self.assertEqual(sorted((r["type"], r.get("query_message") or r.get("response_message")) for r in recs),
                         sorted(("CLIENT_QUERY" if to_server else "CLIENT_RESPONSE", m) for _, to_server, m in msgs))
        for k, v in counted.items():
            self.assertEqual(stats.get(k), v, k)
        self.assertEqual(stats.get("malformed_kept"), 7)
        # The FORMERR (no question) pairs with the malformed query of its exchange.
        bad_query = [r for r in recs if r.get("query_message") == msgs[2][2]][0]
        formerr = [r for r in recs if r.get("response_message") == msgs[3][2]][0]
        self.assertEqual(formerr["query_time_ns"], bad_query["query_time_ns"])
        self.assertEqual((stats.get("paired"), stats.get("paired_without_question")), (2, 1))
        # Independent decoders read the stream (the messages themselves may not parse).
        self.assertEqual(len(oracle.fstrm_dump(self.out)[2]), len(msgs))


if __name__ == "__main__":
    oracle.main(SIDETAP)
