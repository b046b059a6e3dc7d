"""DNS over TLS and DNS over HTTPS servers with native dnstap in a network namespace, the
clients that query them, and the comparison of sidetap's TLS-probe output with each server's
own dnstap (for the root tests tests/root/test_tls_*.py).

What each server's test checks (run_server_test): sidetap reads the plaintext at the server's
TLS library (capture --tls-pid) while libpcap captures UDP/TCP on lo into the same output;
its DoT/DoH messages equal the server's own (type, addresses, ports, message bytes, hence DNS
ID), over IPv4 and IPv6, with pipelined queries, a query split across TLS records, many
concurrent connections, multiplexed HTTP/2 streams (GET and POST) and answers over 16 KB;
responses carry their query's time; the UDP/TCP messages equal the native ones too.

Addresses inside one namespace (all on lo, no route out; nothing can be iterated):
    knotd (authoritative backend, example.test)   127.0.0.2   fd00:53::53   53
    unbound 1.17 (OpenSSL)                        127.0.0.1   ::1           53, DoT 853, DoH 443
    named, BIND 9.18 (OpenSSL, memory BIOs)       127.0.0.3   fd00:53::3    53, DoT 853, DoH 443
    kresd, Knot Resolver 5.6 (GnuTLS)             127.0.0.4   fd00:53::4    53, DoT 853, DoH 443
    dnsdist 1.7 (OpenSSL; DoH through h2o)        127.0.0.6   fd00:53::6    53, DoT 853, DoH 443
    a second unbound (isolation test)             127.0.0.7   fd00:53::7    DoT 853

Every resolver forwards example.test to knotd; example.test has a wildcard (*.w) and
big.example.test TXT, an answer of about 25 KB (more than one TLS record, more than one HTTP/2
DATA frame). The certificate is made with openssl in the test's directory (clients do not
verify it).

Where the native protocol field is no oracle: BIND logs DoT and DoH as TCP; Unbound logs DoT
as TCP and DoH without the field. kresd and dnsdist log DOT / DOH: for them it is compared.
"""
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from netns import NetNS, Tcpdump  # noqa: E402,F401
from sidetap_testlib import decode_dnstap, read_frames  # noqa: E402
import servers  # noqa: E402

ADDR = {
    "knot": ("127.0.0.2", "fd00:53::53"),
    "unbound": ("127.0.0.1", "::1"),
    "bind": ("127.0.0.3", "fd00:53::3"),
    "kresd": ("127.0.0.4", "fd00:53::4"),
    "dnsdist": ("127.0.0.6", "fd00:53::6"),
    "unbound2": ("127.0.0.7", "fd00:53::7"),
}
# The servers whose native dnstap says DOT / DOH (the others say TCP or nothing).
NATIVE_PROTOCOL = {"kresd", "dnsdist"}
# dnsdist 1.7 closes a DoT connection whose queries come in one TLS record (it reads one
# query and then waits on the socket, not on what the TLS library still holds): it gets its
# pipelined queries one record each.
BURST_OK = {"unbound", "bind", "kresd"}
TOOLS = ["knotd", "kdig", "openssl", "fstrm_capture", "curl", "unbound", "named", "kresd", "dnsdist"]


def add_addresses(ns):
    for name, (a4, a6) in ADDR.items():
        if a4 != "127.0.0.1":
            ns.run(["ip", "addr", "add", f"{a4}/8", "dev", "lo"])
        if a6 != "::1":
            ns.run(["ip", "-6", "addr", "add", f"{a6}/128", "dev", "lo", "nodad"])


def make_certificate(d):
    """A self-signed certificate and key (EC P-256) for every server of the namespace."""
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    sans = ",".join(["DNS:dns.test"] + [f"IP:{a}" for pair in ADDR.values() for a in pair])
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=dns.test",
                    "-addext", f"subjectAltName={sans}"], check=True, capture_output=True)
    os.chmod(key, 0o644)
    return cert, key


# ----------------------------------------------------------------------------- backend

def big_txt_records(n=100):
    return [f'big TXT "{i:03d} {"x" * 240}"' for i in range(n)]


