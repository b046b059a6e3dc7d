#!/usr/bin/env bash
# Live-capture overhead: Knot's queries/s under dnsperf with no capture, with Knot's own
# mod-dnstap, with tcpdump, with `sidetap capture` (libpcap) and with each eBPF frontend
# (`--ebpf socket|tc|cgroup`); and sidetap's completeness.
#
#   sudo bench/live_bench.sh [-s SIDETAP] [-l SECONDS] [-c CLIENTS] [-q OUTSTANDING] [-B MIB]
#                            [-Q QPS] [-o on|off] [-m CONFIGS] [-a] [-k]
#     -s SIDETAP  the binary (default build/sidetap)
#     -l SECONDS  dnsperf -l per configuration (default 10)
#     -c CLIENTS  dnsperf -c (default 8);  -q OUTSTANDING  dnsperf -q (default 200)
#     -B MIB      kernel capture buffer for tcpdump and sidetap (default 64)
#     -Q QPS      dnsperf -Q: a fixed offered rate instead of the highest (default: none)
#     -m CONFIGS  the configurations to run, comma-separated (default: all of them below;
#                 the ebpf-* ones only when the binary has eBPF support)
#     -o on|off   tso/gso/gro on the veth pair (default on, as veth and most NICs come up).
#                 With offloads on, libpcap (immediate mode -> TPACKET_V2) sizes every ring
#                 slot for a 64 KiB packet, so -B 64 holds only ~1000 packets; off: ~40000
#     -a          append the result section to bench/RESULTS.md
#     -k          keep the temporary directory
#
# Setup (everything inside two namespaces created here, no route out):
#   sidetap-lb-srv-PID: knotd on 192.0.2.1@53 (veth lb-srv, MTU 1500), zone example.test with
#                       wildcards, udp-workers/tcp-workers default (= CPUs), background 1;
#   sidetap-lb-cli-PID: dnsperf -s 192.0.2.1 -d 10000 names (A/AAAA/TXT under *.small) -l L
#                       -c C -q Q, UDP, no rate limit (the highest rate this machine gives).
# Configurations, each a fresh knotd and one dnsperf run, in this order:
#   base      no capture
#   knot      Knot's mod-dnstap (log-queries + log-responses) to a file
#   tcpdump   tcpdump -i lb-srv -B MIB -w FILE -U --immediate-mode 'port 53'
#   sidetap   sidetap capture -i lb-srv -B MIB --role auth -w FILE --stats-interval 1s
#   ebpf-socket  the same with --ebpf socket -i lb-srv (-B MIB: the ring buffer)
#   ebpf-tc      the same with --ebpf tc -i lb-srv
#   ebpf-cgroup  sidetap on the host with --ebpf cgroup --cgroup CG; knotd runs in CG (in every
#                configuration, so that all compare alike: a cgroup v2 directory made here)
#   base2     no capture again (shows how much the machine's load drifted during the run)
# Reported per configuration: dnsperf's queries/s, sent/completed/lost, the change against
# base, the load average before the run; the log's messages vs 2 x completed; drops (Knot's
# file: missing frames; tcpdump: "dropped by kernel"; sidetap: kernel_dropped,
# interface_dropped from pcap_stats, or ring_full_dropped and copy_failed from the eBPF
# counters, and the output's dropped counter).
# After dnsperf ends, the capture is given time to catch up (its packet count stops growing)
# before SIGTERM: the measured cost is the one during the run; what is still in the kernel
# ring is not counted as lost.
set -euo pipefail
cd "$(dirname "$0")/.."

sidetap=build/sidetap secs=10 clients=8 outstanding=200 bufmib=64 append=0 keep=0 rate="" offl=on
configs=""
while getopts "s:l:c:q:B:Q:o:m:akh" opt; do
  case $opt in
    s) sidetap=$OPTARG ;;
    l) secs=$OPTARG ;;
    c) clients=$OPTARG ;;
    q) outstanding=$OPTARG ;;
    B) bufmib=$OPTARG ;;
    Q) rate=$OPTARG ;;
    o) offl=$OPTARG ;;
    m) configs=${OPTARG//,/ } ;;
    a) append=1 ;;
    k) keep=1 ;;
    *) sed -n '3,/^set -e/p' "$0" | sed '$d'; exit 2 ;;
  esac
