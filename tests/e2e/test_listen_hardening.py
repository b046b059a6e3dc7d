#!/usr/bin/env python3
"""`sidetap listen` against hostile or careless peers, with real clients:

- mutual TLS (--tls-client-ca) with openssl-made CAs: sidetap's own tls://
  output with a client certificate and socat get in; `openssl s_client`
  without a certificate and socat with a certificate from another CA are
  refused and counted;
- a thousand slow or idle connections (half-sent large frames, idle after
  START) neither exhaust memory (the listener's peak RSS) nor lock out real
  writers (sidetap replay and fstrm_replay deliver everything);
- --idle-timeout, --stats-interval, and --metrics next to a slowloris client.

Only loopback; every process started here is stopped by its PID."""
import http.client
import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402
import test_listen  # noqa: E402
from test_listen import CT, Listener, control, data_frame, free_port, summary  # noqa: E402

tl = oracle.tl
SIDETAP = test_listen.SIDETAP  # the same holder: Listener reads it
PCAP = test_listen.PCAP


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for %d" % (field, pid))


def sanitized(binary):
    """True for an ASan build (its shadow memory and quarantine make RSS meaningless)."""
    with open(binary, "rb") as fh:
        return b"__asan_init" in fh.read()


def make_pki(d):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"]
    tl.run(["openssl", "req", "-x509", *ec, "-subj", "/CN=test-ca", "-keyout", d + "/ca.key", "-out", d + "/ca.pem"])
    tl.run(["openssl", "req", "-x509", *ec, "-subj", "/CN=other-ca", "-keyout", d + "/other.key",
            "-out", d + "/other.pem"])
    tl.run(["openssl", "req", "-x509", *ec, "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", d + "/server.key", "-out", d + "/server.pem"])
    for name, ca in (("client", "ca"), ("intruder", "other")):
        tl.run(["openssl", "req", *ec[:-2], "-subj", "/CN=" + name, "-keyout", "%s/%s.key" % (d, name),
                "-out", "%s/%s.csr" % (d, name)])
        tl.run(["openssl", "x509", "-req", "-in", "%s/%s.csr" % (d, name), "-CA", "%s/%s.pem" % (d, ca),
                "-CAkey", "%s/%s.key" % (d, ca), "-CAcreateserial", "-days", "2", "-out", "%s/%s.pem" % (d, name)])