def start_backend(ns, d):
    """knotd, authoritative for example.test (no dnstap: not under test)."""
    os.makedirs(os.path.join(d, "db"), exist_ok=True)
    k4, k6 = ADDR["knot"]
    zone = "\n".join(["$ORIGIN example.test.", "$TTL 3600", "@ SOA ns1 hostmaster 1 3600 900 604800 300",
                      "@ NS ns1", f"ns1 A {k4}", "www A 192.0.2.80", "www AAAA 2001:db8::80",
                      "*.w A 192.0.2.81", "*.w AAAA 2001:db8::81", "*.w TXT \"wildcard\""]
                     + big_txt_records()) + "\n"
    servers.write(os.path.join(d, "example.test.zone"), zone)
    conf = servers.write(os.path.join(d, "knot.conf"), f"""\
server:
    rundir: "{d}"
    listen: [ {k4}@53, {k6}@53 ]
database:
    storage: "{d}/db"
log:
  - target: stderr
    any: info
zone:
  - domain: example.test
    file: "{d}/example.test.zone"
""")
    knotd = ns.spawn(["knotd", "-c", conf], name="knotd")
    knotd.wait_for_line(r"server started", 20)
    servers.wait_listening(ns, (k4, k6), proc=knotd)
    return knotd


def wait_tls_listening(ns, addrs, ports, proc, timeout=20.0):
    deadline = time.monotonic() + timeout
    want = {f"[{a}]:{p}" if ":" in a else f"{a}:{p}" for a in addrs for p in ports}
    while True:
        out = ns.run(["ss", "-H", "-n", "-l", "-t"]).stdout
        have = {c for line in out.splitlines() for c in line.split() if c in want}
        if have == want:
            return
        if time.monotonic() > deadline or not proc.running():
            raise RuntimeError(f"{proc.name}: not listening on {sorted(want - have)}\n{proc.text()}")
        time.sleep(0.05)


# ----------------------------------------------------------------------------- servers

class Server:
    """A running DNS server with DoT and DoH, and where its native dnstap goes."""

    def __init__(self, name, proc, addrs, native_path, collector=None, settle=0.0):
        self.name, self.proc, self.addrs = name, proc, addrs
        self.native_path, self.collector = native_path, collector
        self.settle = settle  # Unbound sends its dnstap queue on a timer: wait before stopping it

    @property
    def pid(self):
        """The server process itself (ip netns exec execs it in place)."""
        return self.proc.pid

    def stop(self):
        """Stops the server (which flushes its dnstap), then its collector. Returns problems."""
        problems = []
        time.sleep(self.settle)
        rc = self.proc.stop(timeout=30)
        # dnsdist does not catch SIGTERM: it dies of it (its dnstap was sent on its timer).
        if rc not in (0, None) and not (self.name == "dnsdist" and rc == -15):
            problems.append(f"{self.name} exited {rc}\n{self.proc.text()[-3000:]}")
        if self.collector is not None:
            # The server closed its dnstap connection on exit; fstrm_capture writes
            # everything it received before exiting on SIGTERM.
            time.sleep(0.5)
            self.collector.stop()
        return problems


