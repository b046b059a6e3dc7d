#!/usr/bin/env bash
# Output-stack throughput: how fast `sidetap replay` turns a large generated
# pcap into dnstap when writing
#   - to /dev/null (file output, no disk),
#   - to a regular file,
#   - to a Frame Streams collector on a Unix socket (fstrm_capture -w FILE),
# next to `tcpdump -r FILE -w /dev/null` on the same pcap (the baseline).
# Reports best-of-PASSES wall time, messages/s and CPU time (user+sys) of
# sidetap (and, for the socket run, of fstrm_capture separately).
#
#   bench/output_bench.sh                     # 500000 pairs (1M messages), 3 passes
#   PAIRS=200000 PASSES=5 bench/output_bench.sh
#   bench/output_bench.sh --append            # also append a section to bench/RESULTS.md
#
# SIDETAP=path/to/sidetap (default: build-bench/sidetap, a Release build:
#   cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench --target sidetap)
# Needs: python3, /usr/bin/time, tcpdump, fstrm_capture (fstrm-bin).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SIDETAP=${SIDETAP:-$ROOT/build-bench/sidetap}
PAIRS=${PAIRS:-500000}
PASSES=${PASSES:-3}
APPEND=0
[[ "${1:-}" == "--append" ]] && APPEND=1

