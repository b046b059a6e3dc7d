#!/usr/bin/env python3
"""Socket outputs under faults: a collector that is not there yet, one that is
killed and restarted during a long stream, one that accepts and never reads,
one that answers with the wrong content type.

Accounting invariant checked throughout: every frame sidetap encoded (frames=
on the stats line) is either in a receiver's file or counted as dropped in the
output summary -- exactly. The kill/restart test makes that exact by killing
the receiver only when nothing is in flight: the slow source is paused,
sidetap has flushed (flush-interval 50 ms) and the receiver's socket has no
unread bytes (ss -x Recv-Q = 0); fstrm_capture then flushes its stdio buffer
and writes STOP on SIGTERM, so it loses nothing it has read.
"""
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_output_support as sup  # noqa: E402

tl = sup.tl
SIDETAP = {}
ID = ["--identity", "faults-test"]


class Faults(sup.OutputTestCase):
    @classmethod
    def prepare(cls, d):
        cls.pcap = sup.generate_pcap(os.path.join(d, "mixed.pcap"), 3000, "--tcp-share", "0.1")
        cls.ref = sup.reference_frames(SIDETAP["path"], cls.pcap, d, *ID)
        cls.big = sup.generate_pcap(os.path.join(d, "big.pcap"), 150000)

    def fstrm_capture(self, sock, out):
        tl.require_tool(sup.FSTRM_CAPTURE, "fstrm_capture")
        p = self.procs.start([sup.FSTRM_CAPTURE, "-t", "protobuf:dnstap.Dnstap", "-u", sock, "-w", out])
        sup.wait_unix_listening(sock)
        return p

    def sidetap(self, *args):
        return self.procs.start([SIDETAP["path"], "replay", *ID, *args], stderr=subprocess.PIPE)

    def finish(self, p, timeout=30):
        _, err = p.communicate(timeout=timeout)
        return p.returncode, err.decode(errors="replace")

    # ------------------------------------------------------------------

    def test_receiver_absent_at_start_then_started_gets_everything(self):
        sock, out = os.path.join(self.d, "late.sock"), os.path.join(self.d, "late.fstrm")
        dest = "unix://" + sock
        # Block policy (replay's default), a queue smaller than the input: the
        # replay must wait for the collector, not drop.
        p = self.sidetap("--queue", "500", "--reconnect-initial", "50ms", "--reconnect-max", "200ms",
                         "-w", dest, self.pcap)
        time.sleep(0.8)
        self.assertIsNone(p.poll(), "replay must wait for the absent collector (on-full block)")
        cap = self.fstrm_capture(sock, out)
        rc, err = self.finish(p)
        self.assertEqual(rc, 0, err)
        s = sup.output_summaries(err)[dest]
        self.assertEqual((s["frames_written"], s["dropped"], s["too_large"]), (len(self.ref), 0, 0), err)
        self.assertIn("No such file or directory; retrying", err)   # the outage was logged, once
        self.assertEqual(err.count("; retrying"), 1, err)
        self.assertIn("connected", err)
        # reconnects counts successful opens after the first (0 here); the outage
        # shows as failed opens.
        self.assertEqual(s["reconnects"], 0)
        self.assertGreaterEqual(s["open_failures"], 1)
        sup.Procs.stop(cap)
        _, frames, stop = tl.read_frames(out)
        self.assertTrue(stop)
        self.assertTrue(frames == self.ref, "frames differ from the reference")

    def test_receiver_killed_and_restarted_during_a_long_stream(self):
        tl.require_tool(sup.FSTRM_CAPTURE, "fstrm_capture")
        sock = os.path.join(self.d, "cap.sock")
        fifo = os.path.join(self.d, "src.fifo")
        dest = "unix://" + sock
        files = [os.path.join(self.d, "cap-0.fstrm")]
        cap = self.fstrm_capture(sock, files[0])
        src = sup.SlowSource(fifo, self.pcap, rate=1500).start()
        p = self.sidetap("--on-full", "drop", "--queue", "300", "--flush-interval", "50ms",
                         "--reconnect-initial", "50ms", "--reconnect-max", "500ms", "-w", dest, fifo)
        latencies = []
        try:
            for cycle in range(1, 4):
                time.sleep(0.8)                      # data flows to the live receiver
                src.pause()
                time.sleep(0.3)                      # > flush-interval: sidetap has written everything
                sup.wait_for(lambda: sup.unix_recv_queue_empty(sock), 5, what="receiver to read everything")
                self.assertIsNone(p.poll(), "sidetap exited early")
                rc, err = sup.Procs.stop(cap, signal.SIGTERM)
                self.assertEqual(rc, 0, err)
                src.resume()
                time.sleep(0.7)                      # receiver down: the queue fills, frames are dropped
                files.append(os.path.join(self.d, "cap-%d.fstrm" % cycle))
                t0 = time.monotonic()
                cap = self.fstrm_capture(sock, files[-1])
                # The queue (300 frames, ~40 KB) goes out at once on reconnect;
                # fstrm_capture's 4 KiB stdio buffer then reaches the file.
                sup.wait_for(lambda: os.path.getsize(files[-1]) > 4096, 3, what="data to flow again")
                latencies.append(time.monotonic() - t0)
            src.finish()
            rc, err = self.finish(p)
        finally:
            src.stop()
        self.assertEqual(src.sent, len(src.records))
        self.assertIn(rc, (0, 1), err)
        sup.Procs.stop(cap, signal.SIGTERM)
        # Backoff bound: reconnect-max 500 ms (with jitter below it), so data
        # flows again well within ~1 s of the restart.
        for lat in latencies:
            self.assertLess(lat, 1.2, "latencies %r" % latencies)
        s = sup.output_summaries(err)[dest]
        encoded = sup.frames_encoded(err)
        self.assertEqual(encoded, len(self.ref))
        delivered = []
        for f in files:
            ct, frames, stop = tl.read_frames(f)
            self.assertEqual(ct, sup.CT, f)
            self.assertTrue(stop, f)
            delivered += frames
        if os.environ.get("OUTE2E_VERBOSE"):
            print("\nkill/restart: rc=%d latencies=%s files=%s summary=%s encoded=%d"
                  % (rc, ["%.3f" % x for x in latencies],
                     [len(tl.read_frames(f)[1]) for f in files], s, encoded), file=sys.stderr)
        self.assertGreater(s["dropped"], 0, "the outages were meant to overflow the queue")
        self.assertGreaterEqual(s["reconnects"], 3, err)
        self.assertEqual(s["frames_written"], len(delivered), err)
        self.assertEqual(len(delivered) + s["dropped"] + s["too_large"], encoded,
                         "delivered %d + dropped %d != encoded %d\n%s"
                         % (len(delivered), s["dropped"], encoded, err))
        self.assertTrue(sup.is_subsequence(delivered, self.ref), "delivered frames out of order or altered")

    def test_receiver_that_never_reads_drops_and_exit_is_bounded(self):
        t0 = time.monotonic()
        tl.run([SIDETAP["path"], "replay", "-q", "-w", "/dev/null", self.big])
        baseline = time.monotonic() - t0
        sock = os.path.join(self.d, "stuck.sock")
        srv = sup.FstrmServer(sock, "never-read")
        dest = "unix://" + sock
        drain = 1.0
        try:
            t0 = time.monotonic()
            p = tl.run([SIDETAP["path"], "replay", *ID, "--on-full", "drop", "--queue", "1000",
                        "--drain-timeout", "%gs" % drain, "-w", dest, self.big], check=False, timeout=60)
            wall = time.monotonic() - t0
        finally:
            srv.close()
        self.assertIn(p.returncode, (0, 1), p.stderr)
        s = sup.output_summaries(p.stderr)[dest]
        encoded = sup.frames_encoded(p.stderr)
        self.assertEqual(encoded, 300000)
        self.assertGreater(s["dropped"], encoded // 2, p.stderr)
        self.assertEqual(s["frames_written"] + s["dropped"] + s["too_large"], encoded, p.stderr)
        self.assertRegex(p.stderr, r"dropped \d+ messages for " + dest)
        self.assertGreaterEqual(srv.connections, 1)
        self.assertEqual(srv.errors, [])
        # The input is read at full speed (drop policy), then close() waits for
        # at most drain-timeout + the write in progress (5 s write timeout,
        # queued_output.h) + FINISH wait (2 s). The strict reading of
        # --drain-timeout (exit within ~drain) does not hold: see the report.
        bound = 3 * baseline + drain + 5.0 + 2.0 + 1.0
        if os.environ.get("OUTE2E_VERBOSE"):
            print("\nnever-read: rc=%d wall=%.2f baseline=%.2f summary=%s connections=%d"
                  % (p.returncode, wall, baseline, s, srv.connections), file=sys.stderr)
        self.assertLess(wall, bound, "wall %.2f s, /dev/null replay %.2f s" % (wall, baseline))

    def test_wrong_content_type_in_accept_is_a_clear_error_and_retried(self):
        sock = os.path.join(self.d, "wrong.sock")
        srv = sup.FstrmServer(sock, "wrong-ct", accept_ct=b"protobuf:something.Else")
        dest = "unix://" + sock
        try:
            t0 = time.monotonic()
            p = tl.run([SIDETAP["path"], "replay", *ID, "--reconnect-attempts", "3", "--reconnect-initial", "50ms",
                        "--reconnect-max", "100ms", "-w", dest, self.pcap], check=False, timeout=30)
            elapsed = time.monotonic() - t0
        finally:
            srv.close()
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("content type", p.stderr.lower())
        self.assertIn("giving up", p.stderr)
        self.assertEqual(srv.connections, 3, "one connection per attempt")
        self.assertTrue(all(r == (sup.READY, [sup.CT]) for r in srv.readies), srv.readies)
        self.assertLess(elapsed, 10)
        s = sup.output_summaries(p.stderr)[dest]
        # Once the only output gave up, the replay stops reading: every frame
        # encoded until then is accounted as dropped.
        self.assertEqual((s["frames_written"], s["dropped"]), (0, sup.frames_encoded(p.stderr)), p.stderr)
        self.assertLessEqual(sup.frames_encoded(p.stderr), len(self.ref))

    def test_wrong_content_type_keeps_retrying_until_stopped(self):
        sock = os.path.join(self.d, "wrong.sock")
        srv = sup.FstrmServer(sock, "wrong-ct", accept_ct=b"protobuf:something.Else")
        fifo = os.path.join(self.d, "src.fifo")
        src = sup.SlowSource(fifo, self.pcap, rate=500).start()
        dest = "unix://" + sock
        try:
            p = self.sidetap("--on-full", "drop", "--reconnect-initial", "50ms", "--reconnect-max", "200ms",
                             "--drain-timeout", "500ms", "-w", dest, fifo)
            time.sleep(2.0)
            self.assertIsNone(p.poll())
            os.kill(p.pid, signal.SIGTERM)
            rc, err = self.finish(p, 15)
        finally:
            src.stop()
            srv.close()
        # A clean stop is 0 only when no output failed: this one never delivered
        # a frame and still held some at exit.
        self.assertEqual(rc, 1, "SIGTERM with undelivered frames:\n" + err)
        self.assertIn("messages could not be delivered before exit", err)
        self.assertTrue(sup.output_summaries(err)[dest]["failed"], err)
        self.assertGreaterEqual(srv.connections, 4, "retries with backoff <= 200 ms over 2 s")
        # The first failure is logged once per outage (not once per attempt).
        self.assertLessEqual(err.count("content type"), 2, err)
        s = sup.output_summaries(err)[dest]
        self.assertEqual(s["frames_written"], 0)
        self.assertEqual(s["dropped"], sup.frames_encoded(err), err)


if __name__ == "__main__":
    SIDETAP["path"] = tl.sidetap_arg()
    unittest.main()
