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

Tunnels (GRE, ERSPAN, VXLAN, Geneve, GTP-U, IP-in-IP, IPv6-in-IP) and NFLOG:
tshark decodes them natively; for a tunnelled frame the message comes from
the innermost IP and UDP/TCP layers (classify_innermost), as sidetap's
dnstap carries the inner addresses.

Reassembly (FEATURES below): IP fragments are rebuilt by tshark's own
defragmenter (ip/ipv6.defragment); DNS over TCP comes from tshark's TCP
reassembly (tcp.desegment_tcp_streams, tcp.reassemble_out_of_order, and
`-d tcp.port==N,dns` for non-53 server ports): every DNS PDU tshark shows is
one message, at the frame that completes it (tshark puts the PDU there),
its wire being the PDU without the 2-byte length. A TCP length below 12 is
never a message for sidetap (it resynchronises).

Pairing and order: `pair()` re-implements the pairer contract
(src/pairing/pairer.h): an exchange = client addr+port, server addr+port,
transport, ID; the questions (qname lower-cased, qtype, qclass) must match
when both messages have one (QDCOUNT 0 answers pair on the exchange); every
query is a pending copy of its own and a response takes the oldest copy it
matches; responses carry their query's time as query_time, unless it is
later than their own; a response with no pending query is held for
--reorder-window and emitted right after its query, or unpaired when the
window passes (before the first later message whose clock is beyond it) or
at the end. Timers run on the expiry clock (src/pipeline/expiry_clock.h,
re-implemented as ExpiryClock). Malformed messages (too short, QR against
the ports, a question that does not parse) are not emitted unless
--keep-malformed. Where sidetap's TCP reassembler legitimately differs from
tshark (streams without SYN, holes...) the tests say so, file by file
(test_tcp_reassembly.TSHARK_DIFFERENCES).
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
# FEATURES: what sidetap does. Both reassembly features are on since
# bea2276 ("IP defragmentation, DNS-over-TCP reassembly and query/response
# pairing wired in"); the switches stay so a regression can be bisected.
# ---------------------------------------------------------------------------
FEATURES = {
    "ip_fragment_reassembly": True,
    "dns_over_tcp": True,
}

# Messages (queries, responses) sidetap must emit for the files that need
# reassembly (default options, server port 53). The counts are SOURCES.md's
# tshark counts; where sidetap legitimately differs from tshark the entry
# lives in test_tcp_reassembly.TSHARK_DIFFERENCES instead, with its reason.
EXPECTED_COUNTS = {
    # file: (feature, queries, responses)
    "dnscap-frags.pcap": ("ip_fragment_reassembly", 41, 41),
    "dnscollector-dnsdump_ip4_fragmented+udp.pcap": ("ip_fragment_reassembly", 1, 1),
    "dnscollector-dnsdump_ip6_fragmented+udp.pcap": ("ip_fragment_reassembly", 1, 1),
    "derived-dnscollector-ip4-frags-reversed.pcap": ("ip_fragment_reassembly", 1, 1),
    "derived-dnscollector-ip6-frags-reversed.pcap": ("ip_fragment_reassembly", 1, 1),
    "dnscollector-dnsdump_ip4_fragmented_query.pcap": ("ip_fragment_reassembly", 2, 0),
    "dnscollector-dnsdump_ip6_fragmented_query.pcap": ("ip_fragment_reassembly", 1, 0),
    "zeek-ipv6-fragmented-dns.pcap": ("ip_fragment_reassembly", 3, 2),
    "drool-1qtcp.pcap": ("dns_over_tcp", 1, 1),
    "tcpdump-dns_tcp.pcap": ("dns_over_tcp", 1, 1),
    "dnscollector-dnsdump_tcp.pcap": ("dns_over_tcp", 5, 5),
    "dnscap-dnso1tcp.pcap": ("dns_over_tcp", 41, 41),
    "derived-dnscap-dnso1tcp-ooo-retrans.pcap": ("dns_over_tcp", 4, 4),
    "suricata-dns-tcp-multirequest-buffer.pcap": ("dns_over_tcp", 20, 20),
    "dnscap-dnsotcp-many1pkt.pcap": ("dns_over_tcp", 3, 1),
    "dnscap-dnsotcp-manyopkts.pcap": ("dns_over_tcp", 3, 0),
    "dnscollector-dnsdump_tcp_fastopen.pcap": ("dns_over_tcp", 4, 4),
    "dnscollector-dnsdump_udp+tcp.pcap": ("dns_over_tcp", 2, 2),
    "dnscollector-dnsdump_udp_truncated+tcp_fragmented.pcap": ("dns_over_tcp", 2, 2),
    "zeek-dns-edns-tcp-keepalive.pcap": ("dns_over_tcp", 2, 2),
    "dnscap-1qtcpnosyn.pcap": ("dns_over_tcp", 1, 1),
    "dnscap-1qtcppadd.pcap": ("dns_over_tcp", 1, 1),
    "dnsjit-tcp-response-with-trailing-junk.pcap": ("dns_over_tcp", 10, 10),
}
FUTURE_EXPECTED_COUNTS = EXPECTED_COUNTS  # old name

# Pairing defaults of `sidetap replay` (--query-timeout, --reorder-window).
DEFAULT_QUERY_TIMEOUT_NS = 10_000_000_000
DEFAULT_REORDER_WINDOW_NS = 100_000_000
MAX_HELD_RESPONSES = 256          # pairing/pairer.h PairingConfig
MAX_HELD_BYTES = 4 << 20
MAX_COPIES = 16                   # PairingConfig::max_copies
MAX_PENDING_QUERIES = 65536       # --max-pending-queries
DEFAULT_MAX_TIME_JUMP_NS = 60_000_000_000   # --max-time-jump

