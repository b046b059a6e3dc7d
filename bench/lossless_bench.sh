#!/usr/bin/env bash
# Two measurements of how fast a live capture takes packets, for tcpdump and for sidetap with 1
# and 2 threads (libpcap, and eBPF), in one run, on a veth pair between two namespaces:
#  - lossless rate: a capture is replayed onto the veth at increasing rates; the highest rate
#    at which the capture lost nothing;
#  - drain capacity (independent of the sender): the capture is stopped (SIGSTOP, every
#    thread), a fixed number of packets is sent into its kernel buffer, then it is continued
#    (SIGCONT) and timed until it has processed the backlog.
#
#   sudo bench/lossless_bench.sh [-s SIDETAP] [-p PCAP] [-n PAIRS] [-r START_PPS] [-l SECONDS]
#                                [-b STEPS] [-m CONFIGS] [-w DEST] [-S SENDER] [-t TABLES]
#                                [-d PACKETS] [-B MIB] [-R RUNS] [-k]
#     -s SIDETAP  the binary (default build/sidetap)
#     -p PCAP     the capture to replay (default: bench/gen_udp_pcap.py -n PAIRS: UDP queries and
#                 responses of 6000 clients, 1 server); replayed in a loop as long as needed
#     -n PAIRS    pairs in the generated capture (default 200000)
#     -r PPS      first rate tried (default 100000 packets/s); doubled until something is lost,
#                 then bisected
#     -l SECONDS  length of each trial (default 3)
#     -b STEPS    bisection steps between the last lossless and the first lossy rate (default 3)
#     -m CONFIGS  comma-separated from tcpdump, pcap1, pcap2, ebpf1, ebpf2 (--ebpf tc); default
#                 all (the ebpf ones only when the binary has eBPF)
#     -w DEST     sidetap's output: file (default: a dnstap file in the temporary directory) or
#                 null (-w /dev/null: the capture alone, as tcpdump's -w /dev/null)
#     -S SENDER   blaster (default: bench/pcap_blaster.c, compiled here with cc -O2; sendmmsg on
#                 an AF_PACKET socket that bypasses the qdisc, paced by sleeping between
#                 batches) or tcpreplay (tcpreplay -K --pps; on 2 cores it tops out at ~300 kpps)
#     -t TABLES   comma-separated from sender, lossless, drain (default all three)
#     -d PACKETS  packets sent into the stopped capture for the drain table (default 2000000)
#     -B MIB      kernel buffer of the captures in the drain table, MiB (default 1024; must hold
#                 PACKETS: ~210 bytes a packet of the default capture for libpcap, ~180 in an
#                 eBPF ring; sidetap -B per thread, for eBPF per ring and CPU)
#     -R RUNS     drain runs per capture, the shortest reported (default 3)
#     -k          keep the temporary directory
# Examples: sudo bench/lossless_bench.sh                    (everything, ~3-4 minutes)
#           sudo bench/lossless_bench.sh -t drain -m pcap1,pcap2
#           sudo bench/lossless_bench.sh -n 20000 -r 200000 -l 1 -b 1 -d 200000 -B 128 -R 1  (smoke)
# Setup: namespaces snd and cap joined by a veth pair (MTU 1500, offloads off, IPv6 off). The
# capture runs on the cap side, which has no address: the frames (addressed to other MACs) are
# seen by packet sockets and tc, then dropped by IP as not for this host, so nothing is sent
# back (the cap side's tx_packets is checked). Captures:
#   tcpdump  tcpdump -i IF -B 65536 -w /dev/null -n        (drain: -B MIB x 1024)
#   pcap1/2  sidetap capture -i IF --threads 1/2 -B 64 -w FILE
#   ebpf1/2  sidetap capture --ebpf tc -i IF --threads 1/2 -B 64 -w FILE
#            (drain: -B MIB, and the output's on-full=block: the time includes the writing)
# Sender (always the blaster): unpaced (2M packets) and paced (300 kpps, 3 s) with no capture, then
# unpaced (1M packets) beside each capture (-B 64): the kernel side of a capture (packet socket
# delivery, the tc program) runs in the sender's system calls, so its CPU per packet shows it.
# Lossless rate: the sender sends R x SECONDS packets at R packets/s (blaster: -r R -c R x
# SECONDS; tcpreplay: -K --pps R --loop 0 --limit), the capture is given 1.5 s to catch up,
# then stopped. A trial is lossless when the capture saw every packet the sender sent (tcpdump:
# packets captured and "dropped by kernel" 0; sidetap: packets processed, no drop counter moved,
# the output dropped nothing). Packets the veth itself dropped (rx_dropped: the receive backlog)
# mark the trial "veth limit" instead: no capture can see them. The rate reported is the one the
# sender measured; a trial where it reached less than 90% of the asked rate ends the doubling
# ("sender limit"). The sender's CPU (user+sys, including the veth's receive path and the
# capture's kernel side, which run in its system calls) is in each trial's line on stderr, with
# the CPU other processes took meanwhile (/proc/stat busy time - sender - capture; blaster only).
# Drain: the capture starts with the drain buffer, gets SIGSTOP; the blaster (pinned to CPU 0)
# sends PACKETS as fast as it can; SIGCONT; a poller (python3, every 10 ms) reads the
# capture's threads' run time (/proc/PID/task/*/schedstat) and ends when it has been idle
# (< 20% of a CPU) for 0.5 s. Drain time: from SIGCONT to the end of the last busy 10 ms window;
# rate = PACKETS / drain time; CPU = run time of all its threads meanwhile; other processes' CPU =
# the machine's busy time (/proc/stat, 10 ms ticks) minus the capture's over the same span (the
# poller's own share included; CPUs x drain time - that is what the capture could have had).
# Then the capture is stopped and its counts checked: every packet processed (and written),
# nothing dropped by the kernel, the ring, the veth or the output; otherwise the row says what
# was lost. Each capture is drained RUNS times; the shortest drain is reported.
# Prints markdown tables (machine, date) for bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/netns_env.sh

