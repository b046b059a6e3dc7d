#!/usr/bin/env python3
"""Container sidecar, checked without a container engine (root, serial).

Runtime root file system: the .deb unpacked (dpkg-deb -x) plus exactly the
shared libraries `ldd` lists for /usr/bin/sidetap and nothing else, the
user 10053 of the Containerfile, and the file capabilities the Containerfile
sets (cap_net_raw,cap_net_admin,cap_bpf+p). Run with chroot as uid 10053:
  - --version and a replay of pcaps/sample.pcap (the same bytes as the build
    tree's binary);
  - like the sidecar pod (capabilities: drop ALL, add NET_RAW): bounding set
    {NET_RAW} -> sidetap runs with CAP_NET_RAW alone and captures on lo;
  - like the eBPF DaemonSet (add BPF, NET_ADMIN): --ebpf tc on lo runs with
    CAP_BPF and CAP_NET_ADMIN alone and captures (when eBPF is built in).
Kubernetes manifests (python3-yaml): every document parses and has
apiVersion/kind/metadata.name; workloads' containers have an image, the
image's non-root user, drop ALL and add exactly the capabilities their
sidetap mode needs; volume mounts name defined volumes; Services select
pods that exist and target named ports; each sidetap configuration in a
ConfigMap is accepted by sidetap (only the environment fails: no eth0, no
certificates); the embedded shell script passes `bash -n`.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "root"))
sys.path.insert(0, HERE)
import netns  # noqa: E402
import sidetap_testlib as tl  # noqa: E402
from test_package import build_deb, build_dir_arg, check, proc_caps, CAP_NAMES  # noqa: E402

SIDETAP = tl.sidetap_arg()
UID = 10053
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}  # nothing else leaks into the "container"
K8S = os.path.join(tl.SOURCE_DIR, "packaging", "kubernetes")
CONTAINERFILE = os.path.join(tl.SOURCE_DIR, "packaging", "container", "Containerfile")
QUERY = bytes.fromhex("00000100000100000000000003777777076578616d706c6503636f6d0000010001")
SENDER = """
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
q = bytes.fromhex(sys.argv[1])
for i in range(int(sys.argv[2])):
    s.sendto(struct.pack(">H", i) + q[2:], ("127.0.0.1", 53))
    time.sleep(0.01)
