#!/usr/bin/env bash
# Builds sidetap, replays a bundled capture into a dnstap file and prints it decoded.
#   scripts/demo.sh [PCAP]   (default: pcaps/sample.pcap, a capture of kdig queries against Knot
#                             over IPv4 and IPv6; see pcaps/make_sample.sh)
# Output: out/sample.dnstap (Frame Streams), shown as quiet text by golang-dnstap's `dnstap -r`
# (an independent decoder), or by `sidetap read` when that tool is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build.sh

pcap=${1:-pcaps/sample.pcap}
mkdir -p out
echo "+ build/sidetap replay -w out/sample.dnstap $pcap"
build/sidetap replay -w out/sample.dnstap "$pcap"
echo "+ wrote out/sample.dnstap ($(stat -c %s out/sample.dnstap) bytes); decoded:"
if command -v dnstap >/dev/null; then
  dnstap -r out/sample.dnstap 2>/dev/null
else
  build/sidetap read out/sample.dnstap
fi