def start_unbound(ns, d, cert, key, name="unbound", binary="unbound", cgroup=None, exec_after=None):
    """exec_after: seconds for which the process runs a shell first (named sh), then execs
    unbound in place (same PID)."""
    a4, a6 = ADDR[name]
    k4, _ = ADDR["knot"]
    os.makedirs(d, exist_ok=True)
    sock, native = os.path.join(d, "dnstap.sock"), os.path.join(d, "native.dnstap")
    collector = servers.start_fstrm_capture(ns, sock, native)
    conf = servers.write(os.path.join(d, "unbound.conf"), f"""\
server:
    verbosity: 1
    num-threads: 1
    interface: {a4}@53
    interface: {a6}@53
    interface: {a4}@853
    interface: {a6}@853
    interface: {a4}@443
    interface: {a6}@443
    tls-port: 853
    https-port: 443
    http-endpoint: "/dns-query"
    tls-service-key: "{key}"
    tls-service-pem: "{cert}"
    access-control: 127.0.0.0/8 allow
    access-control: ::1/128 allow
    access-control: fd00::/8 allow
    username: ""
    chroot: ""
    directory: "{d}"
    pidfile: ""
    logfile: ""
    use-syslog: no
    do-daemonize: no
    module-config: "iterator"
    do-not-query-localhost: no
    qname-minimisation: no
    incoming-num-tcp: 256
    so-reuseport: no
    local-zone: "test." nodefault
remote-control:
    control-enable: no
forward-zone:
    name: "example.test"
    forward-addr: {k4}@53
dnstap:
    dnstap-enable: yes
    dnstap-bidirectional: yes
    dnstap-socket-path: "{sock}"
    dnstap-send-identity: yes
    dnstap-identity: "{name}"
    dnstap-log-client-query-messages: yes
    dnstap-log-client-response-messages: yes
""")
    ns.run(["unbound-checkconf", conf])
    argv = [binary, "-d", "-c", conf]
    if exec_after:
        argv = ["sh", "-c", f'sleep {exec_after}; exec "$@"', "sh"] + argv
    proc = ns.spawn(argv, name=name, cgroup=cgroup)
    proc.wait_for_line(r"start of service", 20)
    wait_tls_listening(ns, (a4, a6), (853, 443), proc)
    servers.wait_writer_connected(collector, r"accepted new connection", settle=0.5)
    return Server(name, proc, (a4, a6), native, collector, settle=1.5)


def start_bind(ns, d, cert, key):
    b4, b6 = ADDR["bind"]
    k4, _ = ADDR["knot"]
    os.makedirs(d, exist_ok=True)
    native = os.path.join(d, "native.dnstap")
    conf = servers.write(os.path.join(d, "named.conf"), f"""\
tls local-tls {{ key-file "{key}"; cert-file "{cert}"; }};
http local-http {{ endpoints {{ "/dns-query"; }}; }};
options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port 53 {{ {b4}; }};
    listen-on-v6 port 53 {{ {b6}; }};
    listen-on port 853 tls local-tls {{ {b4}; }};
    listen-on-v6 port 853 tls local-tls {{ {b6}; }};
    listen-on port 443 tls local-tls http local-http {{ {b4}; }};
    listen-on-v6 port 443 tls local-tls http local-http {{ {b6}; }};
    recursion yes;
    allow-query {{ any; }};
    allow-recursion {{ any; }};
    dnssec-validation no;
    notify no;
    querylog no;
    tcp-clients 1000;
    http-listener-clients 1000;
    dnstap {{ client; }};
    dnstap-output file "{native}";
    dnstap-identity "bind";
}};
controls {{ }};
zone "example.test" {{ type forward; forward only; forwarders {{ {k4} port 53; }}; }};
""")
    ns.run(["named-checkconf", conf])
    proc = ns.spawn(["named", "-g", "-n", "2", "-c", conf], name="named")
    proc.wait_for_line(r"running$", 30)
    wait_tls_listening(ns, (b4, b6), (853, 443), proc)
    return Server("bind", proc, (b4, b6), native)


def start_kresd(ns, d, cert, key):
    r4, r6 = ADDR["kresd"]
    k4, _ = ADDR["knot"]
    os.makedirs(os.path.join(d, "cache"), exist_ok=True)
    sock, native = os.path.join(d, "dnstap.sock"), os.path.join(d, "native.dnstap")
    collector = servers.start_fstrm_capture(ns, sock, native)
    conf = servers.write(os.path.join(d, "kresd.conf"), f"""\
net.listen('{r4}', 53, {{ kind = 'dns' }})
net.listen('{r6}', 53, {{ kind = 'dns' }})
net.listen('{r4}', 853, {{ kind = 'tls' }})
net.listen('{r6}', 853, {{ kind = 'tls' }})
net.listen('{r4}', 443, {{ kind = 'doh2' }})
net.listen('{r6}', 443, {{ kind = 'doh2' }})
net.tls('{cert}', '{key}')
modules = {{
    dnstap = {{
        socket_path = "{sock}",
        identity = "kresd",
        client = {{ log_queries = true, log_responses = true }},
    }},
}}
cache.open(10 * MB, 'lmdb://{d}/cache')
trust_anchors.remove('.')
-- Never iterate: every question goes to the local knotd (which refuses other zones).
policy.add(policy.all(policy.STUB({{'{k4}@53'}})))
""")
    proc = ns.spawn(["kresd", "-n", "-c", conf, d], name="kresd")
    wait_tls_listening(ns, (r4, r6), (853, 443), proc)
    servers.wait_writer_connected(collector, r"accepted new connection", settle=0.5)
    return Server("kresd", proc, (r4, r6), native, collector)


