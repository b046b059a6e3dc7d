#!/usr/bin/env python3
"""sidetap's output decoded by three independent decoders agrees with the
oracle: golang-dnstap (`dnstap -r F -j`), dnstap-ldns (`-q`) and fstrm_dump.
Checks counts, types, family/protocol, addresses, ports, RFC3339Nano times
(UTC), message sizes and the Frame Streams structure (START + content type,
data frame sizes, STOP)."""
import os
import socket
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402

tl = oracle.tl
SIDETAP = {}

CAPTURES = [oracle.own_pcap("udp-ethernet.pcap"), oracle.own_pcap("udp-ethernet-ns-be.pcap"),
            oracle.own_pcap("multi-interface.pcapng"), oracle.own_pcap("udp-vlan-qinq.pcap"),
            oracle.shared_pcap("dnscap-dns.pcap"), oracle.shared_pcap("ndpi-dns-google-nsid.pcapng"),
            oracle.shared_pcap("derived-dnscap-edns-nsec.pcapng"), oracle.shared_pcap("tcpdump-time_2106_max.pcap")]
MNEMONIC = {"CLIENT_QUERY": "CQ", "CLIENT_RESPONSE": "CR", "AUTH_QUERY": "AQ", "AUTH_RESPONSE": "AR"}


class DecodersAgree(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        oracle.messages_for_files(CAPTURES + [oracle.shared_pcap("dnscap-edns.pcap")])

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = os.path.join(self.tmp.name, "out.fstrm")

    def tearDown(self):
        self.tmp.cleanup()

    def replay(self, pcap, *args):
        oracle.replay(SIDETAP["path"], [pcap], self.out, "-q", *args)
        return oracle.expected_messages(pcap, role="auth" if "auth" in args else "client")

    def check_golang_dnstap_json(self, expected, identity, version):
        rows = oracle.dnstap_json(self.out)
        self.assertEqual(len(rows), len(expected))
        for i, (j, e) in enumerate(zip(rows, expected)):
            m = j["message"]
            self.assertEqual(j["type"], "MESSAGE")
            self.assertEqual(j.get("identity"), identity)
            self.assertEqual(j.get("version"), version)
            self.assertEqual(m["type"], e["type"], i)
            self.assertEqual(m["socket_family"], e["socket_family"], i)
            self.assertEqual(m["socket_protocol"], "UDP", i)
            self.assertEqual(m["query_address"], e["query_address"], i)
            self.assertEqual(m["response_address"], e["response_address"], i)
            self.assertEqual(m.get("query_port"), e["query_port"], i)
            self.assertEqual(m.get("response_port"), e["response_port"], i)
            key = "response_time" if e["is_response"] else "query_time"
            self.assertEqual(m.get(key), oracle.rfc3339nano(e["time_ns"]), i)
            if e["is_response"]:  # the paired query's time, absent when unpaired
                qt = e.get("query_time_ns")
                self.assertEqual(m.get("query_time"), None if qt is None else oracle.rfc3339nano(qt), i)
            self.assertIn("response_message" if e["is_response"] else "query_message", m, i)

    def check_ldns(self, expected):
        rows = oracle.dnstap_ldns(self.out)
        self.assertEqual(len(rows), len(expected))
        for i, (r, e) in enumerate(zip(rows, expected)):
            t, mnem, addr, proto, size = r
            sec, frac = divmod(e["time_ns"], 10 ** 9)
            want_t = oracle.rfc3339nano(sec * 10 ** 9)[:-1].replace("T", " ") + ".%06d" % (frac // 1000)
            self.assertEqual(t, want_t, i)            # UTC, truncated to µs
            self.assertEqual(mnem, MNEMONIC[e["type"]], i)
            self.assertEqual(addr, e["query_address"], i)
            self.assertEqual(proto, "UDP", i)
            self.assertEqual(size, len(e["wire"]), i)

    def check_fstrm_dump(self, expected):
        controls, ctypes, sizes = oracle.fstrm_dump(self.out)
        self.assertEqual(controls, ["START", "STOP"])
        self.assertEqual(ctypes, ["protobuf:dnstap.Dnstap"])
        _, frames, saw_stop = tl.read_frames(self.out)
        self.assertTrue(saw_stop)
        self.assertEqual(sizes, [len(f) for f in frames])
        self.assertEqual(len(sizes), len(expected))
        self.assertTrue(all(s <= 96 * 1024 for s in sizes))

    def test_three_decoders_agree_with_oracle(self):
        for pcap in CAPTURES:
            with self.subTest(capture=os.path.basename(pcap)):
                expected = self.replay(pcap, "--identity", "e2e-id", "--version", "e2e-ver")
                oracle.compare(self, expected, tl.read_dnstap_file(self.out), os.path.basename(pcap))
                self.check_golang_dnstap_json(expected, "e2e-id", "e2e-ver")
                self.check_ldns(expected)
                self.check_fstrm_dump(expected)

    def test_auth_role_seen_by_all_decoders(self):
        pcap = oracle.own_pcap("udp-ethernet.pcap")
        expected = self.replay(pcap, "--role", "auth", "--identity", "x", "--version", "y")
        self.assertTrue(all(e["type"].startswith("AUTH_") for e in expected))
        oracle.compare(self, expected, tl.read_dnstap_file(self.out), "auth")
        self.check_golang_dnstap_json(expected, "x", "y")
        self.check_ldns(expected)
        self.check_fstrm_dump(expected)

    def test_yaml_output_has_every_message(self):
        pcap = oracle.shared_pcap("dnscap-edns.pcap")
        expected = self.replay(pcap)
        p = tl.run(["dnstap", "-r", self.out, "-y"])
        self.assertEqual(p.stdout.count("\n---"), len(expected))
        self.assertEqual(p.stdout.count("type: CLIENT_QUERY"), sum(not e["is_response"] for e in expected))
        self.assertEqual(p.stdout.count("type: CLIENT_RESPONSE"), sum(e["is_response"] for e in expected))
        self.assertIn("identity: \"%s\"" % socket.gethostname(), p.stdout)


if __name__ == "__main__":
    oracle.main(SIDETAP)
