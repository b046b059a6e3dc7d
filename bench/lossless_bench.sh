#!/usr/bin/env bash
# The highest packet rate a capture takes without losing anything: a capture is replayed onto a
# veth pair at increasing rates (tcpreplay), for tcpdump and for sidetap with 1 and 2 threads
# (libpcap, and eBPF), in one run.
#
#   sudo bench/lossless_bench.sh [-s SIDETAP] [-p PCAP] [-n PAIRS] [-r START_PPS] [-l SECONDS]
#                                [-b STEPS] [-m CONFIGS] [-k]
#     -s SIDETAP  the binary (default build/sidetap)
#     -p PCAP     the capture to replay (default: bench/gen_udp_pcap.py -n PAIRS: UDP queries and
#                 responses of 6000 clients, 1 server); replayed in a loop as long as needed
#     -n PAIRS    pairs in the generated capture (default 200000)
#     -r PPS      first rate tried (default 50000 packets/s); doubled until something is lost,
#                 then bisected
#     -l SECONDS  length of each trial (default 3)
#     -b STEPS    bisection steps between the last lossless and the first lossy rate (default 3)
#     -m CONFIGS  comma-separated from tcpdump, pcap1, pcap2, ebpf1, ebpf2 (--ebpf tc); default
#                 all (the ebpf ones only when the binary has eBPF)
#     -w DEST     sidetap's output: file (default: a dnstap file in the temporary directory) or
#                 null (-w /dev/null: the capture alone, as tcpdump's -w /dev/null)
#     -k          keep the temporary directory
# Setup: namespaces snd and cap joined by a veth pair (MTU 1500, offloads off); the capture runs
# on the cap side (frames addressed elsewhere are still seen by packet sockets and tc), tcpreplay
# -K (preloaded) --pps R --loop 0 --limit R x SECONDS on the snd side. Captures:
#   tcpdump  tcpdump -i IF -B 65536 -w /dev/null -n
#   pcap1/2  sidetap capture -i IF --threads 1/2 -B 64 -w FILE
#   ebpf1/2  sidetap capture --ebpf tc -i IF --threads 1/2 -B 64 -w FILE
# A trial is lossless when the capture saw every packet tcpreplay sent (tcpdump: packets
# captured and "dropped by kernel" 0; sidetap: packets processed, no drop counter moved, the
# output dropped nothing). Packets the veth itself dropped (rx_dropped: the receive backlog)
# mark the trial "veth limit" instead: no capture can see them. The rate reported is the one
# tcpreplay measured; a trial where tcpreplay reached less than 90% of the asked rate ends the
# doubling ("sender limit").
# Prints a markdown table (machine, date) for bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/netns_env.sh

sidetap=build/sidetap pcap="" pairs=200000 start=50000 secs=3 steps=3 configs="" dest=file NE_KEEP=0
while getopts "s:p:n:r:l:b:m:w:kh" opt; do
  case $opt in
    s) sidetap=$OPTARG ;;
    p) pcap=$(realpath "$OPTARG") ;;
    n) pairs=$OPTARG ;;
    r) start=$OPTARG ;;
    l) secs=$OPTARG ;;
    b) steps=$OPTARG ;;
    m) configs=${OPTARG//,/ } ;;
    w) dest=$OPTARG ;;
    k) NE_KEEP=1 ;;
    *) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 2 ;;
  esac
done
[[ -x $sidetap ]] || { echo "lossless_bench: no sidetap binary at $sidetap" >&2; exit 1; }
for t in ip tcpreplay tcpdump ethtool python3; do
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
ne_ns snd
ne_ns cap
ne_veth snd llb-snd cap llb-cap
ne_in cap sysctl -q -w net.ipv6.conf.llb-cap.disable_ipv6=1 || true
ne_in snd sysctl -q -w net.ipv6.conf.llb-snd.disable_ipv6=1 || true

rx_dropped() { ne_in cap cat /sys/class/net/llb-cap/statistics/rx_dropped; }

