#!/usr/bin/env bash
# Peak memory of sidetap under adversarial traffic that fills its bounded tables.
#
#   bench/memory_bench.sh [-r RUNS] [-s SIDETAP] [-x SCALE] [-o SCENARIOS] [-k]
#     -r RUNS      timed runs per (scenario, configuration); best wall time, max RSS (default 3)
#     -s SIDETAP   the binary (default build/sidetap)
#     -x SCALE     divide the item counts by SCALE (quick check: -x 100)
#     -o SCENARIOS comma list out of: frags,fragshigh,tcp,tcpbig,queries (default all)
#     -k           keep the temporary directory (pcaps)
#
# Scenarios (pcaps from bench/gen_adversarial.py, written to a temp dir, page-cached):
#   frags    1,000,000 orphan first fragments (IPv4 + 20% IPv6), distinct datagrams
#   fragshigh 1,000,000 orphan middle fragments at offset 63000 (each datagram needs a
#            64 KiB buffer: exercises the 64 MiB defragmenter byte bound, EvictedMemory)
#   tcp      100,000 TCP connections: SYN + half a DNS query each, never closed
#   tcpbig   10,000 TCP connections: SYN + a length prefix of 65535 and 60,000 bytes of the
#            message in one segment, never closed (fills the 256 MiB TCP buffer bound; RSS
#            counts only touched pages, so the bytes must really be sent)
#   queries  1,000,000 UDP queries, never answered, distinct (client, port)
# Configurations:
#   default  no cap flags (8192 datagrams / 65536 streams / 65536 queries)
#   small    --max-fragmented-datagrams 1000 --max-tcp-streams 1000 --max-pending-queries 1000
#   timeout  default caps, short timeouts: --fragment-timeout 20ms --tcp-idle-timeout 1s
#            --query-timeout 100ms (exercises the timeout path instead of eviction)
# Each configuration is also run on a one-packet pcap: the fixed cost (tables reserved at
# start), so "growth" = peak RSS - that baseline.
# Timed command: sidetap replay -q -w /dev/null FLAGS FILE  (under /usr/bin/time -v).
# One more run without -q (same flags) prints the counters line; the script checks that the
# drop counters account for every item (see check_counters below) and prints a markdown table.
# "estimate at cap" = what the tables can hold for this input (cap x entry size, see
# check_counters) + the output queue's pages touched (min(dnstap bytes written, 64 MiB)).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3 sidetap=build/sidetap scale=1 keep=0 scenarios=frags,fragshigh,tcp,tcpbig,queries
while getopts "r:s:x:o:kh" opt; do
  case $opt in
    r) runs=$OPTARG ;;
    s) sidetap=$OPTARG ;;
    x) scale=$OPTARG ;;
    o) scenarios=$OPTARG ;;
    k) keep=1 ;;
    *) sed -n '3,/^set -e/p' "$0" | sed '$d'; exit 2 ;;
  esac
done
[[ -x $sidetap ]] || { echo "memory_bench: no sidetap binary at $sidetap" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "memory_bench: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/sidetap-membench.XXXXXX)
if ((keep)); then trap 'echo "kept $tmp" >&2' EXIT; else trap 'rm -rf "$tmp"' EXIT; fi

declare -A flags=(
  [default]=""
  [small]="--max-fragmented-datagrams 1000 --max-tcp-streams 1000 --max-pending-queries 1000"
  [timeout]="--fragment-timeout 20ms --tcp-idle-timeout 1s --query-timeout 100ms"
)
configs=(default small timeout)

gen() {  # gen NAME KIND COUNT [EXTRA...]
  local name=$1 kind=$2 count=$(($3 / scale)); shift 3
  python3 bench/gen_adversarial.py "$kind" -n "$count" -o "$tmp/$name.pcap" "$@"
  cat "$tmp/$name.pcap" >/dev/null
  echo "$count" >"$tmp/$name.count"
}
IFS=, read -ra todo <<<"$scenarios"
for s in "${todo[@]}"; do
  case $s in
    frags) gen frags frags 1000000 ;;
    fragshigh) gen fragshigh frags 1000000 --frag-offset 63000 ;;
    tcp) gen tcp tcp 100000 ;;
    tcpbig) gen tcpbig tcp 10000 --tcp-claimed 65535 --tcp-sent 60000 ;;
    queries) gen queries queries 1000000 ;;
    *) echo "memory_bench: unknown scenario $s" >&2; exit 2 ;;
  esac
