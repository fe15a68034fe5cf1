package egress

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"

	"github.com/overlaynet/overlaynet/overlay/nft"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// Setup builds egress on the node p describes, idempotently: what exists
// as Setup would make it is kept, a conflict (a device, address or route in
// the way, a host forward chain with policy drop under NoHostAccept) is an
// error before anything is changed, and on a failure half-way everything
// this call made is taken back. prev is the state of an earlier Setup on
// this node (nil for none); the returned State includes it. undo takes back
// what this call made (for a caller whose own later step fails).
func Setup(p Params, cfg Config, prev *State) (st *State, undo func() error, err error) {
	log := p.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if !p.Subnet.IsValid() || !p.Subnet.Addr().Is4() {
		return nil, nil, fmt.Errorf("egress: overlay subnet %s is not IPv4", p.Subnet)
	}
	if !p.VTEP.IsValid() {
		return nil, nil, errors.New("egress: the node has no VTEP address to reach its containers from")
	}
	d := cfg.withDefaults()
	st = &State{Config: cfg, HostIf: d.HostIf, OverlayIf: d.OverlayIf}
	if prev != nil {
		*st = *prev
		st.Config = cfg
		st.Forwarding = slices.Clone(prev.Forwarding)
		st.HostAccept = slices.Clone(prev.HostAccept)
	}

	// Look before changing anything.
	if st.Dev, err = egressDev(p, cfg, prev); err != nil {
		return nil, nil, err
	}
	hostVeth, err := linkByName(p.Host, st.HostIf)
	if err != nil {
		return nil, nil, fmt.Errorf("egress: %s: %w", st.HostIf, err)
	}
	ovVeth, err := linkByName(p.Overlay, st.OverlayIf)
	if err != nil {
		return nil, nil, fmt.Errorf("egress: %s in netns %s: %w", st.OverlayIf, p.OverlayNetNS, err)
	}
	ours := prev != nil && prev.CreatedVeth
	if hostVeth != nil && (!ours || hostVeth.Kind() != rtnl.KindVeth) {
		return nil, nil, fmt.Errorf("egress: a device %s (kind %q) exists in the host namespace and is not overlaynet's node path: remove it, or name the path otherwise", st.HostIf, hostVeth.Kind())
	}
	if ovVeth != nil && (!ours || ovVeth.Kind() != rtnl.KindVeth) {
		return nil, nil, fmt.Errorf("egress: a device %s (kind %q) exists in netns %s and is not overlaynet's node path", st.OverlayIf, ovVeth.Kind(), p.OverlayNetNS)
	}
	if (hostVeth == nil) != (ovVeth == nil) {
		return nil, nil, fmt.Errorf("egress: the node path is half there (%s: %v, %s: %v): run reset", st.HostIf, hostVeth != nil, st.OverlayIf, ovVeth != nil)
	}
	var ignore int32
	if hostVeth != nil {
		ignore = hostVeth.Index
	}
	if prev == nil || !prev.Link.IsValid() {
		if st.Link, err = chooseLink(p, cfg.LinkSubnet, ignore); err != nil {
			return nil, nil, err
		}
	} else if err := checkLink(p, st.Link, ignore); err != nil {
		return nil, nil, err
	}
	st.HostAddr, st.OverlayAddr = hostEnd(st.Link), overlayEnd(st.Link)
	if err := checkRoutes(p, st); err != nil {
		return nil, nil, err
	}
	nc, err := nft.Dial(-1)
	if err != nil {
		return nil, nil, fmt.Errorf("egress: %w", err)
	}
	defer nc.Close()
	drops, err := dropForwardChains(nc)
	if err != nil {
		return nil, nil, fmt.Errorf("egress: %w", err)
	}
	if cfg.NoHostAccept {
		if err := refuseDrops(nc, drops, p.Subnet); err != nil {
			return nil, nil, err
		}
		drops = nil
	}

	// Change.
	u := &undoStack{log: log}
	defer func() {
		if err != nil {
			if uerr := u.run(); uerr != nil {
				err = errors.Join(err, uerr)
			}
			st, undo = nil, nil
		}
	}()
	if hostVeth == nil {
		peer := rtnl.LinkMessage{Name: st.OverlayIf, NetNSFD: p.OverlayNS.Fd(), Present: rtnl.LinkHasNetNSFD}
		if err := p.Host.LinkAdd(rtnl.NewVethPair(st.HostIf, peer)); err != nil {
			return nil, nil, fmt.Errorf("egress: create node path %s <-> %s: %w", st.HostIf, st.OverlayIf, err)
		}
		name := st.HostIf
		u.push("veth "+name, func() error { return deleteLink(p.Host, name) })
		st.CreatedVeth = true
		log.Info("created node path", "host_if", st.HostIf, "overlay_if", st.OverlayIf, "netns", p.OverlayNetNS)
		if err := step("veth"); err != nil {
			return nil, nil, err
		}
		if hostVeth, err = p.Host.LinkByName(st.HostIf); err != nil {
			return nil, nil, fmt.Errorf("egress: %s: %w", st.HostIf, err)
		}
		if ovVeth, err = p.Overlay.LinkByName(st.OverlayIf); err != nil {
			return nil, nil, fmt.Errorf("egress: %s: %w", st.OverlayIf, err)
		}
	}
	for _, e := range []struct {
		c    *rtnl.Conn
		l    *rtnl.LinkMessage
		addr netip.Prefix
	}{{p.Host, hostVeth, st.HostAddr}, {p.Overlay, ovVeth, st.OverlayAddr}} {
		if err := ensureAddress(e.c, e.l, e.addr, u); err != nil {
			return nil, nil, err
		}
		if e.l.Flags&rtnl.LinkUp == 0 {
			if err := e.c.LinkSetUp(e.l.Index); err != nil {
				return nil, nil, fmt.Errorf("egress: set %s up: %w", e.l.Name, err)
			}
		}
	}
	if err := ensureRoutes(p, st, hostVeth.Index, ovVeth.Index, u); err != nil {
		return nil, nil, err
	}
	if err := step("routes"); err != nil {
		return nil, nil, err
	}
	if err := ensureForwarding(p, st, u, log); err != nil {
		return nil, nil, err
	}
	if err := step("forwarding"); err != nil {
		return nil, nil, err
	}
	if err := ensureMasquerade(nc, p, st, u, log); err != nil {
		return nil, nil, err
	}
	if err := step("masquerade"); err != nil {
		return nil, nil, err
	}
	for _, ch := range drops {
		if err := ensureAccept(nc, ch, p.Subnet, st, u, log); err != nil {
			return nil, nil, err
		}
	}
	if err := step("accept"); err != nil {
		return nil, nil, err
	}
	steps := u.steps
	u.steps = nil // kept for the caller's undo
	undo = func() error { u2 := &undoStack{log: log, steps: steps}; return u2.run() }
	log.Info("egress ready", "dev", st.Dev, "link", st.Link, "host_if", st.HostIf, "overlay_if", st.OverlayIf,
		"host_accept_chains", len(st.HostAccept))
	return st, undo, nil
}

