#!/usr/bin/env python3
"""Root test: `sidetap read` and `sidetap listen` against the dnstap of four real servers.

Everything runs in one private network namespace (loopback only, no route out); the resolvers
forward/stub only to the knotd inside it. Servers and addresses: see servers.py.

Part 1 -- native dnstap files, made by the servers themselves, read by sidetap and by
golang-dnstap (`dnstap` 0.4.0):
    knot.dnstap     Knot 3.2 authoritative, mod-dnstap to a file (AQ/AR)
    unbound.dnstap  Unbound 1.17 forwarding to Knot, dnstap-socket-path -> fstrm_capture
                    (CQ/CR + FQ/FR)
    bind.dnstap     BIND 9.18, `dnstap { all; }; dnstap-output file`, forward zone to Knot and
                    a primary zone (CQ/CR, RQ/RR, and AQ/AR for an RD=0 query)
    kresd.dnstap    Knot Resolver 5.6, dnstap module socket_path -> fstrm_capture (CQ/CR)
  Each answers the same small kdig workload (UDP and TCP, IPv4 and IPv6, NOERROR, NODATA,
  NXDOMAIN; servers.workload). Checks per file:
    * the server logged what the workload did: one client query and one response per kdig
      query, with its protocol, family, server address, DNS ID, qname, qtype and rcode
      (independent decoder sidetap_testlib.read_dnstap_file); resolvers' upstream messages
      exist for every forwarded name;
    * `sidetap read --format json|yaml|text FILE` and `dnstap -r FILE -j|-y|-q` give the same
      number of records, and the same records field by field: every key, in the same order,
      with the same value text (type, identity, version, times with their precision and zone,
      family, protocol, addresses, ports, query_zone); only the DNS message text may differ
      in layout (ldns vs miekg/dns), and there the ";; opcode: .., status: .., id: .." and
      ";; flags: ..; QUERY: .." lines must be equal. Quiet text is local time, so it is run
      under TZ=UTC and TZ=Asia/Tokyo (and must differ by 9 h between the two). JSON and YAML
      times are also checked against the decoder's nanoseconds.

Part 2 -- real servers as Frame Streams writers into `sidetap listen -u PATH -w FILE -v`:
    knotd  (a second instance, mod-dnstap sink "unix:PATH" AND a second mod-dnstap to a file;
            the two instances stamp their own times, µs apart, everything else is identical)
    kresd  (dnstap socket_path = PATH; sidetap listen must be up before kresd loads its config)
    unbound (dnstap-socket-path: PATH; wait 1.5 s after the last query: on SIGTERM Unbound
            drops what is still queued)
  After the workload the server is stopped (SIGTERM: it drains, sends STOP and waits for
  FINISH -- except Unbound 1.17, which closes right after STOP, so sidetap logs "FINISH not
  delivered: Broken pipe"; accepted),
  then sidetap listen (SIGTERM, exit 0). The file must be a complete Frame Streams file (START
  ... STOP) holding every message: for n kdig queries exactly the expected CQ/CR or AQ/AR with
  the right qnames/ids; for knotd the frames equal those of its own file sink; for
  kresd and unbound the client-side messages equal those fstrm_capture got in part 1 (same
  workload with another name tag). sidetap listen must log the STOP of the writer's session.
  The listen outputs also go through the part-1 read/dnstap comparison.

If `sidetap listen` (or anything else) is missing, the test FAILS; it never skips.
Options: --keep (keep the work directory on success).
"""
import argparse
import calendar
import json
import os
import re
import signal
import sys
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import netns  # noqa: E402
import servers as S  # noqa: E402
from sidetap_testlib import decode_dnstap, read_dnstap_file, read_frames, run, sidetap_arg  # noqa: E402

TEST = "root.test_read_listen_servers"
UNBOUND_QUEUE_WAIT_S = 1.5
CLIENT_TYPES = {"C": ("CLIENT_QUERY", "CLIENT_RESPONSE"), "A": ("AUTH_QUERY", "AUTH_RESPONSE")}
UPSTREAM_TYPES = {"FORWARDER_QUERY", "FORWARDER_RESPONSE", "RESOLVER_QUERY",
                  "RESOLVER_RESPONSE"}