sidetap=build/sidetap pcap="" pairs=200000 start=100000 secs=3 steps=3 configs="" dest=file NE_KEEP=0
sender=blaster tables="sender lossless drain" drain_n=2000000 drain_mib=1024 drain_runs=3
while getopts "s:p:n:r:l:b:m:w:S:t:d:B:R:kh" opt; do
  case $opt in
    s) sidetap=$OPTARG ;;
    p) pcap=$(realpath "$OPTARG") ;;
    n) pairs=$OPTARG ;;
    r) start=$OPTARG ;;
    l) secs=$OPTARG ;;
    b) steps=$OPTARG ;;
    m) configs=${OPTARG//,/ } ;;
    w) dest=$OPTARG ;;
    S) sender=$OPTARG ;;
    t) tables=${OPTARG//,/ } ;;
    d) drain_n=$OPTARG ;;
    B) drain_mib=$OPTARG ;;
    R) drain_runs=$OPTARG ;;
    k) NE_KEEP=1 ;;
    *) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 2 ;;
  esac
done
[[ $sender == blaster || $sender == tcpreplay ]] || { echo "lossless_bench: -S blaster or tcpreplay" >&2; exit 2; }
[[ -x $sidetap ]] || { echo "lossless_bench: no sidetap binary at $sidetap" >&2; exit 1; }
needs="ip tcpdump ethtool python3 taskset"
[[ $sender == tcpreplay ]] && needs+=" tcpreplay"
[[ $sender == blaster || $tables == *drain* || $tables == *sender* ]] && needs+=" cc"
for t in $needs; do
  command -v $t >/dev/null || { echo "lossless_bench: missing $t (scripts/install-deps.sh)" >&2; exit 1; }
done
sidetap=$(realpath "$sidetap")
if [[ -z $configs ]]; then
  configs="tcpdump pcap1 pcap2"
  if "$sidetap" --version | grep -q eBPF; then configs+=" ebpf1 ebpf2"; fi
fi

ne_init llb
out=$NE_TMP/out.dnstap
[[ $dest == null ]] && out=/dev/null
if [[ -z $pcap ]]; then
  pcap=$NE_TMP/replay.pcap
  python3 bench/gen_udp_pcap.py -n "$pairs" -o "$pcap" 2>/dev/null
fi
blaster=$NE_TMP/pcap_blaster
if [[ $sender == blaster || $tables == *drain* || $tables == *sender* ]]; then
  cc -O2 -std=c17 -Wall -Wextra -o "$blaster" bench/pcap_blaster.c -lpcap
