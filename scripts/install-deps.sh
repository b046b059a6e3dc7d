#!/usr/bin/env bash
# Installs what sidetap's build and test suite need on Debian 12 (bookworm).
# Idempotent: checks every package with dpkg-query first and touches apt only
# when something is missing (then one `apt-get update` + one `apt-get install`).
# Needs root (or sudo) only when it has something to install.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config clang
  libpcap-dev libprotobuf-dev protobuf-compiler libldns-dev libcli11-dev libgtest-dev libssl-dev
  # build: HPACK (HTTP/2 header compression) for DNS over HTTPS read by the TLS probes
  libnghttp2-dev
  # build (eBPF capture, -DSIDETAP_EBPF=ON): clang -target bpf compiles bpf/*.bpf.c against the
  # kernel UAPI headers (linux-libc-dev), bpftool generates the skeletons, libbpf loads them
  libbpf-dev bpftool linux-libc-dev
  # tests: interpreter, independent dnstap decoders, capture tools
  python3 tcpdump tshark
  golang-github-dnstap-golang-dnstap-cli dnstap-ldns fstrm-bin
  # tests: the openssl CLI makes the TLS tests' CA, server and client certificates
  openssl
  # tests: socat terminates TLS in front of fstrm_capture (tls:// output interop tests)
  socat
  # root tests: a real DNS server with dnstap, clients, namespaces
  knot knot-module-dnstap knot-dnsutils dnsperf iproute2 procps
  # root tests: capsh/setpriv run sidetap with a reduced capability set
  libcap2-bin util-linux
  # root tests: a forwarding resolver with dnstap; ethtool turns veth offloads off (real IP fragments)
  unbound ethtool
  # root tests (read/listen vs real servers): BIND 9.18 and Knot Resolver 5.6 with dnstap, dig
  bind9 bind9-dnsutils knot-resolver
  # bench: /usr/bin/time -v for peak RSS; tcpreplay sends captures onto a veth pair (lossless rate)
  time tcpreplay
  # package tests: build the .deb (dpkg-buildflags, dpkg-shlibdeps, fakeroot), check it (lintian),
  # install and purge it (adduser in postinst), render the man page (man-db, groff-base),
  # verify the systemd units (systemd-analyze), run the units' command lines (setpriv), build
  # the container root file system (setcap/getcap), parse the Kubernetes manifests, record
  # system calls against the units' SystemCallFilter= (strace)
  dpkg-dev fakeroot lintian adduser man-db groff-base systemd python3-yaml file strace
  # root tests (TLS probes): dnsdist 1.7 serving DoT/DoH with dnstap; curl multiplexes DoH
  # requests on one HTTP/2 connection (kdig +tls/+https/+https-get make the others)
  dnsdist curl
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=()
if ((EUID != 0)); then
  if command -v sudo >/dev/null; then
    SUDO=(sudo)
  else
    echo "install-deps: missing packages (${missing[*]}) and not root; run as root" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer "no" up front.
echo "wireshark-common wireshark-common/install-setuid boolean false" | "${SUDO[@]}" debconf-set-selections
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
