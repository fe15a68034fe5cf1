package overlay

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// Family is an address family of the overlay's containers (and of its
// underlay).
type Family uint8

// Address families.
const (
	// IPv4 is the family every overlay has: its subnet (Config.Gateway).
	IPv4 Family = 4
	// IPv6 is the family of a dual-stack overlay's prefix
	// (Config.Gateway6).
	IPv6 Family = 6
)

// String returns "IPv4" or "IPv6".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return "Family(" + strconv.Itoa(int(f)) + ")"
}

// FamilyOf returns the family of a (IPv4 for an IPv4-mapped address).
func FamilyOf(a netip.Addr) Family {
	if a.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

// validateIPv6 checks the IPv6 half of c: Gateway6 a unicast IPv6 address
// with a prefix of /1../126 that is not the prefix's subnet-router anycast
// address, and a block size the prefix holds at least once.
func (c Config) validateIPv6() error {
	p := c.Gateway6
	if !p.IsValid() {
		if c.BlockBits6 != 0 {
			return fmt.Errorf("overlay: IPv6 block size /%d given without an IPv6 gateway", c.BlockBits6)
		}
		return nil
	}
	a := p.Addr()
	switch {
	case !a.Is6() || a.Is4In6():
		return fmt.Errorf("overlay: IPv6 gateway %s is not an IPv6 address", p)
	case p.Bits() < 1 || p.Bits() > 126:
		return fmt.Errorf("overlay: IPv6 gateway prefix /%d leaves no room for containers (want /1../126)", p.Bits())
	case a.IsLinkLocalUnicast():
		return fmt.Errorf("overlay: IPv6 gateway %s is link-local: the overlay's prefix must be global or unique local", p)
	case a.IsMulticast() || a.IsLoopback() || a.IsUnspecified():
		return fmt.Errorf("overlay: IPv6 gateway %s is not a unicast address", p)
	case a == p.Masked().Addr():
		return fmt.Errorf("overlay: IPv6 gateway %s is the prefix's subnet-router anycast address", p)
	}
	bits := c.EffectiveBlockBits6()
	switch {
	case c.BlockBits6 < 0 || c.BlockBits6 > 128:
		return fmt.Errorf("overlay: IPv6 block size /%d out of range /1../128", c.BlockBits6)
	case bits < p.Bits():
		return fmt.Errorf("overlay: IPv6 prefix %s (/%d) is smaller than one address block (/%d): "+
			"give a prefix of /%d or shorter, or blocks of /%d or longer", p.Masked(), p.Bits(), bits, bits, p.Bits())
	}
	if c.Subnet().Overlaps(c.Subnet6()) {
		return errors.New("overlay: the IPv4 and IPv6 prefixes overlap") // an IPv4-mapped IPv6 prefix
	}
	return nil
}

// validateLocal checks a VTEP address given as Config.Local: a unicast
// IPv4 or IPv6 address, not loopback, not IPv6 link-local (a vxlan's local
// address takes no zone).
func validateLocal(a netip.Addr) error {
	switch {
	case a.Zone() != "" || a.Is4In6():
		return fmt.Errorf("overlay: local %s: give the address without a zone, IPv4 in its IPv4 form", a)
	case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback():
		return fmt.Errorf("overlay: local %s is not a unicast VTEP address", a)
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("overlay: local %s is not a unicast VTEP address", a)
	case a.Is6() && a.IsLinkLocalUnicast():
		return fmt.Errorf("overlay: local %s is IPv6 link-local: a VTEP needs a global or unique local address", a)
	}
	return nil
}

// ErrSpansIPv4Only is returned for a dual-stack overlay or an IPv6
// underlay on a store of spans (see CheckSpansFamily).
var ErrSpansIPv4Only = errors.New("overlay: the store describes containers by IPv4 spans (Kubernetes podCIDRs) at IPv4 VTEPs")

// CheckSpansFamily refuses what a store of spans (registry.AssignedBlocks:
// the Kubernetes store, a Node's podCIDRs) cannot carry: its containers are
// the addresses of each node's IPv4 podCIDR, with MACs derived from them,
// at IPv4 VTEPs (a Node's IPv6 podCIDR is ignored). An IPv6 prefix or an
// IPv6 underlay would leave containers no other node finds. Other stores
// are not checked.
func CheckSpansFamily(reg registry.Registry, ov Overlay) error {
	if _, spans := reg.(registry.AssignedBlocks); !spans {
		return nil
	}
	switch {
	case ov.Config.Gateway6.IsValid():
		return fmt.Errorf("%w: IPv6 gateway %s refused: create the overlay with an IPv4 gateway only (dual-stack needs the directory or etcd store)", ErrSpansIPv4Only, ov.Config.Gateway6)
	case ov.VTEP.IsValid() && FamilyOf(ov.VTEP) == IPv6:
		return fmt.Errorf("%w: IPv6 VTEP %s refused: give the node an IPv4 underlay address (--local)", ErrSpansIPv4Only, ov.VTEP)
	}
	return nil
}
