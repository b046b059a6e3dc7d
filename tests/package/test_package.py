#!/usr/bin/env python3
"""Package test (label `package`, root, serial): the Debian package end to end.

  1. packaging/build-deb.sh builds the .deb (Debian's hardening flags);
  2. lintian: no error, and every warning is one packaging/README.md explains;
  3. dpkg -i; the installed `sidetap --version` names version, commit, eBPF
     support and the libraries; the installed binary replays pcaps/sample.pcap
     into the same bytes as the build tree's binary (identity/version pinned);
  4. `man --warnings` renders sidetap(1) without a warning, and the page
     names every option of every subcommand's --help;
  5. `systemd-analyze verify` accepts every unit without a message;
     every system call the units' command lines make (strace) is allowed
     by their SystemCallFilter= (as systemd-analyze syscall-filter expands it);
  6. each unit's ExecStart runs as the unit would run it: when systemd is
     PID 1, as a started instance; otherwise through setpriv with the unit's
     User=, Group=, AmbientCapabilities=, CapabilityBoundingSet= and
     NoNewPrivileges=, in a private network namespace, and writes dnstap:
     sidetap@ (libpcap capture on lo, CAP_NET_RAW), sidetap-ebpf@ (--ebpf
     socket, when built in), sidetap-collector@ (replay, no capability); the
     process's /proc status shows exactly the unit's capabilities;
  7. dpkg --purge removes every file of the package, /etc/sidetap,
     /var/lib/sidetap and /var/log/sidetap; the system user stays (as
     documented) and is removed by this test if it created it.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "root"))
import netns  # noqa: E402
import sidetap_testlib as tl  # noqa: E402

SIDETAP = tl.sidetap_arg()
SOURCE = tl.SOURCE_DIR
QUERY = bytes.fromhex("00000100000100000000000003777777076578616d706c6503636f6d0000010001")
SENDER = """
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
q = bytes.fromhex(sys.argv[1])
for i in range(int(sys.argv[2])):
    s.sendto(struct.pack(">H", i) + q[2:], ("127.0.0.1", 53))
    time.sleep(0.01)
"""
CAP_NAMES = {"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_SYS_ADMIN": 21, "CAP_PERFMON": 38, "CAP_BPF": 39}


def check(cond, message):
    if not cond:
        print("FAIL:", message, flush=True)
        sys.exit(1)
    print("ok:", message, flush=True)


def build_dir_arg():
    if "--build-dir" in sys.argv:
        i = sys.argv.index("--build-dir")
        path = sys.argv[i + 1]
        del sys.argv[i:i + 2]
        return path
    return os.path.join(SOURCE, "build")


def build_deb(build_dir):
    out = tl.run([os.path.join(SOURCE, "packaging", "build-deb.sh"), os.path.join(build_dir, "package-deb")],
                 env=dict(os.environ, JOBS="2"), timeout=1500)
    debs = [l for l in out.stdout.split() if l.endswith(".deb")]
    check(len(debs) == 1 and os.path.exists(debs[0]), f"build-deb.sh built {debs}")
    return debs[0]


def documented_lintian_tags():
    """Tags listed in packaging/README.md's lintian table (`| tag | ... |`)."""
    with open(os.path.join(SOURCE, "packaging", "README.md")) as f:
        text = f.read()
    section = text.split("## lintian", 1)[1] if "## lintian" in text else ""
    return set(re.findall(r"^\| `([a-z0-9.+-]+)`", section, re.M))


def check_lintian(deb):
    p = tl.run(["lintian", "--allow-root", "--display-info", deb], check=False)
    lines = [l for l in p.stdout.splitlines() if re.match(r"^[EWI]: ", l)]
    print("\n".join(lines))
    errors = [l for l in lines if l.startswith("E: ")]
    check(not errors, "lintian reports no error")
    tags = {l.split()[2] for l in lines if l.startswith(("W: ", "I: "))}
    missing = tags - documented_lintian_tags()
    check(not missing, f"every lintian warning/info is explained in packaging/README.md (missing: {sorted(missing)})")


