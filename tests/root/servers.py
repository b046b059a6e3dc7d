"""Real DNS servers with dnstap in a network namespace (for root tests), and a kdig workload.

Addresses inside one namespace (all on lo, no route out):
    knotd (authoritative, zone example.test + bind.test)  127.0.0.2   fd00:53::53
    unbound (forward-zone example.test -> knotd)           127.0.0.1   ::1
    named, BIND 9.18 (forward zone example.test -> knotd,
                      primary zone bind.test)              127.0.0.3   fd00:53::3
    kresd, Knot Resolver 5.6 (policy.STUB -> knotd)        127.0.0.4   fd00:53::4
    a second knotd (writer into a socket)                  127.0.0.5   fd00:53::5

Every server is started through NetNS.spawn (stopped by PID, PR_SET_PDEATHSIG) and readiness
is awaited on its log or on its listening sockets (`ss`), never by sending DNS queries (a probe
query would show up in the dnstap under test).
"""
import os
import re
import subprocess
import time

ADDR = {
    "knot": ("127.0.0.2", "fd00:53::53"),
    "unbound": ("127.0.0.1", "::1"),
    "bind": ("127.0.0.3", "fd00:53::3"),
    "kresd": ("127.0.0.4", "fd00:53::4"),
    "knot2": ("127.0.0.5", "fd00:53::5"),
}
EXTRA_ADDRS = ["127.0.0.2/8", "127.0.0.3/8", "127.0.0.4/8", "127.0.0.5/8",
               "fd00:53::53/128", "fd00:53::3/128", "fd00:53::4/128", "fd00:53::5/128"]


def add_addresses(ns):
    """127.0.0.0/8 is routed to lo already, but BIND binds only to configured interface
    addresses, so the IPv4 ones are added too; IPv6 ones with nodad (usable at once)."""
    for a in EXTRA_ADDRS:
        if ":" in a:
            ns.run(["ip", "-6", "addr", "add", a, "dev", "lo", "nodad"])
        else:
            ns.run(["ip", "addr", "add", a, "dev", "lo"])


# ----------------------------------------------------------------------------- zones

