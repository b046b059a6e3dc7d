#!/usr/bin/env python3
"""--config FILE: a configuration file gives exactly what the equivalent
command line gives (replay, read, listen; capture is in
tests/root/test_config_capture.py), the command line overrides the file, and
every mistake in a file is a usage error (exit 2) naming the key and the file.
The installed example configurations use only keys sidetap knows."""
import os
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import sidetap_testlib as tl  # noqa: E402

SIDETAP = tl.sidetap_arg()
SAMPLE = os.path.join(tl.OWN_PCAPS, "sample.pcap")
TWO = os.path.join(tl.OWN_PCAPS, "two-sections.pcapng")
EXAMPLES = os.path.join(tl.SOURCE_DIR, "packaging", "examples")
PIN = ["--identity", "cfg-test", "--version", "pinned"]


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_toml(path, keys, section=None):
    with open(path, "w") as f:
        f.write("# written by test_config.py\n")
        if section:
            f.write(f"[{section}]\n")
        for k, v in keys.items():
            f.write(f"{k} = {toml_value(v)}\n")
    return path


def sidetap(*args, check=True, **kw):
    return tl.run([SIDETAP, *args], check=check, **kw)


class ConfigTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    # --- replay -----------------------------------------------------------

    REPLAY_KEYS = {
        "identity": "cfg-test", "version": "pinned", "extra": "from a file",
        "port": [53, 5300], "server-addr": ["192.0.2.1", "2001:db8::1"], "role": "resolver",
        "query-timeout": "3s", "reorder-window": "50ms", "max-pending-queries": 1000,
        "keep-malformed": True, "quiet": True, "no-wire": False,
    }

    def replay_outputs(self, prefix):
        return [self.path(prefix + "-all.dnstap"), self.path(prefix + "-cq.dnstap") + "?types=CQ,CR&wire=no"]

    def replay_cli(self, prefix):
        args = ["replay", "--identity", "cfg-test", "--version", "pinned", "--extra", "from a file",
                "-p", "53", "-p", "5300", "--server-addr", "192.0.2.1", "--server-addr", "2001:db8::1",
                "--role", "resolver", "--query-timeout", "3s", "--reorder-window", "50ms",
                "--max-pending-queries", "1000", "--keep-malformed", "-q"]
        for o in self.replay_outputs(prefix):
            args += ["-w", o]
        sidetap(*args, SAMPLE, TWO)

    def assert_same_outputs(self, a, b):
        for suffix in ("-all.dnstap", "-cq.dnstap"):
            x, y = self.read(a + suffix), self.read(b + suffix)
            self.assertGreater(len(tl.read_dnstap_file(self.path(a + suffix))), 0)
            self.assertEqual(x, y, f"{a}{suffix} differs from {b}{suffix}")

    def test_replay_file_equals_command_line(self):
        self.replay_cli("cli")
        keys = dict(self.REPLAY_KEYS, output=self.replay_outputs("cfg"), file=[SAMPLE, TWO])
        sidetap("replay", "--config", write_toml(self.path("replay.toml"), keys))
        self.assert_same_outputs("cli", "cfg")

    def test_replay_section_file_runs_without_subcommand(self):
        self.replay_cli("cli")
        keys = dict(self.REPLAY_KEYS, output=self.replay_outputs("top"), file=[SAMPLE, TWO])
        sidetap("--config", write_toml(self.path("replay.toml"), keys, section="replay"))
        self.assert_same_outputs("cli", "top")
        # The same sectioned file also works with the subcommand named.
        keys["output"] = self.replay_outputs("sub")
        sidetap("replay", "--config", write_toml(self.path("replay2.toml"), keys, section="replay"))
        self.assert_same_outputs("cli", "sub")

    def test_replay_ini_file_equals_command_line(self):
        self.replay_cli("cli")
        outs = self.replay_outputs("ini")
        with open(self.path("replay.ini"), "w") as f:
            f.write("; INI\n[replay]\nidentity = cfg-test\nversion = pinned\nextra = \"from a file\"\n"
                    "port = 53 5300\nserver-addr = 192.0.2.1 2001:db8::1\nrole = resolver\n"
                    "query-timeout = 3s\nreorder-window = 50ms\nmax-pending-queries = 1000\n"
                    "keep-malformed = true\nquiet = true\n"
                    f"output = [\"{outs[0]}\", \"{outs[1]}\"]\nfile = {SAMPLE} {TWO}\n")
        sidetap("--config", self.path("replay.ini"))
        self.assert_same_outputs("cli", "ini")

    def test_command_line_overrides_file(self):
        sidetap("replay", *PIN, "-q", "-p", "53", "-w", self.path("cli.dnstap"), SAMPLE)
        keys = {"identity": "from-file", "version": "pinned", "quiet": True, "port": [5300, 5301],
                "output": [self.path("not-written.dnstap")], "file": [TWO]}
        # Scalars, lists (-p, -w) and the positional FILEs: the command line wins whole.
        sidetap("replay", "--config", write_toml(self.path("o.toml"), keys), "--identity", "cfg-test", "-p", "53",
                "-w", self.path("over.dnstap"), SAMPLE)
        self.assertEqual(self.read("cli.dnstap"), self.read("over.dnstap"))
        self.assertFalse(os.path.exists(self.path("not-written.dnstap")))

    # --- read -------------------------------------------------------------

    def test_read_file_equals_command_line(self):
        src = self.path("src.dnstap")
        sidetap("replay", *PIN, "-q", "-w", src, SAMPLE)
        cli_text = sidetap("read", "--format", "yaml", "--qname", "example.test", src).stdout
        sidetap("read", "--types", "CQ", "-w", self.path("cli.dnstap"), "-q", src)
        keys = {"format": "yaml", "qname": ["example.test"], "file": [src]}
        cfg_text = sidetap("read", "--config", write_toml(self.path("r1.toml"), keys)).stdout
        self.assertEqual(cli_text, cfg_text)
        self.assertTrue(cfg_text.strip())
        keys = {"types": "CQ", "output": [self.path("cfg.dnstap")], "quiet": True, "file": [src]}
        sidetap("--config", write_toml(self.path("r2.toml"), keys, section="read"))
        self.assertEqual(self.read("cli.dnstap"), self.read("cfg.dnstap"))

    # --- listen -----------------------------------------------------------

    def listen_run(self, args, out):
        sock = self.path("l.sock")
        err = open(self.path("listen.err"), "w+")
        p = subprocess.Popen([SIDETAP, *args], stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 10
            while not os.path.exists(sock):
                self.assertIsNone(p.poll(), open(self.path("listen.err")).read())
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.02)
            sidetap("replay", *PIN, "-q", "-w", "unix://" + sock, SAMPLE)
            sidetap("replay", *PIN, "-q", "--role", "auth", "-w", "unix://" + sock, TWO)
            deadline = time.monotonic() + 10
            while "finished" not in open(self.path("listen.err")).read() or \
                    open(self.path("listen.err")).read().count("closed") < 0:
                time.sleep(0.05)
                if time.monotonic() > deadline:
                    break
            time.sleep(0.3)
        finally:
            p.send_signal(signal.SIGTERM)
            rc = p.wait(20)
            err.close()
        self.assertEqual(rc, 0, open(self.path("listen.err")).read())
        return tl.read_frames(out)[1]

    def test_listen_file_equals_command_line(self):
        sock = self.path("l.sock")
        cli = self.listen_run(["listen", "-u", sock, "--types", "CQ,CR,AQ,AR", "--max-connections", "10",
                               "-v", "-w", self.path("cli.dnstap")], self.path("cli.dnstap"))
        keys = {"unix": [sock], "types": "CQ,CR,AQ,AR", "max-connections": 10, "verbose": True,
                "output": [self.path("cfg.dnstap")]}
        cfg = self.listen_run(["--config", write_toml(self.path("l.toml"), keys, section="listen")],
                              self.path("cfg.dnstap"))
        self.assertGreater(len(cli), 0)
        self.assertEqual(sorted(cli), sorted(cfg))  # two writers: their order may interleave

    # --- errors -----------------------------------------------------------

    def assert_usage_error(self, args, *needles):
        p = sidetap(*args, check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        for n in needles:
            self.assertIn(n, p.stderr)
        return p.stderr

    def test_unknown_key_names_key_and_file_per_subcommand(self):
        for sub in ("replay", "capture", "read", "listen"):
            cfg = write_toml(self.path(f"{sub}.toml"), {"no-such-option": 1, "quiet": True})
            self.assert_usage_error([sub, "--config", cfg], "unknown key 'no-such-option'", cfg, f"sidetap {sub}")
            cfg = write_toml(self.path(f"{sub}-s.toml"), {"bogus-key": "x"}, section=sub)
            self.assert_usage_error(["--config", cfg], "unknown key 'bogus-key'", cfg)

    def test_bad_values_name_the_option(self):
        cases = [
            ("replay", {"role": "nameserver"}, "--role"),
            ("replay", {"port": [70000]}, "--port"),
            ("replay", {"queue": "lots"}, "--queue"),
            ("replay", {"query-timeout": "soon", "file": [SAMPLE], "output": [self.path("x.dnstap")]},
             "--query-timeout"),
            ("read", {"format": "xml"}, "--format"),
            ("listen", {"max-connections": 0}, "--max-connections"),
            ("capture", {"ebpf": "xdp"}, "--ebpf"),
        ]
        for sub, keys, option in cases:
            cfg = write_toml(self.path(f"bad-{sub}.toml"), keys)
            err = self.assert_usage_error([sub, "--config", cfg], option)
            if "query-timeout" in keys:
                self.assertIn(cfg, err)  # checked after parsing: still says where it was set

    def test_structural_mistakes(self):
        cfg = write_toml(self.path("twice.toml"), {"role": "auth"})
        with open(cfg, "a") as f:
            f.write("quiet = true\nrole = \"client\"\n")
        self.assert_usage_error(["replay", "--config", cfg, SAMPLE], "'role' is given twice")
        cfg = write_toml(self.path("other.toml"), {"quiet": True}, section="listen")
        self.assert_usage_error(["replay", "--config", cfg, SAMPLE], "section [listen] does not apply to sidetap replay")
        with open(self.path("two.toml"), "w") as f:
            f.write("[replay]\nquiet = true\n[read]\nquiet = true\n")
        self.assert_usage_error(["--config", self.path("two.toml")], "one file configures one subcommand")
        cfg = write_toml(self.path("nosection.toml"), {"quiet": True})
        self.assert_usage_error(["--config", cfg], "section")
        with open(self.path("outside.toml"), "w") as f:
            f.write("quiet = true\n[replay]\nrole = \"auth\"\n")
        self.assert_usage_error(["--config", self.path("outside.toml")], "'quiet' is outside the [replay] section")
        self.assert_usage_error(["replay", "--config", self.path("missing.toml"), SAMPLE], "missing.toml")
        cfg = write_toml(self.path("help.toml"), {"help": True})
        self.assert_usage_error(["replay", "--config", cfg, SAMPLE], "'help' cannot be set")
        cfg = write_toml(self.path("nested.toml"), {"config": "other.toml"})
        self.assert_usage_error(["replay", "--config", cfg, SAMPLE], "'config' cannot be set")
        self.assert_usage_error(["--config", cfg, "replay", "--config", cfg, SAMPLE], "--config")

    # --- shipped examples ----------------------------------------------------

    def test_examples_use_only_known_keys(self):
        files = [os.path.join(EXAMPLES, f) for f in sorted(os.listdir(EXAMPLES)) if f.endswith(".toml")]
        files.append(os.path.join(tl.SOURCE_DIR, "packaging", "config", "sidetap.toml"))
        self.assertGreaterEqual(len(files), 6)
        for path in files:
            with open(path, "rb") as f:
                doc = tomllib.load(f)  # a real TOML parser agrees that it is TOML
            self.assertEqual(len(doc), 1, path)
            sub, keys = next(iter(doc.items()))
            helptext = sidetap(sub, "--help").stdout
            for k in keys:
                if k == "file":
                    continue
                self.assertRegex(helptext, r"(?m)^\s+(-\w,)?--%s\b" % k, f"{path}: {k}")
            # sidetap itself accepts every key and value: what fails is the
            # environment (no such interface, file or certificate), never the
            # configuration.
            # Capture examples point at an interface or cgroup that does not
            # exist here, so that nothing is captured.
            override = []
            if sub == "capture":
                override = (["--cgroup", "/sys/fs/cgroup/sidetap-test-none"] if keys.get("ebpf") == "cgroup"
                            else ["-i", "sidetap-none0"])
            p = subprocess.run([SIDETAP, sub, "--config", path, *override, "-w", self.path("ex.dnstap")],
                               capture_output=True, text=True, timeout=30)
            # (listen's missing certificate is exit 2 too, but names the
            # certificate; errors of the file name the file.)
            self.assertNotEqual(p.returncode, 0, f"{path}: {p.stderr}")
            self.assertNotIn("config file", p.stderr, path)
            self.assertNotIn(path, p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
