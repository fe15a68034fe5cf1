package egress

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"

	"github.com/overlaynet/overlaynet/internal/links"
	"github.com/overlaynet/overlaynet/internal/steps"
	"github.com/overlaynet/overlaynet/overlay/nft"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// setup is one Setup under way: what it was asked for, what exists on the
// node, and the State its steps fill in.
type setup struct {
	p   Params
	cfg Config
	log *slog.Logger
	st  *State
	// hostVeth and ovVeth are the node path's ends, nil until they exist.
	hostVeth, ovVeth *rtnl.LinkMessage
	// nc is nftables in the host namespace; drops the host forward chains
	// with policy drop that get accept rules.
	nc    *nft.Conn
	drops []nft.Chain
}

// plan checks cfg and the node before anything is changed: the egress
// device, the node path's ends (absent, or the ones prev made), the link
// subnet, the routes in the way and the host's forward chains. r closes
// the nftables connection it opens.
func plan(r *steps.Runner, p Params, cfg Config, prev *State) (*setup, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !p.Subnet.IsValid() || !p.Subnet.Addr().Is4() {
		return nil, fmt.Errorf("egress: overlay subnet %s is not IPv4", p.Subnet)
	}
	if !p.VTEP.IsValid() {
		return nil, errors.New("egress: the node has no VTEP address to reach its containers from")
	}
	d := cfg.withDefaults()
	s := &setup{p: p, cfg: cfg, log: p.Log, st: &State{Config: cfg, HostIf: d.HostIf, OverlayIf: d.OverlayIf}}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if prev != nil {
		*s.st = *prev
		s.st.Config = cfg
		s.st.Forwarding = slices.Clone(prev.Forwarding)
		s.st.HostAccept = slices.Clone(prev.HostAccept)
	}
	var err error
	if s.st.Dev, err = egressDev(p, cfg, prev); err != nil {
		return nil, err
	}
	if err := s.lookPath(prev); err != nil {
		return nil, err
	}
	if err := s.plan6(prev); err != nil {
		return nil, err
	}
	if s.nc, err = nft.Dial(-1); err != nil {
		return nil, fmt.Errorf("egress: %w", err)
	}
	r.CloseLater(s.nc.Close)
	if s.drops, err = dropForwardChains(s.nc); err != nil {
		return nil, fmt.Errorf("egress: %w", err)
	}
	// An ip6 chain concerns IPv6 egress alone.
	s.drops = slices.DeleteFunc(s.drops, func(ch nft.Chain) bool { return ch.Table.Family == nft.FamilyIPv6 && s.st.IPv6 == nil })
	if cfg.NoHostAccept {
		if err := refuseDrops(s.nc, s.drops, p.Subnet, s.subnet6()); err != nil {
			return nil, err
		}
		s.drops = nil
	}
	return s, nil
}

// subnet6 is the IPv6 prefix egress serves: the overlay's, if the path
// carries IPv6.
func (s *setup) subnet6() netip.Prefix {
	if s.st.IPv6 == nil {
		return netip.Prefix{}
	}
	return s.p.Subnet6.Masked()
}

// lookPath finds the node path's ends (refusing devices of those names that
// are not the path prev made), and chooses or checks the link subnet and
// the routes.
func (s *setup) lookPath(prev *State) error {
	p, st := s.p, s.st
	var err error
	if s.hostVeth, err = links.Find(p.Host, st.HostIf); err != nil {
		return fmt.Errorf("egress: %s: %w", st.HostIf, err)
	}
	if s.ovVeth, err = links.Find(p.Overlay, st.OverlayIf); err != nil {
		return fmt.Errorf("egress: %s in netns %s: %w", st.OverlayIf, p.OverlayNetNS, err)
	}
	hostVeth, ovVeth := s.hostVeth, s.ovVeth
	ours := prev != nil && prev.CreatedVeth
	if hostVeth != nil && (!ours || hostVeth.Kind() != rtnl.KindVeth) {
		return fmt.Errorf("egress: a device %s (kind %q) exists in the host namespace and is not overlaynet's node path: remove it, or name the path otherwise", st.HostIf, hostVeth.Kind())
	}
	if ovVeth != nil && (!ours || ovVeth.Kind() != rtnl.KindVeth) {
		return fmt.Errorf("egress: a device %s (kind %q) exists in netns %s and is not overlaynet's node path", st.OverlayIf, ovVeth.Kind(), p.OverlayNetNS)
	}
	if (hostVeth == nil) != (ovVeth == nil) {
		return fmt.Errorf("egress: the node path is half there (%s: %v, %s: %v): run reset", st.HostIf, hostVeth != nil, st.OverlayIf, ovVeth != nil)
	}
	var ignore int32
	if hostVeth != nil {
		ignore = hostVeth.Index
	}
	if prev == nil || !prev.Link.IsValid() {
		if st.Link, err = chooseLink(p, s.cfg.LinkSubnet, ignore); err != nil {
			return err
		}
	} else if err := checkLink(p, st.Link, ignore); err != nil {
		return err
	}
	st.HostAddr, st.OverlayAddr = hostEnd(st.Link), overlayEnd(st.Link)
	return checkRoutes(p, st)
}

