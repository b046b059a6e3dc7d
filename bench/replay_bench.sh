#!/usr/bin/env bash
# Replay throughput of sidetap against `tcpdump -r` on the same captures, in one run.
#
#   bench/replay_bench.sh [-n PAIRS] [-r RUNS] [-s SIDETAP] [-t TCP_SHARE] [-f FRAG_SHARE]
#                         [-o udp,mixed] [-p PCAP]... [-k]
#     -n PAIRS   DNS query/response pairs in each generated pcap (default 500000 = 1M messages)
#     -r RUNS    rounds; each round runs every command once, interleaved; the best (lowest)
#                wall time and CPU time count (default 3)
#     -s SIDETAP the binary (default build/sidetap)
#     -t SHARE   mixed file: share of the exchanges over TCP connections (default 0.15)
#     -f SHARE   mixed file: share of UDP exchanges with an IP-fragmented response (default 0.01)
#     -o FILES   which generated captures: udp (UDP only), mixed (UDP + TCP + fragments), none;
#                default both
#     -p PCAP    also a capture of a real server (bench/make_server_capture.sh writes one, with
#                PCAP.expected holding the number of DNS messages in it); repeatable
#     -k         keep the temporary directory (pcaps and dnstap output)
#
# Measured for each capture (page-cached by a read before timing), in rounds:
#   tcpdump -r FILE -w /dev/null                                       (read + write pcap: floor)
#   sidetap replay -q -w /dev/null --identity bench --version bench FILE  (decode+pair+encode)
#   sidetap replay -q -w OUT.dnstap --identity bench --version bench FILE (+ file output)
#   the same with --extra 'rack=7 dc=fra1' (constant) and --extra '{file}:{frame}:{vlan}'
#   (three placeholders rendered per message; issue 14: each within 10% of the run without)
# Wall time from date +%s%N around each run; CPU time (user + sys, all threads) and peak RSS
# from /usr/bin/time -v (lowest CPU time, max RSS over runs). On a loaded machine the CPU-time
# ratio is the steadier of the two.
# The dnstap file is then checked: START, STOP, one frame per DNS message (generated captures:
# 2 x PAIRS; -p: PCAP.expected if present, else sidetap's own dns_queries + dns_responses), and
# the output's dropped counter 0.
# Targets (issue 11): sidetap → file within 1.5x tcpdump's wall time and 2x its CPU time,
# peak RSS at most 40 MiB, every message emitted: the last columns say yes/no.
# Prints a markdown table (machine, date; one row per capture) to paste into bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

pairs=500000 runs=3 sidetap=build/sidetap keep=0 tcp_share=0.15 frag_share=0.01 files=udp,mixed
extra=()
while getopts "n:r:s:t:f:o:p:kh" opt; do
  case $opt in
    n) pairs=$OPTARG ;;
    r) runs=$OPTARG ;;
    s) sidetap=$OPTARG ;;
    t) tcp_share=$OPTARG ;;
    f) frag_share=$OPTARG ;;
    o) files=$OPTARG ;;
    p) extra+=("$(realpath "$OPTARG")") ;;
    k) keep=1 ;;
    *) sed -n '3,/^set -e/p' "$0" | sed '$d'; exit 2 ;;
  esac
done
[[ -x $sidetap ]] || { echo "replay_bench: no sidetap binary at $sidetap (run scripts/build.sh)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "replay_bench: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/sidetap-bench.XXXXXX)
if ((keep)); then trap 'echo "kept $tmp" >&2' EXIT; else trap 'rm -rf "$tmp"' EXIT; fi

