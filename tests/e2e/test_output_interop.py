#!/usr/bin/env python3
"""sidetap's socket outputs against real Frame Streams receivers.

Receivers: fstrm_capture (libfstrm 0.6.1) on a Unix socket and on TCP (IPv4
and IPv6), the golang-dnstap CLI (`dnstap -u` / `dnstap -l`), and
fstrm_capture behind a real TLS terminator (socat OPENSSL-LISTEN) with a CA
and server certificate made here with the openssl CLI.

Every received file must hold exactly the data frames of `sidetap replay -w
FILE` of the same input, in order (byte for byte: the frames are
deterministic for a given capture and --identity).

Receiver stop semantics (see the protocol reference, section 3):
- fstrm_capture is stopped with SIGTERM only after sidetap has exited (sidetap
  sends STOP and waits for FINISH); it flushes its stdio buffer and ends the
  file with STOP.
- `dnstap -u/-l ... -w FILE` does not flush its 4 KiB buffer on SIGINT/SIGTERM:
  the tail of the file is lost (the file ends mid-frame). So after the stream
  under test, a second short "filler" replay pushes the buffered tail out;
  the file must then start with every reference frame, followed by a prefix
  of the filler's frames (cut anywhere).

Also here: a 65535-byte DNS message over TCP gives a frame below golang-dnstap's
96 KiB limit that `dnstap -r` reads.
"""
import os
import signal
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_output_support as sup  # noqa: E402

tl = sup.tl
SIDETAP = {}
ID = ["--identity", "interop-test"]


