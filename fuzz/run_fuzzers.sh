#!/usr/bin/env bash
# Runs one libFuzzer target for a while, then minimizes what it found into
# the committed corpus fuzz/corpus/<target>/ (crash-* regression files are
# kept as they are).
#
#   fuzz/run_fuzzers.sh BUILD_DIR TARGET SECONDS [SEED_DIR]
#
# BUILD_DIR is a clang build with -DSIDETAP_FUZZ=ON -DSIDETAP_SANITIZE=ON
# (see fuzz/README.md). SEED_DIR (optional) holds make_seeds.py output for
# this target. Work files go to ${FUZZ_WORK:-/tmp/sidetap-fuzz}/TARGET; the
# fuzzer's log is TARGET.log there. Crashes are written there as crash-*;
# copy the ones worth keeping into fuzz/corpus/TARGET/ (see README).
set -euo pipefail

build=${1:?build dir}
target=${2:?target}
seconds=${3:?seconds}
seeds=${4:-}

here=$(cd "$(dirname "$0")" && pwd)
bin="$build/fuzz/fuzz_$target"
corpus="$here/corpus/$target"
work="${FUZZ_WORK:-/tmp/sidetap-fuzz}/$target"

case "$target" in
  decode) max_len=4096 ;;
  dns) max_len=2048 ;;
  defrag) max_len=1024 ;;
  tcp) max_len=8192 ;;
  pipeline) max_len=16384 ;;
  framestream) max_len=16384 ;;
  listener) max_len=16384 ;;
  pcapfile) max_len=65536 ;;
  encoder) max_len=4096 ;;
  streams) max_len=16384 ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac
# listener and pcapfile: no single allocation above 64 MiB (a length field
# from the input must never size one; libFuzzer reports it as a crash).
extra=()
case "$target" in
  listener|pcapfile) extra=(-malloc_limit_mb=64) ;;
esac

mkdir -p "$work/queue" "$work/artifacts" "$corpus"
inputs=("$work/queue" "$corpus")
[[ -n "$seeds" ]] && inputs+=("$seeds")

set +e
"$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len="$max_len" -timeout=25 "${extra[@]}" \
  -print_final_stats=1 -artifact_prefix="$work/artifacts/" "${inputs[@]}" >"$work/$target.log" 2>&1
status=$?
set -e
echo "$target: fuzzer exit $status; log $work/$target.log"

# Minimize queue + committed corpus into a fresh directory, then replace the
# committed corpus (regression files crash-* stay).
rm -rf "$work/merged" && mkdir -p "$work/merged"
"$bin" -merge=1 -rss_limit_mb=2048 -max_len="$max_len" "$work/merged" "${inputs[@]}" \
  >"$work/merge.log" 2>&1
find "$corpus" -maxdepth 1 -type f ! -name 'crash-*' -delete
cp "$work/merged"/* "$corpus/"
echo "$target: corpus $(find "$corpus" -type f | wc -l) files, $(du -sh "$corpus" | cut -f1)"
exit "$status"
