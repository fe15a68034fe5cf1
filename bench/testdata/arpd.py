#!/usr/bin/python3
"""arpd: the old lab's miss resolver, a benchmark peer of overlayd.

The "containers without Docker" lab answered the vxlan's misses with a small
Python daemon on pyroute2 (Debian's python3-pyroute2): it listened to the
overlay namespace's neighbour notifications and, for each miss on the vxlan,
read the directory store (STORE/arp/<ip> -> MAC, STORE/fdb/<mac> -> VTEP)
and programmed the answer, one request at a time, in its receive loop.

This is that daemon, with one change so that it does the job the benchmark
times: an L3 miss programs the neighbour entry IP -> MAC and then the FDB
entry MAC -> VTEP (the lab's programmed the neighbour entry only and waited
for the L2 miss of the next packet); an L2 miss programs the FDB entry.

Usage (inside the overlay namespace, e.g. nsenter --net=...):

    arpd.py STORE VXLAN [--preload]

--preload reads every record of STORE into a dict at start (the in-memory
registry of the benchmark); without it every miss reads the files, as the
lab did. It prints "ready" once subscribed. Any error ends it (as the lab's
did), with a message on stderr and a non-zero status.
"""

import os
import sys

from pyroute2 import IPRoute
from pyroute2.netlink.rtnl import RTMGRP_NEIGH
from pyroute2.netlink.rtnl.ndmsg import flags as ndflags
from pyroute2.netlink.rtnl.ndmsg import states


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: arpd.py STORE VXLAN [--preload]")
    store, vxlan = sys.argv[1], sys.argv[2]
    arp, fdb = {}, {}
    if "--preload" in sys.argv[3:]:
        for ip in os.listdir(os.path.join(store, "arp")):
            arp[ip] = read(os.path.join(store, "arp", ip))
        for mac in os.listdir(os.path.join(store, "fdb")):
            fdb[mac] = read(os.path.join(store, "fdb", mac))
        lookup_mac = arp.get
        lookup_vtep = fdb.get
    else:
        def lookup_mac(ip):
            return read(os.path.join(store, "arp", ip))

        def lookup_vtep(mac):
            return read(os.path.join(store, "fdb", mac))

    req = IPRoute()
    mon = IPRoute()
    mon.bind(groups=RTMGRP_NEIGH)
    idx = req.link_lookup(ifname=vxlan)[0]
    permanent = states["permanent"]
    self_flag = ndflags["self"]
    print("ready", flush=True)
    while True:
        for msg in mon.get():
            if msg["event"] != "RTM_GETNEIGH" or msg["ifindex"] != idx:
                continue
            ip = msg.get_attr("NDA_DST")
            if ip is not None:
                mac = lookup_mac(ip)
                if mac is None:
                    continue
                vtep = lookup_vtep(mac)
                req.neigh("replace", dst=ip, lladdr=mac, ifindex=idx, state=permanent)
                if vtep is not None:
                    req.fdb("replace", ifindex=idx, lladdr=mac, dst=vtep, state=permanent, flags=self_flag)
                continue
            mac = msg.get_attr("NDA_LLADDR")
            if mac is None:
                continue
            vtep = lookup_vtep(mac)
            if vtep is not None:
                req.fdb("replace", ifindex=idx, lladdr=mac, dst=vtep, state=permanent, flags=self_flag)


if __name__ == "__main__":
    main()