# once NAME CMD... -> one run; updates best_<NAME>, cpu_<NAME> (lowest), rss_<NAME> (highest)
once() {
  local name=$1; shift
  local t0 t1 s r c best cpu rss
  t0=$(date +%s%N)
  if ! /usr/bin/time -v -o "$tmp/time.txt" "$@" >/dev/null 2>"$tmp/stderr.txt"; then
    echo "replay_bench: failed: $*" >&2; cat "$tmp/stderr.txt" "$tmp/time.txt" >&2; exit 1
  fi
  t1=$(date +%s%N)
  s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  r=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tmp/time.txt")
  c=$(awk -F': ' '/User time|System time/ { t += $2 } END { printf "%.3f", t }' "$tmp/time.txt")
  echo "  $name: ${s} s (cpu ${c} s), peak RSS $((r / 1024)) MiB, load $(cut -d' ' -f1 /proc/loadavg)" >&2
  best=best_$name cpu=cpu_$name rss=rss_$name
  if [[ -z ${!best:-} ]] || awk -v x="$s" -v y="${!best}" 'BEGIN { exit !(x < y) }'; then printf -v "$best" '%s' "$s"; fi
  if [[ -z ${!cpu:-} ]] || awk -v x="$c" -v y="${!cpu}" 'BEGIN { exit !(x < y) }'; then printf -v "$cpu" '%s' "$c"; fi
  if [[ -z ${!rss:-} ]] || ((r > ${!rss})); then printf -v "$rss" '%s' "$r"; fi
}

calc() { awk "BEGIN { printf \"$1\", $2 }"; }
yes_no() { awk "BEGIN { print ($1) ? \"yes\" : \"**no**\" }"; }
cpu_model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
rows=()
extra_rows=()

# bench KIND PCAP EXPECTED_MESSAGES (empty: from sidetap's summary)
bench() {
  local kind=$1 pcap=$2 expected=$3 packets load frames i summary dropped
  unset best_tcpdump cpu_tcpdump rss_tcpdump best_null cpu_null rss_null best_file cpu_file rss_file
  unset best_xconst cpu_xconst rss_xconst best_xtmpl cpu_xtmpl rss_xtmpl
  cat "$pcap" >/dev/null
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "replay_bench: $kind: $(du -m "$pcap" | cut -f1) MB, $runs rounds, load $load" >&2
  for ((i = 1; i <= runs; i++)); do
    once tcpdump tcpdump -r "$pcap" -w /dev/null
    once null "$sidetap" replay -q -w /dev/null --identity bench --version bench "$pcap"
    once file "$sidetap" replay -q -w "$tmp/out.dnstap" --identity bench --version bench "$pcap"
    once xconst "$sidetap" replay -q -w "$tmp/out.dnstap" --identity bench --version bench \
      --extra 'rack=7 dc=fra1' "$pcap"
    once xtmpl "$sidetap" replay -q -w "$tmp/out-extra.dnstap" --identity bench --version bench \
      --extra '{file}:{frame}:{vlan}' "$pcap"
  done
  local xframes
  xframes=$(python3 - "$tmp/out-extra.dnstap" <<'EOF'
import os, sys
sys.path.insert(0, os.path.join("tests", "lib"))
from sidetap_testlib import read_frames
print(len(read_frames(sys.argv[1])[1]))
EOF
)
  # One more (untimed) run for the counters: what was emitted, reassembled, paired, dropped.
  summary=$("$sidetap" replay -w "$tmp/out.dnstap" --identity bench --version bench "$pcap" 2>&1 >/dev/null)
  sed -n 's/^sidetap: counters: /  counters: /p' <<<"$summary" >&2
  packets=$(sed -n 's/^sidetap: packets=\([0-9]*\).*/\1/p' <<<"$summary")
  if [[ -z $expected ]]; then
    expected=$(sed -n 's/^sidetap: udp=.* dns_queries=\([0-9]*\) dns_responses=\([0-9]*\).*/\1 \2/p' <<<"$summary" \
               | awk '{ print $1 + $2 }')
  fi
  dropped=$(sed -n 's/^sidetap: output .* dropped=\([0-9]*\).*/\1/p' <<<"$summary")
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
  local all="yes"
  if [[ $frames != "$expected" || $dropped != 0 ]]; then
    all="**no**: $frames of $expected, dropped $dropped"
    echo "replay_bench: WARNING: $kind: $frames dnstap frames for $expected messages, dropped=$dropped" >&2
  fi
  local wall_x cpu_x rss_mib
  wall_x=$(calc %.2f "$best_file / $best_tcpdump")
  cpu_x=$(calc %.2f "($cpu_tcpdump > 0 ? $cpu_file / $cpu_tcpdump : 0)")
  rss_mib=$(( (rss_null > rss_file ? rss_null : rss_file) / 1024 ))
  local xc_wall xc_cpu xt_wall xt_cpu
  xc_wall=$(calc %.3f "$best_xconst / $best_file") xc_cpu=$(calc %.3f "($cpu_file > 0 ? $cpu_xconst / $cpu_file : 0)")
  xt_wall=$(calc %.3f "$best_xtmpl / $best_file") xt_cpu=$(calc %.3f "($cpu_file > 0 ? $cpu_xtmpl / $cpu_file : 0)")
  extra_rows+=("| $kind | $frames | $best_file / $best_xconst / $best_xtmpl | $cpu_file / $cpu_xconst / $cpu_xtmpl\
 | $xc_wall / $xc_cpu | $xt_wall / $xt_cpu | $(yes_no "$xc_wall <= 1.10 && $xt_wall <= 1.10")\
 | $(yes_no "$xc_cpu <= 1.10 && $xt_cpu <= 1.10") | $([[ $xframes == "$frames" ]] && echo yes || echo "**no**: $xframes") |")
  rows+=("| $kind | $packets | $frames | $(du -m "$pcap" | cut -f1) | $best_tcpdump | $best_null\
 | $best_file | $(calc %.0f "$frames / $best_file") | $wall_x | $cpu_tcpdump / $cpu_null / $cpu_file | $cpu_x\
 | $rss_mib / $((rss_tcpdump / 1024)) | $load\
 | $(yes_no "$wall_x <= 1.5") | $(yes_no "$cpu_x <= 2") | $(yes_no "$rss_mib <= 40") | $all |")
}