class ListenHardening(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmpdir = tempfile.TemporaryDirectory(prefix="slh-", dir="/tmp")
        cls.src = os.path.join(cls.tmpdir.name, "src.fstrm")
        tl.run([SIDETAP["path"], "replay", "-q", "--identity", "e2e", "-w", cls.src, PCAP])
        _, cls.src_frames, _ = tl.read_frames(cls.src)
        assert len(cls.src_frames) > 50

    @classmethod
    def tearDownClass(cls):
        cls.tmpdir.cleanup()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(dir=self.tmpdir.name)
        self.out = os.path.join(self.tmp, "out.fstrm")

    def frames_of(self, path):
        tl.read_dnstap_file(path)
        return tl.read_frames(path)[1]

    # --- mutual TLS --------------------------------------------------------

    def test_mutual_tls_admits_only_writers_with_a_certificate_from_the_client_ca(self):
        for tool in ("openssl", "socat"):
            tl.require_tool(tool)
        d = self.tmp
        make_pki(d)
        lst = Listener(self, self.tmp, "-l", "127.0.0.1:0", "--tls-cert", d + "/server.pem", "--tls-key",
                       d + "/server.key", "--tls-client-ca", d + "/ca.pem", "-w", self.out, "-v")
        self.assertNotIn("anyone who reaches the port can write", lst.stderr())
        port = lst.tcp_port()

        # openssl s_client without a client certificate: the handshake fails.
        p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", d + "/server.pem",
                            "-verify_return_error"],
                           input=control(4, [CT]), capture_output=True, timeout=20)
        self.assertNotIn(control(1, [CT]), p.stdout, "no ACCEPT without a certificate")
        # socat with a certificate from another CA.
        p = subprocess.run(["socat", "-u", "OPEN:%s" % self.src,
                            "OPENSSL:127.0.0.1:%d,cert=%s/intruder.pem,key=%s/intruder.key,cafile=%s/server.pem"
                            % (port, d, d, d)], capture_output=True, timeout=20)
        # sidetap's own tls:// output with the right certificate (bidirectional).
        tl.run([SIDETAP["path"], "replay", "-q", "--identity", "e2e", "--tls-cert", d + "/client.pem",
                "--tls-key", d + "/client.key", "-w", "tls://127.0.0.1:%d?tls-ca=%s/server.pem" % (port, d), PCAP],
               timeout=60)
        lst.wait_for("STOP")
        # socat with the right certificate, streaming a dnstap file (unidirectional).
        tl.run(["socat", "-u", "OPEN:%s" % self.src,
                "OPENSSL:127.0.0.1:%d,cert=%s/client.pem,key=%s/client.key,cafile=%s/server.pem"
                % (port, d, d, d)], timeout=20)
        lst.wait_for("unidirectional (START without READY) session started")
        time.sleep(0.3)
        self.assertEqual(lst.stop(), 0)
        err = lst.stderr()
        s = summary(err)
        self.assertEqual(s["refused_client_certificate"], 2, err)
        self.assertEqual((s["bidirectional"], s["unidirectional"]), (1, 1), err)
        self.assertIn("TLS client certificate: none sent (--tls-client-ca requires one)", err)
        self.assertIn("(CN=client)", err, "the verified subject names the writer")
        self.assertEqual(self.frames_of(self.out), self.src_frames * 2)

    def test_tls_listener_without_client_ca_says_anyone_can_write(self):
        d = self.tmp
        make_pki(d)
        lst = Listener(self, self.tmp, "-l", "127.0.0.1:0", "--tls-cert", d + "/server.pem", "--tls-key",
                       d + "/server.key", "-w", self.out)
        self.assertIn("anyone who reaches the port can write", lst.stderr())
        self.assertEqual(lst.stop(), 0)

    def test_tls_ca_on_listen_is_for_outputs_only(self):
        d = self.tmp
        make_pki(d)
        tls = ["-l", "127.0.0.1:0", "--tls-cert", d + "/server.pem", "--tls-key", d + "/server.key"]
        p = tl.run([SIDETAP["path"], "listen", *tls, "--tls-ca", d + "/ca.pem", "-w", self.out], check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--tls-client-ca", p.stderr)
        p = tl.run([SIDETAP["path"], "listen", "-l", "127.0.0.1:0", "--tls-client-ca", d + "/ca.pem",
                    "-w", self.out], check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("needs a TLS listener", p.stderr)
        p = tl.run([SIDETAP["path"], "listen", *tls, "--tls-client-ca", d + "/nope.pem", "-w", self.out],
                   check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("nope.pem", p.stderr)

    # --- a thousand slow or idle connections ------------------------------

    def test_thousand_slow_or_idle_connections_neither_exhaust_memory_nor_lock_out_writers(self):
        tl.require_tool("fstrm_replay")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 3000:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
        budget_mib = 32
        lst = Listener(self, self.tmp, "-l", "127.0.0.1:0", "--max-receive-memory", "%dM" % budget_mib,
                       "-w", self.out)
        port = lst.tcp_port()
        rss_start = status_kib(lst.proc.pid, "VmRSS")
        hogs = []
        half = struct.pack(">I", 1_000_000) + b"\x0a" * 400_000  # 40% of a 1 MB frame
        try:
            for i in range(1000):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                hogs.append(s)
                s.sendall(control(4, [CT]))
                self.assertEqual(s.recv(4096), control(1, [CT]))
                s.sendall(control(2, [CT]))
                if i % 2 == 0:  # every other one sends what the kernel takes of a large frame, then stalls
                    s.setblocking(False)
                    try:
                        s.send(half)
                    except BlockingIOError:
                        pass
            # Let the listener read what it can; the writers have been idle > 1 s.
            time.sleep(2.5)
            rss_hogs = status_kib(lst.proc.pid, "VmRSS")
            # Real writers: one slot and some buffer each must free up for them.
            tl.run([SIDETAP["path"], "replay", "-q", "--identity", "e2e", "--reconnect-attempts", "3",
                    "-w", "tcp://127.0.0.1:%d" % port, PCAP], timeout=60)
            tl.run(["fstrm_replay", "-t", CT.decode(), "-a", "127.0.0.1", "-p", str(port), "-r", self.src],
                   timeout=60)
            time.sleep(0.3)
            peak = status_kib(lst.proc.pid, "VmHWM")
        finally:
            for s in hogs:
                s.close()
        self.assertEqual(lst.stop(), 0)
        err = lst.stderr()
        s = summary(err)
        print("\n  1000 hogs: listener RSS %d MiB at start, %d MiB with the hogs, peak %d MiB; budget %d MiB; "
              "memory_peak=%d evicted=%d evicted_for_memory=%d out_of_memory=%d"
              % (rss_start >> 10, rss_hogs >> 10, peak >> 10, budget_mib, s["memory_peak"] >> 20, s["evicted"],
                 s["evicted_for_memory"], s["out_of_memory"]), file=sys.stderr)
        self.assertLessEqual(s["memory_peak"], budget_mib << 20)
        # Budget + 1000 threads and sockets + the frame queue; without the
        # budget the half-sent frames alone took ~1 GB.
        if not sanitized(SIDETAP["path"]):
            self.assertLess(peak, (budget_mib + 100) << 10, "peak RSS in KiB")
        # Their slots and buffers came from hogs the listener closed: evicted
        # for a slot or for memory, or out of memory while waiting.
        self.assertGreater(s["evicted"] + s["evicted_for_memory"] + s["out_of_memory"], 0)
        writers = "\n".join(l for l in err.splitlines()
                             if "frames=" in l and " frames=0 " not in l or l.startswith("sidetap: listen "))
        self.assertEqual(s["finished"], 2, writers)
        self.assertEqual(self.frames_of(self.out), self.src_frames * 2, "everything the real writers sent")

    def test_thousand_idle_writers_holding_every_slot_make_room_for_a_real_one(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 3000:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
        lst = Listener(self, self.tmp, "-l", "127.0.0.1:0", "-w", self.out)
        port = lst.tcp_port()
        idle = []
        try:
            for _ in range(1000):  # --max-connections 1000: every slot
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                idle.append(s)
                s.sendall(control(4, [CT]))
                self.assertEqual(s.recv(4096), control(1, [CT]))
                s.sendall(control(2, [CT]))
            time.sleep(1.5)  # idle for longer than the 1 s an evicted connection must have been idle
            for _ in range(2):
                tl.run([SIDETAP["path"], "replay", "-q", "--identity", "e2e", "--reconnect-attempts", "1",
                        "-w", "tcp://127.0.0.1:%d" % port, PCAP], timeout=60)
            peak = status_kib(lst.proc.pid, "VmHWM")
        finally:
            for s in idle:
                s.close()
        self.assertEqual(lst.stop(), 0)
        s = summary(lst.stderr())
        # The first writer evicts the longest-idle connection; the second
        # finds the slot the first left when it finished.
        self.assertEqual((s["evicted"], s["refused_max_connections"], s["finished"]), (1, 0, 2))
        self.assertEqual(self.frames_of(self.out), self.src_frames * 2)
        if not sanitized(SIDETAP["path"]):
            self.assertLess(peak, 100 << 10, "1000 idle writers cost threads and sockets, no buffers (KiB)")

    def test_idle_writer_is_closed_after_the_idle_timeout(self):
        sock = os.path.join(self.tmp, "l.sock")
        lst = Listener(self, self.tmp, "-u", sock, "--idle-timeout", "1s", "-w", self.out, "-v")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        s.sendall(control(4, [CT]))
        self.assertEqual(s.recv(4096), control(1, [CT]))
        s.sendall(control(2, [CT]) + data_frame(self.src_frames[0]))
        t0 = time.monotonic()
        s.settimeout(5)
        self.assertEqual(s.recv(100), b"", "closed by the listener")
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        s.close()
        self.assertEqual(lst.stop(), 0)
        self.assertIn("no complete frame for 1000 ms (--idle-timeout)", lst.stderr())
        self.assertEqual(summary(lst.stderr())["idle_timeout"], 1)
        self.assertEqual(self.frames_of(self.out), self.src_frames[:1])

    # --- metrics and stats --------------------------------------------------

    def test_metrics_answer_100_scrapes_next_to_a_slowloris_client(self):
        mport = free_port()
        sock = os.path.join(self.tmp, "l.sock")
        lst = Listener(self, self.tmp, "-u", sock, "--metrics", "127.0.0.1:%d" % mport, "--stats-interval", "200ms",
                       "-w", self.out)
        lst.wait_for("metrics on port %d" % mport)
        tl.run([SIDETAP["path"], "replay", "-q", "--identity", "e2e", "-w", "unix://" + sock, PCAP])
        time.sleep(1.2)  # the board is refreshed every second

        slow = socket.create_connection(("127.0.0.1", mport))
        stop = threading.Event()

        def dribble():
            for b in b"GET /metrics HTTP/1.0\r\nX-Slow: " + b"a" * 1000:
                if stop.is_set():
                    return
                try:
                    slow.send(bytes([b]))
                except OSError:
                    return
                time.sleep(0.05)

        t = threading.Thread(target=dribble)
        t.start()
        worst = 0.0
        bodies = []
        try:
            t_all = time.monotonic()
            for _ in range(100):
                t0 = time.monotonic()
                c = http.client.HTTPConnection("127.0.0.1", mport, timeout=3)
                c.request("GET", "/metrics")
                r = c.getresponse()
                self.assertEqual(r.status, 200)
                bodies.append(r.read().decode())
                c.close()
                worst = max(worst, time.monotonic() - t0)
            total = time.monotonic() - t_all
        finally:
            stop.set()
            t.join()
            slow.close()
        self.assertLess(worst, 1.0, "one scrape waited for the slow client")
        self.assertLess(total, 4.5, "100 scrapes inside the slow client's request deadline")
        body = bodies[-1]
        n = len(self.src_frames)
        for line in ("sidetap_listen_connections_total 1", "sidetap_listen_frames_total %d" % n,
                     'sidetap_listen_closed_total{cause="finished"} 1',
                     'sidetap_listen_refused_total{cause="client_certificate"} 0',
                     "sidetap_listen_receive_memory_limit_bytes %d" % (128 << 20),
                     'sidetap_output_frames_written_total{output="%s"} %d' % (self.out, n)):
            self.assertIn(line + "\n", body)
        self.assertEqual(lst.stop(), 0)
        err = lst.stderr()
        self.assertIn("sidetap: stats connections=1 active=0 frames=%d" % n, err)
        self.assertIn("| output %s queue=0 dropped=0 written=%d" % (self.out, n), err)


if __name__ == "__main__":
    oracle.main(SIDETAP)