// egressDev returns the egress device: cfg.Dev (which must exist), the
// recorded one, the default route's device, or the underlay device.
func egressDev(p Params, cfg Config, prev *State) (string, error) {
	if cfg.Dev != "" {
		if _, err := p.Host.LinkByName(cfg.Dev); err != nil {
			if errors.Is(err, unix.ENODEV) {
				return "", fmt.Errorf("egress: egress device %q does not exist in the host namespace", cfg.Dev)
			}
			return "", fmt.Errorf("egress: egress device %q: %w", cfg.Dev, err)
		}
		return cfg.Dev, nil
	}
	if prev != nil && prev.Dev != "" {
		return prev.Dev, nil
	}
	def, err := defaultRoute(p.Host, unix.AF_INET)
	if err != nil {
		return "", err
	}
	if def != nil {
		l, err := p.Host.LinkGet(def.OIF)
		if err != nil {
			return "", fmt.Errorf("egress: device of the default route: %w", err)
		}
		return l.Name, nil
	}
	if p.UnderlayDev == "" {
		return "", errors.New("egress: no default route and no underlay device to send outside traffic by: give an egress device")
	}
	return p.UnderlayDev, nil
}

// chooseLink returns want after checking it, or the first /30 of
// DefaultLinkRange that collides with nothing.
func chooseLink(p Params, want netip.Prefix, ignore int32) (netip.Prefix, error) {
	if want.IsValid() {
		return want, checkLink(p, want, ignore)
	}
	a := DefaultLinkRange().Addr()
	for DefaultLinkRange().Contains(a) {
		cand := netip.PrefixFrom(a, 30)
		if checkLink(p, cand, ignore) == nil {
			return cand, nil
		}
		for range 4 {
			a = a.Next()
		}
	}
	return netip.Prefix{}, fmt.Errorf("egress: every /30 of %s collides with an address or route of this node: give a link subnet", DefaultLinkRange())
}

// checkLink refuses a link subnet that overlaps the overlay subnet, an
// address of the host namespace or a route of its main table (the default
// route and the node path's own, on link ignore, aside).
func checkLink(p Params, link netip.Prefix, ignore int32) error {
	var hits []string
	if link.Overlaps(p.Subnet) {
		hits = append(hits, "the overlay subnet "+p.Subnet.String())
	}
	addrs, err := p.Host.AddressList(unix.AF_INET, 0)
	if err != nil {
		return fmt.Errorf("egress: list host addresses: %w", err)
	}
	for _, a := range addrs {
		if a.Index == ignore || !a.Prefix().IsValid() {
			continue
		}
		if a.Prefix().Masked().Overlaps(link) {
			hits = append(hits, fmt.Sprintf("address %s of %s", a.Prefix(), ifName(p.Host, a.Index)))
		}
	}
	routes, err := p.Host.RouteList(unix.AF_INET, rtnl.RouteFilter{Table: unix.RT_TABLE_MAIN})
	if err != nil {
		return fmt.Errorf("egress: list host routes: %w", err)
	}
	for _, r := range routes {
		if r.DstLen == 0 || (ignore != 0 && r.OIF == ignore) {
			continue
		}
		if d := r.Destination(); d.Overlaps(link) {
			hits = append(hits, fmt.Sprintf("route %s dev %s", d, ifName(p.Host, r.OIF)))
		}
	}
	if len(hits) > 0 {
		return fmt.Errorf("egress: link subnet %s collides with %s", link, strings.Join(hits, ", "))
	}
	return nil
}

func ifName(c *rtnl.Conn, index int32) string {
	if l, err := c.LinkGet(index); err == nil {
		return l.Name
	}
	return fmt.Sprintf("ifindex %d", index)
}

// checkRoutes refuses a host route to the overlay subnet, or an overlay
// default route, that the node path did not make.
func checkRoutes(p Params, st *State) error {
	routes, err := p.Host.RouteList(unix.AF_INET, rtnl.RouteFilter{Table: unix.RT_TABLE_MAIN})
	if err != nil {
		return fmt.Errorf("egress: list host routes: %w", err)
	}
	for _, r := range routes {
		if r.Destination() == p.Subnet && r.Gateway != st.OverlayAddr.Addr() {
			return fmt.Errorf("egress: the host already routes %s (via %s dev %s): the node path cannot", p.Subnet, r.Gateway, ifName(p.Host, r.OIF))
		}
	}
	routes, err = p.Overlay.RouteList(unix.AF_INET, rtnl.RouteFilter{Table: unix.RT_TABLE_MAIN})
	if err != nil {
		return fmt.Errorf("egress: list routes of netns %s: %w", p.OverlayNetNS, err)
	}
	for _, r := range routes {
		if r.DstLen == 0 && r.Gateway != st.HostAddr.Addr() {
			return fmt.Errorf("egress: netns %s has a default route already (via %s dev %s)", p.OverlayNetNS, r.Gateway, ifName(p.Overlay, r.OIF))
		}
	}
	return nil
}

// refuseDrops fails, naming every chain and rule missing, if a forward
// chain with policy drop lacks an accept rule for the subnet, or the IPv6
// prefix subnet6 (if valid), either way.
func refuseDrops(nc *nft.Conn, drops []nft.Chain, subnet, subnet6 netip.Prefix) error {
	var missing []string
	for _, ch := range drops {
		rules, err := nc.Rules(ch)
		if err != nil {
			return fmt.Errorf("egress: %w", err)
		}
		want, err := acceptRules(ch.Table.Family, subnet, subnet6)
		if err != nil {
			return err
		}
		for _, w := range want {
			if !hasRule(ch.Table.Family, rules, w.Rule) {
				missing = append(missing, fmt.Sprintf("%q in chain %s", iptablesEquivalent(ch, w), ch))
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("egress: the host's forward policy is drop and nothing accepts the overlay's traffic (no-host-accept is set, so overlaynet adds no rule there): add %s, or let create add them", strings.Join(missing, " and "))
	}
	return nil
}