done
# Baseline: a pcap with one query.
python3 bench/gen_adversarial.py queries -n 1 -o "$tmp/one.pcap" 2>/dev/null

# run1 FILE FLAGS... -> prints "seconds rss_kib"; stderr of sidetap in $tmp/stderr.txt
run1() {
  local t0 t1 r
  t0=$(date +%s%N)
  if ! /usr/bin/time -v -o "$tmp/time.txt" "$sidetap" replay "$@" >/dev/null 2>"$tmp/stderr.txt"; then
    echo "memory_bench: failed: $sidetap replay $*" >&2; cat "$tmp/stderr.txt" "$tmp/time.txt" >&2; exit 1
  fi
  t1=$(date +%s%N)
  r=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tmp/time.txt")
  awk -v a="$t0" -v b="$t1" -v r="$r" 'BEGIN { printf "%.3f %d\n", (b - a) / 1e9, r }'
}

# Expected drop accounting and a rough memory estimate per (scenario, config), from the
# counters line. Prints: "<relevant counters> | <check> | <estimate MiB>".
check_counters() {  # check_counters SCENARIO CONFIG COUNT STDERR_FILE
  python3 - "$@" <<'EOF'
import re, sys
scen, cfg, n, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
text = open(path).read()
m = re.search(r"^sidetap: counters:(.*)$", text, re.M)
c = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))} if m else {}
m = re.search(r"frames=(\d+)", text)
frames = int(m.group(1)) if m else -1
m = re.search(r"^sidetap: output .* bytes=(\d+)", text, re.M)
out_bytes = int(m.group(1)) if m else 0
g = lambda k: c.get(k, 0)
caps = {"default": (8192, 65536, 65536), "small": (1000, 1000, 1000), "timeout": (8192, 65536, 65536)}
dgrams, streams, queries = caps[cfg]
KiB, MiB = 1024, 1024 * 1024
if scen in ("frags", "fragshigh"):
    keys = ["defrag_fragments", "defrag_evicted_table_full", "defrag_evicted_memory",
            "defrag_timed_out", "defrag_incomplete_at_end", "defrag_reassembled"]
    dropped = sum(g(k) for k in keys[1:5])
    ok = g("defrag_fragments") == n and dropped == n and g("defrag_reassembled") == 0
    check = f"fragments {g('defrag_fragments')}; evicted+timed_out+at_end = {dropped} of {n}"
    # per open datagram: a 2 KiB buffer block + 128 fragment ranges x 4 B + ~100 B tracker
    # (allocated, not necessarily touched: RSS counts only the pages written)
    block = 65536 if scen == "fragshigh" else 2048     # buffers: at most max_bytes = 64 MiB
    est = (min(min(n, dgrams) * block, 64 * MiB) + min(n, dgrams) * (128 * 4 + 100)) / MiB
