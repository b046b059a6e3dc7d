#!/usr/bin/env python3
"""Command-line behaviour of `sidetap replay`: roles, server ports, envelope
fields, --no-wire, -w - to a pipe, usage errors."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402

tl = oracle.tl
SIDETAP = {}
UDP8053 = oracle.shared_pcap("tcpdump-dns_udp_8053.pcap")


class Cli(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = os.path.join(self.tmp.name, "out.fstrm")

    def tearDown(self):
        self.tmp.cleanup()

    def replay(self, pcaps, *args):
        p = oracle.replay(SIDETAP["path"], pcaps, self.out, *args)
        return tl.read_dnstap_file(self.out), oracle.parse_stats(p.stderr)

    def test_role_auth_gives_auth_query_and_auth_response(self):
        pcap = oracle.own_pcap("udp-ethernet.pcap")
        recs, _ = self.replay([pcap], "--role", "auth")
        oracle.compare(self, oracle.expected_messages(pcap, role="auth"), recs, "auth")
        self.assertEqual({r["type"] for r in recs}, {"AUTH_QUERY", "AUTH_RESPONSE"})
        recs, _ = self.replay([pcap], "--role", "client")
        self.assertEqual({r["type"] for r in recs}, {"CLIENT_QUERY", "CLIENT_RESPONSE"})

    def test_non_standard_port_needs_dash_p(self):
        recs, stats = self.replay([UDP8053])
        self.assertEqual(recs, [])
        # Neither port is a DNS port: dropped before DNS parsing.
        self.assertEqual(stats.get("not_dns_port"), 2)
        self.assertNotIn("not_server_port", stats)
        recs, stats = self.replay([UDP8053], "-p", "8053")
        oracle.compare(self, oracle.expected_messages(UDP8053, ports=(8053,)), recs, "8053")
        self.assertEqual([r["type"] for r in recs], ["CLIENT_QUERY", "CLIENT_RESPONSE"])
        self.assertEqual(recs[0]["response_port"], 8053)
        # (tshark itself needs -d udp.port==8053,dns to call it DNS; the oracle
        # works from UDP ports, so it needs no -d.)

    def test_several_ports(self):
        pcaps = [UDP8053, oracle.own_pcap("udp-raw.pcap")]
        recs, stats = self.replay(pcaps, "-p", "8053", "-p", "53")
        exp = oracle.expected_messages(pcaps[0], ports=(8053, 53)) + oracle.expected_messages(pcaps[1], ports=(8053, 53))
        oracle.compare(self, exp, recs, "-p 8053 -p 53")
        self.assertEqual(len(recs), 2 + 4)
        # -p replaces the default: with only 8053 the port-53 file gives nothing.
        recs, _ = self.replay(pcaps, "-p", "8053")
        self.assertEqual(len(recs), 2)

    def test_no_wire_drops_both_messages(self):
        pcap = oracle.shared_pcap("dnscap-dns.pcap")
        recs, _ = self.replay([pcap], "--no-wire")
        exp = oracle.expected_messages(pcap)
        self.assertEqual(len(recs), len(exp))
        for r, e in zip(recs, exp):
            self.assertNotIn("query_message", r)
            self.assertNotIn("response_message", r)
            self.assertEqual(r["type"], e["type"])
            self.assertEqual(r["query_address"], e["query_address"])
        rows = oracle.dnstap_json(self.out)
        self.assertEqual(len(rows), len(exp))
        self.assertFalse(any("query_message" in j["message"] or "response_message" in j["message"] for j in rows))

    def test_identity_version_extra_land_in_envelope(self):
        recs, _ = self.replay([oracle.own_pcap("udp-raw.pcap")], "--identity", "ns1.example",
                              "--version", "v-test 9", "--extra", "rack=7")
        for r in recs:
            self.assertEqual(r["identity"], b"ns1.example")
            self.assertEqual(r["version"], b"v-test 9")
            self.assertEqual(r["extra"], b"rack=7")
            self.assertEqual(r["dnstap_type"], 1)
        j = oracle.dnstap_json(self.out)[0]
        self.assertEqual((j["identity"], j["version"]), ("ns1.example", "v-test 9"))

    def test_default_identity_is_host_name_and_version_sidetap_0_1_0(self):
        recs, _ = self.replay([oracle.own_pcap("udp-raw.pcap")])
        for r in recs:
            self.assertEqual(r["identity"], socket.gethostname().encode())
            self.assertEqual(r["version"], b"sidetap 0.1.0")
            self.assertNotIn("extra", r)

    def test_write_to_stdout_pipe(self):
        pcap = oracle.own_pcap("udp-ethernet.pcap")
        p = subprocess.run([SIDETAP["path"], "replay", "-w", "-", "--", pcap], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(self.out, "wb") as f:
            f.write(p.stdout)
        oracle.compare(self, oracle.expected_messages(pcap), tl.read_dnstap_file(self.out), "stdout")
        # And through a real pipe into golang-dnstap reading stdin-like input.
        sh = "%s replay -q -w - -- %s | cat > %s" % (SIDETAP["path"], pcap, self.out + "2")
        tl.run(["sh", "-c", sh])
        self.assertEqual(open(self.out + "2", "rb").read(), p.stdout)

    def test_bad_option_exits_2(self):
        for args in (["replay", "--no-such-option", oracle.own_pcap("udp-raw.pcap")],
                     ["replay"],  # FILE is required
                     ["replay", "--role", "recursor", oracle.own_pcap("udp-raw.pcap")],
                     ["replay", "--role", "", oracle.own_pcap("udp-raw.pcap")],
                     ["replay", "-p", "0", oracle.own_pcap("udp-raw.pcap")],
                     ["replay", "--server-addr", "not-an-ip", oracle.own_pcap("udp-raw.pcap")],
                     ["no-such-subcommand"], []):
            with self.subTest(args=args):
                p = tl.run([SIDETAP["path"], *args, "-w", self.out], check=False)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertTrue(p.stderr.strip(), "a usage error says why")

    def test_bad_durations_and_bounds_exit_2(self):
        raw = oracle.own_pcap("udp-raw.pcap")
        for opt in ("--query-timeout", "--reorder-window", "--tcp-idle-timeout", "--fragment-timeout"):
            for bad in ("ten", "10parsecs", "-1s", "", "1e30s", "s"):
                with self.subTest(option=opt, value=bad):
                    p = tl.run([SIDETAP["path"], "replay", opt, bad, "-w", self.out, "--", raw], check=False)
                    self.assertEqual(p.returncode, 2, p.stderr)
                    self.assertTrue(p.stderr.strip(), "a usage error says why")
        for opt in ("--max-pending-queries", "--max-tcp-streams", "--max-fragmented-datagrams"):
            for bad in ("0", "-5", "many"):
                with self.subTest(option=opt, value=bad):
                    p = tl.run([SIDETAP["path"], "replay", opt, bad, "-w", self.out, "--", raw], check=False)
                    self.assertEqual(p.returncode, 2, p.stderr)
        # Good values of every new option are accepted and change nothing here.
        base = oracle.expected_messages(raw)
        for args in (("--query-timeout", "250ms"), ("--reorder-window", "0"), ("--reorder-window", "1500us"),
                     ("--tcp-idle-timeout", "5s"), ("--fragment-timeout", "1000000000ns"),
                     ("--max-pending-queries", "1"), ("--max-tcp-streams", "1"),
                     ("--max-fragmented-datagrams", "1"), ("--server-addr", "192.0.2.53"),
                     ("--upstream-port", "5300")):
            with self.subTest(args=args):
                recs, _ = self.replay([raw], *args)
                oracle.compare(self, base, recs, " ".join(args))

    def test_role_resolver_splits_client_and_upstream_exchanges(self):
        # -p 8053 is the local server; its port-53 traffic (udp-raw.pcap) is
        # the resolver's own upstream traffic: RESOLVER_QUERY/RESPONSE.
        pcaps = [UDP8053, oracle.own_pcap("udp-raw.pcap")]
        recs, stats = self.replay(pcaps, "--role", "resolver", "-p", "8053")
        exp = []
        for f in pcaps:
            exp += oracle.expected_messages(f, ports=(8053,), role="resolver")
        oracle.compare(self, exp, recs, "resolver")
        self.assertEqual([r["type"] for r in recs],
                         ["CLIENT_QUERY", "CLIENT_RESPONSE"] + ["RESOLVER_QUERY", "RESOLVER_RESPONSE"] * 2)
        # --upstream-port replaces 53: the port-53 file is then not DNS at all.
        recs, stats = self.replay(pcaps, "--role", "resolver", "-p", "8053", "--upstream-port", "5300")
        self.assertEqual([r["type"] for r in recs], ["CLIENT_QUERY", "CLIENT_RESPONSE"])
        self.assertEqual(stats.get("not_dns_port"), 4)
        # With --server-addr, an exchange whose client is the local server is upstream.
        recs, _ = self.replay([oracle.own_pcap("udp-raw.pcap")], "--role", "resolver",
                              "--server-addr", "192.0.2.10", "--server-addr", "2001:db8::10")
        self.assertEqual({r["type"] for r in recs}, {"RESOLVER_QUERY", "RESOLVER_RESPONSE"})
        recs, _ = self.replay([oracle.own_pcap("udp-raw.pcap")], "--role", "resolver",
                              "--server-addr", "192.0.2.53", "--server-addr", "2001:db8::53")
        self.assertEqual({r["type"] for r in recs}, {"CLIENT_QUERY", "CLIENT_RESPONSE"})

    def test_output_option_does_not_swallow_inputs(self):
        # Regression test: `-w` used to be take_all() in
        # src/cli/common_options.cpp, so in `sidetap replay -w OUT A B` the
        # first input A became a second OUTPUT and was overwritten with
        # dnstap (only B replayed, exit 0). Fixed in 60dba4d.
        a = os.path.join(self.tmp.name, "a.pcap")
        b = os.path.join(self.tmp.name, "b.pcap")
        shutil.copy(oracle.own_pcap("udp-raw.pcap"), a)
        shutil.copy(oracle.own_pcap("udp-sll.pcap"), b)
        before = open(a, "rb").read()
        p = tl.run([SIDETAP["path"], "replay", "-w", self.out, a, b], check=False)
        self.assertEqual(open(a, "rb").read(), before, "input file overwritten by -w")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(tl.read_dnstap_file(self.out)), 8)


if __name__ == "__main__":
    oracle.main(SIDETAP)