done
[[ $(id -u) == 0 ]] || { echo "live_bench: needs root (namespaces, capture)" >&2; exit 1; }
[[ -x $sidetap ]] || { echo "live_bench: no sidetap binary at $sidetap" >&2; exit 1; }
for t in ip knotd dnsperf tcpdump ethtool python3; do
  command -v $t >/dev/null || { echo "live_bench: missing $t" >&2; exit 1; }
done
sidetap=$(realpath "$sidetap")
if [[ -z $configs ]]; then
  configs="base knot tcpdump sidetap"
  if "$sidetap" --version | grep -q eBPF; then configs+=" ebpf-socket ebpf-tc ebpf-cgroup"; fi
  configs+=" base2"
fi
cgroot=$(awk '$0 ~ / - cgroup2 / { print $5; exit }' /proc/self/mountinfo)
[[ -n $cgroot ]] || { echo "live_bench: no cgroup v2 hierarchy mounted" >&2; exit 1; }
CG=$cgroot/sidetap-lbench-$$

tmp=$(mktemp -d /tmp/sidetap-lbench.XXXXXX)
chmod 755 "$tmp"
SRV=sidetap-lb-srv-$$ CLI=sidetap-lb-cli-$$
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  ip netns delete "$SRV" 2>/dev/null || true
  ip netns delete "$CLI" 2>/dev/null || true
  rmdir "$CG" 2>/dev/null || true
  if ((keep)); then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_srv() { ip netns exec "$SRV" "$@"; }
in_cli() { ip netns exec "$CLI" "$@"; }

# ---------------------------------------------------------------- namespaces, veth, zone
ip netns add "$SRV"
ip netns add "$CLI"
mkdir "$CG"
in_srv ip link set lo up
in_cli ip link set lo up
in_srv ip link add lb-srv type veth peer name lb-cli netns "$CLI"
in_srv ip addr add 192.0.2.1/24 dev lb-srv
in_cli ip addr add 192.0.2.2/24 dev lb-cli
in_srv ip link set lb-srv mtu 1500 up
in_cli ip link set lb-cli mtu 1500 up
in_srv ethtool -K lb-srv tso "$offl" gso "$offl" gro "$offl"
in_cli ethtool -K lb-cli tso "$offl" gso "$offl" gro "$offl"

mkdir -p "$tmp/knot/db"
{
  echo '$ORIGIN example.test.'; echo '$TTL 3600'
  echo '@ SOA ns1 hostmaster 2024010101 3600 900 604800 300'; echo '@ NS ns1'
  echo 'ns1 A 192.0.2.1'; echo 'www A 192.0.2.80'
  echo '*.small A 192.0.2.81'; echo '*.small AAAA 2001:db8::81'
  echo '*.small TXT "small wildcard"'
} > "$tmp/knot/example.test.zone"
python3 - "$tmp/queries.txt" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(10000):
        f.write(f"q{i}.small.example.test {('A', 'AAAA', 'TXT')[i % 3]}\n")
EOF

knot_conf() {   # $1: with dnstap (0/1)
  local d=$tmp/knot
  cat <<EOF
server:
    rundir: "$d"
    listen: [ 192.0.2.1@53 ]
    background-workers: 1
database:
    storage: "$d/db"
control:
    listen: "$d/knot.sock"
log:
  - target: stderr
    any: info
EOF
  if [[ $1 == 1 ]]; then
    cat <<EOF
mod-dnstap:
  - id: bench
    sink: "$tmp/knot.dnstap"
    identity: "bench"
    version: "bench"
    log-queries: on
    log-responses: on
template:
  - id: default
    storage: "$d"
    global-module: mod-dnstap/bench
EOF
  else
    cat <<EOF
template:
  - id: default
    storage: "$d"
EOF
  fi
  cat <<EOF
zone:
  - domain: example.test
    file: "$d/example.test.zone"
EOF
}

wait_for() {   # FILE REGEX PID TIMEOUT_S
  local i
  for ((i = 0; i < $4 * 20; i++)); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { echo "live_bench: pid $3 died:" >&2; cat "$1" >&2; exit 1; }
    sleep 0.05
  done
  echo "live_bench: /$2/ not in $1 after $4 s" >&2; cat "$1" >&2; exit 1
}

stop_pid() {   # PID: SIGTERM, wait
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep_pids=() p
  for p in "${pids[@]}"; do [[ $p != "$1" ]] && keep_pids+=("$p"); done
  pids=("${keep_pids[@]}")
}