def start_dnsdist(ns, d, cert, key):
    s4, s6 = ADDR["dnsdist"]
    k4, _ = ADDR["knot"]
    os.makedirs(d, exist_ok=True)
    sock, native = os.path.join(d, "dnstap.sock"), os.path.join(d, "native.dnstap")
    collector = servers.start_fstrm_capture(ns, sock, native)
    conf = servers.write(os.path.join(d, "dnsdist.conf"), f"""\
setSecurityPollSuffix('')
setLocal('{s4}:53')
addLocal('[{s6}]:53')
addTLSLocal('{s4}:853', '{cert}', '{key}', {{ provider = 'openssl' }})
addTLSLocal('[{s6}]:853', '{cert}', '{key}', {{ provider = 'openssl' }})
addDOHLocal('{s4}:443', '{cert}', '{key}', '/dns-query')
addDOHLocal('[{s6}]:443', '{cert}', '{key}', '/dns-query')
newServer({{ address = '{k4}:53', healthCheckMode = 'up' }})
fstl = newFrameStreamUnixLogger('{sock}')
addAction(AllRule(), DnstapLogAction('dnsdist', fstl))
addResponseAction(AllRule(), DnstapLogResponseAction('dnsdist', fstl))
addCacheHitResponseAction(AllRule(), DnstapLogResponseAction('dnsdist', fstl))
""")
    proc = ns.spawn(["dnsdist", "--supervised", "--disable-syslog", "-C", conf], name="dnsdist")
    proc.wait_for_line(r"Marking downstream .* as 'up'|Listening on", 20, stream="stdout")
    wait_tls_listening(ns, (s4, s6), (853, 443), proc)
    servers.wait_writer_connected(collector, r"accepted new connection", settle=0.5)
    # Its frame streams logger sends on a timer and drops what is queued at exit.
    return Server("dnsdist", proc, (s4, s6), native, collector, settle=1.5)


START = {"unbound": start_unbound, "bind": start_bind, "kresd": start_kresd, "dnsdist": start_dnsdist}


# ----------------------------------------------------------------------------- sidetap

class Sidetap:
    """sidetap capture with TLS probes (and, optionally, libpcap on lo for UDP/TCP) in the
    namespace, started only once it follows its processes."""

    def __init__(self, ns, sidetap, out, args, ready=r"sidetap: TLS probes \(", where=None):
        """where: the NetNS or Host to run in (default ns)."""
        self.out = out
        self.proc = (where or ns).spawn([sidetap, "capture", *args, "-w", out], name="sidetap")
        self.proc.wait_for_line(ready, 30)

    def stop(self):
        """SIGTERM, wait; returns (exit code, {counter: value}) from the summary."""
        rc = self.proc.stop(timeout=30)
        counters = {}
        for line in self.proc.lines():
            for k, v in re.findall(r"(\w+)=(\d+)", line):
                counters.setdefault(k, int(v))
            if line.startswith("sidetap: tls probes"):
                for k, v in re.findall(r"(\w+)=(\d+)", line):
                    counters["probe_" + k] = int(v)
        return rc, counters


# ----------------------------------------------------------------------------- clients

HEADER_RX = re.compile(r"->>HEADER<<- opcode: (\w+); status: (\w+); id: (\d+)")


def kdig(ns, addr, qname, qtype="A", mode="tls", timeout=20):
    """One query over DoT (mode tls), DoH POST (https), DoH GET (https-get), TCP or UDP.
    Returns (status, id) or raises."""
    flag = {"tls": ["+tls"], "https": ["+https"], "https-get": ["+https-get"], "tcp": ["+tcp"],
            "udp": ["+notcp"]}[mode]
    argv = ["kdig", f"@{addr}", *flag, "+retry=0", "+timeout=5", qname, qtype]
    p = ns.run(argv, check=False, timeout=timeout)
    m = HEADER_RX.search(p.stdout)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"kdig failed ({p.returncode}): {' '.join(argv)}\n{p.stdout}{p.stderr}")
    return m.group(2), int(m.group(3))