def report(title, problems):
    print(f"--- {title}: {'OK' if not problems else f'{len(problems)} problem(s)'}", flush=True)
    for p in problems[:25]:
        print(f"    {p}", flush=True)
    if len(problems) > 25:
        print(f"    ... and {len(problems) - 25} more", flush=True)


def type_counts(msgs):
    return dict(sorted(Counter(m["type"] for m in msgs).items()))


# ----------------------------------------------------------------------------- workload checks

def check_client_side(name, msgs, queries, server, exact=True):
    """Every kdig query has its query message and its response message in `msgs` (types by
    the query's RD bit and the server: CQ/CR, or AQ/AR for Knot and for BIND's RD=0 query);
    with exact, there are no other messages of those types."""
    a4, a6 = S.ADDR[server]
    problems = []
    used = set()
    want = Counter()
    for q in queries:
        if q.id is None:
            problems.append(f"{name}: no answer to {q}, cannot check it")
            continue
        kind = "A" if server.startswith("knot") or not q.rd else "C"
        qt, rt = CLIENT_TYPES[kind]
        want[qt] += 1
        want[rt] += 1
        addr = a4 if q.family == "INET" else a6
        for t, field, rcode in ((qt, "query_message", None), (rt, "response_message", q.status)):
            hit = None
            for i, m in enumerate(msgs):
                if i in used or m["type"] != t:
                    continue
                wq = S.wire_question(m.get(field))
                if not wq or wq[:3] != (q.id, q.qname.lower() + ".", q.qtype):
                    continue
                if rcode and wq[3] != rcode:
                    continue
                hit = i
                break
            if hit is None:
                problems.append(f"{name}: no {t} with {field} id={q.id} {q.qname} {q.qtype}"
                                f"{' ' + rcode if rcode else ''}")
                continue
            used.add(hit)
            m = msgs[hit]
            got = (m.get("socket_protocol"), m.get("socket_family"), m.get("response_address"))
            if got != (q.proto, q.family, addr):
                problems.append(f"{name}: {t} for {q.qname}: protocol/family/server {got}, "
                                f"expected {(q.proto, q.family, addr)}")
            if not m.get("query_port") or m.get("response_port") != 53:
                problems.append(f"{name}: {t} for {q.qname}: ports {m.get('query_port')} -> "
                                f"{m.get('response_port')}")
    if exact:
        have = Counter(m["type"] for m in msgs if m["type"] in want)
        for t in want:
            if have[t] != want[t]:
                problems.append(f"{name}: {have[t]} {t}, expected {want[t]} (one per query)")
    return problems


def check_upstream(name, msgs, queries):
    """A resolver's upstream side: for every query, a *_QUERY and a *_RESPONSE upstream with
    that name and type (retransmissions may add more), with query_zone set."""
    problems = []
    ups = [m for m in msgs if m["type"] in UPSTREAM_TYPES]
    for q in queries:
        for suffix, field in (("_QUERY", "query_message"), ("_RESPONSE", "response_message")):
            ok = [m for m in ups if m["type"].endswith(suffix)
                  and (S.wire_question(m.get(field)) or (0, "", ""))[1:3]
                  == (q.qname.lower() + ".", q.qtype)]
            if not ok:
                problems.append(f"{name}: no upstream *{suffix} for {q.qname} {q.qtype}")
    if ups and not all(m.get("query_zone") for m in ups):
        problems.append(f"{name}: upstream messages without query_zone")
    return problems