start_knot() {   # $1: dnstap 0/1
  knot_conf "$1" > "$tmp/knot.conf"
  rm -f "$tmp/knot.dnstap"
  : > "$tmp/knotd.log"
  # sh and ip netns exec exec in place: $! is knotd's PID (a shell function here would put a
  # subshell in between, and SIGTERM to it would not reach knotd). knotd joins $CG first.
  sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" \
    ip netns exec "$SRV" knotd -c "$tmp/knot.conf" 2>"$tmp/knotd.log" &
  knot_pid=$!
  pids+=("$knot_pid")
  wait_for "$tmp/knotd.log" "server started" "$knot_pid" 20
}

count_frames() {   # dnstap file -> number of data frames
  python3 - "$1" <<'EOF'
import struct, sys
data = open(sys.argv[1], "rb").read()
pos = n = 0
while pos + 4 <= len(data):
    (l,) = struct.unpack_from(">I", data, pos); pos += 4
    if l == 0:
        (c,) = struct.unpack_from(">I", data, pos); pos += 4 + c
    else:
        pos += l; n += 1
print(n)
EOF
}

# wait until the last "frames=" on a stats line stops changing for 1.5 s (max 30 s)
wait_settled() {   # STDERR_FILE
  local last=-1 same=0 i cur
  for ((i = 0; i < 60; i++)); do
    cur=$(grep -o 'stats packets=[0-9]*' "$1" | tail -1 | cut -d= -f2)
    if [[ $cur == "$last" ]]; then
      ((++same >= 3)) && return 0
    else
      same=0 last=$cur
    fi
    sleep 0.5
  done
}

declare -A qps sent done_ lost load log drops

run_config() {   # NAME
  local name=$1 cap_pid="" dp
  start_knot "$([[ $name == knot ]] && echo 1 || echo 0)"
  case $name in
    tcpdump)
      : > "$tmp/tcpdump.err"
      ip netns exec "$SRV" tcpdump -i lb-srv -B $((bufmib * 1024)) -w "$tmp/bench.pcap" -U --immediate-mode \
        -n -Z root 'port 53' 2>"$tmp/tcpdump.err" &
      cap_pid=$!; pids+=("$cap_pid")
      wait_for "$tmp/tcpdump.err" "listening on" "$cap_pid" 10 ;;
    sidetap|ebpf-*)
      : > "$tmp/sidetap.err"
      local where=(ip netns exec "$SRV") front=(-i lb-srv) ready="capturing on lb-srv"
      case $name in
        ebpf-socket) front=(--ebpf socket -i lb-srv) ;;
        ebpf-tc) front=(--ebpf tc -i lb-srv) ;;
        ebpf-cgroup) where=() front=(--ebpf cgroup --cgroup "$CG") ready="capturing on cgroup" ;;
      esac
      "${where[@]}" "$sidetap" capture "${front[@]}" -B "$bufmib" --role auth --identity bench \
        --version bench -w "$tmp/sidetap.dnstap" --stats-interval 1s 2>"$tmp/sidetap.err" &
      cap_pid=$!; pids+=("$cap_pid")
      wait_for "$tmp/sidetap.err" "$ready" "$cap_pid" 10 ;;
  esac
  load[$name]=$(cut -d' ' -f1-3 /proc/loadavg)
  in_cli dnsperf -s 192.0.2.1 -d "$tmp/queries.txt" -l "$secs" -c "$clients" -q "$outstanding" \
    -t 2 ${rate:+-Q "$rate"} > "$tmp/dnsperf-$name.txt" 2>&1
  dp=$tmp/dnsperf-$name.txt
  qps[$name]=$(awk '/Queries per second:/ { print $4 }' "$dp")
  sent[$name]=$(awk '/Queries sent:/ { print $3 }' "$dp")
  done_[$name]=$(awk '/Queries completed:/ { print $3 }' "$dp")
  lost[$name]=$(awk '/Queries lost:/ { print $3 }' "$dp")
  local want=$((2 * ${done_[$name]}))
  case $name in
    base|base2)
      stop_pid "$knot_pid"
      log[$name]="-"; drops[$name]="-" ;;
    knot)
      stop_pid "$knot_pid"
      local n; n=$(count_frames "$tmp/knot.dnstap")
      log[$name]="$n of $want"
      drops[$name]="$((want > n ? want - n : 0)) missing (libfstrm drops silently)" ;;
    tcpdump)
      sleep 2
      stop_pid "$cap_pid"; stop_pid "$knot_pid"
      local pk kd
      pk=$(tcpdump -r "$tmp/bench.pcap" -n 2>/dev/null | wc -l)
      kd=$(awk '/dropped by kernel/ { print $1 }' "$tmp/tcpdump.err")
      log[$name]="$pk packets of $want"
      drops[$name]="kernel ${kd:-?}" ;;
    sidetap|ebpf-*)
      wait_settled "$tmp/sidetap.err"
      stop_pid "$cap_pid"; stop_pid "$knot_pid"
      local q r od
      q=$(sed -n 's/^sidetap: udp=.* dns_queries=\([0-9]*\) dns_responses=\([0-9]*\).*/\1 \2/p' \
          "$tmp/sidetap.err" | tail -1)
      od=$(sed -n 's/^sidetap: output .* dropped=\([0-9]*\).*/\1/p' "$tmp/sidetap.err" | tail -1)
      r=$(count_frames "$tmp/sidetap.dnstap")
      log[$name]="$r of $want (queries/responses seen: ${q/ //})"
      if [[ $name == sidetap ]]; then
        local kd ifd
        kd=$(sed -n 's/^sidetap: interface lb-srv .*kernel_dropped=\([0-9]*\).*/\1/p' "$tmp/sidetap.err")
        ifd=$(sed -n 's/^sidetap: interface lb-srv .*interface_dropped=\([0-9]*\).*/\1/p' "$tmp/sidetap.err")
        drops[$name]="kernel $kd, interface $ifd, output $od"
      else
        local rf cf
        rf=$(sed -n 's/^sidetap: ebpf .*ring_full_dropped=\([0-9]*\).*/\1/p' "$tmp/sidetap.err")
        cf=$(sed -n 's/^sidetap: ebpf .*copy_failed=\([0-9]*\).*/\1/p' "$tmp/sidetap.err")
        drops[$name]="ring full $rf, copy failed $cf, output $od"
      fi
      sidetap_summary+=$'\n'"[$name]"$'\n'$(grep -v '^sidetap: stats\|^sidetap: capturing' "$tmp/sidetap.err") ;;
  esac
  printf '%-8s %10s q/s  sent %s completed %s lost %s  log %s  drops %s  (load %s)\n' "$name" \
    "${qps[$name]}" "${sent[$name]}" "${done_[$name]}" "${lost[$name]}" "${log[$name]}" \
    "${drops[$name]}" "${load[$name]}" >&2
}