TSHARK = shutil.which("tshark") or "tshark"
IPV6_EXT = {"ipv6.hopopts", "ipv6.routing", "ipv6.dstopts", "ipv6.fraghdr"}
# Link-layer protocol names (frame.protocols) that sidetap decodes.
LINK_FIRST = {"eth", "sll", "null", "loop", "raw", "ip", "ipv6", "nflog"}
LINK_MIDDLE = {"ethertype", "vlan", "ieee8021ad", "pppoes", "ppp"}
# tshark preferences: IP defragmentation and TCP reassembly (in order and
# out of order) on, as sidetap does.
TSHARK_REASSEMBLY = ["-o", "ip.defragment:TRUE", "-o", "ipv6.defragment:TRUE",
                     "-o", "tcp.desegment_tcp_streams:TRUE", "-o", "tcp.reassemble_out_of_order:TRUE",
                     "-o", "tcp.analyze_sequence_numbers:TRUE", "-o", "tcp.try_heuristic_first:FALSE"]


def _hook(pairs):
    """JSON object hook: first occurrence wins (tunnels/ICMP quote inner
    headers: keep the outer one), except "dns"/"dns_raw", which tshark
    repeats once per DNS message in a TCP segment: keep them all, in order.
    Every occurrence of the network/transport layers is also kept under
    "<name>#all" (the innermost ones carry tunnelled DNS, see
    classify_innermost)."""
    d = {}
    for k, v in pairs:
        if k in ("dns", "dns_raw") or k in _ALL_LAYERS:
            d.setdefault(k + "#all", []).append(v)
        d.setdefault(k, v)
    return d


_ALL_LAYERS = {"ip", "ipv6", "udp", "tcp"}
_first_wins = _hook


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


def message_time(d):
    """A decoded dnstap record's own time: response_time for responses (which
    also carry their query's query_time), query_time for queries."""
    if d.get("type", "").endswith("_RESPONSE"):
        return d.get("response_time_ns")
    return d.get("query_time_ns")