// Steps after which stepHook is consulted (tests make Setup fail there).
var steps = []string{"veth", "routes", "forwarding", "masquerade", "accept"}

// stepHook, when set by tests, is called after each step of Setup; an
// error makes Setup fail there and roll back.
var stepHook func(step string) error

func step(name string) error {
	if stepHook == nil {
		return nil
	}
	if err := stepHook(name); err != nil {
		return fmt.Errorf("egress: step %s: %w", name, err)
	}
	return nil
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
	routes, err := p.Host.RouteList(unix.AF_INET, rtnl.RouteFilter{Table: unix.RT_TABLE_MAIN})
	if err != nil {
		return "", fmt.Errorf("egress: list host routes: %w", err)
	}
	var def *rtnl.RouteMessage
	for i := range routes {
		r := &routes[i]
		if r.DstLen == 0 && r.OIF != 0 && (def == nil || r.Priority < def.Priority) {
			def = r
		}
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
	a := DefaultLinkRange.Addr()
	for DefaultLinkRange.Contains(a) {
		cand := netip.PrefixFrom(a, 30)
		if checkLink(p, cand, ignore) == nil {
			return cand, nil
		}
		for range 4 {
			a = a.Next()
		}
	}
	return netip.Prefix{}, fmt.Errorf("egress: every /30 of %s collides with an address or route of this node: give a link subnet", DefaultLinkRange)
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
// chain with policy drop lacks an accept rule for the subnet either way.
func refuseDrops(nc *nft.Conn, drops []nft.Chain, subnet netip.Prefix) error {
	var missing []string
	for _, ch := range drops {
		rules, err := nc.Rules(ch)
		if err != nil {
			return fmt.Errorf("egress: %w", err)
		}
		want, err := acceptRules(ch.Table.Family, subnet)
		if err != nil {
			return err
		}
		for i, w := range want {
			if !hasRule(ch.Table.Family, rules, w) {
				missing = append(missing, fmt.Sprintf("%q in chain %s", iptablesEquivalent(ch, subnet, i), ch))
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("egress: the host's forward policy is drop and nothing accepts the overlay's traffic (no-host-accept is set, so overlaynet adds no rule there): add %s, or let create add them", strings.Join(missing, " and "))
	}
	return nil
}

func linkByName(c *rtnl.Conn, name string) (*rtnl.LinkMessage, error) {
	l, err := c.LinkByName(name)
	if errors.Is(err, unix.ENODEV) {
		return nil, nil
	}
	return l, err
}

func deleteLink(c *rtnl.Conn, name string) error {
	err := c.LinkDeleteByName(name)
	if err != nil && !errors.Is(err, unix.ENODEV) {
		return err
	}
	return nil
}

func ensureAddress(c *rtnl.Conn, l *rtnl.LinkMessage, p netip.Prefix, u *undoStack) error {
	addrs, err := c.AddressList(unix.AF_INET, l.Index)
	if err != nil {
		return fmt.Errorf("egress: addresses of %s: %w", l.Name, err)
	}
	for _, a := range addrs {
		if a.Prefix() == p {
			return nil
		}
	}
	if err := c.AddressAdd(l.Index, p); err != nil {
		return fmt.Errorf("egress: add %s to %s: %w", p, l.Name, err)
	}
	index := l.Index
	u.push("address "+p.String(), func() error {
		err := c.AddressDelete(index, p)
		if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EADDRNOTAVAIL) {
			return nil
		}
		return err
	})
	return nil
}

// ensureRoutes adds the overlay's default route via the node end and the
// node's route to the overlay subnet via the overlay end (source: the
// VTEP), if missing.
func ensureRoutes(p Params, st *State, hostIdx, ovIdx int32, u *undoStack) error {
	def := rtnl.NewRoute(netip.Prefix{}, st.HostAddr.Addr(), ovIdx)
	if err := addRoute(p.Overlay, def, u); err != nil {
		return fmt.Errorf("egress: netns %s: default route via %s: %w", p.OverlayNetNS, st.HostAddr.Addr(), err)
	}
	back := rtnl.NewRoute(p.Subnet, st.OverlayAddr.Addr(), hostIdx)
	back.PrefSrc = p.VTEP
	if err := addRoute(p.Host, back, u); err != nil {
		return fmt.Errorf("egress: route %s via %s src %s: %w", p.Subnet, st.OverlayAddr.Addr(), p.VTEP, err)
	}
	return nil
}

func addRoute(c *rtnl.Conn, m *rtnl.RouteMessage, u *undoStack) error {
	err := c.RouteAdd(m)
	if errors.Is(err, unix.EEXIST) {
		return nil // checked by checkRoutes: it is the path's own
	}
	if err != nil {
		return err
	}
	u.push("route "+m.Destination().String(), func() error {
		err := c.RouteDelete(m)
		if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENODEV) {
			return nil
		}
		return err
	})
	return nil
}

// forwardingPlace is a device whose forwarding the path needs, and the
// connection to its namespace.
type forwardingPlace struct {
	c     *rtnl.Conn
	netns string
	dev   string
}

// forwardingPlaces lists where the path needs forwarding: packets from
// containers arrive on the bridge (overlay) and HostIf (host); replies and
// the node's own packets arrive on OverlayIf (overlay) and the egress
// device (host). Setup turns it on there and Status reads it back.
func forwardingPlaces(p Params, st *State) []forwardingPlace {
	return []forwardingPlace{
		{p.Overlay, p.OverlayNetNS, p.Bridge},
		{p.Overlay, p.OverlayNetNS, st.OverlayIf},
		{p.Host, HostNetNS, st.HostIf},
		{p.Host, HostNetNS, st.Dev},
	}
}

// ensureForwarding turns forwarding on where the path needs it
// (forwardingPlaces), recording the values it changed.
func ensureForwarding(p Params, st *State, u *undoStack, log *slog.Logger) error {
	for _, f := range forwardingPlaces(p, st) {
		l, err := f.c.LinkByName(f.dev)
		if err != nil {
			return fmt.Errorf("egress: forwarding on %s: %w", f.dev, err)
		}
		conf, err := f.c.LinkInetConf(l.Index)
		if err != nil {
			return fmt.Errorf("egress: forwarding on %s: %w", f.dev, err)
		}
		was, ok := conf.Get(rtnl.DevConfForwarding)
		if !ok {
			return fmt.Errorf("egress: %s reports no forwarding setting", f.dev)
		}
		if was == 1 {
			continue
		}
		if err := f.c.LinkSetInetConf(l.Index, rtnl.DevConfValue{Conf: rtnl.DevConfForwarding, Value: 1}); err != nil {
			return fmt.Errorf("egress: turn forwarding on for %s: %w", f.dev, err)
		}
		index, c := l.Index, f.c
		u.push("forwarding "+f.dev, func() error {
			err := c.LinkSetInetConf(index, rtnl.DevConfValue{Conf: rtnl.DevConfForwarding, Value: was})
			if errors.Is(err, unix.ENODEV) {
				return nil
			}
			return err
		})
		rec := ForwardingChange{NetNS: f.netns, Dev: f.dev, Was: was}
		if !slices.ContainsFunc(st.Forwarding, func(x ForwardingChange) bool { return x.NetNS == rec.NetNS && x.Dev == rec.Dev }) {
			st.Forwarding = append(st.Forwarding, rec)
		}
		log.Info("turned forwarding on", "netns", f.netns, "dev", f.dev, "was", was)
	}
	return nil
}

// ensureMasquerade makes table inet overlaynet-egress with its nat chain
// and the masquerade rule.
func ensureMasquerade(nc *nft.Conn, p Params, st *State, u *undoStack, log *slog.Logger) error {
	t := Table()
	exists, err := nc.TableExists(t)
	if err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	r, err := masqRule(p.Subnet, st.Dev)
	if err != nil {
		return err
	}
	b := nc.Begin()
	b.AddTable(t)
	b.AddChain(postrouting())
	if err := b.Commit(); err != nil {
		return fmt.Errorf("egress: table %s: %w", t, err)
	}
	if !exists {
		u.push("table "+t.String(), func() error {
			return withNFT(func(nc *nft.Conn) error { return nc.DeleteTable(t) })
		})
		st.CreatedTable = true
	}
	added, err := nc.EnsureRules(postrouting(), []nft.Rule{r})
	if err != nil {
		return fmt.Errorf("egress: masquerade rule: %w", err)
	}
	if added > 0 {
		log.Info("added masquerade rule", "table", t, "subnet", p.Subnet, "dev", st.Dev)
	}
	return nil
}

// ensureAccept adds the accept rules for subnet to the host chain ch.
func ensureAccept(nc *nft.Conn, ch nft.Chain, subnet netip.Prefix, st *State, u *undoStack, log *slog.Logger) error {
	rules, err := acceptRules(ch.Table.Family, subnet)
	if err != nil {
		return err
	}
	added, err := nc.EnsureRules(ch, rules)
	if err != nil {
		return fmt.Errorf("egress: accept rules in %s: %w", ch, err)
	}
	var tags []string
	for _, r := range rules {
		tags = append(tags, r.Tag)
	}
	if added > 0 {
		u.push("accept rules in "+ch.String(), func() error {
			return withNFT(func(nc *nft.Conn) error {
				_, err := nc.DeleteTagged(ch, func(tag string) bool { return slices.Contains(tags, tag) })
				return err
			})
		})
		log.Info("added accept rules to a host forward chain with policy drop", "chain", ch, "subnet", subnet)
	}
	rec := HostRules{Family: ch.Table.Family, Table: ch.Table.Name, Chain: ch.Name, Tags: tags}
	if !slices.ContainsFunc(st.HostAccept, func(h HostRules) bool { return h.chain().String() == ch.String() }) {
		st.HostAccept = append(st.HostAccept, rec)
	}
	return nil
}

// withNFT runs fn on a connection to nftables in the calling thread's
// namespace.
func withNFT(fn func(*nft.Conn) error) error {
	nc, err := nft.Dial(-1)
	if err != nil {
		return err
	}
	defer nc.Close()
	return fn(nc)
}
