#!/usr/bin/env python3
"""Root test: dnsdist serving DNS over TLS and DNS over HTTPS with its native dnstap on;
sidetap capture --tls-pid must write the same messages (what is checked: tls_servers.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tls_servers  # noqa: E402

if __name__ == "__main__":
    sys.exit(tls_servers.main("dnsdist"))
