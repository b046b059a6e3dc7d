#!/usr/bin/env python3
"""Packet time that misbehaves, and packets captured out of order, on the
captures of pcaps/make_pairing_pcaps.py:

  * one record dated 2096 in the middle of a capture, or the capturing host's
    clock stepped back one hour in the middle: the same messages and the
    same unanswered / unsolicited counts as the clean capture (timers run on
    the expiry clock, not on the latest packet time); --max-time-jump;
  * TCP: a FIN or RST captured before the last data of its stream, data
    captured before its SYN: no message lost, equal to tshark's reassembly.
Each replay is also compared exactly with the oracle (which re-implements
the expiry clock)."""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402

tl = oracle.tl
SIDETAP = {}
sys.path.insert(0, tl.OWN_PCAPS)
import make_pairing_pcaps as mpp  # noqa: E402

MS, S = 1_000_000, 1_000_000_000
OUTCOMES = ("paired", "unanswered_queries", "unanswered_evicted", "unanswered_at_end", "unsolicited_responses",
            "defrag_reassembled", "defrag_timed_out", "tcp_streams_closed", "tcp_streams_timed_out")


def outcome(stats):
    return {k: stats.get(k, 0) for k in OUTCOMES}


def view(recs, shift_after=None):
    """(type, bytes, own time, query_time or None) per message; times from
    the step on shifted back by an hour when shift_after is given."""
    def t(x):
        if x is None or shift_after is None or x >= shift_after:
            return x
        return x + mpp.HOUR if x < shift_after - mpp.HOUR // 2 else x
    out = []
    for r in recs:
        resp = r["type"].endswith("_RESPONSE")
        own = r["response_time_ns"] if resp else r["query_time_ns"]
        out.append((r["type"], r.get("response_message") if resp else r.get("query_message"), t(own),
                    t(r.get("query_time_ns")) if resp else None))
    return out


class TimeAndReordering(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def replay(self, name, *args, **oracle_kw):
        pcap = oracle.own_pcap(name)
        out = os.path.join(self.tmp.name, name + ".fstrm")
        p = oracle.replay(SIDETAP["path"], [pcap], out, *args)
        recs = tl.read_dnstap_file(out)
        oracle.compare(self, oracle.expected_messages(pcap, **oracle_kw), recs, name)
        return recs, oracle.parse_stats(p.stderr)

    def test_far_future_record_and_clock_step_back_leave_timeouts_working(self):
        clean, cs = self.replay("time-clean.pcap")
        self.assertEqual((cs.get("unanswered_queries"), cs.get("unsolicited_responses"), cs.get("unanswered_at_end"),
                          cs.get("defrag_reassembled")), (2, 2, 1, 1))
        self.assertNotIn("time_discontinuities", cs)

        future, fs = self.replay("time-far-future.pcap")
        self.assertEqual(outcome(fs), outcome(cs))
        self.assertEqual(view(future), view(clean))  # the same messages, times and query_times
        self.assertEqual(fs.get("time_discontinuities"), 1)
        self.assertEqual(fs.get("not_dns_port"), 1)  # the 2096 record itself

        back, bs = self.replay("time-step-back.pcap")
        self.assertEqual(outcome(bs), outcome(cs))
        self.assertEqual(bs.get("time_discontinuities"), 1)
        # The same messages with their own (stepped) times. The three responses
        # whose query was captured before the step carry no query_time: with it,
        # their latency would be an hour negative.
        vb = view(back, shift_after=mpp.BASE)
        vc = view(clean)
        self.assertEqual([v[:3] for v in vb], [v[:3] for v in vc])
        omitted = [i for i, (b, c) in enumerate(zip(vb, vc)) if b[3] != c[3]]
        self.assertEqual(len(omitted), 3)
        for i in omitted:
            self.assertIsNone(vb[i][3])
            self.assertLess(back[i]["response_time_ns"], mpp.BASE)            # after the step...
            self.assertLess(vc[i][3], mpp.BASE + 5000 * MS)                   # ...its query before it
        self.assertEqual(bs.get("query_time_omitted"), 3)

    def test_max_time_jump_decides_what_is_a_discontinuity(self):
        # Allowed to jump two hours, the one-hour step back is taken as
        # reordering: timers wait until packet time catches up again (it
        # never does here), so the late answer pairs and nothing times out.
        _, st = self.replay("time-step-back.pcap", "--max-time-jump", "2h", max_time_jump_ns=2 * 3600 * S)
        self.assertNotIn("time_discontinuities", st)
        self.assertNotIn("unanswered_queries", st)
        self.assertEqual(st.get("unsolicited_responses"), 1)
        p = subprocess.run([SIDETAP["path"], "replay", "--max-time-jump", "10ms", "-w",
                            os.path.join(self.tmp.name, "x"), oracle.own_pcap("time-clean.pcap")],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--max-time-jump", p.stderr)

    def test_public_capture_with_records_years_apart_keeps_its_connection(self):
        # pcapplusplus-dns_over_tcp.pcapng: frame 1 is dated 1970 (pcapng time 0),
        # frames 2-3 December 2020, frame 4 (February 2021) repeats frame 1's
        # segment. Both jumps are discontinuities, frame 1's connection does not
        # time out, and frame 4 is the retransmission tshark also sees (before
        # the expiry clock, sidetap emitted its response a second time).
        pcap = oracle.shared_pcap("pcapplusplus-dns_over_tcp.pcapng")
        out = os.path.join(self.tmp.name, "x.fstrm")
        p = oracle.replay(SIDETAP["path"], [pcap], out)
        recs = tl.read_dnstap_file(out)
        stats = oracle.parse_stats(p.stderr)
        self.assertEqual(len(recs), sum(oracle.tshark_dns_counts(pcap)))
        self.assertEqual(stats.get("time_discontinuities"), 2)
        self.assertNotIn("tcp_streams_timed_out", stats)
        self.assertEqual(stats.get("tcp_duplicates"), 1)

    def test_tcp_fin_rst_and_syn_out_of_order_lose_nothing(self):
        recs, st = self.replay("tcp-close-reordered.pcap")
        self.assertEqual(len(recs), 8)
        self.assertEqual(oracle.tshark_dns_counts(oracle.own_pcap("tcp-close-reordered.pcap")), (4, 4))
        self.assertEqual(st.get("paired"), 4)
        self.assertEqual((st.get("tcp_reordered_closes"), st.get("tcp_late_syns"), st.get("tcp_streams_closed")),
                         (3, 2, 4))
        for k in ("tcp_partial_at_close", "tcp_holes", "tcp_data_after_close", "unsolicited_responses",
                  "unanswered_at_end"):
            self.assertNotIn(k, st)
        # Without a reordering window a FIN or RST closes at once: the data
        # captured after it is lost (the behaviour before).
        pcap = oracle.own_pcap("tcp-close-reordered.pcap")
        out = os.path.join(self.tmp.name, "zero.fstrm")
        p = oracle.replay(SIDETAP["path"], [pcap], out, "--reorder-window", "0")
        st0 = oracle.parse_stats(p.stderr)
        self.assertLess(len(tl.read_dnstap_file(out)), 8)
        self.assertGreater(st0.get("tcp_data_after_close", 0) + st0.get("tcp_partial_at_close", 0), 0)


if __name__ == "__main__":
    oracle.main(SIDETAP)
