package egress

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/overlaynet/overlaynet/overlay/nft"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// Read returns egress as the kernel has it on the node p describes, next to
// what st recorded; what is missing or differs is listed in Problems.
func Read(p Params, st *State) *Status {
	s := &Status{Dev: st.Dev, HostIf: st.HostIf, OverlayIf: st.OverlayIf, Link: st.Link,
		HostAddr: st.HostAddr, OverlayAddr: st.OverlayAddr, IPv6: st.IPv6}
	problem := func(format string, a ...any) { s.Problems = append(s.Problems, fmt.Sprintf(format, a...)) }
	s.readRoutes(p, st)
	for _, r := range s.Routes {
		if !r.Present {
			problem("route missing in %s: %s", r.NetNS, r.Route)
		}
	}
	if st6 := st.IPv6; st6 != nil && !hasAddress(p.Overlay, p.Bridge, st6.BridgeAddr) {
		problem("address missing in %s: %s on %s", p.OverlayNetNS, st6.BridgeAddr, p.Bridge)
	}
	for _, f := range forwardingPlaces(p, st) {
		fs := ForwardingStatus{NetNS: f.netns, Dev: f.dev, Setting: f.setting(), Value: -1}
		if i := slices.IndexFunc(st.Forwarding, func(x ForwardingChange) bool {
			return x.NetNS == f.netns && x.Dev == f.dev && x.IPv6 == f.ipv6
		}); i >= 0 {
			fs.SetByEgress, fs.Was = true, st.Forwarding[i].Was
		}
		if f.c != nil {
			if l, err := f.c.LinkByName(f.dev); err == nil {
				if v, ok, err := f.get(l.Index); err == nil && ok {
					fs.Value = int64(v)
				}
			}
		}
		switch fs.Value {
		case -1:
			problem("device %s missing in %s (or it reports no %s)", f.dev, f.netns, f.setting())
		case 0:
			problem("%s is off on %s in %s", f.setting(), f.dev, f.netns)
		}
		s.Forwarding = append(s.Forwarding, fs)
	}
	if err := withNFT(func(nc *nft.Conn) error { s.readRules(nc, st, problem); return nil }); err != nil {
		problem("nftables: %v", err)
	}
	return s
}

// readRoutes fills in the path's routes, as `ip route` would print them,
// with whether they are there.
func (s *Status) readRoutes(p Params, st *State) {
	s.Routes = []RouteStatus{
		{NetNS: p.OverlayNetNS, Route: fmt.Sprintf("default via %s dev %s", st.HostAddr.Addr(), st.OverlayIf)},
		{NetNS: HostNetNS, Route: fmt.Sprintf("%s via %s dev %s src %s", p.Subnet, st.OverlayAddr.Addr(), st.HostIf, p.VTEP)},
	}
	s.Routes[0].Present = hasRoute(p.Overlay, unix.AF_INET, st.OverlayIf, func(r rtnl.RouteMessage) bool {
		return r.DstLen == 0 && r.Gateway == st.HostAddr.Addr()
	})
	s.Routes[1].Present = hasRoute(p.Host, unix.AF_INET, st.HostIf, func(r rtnl.RouteMessage) bool {
		return r.Destination() == p.Subnet && r.Gateway == st.OverlayAddr.Addr()
	})
	st6 := st.IPv6
	if st6 == nil {
		return
	}
	back := fmt.Sprintf("%s via %s dev %s", p.Subnet6.Masked(), st6.OverlayAddr.Addr(), st.HostIf)
	if st6.Src.IsValid() {
		back += " src " + st6.Src.String()
	}
	s.Routes = append(s.Routes,
		RouteStatus{NetNS: p.OverlayNetNS, Route: fmt.Sprintf("default via %s dev %s", st6.HostAddr.Addr(), st.OverlayIf),
			Present: hasRoute(p.Overlay, unix.AF_INET6, st.OverlayIf, func(r rtnl.RouteMessage) bool {
				return r.DstLen == 0 && r.Gateway == st6.HostAddr.Addr()
			})},
		RouteStatus{NetNS: HostNetNS, Route: back,
			Present: hasRoute(p.Host, unix.AF_INET6, st.HostIf, func(r rtnl.RouteMessage) bool {
				return r.Destination() == p.Subnet6.Masked() && r.Gateway == st6.OverlayAddr.Addr()
			})})
}

// readRules fills in egress's rules with their counters: the masquerade
// rules in its own table, the accept rules in host chains.
func (s *Status) readRules(nc *nft.Conn, st *State, problem func(string, ...any)) {
	chains := []nft.Chain{postrouting()}
	want := map[string][]string{postrouting().String(): {masqTag}}
	if st.IPv6 != nil && st.IPv6.Mode == Mode6Masquerade {
		want[postrouting().String()] = append(want[postrouting().String()], masq6Tag)
	}
	for _, h := range st.HostAccept {
		chains = append(chains, h.chain())
		want[h.chain().String()] = h.Tags
	}
	for _, ch := range chains {
		rules, err := nc.Rules(ch)
		if err != nil {
			problem("cannot list %s: %v", ch, err)
			continue
		}
		for _, tag := range want[ch.String()] {
			i := slices.IndexFunc(rules, func(r nft.RuleInfo) bool { return r.Tag == tag })
			if i < 0 {
				problem("rule %q missing in %s", tag, ch)
				continue
			}
			r := rules[i]
			s.Rules = append(s.Rules, RuleStatus{Chain: ch.String(), Tag: r.Tag, Handle: r.Handle, Packets: r.Packets, Bytes: r.Bytes})
		}
	}
}

func hasRoute(c *rtnl.Conn, af uint8, dev string, match func(rtnl.RouteMessage) bool) bool {
	if c == nil {
		return false
	}
	l, err := c.LinkByName(dev)
	if err != nil {
		return false
	}
	routes, err := c.RouteList(af, rtnl.RouteFilter{Table: unix.RT_TABLE_MAIN, OIF: l.Index})
	if err != nil {
		return false
	}
	return slices.ContainsFunc(routes, match)
}

func hasAddress(c *rtnl.Conn, dev string, a netip.Prefix) bool {
	if c == nil {
		return false
	}
	l, err := c.LinkByName(dev)
	if err != nil {
		return false
	}
	addrs, err := c.AddressList(unix.AF_INET6, l.Index)
	return err == nil && slices.ContainsFunc(addrs, func(m rtnl.AddressMessage) bool { return m.Prefix() == a })
}
