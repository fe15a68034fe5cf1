package rtnl

import (
	"encoding/binary"
	"fmt"
)

// iflaInet6AddrGenMode is IFLA_INET6_ADDR_GEN_MODE, the attribute of
// IFLA_AF_SPEC/AF_INET6 that says how a device's IPv6 link-local address
// is made.
const iflaInet6AddrGenMode = 8

// AddrGenMode is how the kernel makes a device's IPv6 link-local address
// when it comes up (IN6_ADDR_GEN_MODE_*, `ip link set DEV addrgenmode`).
type AddrGenMode uint8

// IPv6 address generation modes.
const (
	AddrGenEUI64         AddrGenMode = 0 // IN6_ADDR_GEN_MODE_EUI64: from the MAC (the default)
	AddrGenNone          AddrGenMode = 1 // IN6_ADDR_GEN_MODE_NONE: no link-local address, no DAD, no router solicitation
	AddrGenStablePrivacy AddrGenMode = 2 // IN6_ADDR_GEN_MODE_STABLE_PRIVACY
	AddrGenRandom        AddrGenMode = 3 // IN6_ADDR_GEN_MODE_RANDOM
)

// String returns the mode as iproute2 names it ("none", "eui64").
func (m AddrGenMode) String() string {
	switch m {
	case AddrGenEUI64:
		return "eui64"
	case AddrGenNone:
		return "none"
	case AddrGenStablePrivacy:
		return "stable_secret"
	case AddrGenRandom:
		return "random"
	}
	return fmt.Sprintf("addrgenmode(%d)", uint8(m))
}

// EncodeLinkAddrGenMode appends an RTM_NEWLINK body that sets the IPv6
// address generation mode of device index and nothing else: an ifinfomsg
// with the index and IFLA_AF_SPEC { AF_INET6 { IFLA_INET6_ADDR_GEN_MODE: u8 } },
// as `ip link set DEV addrgenmode MODE` sends. Set before the device comes
// up, AddrGenNone keeps it without a link-local address (and its duplicate
// address detection and router solicitations).
func EncodeLinkAddrGenMode(b []byte, index int32, mode AddrGenMode) ([]byte, error) {
	if index <= 0 {
		return b, fmt.Errorf("rtnl: an address generation mode needs a device index, not %d", index)
	}
	if mode > AddrGenRandom {
		return b, fmt.Errorf("rtnl: unknown %v", mode)
	}
	b = append(b, FamilyUnspec, 0, 0, 0)
	b = binary.NativeEndian.AppendUint32(b, uint32(index))
	b = binary.NativeEndian.AppendUint32(b, 0) // flags
	b = binary.NativeEndian.AppendUint32(b, 0) // change
	ae := NewAttributeEncoder(b)
	spec := ae.Begin(iflaAFSpec)
	inet6 := ae.Begin(FamilyInet6)
	ae.Uint8(iflaInet6AddrGenMode, uint8(mode))
	ae.End(inet6)
	ae.End(spec)
	return ae.Bytes(), nil
}
