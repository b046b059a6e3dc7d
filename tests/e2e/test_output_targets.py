#!/usr/bin/env python3
"""-w targets that are not regular files: a FIFO (with its reader, and after
its reader went away), a symlink to /dev/null or to /proc/self/fd/N, and a
standard output that a parent left non-blocking.

What must hold (file_writer.h):
  - only regular files that sidetap opened by name are ever rotated,
    renamed, replaced or reopened; --rotate-size and SIGHUP leave every
    other target as it is;
  - the reader of a pipe sees exactly one stream: one START, every frame
    in order, one STOP -- EAGAIN is waited for, never a reason to restart;
  - a pipe whose reader went away is an output failure (exit 1, FAILED in
    the summary), never a file to create in its place.
"""
import fcntl
import os
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_output_support as sup  # noqa: E402

tl = sup.tl
SIDETAP = {}
ID = ["--identity", "targets-test"]
FSTRM_DUMP = "fstrm_dump"


def controls(data):
    """Control frame types of a Frame Streams byte string, in order (2 START, 3 STOP)."""
    out, pos = [], 0
    while pos + 4 <= len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        if n == 0:
            (clen,) = struct.unpack_from(">I", data, pos + 4)
            out.append(struct.unpack_from(">I", data, pos + 8)[0])
            pos += 8 + clen
        else:
            pos += 4 + n
    return out


class PipeReader:
    """Reads a FIFO (or a pipe's read end) on a thread: everything, or `limit`
    bytes and then goes away; `delay` seconds between 16 KiB reads."""

    def __init__(self, path=None, fd=None, limit=None, delay=0.0):
        self.data = bytearray()
        self.path, self.fd, self.limit, self.delay = path, fd, limit, delay
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        fd = self.fd if self.fd is not None else os.open(self.path, os.O_RDONLY)
        try:
            while self.limit is None or len(self.data) < self.limit:
                want = 16384 if self.limit is None else min(16384, self.limit - len(self.data))
                b = os.read(fd, want)
                if not b:
                    break
                self.data += b
                if self.delay:
                    time.sleep(self.delay)
        finally:
            os.close(fd)

    def join(self, timeout=60):
        self.thread.join(timeout)
        return bytes(self.data)