class Interop(sup.OutputTestCase):
    @classmethod
    def prepare(cls, d):
        # UDP over IPv4 and IPv6, DNS over TCP, IP-fragmented responses.
        cls.pcap = sup.generate_pcap(os.path.join(d, "mixed.pcap"), 3000,
                                     "--tcp-share", "0.15", "--frag-share", "0.02")
        cls.filler = sup.generate_pcap(os.path.join(d, "filler.pcap"), 100, "--seed", "7")
        cls.ref = sup.reference_frames(SIDETAP["path"], cls.pcap, d, *ID)
        cls.filler_ref = sup.reference_frames(SIDETAP["path"], cls.filler, d, *ID)
        assert len(cls.ref) == 6000, len(cls.ref)
        cls.certs = sup.make_certs(d) if sup.OPENSSL else None

    # -- helpers

    def replay(self, dest, *args, pcap=None, check=True, timeout=60):
        # A receiver that is not there must fail the test, not hang it.
        bound = [] if "--reconnect-attempts" in args else ["--reconnect-attempts", "5"]
        cmd = [SIDETAP["path"], "replay", *ID, *bound, *args, "-w", dest, pcap or self.pcap]
        p = tl.run(cmd, check=False, timeout=timeout)
        if check:
            self.assertEqual(p.returncode, 0, "sidetap failed:\n" + p.stderr[-3000:])
        return p

    def assert_summary(self, stderr, dest, n):
        s = sup.output_summaries(stderr).get(dest)
        self.assertIsNotNone(s, "no summary for %s in:\n%s" % (dest, stderr))
        self.assertEqual((s["frames_written"], s["dropped"], s["too_large"], s["errors"], s["reconnects"]),
                         (n, 0, 0, 0, 0), stderr)

    def fstrm_capture(self, out, *where):
        tl.require_tool(sup.FSTRM_CAPTURE, "fstrm_capture")
        return self.procs.start([sup.FSTRM_CAPTURE, "-t", "protobuf:dnstap.Dnstap", *where, "-w", out])

    def stop_fstrm_capture_and_check(self, cap, out):
        rc, err = sup.Procs.stop(cap, signal.SIGTERM)
        self.assertEqual(rc, 0, err)
        self.assertIn("closed output file", err)
        ct, frames, stop = tl.read_frames(out)   # raises on bad framing
        self.assertEqual(ct, sup.CT)
        self.assertTrue(stop, "fstrm_capture ends its file with STOP")
        self.assertEqual(len(frames), len(self.ref))
        self.assertTrue(frames == self.ref, "received frames differ from the reference file")

    def check_dnstap_cli_file(self, out):
        ct, frames, _, _ = sup.read_frames_lenient(out)
        self.assertEqual(ct, sup.CT)
        self.assertGreaterEqual(len(frames), len(self.ref),
                                "the filler did not push the whole stream out of dnstap's buffer")
        self.assertTrue(frames[:len(self.ref)] == self.ref, "received frames differ from the reference file")
        rest = frames[len(self.ref):]
        self.assertEqual(rest, self.filler_ref[:len(rest)])

    # -- fstrm_capture

    def test_fstrm_capture_unix_socket_gets_every_frame_in_order(self):
        sock, out = os.path.join(self.d, "cap.sock"), os.path.join(self.d, "cap.fstrm")
        cap = self.fstrm_capture(out, "-u", sock)
        sup.wait_unix_listening(sock)
        dest = "unix://" + sock
        p = self.replay(dest)
        self.assert_summary(p.stderr, dest, len(self.ref))
        self.stop_fstrm_capture_and_check(cap, out)

    def test_fstrm_capture_tcp_ipv4_gets_every_frame_in_order(self):
        port, out = sup.free_port(), os.path.join(self.d, "cap.fstrm")
        cap = self.fstrm_capture(out, "-a", "127.0.0.1", "-p", str(port))
        sup.wait_tcp_listening(port)
        dest = "tcp://127.0.0.1:%d" % port
        p = self.replay(dest)
        self.assert_summary(p.stderr, dest, len(self.ref))
        self.stop_fstrm_capture_and_check(cap, out)

    def test_fstrm_capture_tcp_ipv6_gets_every_frame_in_order(self):
        port, out = sup.free_port(), os.path.join(self.d, "cap.fstrm")
        cap = self.fstrm_capture(out, "-a", "::1", "-p", str(port))
        try:
            sup.wait_tcp_listening(port)
        except AssertionError:
            self.skipTest("no IPv6 loopback listener (fstrm_capture -a ::1 failed: %s)"
                          % sup.Procs.stop(cap)[1].strip())
        dest = "tcp://[::1]:%d" % port
        p = self.replay(dest)
        self.assert_summary(p.stderr, dest, len(self.ref))
        self.stop_fstrm_capture_and_check(cap, out)

    # -- golang-dnstap CLI

    def test_dnstap_cli_unix_socket_gets_every_frame_in_order(self):
        tl.require_tool(sup.DNSTAP, "dnstap (golang-dnstap)")
        sock, out = os.path.join(self.d, "d.sock"), os.path.join(self.d, "d.fstrm")
        rx = self.procs.start([sup.DNSTAP, "-u", sock, "-w", out])
        sup.wait_unix_listening(sock)
        dest = "unix://" + sock
        p = self.replay(dest)
        self.assert_summary(p.stderr, dest, len(self.ref))
        self.replay(dest, pcap=self.filler)   # pushes dnstap's buffered tail into the file
        time.sleep(0.3)
        rc, err = sup.Procs.stop(rx, signal.SIGINT)
        self.assertNotIn("decoding error", err)
        self.assertNotIn("too large", err)
        self.check_dnstap_cli_file(out)

    def test_dnstap_cli_tcp_gets_every_frame_in_order(self):
        tl.require_tool(sup.DNSTAP, "dnstap (golang-dnstap)")
        port, out = sup.free_port(), os.path.join(self.d, "d.fstrm")
        rx = self.procs.start([sup.DNSTAP, "-l", "127.0.0.1:%d" % port, "-w", out])
        sup.wait_tcp_listening(port)
        dest = "tcp://127.0.0.1:%d" % port
        p = self.replay(dest)
        self.assert_summary(p.stderr, dest, len(self.ref))
        self.replay(dest, pcap=self.filler)
        time.sleep(0.3)
        rc, err = sup.Procs.stop(rx, signal.SIGINT)
        self.assertNotIn("decoding error", err)
        self.check_dnstap_cli_file(out)

    # -- TLS through socat in front of fstrm_capture

    def tls_terminator(self):
        tl.require_tool(sup.SOCAT, "socat")
        tl.require_tool(sup.OPENSSL, "openssl")
        sock, out = os.path.join(self.d, "cap.sock"), os.path.join(self.d, "cap.fstrm")
        cap = self.fstrm_capture(out, "-u", sock)
        sup.wait_unix_listening(sock)
        port = sup.free_port()
        c = self.certs
        self.procs.start([sup.SOCAT, "OPENSSL-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,cert=%s,key=%s,verify=0"
                          % (port, c["cert"], c["key"]), "UNIX-CONNECT:" + sock])
        sup.wait_tcp_listening(port)
        return cap, out, port

    def test_tls_with_verified_certificate_gets_every_frame_in_order(self):
        cap, out, port = self.tls_terminator()
        dest = "tls://127.0.0.1:%d" % port
        p = self.replay(dest, "--tls-ca", self.certs["ca"])
        self.assert_summary(p.stderr, dest, len(self.ref))
        self.stop_fstrm_capture_and_check(cap, out)

    def test_tls_by_host_name_with_ca_as_uri_parameter(self):
        cap, out, port = self.tls_terminator()
        dest = "tls://localhost:%d?tls-ca=%s" % (port, self.certs["ca"])
        p = self.replay(dest)
        s = list(sup.output_summaries(p.stderr).values())
        self.assertEqual(len(s), 1, p.stderr)
        self.assertEqual((s[0]["frames_written"], s[0]["dropped"], s[0]["errors"]), (len(self.ref), 0, 0))
        self.stop_fstrm_capture_and_check(cap, out)

    def test_tls_skip_verify_accepts_an_untrusted_certificate(self):
        cap, out, port = self.tls_terminator()
        dest = "tls://127.0.0.1:%d" % port
        # The test CA is in no trust store: only --tls-skip-verify lets this connect.
        p = self.replay(dest, "--tls-skip-verify")
        self.assert_summary(p.stderr, dest, len(self.ref))
        self.stop_fstrm_capture_and_check(cap, out)

    def test_tls_with_wrong_ca_fails_with_a_clear_error(self):
        cap, out, port = self.tls_terminator()
        dest = "tls://127.0.0.1:%d" % port
        t0 = time.monotonic()
        p = self.replay(dest, "--tls-ca", self.certs["other_ca"], "--reconnect-attempts", "2",
                        "--reconnect-initial", "50ms", "--reconnect-max", "200ms", check=False, timeout=30)
        elapsed = time.monotonic() - t0
        self.assertNotEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.returncode, 1, "an output failure is a runtime failure (exit 1):\n" + p.stderr)
        err = p.stderr.lower()
        self.assertTrue("certificate" in err and "verif" in err,
                        "no clear certificate verification error on stderr:\n" + p.stderr)
        self.assertIn("giving up", err)
        self.assertLess(elapsed, 20)
        s = sup.output_summaries(p.stderr)[dest]
        self.assertEqual(s["frames_written"], 0)
        # Once every output gave up the replay stops reading; what was encoded is
        # accounted as dropped.
        self.assertEqual(s["dropped"], sup.frames_encoded(p.stderr), "every frame encoded is accounted as dropped")
        self.assertLessEqual(sup.frames_encoded(p.stderr), len(self.ref))
        rc, _ = sup.Procs.stop(cap, signal.SIGTERM)
        _, frames, _ = tl.read_frames(out)
        self.assertEqual(frames, [])

    # -- frame size

    def test_65535_byte_dns_message_over_tcp_gives_a_frame_dnstap_reads(self):
        tl.require_tool(sup.DNSTAP, "dnstap (golang-dnstap)")
        pcap = os.path.join(self.d, "big-tcp.pcap")
        query, response = write_big_tcp_exchange(pcap)
        self.assertEqual(len(response), 65535)
        out = os.path.join(self.d, "big.fstrm")
        p = tl.run([SIDETAP["path"], "replay", *ID, "-w", out, pcap])
        s = sup.output_summaries(p.stderr)[out]
        self.assertEqual((s["frames_written"], s["too_large"]), (2, 0), p.stderr)
        _, frames, stop = tl.read_frames(out)
        self.assertTrue(stop)
        recs = [tl.decode_dnstap(f) for f in frames]
        self.assertEqual([r["type"] for r in recs], ["CLIENT_QUERY", "CLIENT_RESPONSE"])
        self.assertEqual(recs[1]["socket_protocol"], "TCP")
        self.assertEqual(recs[1]["response_message"], response)
        big = len(frames[1])
        self.assertGreater(big, 65535)
        self.assertLess(big, 96 * 1024, "the frame must stay under golang-dnstap's 96 KiB limit")
        # golang-dnstap reads it (a frame over 98304 bytes stops it with "data frame too large").
        r = tl.run([sup.DNSTAP, "-r", out, "-q"])
        lines = r.stdout.strip().splitlines()
        self.assertEqual(len(lines), 2, r.stdout + r.stderr)
        self.assertIn("65535b", lines[1])
        self.assertIn('"big.example."', lines[1])
        self.assertIn("TCP", lines[1])
        # ... and through a socket as well.
        sock, cout = os.path.join(self.d, "big.sock"), os.path.join(self.d, "big-cap.fstrm")
        cap = self.fstrm_capture(cout, "-u", sock)
        sup.wait_unix_listening(sock)
        tl.run([SIDETAP["path"], "replay", *ID, "-w", "unix://" + sock, pcap])
        sup.Procs.stop(cap)
        self.assertEqual(tl.read_frames(cout)[1], frames)


