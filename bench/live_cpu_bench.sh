#!/usr/bin/env bash
# Live capture: CPU time per DNS message of the capturing process beside Knot at a fixed rate,
# sidetap next to `tcpdump -w /dev/null` on the same traffic, interleaved.
#
#   sudo bench/live_cpu_bench.sh [-s SIDETAP] [-Q QPS] [-l SECONDS] [-r ROUNDS] [-m CONFIGS] [-w DEST] [-k]
#     -s SIDETAP  the binary (default build/sidetap)
#     -Q QPS      dnsperf's fixed offered rate (default 40000)
#     -l SECONDS  dnsperf run per measurement (default 10)
#     -r ROUNDS   rounds; each runs every configuration once, in turn (default 3)
#     -m CONFIGS  comma-separated, from: tcpdump, sidetap (libpcap), ebpf-socket, ebpf-tc
#                 (default: tcpdump,sidetap, plus ebpf-socket when the binary has eBPF)
#     -w DEST     sidetap's output: file (default: a dnstap file in the temporary directory) or
#                 null (-w /dev/null, as tcpdump's: the capture's own cost, without the page
#                 cache copy and file system work of a 12 MB/s file; loss is then checked by
#                 sidetap's frames_written and drop counters)
#     -k          keep the temporary directory
# Setup: one namespace, loopback only: knotd on 127.0.0.53 (zone of wildcards), dnsperf from
# 127.0.0.1 (-c 4 -q 64 -Q QPS -l SECONDS, 10000 names, UDP). Per measurement, a capture on lo
# is started and awaited, dnsperf runs, the capture is given time to catch up (its counters
# stop moving), then the CPU time it used since it was ready (utime + stime of all its threads,
# /proc/PID/stat, so start-up is left out) is read and it is stopped:
#   tcpdump       tcpdump -i lo -B 65536 -w /dev/null -n 'port 53'
#   sidetap       sidetap capture -i lo -B 64 --role auth -w FILE (libpcap)
#   ebpf-socket   the same with --ebpf socket -i lo;  ebpf-tc: --ebpf tc -i lo
# CPU per message = that CPU time / (2 x queries completed). "No loss": every message is in
# sidetap's file (queries sent + responses completed) and no drop counter moved; tcpdump: no
# "dropped by kernel". Target (issue 11): sidetap at most 2x tcpdump's CPU per message.
# Prints a markdown table (machine, date) for bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/netns_env.sh

sidetap=build/sidetap qps=40000 secs=10 rounds=3 configs="" dest=file NE_KEEP=0
while getopts "s:Q:l:r:m:w:kh" opt; do
  case $opt in
    s) sidetap=$OPTARG ;;
    Q) qps=$OPTARG ;;
    l) secs=$OPTARG ;;
    r) rounds=$OPTARG ;;
    m) configs=${OPTARG//,/ } ;;
    w) dest=$OPTARG ;;
    k) NE_KEEP=1 ;;
    *) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 2 ;;
  esac
done
[[ -x $sidetap ]] || { echo "live_cpu_bench: no sidetap binary at $sidetap" >&2; exit 1; }
[[ $dest == file || $dest == null ]] || { echo "live_cpu_bench: -w file or null" >&2; exit 2; }
for t in ip knotd dnsperf tcpdump python3; do
  command -v $t >/dev/null || { echo "live_cpu_bench: missing $t" >&2; exit 1; }
done
sidetap=$(realpath "$sidetap")
if [[ -z $configs ]]; then
  configs="tcpdump sidetap"
  if "$sidetap" --version | grep -q eBPF; then configs+=" ebpf-socket"; fi
fi
hz=$(getconf CLK_TCK)

ne_init lcb
ne_ns srv
ne_in srv ip addr add 127.0.0.53/8 dev lo 2>/dev/null || true
ne_knot srv 127.0.0.53@53
ne_queries "$NE_TMP/q.txt" 10000

declare -A ns_per_msg cpu_s msgs loss
settle() {   # LOG: waits until the last stats line's packets= stops changing (max 20 s)
  local last=-1 same=0 i cur
  for ((i = 0; i < 40; i++)); do
    cur=$(grep -o 'stats packets=[0-9]*' "$1" | tail -1 | cut -d= -f2)
    if [[ -n $cur && $cur == "$last" ]]; then ((++same >= 2)) && return 0; else same=0 last=$cur; fi
    sleep 0.5
  done
}

