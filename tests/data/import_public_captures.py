#!/usr/bin/env python3
"""Copies the public captures the tests read into the repository, with their origin and licence.

Run once (or again after the upstream list changes) from the repository root:

    python3 tests/data/import_public_captures.py SHARED_PCAPS_DIR MIRROR_DIR

SHARED_PCAPS_DIR is the project's capture corpus (its SOURCES.md has one table row per file:
file, upstream repository and path, snapshot commit, licence). MIRROR_DIR holds bare git
mirrors named `owner+name/repo`, used to copy each repository's licence text at the very commit
the captures were read at.

Permissive files go to tests/data/public/, copyleft (GPL/LGPL) ones to
tests/data/public-copyleft/, each folder with its own SOURCES.md and licence texts.
"""
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PERMISSIVE = os.path.join(HERE, "public")
COPYLEFT = os.path.join(HERE, "public-copyleft")


def parse_sources(path):
    text = open(path, encoding="utf-8").read()
    repos = {}   # owner/name -> (full commit, licence, licence file)
    for m in re.finditer(r"^\| ([\w.-]+/[\w.-]+) \| `([0-9a-f]{40})` \| (.+?) \(`([^`]+)`\) \| \d+ \|$", text, re.M):
        repos[m.group(1)] = (m.group(2), m.group(3), m.group(4))
    files = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 8 or not re.search(r"\.pcap(ng)?$", cells[0]):
            continue
        name, source, _commit, licence, fmt, pkts, dns = cells[:7]
        m = re.search(r"\(?([\w.-]+/[\w.-]+): `([^`]+)`\)?", source)
        repo, upstream_path = m.group(1), m.group(2)
        derived = source.startswith("derived from")
        files.append(dict(name=name, repo=repo, path=upstream_path, licence=licence, format=fmt, pkts=pkts, dns=dns,
                          derived_from=source.split(" (")[0].removeprefix("derived from ") if derived else None))
    return repos, files


def main():
    shared, mirrors = sys.argv[1], sys.argv[2]
    repos, files = parse_sources(os.path.join(shared, "SOURCES.md"))
    assert len(files) == 120, len(files)
    for d in (PERMISSIVE, COPYLEFT):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(os.path.join(d, "LICENSES"))
    rows = {PERMISSIVE: [], COPYLEFT: []}
    used = {PERMISSIVE: set(), COPYLEFT: set()}
    for f in sorted(files, key=lambda f: f["name"]):
        dest = COPYLEFT if "GPL" in f["licence"] else PERMISSIVE
        shutil.copyfile(os.path.join(shared, f["name"]), os.path.join(dest, f["name"]))
        commit = repos[f["repo"]][0]
        origin = f"`{f['repo']}`: `{f['path']}`"
        if f["derived_from"]:
            origin = f"derived from `{f['derived_from']}` ({origin}); see below"
        rows[dest].append(f"| {f['name']} | {origin} | `{commit[:12]}` | {f['licence']} | {f['format']} | {f['pkts']} | {f['dns']} |")
        used[dest].add(f["repo"])
    for dest in (PERMISSIVE, COPYLEFT):
        for repo in sorted(used[dest]):
            commit, _lic, lic_file = repos[repo]
            git_dir = os.path.join(mirrors, repo.replace("/", "+"), "repo")
            text = subprocess.run(["git", "--git-dir", git_dir, "show", f"{commit}:{lic_file}"],
                                  check=True, capture_output=True).stdout
            with open(os.path.join(dest, "LICENSES", repo.replace("/", "_") + ".txt"), "wb") as out:
                out.write(text)
        write_sources(dest, rows[dest], {r: repos[r] for r in used[dest]})
    # The case index covers both folders; it lives with the permissive list.
    text = open(os.path.join(shared, "SOURCES.md"), encoding="utf-8").read()
    cases = text[text.index("## Case coverage"):text.index("## Gaps")]
    with open(os.path.join(PERMISSIVE, "SOURCES.md"), "a", encoding="utf-8") as out:
        out.write("\n" + cases.replace("## Case coverage (where to look)",
                                      "## Case coverage (files in both folders)").rstrip() + "\n")
    # The LGPL-3.0 is a set of additional permissions on top of the GPL-3.0, whose text it refers to.
    shutil.copyfile("/usr/share/common-licenses/GPL-3", os.path.join(COPYLEFT, "LICENSES", "GPL-3.0.txt"))