def zone_text(origin, ns_addr4):
    """*.w.<origin> is a wildcard (every query can use a fresh name, so resolver caches never
    answer); any other unknown name is NXDOMAIN."""
    return "\n".join([
        f"$ORIGIN {origin}.", "$TTL 3600",
        "@ SOA ns1 hostmaster 2024010101 3600 900 604800 300", "@ NS ns1",
        f"ns1 A {ns_addr4}", "www A 192.0.2.80", "www AAAA 2001:db8::80",
        "*.w A 192.0.2.81", "*.w AAAA 2001:db8::81", "*.w TXT \"wildcard\" \"text\"",
        "*.w MX 10 mx.example.net.", ""])


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def wait_for_path(path, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline or not proc.running():
            raise RuntimeError(f"{proc.name} did not create {path}\n{proc.text()}")
        time.sleep(0.02)


def wait_listening(ns, addrs, port=53, timeout=20.0, proc=None):
    """Waits until UDP and TCP sockets are bound on every address (checked with ss in the
    namespace)."""
    deadline = time.monotonic() + timeout
    want = set()
    for a in addrs:
        for proto in ("udp", "tcp"):
            want.add((proto, f"[{a}]:{port}" if ":" in a else f"{a}:{port}"))
    while True:
        have = set()
        for proto, flag in (("udp", "-u"), ("tcp", "-t")):
            out = ns.run(["ss", "-H", "-n", "-l", flag]).stdout
            for line in out.splitlines():
                cols = line.split()
                for c in cols:
                    if (proto, c) in want:
                        have.add((proto, c))
        if have == want:
            return
        if time.monotonic() > deadline or (proc is not None and not proc.running()):
            raise RuntimeError(f"not listening on {sorted(want - have)} after {timeout}s"
                               + (f"\n{proc.text()}" if proc else ""))
        time.sleep(0.05)


# ----------------------------------------------------------------------------- Knot

def knot_config(d, listen, zones, sinks, identity, version):
    """sinks: list of (module id, sink) -- a file path or "unix:/path"."""
    zl = "".join(f"  - domain: {z}\n    file: \"{d}/{z}.zone\"\n" for z in zones)
    mods = "".join(f"""\
  - id: {mid}
    sink: "{sink}"
    identity: "{identity}"
    version: "{version}"
    log-queries: on
    log-responses: on
""" for mid, sink in sinks)
    gm = ", ".join(f"mod-dnstap/{mid}" for mid, _ in sinks)
    return f"""\
server:
    rundir: "{d}"
    listen: [ {", ".join(listen)} ]
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{d}/db"
control:
    listen: "{d}/knot.sock"
log:
  - target: stderr
    any: info
mod-dnstap:
{mods}template:
  - id: default
    storage: "{d}"
    global-module: [ {gm} ]
zone:
{zl}"""


def start_knot(ns, d, name, sinks, identity, version, zones=("example.test", "bind.test")):
    a4, a6 = ADDR[name]
    os.makedirs(os.path.join(d, "db"), exist_ok=True)
    for z in zones:
        write(os.path.join(d, f"{z}.zone"), zone_text(z, a4))
    conf = write(os.path.join(d, "knot.conf"),
                 knot_config(d, [f"{a4}@53", f"{a6}@53"], zones, sinks, identity, version))
    knotd = ns.spawn(["knotd", "-c", conf], name=f"knotd-{name}")
    knotd.wait_for_line(r"server started", 20)
    wait_listening(ns, (a4, a6), proc=knotd)
    return knotd


# ----------------------------------------------------------------------------- Unbound

def unbound_config(d, sock, identity, version):
    k4, k6 = ADDR["knot"]
    u4, u6 = ADDR["unbound"]
    return f"""\
server:
    verbosity: 1
    num-threads: 1
    interface: {u4}@53
    interface: {u6}@53
    outgoing-interface: 0.0.0.0
    outgoing-interface: ::1
    access-control: 127.0.0.0/8 allow
    access-control: ::1/128 allow
    do-ip4: yes
    do-ip6: yes
    username: ""
    chroot: ""
    directory: "{d}"
    pidfile: "{d}/unbound.pid"
    logfile: ""
    use-syslog: no
    do-daemonize: no
    module-config: "iterator"
    do-not-query-localhost: no
    qname-minimisation: no
    prefetch: no
    so-reuseport: no
    local-zone: "test." nodefault
remote-control:
    control-enable: no
forward-zone:
    name: "example.test"
    forward-addr: {k4}@53
    forward-addr: {k6}@53
dnstap:
    dnstap-enable: yes
    dnstap-bidirectional: yes
    dnstap-socket-path: "{sock}"
    dnstap-send-identity: yes
    dnstap-send-version: yes
    dnstap-identity: "{identity}"
    dnstap-version: "{version}"
    dnstap-log-client-query-messages: yes
    dnstap-log-client-response-messages: yes
    dnstap-log-resolver-query-messages: yes
    dnstap-log-resolver-response-messages: yes
    dnstap-log-forwarder-query-messages: yes
    dnstap-log-forwarder-response-messages: yes
"""


def start_unbound(ns, d, sock, identity, version):
    os.makedirs(d, exist_ok=True)
    conf = write(os.path.join(d, "unbound.conf"), unbound_config(d, sock, identity, version))
    ns.run(["unbound-checkconf", conf])
    unbound = ns.spawn(["unbound", "-d", "-c", conf], name="unbound")
    unbound.wait_for_line(r"start of service", 20)
    wait_listening(ns, ADDR["unbound"], proc=unbound)
    return unbound


# ----------------------------------------------------------------------------- BIND 9.18

def bind_config(d, dnstap_file, identity, version):
    b4, b6 = ADDR["bind"]
    k4, _ = ADDR["knot"]
    return f"""\
options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port 53 {{ {b4}; }};
    listen-on-v6 port 53 {{ {b6}; }};
    recursion yes;
    allow-query {{ any; }};
    allow-recursion {{ any; }};
    dnssec-validation no;
    max-cache-size 32m;
    notify no;
    querylog no;
    dnstap {{ all; }};
    dnstap-output file "{dnstap_file}";
    dnstap-identity "{identity}";
    dnstap-version "{version}";
}};
controls {{ }};
zone "example.test" {{
    type forward;
    forward only;
    forwarders {{ {k4} port 53; }};
}};
zone "bind.test" {{
    type primary;
    file "{d}/bind.test.zone";
}};
"""


def start_bind(ns, d, dnstap_file, identity, version):
    os.makedirs(d, exist_ok=True)
    write(os.path.join(d, "bind.test.zone"), zone_text("bind.test", ADDR["bind"][0]))
    conf = write(os.path.join(d, "named.conf"), bind_config(d, dnstap_file, identity, version))
    ns.run(["named-checkconf", conf])
    # -g: foreground, log to stderr; -n 1: one worker; no -u: stays root (writes into d).
    named = ns.spawn(["named", "-g", "-n", "1", "-c", conf], name="named")
    named.wait_for_line(r"running$", 30)
    wait_listening(ns, ADDR["bind"], proc=named)
    return named


# ----------------------------------------------------------------------------- Knot Resolver 5.6

def kresd_config(d, sock, identity, version):
    r4, r6 = ADDR["kresd"]
    k4, _ = ADDR["knot"]
    return f"""\
-- Knot Resolver 5.6 in a test namespace: stub everything to the local knotd.
net.listen('{r4}', 53, {{ kind = 'dns' }})
net.listen('{r6}', 53, {{ kind = 'dns' }})
modules = {{
    dnstap = {{
        socket_path = "{sock}",
        identity = "{identity}",
        version = "{version}",
        client = {{ log_queries = true, log_responses = true }},
    }},
}}
cache.open(10 * MB, 'lmdb://{d}/cache')
trust_anchors.remove('.')
policy.add(policy.all(policy.STUB({{'{k4}@53'}})))
"""


def start_kresd(ns, d, sock, identity, version):
    """The dnstap socket must exist before kresd loads its config."""
    os.makedirs(os.path.join(d, "cache"), exist_ok=True)
    conf = write(os.path.join(d, "kresd.conf"), kresd_config(d, sock, identity, version))
    kresd = ns.spawn(["kresd", "-n", "-c", conf, d], name="kresd")
    wait_listening(ns, ADDR["kresd"], proc=kresd)
    return kresd


# ----------------------------------------------------------------------------- fstrm_capture

def start_fstrm_capture(ns, sock, out):
    cap = ns.spawn(["fstrm_capture", "-d", "-d", "-d", "-t", "protobuf:dnstap.Dnstap",
                    "-u", sock, "-w", out], name="fstrm_capture")
    wait_for_path(sock, cap)
    return cap


def wait_writer_connected(proc, pattern, count=1, timeout=15.0, settle=0.0):
    """Waits until `count` lines of proc's stderr match `pattern` (a writer's handshake),
    then `settle` seconds (fstrm_capture logs the accept, not the end of READY/ACCEPT/START,
    and libfstrm writers discard frames queued before their stream is open)."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        n = sum(1 for l in proc.lines() if rx.search(l))
        if n >= count:
            time.sleep(settle)
            return
        if time.monotonic() > deadline or not proc.running():
            raise RuntimeError(f"{proc.name}: no writer connected (/{pattern}/ x{count}) within "
                               f"{timeout}s\n{proc.text()}")
        time.sleep(0.02)


# ----------------------------------------------------------------------------- workload

class Query:
    """One kdig query: one DNS message from a client to the server under test."""

    def __init__(self, qname, qtype, proto, family, status, rd=True):
        self.qname, self.qtype, self.proto, self.family = qname, qtype, proto, family
        self.status, self.rd = status, rd
        self.id = None          # from kdig's answer
        self.got_status = None

    def __repr__(self):
        return (f"{self.proto}/{self.family} {self.qname} {self.qtype} id={self.id} "
                f"{self.got_status}")


def workload(tag, auth_zone="example.test", extra=()):
    """Eight queries over UDP and TCP, IPv4 and IPv6, with NOERROR, NODATA and NXDOMAIN.
    Every name is new (wildcard *.w.) and carries `tag`, so runs and servers never share a
    cache entry and each server's messages can be told apart in an upstream's log."""
    z = auth_zone
    qs = [Query(f"{tag}-1.w.{z}", "A", "UDP", "INET", "NOERROR"),
          Query(f"{tag}-2.w.{z}", "AAAA", "UDP", "INET6", "NOERROR"),
          Query(f"{tag}-3.w.{z}", "TXT", "TCP", "INET", "NOERROR"),
          Query(f"{tag}-4.w.{z}", "MX", "TCP", "INET6", "NOERROR"),
          Query(f"{tag}-5-nx.{z}", "A", "UDP", "INET", "NXDOMAIN"),
          Query(f"{tag}-6-nx.{z}", "AAAA", "TCP", "INET6", "NXDOMAIN"),
          Query(f"{tag}-7.w.{z}", "SRV", "UDP", "INET6", "NOERROR"),     # NODATA
          Query(f"{tag}-8.w.{z}", "A", "TCP", "INET", "NOERROR")]
    return qs + list(extra)


HEADER_RX = re.compile(r"->>HEADER<<- opcode: (\w+); status: (\w+); id: (\d+)")


def run_workload(ns, server, queries):
    """Runs each query with kdig (one process per query, sequential). Returns problems."""
    a4, a6 = ADDR[server]
    problems = []
    for q in queries:
        addr = a4 if q.family == "INET" else a6
        argv = ["kdig", f"@{addr}", "-p", "53", "+retry=0", "+timeout=3",
                "+tcp" if q.proto == "TCP" else "+notcp", "+rec" if q.rd else "+norec",
                q.qname, q.qtype]
        p = ns.run(argv, check=False, timeout=20)
        m = HEADER_RX.search(p.stdout)
        if p.returncode != 0 or not m:
            problems.append(f"{server}: kdig failed ({p.returncode}): {' '.join(argv)}\n"
                            f"{p.stdout}{p.stderr}")
            continue
        q.id, q.got_status = int(m.group(3)), m.group(2)
        if q.got_status != q.status:
            problems.append(f"{server}: {q.qname} {q.qtype}: status {q.got_status}, expected "
                            f"{q.status}")
    return problems


# ----------------------------------------------------------------------------- DNS wire helpers

QTYPES = {1: "A", 2: "NS", 6: "SOA", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV"}
RCODES = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}


def wire_question(w):
    """(id, qname with trailing dot, qtype name, rcode name) of a DNS message, or None."""
    if not w or len(w) < 12:
        return None
    qid = int.from_bytes(w[0:2], "big")
    rcode = RCODES.get(w[3] & 0xF, str(w[3] & 0xF))
    pos, labels = 12, []
    try:
        while w[pos]:
            n = w[pos]
            labels.append(w[pos + 1:pos + 1 + n].decode("ascii", "replace"))
            pos += 1 + n
        qtype = int.from_bytes(w[pos + 1:pos + 3], "big")
    except IndexError:
        return None
    return qid, ".".join(labels).lower() + ".", QTYPES.get(qtype, str(qtype)), rcode


def stop_checked(proc, timeout=20.0):
    """Stops a server with SIGTERM; returns a problem string or None."""
    rc = proc.stop(timeout=timeout)
    if rc not in (0, None):
        return f"{proc.name} exited {rc}\n{proc.text()[-3000:]}"
    return None


def run_checked(argv, env=None, timeout=60):
    return subprocess.run(argv, capture_output=True, env=env, timeout=timeout)