def client_signatures(msgs, tag):
    """(type, family, protocol, qname with the run's tag removed, qtype, rcode) of the
    client-side messages: two runs of the same workload must give the same multiset."""
    out = Counter()
    for m in msgs:
        if m["type"] in UPSTREAM_TYPES:
            continue
        w = m.get("query_message") or m.get("response_message")
        wq = S.wire_question(w)
        qn = wq[1].replace(tag, "TAG", 1) if wq else None
        rc = wq[3] if wq and m["type"].endswith("RESPONSE") else None
        out[(m["type"], m.get("socket_family"), m.get("socket_protocol"), qn,
             wq[2] if wq else None, rc)] += 1
    return out


# ----------------------------------------------------------------------------- read vs dnstap

HDR_RX = re.compile(r"^;; opcode: .*$", re.M)
FLAGS_RX = re.compile(r"^;; flags:.*$", re.M)


def msg_key(text):
    """What must agree between ldns' and miekg/dns' renderings of one DNS message."""
    h = HDR_RX.search(text or "")
    f = FLAGS_RX.search(text or "")
    return (h.group(0).strip() if h else None, " ".join(f.group(0).split()) if f else None)


def rfc3339_ns(s):
    """'2026-11-21T23:37:08.391553Z' or '2026-11-21 23:37:08.391553' -> ns since the epoch."""
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z?", s)
    if not m:
        raise ValueError(f"bad time {s!r}")
    y, mo, d, h, mi, se = (int(x) for x in m.groups()[:6])
    frac = m.group(7) or ""
    if frac.endswith("0"):
        raise ValueError(f"time {s!r}: trailing zero not trimmed")
    return calendar.timegm((y, mo, d, h, mi, se)) * 1_000_000_000 + int((frac + "0" * 9)[:9])


def run_both(sidetap, path, fmt, tz):
    env = dict(os.environ, TZ=tz)
    flag = {"json": "-j", "yaml": "-y", "text": "-q"}[fmt]
    a = run([sidetap, "read", "--format", fmt, path], check=False, env=env, timeout=60)
    b = run(["dnstap", "-r", path, flag], check=False, env=env, timeout=60)
    problems = []
    if a.returncode != 0:
        problems.append(f"sidetap read --format {fmt} {path} exited {a.returncode}: "
                        f"{a.stderr[-500:]}")
    if b.returncode != 0:
        problems.append(f"dnstap -r {path} {flag} exited {b.returncode}: {b.stderr[-500:]}")
    return a.stdout, b.stdout, problems


def compare_time(label, text, want_ns, problems):
    if want_ns is None:
        problems.append(f"{label}: time {text!r} shown but absent from the frame")
        return
    try:
        got = rfc3339_ns(text)
    except ValueError as e:
        problems.append(f"{label}: {e}")
        return
    if got != want_ns:
        problems.append(f"{label}: time {text} = {got} ns, the frame has {want_ns} ns")


def compare_json(sidetap, path, decoded):
    sa, da, problems = run_both(sidetap, path, "json", "UTC")
    sl = [l for l in sa.splitlines() if l.strip()]
    dl = [l for l in da.splitlines() if l.strip()]
    if len(sl) != len(dl) or len(dl) != len(decoded):
        problems.append(f"json: sidetap {len(sl)} records, dnstap {len(dl)}, file {len(decoded)}")
    same_text = 0
    for i, (x, y) in enumerate(zip(sl, dl)):
        try:
            jx, jy = json.loads(x), json.loads(y)
        except ValueError as e:
            problems.append(f"json record {i}: not JSON ({e}): {x[:200]}")
            continue
        if list(jx) != list(jy):
            problems.append(f"json record {i}: top-level keys {list(jx)} vs dnstap {list(jy)}")
        for k in jy:
            if k != "message" and jx.get(k) != jy[k]:
                problems.append(f"json record {i}: {k} {jx.get(k)!r} vs dnstap {jy[k]!r}")
        mx, my = jx.get("message", {}), jy.get("message", {})
        if list(mx) != list(my):
            problems.append(f"json record {i}: message keys {list(mx)} vs dnstap {list(my)}")
        for k in my:
            if k.endswith("_message"):
                if msg_key(mx.get(k)) != msg_key(my[k]) or msg_key(my[k])[0] is None:
                    problems.append(f"json record {i}: {k} header {msg_key(mx.get(k))} vs "
                                    f"dnstap {msg_key(my[k])}")
                same_text += mx.get(k) == my[k]
            elif mx.get(k) != my[k]:
                problems.append(f"json record {i}: message.{k} {mx.get(k)!r} vs dnstap {my[k]!r}")
        if i < len(decoded):
            d = decoded[i]
            for k in ("query_time", "response_time"):
                if k in mx:
                    compare_time(f"json record {i} {k}", mx[k], d.get(k + "_ns"), problems)
                elif d.get(k + "_ns") is not None:
                    problems.append(f"json record {i}: {k} missing")
            for k in ("type", "query_address", "response_address", "query_port",
                      "response_port", "socket_family", "socket_protocol"):
                if mx.get(k) != d.get(k) and not (k.endswith("port") and not d.get(k)):
                    problems.append(f"json record {i}: {k} {mx.get(k)!r}, the frame has "
                                    f"{d.get(k)!r}")
            if jx.get("identity") != (d.get("identity") or b"").decode() and "identity" in d:
                problems.append(f"json record {i}: identity {jx.get('identity')!r}")
    return problems, len(sl), same_text


