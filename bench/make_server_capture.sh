#!/usr/bin/env bash
# A real server capture for the replay benchmark: knotd answering dnsperf over UDP and TCP in
# two namespaces joined by a veth pair (MTU 1500, offloads off), captured by tcpdump on the
# server's side.
#
#   sudo bench/make_server_capture.sh [-u UDP_QUERIES] [-t TCP_QUERIES] [-Q QPS] [-o OUT.pcap] [-k]
#     -u N   queries over UDP (default 400000)
#     -t N   queries over TCP (default 100000; dnsperf -m tcp, 8 connections, pipelined)
#     -Q QPS dnsperf's offered rate (default 50000: tcpdump keeps up on a small machine)
#     -o OUT the capture (default /tmp/knot-dnsperf.pcap); OUT.expected gets the number of DNS
#            messages in it (queries sent + responses completed), for replay_bench.sh -p
#     -k     keep the temporary directory
# Fails when tcpdump dropped a packet or dnsperf lost a query (the expected count would be
# wrong); run again with a lower -Q then.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/netns_env.sh

udp=400000 tcp=100000 qps=50000 out=/tmp/knot-dnsperf.pcap NE_KEEP=0
while getopts "u:t:Q:o:kh" opt; do
  case $opt in
    u) udp=$OPTARG ;;
    t) tcp=$OPTARG ;;
    Q) qps=$OPTARG ;;
    o) out=$OPTARG ;;
    k) NE_KEEP=1 ;;
    *) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 2 ;;
  esac
done
for t in ip knotd dnsperf tcpdump ethtool python3; do
  command -v $t >/dev/null || { echo "make_server_capture: missing $t" >&2; exit 1; }
done

ne_init msc
ne_ns srv
ne_ns cli
ne_veth srv msc-srv cli msc-cli
ne_in srv ip addr add 192.0.2.1/24 dev msc-srv
ne_in cli ip addr add 192.0.2.2/24 dev msc-cli
ne_knot srv 192.0.2.1@53

ne_bg dump "$NE_TMP/tcpdump.err" srv tcpdump -i msc-srv -B 131072 -s 0 -n -U -w "$NE_TMP/out.pcap" 'port 53'
ne_wait "$NE_TMP/tcpdump.err" "listening on" "$dump" 10

sent=0 completed=0 lost=0
run_dnsperf() {   # N MODE...
  local n=$1; shift
  ((n > 0)) || return 0
  ne_queries "$NE_TMP/q.txt" "$n"
  ne_in cli dnsperf -s 192.0.2.1 -d "$NE_TMP/q.txt" -n 1 -c 8 -q 100 -Q "$qps" -t 5 "$@" > "$NE_TMP/dnsperf.txt" 2>&1
  sed -n 's/^  *\(Queries [a-z]*\):/\1/p' "$NE_TMP/dnsperf.txt" | head -3 | sed 's/^/  /' >&2
  sent=$((sent + $(awk '/Queries sent:/ { print $3 }' "$NE_TMP/dnsperf.txt")))
  completed=$((completed + $(awk '/Queries completed:/ { print $3 }' "$NE_TMP/dnsperf.txt")))
  lost=$((lost + $(awk '/Queries lost:/ { print $3 }' "$NE_TMP/dnsperf.txt")))
}
echo "make_server_capture: $udp queries over UDP at $qps q/s" >&2
run_dnsperf "$udp"
echo "make_server_capture: $tcp queries over TCP" >&2
run_dnsperf "$tcp" -m tcp
sleep 1
ne_stop "$dump"
dropped=$(awk '/dropped by kernel/ { print $1 }' "$NE_TMP/tcpdump.err")
captured=$(awk '/packets captured/ { print $1 }' "$NE_TMP/tcpdump.err")
echo "make_server_capture: tcpdump captured $captured packets, dropped ${dropped:-?}; dnsperf sent $sent, completed $completed, lost $lost" >&2
if [[ ${dropped:-1} != 0 || $lost != 0 ]]; then
  echo "make_server_capture: packets were lost; run again with a lower -Q" >&2
  exit 1
fi
mv "$NE_TMP/out.pcap" "$out"
echo $((sent + completed)) > "$out.expected"
echo "make_server_capture: $out ($(du -m "$out" | cut -f1) MB, $((sent + completed)) DNS messages)" >&2
