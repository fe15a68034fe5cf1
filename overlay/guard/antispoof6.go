package guard

import (
	"encoding/binary"
	"net/netip"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/overlaynet/overlaynet/overlay/nft"
)

// ICMPv6 message types the IPv6 rules look at (RFC 4861), and DHCPv6's
// server port (RFC 8415).
const (
	icmp6NS       = 135 // Neighbor Solicitation
	icmp6NA       = 136 // Neighbor Advertisement
	icmp6RA       = 134 // Router Advertisement
	icmp6Redirect = 137 // Redirect
	dhcp6Server   = 547

	// ndMaxLen is the longest Neighbor Solicitation or Advertisement a
	// Linux host sends: the 24-byte message and one 8-byte option (its
	// link-layer address, or a duplicate address probe's nonce).
	ndMaxLen = 32
)

// LinkLocal returns the link-local address the kernel gives an interface
// with MAC mac by default (modified EUI-64, RFC 4291): the one link-local
// source a port's rules let through.
func LinkLocal(mac [6]byte) netip.Addr {
	return netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80,
		8: mac[0] ^ 0x02, 9: mac[1], 10: mac[2], 11: 0xff, 12: 0xfe, 13: mac[3], 14: mac[4], 15: mac[5]})
}

// ipv6Rules are the rules of p's IPv6 address, the IPv6 guard. Sources: a
// port's IPv6 packets come from its address, from the link-local address
// its MAC gives (LinkLocal; attach leaves the container without one, but a
// container that makes it can use it, and it names the port alone), or
// from the unspecified address :: as ICMPv6 towards a multicast group (MLD
// reports of a container with no link-local address, duplicate address
// probes). Neighbor Discovery: a Neighbor Advertisement, or a duplicate
// address probe, is about the port's own addresses; a Neighbor
// Solicitation or Advertisement carries at most one option, and the
// link-layer address it names is the port's MAC (as ARP's sender MAC is
// checked). Router Advertisements (RA guard), redirects and DHCPv6 server
// or relay messages do not come from containers. ICMPv6 and UDP are found
// past extension headers (meta l4proto, the transport header).
func ipv6Rules(p Port) []nft.Rule {
	ip, ll := p.IP6.As16(), LinkLocal(p.MAC).As16()
	var zero [16]byte
	v6 := etherType(expr.CmpOpEq, etherIPv6)
	notOwn := func(offset uint32, base expr.PayloadBase) []expr.Any {
		return nft.Concat(field(base, offset, 16, expr.CmpOpNeq, ip[:]), field(base, offset, 16, expr.CmpOpNeq, ll[:]))
	}
	tag := func(r Reason, what string) string { return portTag(p.HostIf, r) + " " + what }
	icmp6 := func(typ byte) []expr.Any {
		return nft.Concat(l4proto(expr.CmpOpEq, unix.IPPROTO_ICMPV6), th(0, 1, expr.CmpOpEq, []byte{typ}))
	}
	return []nft.Rule{
		{Tag: tag(ReasonSrcIP, "ip6"), Exprs: nft.Concat(v6, notOwn(8, expr.PayloadBaseNetworkHeader),
			netField(8, 16, expr.CmpOpNeq, zero[:]), dropCounted())},
		{Tag: tag(ReasonSrcIP, "ip6 unspecified"), Exprs: nft.Concat(v6, netField(8, 16, expr.CmpOpEq, zero[:]),
			netField(24, 1, expr.CmpOpNeq, []byte{0xff}), dropCounted())},
		{Tag: tag(ReasonSrcIP, "ip6 unspecified l4"), Exprs: nft.Concat(v6, netField(8, 16, expr.CmpOpEq, zero[:]),
			l4proto(expr.CmpOpNeq, unix.IPPROTO_ICMPV6), dropCounted())},
		{Tag: tag(ReasonNDTarget, "dad"), Exprs: nft.Concat(v6, netField(8, 16, expr.CmpOpEq, zero[:]), icmp6(icmp6NS),
			notOwn(8, expr.PayloadBaseTransportHeader), dropCounted())},
		{Tag: tag(ReasonNDTarget, "na"), Exprs: nft.Concat(v6, icmp6(icmp6NA), notOwn(8, expr.PayloadBaseTransportHeader), dropCounted())},
		{Tag: tag(ReasonNDLLAddr, "options"), Exprs: nft.Concat(v6, l4proto(expr.CmpOpEq, unix.IPPROTO_ICMPV6),
			th(0, 1, expr.CmpOpGte, []byte{icmp6NS}), th(0, 1, expr.CmpOpLte, []byte{icmp6NA}),
			netField(4, 2, expr.CmpOpGt, binary.BigEndian.AppendUint16(nil, ndMaxLen)), dropCounted())},
		{Tag: tag(ReasonNDLLAddr, "ns"), Exprs: nft.Concat(v6, icmp6(icmp6NS), th(24, 1, expr.CmpOpEq, []byte{1}),
			th(26, 6, expr.CmpOpNeq, p.MAC[:]), dropCounted())},
		{Tag: tag(ReasonNDLLAddr, "na"), Exprs: nft.Concat(v6, icmp6(icmp6NA), th(24, 1, expr.CmpOpEq, []byte{2}),
			th(26, 6, expr.CmpOpNeq, p.MAC[:]), dropCounted())},
		{Tag: tag(ReasonRouterAdvert, "icmpv6"), Exprs: nft.Concat(v6, icmp6(icmp6RA), dropCounted())},
		{Tag: tag(ReasonRedirect, "icmpv6"), Exprs: nft.Concat(v6, icmp6(icmp6Redirect), dropCounted())},
		{Tag: tag(ReasonDHCP6Server, "udp 547"), Exprs: nft.Concat(v6, l4proto(expr.CmpOpEq, unix.IPPROTO_UDP),
			th(0, 2, expr.CmpOpEq, binary.BigEndian.AppendUint16(nil, dhcp6Server)), dropCounted())},
	}
}

// field compares n bytes at offset of header base with v.
func field(base expr.PayloadBase, offset, n uint32, op expr.CmpOp, v []byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: base, Offset: offset, Len: n},
		&expr.Cmp{Op: op, Register: 1, Data: v},
	}
}

// th compares n bytes at offset of the transport header (past IPv6
// extension headers) with v.
func th(offset, n uint32, op expr.CmpOp, v []byte) []expr.Any {
	return field(expr.PayloadBaseTransportHeader, offset, n, op, v)
}

// l4proto compares the packet's transport protocol (`meta l4proto`) with
// proto.
func l4proto(op expr.CmpOp, proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: []byte{proto}},
	}
}