def parse_unit(path):
    """[Service] key -> list of values (repeated keys kept in order)."""
    values = {}
    section = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            k, _, v = line.partition("=")
            values.setdefault((section, k), []).append(v)
    return values


def caps_mask(names):
    mask = 0
    for n in names.split():
        mask |= 1 << CAP_NAMES[n]
    return mask


def proc_caps(pid):
    caps = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "NoNewPrivs", "Uid"):
                caps[k] = v.strip()
    return caps


def setpriv_argv(unit, instance):
    """The unit's ExecStart under the unit's user and capabilities, through setpriv."""
    user = unit[("Service", "User")][-1]
    group = unit[("Service", "Group")][-1]
    ambient = unit.get(("Service", "AmbientCapabilities"), [""])[-1].split()
    bounding = unit.get(("Service", "CapabilityBoundingSet"), [""])[-1].split()
    caps = lambda names: ",".join(["-all"] + ["+" + n[4:].lower() for n in names])
    argv = ["setpriv", f"--reuid={user}", f"--regid={group}", "--init-groups",
            f"--inh-caps={caps(ambient)}", f"--ambient-caps={caps(ambient)}", f"--bounding-set={caps(bounding)}"]
    if unit.get(("Service", "NoNewPrivileges"), ["no"])[-1] == "yes":
        argv.append("--no-new-privs")
    exec_start = unit[("Service", "ExecStart")][-1].replace("%i", instance)
    return argv + exec_start.split(), caps_mask(" ".join(ambient)), caps_mask(" ".join(bounding))


_GROUPS = {}


def syscall_group(name):
    """The system calls of a systemd group (@system-service ...), nested groups expanded."""
    if name not in _GROUPS:
        out = tl.run(["systemd-analyze", "syscall-filter", name]).stdout
        calls = set()
        for line in out.splitlines()[1:]:
            word = line.strip()
            if not word or word.startswith("#"):
                continue
            calls |= syscall_group(word) if word.startswith("@") else {word}
        _GROUPS[name] = calls
    return _GROUPS[name]


def allowed_syscalls(unit):
    """What the unit's SystemCallFilter= lines allow (first line an allow list,
    then ~lines remove and plain lines add, as systemd.exec(5) says)."""
    allowed = set()
    for value in unit.get(("Service", "SystemCallFilter"), []):
        deny = value.startswith("~")
        names = set()
        for word in value.lstrip("~").split():
            names |= syscall_group(word) if word.startswith("@") else {word}
        allowed = allowed - names if deny else allowed | names
    return allowed


def used_syscalls(strace_log):
    """System calls made after sidetap's execve (strace -f -o)."""
    used, started = set(), False
    with open(strace_log) as f:
        for line in f:
            if 'execve("/usr/bin/sidetap"' in line:
                started = True
                continue
            m = re.match(r"^\d+\s+([a-z0-9_]+)\(", line)
            if started and m:
                used.add(m.group(1))
    return used