# trial CONFIG PPS -> sets t_ok (lossless|lossy|veth|sender), t_pps (measured), t_note
trial() {
  local c=$1 pps=$2 pid log=$NE_TMP/cap.err front=()
  case $c in
    tcpdump)
      ne_bg pid "$log" cap tcpdump -i llb-cap -B 65536 -w /dev/null -n
      ne_wait "$log" "listening on" "$pid" 10 ;;
    pcap*|ebpf*)
      front=(-i llb-cap)
      [[ $c == ebpf* ]] && front=(--ebpf tc -i llb-cap)
      ne_bg pid "$log" cap "$sidetap" capture "${front[@]}" --threads "${c: -1}" -B 64 -w "$out" \
        --identity bench --version bench
      ne_wait "$log" "capturing on" "$pid" 10 ;;
  esac
  sleep 0.3
  local drop0; drop0=$(rx_dropped)
  ne_in snd tcpreplay -i llb-snd -K --pps="$pps" --loop=0 --limit=$((pps * secs)) "$pcap" > "$NE_TMP/tr.txt" 2>&1 || true
  local sent actual
  sent=$(sed -n 's/^[[:space:]]*Successful packets:[[:space:]]*\([0-9]*\).*/\1/p' "$NE_TMP/tr.txt")
  actual=$(sed -n 's/.*Rated: .*, \([0-9.]*\) pps.*/\1/p' "$NE_TMP/tr.txt" | head -1)
  sleep 1.5   # let the capture catch up (its rings hold what it did not read yet)
  ne_stop "$pid"
  local vdrop=$(( $(rx_dropped) - drop0 ))
  local seen lost=""
  if [[ $c == tcpdump ]]; then
    seen=$(awk '/packets captured/ { print $1 }' "$log")
    local kd; kd=$(awk '/dropped by kernel/ { print $1 }' "$log")
    [[ ${kd:-1} == 0 ]] || lost="dropped by kernel $kd"
  else
    seen=$(grep -E '^sidetap: (interface|ebpf) ' "$log" | sed -n 's/.* packets=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
    lost=$(grep -E '^sidetap: (interface|ebpf) ' "$log" | grep -oE '(kernel_dropped|interface_dropped|ring_full_dropped|copy_failed)=[1-9][0-9]*' | tr '\n' ' ' || true)
    local od; od=$(sed -n 's/^sidetap: output .* dropped=\([0-9]*\).*/\1/p' "$log")
    [[ ${od:-0} == 0 ]] || lost+=" output dropped $od"
  fi
  t_pps=${actual%.*}
  t_note="sent ${sent:-?}, seen ${seen:-?}${lost:+, $lost}${vdrop:+, veth rx_dropped $vdrop}"
  if ((vdrop > 0)); then t_ok=veth
  elif [[ -n $lost || ${seen:-0} -lt ${sent:-1} ]]; then t_ok=lossy
  elif awk -v a="${actual:-0}" -v b="$pps" 'BEGIN { exit !(a < 0.9 * b) }'; then t_ok=sender
  else t_ok=lossless
  fi
  echo "  $c at $pps pps (measured ${actual:-?}): $t_ok ($t_note)" >&2
}

declare -A best first why
for c in $configs; do
  good=0 good_pps=0 bad=0 bad_pps=0 rate=$start
  while :; do
    trial "$c" "$rate"
    if [[ $t_ok == lossless ]]; then good=$rate good_pps=$t_pps; rate=$((rate * 2))
    else bad=$rate bad_pps=$t_pps why[$c]=$t_ok; break
    fi
    ((rate <= 10000000)) || { why[$c]="not reached"; break; }
  done
  if ((bad > 0 && good > 0)) && [[ ${why[$c]} != sender ]]; then
    for ((s = 0; s < steps; s++)); do
      rate=$(((good + bad) / 2))
      trial "$c" "$rate"
      if [[ $t_ok == lossless ]]; then good=$rate good_pps=$t_pps
      else bad=$rate bad_pps=$t_pps why[$c]=$t_ok
      fi
    done
  fi
  best[$c]=$good_pps first[$c]=$bad_pps
done

echo
ne_machine
echo "\`sudo bench/lossless_bench.sh -r $start -l $secs -b $steps -w $dest -m ${configs// /,}\`; capture: $(basename "$pcap"); sidetap writes to $([[ $dest == null ]] && echo /dev/null || echo a dnstap file)."
echo
echo "| capture | highest lossless rate (pps, measured) | first lossy rate tried (pps) | what ended it |"
echo "|---|---|---|---|"
for c in $configs; do
  case $c in
    tcpdump) label="tcpdump -w /dev/null" ;;
    pcap1) label="sidetap libpcap, 1 thread" ;;
    pcap2) label="sidetap libpcap, 2 threads" ;;
    ebpf1) label="sidetap --ebpf tc, 1 thread" ;;
    ebpf2) label="sidetap --ebpf tc, 2 threads" ;;
    *) label=$c ;;
  esac
  echo "| $label | ${best[$c]} | ${first[$c]:-} | ${why[$c]:-} |"
done
