package overlay

import (
	"fmt"
	"net/netip"

	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// findUnderlay picks the VTEP address and the underlay device in the host
// namespace (c's), in this order:
//   - cfg.Local: the device holding that address ("--local");
//   - cfg.Dev: that device and its first global IPv4 address ("address of
//     --dev eth1");
//   - otherwise the main table's default IPv4 route (lowest metric): its
//     device, and its preferred source or else the device's first global
//     IPv4 address ("source of the default route via eth0").
//
// It also returns the device's index, for IFLA_VXLAN_LINK.
func findUnderlay(c *rtnl.Conn, cfg Config) (ov Overlay, devIndex int32, err error) {
	ov.Config = cfg
	var link *rtnl.LinkMessage
	switch {
	case cfg.Local.IsValid():
		addrs, err := c.AddressList(unix.AF_INET, 0)
		if err != nil {
			return ov, 0, fmt.Errorf("overlay: list host addresses: %w", err)
		}
		for _, a := range addrs {
			if a.Prefix().Addr() == cfg.Local {
				link, err = c.LinkGet(a.Index)
				if err != nil {
					return ov, 0, fmt.Errorf("overlay: device holding local %s: %w", cfg.Local, err)
				}
				break
			}
		}
		if link == nil {
			return ov, 0, fmt.Errorf("overlay: local %s is not an address of this node (host netns)", cfg.Local)
		}
		ov.VTEP, ov.VTEPSource = cfg.Local, "--local"
	case cfg.Dev != "":
		link, err = c.LinkByName(cfg.Dev)
		if err != nil {
			return ov, 0, fmt.Errorf("overlay: underlay device %q: %w", cfg.Dev, err)
		}
		ov.VTEP, err = firstIPv4(c, link)
		if err != nil {
			return ov, 0, err
		}
		ov.VTEPSource = "address of --dev " + link.Name
	default:
		routes, err := c.RouteList(unix.AF_INET, rtnl.RouteFilter{Table: unix.RT_TABLE_MAIN})
		if err != nil {
			return ov, 0, fmt.Errorf("overlay: list host routes: %w", err)
		}
		var def *rtnl.RouteMessage
		for i := range routes {
			r := &routes[i]
			if r.DstLen == 0 && r.OIF != 0 && (def == nil || r.Priority < def.Priority) {
				def = r
			}
		}
		if def == nil {
			return ov, 0, fmt.Errorf("overlay: no default IPv4 route on this node to choose the VTEP from: give local or dev")
		}
		link, err = c.LinkGet(def.OIF)
		if err != nil {
			return ov, 0, fmt.Errorf("overlay: device of the default route: %w", err)
		}
		ov.VTEP = def.PrefSrc
		if !ov.VTEP.IsValid() {
			if ov.VTEP, err = firstIPv4(c, link); err != nil {
				return ov, 0, err
			}
		}
		ov.VTEPSource = "source of the default route via " + link.Name
	}
	ov.UnderlayDev, ov.UnderlayMTU = link.Name, link.MTU
	return ov, link.Index, nil
}

// firstIPv4 returns the first global-scope IPv4 address of link.
func firstIPv4(c *rtnl.Conn, link *rtnl.LinkMessage) (netip.Addr, error) {
	addrs, err := c.AddressList(unix.AF_INET, link.Index)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("overlay: addresses of %s: %w", link.Name, err)
	}
	for _, a := range addrs {
		if a.Scope == rtnl.ScopeUniverse && a.Prefix().IsValid() {
			return a.Prefix().Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("overlay: underlay device %s has no global IPv4 address to use as VTEP: give local", link.Name)
}

// checkUnderlayMTU refuses an overlay MTU the underlay cannot carry.
func checkUnderlayMTU(ov Overlay) error {
	if ov.UnderlayMTU == 0 {
		return nil
	}
	if ov.UnderlayMTU < MinMTU+VXLANOverhead {
		return fmt.Errorf("overlay: underlay %s MTU %d is too small for VXLAN (needs at least %d)", ov.UnderlayDev, ov.UnderlayMTU, MinMTU+VXLANOverhead)
	}
	if max := ov.UnderlayMTU - VXLANOverhead; ov.Config.MTU > max {
		return fmt.Errorf("overlay: MTU %d is above what underlay %s (MTU %d, chosen by %s) allows for VXLAN: at most %d",
			ov.Config.MTU, ov.UnderlayDev, ov.UnderlayMTU, ov.VTEPSource, max)
	}
	return nil
}