fi
ne_ns snd
ne_ns cap
ne_veth snd llb-snd cap llb-cap
ne_in cap sysctl -q -w net.ipv6.conf.llb-cap.disable_ipv6=1 || true
ne_in snd sysctl -q -w net.ipv6.conf.llb-snd.disable_ipv6=1 || true

busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

cap_stat() { ne_in cap cat "/sys/class/net/llb-cap/statistics/$1"; }

# start_capture CONFIG BUFFER_MIB OUT -> cap_pid; stderr in $NE_TMP/cap.err
start_capture() {
  local c=$1 mib=$2 dst=$3 log=$NE_TMP/cap.err front=()
  case $c in
    tcpdump)
      ne_bg cap_pid "$log" cap tcpdump -i llb-cap -B $((mib * 1024)) -w /dev/null -n
      ne_wait "$log" "listening on" "$cap_pid" 10 ;;
    pcap*|ebpf*)
      front=(-i llb-cap)
      [[ $c == ebpf* ]] && front=(--ebpf tc -i llb-cap)
      ne_bg cap_pid "$log" cap "$sidetap" capture "${front[@]}" --threads "${c: -1}" -B "$mib" -w "$dst" \
        --identity bench --version bench
      ne_wait "$log" "capturing on" "$cap_pid" 10 ;;
    *) echo "lossless_bench: unknown configuration $c" >&2; exit 2 ;;
  esac
}

# capture_counts CONFIG -> seen (packets the capture processed), lost (what it dropped, or "")
capture_counts() {
  local log=$NE_TMP/cap.err
  lost=""
  if [[ $1 == tcpdump ]]; then
    seen=$(awk '/packets captured/ { print $1 }' "$log")
    local kd; kd=$(awk '/dropped by kernel/ { print $1 }' "$log")
    [[ ${kd:-1} == 0 ]] || lost="dropped by kernel ${kd:-?}"
  else
    seen=$(grep -E '^sidetap: (interface|ebpf) ' "$log" | sed -n 's/.* packets=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
    lost=$(grep -E '^sidetap: (interface|ebpf) ' "$log" | grep -oE '(kernel_dropped|interface_dropped|ring_full_dropped|copy_failed)=[1-9][0-9]*' | tr '\n' ' ' || true)
    local od; od=$(sed -n 's/^sidetap: output .* dropped=\([0-9]*\).*/\1/p' "$log")
    [[ ${od:-0} == 0 ]] || lost+=" output dropped $od"
  fi
}

# send PPS COUNT [CPU] -> sent, actual (pps measured), s_cpu (sender CPU s, blaster only), s_failed
send() {
  local pps=$1 count=$2 pin=() f=$NE_TMP/sender.txt
  [[ -n ${3:-} ]] && pin=(taskset -c "$3")
  s_cpu="" s_failed=0
  if [[ $sender == blaster || $pps == 0 ]]; then
    ne_in snd "${pin[@]}" "$blaster" -i llb-snd -f "$pcap" -r "$pps" -c "$count" > "$f" 2>&1 || true
    sent=$(sed -n 's/.* sent=\([0-9]*\).*/\1/p' "$f")
    actual=$(sed -n 's/.* pps=\([0-9]*\).*/\1/p' "$f")
    s_failed=$(sed -n 's/.* failed=\([0-9]*\).*/\1/p' "$f")
    s_cpu=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^(user|sys)_s=/) { split($i, a, "="); s += a[2] } } END { printf "%.2f", s }' "$f")
  else
    ne_in snd tcpreplay -i llb-snd -K --pps="$pps" --loop=0 --limit="$count" "$pcap" > "$f" 2>&1 || true
    sent=$(sed -n 's/^[[:space:]]*Successful packets:[[:space:]]*\([0-9]*\).*/\1/p' "$f")
    actual=$(sed -n 's/.*Rated: .*, \([0-9.]*\) pps.*/\1/p' "$f" | head -1)
    actual=${actual%.*}
  fi
  [[ -n $sent ]] || { echo "lossless_bench: the sender failed:" >&2; cat "$f" >&2; exit 1; }
}

