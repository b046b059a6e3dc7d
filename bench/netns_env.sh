# Shared by the root benchmarks (make_server_capture.sh, live_cpu_bench.sh, lossless_bench.sh):
# network namespaces made here and removed at exit, a veth pair between two of them, knotd with
# a small zone of wildcards, waiting for a line, stopping what was started (by PID).
# Source it after `set -euo pipefail`; it sets an EXIT trap (ne_cleanup) and needs root.
#
#   ne_init NAME             tmp dir $NE_TMP, namespaces are named sidetap-NAME-<role>-$$
#   ne_ns ROLE               creates namespace $(ne_name ROLE) with lo up
#   ne_veth A DEVA B DEVB    veth DEVA (in A) <-> DEVB (in B), MTU 1500, offloads off, up
#   ne_in ROLE CMD...        runs CMD in the namespace
#   ne_bg VAR LOG ROLE CMD... starts CMD in the namespace in the background, stderr to LOG;
#                            VAR gets its PID (ip netns exec execs in place: the PID is CMD's)
#   ne_wait LOG REGEX PID SECONDS
#   ne_stop PID              SIGTERM, wait
#   ne_knot ROLE LISTEN...   knotd on LISTEN addresses (ADDR@53), zone example.test; NE_KNOT_PID
#   ne_queries FILE N        N query lines (q<i>.small.example.test A/AAAA/TXT) for dnsperf
#   ne_cpu_ticks PID         utime + stime of PID (all threads), in clock ticks
ne_pids=()
ne_namespaces=()

ne_init() {
  [[ $(id -u) == 0 ]] || { echo "$0: needs root (namespaces, capture)" >&2; exit 1; }
  NE_NAME=$1
  NE_TMP=$(mktemp -d "/tmp/sidetap-$1.XXXXXX")
  chmod 755 "$NE_TMP"
  trap ne_cleanup EXIT
  trap 'exit 130' INT TERM
}

ne_cleanup() {
  local p n
  for p in "${ne_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${ne_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for n in "${ne_namespaces[@]}"; do ip netns delete "$n" 2>/dev/null || true; done
  if ((${NE_KEEP:-0})); then echo "kept $NE_TMP" >&2; else rm -rf "$NE_TMP"; fi
}

ne_name() { echo "sidetap-$NE_NAME-$1-$$"; }

ne_ns() {
  local n; n=$(ne_name "$1")
  ip netns add "$n"
  ne_namespaces+=("$n")
  ip netns exec "$n" ip link set lo up
}

ne_in() { local r=$1; shift; ip netns exec "$(ne_name "$r")" "$@"; }

ne_veth() {   # A DEVA B DEVB
  ne_in "$1" ip link add "$2" type veth peer name "$4" netns "$(ne_name "$3")"
  local r d
  for r in "$1:$2" "$3:$4"; do
    d=${r#*:}
    ne_in "${r%%:*}" ip link set "$d" mtu 1500
    ne_in "${r%%:*}" ethtool -K "$d" tso off gso off gro off >/dev/null
    ne_in "${r%%:*}" ip link set "$d" up
  done
}

ne_bg() {   # VAR LOG ROLE CMD...
  local var=$1 log=$2 role=$3; shift 3
  : > "$log"
  ip netns exec "$(ne_name "$role")" "$@" 2>"$log" >/dev/null &
  printf -v "$var" '%s' "$!"
  ne_pids+=("$!")
}

ne_wait() {   # LOG REGEX PID SECONDS
  local i
  for ((i = 0; i < $4 * 20; i++)); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { echo "$0: pid $3 died:" >&2; cat "$1" >&2; exit 1; }
    sleep 0.05
  done
  echo "$0: /$2/ not in $1 after $4 s" >&2; cat "$1" >&2; exit 1
}

ne_stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${ne_pids[@]}"; do [[ $p != "$1" ]] && keep+=("$p"); done
  ne_pids=("${keep[@]}")
}

ne_knot() {   # ROLE LISTEN...
  local role=$1; shift
  local d=$NE_TMP/knot listen=""
  mkdir -p "$d/db"
  for a in "$@"; do listen+="${listen:+, }$a"; done
  {
    echo '$ORIGIN example.test.'; echo '$TTL 3600'
    echo '@ SOA ns1 hostmaster 2024010101 3600 900 604800 300'; echo '@ NS ns1'
    echo 'ns1 A 192.0.2.1'; echo 'www A 192.0.2.80'
    echo '*.small A 192.0.2.81'; echo '*.small AAAA 2001:db8::81'
    echo '*.small TXT "small wildcard"'
  } > "$d/example.test.zone"
  cat > "$d/knot.conf" <<EOF
server:
    rundir: "$d"
    listen: [ $listen ]
    background-workers: 1
database:
    storage: "$d/db"
control:
    listen: "$d/knot.sock"
log:
  - target: stderr
    any: info
template:
  - id: default
    storage: "$d"
zone:
  - domain: example.test
    file: "$d/example.test.zone"
EOF
  ne_bg NE_KNOT_PID "$NE_TMP/knotd.log" "$role" knotd -c "$d/knot.conf"
  ne_wait "$NE_TMP/knotd.log" "server started" "$NE_KNOT_PID" 20
}

ne_queries() {   # FILE N
  python3 - "$1" "$2" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(f"q{i}.small.example.test {('A', 'AAAA', 'TXT')[i % 3]}\n")
EOF
}

ne_cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

ne_machine() {
  echo "Machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs, kernel $(uname -r);" \
       "$(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)."
}
