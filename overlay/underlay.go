package overlay

import (
	"fmt"
	"net/netip"

	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// findUnderlay picks the VTEP address and the underlay device in the host
// namespace (c's), in this order:
//   - cfg.Local, IPv4 or IPv6: the device holding that address
//     ("--local");
//   - cfg.Dev: that device and its first global IPv4 address, else its
//     first global IPv6 one ("address of --dev eth1");
//   - otherwise the main table's default IPv4 route (lowest metric), else
//     its default IPv6 route: its device, and its preferred source or
//     else the device's first global address of the route's family
//     ("source of the default route via eth0").
//
// The VTEP's family is the underlay's. It also returns the device's index,
// for IFLA_VXLAN_LINK.
func findUnderlay(c *rtnl.Conn, cfg Config) (ov Overlay, devIndex int32, err error) {
	ov.Config = cfg
	var link *rtnl.LinkMessage
	switch {
	case cfg.Local.IsValid():
		if link, err = linkHolding(c, cfg.Local); err != nil {
			return ov, 0, err
		}
		ov.VTEP, ov.VTEPSource = cfg.Local, "--local"
	case cfg.Dev != "":
		link, err = c.LinkByName(cfg.Dev)
		if err != nil {
			return ov, 0, fmt.Errorf("overlay: underlay device %q: %w", cfg.Dev, err)
		}
		ov.VTEP, err = firstGlobal(c, link, unix.AF_INET)
		if err != nil {
			if ov.VTEP, err = firstGlobal(c, link, unix.AF_INET6); err != nil {
				return ov, 0, fmt.Errorf("overlay: underlay device %s has no global IPv4 or IPv6 address to use as VTEP: give local", link.Name)
			}
		}
		ov.VTEPSource = "address of --dev " + link.Name
	default:
		if link, ov.VTEP, err = defaultRouteVTEP(c); err != nil {
			return ov, 0, err
		}
		ov.VTEPSource = "source of the default route via " + link.Name
	}
	ov.UnderlayDev, ov.UnderlayMTU = link.Name, link.MTU
	return ov, link.Index, nil
}

// linkHolding returns the device holding address local.
func linkHolding(c *rtnl.Conn, local netip.Addr) (*rtnl.LinkMessage, error) {
	addrs, err := c.AddressList(afOf(local), 0)
	if err != nil {
		return nil, fmt.Errorf("overlay: list host addresses: %w", err)
	}
	for _, a := range addrs {
		if a.Prefix().Addr() == local {
			link, err := c.LinkGet(a.Index)
			if err != nil {
				return nil, fmt.Errorf("overlay: device holding local %s: %w", local, err)
			}
			return link, nil
		}
	}
	return nil, fmt.Errorf("overlay: local %s is not an address of this node (host netns)", local)
}

// defaultRouteVTEP returns the device of the main table's default IPv4
// route, else of its default IPv6 route (lowest metric), and the route's
// preferred source or else the device's first global address of the
// route's family.
func defaultRouteVTEP(c *rtnl.Conn) (*rtnl.LinkMessage, netip.Addr, error) {
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		routes, err := c.RouteList(family, rtnl.RouteFilter{Table: unix.RT_TABLE_MAIN})
		if err != nil {
			return nil, netip.Addr{}, fmt.Errorf("overlay: list host routes: %w", err)
		}
		var def *rtnl.RouteMessage
		for i := range routes {
			r := &routes[i]
			if r.DstLen == 0 && r.OIF != 0 && (def == nil || r.Priority < def.Priority) {
				def = r
			}
		}
		if def == nil {
			continue
		}
		link, err := c.LinkGet(def.OIF)
		if err != nil {
			return nil, netip.Addr{}, fmt.Errorf("overlay: device of the default route: %w", err)
		}
		if vtep := def.PrefSrc; vtep.IsValid() {
			return link, vtep, nil
		}
		vtep, err := firstGlobal(c, link, family)
		if err != nil {
			return nil, netip.Addr{}, fmt.Errorf("overlay: underlay device %s has no global address to use as VTEP: give local", link.Name)
		}
		return link, vtep, nil
	}
	return nil, netip.Addr{}, fmt.Errorf("overlay: no default IPv4 or IPv6 route on this node to choose the VTEP from: give local or dev")
}

// firstGlobal returns the first global-scope address of link in family
// (not IPv6 link-local, not a tentative or failed IPv6 address).
func firstGlobal(c *rtnl.Conn, link *rtnl.LinkMessage, family uint8) (netip.Addr, error) {
	addrs, err := c.AddressList(family, link.Index)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("overlay: addresses of %s: %w", link.Name, err)
	}
	for _, a := range addrs {
		p := a.Prefix()
		if a.Scope == rtnl.ScopeUniverse && p.IsValid() && !p.Addr().IsLinkLocalUnicast() &&
			a.Flags&(rtnl.AddrTentative|rtnl.AddrDADFailed) == 0 {
			return p.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("overlay: underlay device %s has no global address to use as VTEP: give local", link.Name)
}

// checkUnderlayMTU refuses an overlay MTU the underlay cannot carry.
func checkUnderlayMTU(ov Overlay) error {
	if ov.UnderlayMTU == 0 {
		return nil
	}
	overhead := Overhead(ov.VTEP)
	if ov.UnderlayMTU < MinMTU+overhead {
		return fmt.Errorf("overlay: underlay %s MTU %d is too small for VXLAN (needs at least %d)", ov.UnderlayDev, ov.UnderlayMTU, MinMTU+overhead)
	}
	if max := ov.UnderlayMTU - overhead; ov.Config.MTU > max {
		return fmt.Errorf("overlay: MTU %d is above what underlay %s (MTU %d, chosen by %s) allows for VXLAN: at most %d (VXLAN over %s adds %d bytes)",
			ov.Config.MTU, ov.UnderlayDev, ov.UnderlayMTU, ov.VTEPSource, max, FamilyOf(ov.VTEP), overhead)
	}
	return nil
}
