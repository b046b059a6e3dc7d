"""Shared helpers for sidetap's end-to-end and root tests.

read_dnstap_file() is an independent, minimal Frame Streams + protobuf
decoder (written from the wire format, not from sidetap's code), so tests can
compare exact bytes, addresses, ports and times.
"""
import ipaddress
import os
import struct
import subprocess
import sys

SOURCE_DIR = os.environ.get("SIDETAP_SOURCE_DIR",
                            os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
# Public captures copied into the repository (tests/data/*/SOURCES.md: origin, commit, licence);
# copyleft ones are kept in their own folder.
PUBLIC_CAPTURE_DIRS = [os.path.join(SOURCE_DIR, "tests", "data", "public"),
                       os.path.join(SOURCE_DIR, "tests", "data", "public-copyleft")]
OWN_PCAPS = os.path.join(SOURCE_DIR, "pcaps")

MESSAGE_TYPES = {1: "AUTH_QUERY", 2: "AUTH_RESPONSE", 3: "RESOLVER_QUERY", 4: "RESOLVER_RESPONSE",
                 5: "CLIENT_QUERY", 6: "CLIENT_RESPONSE", 7: "FORWARDER_QUERY", 8: "FORWARDER_RESPONSE",
                 9: "STUB_QUERY", 10: "STUB_RESPONSE", 11: "TOOL_QUERY", 12: "TOOL_RESPONSE",
                 13: "UPDATE_QUERY", 14: "UPDATE_RESPONSE"}
FAMILIES = {1: "INET", 2: "INET6"}
PROTOCOLS = {1: "UDP", 2: "TCP", 3: "DOT", 4: "DOH", 5: "DNSCryptUDP", 6: "DNSCryptTCP", 7: "DOQ"}
CONTENT_TYPE = b"protobuf:dnstap.Dnstap"


def public_capture(name):
    """Path of a public capture by file name, whichever folder (licence) it is in."""
    for d in PUBLIC_CAPTURE_DIRS:
        path = os.path.join(d, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"no public capture {name} in {PUBLIC_CAPTURE_DIRS}")


def public_captures():
    """Every public capture (pcap/pcapng), sorted by file name."""
    files = [os.path.join(d, f) for d in PUBLIC_CAPTURE_DIRS for f in os.listdir(d)
             if f.endswith((".pcap", ".pcapng"))]
    return sorted(files, key=os.path.basename)


def _varint(buf, pos):
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def parse_protobuf(buf):
    """Returns {field_number: [values]}; length-delimited values stay bytes."""
    fields = {}
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 1:
            val = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wt == 2:
            n, pos = _varint(buf, pos)
            val = bytes(buf[pos:pos + n])
            pos += n
        elif wt == 5:
            val = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise ValueError("bad wire type %d" % wt)
        fields.setdefault(num, []).append(val)
    return fields


def _addr(b):
    if b is None:
        return None
    return str(ipaddress.ip_address(b))


def decode_dnstap(frame):
    """One Dnstap frame -> flat dict (missing fields are absent)."""
    top = parse_protobuf(frame)
    d = {"dnstap_type": top.get(15, [None])[0]}
    for num, name in ((1, "identity"), (2, "version"), (3, "extra")):
        if num in top:
            d[name] = top[num][0]
    if 14 in top:
        m = parse_protobuf(top[14][0])
        one = lambda n: m[n][0] if n in m else None
        d["type"] = MESSAGE_TYPES.get(one(1), one(1))
        if 2 in m: d["socket_family"] = FAMILIES.get(one(2), one(2))
        if 3 in m: d["socket_protocol"] = PROTOCOLS.get(one(3), one(3))
        if 4 in m: d["query_address"] = _addr(one(4))
        if 5 in m: d["response_address"] = _addr(one(5))
        if 6 in m: d["query_port"] = one(6)
        if 7 in m: d["response_port"] = one(7)
        if 8 in m: d["query_time_ns"] = one(8) * 1_000_000_000 + (one(9) or 0)
        if 10 in m: d["query_message"] = one(10)
        if 11 in m: d["query_zone"] = one(11)
        if 12 in m: d["response_time_ns"] = one(12) * 1_000_000_000 + (one(13) or 0)
        if 14 in m: d["response_message"] = one(14)
        if 16 in m: d["http_protocol"] = one(16)
    return d


def read_frames(path):
    """Returns (content_type or None, [frame bytes], saw_stop). Raises on bad framing."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    frames = []
    content_type = None
    saw_start = saw_stop = False
    while pos < len(data):
        if pos + 4 > len(data):
            raise ValueError("truncated frame length at %d" % pos)
        (n,) = struct.unpack_from(">I", data, pos)
        pos += 4
        if n == 0:
            (clen,) = struct.unpack_from(">I", data, pos)
            pos += 4
            ctrl = data[pos:pos + clen]
            pos += clen
            (ctype,) = struct.unpack_from(">I", ctrl, 0)
            if ctype == 2:
                saw_start = True
                if len(ctrl) >= 12:
                    (flen,) = struct.unpack_from(">I", ctrl, 8)
                    content_type = ctrl[12:12 + flen]
            elif ctype == 3:
                saw_stop = True
                if pos != len(data):
                    raise ValueError("data after STOP")
            continue
        if not saw_start:
            raise ValueError("data frame before START")
        if pos + n > len(data):
            raise ValueError("truncated data frame at %d" % pos)
        frames.append(data[pos:pos + n])
        pos += n
    return content_type, frames, saw_stop


def read_dnstap_file(path, require_stop=True):
    content_type, frames, saw_stop = read_frames(path)
    if content_type != CONTENT_TYPE:
        raise ValueError("content type %r" % content_type)
    if require_stop and not saw_stop:
        raise ValueError("no STOP frame at end of %s" % path)
    return [decode_dnstap(f) for f in frames]


def run(cmd, check=True, **kw):
    """Runs a command, returns CompletedProcess with text stdout/stderr."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise AssertionError("command failed (%d): %s\nstdout:\n%s\nstderr:\n%s"
                             % (p.returncode, " ".join(map(str, cmd)), p.stdout[-4000:], p.stderr[-4000:]))
    return p


def sidetap_arg():
    """Path to the sidetap binary from --sidetap (ctest passes it)."""
    if "--sidetap" in sys.argv:
        i = sys.argv.index("--sidetap")
        path = sys.argv[i + 1]
        del sys.argv[i:i + 2]
        return path
    return os.path.join(SOURCE_DIR, "build", "sidetap")


def require_tool(path_or_name, what=None):
    """Fails (never skips) when a test peer is missing: scripts/install-deps.sh
    installs every one, so a missing tool is a broken setup, not a reason to pass."""
    import shutil
    if not path_or_name or (not os.path.isabs(str(path_or_name)) and shutil.which(path_or_name) is None) \
            or (os.path.isabs(str(path_or_name)) and not os.access(path_or_name, os.X_OK)):
        raise AssertionError("%s is not installed (scripts/install-deps.sh)" % (what or path_or_name))