for tool in python3 /usr/bin/time tcpdump fstrm_capture; do
  command -v "$tool" >/dev/null || { echo "output_bench: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
[[ -x "$SIDETAP" ]] || { echo "output_bench: no sidetap binary at $SIDETAP (set SIDETAP=)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/output-bench.XXXXXX)
CAP_PID=""
cleanup() {
  if [[ -n "$CAP_PID" ]] && kill -0 "$CAP_PID" 2>/dev/null; then kill -TERM "$CAP_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PCAP=$WORK/bench.pcap
python3 "$HERE/gen_udp_pcap.py" -n "$PAIRS" -o "$PCAP" >&2
MESSAGES=$((PAIRS * 2))
PCAP_MB=$(awk -v b="$(stat -c %s "$PCAP")" 'BEGIN{printf "%.0f", b/1e6}')

# time_cmd OUTFILE CMD... : /usr/bin/time "wall user sys" into OUTFILE
time_cmd() { local o=$1; shift; /usr/bin/time -f '%e %U %S' -o "$o" "$@"; }

# best[name]="wall cpu" (lowest wall over the passes), cpu = user+sys of that pass
declare -A BEST_WALL BEST_CPU MIN_CPU EXTRA
record() {  # name timefile [extra]
  local name=$1 wall user sys cpu
  read -r wall user sys < <(tail -1 "$2")
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.2f", u+s}')
  if [[ -z "${BEST_WALL[$name]:-}" ]] || awk -v a="$wall" -v b="${BEST_WALL[$name]}" 'BEGIN{exit !(a<b)}'; then
    BEST_WALL[$name]=$wall; BEST_CPU[$name]=$cpu; EXTRA[$name]=${3:-}
  fi
  if [[ -z "${MIN_CPU[$name]:-}" ]] || awk -v a="$cpu" -v b="${MIN_CPU[$name]}" 'BEGIN{exit !(a<b)}'; then
    MIN_CPU[$name]=$cpu
  fi
}

check_summary() {  # stderr-file dest
  local line
  line=$(grep "^sidetap: output $2 " "$1" || true)
  if ! grep -q "frames_written=$MESSAGES .*dropped=0 " <<<"$line"; then
    echo "output_bench: unexpected summary for $2: ${line:-none}" >&2; cat "$1" >&2; exit 1
  fi
}

for pass in $(seq 1 "$PASSES"); do
  echo "output_bench: pass $pass/$PASSES" >&2
  time_cmd "$WORK/t" tcpdump -r "$PCAP" -w /dev/null 2>/dev/null
  record tcpdump "$WORK/t"

  time_cmd "$WORK/t" "$SIDETAP" replay -w /dev/null "$PCAP" 2>"$WORK/err"
  check_summary "$WORK/err" /dev/null
  record devnull "$WORK/t"

  rm -f "$WORK/out.fstrm"
  time_cmd "$WORK/t" "$SIDETAP" replay -w "$WORK/out.fstrm" "$PCAP" 2>"$WORK/err"
  check_summary "$WORK/err" "$WORK/out.fstrm"
  record file "$WORK/t" "$(stat -c %s "$WORK/out.fstrm")"

  rm -f "$WORK/cap.sock" "$WORK/cap.fstrm"
  # fstrm_capture runs directly (not under /usr/bin/time, which would not pass
  # SIGTERM on): its CPU time comes from /proc/PID/stat just before the stop.
  fstrm_capture -t protobuf:dnstap.Dnstap -u "$WORK/cap.sock" -w "$WORK/cap.fstrm" \
    </dev/null >/dev/null 2>"$WORK/caperr" &
  CAP_PID=$!
  for _ in $(seq 100); do [[ -S "$WORK/cap.sock" ]] && break; sleep 0.05; done
  sleep 0.1
  time_cmd "$WORK/t" "$SIDETAP" replay -w "unix://$WORK/cap.sock" "$PCAP" 2>"$WORK/err"
  check_summary "$WORK/err" "unix://$WORK/cap.sock"
  cap_cpu=$(awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz}' "/proc/$CAP_PID/stat")
  kill -TERM "$CAP_PID"; wait "$CAP_PID" || true; CAP_PID=""
  grep -q "wrote $((MESSAGES + 2)) frames" "$WORK/caperr" || { echo "output_bench: fstrm_capture:" >&2; cat "$WORK/caperr" >&2; exit 1; }
  record socket "$WORK/t" "$cap_cpu"
done

rate() { awk -v n="$MESSAGES" -v t="$1" 'BEGIN{ if (t > 0) printf "%.2f M", n/t/1e6; else print "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.1f×", a/b; else print "n/a" }'; }

CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
NPROC=$(nproc)
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo " + uncommitted changes" || true)

REPORT=$WORK/report.md
{
  echo "## Output throughput (\`bench/output_bench.sh\`, 2026-11-22)"
  echo
  echo "Machine: $CPU_MODEL, $NPROC vCPUs; load average at the end: $LOAD. Tree: $REV$DIRTY."
  echo "Input: \`gen_udp_pcap.py -n $PAIRS\` ($PCAP_MB MB, $MESSAGES dnstap messages). Best wall time of $PASSES passes;"
  echo "CPU = user+sys of that pass (lowest CPU over all passes in brackets). Every sidetap run checked:"
  echo "frames_written=$MESSAGES dropped=0; fstrm_capture wrote every frame."
  echo
  echo "| run | wall s | messages/s | CPU s (min) | wall vs tcpdump | CPU vs tcpdump |"
  echo "|---|---|---|---|---|---|"
  echo "| \`tcpdump -r F -w /dev/null\` | ${BEST_WALL[tcpdump]} | $(rate "${BEST_WALL[tcpdump]}") | ${BEST_CPU[tcpdump]} (${MIN_CPU[tcpdump]}) | 1.0× | 1.0× |"
  for r in devnull file socket; do
    case $r in
      devnull) label="\`sidetap replay -w /dev/null\`";;
      file) label="\`sidetap replay -w FILE\` ($(awk -v b="${EXTRA[file]}" 'BEGIN{printf "%.0f", b/1e6}') MB)";;
      socket) label="\`sidetap replay -w unix://SOCK\` → fstrm_capture (its CPU: ${EXTRA[socket]} s)";;
    esac
    echo "| $label | ${BEST_WALL[$r]} | $(rate "${BEST_WALL[$r]}") | ${BEST_CPU[$r]} (${MIN_CPU[$r]}) |" \
         "$(ratio "${BEST_WALL[$r]}" "${BEST_WALL[tcpdump]}") | $(ratio "${MIN_CPU[$r]}" "${MIN_CPU[tcpdump]}") |"
  done
  echo
} > "$REPORT"

cat "$REPORT"
if ((APPEND)); then
  { echo; cat "$REPORT"; } >> "$HERE/RESULTS.md"
  echo "output_bench: appended to bench/RESULTS.md" >&2
fi
