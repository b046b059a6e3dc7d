#!/usr/bin/env python3
"""Cut a libFuzzer corpus down to a file budget, keeping every covered edge.

libFuzzer's -merge=1 keeps every input that adds a *feature* (edge x hit-count
bucket), which for the stream targets is several hundred files. This keeps
the committed corpus small: it reads the control file of a merge run
(-merge_control_file=F), picks inputs greedily so that every coverage edge
(COV) stays covered, then spends what is left of the budget on inputs adding
the most features (FT), smaller first on ties. Unpicked files are deleted
(crash-* regression files are never touched).

    fuzz_tcp -merge=1 -merge_control_file=ctl OUT fuzz/corpus/tcp
    python3 fuzz/trim_corpus.py ctl --max-files 300
"""

import argparse
import os


def read_control(path):
    with open(path) as f:
        lines = f.read().splitlines()
    n = int(lines[0])
    files = lines[2:2 + n]
    ft, cov = {}, {}
    for line in lines[2 + n:]:
        parts = line.split()
        if parts and parts[0] in ("FT", "COV"):
            (ft if parts[0] == "FT" else cov)[int(parts[1])] = set(map(int, parts[2:]))
    return files, ft, cov


def greedy(candidates, sets, covered, sizes, budget, picked):
    while len(picked) < budget:
        best, gain = None, 0
        for i in candidates:
            if i in picked:
                continue
            g = len(sets.get(i, ()) - covered)
            if g > gain or (g == gain and g > 0 and sizes[i] < sizes[best]):
                best, gain = i, g
        if best is None:
            return
        picked.add(best)
        covered |= sets[best]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("control")
    ap.add_argument("--max-files", type=int, default=300)
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()

    files, ft, cov = read_control(args.control)
    idx = [i for i in range(len(files)) if i in ft and not os.path.basename(files[i]).startswith("crash-")]
    sizes = {i: os.path.getsize(files[i]) for i in idx}
    picked = set()
    edges = set()
    greedy(idx, cov, edges, sizes, args.max_files, picked)
    features = set().union(*(ft[i] for i in picked)) if picked else set()
    greedy(idx, ft, features, sizes, args.max_files, picked)
    all_edges = set().union(*(cov.get(i, set()) for i in idx)) if idx else set()
    all_ft = set().union(*(ft[i] for i in idx)) if idx else set()
    print(f"kept {len(picked)}/{len(idx)} files, edges {len(edges)}/{len(all_edges)}, "
          f"features {len(features)}/{len(all_ft)}, {sum(sizes[i] for i in picked)} bytes")
    if not args.dry_run:
        for i in idx:
            if i not in picked:
                os.remove(files[i])


if __name__ == "__main__":
    main()
