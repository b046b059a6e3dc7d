#!/usr/bin/env python3
"""--extra templates (issue 14): every placeholder that a replay gives a
value, checked against tshark's view of the same packets ({frame} is
tshark's frame.number, {interface} its frame.interface_name, {vlan} the
outermost vlan.id, {tunnel} the outer IP header and tunnel id), per-output
?extra= and the sharing of one encoding per template, usage errors; and
unidirectional socket outputs (?handshake=none) delivered completely to
`sidetap listen` and to a plain socket reader whose bytes fstrm_dump
decodes. The extra field is read by the decoder in tests/lib and by protoc
(--decode against proto/dnstap.proto). The live, eBPF and TLS placeholders
are in tests/root/test_extra_live.py.

Captures: pcaps/make_extra_pcaps.py (extra-*.pcap*), make_pcaps.py,
make_tunnel_pcaps.py, make_tcp_pcaps.py."""
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402
from test_listen import Listener, summary  # noqa: E402

tl = oracle.tl
SIDETAP = {}
import test_listen  # noqa: E402
test_listen.SIDETAP = SIDETAP
PROTO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")


def tshark_fields(pcap, *fields):
    """{frame number: [values of each field, all occurrences, comma-joined]}"""
    cmd = ["tshark", "-r", pcap, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,",
           "-e", "frame.number"]
    for f in fields:
        cmd += ["-e", f]
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    out = {}
    for line in p.stdout.splitlines():
        cols = line.split("\t")
        out[int(cols[0])] = cols[1:] + [""] * (len(fields) + 1 - len(cols))
    return out


def protoc_extras(frames):
    """The extra field of each frame as protoc decodes it (None: absent)."""
    out = []
    for frame in frames:
        p = subprocess.run(["protoc", "--decode=dnstap.Dnstap", "-I", PROTO_DIR,
                            os.path.join(PROTO_DIR, "dnstap.proto")], input=frame, capture_output=True, check=True)
        m = re.search(rb'^extra: "(.*)"$', p.stdout, re.M)
        out.append(m.group(1).decode("unicode_escape").encode("latin-1") if m else None)
    return out


