#!/usr/bin/env bash
# shellcheck disable=SC2154  # best_* and rss_* are set by measure() through printf -v
# Replay throughput of sidetap against `tcpdump -r` on the same generated captures.
#
#   bench/replay_bench.sh [-n PAIRS] [-r RUNS] [-s SIDETAP] [-t TCP_SHARE] [-f FRAG_SHARE]
#                         [-o udp,mixed] [-k]
#     -n PAIRS   DNS query/response pairs in each generated pcap (default 500000 = 1M messages)
#     -r RUNS    runs per command; the best (lowest) wall time counts (default 3)
#     -s SIDETAP the binary (default build/sidetap)
#     -t SHARE   mixed file: share of the exchanges over TCP connections (default 0.15)
#     -f SHARE   mixed file: share of UDP exchanges with an IP-fragmented response (default 0.01)
#     -o FILES   which captures: udp (UDP only), mixed (UDP + TCP + fragments); default both
#     -k         keep the temporary directory (pcaps and dnstap output)
#
# Measured in one run, for each pcap that bench/gen_udp_pcap.py writes into a temp dir
# (page-cached by a read before timing; `mixed` adds --tcp-share/--frag-share):
#   tcpdump -r FILE -w /dev/null                                       (read + write pcap: floor)
#   sidetap replay -q -w /dev/null --identity bench --version bench FILE  (decode+pair+encode)
#   sidetap replay -q -w OUT.dnstap --identity bench --version bench FILE (+ file output)
# Wall time from date +%s%N around each run; CPU time (user + sys) and peak RSS from
# /usr/bin/time -v (lowest CPU time, max RSS over runs). On a loaded machine the CPU-time ratio
# is the steadier of the two (it still includes the file output's I/O thread).
# The dnstap file is then checked: START, one frame per DNS message (2 x PAIRS), STOP.
# Prints a markdown table (header + one row per capture) to paste into bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

pairs=500000 runs=3 sidetap=build/sidetap keep=0 tcp_share=0.15 frag_share=0.01 files=udp,mixed
while getopts "n:r:s:t:f:o:kh" opt; do
  case $opt in
    n) pairs=$OPTARG ;;
    r) runs=$OPTARG ;;
    s) sidetap=$OPTARG ;;
    t) tcp_share=$OPTARG ;;
    f) frag_share=$OPTARG ;;
    o) files=$OPTARG ;;
    k) keep=1 ;;
    *) sed -n '3,/^set -e/p' "$0" | sed '$d'; exit 2 ;;
  esac
done
[[ -x $sidetap ]] || { echo "replay_bench: no sidetap binary at $sidetap (run scripts/build.sh)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "replay_bench: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/sidetap-bench.XXXXXX)
if ((keep)); then trap 'echo "kept $tmp" >&2' EXIT; else trap 'rm -rf "$tmp"' EXIT; fi
messages=$((2 * pairs))

# measure NAME CMD... -> sets best_<NAME> (seconds), cpu_<NAME> (lowest user+sys seconds)
# and rss_<NAME> (KiB, max over runs)
measure() {
  local name=$1; shift
  local best="" cpu="" rss=0 i t0 t1 s r c
  for ((i = 1; i <= runs; i++)); do
    t0=$(date +%s%N)
    if ! /usr/bin/time -v -o "$tmp/time.txt" "$@" >/dev/null 2>"$tmp/stderr.txt"; then
      echo "replay_bench: failed: $*" >&2; cat "$tmp/stderr.txt" "$tmp/time.txt" >&2; exit 1
    fi
    t1=$(date +%s%N)
    s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    r=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tmp/time.txt")
    c=$(awk -F': ' '/User time|System time/ { t += $2 } END { printf "%.3f", t }' "$tmp/time.txt")
    echo "  $name run $i: ${s} s (cpu ${c} s), peak RSS $((r / 1024)) MiB, load $(cut -d' ' -f1 /proc/loadavg)" >&2
    if [[ -z $best ]] || awk -v x="$s" -v y="$best" 'BEGIN { exit !(x < y) }'; then best=$s; fi
    if [[ -z $cpu ]] || awk -v x="$c" -v y="$cpu" 'BEGIN { exit !(x < y) }'; then cpu=$c; fi
    ((r > rss)) && rss=$r
  done
  printf -v "best_$name" '%s' "$best"
  printf -v "cpu_$name" '%s' "$cpu"
  printf -v "rss_$name" '%s' "$rss"
}

