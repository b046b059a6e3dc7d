#!/usr/bin/env python3
"""sidetap(1) is rendered from the CLI11 app (`sidetap --help-man`): man
renders it without a warning at several widths, and it names every
subcommand and every option that the subcommands' --help lists, so the page
and --help cannot drift apart when options are added."""
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import sidetap_testlib as tl  # noqa: E402

SIDETAP = tl.sidetap_arg()
SUBCOMMANDS = ("replay", "capture", "read", "listen")


class ManPageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.page = os.path.join(cls.tmp.name, "sidetap.1")
        with open(cls.page, "w") as f:
            f.write(tl.run([SIDETAP, "--help-man"]).stdout)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def render(self, width):
        env = dict(os.environ, MANWIDTH=str(width), LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="")
        return subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", self.page], capture_output=True, text=True,
                              env=env)

    def test_renders_without_warnings(self):
        for width in (60, 80, 132):
            p = self.render(width)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stderr.strip(), "", f"MANWIDTH={width}")

    def test_names_every_subcommand_and_option_of_help(self):
        page = self.render(80).stdout
        top = tl.run([SIDETAP, "--help"]).stdout
        for option in re.findall(r"^\s+(?:-\w,)?(--[a-z0-9-]+)", top, re.M):
            self.assertIn(option, page)
        for sub in SUBCOMMANDS:
            self.assertIn(f"sidetap {sub}", page)
            helptext = tl.run([SIDETAP, sub, "--help"]).stdout
            section = page.split(f"   sidetap {sub}\n", 1)[1]
            options = re.findall(r"^\s+(?:-\w,)?(--[a-z0-9-]+)", helptext, re.M)
            self.assertGreater(len(options), 10)
            for option in options:
                self.assertIn(option, section, f"{sub} {option}")

    def test_sections(self):
        page = self.render(80).stdout
        for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "CONFIGURATION FILES", "SIGNALS",
                        "EXIT STATUS", "FILES", "SEE ALSO"):
            self.assertRegex(page, rf"(?m)^{heading}$")


if __name__ == "__main__":
    unittest.main(verbosity=2)