def rfc3339nano(ns):
    """Go's time.RFC3339Nano in UTC: trailing zeros trimmed, no dot if .0."""
    sec, frac = divmod(ns, 1_000_000_000)
    base = datetime.datetime.fromtimestamp(sec, tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        base += "." + ("%09d" % frac).rstrip("0")
    return base + "Z"


_CACHE = {}
_STATS = {}


# TCP ports tshark decodes as DNS besides 53 (the ones SOURCES.md's counts
# used), plus any server port a test asks for.
TSHARK_DNS_TCP_PORTS = (1053, 5355, 8053)


def _decode_ports(ports):
    return tuple(sorted(({int(p) for p in ports} | set(TSHARK_DNS_TCP_PORTS)) - {53}))


def tshark_packets(pcap, defragment=None, ports=(53,)):
    """tshark's view of every UDP/TCP frame (and IP fragment) of `pcap`,
    with IP defragmentation and TCP reassembly as FEATURES says."""
    if defragment is None:
        defragment = FEATURES["ip_fragment_reassembly"]
    key = _cache_key(pcap, ports, defragment)
    if key not in _CACHE:
        _STATS.setdefault("single_runs", []).append(os.path.basename(pcap))
        _CACHE[key] = _tshark_packets(pcap, defragment, ports)
    return _CACHE[key]


def _cache_key(pcap, ports, defragment=None):
    st = os.stat(pcap)
    if defragment is None:
        defragment = FEATURES["ip_fragment_reassembly"]
    return (os.path.abspath(pcap), defragment, FEATURES["dns_over_tcp"], _decode_ports(ports), st.st_mtime_ns,
            st.st_size)


def _tshark_packets(pcap, defragment=True, ports=(53,)):
    on = "TRUE" if defragment else "FALSE"
    tcp = "TRUE" if FEATURES["dns_over_tcp"] else "FALSE"
    cmd = [TSHARK, "-n", "-r", pcap, "-T", "json", "-x", "-J", "frame ip ipv6 udp tcp dns",
           "-o", "ip.defragment:%s" % on, "-o", "ipv6.defragment:%s" % on,
           "-o", "tcp.desegment_tcp_streams:%s" % tcp, "-o", "tcp.reassemble_out_of_order:%s" % tcp,
           "-o", "tcp.analyze_sequence_numbers:TRUE"]
    for p in _decode_ports(ports):
        cmd += ["-d", "tcp.port==%d,dns" % p]
    # Only what can be DNS for sidetap (UDP/TCP on a DNS port, IP fragments):
    # a smaller JSON for the merged runs.
    dns_ports = ",".join(str(p) for p in (53,) + _decode_ports(ports))
    cmd += ["-Y", "udp.port in {%s} or tcp.port in {%s} or ip.flags.mf==1 or ip.frag_offset>0 or ipv6.fraghdr"
            % (dns_ports, dns_ports)]
    p = subprocess.run(cmd, capture_output=True)
    out = p.stdout.decode("utf-8", "replace").strip()
    err = p.stderr.decode("utf-8", "replace")
    if p.returncode != 0 and "unexpected" in err or "isn't a valid display filter" in err:
        raise AssertionError("tshark failed: %s\n%s" % (" ".join(cmd), err))
    if not out:
        return []
    packets = json.loads(out, object_pairs_hook=_hook)
    return [pkt["_source"]["layers"] for pkt in packets]


def tshark_pairing(pcap, ports=(53,)):
    """tshark's own query/response matching: {response frame: (query frame or
    None, flags)} for every DNS response it decodes, with its reassembly on.
    tshark matches on the conversation and the DNS ID (not the question);
    flags has "retransmitted_response" when tshark thinks the transaction
    was answered already."""
    cmd = [TSHARK, "-n", "-r", pcap, *TSHARK_REASSEMBLY, "-Y", "dns.flags.response == 1", "-T", "fields",
           "-E", "occurrence=a", "-e", "frame.number", "-e", "dns.response_to", "-e", "dns.retransmit_response"]
    for p in _decode_ports(ports):
        cmd += ["-d", "tcp.port==%d,dns" % p]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = {}
    for line in out.splitlines():
        cells = line.split("\t")
        frame, to = int(cells[0]), cells[1] if len(cells) > 1 else ""
        flags = {"retransmitted_response"} if len(cells) > 2 and cells[2] else set()
        result[frame] = (int(to.split(",")[0]) if to else None, flags)
    return result


def tshark_dns_counts(pcap, ports=(53,)):
    """tshark's own DNS message count (queries, responses) after reassembly,
    as in SOURCES.md: every DNS PDU it decodes, whatever the ports or link
    type (mDNS and LLMNR over UDP are separate protocols and not counted)."""
    q = r = 0
    for layers in tshark_packets(pcap, ports=ports):
        for d in layers.get("dns#all", []):
            if not isinstance(d, dict):
                continue
            flag = _find(d, "dns.flags.response")
            if flag == "1":
                r += 1
            elif flag == "0":
                q += 1
    return q, r


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


def _network(layers):
    """(net, transport, family, src, dst) or (None, reason)."""
    finfo = layers["frame"]
    protos = finfo.get("frame.protocols", "").split(":")
    net_i = next((i for i, p in enumerate(protos) if p in ("ip", "ipv6")), None)
    if net_i is None:
        return None, "not_ip"
    link = protos[:net_i]
    if (link and link[0] not in LINK_FIRST) or any(p not in LINK_MIDDLE for p in link[1:]):
        return None, "link_not_decoded_by_sidetap"
    rest = [p for p in protos[net_i + 1:] if p not in IPV6_EXT]
    if not rest or rest[0] not in ("udp", "tcp"):
        return None, "udp_not_directly_in_ip"  # ICMP quote, IPv6-in-IPv4, lone fragment ...
    net = protos[net_i]
    if net not in layers:
        return None, "tshark_layer_missing"
    if net == "ip":
        family, src, dst = "INET", _find(layers["ip"], "ip.src"), _find(layers["ip"], "ip.dst")
    else:
        family, src, dst = "INET6", _find(layers["ipv6"], "ipv6.src"), _find(layers["ipv6"], "ipv6.dst")
    return (net, rest[0], family, str(src), str(dst)), "ok"


def _direction(sport, dport, payload, ports, keep_malformed=False):
    """sidetap's classifier: (is_response, None) or (None, reason).
    Malformed messages (too short, QR bit against the port direction, a
    question that does not parse) are dropped, or with keep_malformed given
    the direction of their ports."""
    to_server, from_server = dport in ports, sport in ports
    if not to_server and not from_server:
        return None, "not_dns_port"
    if len(payload) < 12:
        if not keep_malformed or (to_server and from_server):
            return None, "dns_too_short"
        return from_server, None
    if question_status(payload) == "bad" and not keep_malformed:
        return None, "dns_bad_question"
    qr = bool(payload[2] & 0x80)
    if to_server and from_server:
        return qr, None
    if from_server != qr and not keep_malformed:
        return None, "qr_direction_mismatch"
    return from_server, None


def _record(family, proto, src, dst, sport, dport, is_response, t_ns, payload, frame):
    client, server = (dst, src) if is_response else (src, dst)
    cport, sport2 = (dport, sport) if is_response else (sport, dport)
    return {"socket_family": family, "socket_protocol": proto,
            "query_address": client, "response_address": server,
            "query_port": cport, "response_port": sport2,
            "is_response": is_response, "time_ns": t_ns, "wire": payload, "frame": frame}


def classify_udp(layers, ports=(53,), pcap=None, keep_malformed=False):
    """One tshark UDP packet -> (record dict or None, reason)."""
    try:
        frame = bytes.fromhex(layers["frame_raw"][0])
    except ValueError:
        # tshark 4.0 prints "field length invalid!" instead of frame_raw when
        # the record's caplen and len disagree oddly (dnsjit-46vs45.pcap).
        frame = _hexdump_frame(pcap, int(layers["frame"]["frame.number"]))
    finfo = layers["frame"]
    netinfo, why = _network(layers)
    if netinfo is None:
        return None, why
    net, transport, family, src, dst = netinfo
    if transport != "udp":
        return None, "not_udp"
    if (net + "_raw") not in layers or "udp_raw" not in layers or "udp" not in layers:
        return None, "tshark_layer_missing"
    reassembled = isinstance(layers.get("udp_raw", [None])[0], str) and _find(layers[net], net + ".reassembled.data") is not None
    if _is_fragment(layers, net) and not reassembled:
        return None, "ip_fragment"
    ip_off = layers[net + "_raw"][1]
    if net == "ip":
        ip_total = int(_find(layers["ip"], "ip.len"))
    else:
        ip_total = 40 + int(_find(layers["ipv6"], "ipv6.plen"))
    udp = layers["udp"]
    sport, dport = int(udp["udp.srcport"]), int(udp["udp.dstport"])
    udp_len = int(udp["udp.length"])
    if reassembled:
        # tshark rebuilt the datagram; its UDP payload field holds the whole
        # payload (the datagram's time is the completing fragment's).
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
    is_response, why = _direction(sport, dport, payload, ports, keep_malformed)
    if why:
        return None, why
    # pcapng Simple Packet Block: no timestamp. sidetap gives it the previous
    # packet's time (pcaps/README.md); expected_messages() fills it in.
    t_ns = epoch_to_ns(finfo["frame.time_epoch"]) if "frame.time_epoch" in finfo else None
    return _record(family, "UDP", src, dst, sport, dport, is_response, t_ns, payload,
                   int(finfo["frame.number"])), "ok"


def classify_tcp(layers, ports=(53,), keep_malformed=False):
    """One tshark TCP frame -> ([records], [reasons]): one record per DNS
    message that this frame completes (tshark's reassembled PDUs, in stream
    order). The wire is tshark's DNS PDU without its 2-byte length."""
    finfo = layers["frame"]
    netinfo, why = _network(layers)
    if netinfo is None:
        return [], [why]
    _, transport, family, src, dst = netinfo
    if transport != "tcp" or "tcp" not in layers:
        return [], ["not_tcp"]
    tcp = layers["tcp"]
    sport, dport = int(tcp["tcp.srcport"]), int(tcp["tcp.dstport"])
    if dport not in ports and sport not in ports:
        return [], ["not_dns_port" if 853 not in (sport, dport) else "dot_skipped"]
    raws = layers.get("dns_raw#all", [])
    if not raws:
        return [], ["tcp_no_dns_message"]
    recs, reasons = [], []
    for raw in raws:
        pdu = bytes.fromhex(raw[0])
        n = int.from_bytes(pdu[:2], "big")
        wire = pdu[2:2 + n]
        if n < 12:
            reasons.append("tcp_length_below_12")  # sidetap resynchronises
            continue
        if len(wire) != n:
            reasons.append("tcp_pdu_incomplete")
            continue
        is_response, why = _direction(sport, dport, wire, ports, keep_malformed)
        if why:
            reasons.append(why)
            continue
        recs.append(_record(family, "TCP", src, dst, sport, dport, is_response,
                            epoch_to_ns(finfo["frame.time_epoch"]), wire, int(finfo["frame.number"])))
        reasons.append("ok")
    return recs, reasons


# ---------------------------------------------------------------------------
# Pairing model (src/pairing/pairer.h contract, re-implemented): decides the
# output order and each response's query_time.
# ---------------------------------------------------------------------------
def parse_question(wire):
    """(id, question) with question = (lower-cased wire name, qtype, qclass)
    or None (QDCOUNT 0, or a question that does not parse), following
    src/dns/message.h's rules."""
    msg_id = int.from_bytes(wire[0:2], "big")
    q = _question(wire)
    return msg_id, (q if isinstance(q, tuple) else None)


def question_status(wire):
    """"none" (QDCOUNT 0), "bad" (does not parse) or the question tuple."""
    return _question(wire)


def _question(wire):
    if len(wire) < 12:
        return "bad"
    qdcount = int.from_bytes(wire[4:6], "big")
    if qdcount == 0:
        return "none"
    pos, out, jumps, jumped, nxt = 12, bytearray(), 0, False, None
    while True:
        if pos >= len(wire):
            return "bad"
        ln = wire[pos]
        if ln & 0xC0 == 0xC0:
            if pos + 1 >= len(wire):
                return "bad"
            target = ((ln & 0x3F) << 8) | wire[pos + 1]
            jumps += 1
            if target >= pos or jumps > 128:
                return "bad"
            if not jumped:
                nxt = pos + 2
            jumped, pos = True, target
            continue
        if ln & 0xC0:
            return "bad"
        if ln == 0:
            if len(out) + 1 > 255:
                return "bad"
            out.append(0)
            if not jumped:
                nxt = pos + 1
            break
        if len(out) + 1 + ln + 1 > 255 or ln > len(wire) - pos - 1:
            return "bad"
        out.append(ln)
        out += bytes(c + 32 if 65 <= c <= 90 else c for c in wire[pos + 1:pos + 1 + ln])
        pos += 1 + ln
    if nxt + 4 > len(wire):
        return "bad"
    return (bytes(out), int.from_bytes(wire[nxt:nxt + 2], "big"), int.from_bytes(wire[nxt + 2:nxt + 4], "big"))


def exchange_key(rec):
    msg_id, question = parse_question(rec["wire"])
    return (rec["query_address"], rec["query_port"], rec["response_address"], rec["response_port"],
            rec["socket_protocol"], msg_id, question)


def exchange_of(rec):
    """(exchange, question): the exchange is both endpoints, transport and ID."""
    key = exchange_key(rec)
    return key[:-1], key[-1]


class ExpiryClock:
    """src/pipeline/expiry_clock.h, re-implemented: the clock every timer runs
    on. Moves by plausible forward steps of packet time only; a jump beyond
    max_jump_ns either way is a discontinuity (a stray record, when the next
    packet is back near the previous frame)."""

    def __init__(self, max_jump_ns=None):
        self.max_jump = DEFAULT_MAX_TIME_JUMP_NS if max_jump_ns is None else max_jump_ns
        self.now, self.mark, self.prev, self.started, self.discontinuities = 0, 0, None, False, 0

    def _near(self, t, mark):
        return abs(t - mark) <= self.max_jump

    def _step(self, t):
        if t > self.mark:
            self.now += t - self.mark
            self.mark = t

    def advance(self, t):
        if not self.started:
            self.started, self.mark = True, t
        elif self._near(t, self.mark):
            self._step(t)
            self.prev = None
        elif self.prev is not None and self._near(t, self.prev):
            self.mark, self.prev = self.prev, None
            self._step(t)
        else:
            self.discontinuities += 1
            if self.prev is None:
                self.prev = self.mark
            self.mark = t
        return self.now


def frame_times(pcap):
    """[ns] per frame of a pcap or pcapng file, in file order (a Simple Packet
    Block gets the previous packet's time, as sidetap's reader gives it), read
    directly from the file: every frame, not only those tshark is asked
    about, moves sidetap's expiry clock."""
    import struct
    with open(pcap, "rb") as fh:
        data = fh.read()
    out = []
    if len(data) < 24:
        return out
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = "<" if magic[0] in (0xd4, 0x4d) else ">"
        scale = 1 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1000
        pos = 24
        while pos + 16 <= len(data):
            sec, frac, incl, _ = struct.unpack_from(e + "IIII", data, pos)
            if pos + 16 + incl > len(data):
                break
            out.append(sec * 1_000_000_000 + frac * scale)
            pos += 16 + incl
        return out
    pos, e, resol, last = 0, "<", [], 0
    while pos + 12 <= len(data):
        btype = struct.unpack_from(e + "I", data, pos)[0]
        if btype == 0x0A0D0D0A:
            e = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            resol = []
        blen = struct.unpack_from(e + "I", data, pos + 4)[0]
        if blen < 12 or pos + blen > len(data):
            break
        body = data[pos + 8:pos + blen - 4]
        if btype == 1:
            units, opt = 10 ** 6, 8
            while opt + 4 <= len(body):
                code, olen = struct.unpack_from(e + "HH", body, opt)
                if code == 0:
                    break
                if code == 9 and olen >= 1:
                    r = body[opt + 4]
                    units = 2 ** (r & 0x7F) if r & 0x80 else 10 ** r
                opt += 4 + (olen + 3) // 4 * 4
            resol.append(units)
        elif btype in (6, 2):
            if btype == 6:
                ifc, hi, lo = struct.unpack_from(e + "III", body, 0)
            else:
                ifc, _, hi, lo = struct.unpack_from(e + "HHII", body, 0)
            units = resol[ifc] if ifc < len(resol) else 10 ** 6
            ticks = (hi << 32) | lo
            last = ticks // units * 1_000_000_000 + ticks % units * 1_000_000_000 // units
            out.append(last)
        elif btype == 3:
            out.append(last)
        pos += blen
    return out


def clock_by_frame(pcap, max_time_jump_ns=None):
    """{frame number: sidetap's expiry clock after that frame}."""
    clock = ExpiryClock(max_time_jump_ns)
    return {i + 1: clock.advance(t) for i, t in enumerate(frame_times(pcap))}


def with_clock(records, max_time_jump_ns=None):
    """Gives records built by hand the expiry clock of their own times, in order."""
    clock = ExpiryClock(max_time_jump_ns)
    for rec in records:
        rec["clock_ns"] = clock.advance(rec["time_ns"])
    return records


def pair(records, query_timeout_ns=DEFAULT_QUERY_TIMEOUT_NS, reorder_window_ns=DEFAULT_REORDER_WINDOW_NS,
         counters=None, max_copies=MAX_COPIES, max_queries=MAX_PENDING_QUERIES):
    """Records in completion order -> records in sidetap's output order, each
    response with "query_time_ns" (None when unpaired or when the query's time
    is later than the response's). Re-implements src/pairing/pairer.h: an
    exchange is (client, server, ports, transport, ID); the questions must be
    equal when both messages have one; every query is a pending copy timed
    out from its own time; a response takes the oldest copy it matches; a
    response with no copy waits --reorder-window for its query. Timers run on
    rec["clock_ns"] (the expiry clock; the record's time when absent).
    `counters` (a dict) gets sidetap's pairing counter names."""
    import collections
    c = counters if counters is not None else {}
    inc = lambda k, n=1: c.__setitem__(k, c.get(k, 0) + n)
    out = []
    queries = collections.OrderedDict()   # serial -> (exchange, question, time, clock); arrival order
    by_exchange = {}                      # exchange -> [serial, ...] in arrival order
    held = collections.OrderedDict()      # serial -> (exchange, question, rec, clock)
    held_bytes = [0]
    serial = [0]

    def emit(rec, qt):
        rec = dict(rec)
        if rec["is_response"]:
            if qt is not None and qt > rec["time_ns"]:
                inc("query_time_omitted")
                qt = None
            rec["query_time_ns"] = qt
        out.append(rec)

    def compatible(a, b):
        return a is None or b is None or a == b

    def drop_query(s):
        ex = queries.pop(s)[0]
        by_exchange[ex].remove(s)
        if not by_exchange[ex]:
            del by_exchange[ex]

    def release(s, qt):
        _, _, rec, _ = held.pop(s)
        held_bytes[0] -= len(rec["wire"])
        emit(rec, qt)

    def expire_queries(now):
        while queries:
            s, (_, _, _, t) = next(iter(queries.items()))
            if now < t or now - t <= query_timeout_ns:
                break
            inc("unanswered_queries")
            drop_query(s)

    def expire_held(now):
        while held:
            s, (_, _, _, t) = next(iter(held.items()))
            if now < t or now - t <= reorder_window_ns:
                break
            inc("unsolicited_responses")
            release(s, None)

    def timers(clocks):
        for t in clocks:   # the pipeline's periodic timer runs (after a packet)
            expire_queries(t)
            expire_held(t)

    def one(rec):
        now = rec.get("clock_ns", rec["time_ns"])
        if len(rec["wire"]) < 12:   # kept malformed, no ID: never paired (pipeline: no pairer call)
            emit(rec, None)
            return
        expire_queries(now)
        ex, q = exchange_of(rec)
        serial[0] += 1
        if rec["is_response"]:
            expire_held(now)
        else:
            # A held response meets its query before held ones time out.
            emit(rec, None)
            match = next((s for s, h in held.items() if h[0] == ex and compatible(h[1], q)), None)
            if match is not None:
                inc("paired")
                inc("responses_before_query")
                if q is None or held[match][1] is None:
                    inc("paired_without_question")
                release(match, rec["time_ns"])
                expire_held(now)
                return
            same = by_exchange.get(ex, [])
            if any(queries[s][1] == q for s in same):
                inc("duplicate_queries")
            if len(same) >= max_copies:
                inc("unanswered_evicted")
                drop_query(same[0])
            elif len(queries) >= max_queries:
                inc("unanswered_evicted")
                drop_query(next(iter(queries)))
            queries[serial[0]] = (ex, q, rec["time_ns"], now)
            by_exchange.setdefault(ex, []).append(serial[0])
            expire_held(now)
            return
        match = next((s for s in by_exchange.get(ex, []) if compatible(queries[s][1], q)), None)
        if match is not None:
            inc("paired")
            if q is None or queries[match][1] is None:
                inc("paired_without_question")
            qt = queries[match][2]
            drop_query(match)
            emit(rec, qt)
            return
        if reorder_window_ns == 0 or len(rec["wire"]) > MAX_HELD_BYTES:
            inc("unsolicited_responses")
            emit(rec, None)
            return
        while len(held) >= MAX_HELD_RESPONSES or held_bytes[0] + len(rec["wire"]) > MAX_HELD_BYTES:
            inc("held_responses_evicted")
            inc("unsolicited_responses")
            release(next(iter(held)), None)
        held[serial[0]] = (ex, q, rec, now)
        held_bytes[0] += len(rec["wire"])

    for rec in records:
        timers(rec.get("timer_runs", ()))
        one(rec)
        timers(rec.get("timer_runs_after", ()))
    while held:
        inc("unsolicited_responses")
        release(next(iter(held)), None)
    if queries:
        inc("unanswered_at_end", len(queries))
    return out


def messages_in_completion_order(pcap, ports=(53,), with_reasons=False, keep_malformed=False,
                                 max_time_jump_ns=None):
    """Every DNS message sidetap must decode from `pcap`, in the order they
    complete (UDP datagrams, reassembled IP datagrams, TCP messages), before
    pairing; each with "clock_ns", sidetap's expiry clock after its packet
    (over every frame of the file)."""
    packets = tshark_packets(pcap, ports=ports)
    out, reasons = [], {}
    last_time = None
    clocks = clock_by_frame(pcap, max_time_jump_ns)
    for layers in packets:
        netinfo, _ = _network(layers)
        if is_tunnelled(layers):
            recs, whys = classify_innermost(layers, ports, keep_malformed)
        elif netinfo is not None and netinfo[1] == "tcp":
            recs, whys = classify_tcp(layers, ports, keep_malformed)
        else:
            rec, why = classify_udp(layers, ports, pcap, keep_malformed)
            recs, whys = ([rec] if rec else []), [why]
        if "frame.time_epoch" in layers["frame"]:
            last_time = epoch_to_ns(layers["frame"]["frame.time_epoch"])
        now = clocks.get(int(layers["frame"]["frame.number"]), 0)
        for rec in recs:
            rec["clock_ns"] = now
            if rec["time_ns"] is None:
                rec["time_ns"] = last_time
        for why in whys:
            reasons[why] = reasons.get(why, 0) + 1
        out += recs
    annotate_timer_runs(out, clocks)
    return (out, reasons) if with_reasons else out


TIMER_INTERVAL_NS = 100_000_000   # src/pipeline/pipeline.cpp kTimerIntervalNs


def annotate_timer_runs(records, clocks):
    """The pipeline runs every timer after a packet when its clock has moved
    TIMER_INTERVAL_NS since the last run: records get "timer_runs", the clocks
    of the runs after earlier frames, the last one "timer_runs_after"."""
    runs, last = [], 0
    for frame in sorted(clocks):
        if clocks[frame] >= last + TIMER_INTERVAL_NS:
            last = clocks[frame]
            runs.append((frame, last))
    i = 0
    for rec in records:
        rec.pop("timer_runs_after", None)
        rec["timer_runs"] = []
        while i < len(runs) and runs[i][0] < rec["frame"]:
            rec["timer_runs"].append(runs[i][1])
            i += 1
    if records:
        records[-1]["timer_runs_after"] = [c for _, c in runs[i:]]


def _type(rec, role, ports, upstream_ports):
    if role == "auth":
        kind = "AUTH"
    elif role == "resolver" and rec["response_port"] not in ports:
        kind = "RESOLVER"
    else:
        kind = "CLIENT"
    return kind + ("_RESPONSE" if rec["is_response"] else "_QUERY")


def expected_messages(pcap, ports=(53,), role="client", with_reasons=False, query_timeout_ns=None,
                      reorder_window_ns=None, counters=None, upstream_ports=(53,), keep_malformed=False,
                      max_time_jump_ns=None):
    """The dnstap records sidetap must write for `pcap`, in order."""
    dns_ports = tuple(ports) + (tuple(upstream_ports) if role == "resolver" else ())
    recs, reasons = messages_in_completion_order(pcap, dns_ports, with_reasons=True, keep_malformed=keep_malformed,
                                                 max_time_jump_ns=max_time_jump_ns)
    return finish_expected(recs, reasons if with_reasons else None, ports, role, query_timeout_ns,
                           reorder_window_ns, counters, upstream_ports)


def finish_expected(recs, reasons=None, ports=(53,), role="client", query_timeout_ns=None, reorder_window_ns=None,
                    counters=None, upstream_ports=(53,)):
    out = pair(recs, DEFAULT_QUERY_TIMEOUT_NS if query_timeout_ns is None else query_timeout_ns,
               DEFAULT_REORDER_WINDOW_NS if reorder_window_ns is None else reorder_window_ns, counters)
    for rec in out:
        rec["type"] = _type(rec, role, ports, upstream_ports)
    return (out, reasons) if reasons is not None else out


# ---------------------------------------------------------------------------
# Many files at once: one tshark over all of them (mergecap -a), except files
# whose TCP connections or fragmented datagrams share a key with another
# file's (tshark would reassemble across the files): those get their own run.
# ---------------------------------------------------------------------------
def _frame_keys(layers):
    keys = set()
    netinfo, _ = _network(layers)
    ip = layers.get("ip") if isinstance(layers.get("ip"), dict) else None
    if ip is not None and _is_fragment(layers, "ip") or _find(layers.get("ip", {}), "ip.fragments") is not None:
        keys.add(("frag4", _find(ip, "ip.src"), _find(ip, "ip.dst"), _find(ip, "ip.id")))
    v6 = layers.get("ipv6") if isinstance(layers.get("ipv6"), dict) else None
    if v6 is not None and _find(v6, "ipv6.fraghdr") is not None:
        keys.add(("frag6", _find(v6, "ipv6.src"), _find(v6, "ipv6.dst"), _find(v6, "ipv6.fraghdr.ident")))
    for inner in layers.get("ip#all", [])[1:]:  # tunnelled datagrams reassembled by tshark
        if isinstance(inner, dict) and (_find(inner, "ip.fragments") is not None or
                                        _find(inner, "ip.flags.mf") == "1" or _find(inner, "ip.frag_offset") not in (None, "0")):
            keys.add(("frag4", _find(inner, "ip.src"), _find(inner, "ip.dst"), _find(inner, "ip.id")))
    for inner in layers.get("ipv6#all", [])[1:]:
        if isinstance(inner, dict) and _find(inner, "ipv6.fraghdr") is not None:
            keys.add(("frag6", _find(inner, "ipv6.src"), _find(inner, "ipv6.dst"), _find(inner, "ipv6.fraghdr.ident")))
    if netinfo is not None and netinfo[1] == "tcp" and isinstance(layers.get("tcp"), dict):
        a = (netinfo[3], layers["tcp"].get("tcp.srcport"))
        b = (netinfo[4], layers["tcp"].get("tcp.dstport"))
        keys.add(("tcp",) + tuple(sorted([a, b])))
    return keys


def messages_for_files(files, ports=(53,), with_reasons=False):
    """{file: messages in completion order} (see messages_in_completion_order),
    with as few tshark runs as possible."""
    files = list(dict.fromkeys(files))  # once each, in order
    todo = [f for f in files if _cache_key(f, ports) not in _CACHE]
    counts = subprocess.run(["capinfos", "-c", "-M", "-T", "-r", *todo], capture_output=True,
                            text=True).stdout if todo else ""
    npackets = {}
    for line in counts.splitlines():
        name, _, n = line.rpartition("\t")
        if n.isdigit():
            npackets[name] = int(n)
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        # pcapng files of our own are not merged: mergecap rewrites odd time
        # resolutions (multi-interface.pcapng's 2^-20) and loses precision.
        _prefetch_merged([f for f in todo if f in npackets and not (
            f.endswith(".pcapng") and os.path.abspath(f).startswith(tl.OWN_PCAPS + os.sep))], npackets, ports, tmp)
    return {f: messages_in_completion_order(f, ports, with_reasons=with_reasons) for f in files}


def _prefetch_merged(files, npackets, ports, tmp):
    """Fills _CACHE for `files` from one tshark run over their mergecap -a
    concatenation; a group mergecap refuses (e.g. a pcapng with two
    sections) is split in halves, down to single files (left to the caller)."""
    import bisect
    if len(files) < 2:
        return
    merged = os.path.join(tmp, "all-%d.pcapng" % len(os.listdir(tmp)))
    m = subprocess.run(["mergecap", "-a", "-F", "pcapng", "-w", merged, *files], capture_output=True, text=True)
    if m.returncode != 0:
        half = len(files) // 2
        _prefetch_merged(files[:half], npackets, ports, tmp)
        _prefetch_merged(files[half:], npackets, ports, tmp)
        return
    packets = _tshark_packets(merged, FEATURES["ip_fragment_reassembly"], ports)
    os.unlink(merged)
    bounds, first = [], 1
    for f in files:
        bounds.append((first, f))
        first += npackets[f]
    starts = [b[0] for b in bounds]
    per_file = {f: [] for f in files}
    owners = {}
    for layers in packets:
        n = int(layers["frame"]["frame.number"])
        f = bounds[bisect.bisect_right(starts, n) - 1][1]
        per_file[f].append(layers)
        for k in _frame_keys(layers):
            owners.setdefault(k, set()).add(f)
    shared = set()
    _STATS["merged_files"] = _STATS.get("merged_files", 0) + len(files)
    for fs in owners.values():
        if len(fs) > 1:
            shared |= fs   # tshark may have reassembled across these files: own runs
    for lo, f in bounds:
        if f in shared:
            continue
        for layers in per_file[f]:  # back to the file's own frame numbers
            layers["frame"]["frame.number"] = str(int(layers["frame"]["frame.number"]) - lo + 1)
        _CACHE[_cache_key(f, ports)] = per_file[f]


# ---------------------------------------------------------------------------
# Comparing sidetap's output (tl.read_dnstap_file) with the oracle.
# ---------------------------------------------------------------------------
def actual_view(d):
    """Reduce one decoded dnstap record to the oracle's keys."""
    resp = d.get("type", "").endswith("_RESPONSE")
    v = {"type": d.get("type"), "socket_family": d.get("socket_family"),
         "socket_protocol": d.get("socket_protocol"),
         "query_address": d.get("query_address"), "response_address": d.get("response_address"),
         "query_port": d.get("query_port"), "response_port": d.get("response_port"),
         "time_ns": d.get("response_time_ns") if resp else d.get("query_time_ns"),
         "wire": d.get("response_message") if resp else d.get("query_message")}
    if resp:
        v["query_time_ns"] = d.get("query_time_ns")  # the paired query's time, absent when unpaired
    return v


def expected_view(e):
    v = {k: e[k] for k in ("type", "socket_family", "socket_protocol", "query_address",
                           "response_address", "query_port", "response_port", "time_ns", "wire")}
    if e["type"].endswith("_RESPONSE"):
        v["query_time_ns"] = e.get("query_time_ns")
    return v


def compare(tc, expected, actual, label=""):
    """Exact, ordered comparison with a readable first difference."""
    exp = [expected_view(e) for e in expected]
    act = [actual_view(a) for a in actual]
    for i, (e, a) in enumerate(zip(exp, act)):
        if e != a:
            diff = {k: (e.get(k), a.get(k)) for k in set(e) | set(a) if e.get(k) != a.get(k)}
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
# Tunnels: the INNERMOST IP/UDP/TCP layers of each frame.
#
# classify_udp/classify_tcp read the first occurrence of every layer (the
# outer headers). For tunnelled traffic (GRE, ERSPAN, VXLAN, Geneve, GTP-U,
# IP-in-IP ...) tshark decodes the tunnel natively (standard ports; `-d
# udp.port==N,vxlan` only for others) and the DNS message is in the last
# UDP/TCP layer of the frame, with the addresses of the last IP layer before
# it. tshark reassembles outer and inner IP fragments itself, so a UDP
# payload is its udp.payload field, at the frame that completes the datagram.
# ---------------------------------------------------------------------------
TUNNEL_PROTOCOLS = {"gre", "erspan", "vxlan", "geneve", "gtp"}


def _nth(layers, name, protos, upto):
    """The layer object of the occurrence of `name` at protos[upto]."""
    k = protos[:upto].count(name)
    objs = layers.get(name + "#all", [])
    return objs[k] if k < len(objs) and isinstance(objs[k], dict) else None


def _ip_headers(layers, protos):
    """Indexes in `protos` of real IP headers. tshark's "ip" layer also wraps
    an IPv6 packet under an IPv4-only link type (version 6): not a header of
    its own."""
    out = []
    for i, p in enumerate(protos):
        if p == "ipv6" or (p == "ip" and str(_find(_nth(layers, "ip", protos, i) or {}, "ip.version")) == "4"):
            out.append(i)
    return out


def is_tunnelled(layers):
    protos = layers["frame"].get("frame.protocols", "").split(":")
    if {"icmp", "icmpv6"} & set(protos):
        return False  # an ICMP error quoting a datagram is not a tunnel (sidetap: not_udp_tcp)
    return bool(TUNNEL_PROTOCOLS & set(protos)) or len(_ip_headers(layers, protos)) > 1


def classify_innermost(layers, ports=(53,), keep_malformed=False):
    """One tshark frame -> ([records], [reasons]) from its innermost IP and
    UDP/TCP layers; records get "depth" (IP headers before the innermost)."""
    finfo = layers["frame"]
    protos = finfo.get("frame.protocols", "").split(":")
    t_idx = max((i for i, p in enumerate(protos) if p in ("udp", "tcp")), default=None)
    if t_idx is None:
        return [], ["no_udp_tcp"]
    if {"icmp", "icmpv6"} & set(protos[:t_idx]):
        return [], ["icmp_quote"]
    heads = [i for i in _ip_headers(layers, protos) if i < t_idx]
    if not heads:
        return [], ["no_ip"]
    n_idx = heads[-1]
    net, transport = protos[n_idx], protos[t_idx]
    ipl, tl_ = _nth(layers, net, protos, n_idx), _nth(layers, transport, protos, t_idx)
    if ipl is None or tl_ is None:
        return [], ["tshark_layer_missing"]
    family = "INET" if net == "ip" else "INET6"
    src, dst = str(_find(ipl, net + ".src")), str(_find(ipl, net + ".dst"))
    t_ns = epoch_to_ns(finfo["frame.time_epoch"]) if "frame.time_epoch" in finfo else None
    frame_no = int(finfo["frame.number"])
    sport, dport = int(tl_[transport + ".srcport"]), int(tl_[transport + ".dstport"])
    if transport == "udp":
        udp_len = int(tl_["udp.length"])
        payload = bytes.fromhex(str(tl_.get("udp.payload", "")).replace(":", ""))
        if udp_len < 8 or len(payload) < udp_len - 8:
            return [], ["ip_snapped"]  # the inner packet was cut short: sidetap counts ip_snapped
        wires = [payload[:udp_len - 8]]
    else:
        if dport not in ports and sport not in ports:
            return [], ["not_dns_port"]
        # One entry per DNS PDU this frame completes (in a tunnelled frame
        # only the innermost TCP carries DNS).
        wires = []
        for raw in layers.get("dns_raw#all", []):
            pdu = bytes.fromhex(raw[0])
            n = int.from_bytes(pdu[:2], "big")
            if n >= 12 and len(pdu) >= 2 + n:
                wires.append(pdu[2:2 + n])
        if not wires:
            return [], ["tcp_no_dns_message"]
    recs, reasons = [], []
    for wire in wires:
        is_response, reason = _direction(sport, dport, wire, ports, keep_malformed)
        if reason:
            reasons.append(reason)
            continue
        rec = _record(family, "UDP" if transport == "udp" else "TCP", src, dst, sport, dport, is_response,
                      t_ns, wire, frame_no)
        rec["depth"] = sum(1 for i in _ip_headers(layers, protos) if i < n_idx)
        recs.append(rec)
        reasons.append("ok")
    return recs, reasons


def innermost_messages(pcap, ports=(53,), with_reasons=False):
    """Every DNS message of `pcap` from the innermost layers of every frame
    (tunnelled or not), in completion order, before pairing."""
    out, reasons = [], {}
    for layers in tshark_packets(pcap, ports=ports):
        recs, whys = classify_innermost(layers, ports)
        out += recs
        for why in whys:
            reasons[why] = reasons.get(why, 0) + 1
    return (out, reasons) if with_reasons else out


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
    """A public capture (tests/data/public*/) by file name."""
    return tl.public_capture(name)


def readme_counts():
    """pcaps/README.md table -> {file: (queries, responses)}."""
    counts = {}
    path = os.path.join(tl.OWN_PCAPS, "README.md")
    if not os.path.exists(path):
        return counts
    header = None
    with open(path, encoding="utf-8") as fh:
        lines = fh.readlines()
    for line in lines:
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