calc() { awk "BEGIN { printf \"$1\", $2 }"; }
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
rows=()
IFS=, read -ra todo <<<"$files"
for kind in "${todo[@]}"; do
  pcap=$tmp/$kind.pcap
  case $kind in
    udp) python3 bench/gen_udp_pcap.py -n "$pairs" -o "$pcap" 2>"$tmp/gen.txt" ;;
    mixed) python3 bench/gen_udp_pcap.py -n "$pairs" --tcp-share "$tcp_share" --frag-share "$frag_share" \
             -o "$pcap" 2>"$tmp/gen.txt" ;;
    *) echo "replay_bench: unknown capture $kind (udp, mixed)" >&2; exit 2 ;;
  esac
  cat "$tmp/gen.txt" >&2
  packets=$(sed -n 's/.* \([0-9]*\) packets.*/\1/p' "$tmp/gen.txt")
  cat "$pcap" >/dev/null
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "replay_bench: $kind: $pairs pairs ($messages messages, $packets packets), $(du -m "$pcap" | cut -f1) MB, best of $runs, load $load" >&2
  measure tcpdump tcpdump -r "$pcap" -w /dev/null
  measure null "$sidetap" replay -q -w /dev/null --identity bench --version bench "$pcap"
  measure file "$sidetap" replay -q -w "$tmp/out.dnstap" --identity bench --version bench "$pcap"
  # Counters of one more (untimed) run, for the notes: reassembly and pairing.
  "$sidetap" replay -w /dev/null --identity bench --version bench "$pcap" 2>&1 >/dev/null \
    | sed -n 's/^sidetap: counters: /  counters: /p' >&2

  frames=$(python3 - "$tmp/out.dnstap" <<'EOF'
import os, sys
sys.path.insert(0, os.path.join("tests", "lib"))
from sidetap_testlib import read_frames, CONTENT_TYPE
ct, frames, stop = read_frames(sys.argv[1])
if ct != CONTENT_TYPE or not stop:
    sys.exit(f"bad dnstap file: content type {ct!r}, STOP {stop}")
print(len(frames))
EOF
)
  if [[ $frames != "$messages" ]]; then
    echo "replay_bench: WARNING: $kind: $frames dnstap frames for $messages messages" >&2
  fi
  rows+=("| $(date -u +%Y-%m-%d) | $cpu ($(nproc)) | $load | $kind | $packets | $frames | $(du -m "$pcap" | cut -f1) | $best_tcpdump\
 | $best_null | $(calc %.0f "$frames / $best_null") | $(calc %.1f "$best_null / $best_tcpdump")\
 | $best_file | $(calc %.0f "$frames / $best_file") | $(calc %.1f "$best_file / $best_tcpdump")\
 | $(( (rss_null > rss_file ? rss_null : rss_file) / 1024 )) / $((rss_tcpdump / 1024))\
 | $(du -m "$tmp/out.dnstap" | cut -f1)\
 | $cpu_tcpdump / $cpu_null / $cpu_file | $(calc %.1f "($cpu_tcpdump > 0 ? $cpu_null / $cpu_tcpdump : 0)") / $(calc %.1f "($cpu_tcpdump > 0 ? $cpu_file / $cpu_tcpdump : 0)") |")
done

echo
echo "| date | CPU (nproc) | load avg | capture | packets | messages | pcap MB | tcpdump -r s | sidetap →/dev/null s | msg/s | ×tcpdump | sidetap →file s | msg/s | ×tcpdump | peak RSS MiB (sidetap / tcpdump) | dnstap MB | CPU s (tcpdump / →null / →file) | CPU ×tcpdump (→null / →file) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
