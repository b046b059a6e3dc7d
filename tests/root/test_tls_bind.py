#!/usr/bin/env python3
"""bind serving DNS over TLS and DNS over HTTPS (GET and POST) in a network namespace with its
native dnstap on; sidetap reads the plaintext at the server's TLS library (capture --tls-pid)
while libpcap captures UDP/TCP on lo into the same output. sidetap's DoT/DoH messages must
equal the server's own (type, addresses, ports, message bytes, hence DNS ID), over IPv4 and
IPv6, with pipelined queries, a query split across TLS records, many concurrent connections,
multiplexed HTTP/2 streams and answers over 16 KB; responses carry their query's time; the
UDP/TCP messages equal the native ones too (see tls_servers.py)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netns import run_root_test  # noqa: E402
import tls_servers  # noqa: E402

TEST = "root.test_tls_bind"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sidetap", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    return run_root_test(TEST, args.sidetap, tls_servers.TOOLS, "sidetap-tls-bind-", args.keep,
                         lambda w: tls_servers.run_server_test("bind", args.sidetap, w))


if __name__ == "__main__":
    sys.exit(main())