# trial CONFIG PPS -> sets t_ok (lossless|lossy|veth), t_short (1: the sender reached less than
# 90% of PPS), t_pps (measured), t_note
trial() {
  local c=$1 pps=$2
  start_capture "$c" 64 "$out"
  sleep 0.3
  local drop0 tx0; drop0=$(cap_stat rx_dropped); tx0=$(cap_stat tx_packets)
  local b0 c0 others=""; b0=$(busy_ticks); c0=$(ne_cpu_ticks "$cap_pid")
  send "$pps" $((pps * secs))
  [[ -n $s_cpu ]] && others=$(awk -v b="$(( $(busy_ticks) - b0 - $(ne_cpu_ticks "$cap_pid") + c0 ))" -v s="$s_cpu" \
    -v hz="$(getconf CLK_TCK)" 'BEGIN { o = b / hz - s; printf "%.1f", o < 0 ? 0 : o }')
  sleep 1.5   # let the capture catch up (its rings hold what it did not read yet)
  ne_stop "$cap_pid"
  local vdrop=$(( $(cap_stat rx_dropped) - drop0 )) back=$(( $(cap_stat tx_packets) - tx0 ))
  capture_counts "$c"
  t_pps=$actual
  t_note="sent ${sent:-?}, seen ${seen:-?}${lost:+, $lost}, veth rx_dropped $vdrop${s_cpu:+, sender CPU ${s_cpu} s}${others:+, other processes $others s CPU meanwhile}"
  ((s_failed == 0)) || t_note+=", sender refused $s_failed"
  ((back == 0)) || t_note+=", $back packets sent back by the cap side"
  if ((vdrop > 0)); then t_ok=veth
  elif [[ -n $lost || ${seen:-0} -lt ${sent:-1} ]]; then t_ok=lossy
  else t_ok=lossless
  fi
  t_short=0
  awk -v a="${actual:-0}" -v b="$pps" 'BEGIN { exit !(a < 0.9 * b) }' && t_short=1
  echo "  $c at $pps pps (measured ${actual:-?}): $t_ok$( ((t_short)) && echo ", sender short") ($t_note)" >&2
}

# Continues PID and times it until it is idle: prints "drain_s=S cpu_s=C" (see the header).
drain_poller() {
  python3 - "$1" <<'EOF'
import os, signal, sys, time
pid = int(sys.argv[1])
def runtimes():
    out = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                out[task] = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return out
def busy_cpu():   # seconds of CPU time, all CPUs, spent on anything but idle and iowait
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
period, idle_after, timeout = 0.01, 0.5, 60.0
first = runtimes()
s0 = busy_cpu()
r0 = sum(first.values())
t0 = time.monotonic()
os.kill(pid, signal.SIGCONT)
prev_t, prev_r, busy_t, busy_r, busy, busy_s = t0, r0, t0, r0, first, s0
while True:
    time.sleep(period)
    t, now, sys_now = time.monotonic(), runtimes(), busy_cpu()
    r = sum(now.values())
    if r - prev_r > 0.2 * (t - prev_t) * 1e9:
        busy_t, busy_r, busy, busy_s = t, r, now, sys_now
    prev_t, prev_r = t, r
    if t - busy_t >= idle_after or t - t0 > timeout:
        break
threads = sorted(((busy.get(k, v) - v) / 1e6 for k, v in first.items()), reverse=True)
print(f"drain_s={busy_t - t0:.3f} cpu_s={(busy_r - r0) / 1e9:.3f}"
      f" others_s={max(0.0, busy_s - s0 - (busy_r - r0) / 1e9):.2f}"
      f" threads_ms={'/'.join(f'{x:.0f}' for x in threads if x >= 1)}{' timeout' if t - t0 > timeout else ''}")
EOF
}