def traced_child(tracer_pid, exe="/usr/bin/sidetap", timeout=20):
    """The process strace started (it execs setpriv, then sidetap)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{tracer_pid}/task/{tracer_pid}/children") as f:
                for pid in f.read().split():
                    if os.readlink(f"/proc/{pid}/exe") == exe:
                        return int(pid)
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"no {exe} under pid {tracer_pid}")


def run_unit(unit_path, instance, config_text, output, ns, traffic, expect_running):
    """Runs one unit's ExecStart (systemd when PID 1, else setpriv) and returns the dnstap records."""
    config = f"/etc/sidetap/{instance}.toml"
    with open(config, "w") as f:
        f.write(config_text)
    try:
        unit = parse_unit(unit_path)
        if os.path.exists("/run/systemd/system") and open("/proc/1/comm").read().strip() == "systemd":
            name = os.path.basename(unit_path).replace("@.", f"@{instance}.")
            tl.run(["systemctl", "start", name])
            traffic(None)
            time.sleep(1)
            tl.run(["systemctl", "stop", name])
            return tl.read_dnstap_file(output)
        argv, ambient, bounding = setpriv_argv(unit, instance)
        # strace records the system calls, for the unit's SystemCallFilter= (not
        # applied by setpriv); its own lines come before sidetap's execve.
        trace = f"/tmp/sidetap-pkgtest-{instance}.strace"
        proc = ns.spawn(["strace", "-f", "-qq", "-o", trace, *argv], name=os.path.basename(unit_path))
        try:
            if expect_running:
                proc.wait_for_line(r"capturing on", 20)
                pid = traced_child(proc.pid)
                st = proc_caps(pid)
                uid = int(st["Uid"].split()[0])
                check(uid == int(tl.run(["id", "-u", unit[("Service", "User")][-1]]).stdout),
                      f"{instance}: runs as {unit[('Service', 'User')][-1]}")
                check(int(st["CapEff"], 16) == ambient and int(st["CapAmb"], 16) == ambient and
                      int(st["CapBnd"], 16) == bounding,
                      f"{instance}: effective/ambient/bounding capabilities are the unit's ({st})")
                check(st["NoNewPrivs"] == "1", f"{instance}: no_new_privs")
                traffic(ns)
                time.sleep(0.5)
                os.kill(pid, signal.SIGTERM)  # sidetap itself, not strace
                proc.popen.wait(30)
                rc = proc.stop()
            else:
                proc.popen.wait(60)
                rc = proc.stop()
        finally:
            proc.stop()
        print(proc.text())
        check(rc == 0, f"{instance}: ExecStart exits 0 on SIGTERM/at end (rc={rc})")
        used = used_syscalls(trace)
        os.unlink(trace)
        denied = used - allowed_syscalls(unit)
        check(len(used) > 20 and not denied,
              f"{instance}: every one of the {len(used)} system calls is allowed by SystemCallFilter= "
              f"(denied: {sorted(denied)})")
        return tl.read_dnstap_file(output)
    finally:
        os.unlink(config)


def send_queries(n):
    def traffic(ns):
        argv = ["python3", "-c", SENDER, QUERY.hex(), str(n)]
        if ns:
            ns.run(argv)
        else:
            tl.run(argv)
    return traffic


