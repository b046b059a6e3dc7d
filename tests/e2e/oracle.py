"""tshark-based oracle and shared helpers for sidetap's end-to-end tests.

The oracle asks tshark (an independent dissector) for every UDP datagram in a
capture and derives the dnstap records sidetap must write for it:

  * tshark decides the link layer, where the IP header starts (VLAN, SLL,
    NULL ...), the addresses, ports, IP/UDP lengths, fragment flags and the
    packet time (frame.time_epoch, parsed as a decimal string, never a float);
  * the message bytes are the UDP payload cut to the UDP length, taken from
    the frame's raw bytes at tshark's UDP offset;
  * the direction rules are sidetap's documented contract (`--port` help and
    src/pairing/classifier.h): a datagram to a server port is a query, from a
    server port a response, both ports -> the QR bit decides; a QR bit that
    contradicts the port direction is not emitted (qr_direction_mismatch).
    tshark's own DNS decoding is not used for that decision because tshark
    decodes by port (mDNS on 5353, LLMNR on 5355, nothing on 8053 without -d).

Where sidetap and tshark legitimately differ the oracle follows sidetap's
documented rules and says why (see `skip_reason` values):
  * ip_snapped: the IP length is larger than the captured bytes (snaplen, or a
    length field larger than the datagram); tshark still decodes what is
    there, sidetap cannot trust it (decoder.h contract).
  * udp_bad_length: UDP length < 8 or beyond the IP payload.
  * dns_too_short: fewer than 12 payload bytes (e.g. the "zlip" captures with
    UDP length 8, whose DNS-looking bytes are outside the UDP datagram).
  * trailing bytes after the DNS message inside the UDP length are KEPT:
    the wire is the UDP payload (dnscap-dnspad, dnsjit trailing junk).

Not reassembled yet (see FEATURES below): IP fragments and DNS over TCP. Flip
the switches when the reassembly issue lands; the oracle then uses tshark's
own IP defragmentation for UDP, and FUTURE_EXPECTED_COUNTS gives the
per-file message counts the tests must then see.
"""
import datetime
import decimal
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import sidetap_testlib as tl  # noqa: E402

# ---------------------------------------------------------------------------
# FEATURES: what today's sidetap does. Switch on when the reassembly issue is
# done; tests marked "future" then start asserting the fragment/TCP counts.
# ---------------------------------------------------------------------------
FEATURES = {
    "ip_fragment_reassembly": False,   # ip_fragments_not_reassembled today
    "dns_over_tcp": False,             # dns_over_tcp_not_reassembled today
}

# Messages (queries, responses) sidetap must emit once the feature is on.
# Counts from /work/shared/pcaps/SOURCES.md (tshark with reassembly), limited
# to port 53 traffic. Today these files give only their unfragmented UDP part.
FUTURE_EXPECTED_COUNTS = {
    # file: (feature, queries, responses)
    "dnscap-frags.pcap": ("ip_fragment_reassembly", 41, 41),
    "dnscollector-dnsdump_ip4_fragmented+udp.pcap": ("ip_fragment_reassembly", 1, 1),
    "dnscollector-dnsdump_ip6_fragmented+udp.pcap": ("ip_fragment_reassembly", 1, 1),
    "derived-dnscollector-ip4-frags-reversed.pcap": ("ip_fragment_reassembly", 1, 1),
    "derived-dnscollector-ip6-frags-reversed.pcap": ("ip_fragment_reassembly", 1, 1),
    "dnscollector-dnsdump_ip4_fragmented_query.pcap": ("ip_fragment_reassembly", 2, 0),
    "drool-1qtcp.pcap": ("dns_over_tcp", 1, 1),
    "tcpdump-dns_tcp.pcap": ("dns_over_tcp", 1, 1),
    "dnscollector-dnsdump_tcp.pcap": ("dns_over_tcp", 5, 5),
    "dnscap-dnso1tcp.pcap": ("dns_over_tcp", 41, 41),
    "derived-dnscap-dnso1tcp-ooo-retrans.pcap": ("dns_over_tcp", 4, 4),
    "suricata-dns-tcp-multirequest-buffer.pcap": ("dns_over_tcp", 20, 20),
    "dnscap-dnsotcp-many1pkt.pcap": ("dns_over_tcp", 3, 1),
    "dnscap-dnsotcp-manyopkts.pcap": ("dns_over_tcp", 3, 0),
    "dnscollector-dnsdump_tcp_fastopen.pcap": ("dns_over_tcp", 4, 4),
}