def parse_yaml_records(text):
    """golang-dnstap's YAML -> [(top keys [(k, raw)], message keys [(k, raw or block)])]."""
    recs = []
    for chunk in text.split("\n---\n"):
        if not chunk.strip():
            continue
        top, msg, block = [], [], None
        for line in chunk.splitlines():
            if line.startswith("    ") and block is not None:
                block.append(line[4:])
                continue
            block = None
            if line.startswith("  "):
                k, _, v = line[2:].partition(":")
                v = v[1:] if v.startswith(" ") else v
                if v == "|":
                    block = []
                    msg.append((k, block))
                else:
                    msg.append((k, v))
            elif line.strip():
                k, _, v = line.partition(":")
                top.append((k, v[1:] if v.startswith(" ") else v))
        recs.append((top, [(k, "\n".join(v) if isinstance(v, list) else v) for k, v in msg]))
    return recs


def compare_yaml(sidetap, path, decoded):
    sa, da, problems = run_both(sidetap, path, "yaml", "Asia/Tokyo")   # YAML is UTC anyway
    if not da.rstrip().endswith("---"):
        problems.append("dnstap -y output does not end with ---")
    if sa.rstrip().split("\n")[-1:] != da.rstrip().split("\n")[-1:]:
        problems.append(f"yaml: last line {sa.rstrip()[-40:]!r} vs dnstap {da.rstrip()[-40:]!r}")
    sr, dr = parse_yaml_records(sa), parse_yaml_records(da)
    if len(sr) != len(dr) or len(dr) != len(decoded):
        problems.append(f"yaml: sidetap {len(sr)} records, dnstap {len(dr)}, file {len(decoded)}")
    for i, ((st, sm), (dt, dm)) in enumerate(zip(sr, dr)):
        if st != dt:
            problems.append(f"yaml record {i}: top level {st} vs dnstap {dt}")
        if [k for k, _ in sm] != [k for k, _ in dm]:
            problems.append(f"yaml record {i}: message keys {[k for k, _ in sm]} vs dnstap "
                            f"{[k for k, _ in dm]}")
        sd = dict(sm)
        for k, v in dm:
            if k.endswith("_message"):
                if msg_key(sd.get(k)) != msg_key(v) or msg_key(v)[0] is None:
                    problems.append(f"yaml record {i}: {k} header {msg_key(sd.get(k))} vs "
                                    f"dnstap {msg_key(v)}")
            elif sd.get(k) != v:
                problems.append(f"yaml record {i}: {k}: {sd.get(k)!r} vs dnstap {v!r}")
        if i < len(decoded):
            for k in ("query_time", "response_time"):
                if k in sd:
                    v = sd[k]
                    if not v.startswith("!!timestamp "):
                        problems.append(f"yaml record {i}: {k} {v!r} is not !!timestamp")
                    else:
                        compare_time(f"yaml record {i} {k}", v[len("!!timestamp "):],
                                     decoded[i].get(k + "_ns"), problems)
    return problems, len(sr)