# drain CONFIG -> d_s (drain time), d_cpu, d_others, d_ok (ok or what was lost), d_note
drain() {
  local c=$1 dst=$out
  [[ $c != tcpdump ]] && dst="$out?on-full=block"
  start_capture "$c" "$drain_mib" "$dst"
  sleep 0.3
  local drop0 tx0; drop0=$(cap_stat rx_dropped); tx0=$(cap_stat tx_packets)
  kill -STOP "$cap_pid"
  send 0 "$drain_n" 0
  local p; p=$(drain_poller "$cap_pid")
  d_s=$(sed -n 's/.*drain_s=\([0-9.]*\).*/\1/p' <<< "$p")
  d_cpu=$(sed -n 's/.* cpu_s=\([0-9.]*\).*/\1/p' <<< "$p")
  d_others=$(sed -n 's/.*others_s=\([0-9.]*\).*/\1/p' <<< "$p")
  kill -CONT "$cap_pid" 2>/dev/null || true   # (the poller did; again in case it failed)
  ne_stop "$cap_pid"
  local vdrop=$(( $(cap_stat rx_dropped) - drop0 )) back=$(( $(cap_stat tx_packets) - tx0 ))
  capture_counts "$c"
  local written=""
  [[ $c != tcpdump && $dest != null ]] && written=$(sed -n 's/^sidetap: output .* frames_written=\([0-9]*\).*/\1/p' "$NE_TMP/cap.err")
  d_ok=""
  ((sent == drain_n && s_failed == 0)) || d_ok+="sender sent $sent of $drain_n; "
  ((vdrop == 0)) || d_ok+="veth rx_dropped $vdrop; "
  ((back == 0)) || d_ok+="$back packets sent back; "
  [[ -z $lost ]] || d_ok+="$lost; "
  ((${seen:-0} == sent)) || d_ok+="processed ${seen:-?} of $sent; "
  [[ -z $written || $written == "$sent" ]] || d_ok+="written $written of $sent; "
  [[ $p != *timeout* ]] || d_ok+="still busy after 60 s; "
  d_ok=${d_ok:-"all $sent processed${written:+ and written}, none dropped"}
  echo "  drain $c: $p, sender $actual pps; $d_ok" >&2
}

# The sender alone (no capture): its highest rate, and its CPU at a paced 300 kpps; then its
# highest rate with each capture running (-B 64), whose kernel side runs in its system calls.
declare -A smax scpu
if [[ $tables == *sender* ]]; then
  chosen=$sender sender=blaster
  send 0 2000000
  smax[none]=$actual scpu[none]=$(awk -v c="$s_cpu" -v n="$sent" 'BEGIN { printf "%.0f", c * 1e9 / n }')
  send 300000 900000
  s300=$(awk -v c="$s_cpu" 'BEGIN { printf "%.0f", c / 3 * 100 }') s300_pps=$actual
  echo "  sender alone: ${smax[none]} pps at most, ${scpu[none]} ns CPU a packet; at 300 kpps (measured $s300_pps) ${s300}% of a CPU" >&2
  for c in $configs; do
    start_capture "$c" 64 "$out"
    sleep 0.3
    send 0 1000000
    sleep 1
    ne_stop "$cap_pid"
    smax[$c]=$actual scpu[$c]=$(awk -v c="$s_cpu" -v n="$sent" 'BEGIN { printf "%.0f", c * 1e9 / n }')
    echo "  sender beside $c: ${smax[$c]} pps at most, ${scpu[$c]} ns CPU a packet" >&2
  done
  sender=$chosen
fi

# Doubling from -r until a trial loses something or the sender falls short, then -b bisection
# steps between the highest lossless and the lowest lossy rate. A lossless trial where the
# sender fell short counts at the rate it reached, and ends the search (nothing faster can be
# tried); a lossy one where it fell short counts as lossy at the rate it reached.
declare -A best first why
if [[ $tables == *lossless* ]]; then
  for c in $configs; do
    good=0 good_pps=0 bad=0 bad_pps=0 rate=$start why[$c]=""
    # record: after a trial at $rate; fails when the search cannot go higher
    record() {
      if [[ $t_ok == lossless ]]; then
        good=$rate
        if ((t_pps > good_pps)); then good_pps=$t_pps; fi
        if ((t_short)); then
          [[ -n ${why[$c]} ]] || why[$c]="sender (lossless at the highest rate it reached)"
          return 1
        fi
        return 0
      fi
      bad=$rate bad_pps=$t_pps why[$c]=$t_ok
      if ((t_short)); then bad=$t_pps; why[$c]+=" (sender short)"; fi
      if ((bad <= good)); then bad=0; fi
      return 1
    }
    while :; do
      trial "$c" "$rate"
      record || break
      rate=$((rate * 2))
      ((rate <= 10000000)) || { why[$c]="not reached"; break; }
    done
    for ((s = 0; s < steps && bad > 0 && good > 0 && bad - good > good / 50; s++)); do
      rate=$(((good + bad) / 2))
      trial "$c" "$rate"
      if ! record && [[ $t_ok == lossless ]]; then break; fi
    done
    best[$c]=$good_pps first[$c]=""
    if ((bad_pps > 0)); then first[$c]=$bad_pps; fi
  done
