package overlay

import (
	"fmt"
	"net/netip"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// RecordPolicy is what a record of ov must be for this node to use it
// (registry.Policy): an IP of the overlay subnet other than its network,
// broadcast and gateway addresses (or of its IPv6 prefix, other than its
// subnet-router anycast and gateway addresses), a unicast MAC, and a VTEP of the
// underlay's family that is a unicast address outside the overlay subnet,
// not the broadcast address of the underlay subnet the VTEP sits in. That
// subnet is read from the calling ("host") namespace's addresses; when the
// VTEP is none of them, it is taken alone.
//
// In an encrypted overlay the VTEPs are tunnel addresses: they must be
// inside the tunnel subnet (Policy.Underlay and Policy.Tunnel are that
// subnet), and the members' WireGuard endpoints of the underlay's family
// (Policy.Endpoints, the underlay subnet read the same way).
func (n *Node) RecordPolicy(ov Overlay) registry.Policy {
	p := registry.Policy{Subnet: ov.Config.Subnet(), Gateway: ov.Config.Gateway.Addr()}
	if ov.Config.DualStack() {
		p.Subnet6, p.Gateway6 = ov.Config.Subnet6(), ov.Config.Gateway6.Addr()
	}
	under := ov.Underlay()
	var underlay netip.Prefix
	if under.IsValid() {
		underlay = netip.PrefixFrom(under, under.BitLen())
		if n.dialer == nil { // a fake kernel (unit tests) has no host namespace to read
			if pfx, err := underlayPrefix(under); err == nil && pfx.IsValid() {
				underlay = pfx
			}
		}
	}
	if e := ov.Config.Encrypt; e != nil {
		p.Underlay, p.Tunnel, p.Endpoints = e.Tunnel, e.Tunnel, underlay
		return p
	}
	p.Underlay = underlay
	return p
}

// underlayPrefix is vtep with the prefix length of the calling namespace's
// address vtep (invalid when no address of the namespace is vtep).
func underlayPrefix(vtep netip.Addr) (netip.Prefix, error) {
	c, err := rtnl.Dial(nil)
	if err != nil {
		return netip.Prefix{}, err
	}
	defer c.Close()
	family := uint8(unix.AF_INET)
	if !vtep.Is4() {
		family = unix.AF_INET6
	}
	addrs, err := c.AddressList(family, 0)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("overlay: list host addresses: %w", err)
	}
	for _, a := range addrs {
		if p := a.Prefix(); p.Addr() == vtep {
			return p, nil
		}
	}
	return netip.Prefix{}, nil
}

// rejectedEntries lists in s.Problems the vxlan's neighbour and FDB entries
// and the VTEP allowlist's addresses that p rejects: no record the node may
// use would have put them there (a hostile record programmed before it was
// checked, or someone else's entry).
func (s *Status) rejectedEntries(p registry.Policy) {
	for _, nb := range s.Neighbors {
		if nb.MAC.IsZero() {
			continue // unresolved: nothing points anywhere
		}
		if why, err := p.CheckARP(nb.IP, nb.MAC); err != nil {
			s.Problems = append(s.Problems, fmt.Sprintf("neighbour %s lladdr %s on %s: no record may hold it (%s): %v",
				nb.IP, nb.MAC, s.Overlay.Config.Vxlan, why, err))
		}
	}
	for _, f := range s.FDB {
		if f.MAC.IsZero() || !f.VTEP.IsValid() {
			continue // a default destination, or the bridge's own
		}
		if why, err := p.CheckFDB(f.MAC, f.VTEP); err != nil {
			s.Problems = append(s.Problems, fmt.Sprintf("FDB %s dst %s on %s: no record may hold it (%s): %v",
				f.MAC, f.VTEP, s.Overlay.Config.Vxlan, why, err))
		}
	}
	for _, a := range s.Guard.Allowlist {
		if why, err := p.CheckVTEP(a); err != nil && a != s.Overlay.VTEP {
			s.Problems = append(s.Problems, fmt.Sprintf("VTEP allowlist holds %s: no node may have it (%s): %v", a, why, err))
		}
	}
}