class Targets(sup.OutputTestCase):
    @classmethod
    def prepare(cls, d):
        cls.pcap = sup.generate_pcap(os.path.join(d, "mixed.pcap"), 3000, "--tcp-share", "0.1")
        cls.ref = sup.reference_frames(SIDETAP["path"], cls.pcap, d, *ID)

    def slow_replay_with_hups(self, dest, *args, pass_fds=()):
        """Replays the pcap through a slow FIFO source with --rotate-size 2K,
        sends SIGHUP twice mid-stream; returns (returncode, stderr)."""
        fifo = os.path.join(self.d, "src.fifo")
        src = sup.SlowSource(fifo, self.pcap, rate=4000).start()
        p = self.procs.start([SIDETAP["path"], "replay", *ID, "--rotate-size", "2K", "--flush-interval", "50ms",
                              *args, "-w", dest, fifo], stderr=subprocess.PIPE, pass_fds=pass_fds)
        try:
            for _ in range(2):
                time.sleep(0.4)
                os.kill(p.pid, signal.SIGHUP)
            src.finish()
            _, err = p.communicate(timeout=60)
        finally:
            src.stop()
        return p.returncode, err.decode(errors="replace")

    def assert_one_whole_stream(self, data):
        self.assertEqual(controls(data), [2, 3], "exactly one START and one STOP")
        path = os.path.join(self.d, "got.fstrm")
        with open(path, "wb") as f:
            f.write(data)
        ct, frames, stop = tl.read_frames(path)
        self.assertEqual(ct, sup.CT)
        self.assertTrue(stop)
        self.assertTrue(frames == self.ref, "%d frames, %d expected (or altered)" % (len(frames), len(self.ref)))
        return path

    # ------------------------------------------------------------------ FIFO

    def test_fifo_with_a_reader_gets_one_whole_stream_despite_rotation_and_sighup(self):
        fifo = os.path.join(self.d, "out.fifo")
        os.mkfifo(fifo)
        reader = PipeReader(fifo)
        rc, err = self.slow_replay_with_hups(fifo)
        data = reader.join()
        self.assertEqual(rc, 0, err)
        self.assertIn("is a pipe (FIFO), not a regular file: it is never rotated", err)
        self.assert_one_whole_stream(data)
        self.assertTrue(stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced")
        self.assertEqual(sorted(os.listdir(self.d)), ["got.fstrm", "out.fifo", "src.fifo"])
        s = sup.output_summaries(err)[fifo]
        self.assertEqual((s["frames_written"], s["dropped"], s["reconnects"], s["failed"]),
                         (len(self.ref), 0, 0, False), err)

    def test_fifo_whose_reader_goes_away_is_an_output_failure_not_a_file_to_rotate(self):
        fifo = os.path.join(self.d, "out.fifo")
        os.mkfifo(fifo)
        reader = PipeReader(fifo, limit=3000)  # a few frames, then gone
        p = tl.run([SIDETAP["path"], "replay", *ID, "--rotate-size", "1K", "-w", fifo, self.pcap], check=False,
                   timeout=60)
        reader.join()
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("failed: write to %s failed: Broken pipe (its reader went away)" % fifo, p.stderr)
        self.assertNotIn("retrying", p.stderr)
        s = sup.output_summaries(p.stderr)[fifo]
        self.assertTrue(s["failed"], p.stderr)
        self.assertEqual(s["reconnects"], 0)
        self.assertGreater(s["dropped"], 0)
        self.assertTrue(stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was renamed or replaced")
        self.assertEqual(os.listdir(self.d), ["out.fifo"], "no file appeared beside the FIFO")

    # --------------------------------------------------------------- symlinks

    def test_symlink_to_dev_null_survives_rotation_and_sighup(self):
        link = os.path.join(self.d, "null.dnstap")
        os.symlink("/dev/null", link)
        rc, err = self.slow_replay_with_hups(link)
        self.assertEqual(rc, 0, err)
        self.assertIn("is a character device, not a regular file", err)
        self.assertTrue(os.path.islink(link))
        self.assertEqual(os.readlink(link), "/dev/null")
        self.assertTrue(stat.S_ISCHR(os.stat("/dev/null").st_mode))
        self.assertEqual(sorted(os.listdir(self.d)), ["null.dnstap", "src.fifo"])
        s = sup.output_summaries(err)[link]
        self.assertEqual((s["frames_written"], s["reconnects"], s["failed"]), (len(self.ref), 0, False), err)

    def test_symlink_to_proc_self_fd_of_a_pipe_gets_one_whole_stream(self):
        r, w = os.pipe()
        link = os.path.join(self.d, "fd.dnstap")
        os.symlink("/proc/self/fd/%d" % w, link)  # resolved in sidetap, which inherits w
        reader = PipeReader(fd=r)
        rc, err = self.slow_replay_with_hups(link, pass_fds=(w,))
        os.close(w)
        data = reader.join()
        self.assertEqual(rc, 0, err)
        self.assert_one_whole_stream(data)
        self.assertEqual(os.readlink(link), "/proc/self/fd/%d" % w)
        self.assertEqual(sorted(os.listdir(self.d)), ["fd.dnstap", "got.fstrm", "src.fifo"])

    def test_a_link_to_proc_self_fd_1_into_a_regular_file_is_never_rotated(self):
        # link -> /proc/self/fd/1 -> out.fstrm (like /dev/stdout, but a link of our own, so that
        # a sidetap that does rename it cannot touch the system's /dev): a name sidetap does not own.
        out = os.path.join(self.d, "out.fstrm")
        link = os.path.join(self.d, "stdout.dnstap")
        os.symlink("/proc/self/fd/1", link)
        with open(out, "wb") as f:
            p = subprocess.run([SIDETAP["path"], "replay", *ID, "--rotate-size", "2K", "-w", link, self.pcap],
                               stdout=f, stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("reached through /proc", p.stderr)
        self.assertEqual(os.readlink(link), "/proc/self/fd/1")
        with open(out, "rb") as f:
            data = f.read()
        self.assertEqual(sorted(os.listdir(self.d)), ["out.fstrm", "stdout.dnstap"])
        self.assert_one_whole_stream(data)

    # ----------------------------------------------------- non-blocking stdout

    def test_nonblocking_stdout_with_a_slow_reader_gets_one_whole_stream(self):
        r, w = os.pipe()
        fcntl.fcntl(w, fcntl.F_SETFL, fcntl.fcntl(w, fcntl.F_GETFL) | os.O_NONBLOCK)  # as a parent might
        err_path = os.path.join(self.d, "err.txt")
        with open(err_path, "wb") as err_file:
            p = subprocess.Popen([SIDETAP["path"], "replay", *ID, "-w", "-", self.pcap], stdout=w, stderr=err_file)
        os.close(w)
        data = PipeReader(fd=r, delay=0.002).join()
        p.wait(timeout=60)
        with open(err_path) as f:
            err = f.read()
        self.assertEqual(p.returncode, 0, err)
        path = self.assert_one_whole_stream(data)
        s = sup.output_summaries(err)["-"]
        self.assertEqual((s["frames_written"], s["dropped"], s["errors"], s["reconnects"]),
                         (len(self.ref), 0, 0, 0), err)
        # Independent decoders read it to the end.
        tl.require_tool(FSTRM_DUMP)
        dump = tl.run([FSTRM_DUMP, path])
        self.assertIn("FSTRM_CONTROL_STOP", dump.stdout + dump.stderr)
        tl.require_tool(sup.DNSTAP, "dnstap")
        decoded = tl.run([sup.DNSTAP, "-r", path, "-q"])
        self.assertEqual(len(decoded.stdout.splitlines()), len(self.ref))

    def test_read_text_into_a_nonblocking_pipe_loses_no_line(self):
        ref_file = os.path.join(self.d, "ref.fstrm")
        tl.run([SIDETAP["path"], "replay", "-q", *ID, "-w", ref_file, self.pcap])
        expected = tl.run([SIDETAP["path"], "read", "-q", ref_file]).stdout
        r, w = os.pipe()
        fcntl.fcntl(w, fcntl.F_SETFL, fcntl.fcntl(w, fcntl.F_GETFL) | os.O_NONBLOCK)
        p = subprocess.Popen([SIDETAP["path"], "read", "-q", ref_file], stdout=w, stderr=subprocess.DEVNULL)
        os.close(w)
        data = PipeReader(fd=r, delay=0.002).join()
        p.wait(timeout=60)
        self.assertEqual(p.returncode, 0)
        self.assertEqual(data.decode(), expected)
        self.assertEqual(len(expected.splitlines()), len(self.ref))


if __name__ == "__main__":
    SIDETAP["path"] = tl.sidetap_arg()
    unittest.main()