fi

declare -A dtime dcpu dok dall dothers
if [[ $tables == *drain* ]]; then
  for c in $configs; do
    dtime[$c]="" dall[$c]="" dok[$c]=""
    for ((r = 0; r < drain_runs; r++)); do
      drain "$c"
      dall[$c]+="${dall[$c]:+, }$d_s"
      if [[ $d_ok != all* ]]; then dok[$c]+="run $((r + 1)): $d_ok "
      elif [[ -z ${dtime[$c]} ]] || awk -v a="$d_s" -v b="${dtime[$c]}" 'BEGIN { exit !(a < b) }'; then
        dtime[$c]=$d_s dcpu[$c]=$d_cpu dothers[$c]=$d_others
      fi
    done
    w=""; [[ $c != tcpdump && $dest != null ]] && w=" and written"
    dok[$c]=${dok[$c]:-"every run: all $drain_n processed$w, none dropped"}
  done
fi

label() {
  case $1 in
    tcpdump) echo "tcpdump -w /dev/null" ;;
    pcap1) echo "sidetap libpcap, 1 thread" ;;
    pcap2) echo "sidetap libpcap, 2 threads" ;;
    ebpf1) echo "sidetap --ebpf tc, 1 thread" ;;
    ebpf2) echo "sidetap --ebpf tc, 2 threads" ;;
    *) echo "$1" ;;
  esac
}

echo
ne_machine
echo "\`sudo bench/lossless_bench.sh -r $start -l $secs -b $steps -w $dest -S $sender -t ${tables// /,} -d $drain_n -B $drain_mib -R $drain_runs -m ${configs// /,}\`; capture: $(basename "$pcap"); sidetap writes to $([[ $dest == null ]] && echo /dev/null || echo a dnstap file)."
if [[ $tables == *sender* ]]; then
  echo
  echo "Sender (pcap_blaster, whatever -S): alone, paced at 300 kpps (measured $s300_pps): ${s300}% of a CPU."
  echo
  echo "| beside | highest rate (pps, unpaced) | sender CPU a packet (ns, user+sys) |"
  echo "|---|---|---|"
  echo "| nothing | ${smax[none]} | ${scpu[none]} |"
  for c in $configs; do echo "| $(label "$c") | ${smax[$c]} | ${scpu[$c]} |"; done
fi
if [[ $tables == *lossless* ]]; then
  echo
  echo "| capture | highest lossless rate (pps, measured) | lowest lossy rate (pps, measured) | what ended it |"
  echo "|---|---|---|---|"
  for c in $configs; do
    echo "| $(label "$c") | ${best[$c]} | ${first[$c]:-} | ${why[$c]:-} |"
  done
fi
if [[ $tables == *drain* ]]; then
  echo
  echo "Drain: $drain_n packets into the stopped capture (kernel buffer $drain_mib MiB), then timed until idle; best of $drain_runs runs (shortest drain time; its CPU)."
  echo
  echo "| capture | drain time (s) | rate (pps) | CPU (s) | CPU per packet (ns) | other processes' CPU meanwhile (s) | the runs' drain times (s) | check |"
  echo "|---|---|---|---|---|---|---|---|"
  for c in $configs; do
    awk -v l="$(label "$c")" -v t="${dtime[$c]:-0}" -v cpu="${dcpu[$c]:-0}" -v n="$drain_n" -v all="${dall[$c]}" -v ok="${dok[$c]}" \
      -v o="${dothers[$c]:-}" 'BEGIN { printf "| %s | %.3f | %.0f | %.3f | %.0f | %s | %s | %s |\n", l, t, (t > 0 ? n / t : 0), cpu, cpu * 1e9 / n, o, all, ok }'
  done
fi