"""
# What each sidetap mode needs (README: live capture, eBPF table).
MODE_CAPS = {"pcap": {"NET_RAW"}, "socket": {"BPF", "NET_RAW"}, "tc": {"BPF", "NET_ADMIN"},
             "cgroup": {"BPF", "NET_ADMIN"}, "listen": set(), "replay": set(), "read": set()}


def make_rootfs(deb, root):
    tl.run(["dpkg-deb", "-x", deb, root])
    binary = os.path.join(root, "usr", "bin", "sidetap")
    libs = []
    for line in tl.run(["ldd", binary]).stdout.splitlines():
        m = re.search(r"(/\S+) \(0x", line)
        if m:
            libs.append(m.group(1))
    for lib in libs:
        dest = root + lib
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(os.path.realpath(lib), dest)
    os.makedirs(os.path.join(root, "etc"), exist_ok=True)
    with open(os.path.join(root, "etc", "passwd"), "w") as f:
        f.write(f"root:x:0:0:root:/root:/nonexistent\nsidetap:x:{UID}:{UID}::/nonexistent:/nonexistent\n")
    with open(os.path.join(root, "etc", "group"), "w") as f:
        f.write(f"root:x:0:\nsidetap:x:{UID}:\n")
    for d in ("out", "data", "sys", "proc"):
        os.makedirs(os.path.join(root, d))
    os.chown(os.path.join(root, "out"), UID, UID)
    shutil.copy(os.path.join(tl.OWN_PCAPS, "sample.pcap"), os.path.join(root, "data"))
    # As the Containerfile does.
    caps = re.search(r"setcap (\S+) /usr/bin/sidetap", open(CONTAINERFILE).read()).group(1)
    tl.run(["setcap", caps, binary])
    return libs, caps


def in_container(root, bounding, argv):
    """argv in `root` as uid 10053, capability bounding set `bounding` (the pod's add: list)."""
    keep = ",".join("+" + c.lower() for c in sorted(bounding | {"SYS_CHROOT", "SETUID", "SETGID"}))
    return ["setpriv", f"--bounding-set=-all,{keep}", "chroot", f"--userspec={UID}:{UID}", root, *argv]


def container_capture(ns, root, caps, args, out_name, name):
    """A capture in the root file system with /sys and /proc mounted as a
    container runtime does (in `ip netns exec`'s private mount namespace)."""
    out = os.path.join(root, "out", out_name)
    argv = in_container(root, caps, ["/usr/bin/sidetap", "capture", *args, "-w", "/out/" + out_name])
    mounts = f"mount --rbind /sys {root}/sys && mount -t proc proc {root}/proc && exec \"$@\""
    proc = ns.spawn(["sh", "-c", mounts, "sh", *argv], name=name)
    try:
        proc.wait_for_line(r"capturing on", 20)
        st = proc_caps(proc.pid)
        want = sum(1 << CAP_NAMES["CAP_" + c] for c in caps)
        check(int(st["Uid"].split()[0]) == UID, f"{name}: runs as uid {UID}")
        check(int(st["CapEff"], 16) == want and int(st["CapPrm"], 16) == want,
              f"{name}: effective = permitted = {sorted(caps)} ({st['CapEff']})")
        ns.run(["python3", "-c", SENDER, QUERY.hex(), "20"])
        time.sleep(0.5)
        rc = proc.stop()
    finally:
        proc.stop()
    print(proc.text())
    check(rc == 0, f"{name}: exit 0")
    cq = [r for r in tl.read_dnstap_file(out) if r.get("type") == "CLIENT_QUERY"]
    check(len(cq) == 20, f"{name}: 20 CLIENT_QUERY of 20 ({len(cq)})")


def sidetap_mode(args, config):
    """The sidetap mode of a container from its args and its configuration."""
    joined = " ".join(args)
    if "capture" in args or config.get("capture") is not None:
        section = config.get("capture", {})
        m = re.search(r"--ebpf (\w+)", joined)
        return m.group(1) if m else section.get("ebpf", "pcap")
    for sub in ("listen", "replay", "read"):
        if sub in args or sub in config:
            return sub
    raise AssertionError(f"no sidetap mode in {args} / {config}")


def check_manifests(work):
    files = sorted(f for f in os.listdir(K8S) if f.endswith(".yaml"))
    check(len(files) >= 3, f"manifests: {files}")
    docs = []
    for f in files:
        for d in yaml.safe_load_all(open(os.path.join(K8S, f))):
            check(d and d.get("apiVersion") and d.get("kind") and d["metadata"].get("name"),
                  f"{f}: {d.get('kind')} {d['metadata'].get('name')} has apiVersion, kind, metadata.name")
            docs.append((f, d))
    by_kind = lambda k: [(f, d) for f, d in docs if d["kind"] == k]
    configmaps = {d["metadata"]["name"]: d["data"] for _, d in by_kind("ConfigMap")}
    pods = []
    for kind in ("Deployment", "DaemonSet"):
        for f, d in by_kind(kind):
            spec = d["spec"]
            check(spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items(),
                  f"{f}: {kind} selector matches its pod labels")
            pods.append((f, spec["template"]))
    sidetap_containers = 0
    for f, tpl in pods:
        volumes = {v["name"]: v for v in tpl["spec"].get("volumes", [])}
        for c in tpl["spec"]["containers"]:
            check(c.get("image"), f"{f}: container {c['name']} has an image")
            for m in c.get("volumeMounts", []):
                check(m["name"] in volumes, f"{f}: {c['name']} mounts defined volume {m['name']}")
                if "configMap" in volumes[m["name"]]:
                    check(volumes[m["name"]]["configMap"]["name"] in configmaps,
                          f"{f}: ConfigMap {volumes[m['name']]['configMap']['name']} is in the manifests")
            if not c["image"].startswith("sidetap"):
                continue
            sidetap_containers += 1
            sc = c["securityContext"]
            check(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == UID,
                  f"{f}: {c['name']} runs as non-root uid {UID} (the image's user)")
            args = c.get("args", []) + c.get("command", [])
            config_path = next((args[i + 1] for i, a in enumerate(args) if a == "--config"), None)
            config = {}
            for m in c.get("volumeMounts", []):
                v = volumes[m["name"]]
                if "configMap" in v and config_path and config_path.startswith(m["mountPath"] + "/"):
                    data = configmaps[v["configMap"]["name"]]
                    name = os.path.basename(config_path)
                    if name in data:
                        config = tomllib.loads(data[name])
                        check_config_accepted(work, f, data[name])
                    for key, text in data.items():
                        if key.endswith(".sh"):
                            p = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
                            check(p.returncode == 0, f"{f}: {key} passes bash -n ({p.stderr})")
            check(config, f"{f}: {c['name']}'s --config {config_path} is in a mounted ConfigMap")
            mode = sidetap_mode(args, config)
            caps = sc["capabilities"]
            check(caps.get("drop") == ["ALL"] and set(caps.get("add", [])) == MODE_CAPS[mode],
                  f"{f}: {c['name']} ({mode}) drops ALL and adds exactly {sorted(MODE_CAPS[mode])}")
            if MODE_CAPS[mode]:
                check(sc.get("allowPrivilegeEscalation") is True,
                      f"{f}: {c['name']} allows the exec-time file capabilities")
    check(sidetap_containers >= 3, f"{sidetap_containers} sidetap containers")
    # Services select pods that exist, on named ports they expose.
    for f, svc in by_kind("Service"):
        sel = svc["spec"]["selector"]
        match = [tpl for _, tpl in pods if sel.items() <= tpl["metadata"]["labels"].items()]
        check(match, f"{f}: Service {svc['metadata']['name']} selects a pod")
        names = {p.get("name") for tpl in match for c in tpl["spec"]["containers"] for p in c.get("ports", [])}
        for p in svc["spec"]["ports"]:
            check(p["targetPort"] in names, f"{f}: Service port {p['port']} -> {p['targetPort']}")
    # Outputs to the collector use its Service name and port.
    services = {f"{s['metadata']['name']}.{s['metadata']['namespace']}.svc.cluster.local:{p['port']}"
                for _, s in by_kind("Service") for p in s["spec"]["ports"]}
    for data in configmaps.values():
        for text in data.values():
            for target in re.findall(r"tls://([^\"?]+)", text):
                check(target in services, f"output tls://{target} is a Service of the manifests")
    # The example configuration shipped for the sidecar is the ConfigMap's.
    example = open(os.path.join(tl.SOURCE_DIR, "packaging", "examples", "kubernetes-sidecar.toml")).read()
    check(tomllib.loads(example) == tomllib.loads(configmaps["sidetap-sidecar"]["sidetap.toml"]),
          "examples/kubernetes-sidecar.toml is the sidecar's ConfigMap")


def check_config_accepted(work, where, text):
    path = os.path.join(work, "cm.toml")
    with open(path, "w") as f:
        f.write(text)
    doc = tomllib.loads(text)
    sub = next(iter(doc))
    override = []
    if sub == "capture":
        override = (["--cgroup", "/sys/fs/cgroup/sidetap-test-none"] if doc[sub].get("ebpf") == "cgroup"
                    else ["-i", "sidetap-none0"])
    p = subprocess.run([SIDETAP, sub, "--config", path, *override, "-w", os.path.join(work, "cm.dnstap")],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode != 0 and "config file" not in p.stderr and path not in p.stderr,
          f"{where}: sidetap accepts the [{sub}] configuration ({p.stderr.strip()[:200]})")


def main():
    netns.require_root("test_container")
    netns.exit_on_sigterm()
    build_dir = build_dir_arg()
    deb = build_deb(build_dir)
    with tempfile.TemporaryDirectory() as work:
        check_manifests(work)
        root = os.path.join(work, "rootfs")
        libs, caps = make_rootfs(deb, root)
        print("libraries:", libs)
        got = tl.run(["getcap", os.path.join(root, "usr/bin/sidetap")]).stdout.split()[-1]
        want_names, want_flags = caps.split("+")
        check(got.split("=") == [",".join(sorted(got.split("=")[0].split(","))), want_flags] or
              (set(got.split("=")[0].split(",")) == set(want_names.split(",")) and got.split("=")[1] == want_flags),
              f"file capabilities {caps} ({got})")
        v = tl.run(in_container(root, set(), ["/usr/bin/sidetap", "--version"]), env=CLEAN_ENV).stdout
        print(v)
        check(v.startswith("sidetap ") and "libpcap" in v, "--version runs with only the ldd libraries")
        tl.run(in_container(root, set(), ["/usr/bin/sidetap", "replay", "-q", "--identity", "c", "--version", "p",
                                          "-w", "/out/replay.dnstap", "/data/sample.pcap"]), env=CLEAN_ENV)
        tl.run([SIDETAP, "replay", "-q", "--identity", "c", "--version", "p", "-w",
                os.path.join(work, "tree.dnstap"), os.path.join(tl.OWN_PCAPS, "sample.pcap")])
        check(open(os.path.join(root, "out", "replay.dnstap"), "rb").read() ==
              open(os.path.join(work, "tree.dnstap"), "rb").read(), "replay in the root file system: same bytes")
        with netns.NetNS("ctr") as ns:
            container_capture(ns, root, {"NET_RAW"}, ["-i", "lo"], "pcap.dnstap", "sidecar (NET_RAW)")
            if "eBPF" in v:
                container_capture(ns, root, {"BPF", "NET_ADMIN"}, ["--ebpf", "tc", "-i", "lo"], "tc.dnstap",
                                  "ebpf (BPF, NET_ADMIN)")
    print("test_container: all checks passed")


if __name__ == "__main__":
    main()
