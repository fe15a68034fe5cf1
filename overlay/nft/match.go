package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Expression builders, in the form nft (and, for IPv4 addresses,
// iptables-nft) writes them, so that both list the rules readably. Each
// returns the expressions of one statement; a rule is their concatenation.

// IPv4 restricts an inet-family rule to IPv4 packets (`meta nfproto
// ipv4`); it must come before matches on IPv4 header fields there. In the
// ip family it is not needed.
func IPv4() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
}

// IPv6 restricts an inet-family rule to IPv6 packets (`meta nfproto
// ipv6`), as IPv4 does to IPv4 packets.
func IPv6() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
	}
}

// SrcPrefix matches IPv4 source addresses in p (`ip saddr p`, or `ip
// saddr != p` with not).
func SrcPrefix(p netip.Prefix, not bool) ([]expr.Any, error) { return prefixMatch(12, p, not) }

// DstPrefix matches IPv4 destination addresses in p.
func DstPrefix(p netip.Prefix, not bool) ([]expr.Any, error) { return prefixMatch(16, p, not) }

// SrcPrefix6 matches IPv6 source addresses in p (`ip6 saddr p`, as
// ip6tables-nft encodes `-s p`).
func SrcPrefix6(p netip.Prefix, not bool) ([]expr.Any, error) { return prefixMatch6(8, p, not) }

// DstPrefix6 matches IPv6 destination addresses in p.
func DstPrefix6(p netip.Prefix, not bool) ([]expr.Any, error) { return prefixMatch6(24, p, not) }

// prefixMatch loads the address at offset of the IPv4 header and compares
// it with p as iptables-nft does: a whole-byte prefix compares only its
// bytes, any other loads the 4 bytes through a mask.
func prefixMatch(offset uint32, p netip.Prefix, not bool) ([]expr.Any, error) {
	if !p.IsValid() || !p.Addr().Is4() {
		return nil, fmt.Errorf("nft: %s is not an IPv4 prefix", p)
	}
	a := p.Masked().Addr().As4()
	return addrMatch(offset, a[:], p, not)
}

// prefixMatch6 is prefixMatch for the IPv6 header (ip6tables-nft's
// encoding).
func prefixMatch6(offset uint32, p netip.Prefix, not bool) ([]expr.Any, error) {
	if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
		return nil, fmt.Errorf("nft: %s is not an IPv6 prefix", p)
	}
	a := p.Masked().Addr().As16()
	return addrMatch(offset, a[:], p, not)
}

// addrMatch compares the address at offset of the network header, len(a)
// bytes, with a, the bytes of p's masked address.
func addrMatch(offset uint32, a []byte, p netip.Prefix, not bool) ([]expr.Any, error) {
	op := expr.CmpOpEq
	if not {
		op = expr.CmpOpNeq
	}
	bits := p.Bits()
	if bits == 0 {
		return nil, fmt.Errorf("nft: prefix %s matches every address", p)
	}
	if bits%8 == 0 {
		n := uint32(bits / 8)
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n},
			&expr.Cmp{Op: op, Register: 1, Data: a[:n]},
		}, nil
	}
	n := uint32(len(a))
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask(bits, len(a)), Xor: make([]byte, n)},
		&expr.Cmp{Op: op, Register: 1, Data: a},
	}, nil
}

// mask is a netmask of bits ones in n bytes.
func mask(bits, n int) []byte {
	m := make([]byte, n)
	for i := range m {
		switch {
		case bits >= 8:
			m[i] = 0xff
			bits -= 8
		case bits > 0:
			m[i] = byte(0xff << (8 - bits))
			bits = 0
		}
	}
	return m
}

// OIFName matches the output interface by name (`oifname "name"`, or `!=`
// with not).
func OIFName(name string, not bool) []expr.Any { return ifNameMatch(expr.MetaKeyOIFNAME, name, not) }

// IIFName matches the input interface by name.
func IIFName(name string, not bool) []expr.Any { return ifNameMatch(expr.MetaKeyIIFNAME, name, not) }

func ifNameMatch(key expr.MetaKey, name string, not bool) []expr.Any {
	op := expr.CmpOpEq
	if not {
		op = expr.CmpOpNeq
	}
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: ifname(name)},
	}
}

// ifname returns name NUL-padded to IFNAMSIZ, as the kernel compares it.
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

// LoadIPv4Src loads the IPv4 source address into register 1 (for InSet).
func LoadIPv4Src() expr.Any {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
}

// LoadIPv4Dst loads the IPv4 destination address into register 1.
func LoadIPv4Dst() expr.Any {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
}

// LoadEtherSrc loads the Ethernet source address into register 1 (bridge
// and netdev families).
func LoadEtherSrc() expr.Any {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6}
}

// InSet matches when register 1 (loaded before) is in s (`@s`), or is not
// with not.
func InSet(s Set, not bool) expr.Any {
	return &expr.Lookup{SourceRegister: 1, SetName: s.Name, Invert: not}
}

// Equal matches when register 1 equals data.
func Equal(data []byte) expr.Any { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data} }

// Counter counts the packets and bytes that reach it.
func Counter() expr.Any { return &expr.Counter{} }

// Accept ends evaluation in this chain with accept.
func Accept() expr.Any { return &expr.Verdict{Kind: expr.VerdictAccept} }

// Drop drops the packet.
func Drop() expr.Any { return &expr.Verdict{Kind: expr.VerdictDrop} }

// Jump continues in the regular chain name.
func Jump(name string) expr.Any { return &expr.Verdict{Kind: expr.VerdictJump, Chain: name} }

// Masquerade rewrites the source to the output interface's address (nat
// postrouting chains only).
func Masquerade() expr.Any { return &expr.Masq{} }

// Concat joins statements into one rule's expressions.
func Concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// One wraps single expressions for Concat.
func One(e ...expr.Any) []expr.Any { return e }

// CtStatusDNAT matches packets of connections whose destination was
// translated (`ct status dnat`): a Service's ClusterIP or NodePort, for
// one.
func CtStatusDNAT() []expr.Any {
	const ipsDstNAT = 1 << 5 // IPS_DST_NAT, in the host's byte order as the kernel loads it
	mask := make([]byte, 4)
	binary.NativeEndian.PutUint32(mask, ipsDstNAT)
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// SNAT translates the source address to a (`snat ip to a`), an IPv4
// address.
func SNAT(a netip.Addr) ([]expr.Any, error) {
	if !a.Is4() {
		return nil, fmt.Errorf("nft: snat to %s: not an IPv4 address", a)
	}
	b := a.As4()
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: b[:]},
		&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
	}, nil
}