# ---------------------------------------------------------------- a 64 KiB DNS message over TCP

def _csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def _name(n):
    return b"".join(bytes([len(l)]) + l.encode() for l in n.split(".")) + b"\0"


def big_response(qid, question):
    """A valid DNS response of exactly 65535 bytes: TXT RRs, compressed owner names."""
    budget = 65535 - 12 - len(question)
    rrs = []
    while budget > 0:
        rdlen = min(1024, budget - 12)
        if budget - (12 + rdlen) < 13 and budget - (12 + rdlen) != 0:
            rdlen = budget - 12 - 13          # leave room for a last RR of at least 1 byte of rdata
        # rdata: character strings of up to 255 bytes
        rdata, left = b"", rdlen
        while left > 0:
            n = min(255, left - 1)
            rdata += bytes([n]) + b"x" * n
            left -= 1 + n
        rrs.append(b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, 300, len(rdata)) + rdata)
        budget -= 12 + len(rdata)
    header = struct.pack("!HHHHHH", qid, 0x8580, 1, len(rrs), 0, 0)
    msg = header + question + b"".join(rrs)
    assert len(msg) == 65535, len(msg)
    return msg


def write_big_tcp_exchange(path):
    """Ethernet/IPv4 pcap: TCP handshake, one query, a 65535-byte response in 1460-byte segments, FINs."""
    cli, srv = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 53])
    cport, sport = 40000, 53
    question = _name("big.example") + struct.pack("!HH", 16, 1)
    query = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + question
    response = big_response(0x4242, question)
    pkts = []
    t = [1_800_000_000, 0]

    def seg(src, dst, sp, dp, seq, ack, flags, payload=b""):
        tcp = struct.pack("!HHIIBBHHH", sp, dp, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", _csum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), len(pkts) & 0xFFFF, 0x4000, 64, 6, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
        eth = b"\x02\x00\x00\x00\x00\x53" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
        frame = eth + ip + tcp
        t[1] += 100
        pkts.append(struct.pack("<IIII", t[0], t[1], len(frame), len(frame)) + frame)

    A, S, F, P = 0x10, 0x02, 0x01, 0x08
    cseq, sseq = 1000, 5000
    seg(cli, srv, cport, sport, cseq, 0, S)
    seg(srv, cli, sport, cport, sseq, cseq + 1, S | A)
    cseq += 1
    sseq += 1
    seg(cli, srv, cport, sport, cseq, sseq, A)
    q = struct.pack("!H", len(query)) + query
    seg(cli, srv, cport, sport, cseq, sseq, A | P, q)
    cseq += len(q)
    r = struct.pack("!H", len(response)) + response
    for i in range(0, len(r), 1460):
        part = r[i:i + 1460]
        seg(srv, cli, sport, cport, sseq, cseq, A | (P if i + 1460 >= len(r) else 0), part)
        sseq += len(part)
    seg(cli, srv, cport, sport, cseq, sseq, A)
    seg(cli, srv, cport, sport, cseq, sseq, F | A)
    seg(srv, cli, sport, cport, sseq, cseq + 1, F | A)
    seg(cli, srv, cport, sport, cseq + 1, sseq + 1, A)
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    sup.write_pcap(path, header, pkts)
    return query, response


if __name__ == "__main__":
    SIDETAP["path"] = tl.sidetap_arg()
    unittest.main()