TSHARK = shutil.which("tshark") or "tshark"
IPV6_EXT = {"ipv6.hopopts", "ipv6.routing", "ipv6.dstopts", "ipv6.fraghdr"}
# Link-layer protocol names (frame.protocols) that sidetap decodes.
LINK_FIRST = {"eth", "sll", "null", "loop", "raw", "ip", "ipv6"}
LINK_MIDDLE = {"ethertype", "vlan", "ieee8021ad", "pppoes", "ppp"}


def _first_wins(pairs):
    d = {}
    for k, v in pairs:
        d.setdefault(k, v)  # tunnels/ICMP quote inner headers: keep the outer one
    return d


def _find(obj, key):
    """Depth-first search for `key` in nested dicts (tshark JSON)."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            r = _find(v, key)
            if r is not None:
                return r
    return None


def epoch_to_ns(text):
    """'1476976981.075993000' -> int ns, exactly (decimal, not float)."""
    d = decimal.Decimal(text)
    return int((d * 1_000_000_000).to_integral_value(rounding=decimal.ROUND_FLOOR))


def rfc3339nano(ns):
    """Go's time.RFC3339Nano in UTC: trailing zeros trimmed, no dot if .0."""
    sec, frac = divmod(ns, 1_000_000_000)
    base = datetime.datetime.fromtimestamp(sec, tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        base += "." + ("%09d" % frac).rstrip("0")
    return base + "Z"


_CACHE = {}


def tshark_packets(pcap, defragment=False):
    st = os.stat(pcap)
    key = (os.path.abspath(pcap), defragment, st.st_mtime_ns, st.st_size)
    if key not in _CACHE:
        _CACHE[key] = _tshark_packets(pcap, defragment)
    return _CACHE[key]


def _tshark_packets(pcap, defragment=False):
    cmd = [TSHARK, "-n", "-r", pcap, "-T", "json", "-x", "-J", "frame ip ipv6 udp",
           "-o", "ip.defragment:%s" % ("TRUE" if defragment else "FALSE"),
           "-o", "ipv6.defragment:%s" % ("TRUE" if defragment else "FALSE"),
           "-Y", "udp"]
    p = subprocess.run(cmd, capture_output=True)
    out = p.stdout.decode("utf-8", "replace").strip()
    if not out:
        return []
    packets = json.loads(out, object_pairs_hook=_first_wins)
    return [pkt["_source"]["layers"] for pkt in packets]


def _is_fragment(layers, net):
    if net == "ip":
        ip = layers["ip"]
        mf = _find(ip, "ip.flags.mf")
        off = _find(ip, "ip.frag_offset")
        return mf == "1" or (off not in (None, "0"))
    fh = _find(layers["ipv6"], "ipv6.fraghdr")
    if not isinstance(fh, dict):
        return False
    off = _find(fh, "ipv6.fraghdr.offset")
    more = _find(fh, "ipv6.fraghdr.more")
    return (off not in (None, "0")) or more == "1"


def _hexdump_frame(pcap, number):
    """Frame bytes from tshark's -x hex dump (first data source only)."""
    p = subprocess.run([TSHARK, "-n", "-r", pcap, "-x", "-Y", "frame.number==%d" % number],
                       capture_output=True, text=True)
    data = bytearray()
    for line in p.stdout.splitlines():
        m = re.match(r"^([0-9a-f]{4,})  ((?:[0-9a-f]{2} ?)+)", line)
        if m:
            if int(m.group(1), 16) != len(data):
                break  # a second data source (reassembled data) starts at 0 again
            data += bytes.fromhex(m.group(2).replace(" ", ""))
        elif data and not line.strip():
            break
    return bytes(data)


def classify_udp(layers, ports=(53,), pcap=None):
    """One tshark UDP packet -> (record dict or None, reason)."""
    try:
        frame = bytes.fromhex(layers["frame_raw"][0])
    except ValueError:
        # tshark 4.0 prints "field length invalid!" instead of frame_raw when
        # the record's caplen and len disagree oddly (dnsjit-46vs45.pcap).
        frame = _hexdump_frame(pcap, int(layers["frame"]["frame.number"]))
    finfo = layers["frame"]
    protos = finfo.get("frame.protocols", "").split(":")
    net_i = next((i for i, p in enumerate(protos) if p in ("ip", "ipv6")), None)
    if net_i is None:
        return None, "not_ip"
    link = protos[:net_i]
    if (link and link[0] not in LINK_FIRST) or any(p not in LINK_MIDDLE for p in link[1:]):
        return None, "link_not_decoded_by_sidetap"
    rest = [p for p in protos[net_i + 1:] if p not in IPV6_EXT]
    if not rest or rest[0] != "udp":
        return None, "udp_not_directly_in_ip"  # ICMP quote, IPv6-in-IPv4 ...
    net = protos[net_i]
    if net not in layers or (net + "_raw") not in layers or "udp_raw" not in layers:
        return None, "tshark_layer_missing"
    reassembled = isinstance(layers.get("udp_raw", [None])[0], str) and _find(layers[net], net + ".reassembled.data") is not None
    if _is_fragment(layers, net) and not reassembled:
        return None, "ip_fragment"
    ip_off = layers[net + "_raw"][1]
    if net == "ip":
        ip_total = int(_find(layers["ip"], "ip.len"))
        family = "INET"
        src, dst = _find(layers["ip"], "ip.src"), _find(layers["ip"], "ip.dst")
    else:
        ip_total = 40 + int(_find(layers["ipv6"], "ipv6.plen"))
        family = "INET6"
        src, dst = _find(layers["ipv6"], "ipv6.src"), _find(layers["ipv6"], "ipv6.dst")
    udp = layers["udp"]
    sport, dport = int(udp["udp.srcport"]), int(udp["udp.dstport"])
    udp_len = int(udp["udp.length"])
    if reassembled:
        # Future path (FEATURES["ip_fragment_reassembly"]): tshark rebuilt the
        # datagram; its UDP payload field holds the whole payload.
        payload = bytes.fromhex(layers["udp"].get("udp.payload", "").replace(":", ""))[:max(udp_len - 8, 0)]
    else:
        if ip_off + ip_total > len(frame):
            return None, "ip_snapped"
        udp_off = layers["udp_raw"][1]
        if udp_len == 0:
            udp_len = ip_off + ip_total - udp_off
        if udp_len < 8 or udp_off + udp_len > ip_off + ip_total:
            return None, "udp_bad_length"
        payload = frame[udp_off + 8:udp_off + udp_len]
    to_server, from_server = dport in ports, sport in ports
    if not to_server and not from_server:
        return None, "not_server_port"
    if len(payload) < 12:
        return None, "dns_too_short"
    qr = bool(payload[2] & 0x80)
    if to_server and from_server:
        is_response = qr
    else:
        is_response = from_server
        if is_response != qr:
            return None, "qr_direction_mismatch"
    if "frame.time_epoch" in finfo:
        t_ns = epoch_to_ns(finfo["frame.time_epoch"])
    else:
        # pcapng Simple Packet Block: no timestamp. sidetap gives it the
        # previous packet's time (pcaps/README.md); the oracle uses the
        # previous UDP packet's (all packets of multi-interface.pcapng are UDP).
        t_ns = None
    client, server = (dst, src) if is_response else (src, dst)
    cport, sport2 = (dport, sport) if is_response else (sport, dport)
    rec = {"socket_family": family, "socket_protocol": "UDP",
           "query_address": str(client), "response_address": str(server),
           "query_port": cport, "response_port": sport2,
           "is_response": is_response, "time_ns": t_ns, "wire": payload,
           "frame": int(finfo["frame.number"])}
    return rec, "ok"


def expected_messages(pcap, ports=(53,), role="client", with_reasons=False):
    """The dnstap records sidetap must write for `pcap`, in order."""
    packets = tshark_packets(pcap, defragment=FEATURES["ip_fragment_reassembly"])
    out, reasons = [], {}
    last_time = None
    for layers in packets:
        rec, why = classify_udp(layers, ports, pcap)
        if "frame.time_epoch" in layers["frame"]:
            last_time = epoch_to_ns(layers["frame"]["frame.time_epoch"])
        elif rec is not None:
            rec["time_ns"] = last_time
        reasons[why] = reasons.get(why, 0) + 1
        if rec is None:
            continue
        kind = "AUTH" if role == "auth" else "CLIENT"
        rec["type"] = kind + ("_RESPONSE" if rec["is_response"] else "_QUERY")
        out.append(rec)
    return (out, reasons) if with_reasons else out


# ---------------------------------------------------------------------------
# Comparing sidetap's output (tl.read_dnstap_file) with the oracle.
# ---------------------------------------------------------------------------
def actual_view(d):
    """Reduce one decoded dnstap record to the oracle's keys."""
    resp = d.get("type", "").endswith("_RESPONSE")
    return {"type": d.get("type"), "socket_family": d.get("socket_family"),
            "socket_protocol": d.get("socket_protocol"),
            "query_address": d.get("query_address"), "response_address": d.get("response_address"),
            "query_port": d.get("query_port"), "response_port": d.get("response_port"),
            "time_ns": d.get("response_time_ns") if resp else d.get("query_time_ns"),
            "wire": d.get("response_message") if resp else d.get("query_message")}


def expected_view(e):
    return {k: e[k] for k in ("type", "socket_family", "socket_protocol", "query_address",
                              "response_address", "query_port", "response_port", "time_ns", "wire")}


def compare(tc, expected, actual, label=""):
    """Exact, ordered comparison with a readable first difference."""
    exp = [expected_view(e) for e in expected]
    act = [actual_view(a) for a in actual]
    for i, (e, a) in enumerate(zip(exp, act)):
        if e != a:
            diff = {k: (e[k], a[k]) for k in e if e[k] != a[k]}
            if "wire" in diff:
                diff["wire"] = ("%d bytes %s" % (len(e["wire"] or b""), (e["wire"] or b"")[:16].hex()),
                                "%d bytes %s" % (len(a["wire"] or b""), (a["wire"] or b"")[:16].hex()))
            tc.fail("%s message #%d (pcap frame %s) differs (expected, sidetap): %r"
                    % (label, i, expected[i].get("frame"), diff))
        # A query must not carry a response message and vice versa.
        if e["type"].endswith("_QUERY"):
            tc.assertNotIn("response_message", actual[i], "%s #%d" % (label, i))
            tc.assertNotIn("response_time_ns", actual[i], "%s #%d" % (label, i))
        else:
            tc.assertNotIn("query_message", actual[i], "%s #%d" % (label, i))
    tc.assertEqual(len(exp), len(act), "%s: message count (oracle vs sidetap)" % label)


# ---------------------------------------------------------------------------
# Running sidetap and the independent decoders.
# ---------------------------------------------------------------------------
def replay(sidetap, inputs, out_path, *args, check=True, **kw):
    # "--" before the inputs: belt and braces against an option swallowing
    # input paths as outputs (old -w take_all() bug, see test_cli.py
    # test_output_option_does_not_swallow_inputs).
    cmd = [sidetap, "replay", *args, "-w", out_path, "--", *inputs]
    return tl.run(cmd, check=check, **kw)


def parse_stats(stderr):
    """All key=value pairs of the 'sidetap: ...' summary lines."""
    stats = {}
    for line in stderr.splitlines():
        if not line.startswith("sidetap:"):
            continue
        for k, v in re.findall(r"([A-Za-z0-9_.]+)=(\S+)", line):
            try:
                stats[k] = int(v)
            except ValueError:
                stats[k] = v
    return stats


def dnstap_json(path):
    p = tl.run(["dnstap", "-r", path, "-j"])
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


LDNS_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}) (\S+) (\S+) (\S+) (\d+)b ")


