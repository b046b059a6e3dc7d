#!/usr/bin/env bash
# Regenerates pcaps/sample.pcap: a real capture (tcpdump on loopback, Ethernet link type) of
# 20 kdig queries over UDP, IPv4 and IPv6 (A, AAAA, MX, TXT, SOA, NODATA, NXDOMAIN, REFUSED,
# with and without EDNS) answered by knotd in a private network namespace. Also keeps Knot's
# own dnstap of the same traffic as pcaps/sample.knot.dnstap (identity "sidetap-knot-test",
# version "knot-3.2-mod-dnstap"), the reference a replay with --role auth should match.
# The scenario is the one of tests/root/test_knot_replay.py. Needs root, knotd
# (+ knot-module-dnstap), kdig, tcpdump, iproute2. Client ports and DNS IDs are random, so
# each run gives different bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 tests/root/test_knot_replay.py --capture-only pcaps/sample.pcap \
    --knot-dnstap pcaps/sample.knot.dnstap