def dns_query(qid, qname, qtype=1):
    """A query with an EDNS OPT record, as kdig sends them (dnsdist adds one to DoH queries
    without it before it logs them)."""
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 1)
    for label in qname.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", qtype, 1) + b"\x00" + struct.pack(">HHIH", 41, 1232, 0, 0)


# A DoT client for what kdig cannot do: several queries on one connection without waiting for
# the answers (pipelined: one TLS record each; burst: all in one record, so the server's TLS
# library hands them over in one read), a query split across TLS records (the server reads it
# in pieces), many connections at once. Run inside the namespace as its own process (python3 -c), so that the
# test process itself never touches the namespace's network. Prints one JSON line per
# connection: the IDs of the answers it read.
DOT_CLIENT = r'''
import json, socket, ssl, struct, sys, threading, time
addr, port, mode, conns, per_conn, base = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
def q(qid, name):
    m = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 1)
    for l in name.split("."):
        m += bytes([len(l)]) + l.encode()
    m += b"\x00" + struct.pack(">HH", 1, 1) + b"\x00" + struct.pack(">HHIH", 41, 1232, 0, 0)
    return struct.pack(">H", len(m)) + m
def read_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: raise EOFError("closed")
        b += c
    return b
out, lock = [], threading.Lock()
def one(c):
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.create_connection((addr, port), timeout=20) as raw, ctx.wrap_socket(raw) as s:
        ids = [base + c * per_conn + i for i in range(per_conn)]
        msgs = [q(i, f"p{i}.w.example.test") for i in ids]
        if mode == "burst":
            s.sendall(b"".join(msgs))
        elif mode == "split":
            for m in msgs:
                for piece in (m[:1], m[1:2], m[2:9], m[9:]):
                    s.sendall(piece); time.sleep(0.02)
        else:
            for m in msgs: s.sendall(m)
        got = []
        for _ in ids:
            n = struct.unpack(">H", read_exact(s, 2))[0]
            got.append(struct.unpack(">H", read_exact(s, n)[:2])[0])
        with lock: out.append(got)
ts = [threading.Thread(target=one, args=(c,)) for c in range(conns)]
[t.start() for t in ts]; [t.join() for t in ts]
for g in out: print(json.dumps(g))
if len(out) != conns: sys.exit(1)
'''


def dot_client(ns, addr, mode, conns, per_conn, base):
    """Runs DOT_CLIENT in the namespace; returns the number of answers read."""
    p = ns.run([sys.executable, "-c", DOT_CLIENT, addr, "853", mode, str(conns), str(per_conn), str(base)],
               check=False, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"DoT client ({mode}) failed: {p.stderr}{p.stdout}")
    return sum(len(json.loads(l)) for l in p.stdout.splitlines() if l.strip())


def doh_multiplexed(ns, addr, names):
    """curl: several DoH GET requests multiplexed on one HTTP/2 connection (concurrent
    streams). Returns the number of answers."""
    host = f"[{addr}]" if ":" in addr else addr
    urls = []
    for i, name in enumerate(names):
        import base64
        q = base64.urlsafe_b64encode(dns_query(0, name)).rstrip(b"=").decode()
        urls += ["-o", "/dev/null", f"https://{host}:443/dns-query?dns={q}"]
    argv = ["curl", "-s", "-k", "--http2", "--parallel", "--parallel-max", "50",
            "-H", "accept: application/dns-message", "-w", "%{http_code} %{num_connects}\n", *urls]
    p = ns.run(argv, check=False, timeout=60)
    codes = [l.split() for l in p.stdout.splitlines() if l.strip()]
    if p.returncode != 0 or len(codes) != len(names) or any(c[0] != "200" for c in codes):
        raise RuntimeError(f"curl DoH failed ({p.returncode}): {p.stdout}{p.stderr}")
    # One connection for all: the later requests report no new connect.
    if sum(int(c[1]) for c in codes) != 1:
        raise RuntimeError(f"curl did not multiplex on one connection: {p.stdout}")
    return len(names)


