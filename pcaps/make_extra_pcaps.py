#!/usr/bin/env python3
"""Write the captures of the extra-template tests (issue 14).

    python3 pcaps/make_extra_pcaps.py            # writes next to this script
    python3 pcaps/make_extra_pcaps.py --out DIR

Deterministic, standard library only; reuses make_pcaps.py's builders.

extra-interfaces.pcapng  one section, three interfaces: 0 "mirror0" (Ethernet),
                         1 without if_name (RAW), 2 "trunk.7" (Ethernet).
                         One A exchange per interface (6 packets, 3 queries,
                         3 responses): {interface} is mirror0, 1, trunk.7.
extra-vlan.pcap          Ethernet: an untagged exchange, one on VLAN 10, one
                         on VLAN 20, then a query on VLAN 10 whose response
                         comes back on VLAN 20 (8 packets): {vlan} is empty,
                         10, 20, and 10 / 20 for the last query / response.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_pcaps as mp  # noqa: E402


def make_extra_interfaces():
    e = "<"
    out = mp.pcapng_shb(e, "sidetap extra-template interfaces")
    out += mp.pcapng_idb(e, mp.LINKTYPE_ETHERNET, 65535, None, name="mirror0")
    out += mp.pcapng_idb(e, mp.LINKTYPE_RAW, 65535, None)
    out += mp.pcapng_idb(e, mp.LINKTYPE_ETHERNET, 65535, None, name="trunk.7")
    ts = mp.times(6)
    i = 0
    for interface, exchange in ((0, mp.exchange_a(0x3101)), (1, mp.exchange_aaaa(0x3102)), (2, mp.exchange_mx(0x3103))):
        for d, s in mp.datagrams([(exchange, 42001 + interface, False)]):
            frame = d if interface == 1 else mp.ethernet(d, s)
            out += mp.pcapng_epb(e, interface, mp.ticks_for(ts[i], None), frame)
            i += 1
    return out


def make_extra_vlan():
    frames = []
    plan = [((), mp.exchange_a(0x3201), 43001), (((mp.ETH_8021Q, 10),), mp.exchange_aaaa(0x3202), 43002),
            (((mp.ETH_8021Q, 20),), mp.exchange_mx(0x3203), 43003)]
    for tags, exchange, port in plan:
        frames += [mp.ethernet(d, s, tags=list(tags)) for d, s in mp.datagrams([(exchange, port, False)])]
    (q, qs), (r, rs) = mp.datagrams([(mp.exchange_nxdomain(0x3204), 43004, False)])
    frames.append(mp.ethernet(q, qs, tags=[(mp.ETH_8021Q, 10)]))
    frames.append(mp.ethernet(r, rs, tags=[(mp.ETH_8021Q, 20)]))
    return mp.pcap_bytes(mp.records(frames), mp.LINKTYPE_ETHERNET)


FILES = [("extra-interfaces.pcapng", make_extra_interfaces), ("extra-vlan.pcap", make_extra_vlan)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()
    for name, maker in FILES:
        with open(os.path.join(args.out, name), "wb") as f:
            f.write(maker())


if __name__ == "__main__":
    main()