measure() {   # CONFIG ROUND
  local c=$1 r=$2 pid log=$NE_TMP/$1.err front=() out=$NE_TMP/out.dnstap
  [[ $dest == null ]] && out=/dev/null
  case $c in
    tcpdump)
      ne_bg pid "$log" srv tcpdump -i lo -B 65536 -w /dev/null -n 'port 53'
      ne_wait "$log" "listening on" "$pid" 10 ;;
    sidetap|ebpf-*)
      case $c in
        sidetap) front=(-i lo) ;;
        ebpf-socket) front=(--ebpf socket -i lo) ;;
        ebpf-tc) front=(--ebpf tc -i lo) ;;
      esac
      ne_bg pid "$log" srv "$sidetap" capture "${front[@]}" -B 64 --role auth --identity bench --version bench \
        -w "$out" --stats-interval 500ms
      ne_wait "$log" "capturing on" "$pid" 10 ;;
  esac
  local ticks0; ticks0=$(ne_cpu_ticks "$pid")   # start-up is not the per-message cost
  ne_in srv dnsperf -s 127.0.0.53 -d "$NE_TMP/q.txt" -c 4 -q 64 -Q "$qps" -l "$secs" -t 2 > "$NE_TMP/dp.txt" 2>&1
  local sent completed
  sent=$(awk '/Queries sent:/ { print $3 }' "$NE_TMP/dp.txt")
  completed=$(awk '/Queries completed:/ { print $3 }' "$NE_TMP/dp.txt")
  if [[ $c == tcpdump ]]; then sleep 1.5; else settle "$log"; fi
  local ticks; ticks=$(( $(ne_cpu_ticks "$pid") - ticks0 ))
  ne_stop "$pid"
  local want=$((sent + completed)) note=""
  if [[ $c == tcpdump ]]; then
    local kd cap
    kd=$(awk '/dropped by kernel/ { print $1 }' "$log")
    cap=$(awk '/packets captured/ { print $1 }' "$log")
    [[ ${kd:-1} == 0 ]] || note="dropped by kernel: ${kd:-?}"
    [[ $cap -ge $want ]] || note+=" captured $cap of $want"
  else
    local written drops
    written=$(sed -n 's/^sidetap: output .* frames_written=\([0-9]*\).*/\1/p' "$log")
    drops=$(grep -E '^sidetap: (interface|ebpf) ' "$log" | grep -oE '(kernel_dropped|interface_dropped|ring_full_dropped|copy_failed)=[1-9][0-9]*' | tr '\n' ' ' || true)
    [[ $written == "$want" ]] || note="wrote $written of $want messages"
    [[ -z $drops ]] || note+=" $drops"
  fi
  local cpu; cpu=$(awk -v t="$ticks" -v h="$hz" 'BEGIN { printf "%.2f", t / h }')
  local per; per=$(awk -v t="$ticks" -v h="$hz" -v m="$((2 * completed))" 'BEGIN { printf "%.0f", t / h / m * 1e9 }')
  echo "  round $r $c: $((2 * completed)) messages, cpu $cpu s, $per ns/message ${note:+($note)}" >&2
  ns_per_msg[$c]+="$per "
  cpu_s[$c]+="$cpu "
  msgs[$c]=$((2 * completed))
  [[ -z $note ]] || loss[$c]+="round $r: $note; "
}

for ((r = 1; r <= rounds; r++)); do
  for c in $configs; do measure "$c" "$r"; done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
base=$(median <<<"${ns_per_msg[tcpdump]:-}")
echo
ne_machine
echo "\`sudo bench/live_cpu_bench.sh -Q $qps -l $secs -r $rounds -m ${configs// /,} -w $dest\`: dnsperf at $qps q/s on lo, $rounds interleaved rounds; median per configuration; sidetap writes to $( [[ $dest == null ]] && echo /dev/null || echo 'a dnstap file' )."
echo
echo "| capture | messages per run | CPU s per run (each round) | ns CPU per message (median) | ×tcpdump | loss |"
echo "|---|---|---|---|---|---|"
for c in $configs; do
  m=$(median <<<"${ns_per_msg[$c]}")
  x="-"
  [[ -n $base && $c != tcpdump ]] && x=$(awk -v a="$m" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
  echo "| $c | ${msgs[$c]} | ${cpu_s[$c]% } | $m | $x | ${loss[$c]:-none} |"
done