class ExtraTemplates(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = os.path.join(self.tmp.name, "out.fstrm")

    def tearDown(self):
        self.tmp.cleanup()

    def replay(self, inputs, *args):
        p = oracle.replay(SIDETAP["path"], inputs, self.out, *args)
        recs = tl.read_dnstap_file(self.out)
        return recs, oracle.parse_stats(p.stderr)

    def extras(self, recs):
        return [r.get("extra", b"").decode() for r in recs]

    def test_file_and_frame_over_several_files_match_tshark(self):
        # UDP, DNS over TCP split over segments (out of order: the message
        # carries the frame that completed it) and IP fragments inside
        # tunnels (the fragment that completed the datagram), as tshark
        # numbers and reassembles them.
        names = ["udp-ethernet.pcap", "tcp-three-segments-ooo.pcap", "tcp-len-split.pcap",
                 "tunnel-fragments.pcap"]
        paths = [oracle.own_pcap(n) for n in names]
        recs, _ = self.replay(paths, "--extra", "{file}#{frame}")
        extras = self.extras(recs)
        self.assertEqual(extras, [e.decode() for e in protoc_extras(tl.read_frames(self.out)[1])])
        for name, path in zip(names, paths):
            with self.subTest(file=name):
                mine = [(r, e) for r, e in zip(recs, extras) if e.startswith(name + "#")]
                expected = oracle.finish_expected(oracle.innermost_messages(path))
                self.assertEqual(len(mine), len(expected), name)
                self.assertGreater(len(mine), 0)
                for (r, e), x in zip(mine, expected):
                    wire = r.get("response_message") or r.get("query_message")
                    self.assertEqual(wire, x["wire"], name)
                    self.assertEqual(e, "%s#%d" % (name, x["frame"]), name)
        self.assertEqual(len(extras), sum(1 for e in extras if "#" in e))

    def test_interface_pcapng_names_else_index_classic_pcap_empty(self):
        for name in ("extra-interfaces.pcapng", "multi-interface.pcapng", "two-sections.pcapng", "udp-raw.pcap"):
            with self.subTest(file=name):
                path = oracle.own_pcap(name)
                recs, _ = self.replay([path], "--extra", "{frame}|{interface}")
                shark = tshark_fields(path, "frame.interface_name", "frame.interface_id")
                self.assertGreater(len(recs), 0)
                seen = set()
                for e in self.extras(recs):
                    frame, interface = e.split("|")
                    if_name, if_id = shark[int(frame)][:2]
                    if name.endswith(".pcap"):
                        want = ""
                    else:
                        want = if_name if if_name and if_name != "unknown" else if_id
                    self.assertEqual(interface, want, e)
                    seen.add(interface)
                if name == "extra-interfaces.pcapng":
                    self.assertEqual(seen, {"mirror0", "1", "trunk.7"})

    def test_vlan_outermost_id_empty_when_untagged(self):
        for name in ("extra-vlan.pcap", "udp-vlan-qinq.pcap"):
            with self.subTest(file=name):
                path = oracle.own_pcap(name)
                recs, _ = self.replay([path], "--extra", "{frame}|{vlan}")
                # tshark names an 802.1ad (0x88a8) tag ieee8021ad.id.
                shark = tshark_fields(path, "ieee8021ad.id", "vlan.id")
                got = []
                for e in self.extras(recs):
                    frame, vlan = e.split("|")
                    ids = shark[int(frame)][0] or shark[int(frame)][1]
                    self.assertEqual(vlan, ids.split(",")[0] if ids else "", e)
                    got.append(vlan)
                if name == "extra-vlan.pcap":
                    self.assertEqual(got, ["", "", "10", "10", "20", "20", "10", "20"])

    def test_tunnel_kind_outer_addresses_and_id(self):
        kinds = {"tunnel-vxlan.pcap": ("vxlan", "vxlan.vni"), "tunnel-gre.pcap": ("gre", "gre.key"),
                 "tunnel-geneve.pcap": ("geneve", "geneve.vni"), "tunnel-gtpu.pcap": ("gtpu", "gtp.teid")}
        for name, (kind, id_field) in kinds.items():
            with self.subTest(file=name):
                path = oracle.own_pcap(name)
                recs, _ = self.replay([path], "--extra", "{frame}|{tunnel}")
                shark = tshark_fields(path, "frame.protocols", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", id_field)
                self.assertGreater(len(recs), 0)
                for e in self.extras(recs):
                    frame, tunnel = e.split("|")
                    protocols, ip_src, ip_dst, ip6_src, ip6_dst, tid = shark[int(frame)][:6]
                    layers = protocols.split(":")
                    outer6 = layers.index("ipv6") < layers.index("ip") if "ip" in layers and "ipv6" in layers \
                        else "ipv6" in layers
                    src, dst = (ip6_src, ip6_dst) if outer6 else (ip_src, ip_dst)
                    want = "%s %s>%s" % (kind, src.split(",")[0], dst.split(",")[0])
                    if tid:
                        value = tid.split(",")[0]
                        want += " id=%d" % int(value, 16 if value.startswith("0x") else 10)
                    self.assertEqual(tunnel, want, e)
        recs, _ = self.replay([oracle.own_pcap("udp-ethernet.pcap")], "--extra", "<{tunnel}>")
        self.assertEqual(set(self.extras(recs)), {"<>"})

    def test_host_shard_and_literal_braces(self):
        recs, _ = self.replay([oracle.own_pcap("udp-raw.pcap")], "--extra", "{{{host}}} shard={shard} }}{{")
        self.assertEqual(set(self.extras(recs)), {"{%s} shard=0 }{" % socket.gethostname()})
        # No placeholder: the text as given, as before templates.
        recs, _ = self.replay([oracle.own_pcap("udp-raw.pcap")], "--extra", "rack=7 (no braces)")
        self.assertEqual({r["extra"] for r in recs}, {b"rack=7 (no braces)"})

    def test_placeholder_without_value_is_empty(self):
        recs, _ = self.replay([oracle.own_pcap("udp-raw.pcap")], "--extra", "[{interface}{vlan}{cgroup}{pid}{comm}]")
        self.assertEqual(set(self.extras(recs)), {"[]"})

    def test_unknown_placeholder_and_lone_braces_are_usage_errors(self):
        pcap = oracle.own_pcap("udp-raw.pcap")
        for text, what in (("{nope}", "unknown placeholder {nope}"), ("a{file", "unclosed '{'"),
                           ("a}b", "lone '}'"), ("{}", "unknown placeholder {}")):
            with self.subTest(text=text):
                p = oracle.replay(SIDETAP["path"], [pcap], self.out, "--extra", text, check=False)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(what, p.stderr)
                self.assertIn("--extra", p.stderr)
        p = tl.run([SIDETAP["path"], "replay", "-w", self.out + "?extra={vlan", pcap], check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("extra=", p.stderr)
        # read/listen forward frames as they are: no templates there.
        p = tl.run([SIDETAP["path"], "read", "-w", self.out + "?extra=x", self.out], check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown setting 'extra'", p.stderr)

    def test_per_output_extra_and_one_encoding_per_template(self):
        pcap = oracle.own_pcap("udp-ethernet.pcap")
        outs = [os.path.join(self.tmp.name, "o%d.fstrm" % i) for i in range(4)]
        p = tl.run([SIDETAP["path"], "replay", "--extra", "global",
                    "-w", outs[0] + "?extra={file}:{frame}", "-w", outs[1] + "?extra={file}:{frame}",
                    "-w", outs[2], "-w", outs[3] + "?wire=no&extra={frame}", "--", pcap])
        stats = oracle.parse_stats(p.stderr)
        recs = [tl.read_dnstap_file(o) for o in outs]
        n = len(recs[0])
        self.assertEqual(n, 10)
        self.assertEqual(recs[0], recs[1])
        self.assertEqual([r["extra"] for r in recs[0]],
                         [b"udp-ethernet.pcap:%d" % i for i in range(1, 11)])
        self.assertEqual({r["extra"] for r in recs[2]}, {b"global"})
        self.assertEqual([r["extra"] for r in recs[3]], [b"%d" % i for i in range(1, 11)])
        self.assertNotIn("query_message", recs[3][0])
        # Outputs 0 and 1 share one encoding: three encodings per message.
        self.assertEqual(stats["frames"], 3 * n)

    def test_golang_dnstap_reads_templated_output(self):
        # golang-dnstap 0.4.0 (Debian 12) does not print `extra`; it must
        # still read every message.
        recs, _ = self.replay([oracle.own_pcap("extra-vlan.pcap")], "--extra", "{file}:{frame}:{vlan}")
        self.assertEqual(len(oracle.dnstap_json(self.out)), len(recs))
        self.assertEqual([e.decode() for e in protoc_extras(tl.read_frames(self.out)[1])], self.extras(recs))
        self.assertEqual(self.extras(recs)[2], "extra-vlan.pcap:3:10")


class UnixReader(threading.Thread):
    """A plain socket reader: accepts one connection, keeps every byte."""

    def __init__(self, family, address):
        super().__init__(daemon=True)
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(address)
        self.sock.listen(1)
        self.sock.settimeout(30)
        self.data = b""

    def run(self):
        try:
            conn, _ = self.sock.accept()
            with conn:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    self.data += chunk
        finally:
            self.sock.close()


class Unidirectional(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmpdir = tempfile.TemporaryDirectory(prefix="sx-", dir="/tmp")
        cls.pcap = oracle.shared_pcap("dnscap-dns.pcap")
        ref = os.path.join(cls.tmpdir.name, "ref.fstrm")
        tl.run([SIDETAP["path"], "replay", "-q", "--extra", "{frame}", "-w", ref, cls.pcap])
        _, cls.ref_frames, _ = tl.read_frames(ref)
        assert len(cls.ref_frames) > 50

    @classmethod
    def tearDownClass(cls):
        cls.tmpdir.cleanup()

    def sidetap_to(self, dest):
        return tl.run([SIDETAP["path"], "replay", "--extra", "{frame}", "-w", dest, "--", self.pcap])

    def test_unidirectional_to_sidetap_listen_complete(self):
        sock = os.path.join(self.tmpdir.name, "listen.sock")
        out = os.path.join(self.tmpdir.name, "listen.fstrm")
        lst = Listener(self, self.tmpdir.name, "-u", sock, "-w", out, "-v")
        p = self.sidetap_to("unix://%s?handshake=none" % sock)
        stats = oracle.parse_stats(p.stderr)
        self.assertIn("frames_written=%d " % len(self.ref_frames), p.stderr)
        lst.wait_for("STOP")
        self.assertEqual(lst.stop(), 0)
        s = summary(lst.stderr())
        self.assertEqual((s["unidirectional"], s["bidirectional"]), (1, 0), lst.stderr())
        _, frames, saw_stop = tl.read_frames(out)
        self.assertTrue(saw_stop)
        self.assertEqual(frames, self.ref_frames)
        self.assertEqual(stats.get("frames"), len(self.ref_frames))

    def check_plain_reader(self, reader, dest):
        reader.start()
        self.sidetap_to(dest)
        reader.join(30)
        self.assertFalse(reader.is_alive())
        path = os.path.join(self.tmpdir.name, "plain-%d.fstrm" % time.monotonic_ns())
        with open(path, "wb") as f:
            f.write(reader.data)
        controls, ctypes, sizes = oracle.fstrm_dump(path)
        self.assertEqual(controls, ["START", "STOP"])
        self.assertEqual(ctypes, ["protobuf:dnstap.Dnstap"])
        self.assertEqual(sizes, [len(f) for f in self.ref_frames])
        self.assertEqual(tl.read_frames(path)[1], self.ref_frames)

    def test_unidirectional_unix_to_plain_reader_fstrm_dump(self):
        sock = os.path.join(self.tmpdir.name, "plain.sock")
        self.check_plain_reader(UnixReader(socket.AF_UNIX, sock), "unix://%s?handshake=none" % sock)

    def test_unidirectional_tcp_to_plain_reader_fstrm_dump(self):
        reader = UnixReader(socket.AF_INET, ("127.0.0.1", 0))
        port = reader.sock.getsockname()[1]
        self.check_plain_reader(reader, "tcp://127.0.0.1:%d?handshake=none" % port)

    def test_handshake_values_and_files(self):
        for dest in ("tcp://127.0.0.1:9?handshake=maybe", os.path.join(self.tmpdir.name, "f?handshake=none")):
            p = tl.run([SIDETAP["path"], "replay", "-w", dest, "--", self.pcap], check=False)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("handshake", p.stderr)


if __name__ == "__main__":
    oracle.main(SIDETAP)
