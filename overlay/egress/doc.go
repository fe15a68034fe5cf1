// Package egress gives the containers of an overlay node a way out, and the
// node a way in: the node path, forwarding where the path needs it, and
// masquerade, all over netlink.
//
// What it owns on a node:
//   - the node path: a veth pair between the node's ("host") namespace
//     (HostIf, default "overlay0") and the overlay namespace (OverlayIf,
//     default "egress0"), on a small link subnet (Config.LinkSubnet, by
//     default the first /30 of 169.254.100.0/24 that collides with no
//     address or route of the node and not with the overlay subnet); the
//     overlay namespace's default route via the node end, and the node's
//     route to the overlay subnet via the overlay end, with the node's VTEP
//     address as source (so a container sees the node by its underlay
//     address);
//   - IPv4 forwarding, per device, only where the path needs it: the
//     bridge and OverlayIf in the overlay namespace, HostIf and the egress
//     device in the host namespace (set through rtnl's IFLA_INET_CONF, no
//     /proc write); each value it changed is recorded with the value it had,
//     and Teardown puts that value back;
//   - table inet overlaynet-egress, holding a nat postrouting chain with one
//     rule: packets from the overlay subnet to anything outside it, leaving
//     by the egress device, are masqueraded (the classic lab's `iptables -t
//     nat -A POSTROUTING -s SUBNET ! -o br0 -j MASQUERADE`);
//   - on a host with a base chain at the forward hook whose policy is drop
//     (Docker sets `iptables -P FORWARD DROP`; iptables-nft makes that table
//     ip filter, chain FORWARD), two accept rules appended to that chain,
//     as flannel does: `-s SUBNET -j ACCEPT` and `-d SUBNET -j ACCEPT`,
//     encoded exactly as iptables-nft encodes them (so `iptables -S` lists
//     them) and tagged with the comment "overlaynet-egress accept ...";
//     with Config.NoHostAccept set, Setup instead refuses, naming each such
//     chain and the rules it lacks, unless the operator added them.
//
// On a dual-stack overlay (Params.Subnet6) the path carries IPv6 too,
// unless Config.Mode6 is Mode6None: link-local ends (fe80::1, fe80::2) and
// the bridge's fe80::3, the overlay namespace's IPv6 default route and the
// node's route to the prefix via them, IPv6 forwarding per device where
// IPv4's is (force_forwarding, read over netlink, written in /proc/sys:
// the kernel takes no IPv6 device setting over netlink), NAT66 beside the
// IPv4 masquerade rule (Mode6Masquerade, the default; Mode6Route forwards
// the containers' own addresses), and accept rules in ip6 and inet forward
// chains with policy drop (as ip6tables-nft encodes them).
//
// Nothing else is touched: Teardown removes exactly the rules by their tags,
// the table, the veth pair (and with it its addresses and routes) and the
// forwarding values it recorded. A host whose forward policy is drop in
// legacy iptables (x_tables, invisible to nftables) is not detected.
package egress
