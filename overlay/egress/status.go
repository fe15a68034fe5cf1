package egress

import (
	"fmt"
	"slices"

	"github.com/overlaynet/overlaynet/overlay/nft"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// Read returns egress as the kernel has it on the node p describes, next to
// what st recorded; what is missing or differs is listed in Problems.
func Read(p Params, st *State) *Status {
	s := &Status{Dev: st.Dev, HostIf: st.HostIf, OverlayIf: st.OverlayIf, Link: st.Link,
		HostAddr: st.HostAddr, OverlayAddr: st.OverlayAddr}
	problem := func(format string, a ...any) { s.Problems = append(s.Problems, fmt.Sprintf(format, a...)) }

	s.Routes = []RouteStatus{
		{NetNS: p.OverlayNetNS, Route: fmt.Sprintf("default via %s dev %s", st.HostAddr.Addr(), st.OverlayIf)},
		{NetNS: HostNetNS, Route: fmt.Sprintf("%s via %s dev %s src %s", p.Subnet, st.OverlayAddr.Addr(), st.HostIf, p.VTEP)},
	}
	s.Routes[0].Present = hasRoute(p.Overlay, st.OverlayIf, func(r rtnl.RouteMessage) bool {
		return r.DstLen == 0 && r.Gateway == st.HostAddr.Addr()
	})
	s.Routes[1].Present = hasRoute(p.Host, st.HostIf, func(r rtnl.RouteMessage) bool {
		return r.Destination() == p.Subnet && r.Gateway == st.OverlayAddr.Addr()
	})
	for _, r := range s.Routes {
		if !r.Present {
			problem("route missing in %s: %s", r.NetNS, r.Route)
		}
	}

	for _, f := range forwardingPlaces(p, st) {
		fs := ForwardingStatus{NetNS: f.netns, Dev: f.dev, Value: -1}
		if i := slices.IndexFunc(st.Forwarding, func(x ForwardingChange) bool { return x.NetNS == f.netns && x.Dev == f.dev }); i >= 0 {
			fs.SetByEgress, fs.Was = true, st.Forwarding[i].Was
		}
		if f.c != nil {
			if l, err := f.c.LinkByName(f.dev); err == nil {
				if conf, err := f.c.LinkInetConf(l.Index); err == nil {
					if v, ok := conf.Get(rtnl.DevConfForwarding); ok {
						fs.Value = int64(v)
					}
				}
			}
		}
		switch fs.Value {
		case -1:
			problem("device %s missing in %s", f.dev, f.netns)
		case 0:
			problem("forwarding is off on %s in %s", f.dev, f.netns)
		}
		s.Forwarding = append(s.Forwarding, fs)
	}

	err := withNFT(func(nc *nft.Conn) error {
		chains := []nft.Chain{postrouting()}
		want := map[string][]string{postrouting().String(): {masqTag}}
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
		return nil
	})
	if err != nil {
		problem("nftables: %v", err)
	}
	return s
}

func hasRoute(c *rtnl.Conn, dev string, match func(rtnl.RouteMessage) bool) bool {
	if c == nil {
		return false
	}
	l, err := c.LinkByName(dev)
	if err != nil {
		return false
	}
	routes, err := c.RouteList(unix.AF_INET, rtnl.RouteFilter{Table: unix.RT_TABLE_MAIN, OIF: l.Index})
	if err != nil {
		return false
	}
	return slices.ContainsFunc(routes, match)
}