IFS=, read -ra todo <<<"$files"
for kind in "${todo[@]}"; do
  pcap=$tmp/$kind.pcap
  case $kind in
    none) continue ;;
    udp) python3 bench/gen_udp_pcap.py -n "$pairs" -o "$pcap" 2>"$tmp/gen.txt" ;;
    mixed) python3 bench/gen_udp_pcap.py -n "$pairs" --tcp-share "$tcp_share" --frag-share "$frag_share" \
             -o "$pcap" 2>"$tmp/gen.txt" ;;
    *) echo "replay_bench: unknown capture $kind (udp, mixed, none)" >&2; exit 2 ;;
  esac
  cat "$tmp/gen.txt" >&2
  bench "$kind ($pairs pairs)" "$pcap" "$((2 * pairs))"
done
for pcap in "${extra[@]}"; do
  expected=""
  [[ -f $pcap.expected ]] && expected=$(cat "$pcap.expected")
  bench "$(basename "$pcap")" "$pcap" "$expected"
done

echo
echo "Machine: $cpu_model, $(nproc) CPUs; $(date -u '+%Y-%m-%d %H:%M UTC'); sidetap $("$sidetap" --version | head -1);"
echo "\`bench/replay_bench.sh -r $runs -n $pairs${extra:+ -p …}\`, best of $runs interleaved rounds."
echo
echo "| capture | packets | messages | pcap MB | tcpdump -r s | sidetap →/dev/null s | sidetap →file s | msg/s (→file) | wall ×tcpdump (→file) | CPU s (tcpdump / →null / →file) | CPU ×tcpdump (→file) | peak RSS MiB (sidetap / tcpdump) | load avg | wall ≤ 1.5× | CPU ≤ 2× | RSS ≤ 40 MiB | every message |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "--extra (issue 14): the →file run without, with a constant text, and with '{file}:{frame}:{vlan}'."
echo
echo "| capture | messages | wall s (none / constant / template) | CPU s (none / constant / template) | constant ×none (wall / CPU) | template ×none (wall / CPU) | wall ≤ 1.10× | CPU ≤ 1.10× | every message (template) |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${extra_rows[@]}"
