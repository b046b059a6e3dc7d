#!/usr/bin/env python3
"""Writes sidetap.json, the Grafana dashboard for sidetap's --metrics
(Prometheus data source). tests/package/test_dashboard.py checks that the
committed JSON is this script's output and that every series it queries is
served by sidetap. Usage: make_dashboard.py [OUT]"""
import json
import os
import sys

SEL = '{instance=~"$instance"}'
RATE = "[$__rate_interval]"


def rate(metric, by=None, extra=""):
    sel = SEL if not extra else '{instance=~"$instance",%s}' % extra
    expr = f"rate({metric}{sel}{RATE})"
    return f"sum by ({by}) ({expr})" if by else f"sum({expr})"


def gauge(metric, by):
    return f"sum by ({by}) ({metric}{SEL})"


PANELS = [
    # (title, unit, description, [(expr, legend)])
    ("DNS messages per second", "ops", "Queries and responses seen, dnstap frames emitted, frames left out by --types", [
        (rate("sidetap_dns_queries_total"), "queries"),
        (rate("sidetap_dns_responses_total"), "responses"),
        (rate("sidetap_frames_total"), "frames emitted"),
        (rate("sidetap_filtered_by_type_total"), "left out by --types"),
        (rate("sidetap_relay_frames_total"), "frames received (listen)"),
    ]),
    ("Pairing per second", "ops", "How queries and responses ended", [
        (rate("sidetap_paired_total"), "paired"),
        (rate("sidetap_unanswered_queries_total"), "unanswered (timed out)"),
        (rate("sidetap_unanswered_evicted_total"), "unanswered (evicted)"),
        (rate("sidetap_unsolicited_responses_total"), "unsolicited responses"),
        (rate("sidetap_duplicate_queries_total"), "retransmitted queries"),
        (rate("sidetap_responses_before_query_total"), "responses before query"),
    ]),
    ("Output drops per second by cause", "ops", "Frames an output did not deliver", [
        (rate("sidetap_output_frames_dropped_total", "output"), "{{output}} queue full"),
        (rate("sidetap_output_frames_too_large_total", "output"), "{{output}} too large"),
        (rate("sidetap_output_frames_unconfirmed_total", "output"), "{{output}} unconfirmed (connection lost)"),
        (rate("sidetap_output_write_errors_total", "output"), "{{output}} write errors"),
    ]),
    ("Output queue depth", "short", "Frames waiting in each output's queue (--queue bounds it)", [
        (gauge("sidetap_output_queue_depth", "output"), "{{output}}"),
    ]),
    ("Output reconnects and failures", "short", "Reconnects and failed opens per second; outputs that gave up", [
        (rate("sidetap_output_reconnects_total", "output"), "{{output}} reconnects/s"),
        (rate("sidetap_output_open_failures_total", "output"), "{{output}} failed opens/s"),
        (gauge("sidetap_output_failed", "output"), "{{output}} gave up"),
        (gauge("sidetap_output_connected", "output"), "{{output}} connected"),
    ]),
    ("Kernel and ring drops per second", "ops", "Packets lost before sidetap read them: libpcap's kernel and interface drops, eBPF ring buffer full or copy failed", [
        (rate("sidetap_capture_kernel_dropped_total", "interface"), "{{interface}} kernel (libpcap)"),
        (rate("sidetap_capture_interface_dropped_total", "interface"), "{{interface}} interface (libpcap)"),
        (rate("sidetap_capture_ring_full_dropped_total", "ebpf"), "{{ebpf}} ring full (eBPF)"),
        (rate("sidetap_capture_copy_failed_total", "ebpf"), "{{ebpf}} copy failed (eBPF)"),
    ]),
    ("Captured packets per second", "pps", "Packets read per interface (libpcap) or eBPF channel", [
        (rate("sidetap_capture_packets_total", "interface, ebpf"), "{{interface}}{{ebpf}}"),
    ]),
    ("Bounded tables: evictions per second", "ops", "Entries given up because a bound was reached", [
        (rate("sidetap_tcp_streams_evicted_total"), "TCP streams"),
        (rate("sidetap_tcp_stream_buffer_full_total"), "TCP stream buffer full"),
        (rate("sidetap_defrag_evicted_table_full_total"), "IP datagrams (table full)"),
        (rate("sidetap_defrag_evicted_memory_total"), "IP datagrams (memory)"),
        (rate("sidetap_held_responses_evicted_total"), "held responses"),
    ]),
    ("Time discontinuities", "short", "Packet times that jumped more than --max-time-jump (damaged timestamps, clock steps), per second", [
        (rate("sidetap_time_discontinuities_total"), "discontinuities/s"),
    ]),
    ("Listen: connections", "short", "Writers connected to sidetap listen", [
        (gauge("sidetap_listen_connections_active", "instance"), "{{instance}} active"),
        (rate("sidetap_listen_connections_total", "instance"), "{{instance}} new/s"),
    ]),
    ("Listen: closed and refused connections per second", "ops", "Why writers' connections ended or were refused", [
        (rate("sidetap_listen_closed_total", "cause"), "closed: {{cause}}"),
        (rate("sidetap_listen_refused_total", "cause"), "refused: {{cause}}"),
    ]),
    ("Listen: receive memory", "bytes", "Read buffers of all connections against --max-receive-memory", [
        (gauge("sidetap_listen_receive_memory_bytes", "instance"), "{{instance}} in use"),
        (gauge("sidetap_listen_receive_memory_limit_bytes", "instance"), "{{instance}} limit"),
    ]),
]


def dashboard():
    panels = []
    for i, (title, unit, description, targets) in enumerate(PANELS):
        panels.append({
            "id": i + 1,
            "type": "timeseries",
            "title": title,
            "description": description,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"},
                        "tooltip": {"mode": "multi"}},
            "targets": [{"refId": chr(ord("A") + j), "expr": expr, "legendFormat": legend,
                         "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                        for j, (expr, legend) in enumerate(targets)],
        })
    return {
        "title": "sidetap",
        "uid": "sidetap",
        "description": "sidetap --metrics: DNS messages, pairing, outputs, capture drops, listen connections",
        "tags": ["dns", "dnstap", "sidetap"],
        "schemaVersion": 38,
        "version": 1,
        "editable": True,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus"},
            {"name": "instance", "label": "Instance", "type": "query",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": "label_values(sidetap_output_queue_depth, instance)",
             "definition": "label_values(sidetap_output_queue_depth, instance)",
             "refresh": 2, "includeAll": True, "multi": True,
             "current": {"text": "All", "value": "$__all"}},
        ]},
        "panels": panels,
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "sidetap.json")
    with open(out, "w") as f:
        json.dump(dashboard(), f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