def parallel(fns):
    """Runs callables in threads; returns their results, raising the first error."""
    results, errors = [None] * len(fns), []

    def run(i, f):
        try:
            results[i] = f()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    ts = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(fns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    return results


# ----------------------------------------------------------------------------- comparison

def load(path):
    _, frames, _ = read_frames(path)
    return [decode_dnstap(f) for f in frames]


def wire_of(m):
    return m.get("query_message") if m.get("type", "").endswith("QUERY") else m.get("response_message")


def key(m, with_protocol):
    k = (m.get("type"), m.get("socket_family"), m.get("query_address"), m.get("response_address"),
         m.get("query_port"), m.get("response_port"), wire_of(m))
    return k + ((m.get("socket_protocol"),) if with_protocol else ())


def describe(k):
    w = k[6] or b""
    q = servers.wire_question(w)
    return f"{k[0]} {k[2]}:{k[4]} -> {k[3]}:{k[5]} {len(w)}b {q}" + (f" {k[7]}" if len(k) > 7 else "")


def compare(name, native, ours, with_protocol, what):
    """Multiset equality of messages; returns problems (listing what differs)."""
    a = sorted(key(m, with_protocol) for m in native)
    b = sorted(key(m, with_protocol) for m in ours)
    if a == b:
        return []
    only_native = [k for k in a if k not in b]
    only_ours = [k for k in b if k not in a]
    lines = [f"{name}: {what}: native {len(a)} messages, sidetap {len(b)}"]
    lines += ["  only native:  " + describe(k) for k in only_native[:10]]
    lines += ["  only sidetap: " + describe(k) for k in only_ours[:10]]
    return ["\n".join(lines)]


def check_query_times(ours):
    """Every response sidetap paired carries its own query's time (matched by connection,
    DNS ID and question: exact for DoT; DoH queries all have ID 0, and the workloads never ask
    the same question twice at once on one connection)."""
    problems = []
    queries = {}
    for m in ours:
        if m["type"].endswith("QUERY"):
            q = servers.wire_question(m["query_message"])
            queries.setdefault((m["query_address"], m["query_port"], m["response_address"], m["response_port"],
                                q[0], q[1], q[2]), []).append(m["query_time_ns"])
    unpaired = 0
    for m in ours:
        if not m["type"].endswith("RESPONSE"):
            continue
        q = servers.wire_question(m["response_message"])
        k = (m["query_address"], m["query_port"], m["response_address"], m["response_port"], q[0], q[1], q[2])
        if "query_time_ns" not in m:
            unpaired += 1
            continue
        if m["query_time_ns"] not in queries.get(k, []):
            problems.append(f"response {k} carries query_time {m['query_time_ns']}, not its query's "
                            f"{queries.get(k)}")
        elif m["query_time_ns"] > m["response_time_ns"]:
            problems.append(f"response {k}: query_time after response_time")
    if unpaired:
        problems.append(f"{unpaired} responses without query_time")
    return problems


def split(messages, server_addrs, ports, protocols):
    """Client messages of this server on these ports with these socket protocols."""
    return [m for m in messages if m.get("type", "").startswith("CLIENT")
            and m.get("response_address") in server_addrs and m.get("response_port") in ports
            and m.get("socket_protocol") in protocols]


# ----------------------------------------------------------------------------- the common test

def workload(ns, server, tag):
    """DoT, DoH POST and GET over IPv4 and IPv6; answers over 16 KB; pipelined queries on
    one connection; a query split across TLS records; many concurrent connections; DoH
    streams multiplexed on one connection; UDP and TCP beside them. Returns (number of DoT/DoH
    queries sent, number of UDP/TCP queries sent)."""
    a4, a6 = server.addrs
    wire = 0
    for mode in ("udp", "tcp"):
        for fam, addr in (("4", a4), ("6", a6)):
            kdig(ns, addr, f"{tag}-{mode}-{fam}.w.example.test", "A", mode)
            wire += 1
    n = 0
    for fam, addr in (("4", a4), ("6", a6)):
        for mode in ("tls", "https", "https-get"):
            kdig(ns, addr, f"{tag}-{mode}-{fam}.w.example.test", "A", mode)
            n += 1
        for mode in ("tls", "https"):
            status, _ = kdig(ns, addr, "big.example.test", "TXT", mode)
            if status != "NOERROR":
                raise RuntimeError(f"{server.name}: big.example.test TXT over {mode}: {status}")
            n += 1
        n += dot_client(ns, addr, "burst" if server.name in BURST_OK else "pipelined", 1, 10,
                        1000 if fam == "4" else 2000)
        n += doh_multiplexed(ns, addr, [f"{tag}-mux{i}-{fam}.w.example.test" for i in range(12)])
    n += dot_client(ns, a4, "split", 1, 3, 3000)
    n += dot_client(ns, a4, "pipelined", 24, 3, 4000)
    n += dot_client(ns, a6, "pipelined", 8, 2, 5000)
    n += len(parallel([lambda i=i: kdig(ns, a4 if i % 2 else a6, f"{tag}-par{i}.w.example.test", "A",
                                        "https" if i % 3 else "https-get") for i in range(10)]))
    return n, wire


def run_server_test(name, sidetap, w):
    """One server: native dnstap vs sidetap's TLS probes (and libpcap on lo for UDP/TCP at
    the same time, into the same output). Returns problems."""
    problems = []
    with NetNS(f"tls-{name}") as ns:
        add_addresses(ns)
        cert, key = make_certificate(w)
        start_backend(ns, os.path.join(w, "knot"))
        server = START[name](ns, os.path.join(w, name), cert, key)
        out = os.path.join(w, "sidetap.dnstap")
        tap = Sidetap(ns, sidetap, out, ["-i", "lo", "-p", "53", "--tls-pid", str(server.pid)])
        try:
            sent_tls, sent_wire = workload(ns, server, name)
        finally:
            time.sleep(0.5)  # the last responses' records reach the ring
            rc, counters = tap.stop()
            problems += server.stop()
        print(f"{name}: {sent_tls} DoT/DoH and {sent_wire} UDP/TCP queries; sidetap: " +
              " ".join(l for l in tap.proc.lines() if "counters:" in l or "tls probes" in l), file=sys.stderr)
        if rc != 0:
            problems.append(f"sidetap exited {rc}\n{tap.proc.text()[-3000:]}")
        native, ours = load(server.native_path), load(out)
        addrs = set(server.addrs)
        any_protocol = {None, "UDP", "TCP", "DOT", "DOH"}
        ours_tls = split(ours, addrs, {853, 443}, {"DOT", "DOH"})
        problems += compare(name, split(native, addrs, {853, 443}, any_protocol), ours_tls,
                            name in NATIVE_PROTOCOL, "DoT/DoH messages")
        problems += compare(name, split(native, addrs, {53}, {"UDP", "TCP"}),
                            split(ours, addrs, {53}, {"UDP", "TCP"}), True, "UDP/TCP messages")
        queries = sum(1 for m in ours_tls if m["type"] == "CLIENT_QUERY")
        if queries != sent_tls:
            problems.append(f"{name}: {sent_tls} DoT/DoH queries sent, sidetap has {queries}")
        protocols = {m["socket_protocol"] for m in ours_tls}
        if protocols != {"DOT", "DOH"}:
            problems.append(f"{name}: sidetap's DoT/DoH messages have socket_protocol {protocols}")
        problems += [f"{name}: {p}" for p in check_query_times(ours_tls)]
        for c in ("tls_unattributed_messages", "tls_gaps", "doh_streams_undecodable", "doh_header_errors",
                  "probe_ring_full_dropped", "probe_copy_failed", "probe_truncated", "probe_bad_records"):
            if counters.get(c, 0) != 0:
                problems.append(f"{name}: {c}={counters[c]}")
    for p in problems:
        print(p, file=sys.stderr)
    return problems


def main(server):
    """The body of tests/root/test_tls_<server>.py: one root test per server (ctest runs one
    script per test); --sidetap and --keep as every root test."""
    import argparse
    from netns import run_root_test
    ap = argparse.ArgumentParser()
    ap.add_argument("--sidetap", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    return run_root_test(f"root.test_tls_{server}", args.sidetap, TOOLS, f"sidetap-tls-{server}-", args.keep,
                         lambda w: run_server_test(server, args.sidetap, w))