def dnstap_ldns(path):
    """dnstap-ldns -q: [(time, mnemonic, address, proto, size)]."""
    p = tl.run(["dnstap-ldns", "-q", "-r", path])
    rows = []
    for line in p.stdout.splitlines():
        m = LDNS_LINE.match(line)
        if m:
            rows.append((m.group(1), m.group(2), m.group(3), m.group(4), int(m.group(5))))
        elif line.strip():
            rows.append(("?", "?", "?", "?", line))
    return rows


def fstrm_dump(path):
    """fstrm_dump: (list of control names, content types, data frame sizes)."""
    p = subprocess.run(["fstrm_dump", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        raise AssertionError("fstrm_dump %s failed (%d)" % (path, p.returncode))
    controls, ctypes, sizes = [], [], []
    lines = p.stdout.decode("latin-1").splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^Data frame \((\d+)\) bytes\.", line)
        if m:
            sizes.append(int(m.group(1)))
        elif line.startswith("FSTRM_CONTROL_FIELD_CONTENT_TYPE"):
            ctypes.append(lines[i + 1].strip().strip('"') if i + 1 < len(lines) else None)
        elif re.match(r"^FSTRM_CONTROL_[A-Z]+\.$", line):
            controls.append(line[len("FSTRM_CONTROL_"):-1])
    return controls, ctypes, sizes


def own_pcap(name):
    return os.path.join(tl.OWN_PCAPS, name)


def shared_pcap(name):
    return os.path.join(tl.SHARED_PCAPS, name)


def readme_counts():
    """pcaps/README.md table -> {file: (queries, responses)}."""
    counts = {}
    path = os.path.join(tl.OWN_PCAPS, "README.md")
    if not os.path.exists(path):
        return counts
    header = None
    for line in open(path, encoding="utf-8"):
        if not line.startswith("|"):
            header = None if not line.strip() else header
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if set(line) <= set("|-: \n"):
            continue
        if "Queries" in header and "File" in header:
            row = dict(zip(header, cells))
            try:
                counts[row["File"]] = (int(row["Queries"]), int(row["Responses"]))
            except (KeyError, ValueError):
                pass
    return counts


def main(sidetap_holder):
    """unittest main: takes --sidetap, exits non-zero on failure."""
    import unittest
    sidetap_holder["path"] = os.path.abspath(tl.sidetap_arg())
    prog = unittest.main(exit=False, verbosity=2)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