HEADER = {
    PERMISSIVE: """# Public captures (permissive licences)

Captures from public repositories, read by the tests (`oracle.shared_pcap(name)` in Python,
`test_data::public_capture(name)` in C++). Each file is byte for byte the upstream file at the
commit shown, except the `derived-*` files, which this project made from the upstream file
named (see the list at the end) and which carry that file's licence.

Copyleft captures (GPL-3.0, LGPL-3.0) are kept apart in ../public-copyleft/.
The licence text of each repository, at that commit, is in LICENSES/ (`owner_name.txt`).
Some files reached those repositories from third parties (bug reports, Wireshark fuzz
captures, published traces); they are redistributed under the hosting repository's licence.

"DNS messages (tshark)": queries q and responses r after reassembly, counted with
`tshark -o tcp.reassemble_out_of_order:TRUE -d tcp.port==8053,dns -d tcp.port==1053,dns
-d tcp.port==5355,dns`; the tests' expectations refer to these counts.

Regenerate with `tests/data/import_public_captures.py` (see its docstring).
""",
    COPYLEFT: """# Public captures under copyleft licences (GPL-3.0, LGPL-3.0)

Kept apart from the permissively licensed captures in ../public/. These files are test data
only: no sidetap code is derived from them, and they are redistributed unchanged under their
own licences (the GNU GPL v3 and LGPL v3; each repository's licence file, at the commit shown,
is in LICENSES/, with the GPL-3.0 text that the LGPL-3.0 builds on). The two PacketQ files were stored gzipped upstream and are
decompressed here. The corresponding source is the upstream repository at that commit.

Regenerate with `tests/data/import_public_captures.py` (see its docstring).
""",
}

DERIVED = """
## Derived files

- `derived-dnscap-dnso1tcp-ooo-retrans.pcap`: the first 24 frames of dnscap-dnso1tcp.pcap, with
  one query body captured before its length prefix and one response repeated (retransmission).
- `derived-dnscap-edns-nsec.pcap`: dnscap-edns.pcap as a nanosecond pcap, shifted by +123 ns;
  `derived-dnscap-edns-nsec.pcapng`: the same as pcapng with if_tsresol=9.
- `derived-dnscollector-ip4-frags-reversed.pcap`, `derived-dnscollector-ip6-frags-reversed.pcap`:
  the fragments of the upstream response swapped (last fragment first).
- `derived-tcpdump-dns-badcookie-dlt_loop.pcap`: tcpdump-dns-badcookie.pcap relabelled as
  DLT_LOOP (108) with the address family in network byte order.
"""


def write_sources(dest, rows, repos):
    with open(os.path.join(dest, "SOURCES.md"), "w", encoding="utf-8") as out:
        out.write(HEADER[dest])
        out.write("\n## Repositories\n\n| Repository | Commit | Licence (file upstream) |\n|---|---|---|\n")
        for repo, (commit, lic, lic_file) in sorted(repos.items()):
            out.write(f"| {repo} | `{commit}` | {lic} (`{lic_file}`) |\n")
        out.write(f"\n## Files ({len(rows)})\n\n| File | Origin (repository: path) | Commit | Licence | Format; link type | Packets | DNS messages (tshark) |\n|---|---|---|---|---|---|---|\n")
        out.write("\n".join(rows) + "\n")
        if dest == PERMISSIVE:
            out.write(DERIVED)


if __name__ == "__main__":
    main()