def main():
    netns.require_root("test_package")
    netns.exit_on_sigterm()
    build_dir = build_dir_arg()
    for tool in ("strace", "lintian", "dpkg-deb", "man", "systemd-analyze", "setpriv", "cpack", "dpkg-buildflags", "fakeroot"):
        tl.require_tool(tool)
    deb = build_deb(build_dir)
    check_lintian(deb)

    user_existed = tl.run(["getent", "passwd", "sidetap"], check=False).returncode == 0
    if tl.run(["dpkg-query", "-W", "sidetap"], check=False).returncode == 0:
        tl.run(["dpkg", "--purge", "sidetap"])
    files = [l.split()[-1].lstrip(".") for l in tl.run(["dpkg-deb", "-c", deb]).stdout.splitlines()
             if not l.startswith("d")]
    installed = False
    try:
        tl.run(["dpkg", "-i", deb])
        installed = True
        check(tl.run(["getent", "passwd", "sidetap"], check=False).returncode == 0, "postinst created user sidetap")

        # --version
        v = tl.run(["/usr/bin/sidetap", "--version"]).stdout
        print(v)
        for rx in (r"^sidetap \d+\.\d+\.\d+$", r"^commit: \S+$", r"^capture: libpcap", r"^libpcap: libpcap version",
                   r"^libbpf: (\d+\.\d+|not linked)$", r"^protobuf: \d", r"^ldns: \d", r"^openssl: OpenSSL \d"):
            check(re.search(rx, v, re.M), f"--version has /{rx}/")

        # Installed-binary replay == build tree replay.
        sample = os.path.join(SOURCE, "pcaps", "sample.pcap")
        with tempfile.TemporaryDirectory() as work:
            a, b = os.path.join(work, "installed.dnstap"), os.path.join(work, "tree.dnstap")
            pin = ["--identity", "pkgtest", "--version", "pinned", "-q"]
            tl.run(["/usr/bin/sidetap", "replay", *pin, "-w", a, sample])
            tl.run([SIDETAP, "replay", *pin, "-w", b, sample])
            records = tl.read_dnstap_file(a)
            check(len(records) > 0 and open(a, "rb").read() == open(b, "rb").read(),
                  f"installed replay of sample.pcap: {len(records)} messages, the same bytes as the build tree's")

        # man page
        env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
        p = subprocess.run(["man", "--warnings", "-E", "UTF-8", "sidetap"], capture_output=True, text=True, env=env)
        check(p.returncode == 0 and p.stderr.strip() == "", f"man --warnings sidetap: no warning ({p.stderr.strip()[:300]})")
        page = p.stdout
        for sub in ("replay", "capture", "read", "listen"):
            helptext = tl.run(["/usr/bin/sidetap", sub, "--help"]).stdout
            options = set(re.findall(r"^\s+(?:-\w,)?(--[a-z0-9-]+)", helptext, re.M))
            missing = [o for o in options if o not in page]
            check(options and not missing, f"sidetap(1) names every option of `{sub} --help` ({len(options)}; missing {missing})")

        # systemd-analyze verify: silent for every unit
        units = ["sidetap.service", "sidetap@pkgtest.service", "sidetap-ebpf@pkgtest.service",
                 "sidetap-collector@pkgtest.service"]
        p = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True)
        check(p.returncode == 0 and not p.stderr.strip() and not p.stdout.strip(),
              f"systemd-analyze verify accepts {units} ({p.stderr.strip()[:500]})")

        # The units' ExecStart, as the units run it.
        for d in ("/var/lib/sidetap", "/var/log/sidetap"):  # StateDirectory=, LogsDirectory=
            tl.run(["install", "-d", "-o", "sidetap", "-g", "sidetap", "-m", "0750", d])
        with netns.NetNS("pkg") as ns:
            out = "/var/lib/sidetap/pkgtest-capture.dnstap"
            recs = run_unit("/lib/systemd/system/sidetap@.service", "pkgtest-capture",
                            f'[capture]\ninterface = ["lo"]\noutput = ["{out}"]\nidentity = "pkgtest"\n',
                            out, ns, send_queries(20), True)
            cq = [r for r in recs if r.get("type") == "CLIENT_QUERY"]
            check(len(cq) == 20, f"sidetap@ (libpcap, CAP_NET_RAW): {len(cq)} CLIENT_QUERY of 20 in {out}")

            if "eBPF" in v:
                out = "/var/lib/sidetap/pkgtest-ebpf.dnstap"
                recs = run_unit("/lib/systemd/system/sidetap-ebpf@.service", "pkgtest-ebpf",
                                f'[capture]\nebpf = "socket"\ninterface = ["lo"]\noutput = ["{out}"]\n',
                                out, ns, send_queries(20), True)
                cq = [r for r in recs if r.get("type") == "CLIENT_QUERY"]
                check(len(cq) == 20, f"sidetap-ebpf@ (--ebpf socket): {len(cq)} CLIENT_QUERY of 20 in {out}")

            out = "/var/log/sidetap/pkgtest-replay.dnstap"
            recs = run_unit("/lib/systemd/system/sidetap-collector@.service", "pkgtest-replay",
                            f'[replay]\nfile = ["{sample}"]\noutput = ["{out}"]\nquiet = true\n',
                            out, ns, None, False)
            check(len(recs) == len(records), f"sidetap-collector@ (replay, no capability): {len(recs)} messages")

        # purge
        tl.run(["dpkg", "--purge", "sidetap"])
        installed = False
        left = [f for f in files if os.path.lexists(f)]
        check(not left, f"purge removed every file of the package (left: {left})")
        for d in ("/etc/sidetap", "/var/lib/sidetap", "/var/log/sidetap"):
            check(not os.path.exists(d), f"purge removed {d}")
        check(tl.run(["getent", "passwd", "sidetap"], check=False).returncode == 0,
              "the system user sidetap stays after purge (documented)")
    finally:
        if installed:
            subprocess.run(["dpkg", "--purge", "sidetap"], capture_output=True)
        if not user_existed:
            subprocess.run(["deluser", "--system", "--quiet", "sidetap"], capture_output=True)
            subprocess.run(["delgroup", "--system", "--quiet", "sidetap"], capture_output=True)
    print("test_package: all checks passed")


if __name__ == "__main__":
    main()