sidetap_summary=""
for c in $configs; do run_config "$c"; done

pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f%%", (a - b) / b * 100 }'; }
table() {
  echo "| configuration | queries/s | vs base | sent / completed / lost | messages in the log (of 2 x completed) | drops | load avg before |"
  echo "|---|---|---|---|---|---|---|"
  local c label
  for c in $configs; do
    case $c in
      base) label="no capture" ;;
      knot) label="Knot mod-dnstap → file" ;;
      tcpdump) label="tcpdump -w pcap" ;;
      sidetap) label="sidetap capture (libpcap) → dnstap file" ;;
      ebpf-socket) label="sidetap --ebpf socket → dnstap file" ;;
      ebpf-tc) label="sidetap --ebpf tc → dnstap file" ;;
      ebpf-cgroup) label="sidetap --ebpf cgroup → dnstap file" ;;
      base2) label="no capture (again, at the end)" ;;
    esac
    echo "| $label | ${qps[$c]} | $( [[ -n ${qps[base]:-} ]] && pct "${qps[$c]}" "${qps[base]}" || echo -) | ${sent[$c]} / ${done_[$c]} / ${lost[$c]} | ${log[$c]} | ${drops[$c]} | ${load[$c]} |"
  done
}
table
echo
echo "sidetap's exit summary:"
echo "$sidetap_summary" | sed 's/^/    /'

if ((append)); then
  {
    echo
    echo "## Live capture overhead (\`bench/live_bench.sh\`, $(date +%Y-%m-%d))"
    echo
    echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) vCPUs;"
    echo "kernel $(uname -r); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Command: \`sudo bench/live_bench.sh -s $sidetap -l $secs -c $clients -q $outstanding -B $bufmib${rate:+ -Q $rate} -o $offl -m ${configs// /,}\`"
    echo "(dnsperf ${rate:+-Q $rate, }offloads $offl on the veth pair)"
    echo
    table
  } >> bench/RESULTS.md
fi