elif scen in ("tcp", "tcpbig"):
    keys = ["tcp_streams_opened", "tcp_streams_evicted", "tcp_streams_timed_out",
            "tcp_streams_flushed_at_end", "tcp_streams_closed", "tcp_partial_at_close",
            "tcp_messages", "tcp_stream_buffer_full"]
    ended = sum(g(k) for k in keys[1:5])
    ok = g("tcp_streams_opened") == n and ended == n and g("tcp_messages") == 0
    check = f"opened {g('tcp_streams_opened')}; evicted+timed_out+flushed+closed = {ended} of {n}"
    # per open stream with a partial message (the ~120 B connection slots are reserved at
    # start, in the baseline): a Buf (~80 B) + its out-of-order range vector, reserved at
    # 64 x 16 B and not counted against max_total_bytes, + the message buffer (announced
    # length + 2; all of those together capped by max_total_bytes = 256 MiB)
    msg = 65537 if scen == "tcpbig" else 64
    live = min(n, streams, (256 * MiB) // msg)
    est = (live * (80 + 1024 + 32) + live * msg) / MiB
else:
    keys = ["unanswered_evicted", "unanswered_queries", "unanswered_at_end", "paired",
            "duplicate_queries"]
    dropped = sum(g(k) for k in keys[:3])
    ok = dropped == n and frames == n and g("paired") == 0
    check = f"frames {frames}; evicted+timed_out+at_end = {dropped} of {n}"
    # a pending query: ExchangeKey (~300 B, the qname is a 255-byte array) + value + links
    est = min(n, queries) * 328 / MiB
# The output's frame queue is a 64 MiB byte ring (src/output/frame_queue.h) addressed by
# monotonic positions: every page of it gets touched once that much dnstap has been written.
est += min(out_bytes, 64 * MiB) / MiB
shown = " ".join(f"{k}={g(k)}" for k in keys if g(k)) + f" (dnstap written: {out_bytes / MiB:.0f} MiB)"
print(f"{shown} | {check} {'OK' if ok else 'MISMATCH'} | {est:.1f}")
EOF
}

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
echo "memory_bench: $(date -u +%Y-%m-%dT%H:%MZ), $cpu ($(nproc)), load $(cut -d' ' -f1-3 /proc/loadavg), best of $runs" >&2
declare -A base
for cfg in "${configs[@]}"; do
  read -ra fl <<<"${flags[$cfg]}"
  read -r _ r < <(run1 -q -w /dev/null "${fl[@]}" "$tmp/one.pcap")
  base[$cfg]=$r
  echo "  baseline $cfg: peak RSS $((r / 1024)) MiB" >&2
done

rows=()
for s in "${todo[@]}"; do
  n=$(cat "$tmp/$s.count")
  for cfg in "${configs[@]}"; do
    read -ra fl <<<"${flags[$cfg]}"
    best="" rss=0
    for ((i = 1; i <= runs; i++)); do
      read -r t r < <(run1 -q -w /dev/null "${fl[@]}" "$tmp/$s.pcap")
      echo "  $s $cfg run $i: $t s, peak RSS $((r / 1024)) MiB (load $(cut -d' ' -f1 /proc/loadavg))" >&2
      if [[ -z $best ]] || awk -v x="$t" -v y="$best" 'BEGIN { exit !(x < y) }'; then best=$t; fi
      ((r > rss)) && rss=$r
    done
    read -r t r < <(run1 -w /dev/null "${fl[@]}" "$tmp/$s.pcap")
    ((r > rss)) && rss=$r
    packets=$(sed -n 's/^sidetap: packets=\([0-9]*\).*/\1/p' "$tmp/stderr.txt")
    IFS='|' read -r counters check est < <(check_counters "$s" "$cfg" "$n" "$tmp/stderr.txt")
    echo "  $s $cfg counters:$counters" >&2
    rows+=("| $s | $cfg | $n | $packets | $best | $((rss / 1024)) | $(((rss - base[$cfg]) / 1024)) |${est}|${counters}|${check}|")
  done
done

echo
echo "Baseline (one-packet pcap) peak RSS MiB: default $((base[default] / 1024)), small $((base[small] / 1024)), timeout $((base[timeout] / 1024))"
echo
echo "| scenario | config | items | packets | best wall s | peak RSS MiB | growth over baseline MiB | estimate at cap MiB | counters | accounting |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
