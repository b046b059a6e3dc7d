#!/usr/bin/env python3
"""File outputs: rotation by size and by time, and SIGHUP after logrotate
has moved the file away (create mode: rename, then HUP).

Rotated files are named <path>.<YYYYmmddTHHMMSS>[.<n>] (file_writer.h); the
current file stays at <path>. Every file must be a complete Frame Streams
file (START ... STOP), and together, in rotation order, they must hold every
frame of a single-file replay of the same input, in order.
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
ID = ["--identity", "files-test"]
START_BYTES, STOP_BYTES = 42, 12


class Files(sup.OutputTestCase):
    @classmethod
    def prepare(cls, d):
        cls.pcap = sup.generate_pcap(os.path.join(d, "mixed.pcap"), 1500, "--tcp-share", "0.1")
        cls.ref = sup.reference_frames(SIDETAP["path"], cls.pcap, d, *ID)

    def setUp(self):
        super().setUp()
        self.out = os.path.join(self.d, "out.fstrm")

    def read_all(self, files):
        """Checks each file is START..STOP; returns the frames of all, in order."""
        frames = []
        for f in files:
            ct, fr, stop = tl.read_frames(f)     # raises on bad framing / data after STOP
            self.assertEqual(ct, sup.CT, f)
            self.assertTrue(stop, "%s does not end with STOP" % f)
            frames += fr
        return frames

    def slow_replay(self, rate, *args):
        fifo = os.path.join(self.d, "src.fifo")
        src = sup.SlowSource(fifo, self.pcap, rate=rate).start()
        p = self.procs.start([SIDETAP["path"], "replay", *ID, *args, "-w", self.out, fifo],
                             stderr=subprocess.PIPE)
        return src, p

    def test_rotate_size_splits_into_complete_files_that_hold_every_frame(self):
        rotate, wbuf = 20 * 1024, 4 * 1024
        p = tl.run([SIDETAP["path"], "replay", *ID, "--rotate-size", "20K", "--write-buffer", "4K",
                    "-w", self.out, self.pcap])
        files = sup.rotated_files(self.out)
        total = sum(len(f) + 4 for f in self.ref) + START_BYTES + STOP_BYTES
        self.assertGreaterEqual(len(files), total // (rotate + wbuf), files)
        self.assertTrue(self.read_all(files) == self.ref, "rotated files do not hold the reference frames in order")
        for f in files[:-1]:
            size = os.path.getsize(f)
            # Checked between batches: at most one write buffer over the limit.
            self.assertGreaterEqual(size, rotate, f)
            self.assertLessEqual(size, rotate + wbuf + STOP_BYTES, f)
        s = sup.output_summaries(p.stderr)[self.out]
        self.assertEqual(s["frames_written"], len(self.ref))
        self.assertEqual(s["reconnects"], len(files) - 1, "reconnects counts rotations")

    def test_rotate_size_as_uri_parameter(self):
        tl.run([SIDETAP["path"], "replay", *ID, "--write-buffer", "4K",
                "-w", self.out + "?rotate-size=100K", self.pcap])
        files = sup.rotated_files(self.out)
        self.assertGreaterEqual(len(files), 3)
        self.assertTrue(self.read_all(files) == self.ref)

    def test_rotate_interval_with_a_slow_source(self):
        # 3000 packets at 1500/s: ~2 s of input, a new file every 400 ms.
        src, p = self.slow_replay(1500, "--rotate-interval", "400ms", "--flush-interval", "100ms")
        _, err = p.communicate(timeout=30)
        err = err.decode()
        self.assertEqual(p.returncode, 0, err)
        files = sup.rotated_files(self.out)
        self.assertGreaterEqual(len(files), 4, files)
        self.assertLessEqual(len(files), 8, files)
        self.assertTrue(self.read_all(files) == self.ref)
        nonempty = [f for f in files if tl.read_frames(f)[1]]
        self.assertGreaterEqual(len(nonempty), 4)

    def test_sighup_after_logrotate_rename_starts_a_new_file_and_loses_nothing(self):
        src, p = self.slow_replay(2000, "--flush-interval", "50ms")
        moved = []
        try:
            for i in (1, 2):
                time.sleep(0.4)
                sup.wait_for(lambda: os.path.exists(self.out) and os.path.getsize(self.out) > START_BYTES, 5,
                             what="data in the current file")
                old = "%s.%d" % (self.out, i)
                os.rename(self.out, old)          # logrotate "create" mode: rename ...
                os.kill(p.pid, signal.SIGHUP)     # ... then postrotate HUP, by PID
                moved.append(old)
                # sidetap acts on the HUP between packets: the new file appears
                # while the source keeps flowing.
                sup.wait_for(lambda: os.path.exists(self.out), 3, what="a new file after SIGHUP")
                sup.wait_for(lambda: tl.read_frames(old)[2], 3, what="STOP at the end of the moved file")
            src.finish()
            _, err = p.communicate(timeout=30)
        finally:
            src.stop()
        err = err.decode()
        self.assertEqual(p.returncode, 0, err)
        files = moved + [self.out]
        with open(self.out, "rb") as f:
            self.assertEqual(f.read(8), b"\0\0\0\0\0\0\0\x22", "the new file starts with START")
        self.assertTrue(all(tl.read_frames(f)[1] for f in files), "every file got some frames")
        self.assertTrue(self.read_all(files) == self.ref, "frames lost or reordered across SIGHUP")
        # Nothing was renamed by sidetap itself (logrotate had moved the file).
        self.assertEqual(sup.rotated_files(self.out), [self.out])
        s = sup.output_summaries(err)[self.out]
        self.assertEqual((s["frames_written"], s["dropped"], s["reconnects"]), (len(self.ref), 0, 2), err)

    def test_sighup_without_rename_moves_the_file_aside_itself(self):
        src, p = self.slow_replay(2000, "--flush-interval", "50ms")
        try:
            time.sleep(0.5)
            os.kill(p.pid, signal.SIGHUP)
            sup.wait_for(lambda: len(sup.rotated_files(self.out)) == 2, 3, what="the file moved aside")
            src.finish()
            _, err = p.communicate(timeout=30)
        finally:
            src.stop()
        self.assertEqual(p.returncode, 0, err)
        files = sup.rotated_files(self.out)
        self.assertEqual(len(files), 2, files)
        self.assertTrue(self.read_all(files) == self.ref)


if __name__ == "__main__":
    SIDETAP["path"] = tl.sidetap_arg()
    unittest.main()