def compare_text(sidetap, path, decoded):
    problems = []
    outs = {}
    for tz in ("UTC", "Asia/Tokyo"):
        sa, da, p = run_both(sidetap, path, "text", tz)
        problems += [f"TZ={tz}: {x}" for x in p]
        sl, dl = sa.splitlines(), da.splitlines()
        if len(sl) != len(dl) or len(dl) != len(decoded):
            problems.append(f"text TZ={tz}: sidetap {len(sl)} lines, dnstap {len(dl)}, file "
                            f"{len(decoded)}")
        for i, (x, y) in enumerate(zip(sl, dl)):
            if x != y:
                problems.append(f"text TZ={tz} line {i}: sidetap {x!r}\n"
                                f"{' ' * 27}dnstap  {y!r}")
        outs[tz] = sl
    # The zone really applied: Tokyo = UTC + 9 h; UTC time = the frame's time, truncated to µs.
    for i, (u, t) in enumerate(zip(outs["UTC"], outs["Asia/Tokyo"])):
        mu, mt = re.match(r"(\d\d):(\d\d):(\d\d)\.(\d{6}) ", u), re.match(r"(\d\d):", t)
        if not mu or not mt:
            problems.append(f"text line {i}: no time: {u!r} / {t!r}")
            continue
        if (int(mu.group(1)) + 9) % 24 != int(mt.group(1)) or u[2:] != t[2:]:
            problems.append(f"text line {i}: UTC {u[:15]} vs Asia/Tokyo {t[:15]}")
        if i < len(decoded):
            d = decoded[i]
            ns = d.get("response_time_ns" if d["type"].endswith("RESPONSE") else "query_time_ns")
            if ns is not None:
                sod = (ns // 1_000_000_000) % 86400
                want = (f"{sod // 3600:02d}:{sod // 60 % 60:02d}:{sod % 60:02d}."
                        f"{ns % 1_000_000_000 // 1000:06d}")
                if u[:15] != want:
                    problems.append(f"text line {i}: time {u[:15]}, the frame says {want} UTC")
    return problems, len(outs["UTC"])


def compare_read(sidetap, label, path):
    """Part 1 for one file: sidetap read vs dnstap in the three formats."""
    try:
        decoded = read_dnstap_file(path, require_stop=False)
    except Exception as e:    # noqa: BLE001 -- reported as a problem
        return [f"{label}: {path} unreadable by the test decoder: {e}"]
    problems = []
    pj, nj, same = compare_json(sidetap, path, decoded)
    py, ny = compare_yaml(sidetap, path, decoded)
    pt, nt = compare_text(sidetap, path, decoded)
    problems += [f"{label}: {p}" for p in pj + py + pt]
    nmsg = sum(1 for m in decoded for k in ("query_message", "response_message") if k in m)
    print(f"{label}: {len(decoded)} frames {type_counts(decoded)}; records json {nj} yaml {ny} "
          f"text {nt}; DNS text identical to miekg/dns in {same}/{nmsg} messages", flush=True)
    if not decoded:
        problems.append(f"{label}: {path} holds no frames")
    return problems


# ----------------------------------------------------------------------------- part 2: listen

class Listen:
    """sidetap listen -u SOCK -w OUT -v in the namespace."""

    def __init__(self, ns, sidetap, sock, out):
        self.sock, self.out = sock, out
        self.proc = ns.spawn([sidetap, "listen", "-u", sock, "-w", out, "-v"],
                             name="sidetap-listen")
        self.proc.wait_for_line(r"listening on", 10)
        S.wait_for_path(sock, self.proc)

    def wait_session(self, timeout=15.0):
        S.wait_writer_connected(self.proc, r"session started", 1, timeout)

    def stop(self):
        problems = []
        rc = self.proc.stop(signal.SIGTERM, timeout=15)
        if rc != 0:
            problems.append(f"sidetap listen exited {rc} on SIGTERM\n{self.proc.text()[-2000:]}")
        text = self.proc.text()
        # Unbound 1.17 sends STOP and closes without reading FINISH: sidetap logs
        # "STOP (FINISH not delivered: Broken pipe)"; that still is a clean end of session.
        if not re.search(r": STOP[ (].*\(\d+ frames\)", text):
            problems.append(f"sidetap listen did not log the writer's STOP\n{text[-2000:]}")
        m = re.search(r"closed_without_stop=(\d+)", text)
        if m and int(m.group(1)):
            problems.append(f"sidetap listen: closed_without_stop={m.group(1)}")
        if os.path.exists(self.sock):
            problems.append(f"sidetap listen left its socket {self.sock}")
        return problems


def read_listen_output(label, path):
    try:
        return read_dnstap_file(path, require_stop=True), []
    except Exception as e:    # noqa: BLE001
        return None, [f"{label}: {path} is not a complete dnstap file: {e}"]


def listen_knot(ns, sidetap, w):
    """knotd with two mod-dnstap instances: unix:SOCK (sidetap listen) and a file."""
    d = os.path.join(w, "knot2")
    sock, out, own = os.path.join(w, "listen-knot.sock"), os.path.join(w, "listen-knot.dnstap"), \
        os.path.join(w, "knot2-own.dnstap")
    li = Listen(ns, sidetap, sock, out)
    knotd = S.start_knot(ns, d, "knot2", [("sock", f"unix:{sock}"), ("file", own)],
                         "sidetap-rl-knot2", "knot-3.2")
    li.wait_session()
    qs = S.workload("knotl")
    problems = S.run_workload(ns, "knot2", qs)
    p = S.stop_checked(knotd)
    problems += [p] if p else []
    problems += li.stop()
    msgs, p = read_listen_output("listen knot", out)
    problems += p
    if msgs is not None:
        print(f"listen knot: {len(msgs)} messages {type_counts(msgs)}", flush=True)
        problems += check_client_side("listen knot", msgs, qs, "knot2")
        if len(msgs) != 2 * len(qs):
            problems.append(f"listen knot: {len(msgs)} messages, expected {2 * len(qs)}")
        # Each mod-dnstap instance takes its own clock reading (µs apart); everything else,
        # DNS bytes included, must be identical, in the same order.
        _, got, _ = read_frames(out)
        _, want, _ = read_frames(own)
        if len(got) != len(want):
            problems.append(f"listen knot: {len(got)} frames, knotd's own file sink has "
                            f"{len(want)}")
        for i, (x, y) in enumerate(zip(got, want)):
            dx, dy = decode_dnstap(x), decode_dnstap(y)
            for k in set(dx) | set(dy):
                if k.endswith("_time_ns") and dx.get(k) and dy.get(k):
                    if abs(dx[k] - dy[k]) > 100_000_000:
                        problems.append(f"listen knot frame {i}: {k} {dx[k]} vs {dy[k]} in "
                                        f"knotd's file")
                elif dx.get(k) != dy.get(k):
                    problems.append(f"listen knot frame {i}: {k} {dx.get(k)!r} vs "
                                    f"{dy.get(k)!r} in knotd's file")
    return problems, out


def listen_resolver(ns, sidetap, w, server, tag, ref_msgs, ref_tag):
    sock, out = os.path.join(w, f"listen-{server}.sock"), os.path.join(w, f"listen-{server}.dnstap")
    li = Listen(ns, sidetap, sock, out)
    if server == "kresd":
        srv = S.start_kresd(ns, os.path.join(w, "kresd2"), sock, "sidetap-rl-kresd", "kresd-5.6")
    else:
        srv = S.start_unbound(ns, os.path.join(w, "unbound2"), sock, "sidetap-rl-unbound",
                              "unbound-1.17")
    li.wait_session()
    qs = S.workload(tag)
    problems = S.run_workload(ns, server, qs)
    if server == "unbound":
        time.sleep(UNBOUND_QUEUE_WAIT_S)
    p = S.stop_checked(srv)
    problems += [p] if p else []
    problems += li.stop()
    msgs, p = read_listen_output(f"listen {server}", out)
    problems += p
    if msgs is not None:
        print(f"listen {server}: {len(msgs)} messages {type_counts(msgs)}", flush=True)
        problems += check_client_side(f"listen {server}", msgs, qs, server)
        if server == "unbound":
            problems += check_upstream(f"listen {server}", msgs, qs)
        elif len(msgs) != 2 * len(qs):
            problems.append(f"listen {server}: {len(msgs)} messages, expected {2 * len(qs)}")
        if ref_msgs is not None:
            a, b = client_signatures(msgs, tag), client_signatures(ref_msgs, ref_tag)
            if a != b:
                problems.append(f"listen {server}: client messages differ from the "
                                f"fstrm_capture run: only here {dict(a - b)}, only there "
                                f"{dict(b - a)}")
    return problems, out


# ----------------------------------------------------------------------------- main

def part1_servers(ns, w):
    """Runs Unbound, BIND and kresd (one after the other) with their native dnstap, then the
    direct workload to Knot. Returns ({label: (path, queries, server)}, problems)."""
    problems = []
    files = {}
    # Unbound -> fstrm_capture
    sock, f = os.path.join(w, "unbound.sock"), os.path.join(w, "unbound.dnstap")
    cap = S.start_fstrm_capture(ns, sock, f)
    unb = S.start_unbound(ns, os.path.join(w, "unbound"), sock, "sidetap-rl-unbound",
                          "unbound-1.17")
    S.wait_writer_connected(cap, r"accepted new connection", settle=0.2)
    qs = S.workload("unb")
    problems += S.run_workload(ns, "unbound", qs)
    time.sleep(UNBOUND_QUEUE_WAIT_S)
    p = S.stop_checked(unb)
    problems += [p] if p else []
    time.sleep(0.2)
    cap.stop()
    files["unbound"] = (f, qs, "unbound")
    # BIND 9.18 -> file
    f = os.path.join(w, "bind.dnstap")
    named = S.start_bind(ns, os.path.join(w, "bind"), f, "sidetap-rl-bind", "bind-9.18")
    qs = S.workload("bind") + [S.Query("bind-9.w.bind.test", "A", "UDP", "INET", "NOERROR",
                                       rd=False),
                               S.Query("bind-10-nx.bind.test", "TXT", "TCP", "INET6",
                                       "NXDOMAIN", rd=False)]
    problems += S.run_workload(ns, "bind", qs)
    p = S.stop_checked(named, timeout=30)
    problems += [p] if p else []
    files["bind"] = (f, qs, "bind")
    # Knot Resolver 5.6 -> fstrm_capture (the socket must exist before kresd starts)
    sock, f = os.path.join(w, "kresd.sock"), os.path.join(w, "kresd.dnstap")
    cap = S.start_fstrm_capture(ns, sock, f)
    kresd = S.start_kresd(ns, os.path.join(w, "kresd"), sock, "sidetap-rl-kresd", "kresd-5.6")
    S.wait_writer_connected(cap, r"accepted new connection", settle=0.2)
    qs = S.workload("kres")
    problems += S.run_workload(ns, "kresd", qs)
    p = S.stop_checked(kresd)
    problems += [p] if p else []
    time.sleep(0.2)
    cap.stop()
    files["kresd"] = (f, qs, "kresd")
    # Knot, directly
    qs = S.workload("knot")
    problems += S.run_workload(ns, "knot", qs)
    files["knot"] = (os.path.join(w, "knot.dnstap"), qs, "knot")
    return files, problems


def check_part1_logs(files):
    problems = []
    logs = {}
    for label, (path, qs, server) in files.items():
        try:
            msgs = read_dnstap_file(path, require_stop=True)
        except Exception as e:    # noqa: BLE001
            problems.append(f"{label}: {path}: {e}")
            logs[label] = None
            continue
        logs[label] = msgs
        print(f"{label}: native file {len(msgs)} messages {type_counts(msgs)}", flush=True)
        mine = msgs
        if label == "knot":    # Knot also logged the resolvers' upstream queries
            mine = [m for m in msgs if (S.wire_question(m.get("query_message")
                                                         or m.get("response_message"))
                                        or (0, ""))[1].startswith("knot-")]
        problems += check_client_side(label, mine, qs, server)
        if label in ("unbound", "bind"):
            problems += check_upstream(label, msgs, [q for q in qs if q.rd])
        if label == "knot":
            for tag in ("unb-", "bind-", "kres-"):
                if not any((S.wire_question(m.get("query_message")) or (0, ""))[1]
                           .startswith(tag) for m in msgs):
                    problems.append(f"knot: no query from the resolver run {tag}* reached Knot")
    return logs, problems


def main():
    sidetap = sidetap_arg()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep", action="store_true", help="keep the work directory on success")
    args = ap.parse_args()

    def body(workdir):
        problems = []
        have_listen = run([sidetap, "listen", "--help"], check=False).returncode == 0
        listen_outputs = []
        with netns.NetNS("rl") as ns:
            print(f"namespace {ns.name}, work directory {workdir}", flush=True)
            S.add_addresses(ns)
            knotd = S.start_knot(ns, os.path.join(workdir, "knot"), "knot",
                                 [("file", os.path.join(workdir, "knot.dnstap"))],
                                 "sidetap-rl-knot", "knot-3.2")
            files, p = part1_servers(ns, workdir)
            report("part 1: servers answered the workload", p)
            problems += p
            if not have_listen:
                p = ["`sidetap listen --help` failed: sidetap has no listen command; part 2 "
                     "(servers writing into sidetap listen) cannot run"]
                report("part 2: sidetap listen", p)
                problems += p
            else:
                for server in ("knot", "kresd", "unbound"):
                    try:
                        if server == "knot":
                            p, out = listen_knot(ns, sidetap, workdir)
                        else:
                            ref_msgs = None
                            try:
                                ref_msgs = read_dnstap_file(files[server][0], require_stop=False)
                            except Exception:     # noqa: BLE001 -- reported in part 1
                                pass
                            tag, ref_tag = {"kresd": ("kresl", "kres"),
                                            "unbound": ("unbl", "unb")}[server]
                            p, out = listen_resolver(ns, sidetap, workdir, server, tag,
                                                     ref_msgs, ref_tag)
                        listen_outputs.append((f"listen-{server}", out))
                    except Exception as e:    # noqa: BLE001 -- a failure, then go on
                        p = [f"{server} -> sidetap listen: {e}"]
                        for proc in list(ns.processes):     # this scenario's leftovers
                            if proc is not knotd and proc.running():
                                proc.stop()
                    report(f"part 2: {server} -> sidetap listen", p)
                    problems += p
            p = S.stop_checked(knotd)
            problems += [p] if p else []
        # Part 1 offline: the servers' own logs, then sidetap read vs dnstap.
        logs, p = check_part1_logs(files)
        report("part 1: native logs hold the workload", p)
        problems += p
        for label, (path, _, _) in list(files.items()):
            p = compare_read(sidetap, label, path)
            report(f"part 1: sidetap read vs dnstap, {label}", p)
            problems += p
        for label, path in listen_outputs:
            if os.path.exists(path):
                p = compare_read(sidetap, label, path)
                report(f"sidetap read vs dnstap, {label} output", p)
                problems += p
        return problems

    return netns.run_root_test(TEST, sidetap, ("ip", "ss", "knotd", "kdig", "unbound", "unbound-checkconf", "named",
                                               "named-checkconf", "kresd", "fstrm_capture", "dnstap"),
                               "sidetap-rl-", args.keep, body)


if __name__ == "__main__":
    sys.exit(main())
