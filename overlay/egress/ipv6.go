package egress

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/overlaynet/overlaynet/internal/steps"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// Steps of Setup for IPv6, each after its IPv4 counterpart.
const (
	stepHostAddress6    = "host-address6"    // fe80::1 on the node end
	stepOverlayAddress6 = "overlay-address6" // fe80::2 on the overlay end
	stepBridgeAddress6  = "bridge-address6"  // fe80::3 on the bridge
	stepDefaultRoute6   = "default-route6"   // the overlay namespace's IPv6 default route, via fe80::1
	stepSubnetRoute6    = "subnet-route6"    // the node's route to the IPv6 prefix, via fe80::2
	stepForwarding6     = "forwarding6"      // "forwarding6 DEV": IPv6 force_forwarding turned on on DEV
)

// plan6 checks and fills in the IPv6 half of the path, where the overlay
// has an IPv6 prefix and its IPv6 egress is not Mode6None: the IPv6 egress
// device, the node's source address, per-device IPv6 forwarding in this
// kernel, and routes in the way.
func (s *setup) plan6(prev *State) error {
	p, cfg := s.p, s.cfg
	s.st.IPv6 = nil
	switch {
	case !p.Subnet6.IsValid() && cfg.Mode6 != "":
		return fmt.Errorf("egress: IPv6 egress %s asked for an overlay without an IPv6 prefix", cfg.Mode6)
	case !p.Subnet6.IsValid() || cfg.Mode6.OrDefault() == Mode6None:
		return nil
	case !p.Subnet6.Addr().Is6() || p.Subnet6.Addr().Is4In6():
		return fmt.Errorf("egress: overlay prefix %s is not IPv6", p.Subnet6)
	}
	st6 := &State6{Mode: cfg.Mode6.OrDefault(), HostAddr: hostEnd6(), OverlayAddr: overlayEnd6(), BridgeAddr: bridgeAddr6()}
	if prev != nil && prev.IPv6 != nil {
		st6.CreatedBridgeAddr = prev.IPv6.CreatedBridgeAddr
	}
	var err error
	if st6.Dev, err = egressDev6(p, cfg, prev, s.st.Dev); err != nil {
		return err
	}
	l, err := p.Host.LinkByName(st6.Dev)
	if err != nil {
		return fmt.Errorf("egress: IPv6 egress device %s: %w", st6.Dev, err)
	}
	conf, err := p.Host.LinkInet6Conf(l.Index)
	if errors.Is(err, rtnl.ErrNoInet6Conf) {
		return fmt.Errorf("egress: IPv6 egress device %s has no IPv6 (is IPv6 disabled on it?)", st6.Dev)
	}
	if err != nil {
		return fmt.Errorf("egress: IPv6 settings of %s: %w", st6.Dev, err)
	}
	if err := perDeviceForwarding6(conf); err != nil {
		return err
	}
	if st6.Src, err = nodeSrc6(p, l.Index); err != nil {
		return err
	}
	s.st.IPv6 = st6
	return checkRoutes6(p, s.st)
}

// perDeviceForwarding6 refuses a kernel whose device settings conf (as
// it reports them) lack force_forwarding: IPv6 forwarding would take the
// namespace-wide switch, which makes every device a router.
func perDeviceForwarding6(conf rtnl.Inet6DevConf) error {
	if _, ok := conf.Get(rtnl.DevConf6ForceForwarding); !ok {
		return fmt.Errorf("egress: IPv6 egress needs per-device IPv6 forwarding (net.ipv6.conf.DEV.%s, Linux 6.17 and later), "+
			"which this kernel lacks: turn the overlay's IPv6 egress off (mode none)", rtnl.DevConf6ForceForwarding)
	}
	return nil
}

// egressDev6 returns the device IPv6 leaves by: cfg.Dev, the recorded
// one, the device of the host's IPv6 default route, or dev4 (IPv4's).
func egressDev6(p Params, cfg Config, prev *State, dev4 string) (string, error) {
	if cfg.Dev != "" {
		return cfg.Dev, nil
	}
	if prev != nil && prev.IPv6 != nil && prev.IPv6.Dev != "" {
		return prev.IPv6.Dev, nil
	}
	def, err := defaultRoute(p.Host, unix.AF_INET6)
	if err != nil || def == nil {
		return dev4, err
	}
	l, err := p.Host.LinkGet(def.OIF)
	if err != nil {
		return "", fmt.Errorf("egress: device of the IPv6 default route: %w", err)
	}
	return l.Name, nil
}

// defaultRoute returns the host's default route of family af with the
// lowest metric, nil if it has none.
func defaultRoute(c *rtnl.Conn, af uint8) (*rtnl.RouteMessage, error) {
	routes, err := c.RouteList(af, rtnl.RouteFilter{Table: unix.RT_TABLE_MAIN})
	if err != nil {
		return nil, fmt.Errorf("egress: list host routes: %w", err)
	}
	var def *rtnl.RouteMessage
	for i := range routes {
		r := &routes[i]
		if r.DstLen == 0 && r.OIF != 0 && r.Type == rtnl.RouteUnicast && (def == nil || r.Priority < def.Priority) {
			def = r
		}
	}
	return def, nil
}

