package spoof

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/overlaynet/overlaynet/ethaddr"
)

// EtherIPv6 is IPv6's ethertype.
const EtherIPv6 = 0x86dd

// ICMPv6 message types of Neighbor Discovery (RFC 4861).
const (
	ICMPv6RS       = 133
	ICMPv6RA       = 134
	ICMPv6NS       = 135
	ICMPv6NA       = 136
	ICMPv6Redirect = 137
)

// NA flags (RFC 4861 4.4), in the first byte after the checksum.
const (
	NARouter    = 0x80
	NASolicited = 0x40
	NAOverride  = 0x20
)

// IPv6 returns an IPv6 packet from src to dst carrying payload as
// nextHeader, with hop limit hops.
func IPv6(src, dst netip.Addr, nextHeader, hops byte, payload []byte) []byte {
	p := make([]byte, 40, 40+len(payload))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:6], uint16(len(payload)))
	p[6], p[7] = nextHeader, hops
	s, d := src.As16(), dst.As16()
	copy(p[8:24], s[:])
	copy(p[24:40], d[:])
	return append(p, payload...)
}

// checksum6 is the checksum of an upper-layer message over IPv6 (RFC 8200
// 8.1): the pseudo-header, then msg, whose checksum field is zero.
func checksum6(src, dst netip.Addr, proto byte, msg []byte) uint16 {
	s, d := src.As16(), dst.As16()
	b := make([]byte, 0, 40+len(msg)+1)
	b = append(b, s[:]...)
	b = append(b, d[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(msg)))
	b = append(b, 0, 0, 0, proto)
	b = append(b, msg...)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	return checksum(b)
}

// UDP6 returns an IPv6 packet carrying a UDP datagram, checksum set (IPv6
// receivers drop a zero one).
func UDP6(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	u := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(u[0:2], sport)
	binary.BigEndian.PutUint16(u[2:4], dport)
	binary.BigEndian.PutUint16(u[4:6], uint16(len(u)))
	copy(u[8:], payload)
	binary.BigEndian.PutUint16(u[6:8], checksum6(src, dst, unix.IPPROTO_UDP, u))
	return IPv6(src, dst, unix.IPPROTO_UDP, 64, u)
}

// ICMPv6 returns an IPv6 packet (hop limit 255, as Neighbor Discovery
// requires) carrying an ICMPv6 message of type typ and code whose body
// follows the checksum; the checksum is set.
func ICMPv6(src, dst netip.Addr, typ, code byte, body []byte) []byte {
	m := append([]byte{typ, code, 0, 0}, body...)
	binary.BigEndian.PutUint16(m[2:4], checksum6(src, dst, unix.IPPROTO_ICMPV6, m))
	return IPv6(src, dst, unix.IPPROTO_ICMPV6, 255, m)
}

// LLAddrOption is a Neighbor Discovery link-layer address option: 1 for a
// source's, 2 for a target's.
func LLAddrOption(kind byte, mac ethaddr.MAC) []byte {
	return append([]byte{kind, 1}, mac[:]...)
}

// NS returns the body of a Neighbor Solicitation for target, with opts
// (nil: none) after it.
func NS(target netip.Addr, opts ...[]byte) []byte {
	t := target.As16()
	b := append(make([]byte, 4), t[:]...)
	for _, o := range opts {
		b = append(b, o...)
	}
	return b
}

// NA returns the body of a Neighbor Advertisement "target is at mac" with
// flags (NARouter, NASolicited, NAOverride).
func NA(flags byte, target netip.Addr, mac ethaddr.MAC) []byte {
	t := target.As16()
	b := append([]byte{flags, 0, 0, 0}, t[:]...)
	return append(b, LLAddrOption(2, mac)...)
}

// RA returns the body of a Router Advertisement from a router at mac with
// the given router lifetime (seconds: the receiver's default route) and an
// autonomous on-link prefix (a /64 the receiver makes an address in).
func RA(lifetime uint16, mac ethaddr.MAC, prefix netip.Prefix) []byte {
	b := []byte{64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(b[2:4], lifetime)
	b = append(b, LLAddrOption(1, mac)...)
	pi := make([]byte, 32)
	pi[0], pi[1], pi[2], pi[3] = 3, 4, byte(prefix.Bits()), 0xc0 // on-link, autonomous
	binary.BigEndian.PutUint32(pi[4:8], 86400)
	binary.BigEndian.PutUint32(pi[8:12], 14400)
	a := prefix.Masked().Addr().As16()
	copy(pi[16:], a[:])
	return append(b, pi...)
}

// Redirect returns the body of a redirect: "dst is better reached via
// target".
func Redirect(target, dst netip.Addr) []byte {
	t, d := target.As16(), dst.As16()
	b := append(make([]byte, 4), t[:]...)
	return append(b, d[:]...)
}

// SolicitedNode returns the solicited-node multicast address of a (RFC
// 4291 2.7.1), where a Neighbor Solicitation for a goes.
func SolicitedNode(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}

// MulticastMAC returns the Ethernet address of IPv6 multicast group g
// (33:33 and its last four bytes).
func MulticastMAC(g netip.Addr) ethaddr.MAC {
	b := g.As16()
	return ethaddr.MAC{0x33, 0x33, b[12], b[13], b[14], b[15]}
}