// nodeSrc6 is the node's IPv6 address its packets to the containers come
// from: its VTEP on an IPv6 underlay, else the first global IPv6 address
// of the egress device (index), else none (the kernel chooses).
func nodeSrc6(p Params, index int32) (netip.Addr, error) {
	if p.VTEP6.Is6() && !p.VTEP6.Is4In6() {
		return p.VTEP6, nil
	}
	addrs, err := p.Host.AddressList(unix.AF_INET6, index)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("egress: addresses of the IPv6 egress device: %w", err)
	}
	for _, a := range addrs {
		if ip := a.Prefix().Addr(); ip.IsGlobalUnicast() && !p.Subnet6.Contains(ip) && a.Flags&(rtnl.AddrTentative|rtnl.AddrDADFailed|rtnl.AddrDeprecated) == 0 {
			return ip, nil
		}
	}
	return netip.Addr{}, nil
}

// checkRoutes6 refuses a host route to the overlay's IPv6 prefix, or an
// IPv6 default route of the overlay namespace, that the node path did not
// make.
func checkRoutes6(p Params, st *State) error {
	routes, err := p.Host.RouteList(unix.AF_INET6, rtnl.RouteFilter{Table: unix.RT_TABLE_MAIN})
	if err != nil {
		return fmt.Errorf("egress: list host IPv6 routes: %w", err)
	}
	for _, r := range routes {
		if r.Destination().Masked() == p.Subnet6.Masked() && r.Gateway != st.IPv6.OverlayAddr.Addr() {
			return fmt.Errorf("egress: the host already routes %s (via %s dev %s): the node path cannot", p.Subnet6.Masked(), r.Gateway, ifName(p.Host, r.OIF))
		}
	}
	routes, err = p.Overlay.RouteList(unix.AF_INET6, rtnl.RouteFilter{Table: unix.RT_TABLE_MAIN})
	if err != nil {
		return fmt.Errorf("egress: list IPv6 routes of netns %s: %w", p.OverlayNetNS, err)
	}
	for _, r := range routes {
		if r.DstLen == 0 && r.Type == rtnl.RouteUnicast && r.Gateway != st.IPv6.HostAddr.Addr() {
			return fmt.Errorf("egress: netns %s has an IPv6 default route already (via %s dev %s)", p.OverlayNetNS, r.Gateway, ifName(p.Overlay, r.OIF))
		}
	}
	return nil
}

// addresses6 gives both ends, and the bridge, their link-local address
// (no duplicate address detection: the path has these two ends alone,
// and the bridge's does not leave the node).
func (s *setup) addresses6(r *steps.Runner) error {
	st6 := s.st.IPv6
	if st6 == nil {
		return nil
	}
	if _, err := ensureAddress(r, stepHostAddress6, s.p.Host, s.hostVeth, st6.HostAddr); err != nil {
		return err
	}
	if _, err := ensureAddress(r, stepOverlayAddress6, s.p.Overlay, s.ovVeth, st6.OverlayAddr); err != nil {
		return err
	}
	br, err := s.p.Overlay.LinkByName(s.p.Bridge)
	if err != nil {
		return fmt.Errorf("egress: bridge %s: %w", s.p.Bridge, err)
	}
	added, err := ensureAddress(r, stepBridgeAddress6, s.p.Overlay, br, st6.BridgeAddr)
	st6.CreatedBridgeAddr = st6.CreatedBridgeAddr || added
	return err
}

// routes6 adds the overlay's IPv6 default route via the node end and the
// node's route to the overlay's IPv6 prefix via the overlay end (source:
// State6.Src), if missing.
func (s *setup) routes6(r *steps.Runner) error {
	p, st6 := s.p, s.st.IPv6
	if st6 == nil {
		return nil
	}
	def := rtnl.NewRoute(netip.Prefix{}, st6.HostAddr.Addr(), s.ovVeth.Index)
	if err := addRoute(r, stepDefaultRoute6, p.Overlay, def); err != nil {
		return fmt.Errorf("egress: netns %s: IPv6 default route via %s: %w", p.OverlayNetNS, st6.HostAddr.Addr(), err)
	}
	back := rtnl.NewRoute(p.Subnet6, st6.OverlayAddr.Addr(), s.hostVeth.Index)
	back.PrefSrc = st6.Src
	if err := addRoute(r, stepSubnetRoute6, p.Host, back); err != nil {
		return fmt.Errorf("egress: route %s via %s src %s: %w", p.Subnet6.Masked(), st6.OverlayAddr.Addr(), st6.Src, err)
	}
	return nil
}
