package egress

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/overlaynet/overlaynet/internal/links"
	"github.com/overlaynet/overlaynet/internal/steps"
	"github.com/overlaynet/overlaynet/overlay/nft"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// Steps of Setup, in order (see internal/steps); a device, address or
// forwarding value already as Setup wants it takes no step.
const (
	stepVeth           = "veth"            // the node path's veth pair
	stepHostAddress    = "host-address"    // the node end's address
	stepOverlayAddress = "overlay-address" // the overlay end's address
	stepUp             = "up"              // both ends up
	stepDefaultRoute   = "default-route"   // the overlay namespace's, via the node end
	stepSubnetRoute    = "subnet-route"    // the node's, to the overlay subnet via the overlay end
	stepForwarding     = "forwarding"      // "forwarding DEV": turned on on DEV
	stepTable          = "table"           // table inet overlaynet-egress and its nat chain
	stepMasquerade     = "masquerade"      // the masquerade rule
	stepAccept         = "accept"          // "accept CHAIN": accept rules in a host chain with policy drop
)

// Setup builds egress on the node p describes, idempotently: what exists
// as Setup would make it is kept, a conflict (a device, address or route in
// the way, a host forward chain with policy drop under NoHostAccept) is an
// error before anything is changed, and on a failure half-way everything
// this call made is taken back. prev is the state of an earlier Setup on
// this node (nil for none); the returned State includes it. undo takes back
// what this call made (for a caller whose own later step fails).
func Setup(p Params, cfg Config, prev *State) (st *State, undo func() error, err error) {
	r := steps.New(context.Background(), steps.Options{Op: "egress: setup", Log: p.Log, Hook: p.hook})
	defer func() {
		r.Finish(&err)
		if err != nil {
			st, undo = nil, nil
		}
	}()
	s, err := plan(r, p, cfg, prev)
	if err != nil {
		return nil, nil, err
	}
	for _, step := range []func(*steps.Runner) error{s.veth, s.addresses, s.routes, s.forwarding, s.masquerade, s.accept} {
		if err := step(r); err != nil {
			return nil, nil, err
		}
	}
	st = s.st
	s.log.Info("egress ready", "dev", st.Dev, "link", st.Link, "host_if", st.HostIf, "overlay_if", st.OverlayIf,
		"host_accept_chains", len(st.HostAccept), "ipv6", st.IPv6 != nil)
	return st, r.Rollback, nil
}

// veth makes the node path, a veth pair from the host namespace into the
// overlay namespace, unless it exists.
func (s *setup) veth(r *steps.Runner) error {
	p, st := s.p, s.st
	if s.hostVeth != nil {
		return nil
	}
	peer := rtnl.LinkMessage{Name: st.OverlayIf, NetNSFD: p.OverlayNS.Fd(), Present: rtnl.LinkHasNetNSFD}
	err := r.Do(stepVeth, func() error {
		if err := p.Host.LinkAdd(rtnl.NewVethPair(st.HostIf, peer)); err != nil {
			return fmt.Errorf("egress: create node path %s <-> %s: %w", st.HostIf, st.OverlayIf, err)
		}
		st.CreatedVeth = true
		if st.IPv6 != nil {
			return s.noLinkLocal()
		}
		return nil
	}, func() error { return links.Delete(p.Host, st.HostIf) })
	if err != nil {
		return err
	}
	s.log.Info("created node path", "host_if", st.HostIf, "overlay_if", st.OverlayIf, "netns", p.OverlayNetNS)
	if s.hostVeth, err = p.Host.LinkByName(st.HostIf); err != nil {
		return fmt.Errorf("egress: %s: %w", st.HostIf, err)
	}
	if s.ovVeth, err = p.Overlay.LinkByName(st.OverlayIf); err != nil {
		return fmt.Errorf("egress: %s: %w", st.OverlayIf, err)
	}
	return nil
}

// noLinkLocal keeps the path's ends, still down, from making link-local
// addresses of their own (and their duplicate address detection and router
// solicitations): they get the path's.
func (s *setup) noLinkLocal() error {
	for _, e := range []struct {
		c    *rtnl.Conn
		name string
	}{{s.p.Host, s.st.HostIf}, {s.p.Overlay, s.st.OverlayIf}} {
		l, err := e.c.LinkByName(e.name)
		if err == nil {
			err = e.c.LinkSetAddrGenMode(l.Index, rtnl.AddrGenNone)
		}
		if err != nil {
			return fmt.Errorf("egress: %s addrgenmode none: %w", e.name, err)
		}
	}
	return nil
}

// addresses gives both ends their address in the link subnet (and their
// link-local IPv6 one), and brings them up.
func (s *setup) addresses(r *steps.Runner) error {
	ends := []struct {
		step string
		c    *rtnl.Conn
		l    *rtnl.LinkMessage
		addr netip.Prefix
	}{{stepHostAddress, s.p.Host, s.hostVeth, s.st.HostAddr}, {stepOverlayAddress, s.p.Overlay, s.ovVeth, s.st.OverlayAddr}}
	for _, e := range ends {
		if _, err := ensureAddress(r, e.step, e.c, e.l, e.addr); err != nil {
			return err
		}
	}
	if err := s.addresses6(r); err != nil {
		return err
	}
	if s.hostVeth.Flags&s.ovVeth.Flags&rtnl.LinkUp != 0 {
		return nil
	}
	return r.Do(stepUp, func() error {
		for _, e := range ends {
			if err := e.c.LinkSetUp(e.l.Index); err != nil {
				return fmt.Errorf("egress: set %s up: %w", e.l.Name, err)
			}
		}
		return nil
	}, nil)
}

// ensureAddress adds p to l as step, unless it is there (an IPv6 one
// without duplicate address detection); added says it added it.
func ensureAddress(r *steps.Runner, step string, c *rtnl.Conn, l *rtnl.LinkMessage, p netip.Prefix) (added bool, err error) {
	m := rtnl.NewAddress(l.Index, p)
	if p.Addr().Is6() {
		m.Flags |= rtnl.AddrNoDAD
	}
	addrs, err := c.AddressList(m.Family, l.Index)
	if err != nil {
		return false, fmt.Errorf("egress: addresses of %s: %w", l.Name, err)
	}
	for _, a := range addrs {
		if a.Prefix() == p {
			return false, nil
		}
	}
	err = r.Do(step, func() error {
		if err := c.AddressAddMessage(m); err != nil {
			return fmt.Errorf("egress: add %s to %s: %w", p, l.Name, err)
		}
		return nil
	}, func() error { return links.DeleteAddress(c, l.Index, p) })
	return err == nil, err
}

// routes adds the overlay's default route via the node end and the node's
// route to the overlay subnet via the overlay end (source: the VTEP), if
// missing.
func (s *setup) routes(r *steps.Runner) error {
	p, st := s.p, s.st
	def := rtnl.NewRoute(netip.Prefix{}, st.HostAddr.Addr(), s.ovVeth.Index)
	if err := addRoute(r, stepDefaultRoute, p.Overlay, def); err != nil {
		return fmt.Errorf("egress: netns %s: default route via %s: %w", p.OverlayNetNS, st.HostAddr.Addr(), err)
	}
	back := rtnl.NewRoute(p.Subnet, st.OverlayAddr.Addr(), s.hostVeth.Index)
	back.PrefSrc = p.VTEP
	if err := addRoute(r, stepSubnetRoute, p.Host, back); err != nil {
		return fmt.Errorf("egress: route %s via %s src %s: %w", p.Subnet, st.OverlayAddr.Addr(), p.VTEP, err)
	}
	return s.routes6(r)
}

// addRoute adds m as step; a route that exists (checkRoutes showed it is
// the path's own) is kept, and not taken back.
func addRoute(r *steps.Runner, step string, c *rtnl.Conn, m *rtnl.RouteMessage) error {
	added := false
	return r.Do(step, func() error {
		err := c.RouteAdd(m)
		if errors.Is(err, unix.EEXIST) {
			return nil
		}
		added = err == nil
		return err
	}, func() error {
		if !added {
			return nil
		}
		err := c.RouteDelete(m)
		if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENODEV) {
			return nil
		}
		return err
	})
}

// masquerade makes table inet overlaynet-egress with its nat chain (unless
// it exists), then the masquerade rule in it.
func (s *setup) masquerade(r *steps.Runner) error {
	t := Table()
	exists, err := s.nc.TableExists(t)
	if err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	rule, err := masqRule(s.p.Subnet, s.st.Dev)
	if err != nil {
		return err
	}
	rules := []nft.Rule{rule}
	if st6 := s.st.IPv6; st6 != nil && st6.Mode == Mode6Masquerade {
		rule6, err := masqRule6(s.p.Subnet6, st6.Dev)
		if err != nil {
			return err
		}
		rules = append(rules, rule6)
	}
	addTable := func() error {
		b := s.nc.Begin()
		b.AddTable(t)
		b.AddChain(postrouting())
		if err := b.Commit(); err != nil {
			return fmt.Errorf("egress: table %s: %w", t, err)
		}
		return nil
	}
	if exists {
		err = addTable() // the chain, if it went
	} else {
		err = r.Do(stepTable, func() error {
			if err := addTable(); err != nil {
				return err
			}
			s.st.CreatedTable = true
			return nil
		}, func() error { return withNFT(func(nc *nft.Conn) error { return nc.DeleteTable(t) }) })
	}
	if err != nil {
		return err
	}
	return r.Do(stepMasquerade, func() error {
		added, err := s.nc.EnsureRules(postrouting(), rules)
		if err != nil {
			return fmt.Errorf("egress: masquerade rule: %w", err)
		}
		if added > 0 {
			s.log.Info("added masquerade rules", "table", t, "subnet", s.p.Subnet, "dev", s.st.Dev, "rules", added)
		}
		return nil
	}, nil)
}

// accept adds the accept rules for the overlay subnet to each host forward
// chain with policy drop, one step per chain.
func (s *setup) accept(r *steps.Runner) error {
	for _, ch := range s.drops {
		accepts, err := acceptRules(ch.Table.Family, s.p.Subnet, s.subnet6())
		if err != nil {
			return err
		}
		var tags []string
		var rules []nft.Rule
		for _, a := range accepts {
			tags, rules = append(tags, a.Tag), append(rules, a.Rule)
		}
		added := 0
		err = r.Do(stepAccept+" "+ch.String(), func() error {
			n, err := s.nc.EnsureRules(ch, rules)
			if err != nil {
				return fmt.Errorf("egress: accept rules in %s: %w", ch, err)
			}
			added = n
			return nil
		}, func() error {
			if added == 0 {
				return nil
			}
			return withNFT(func(nc *nft.Conn) error {
				_, err := nc.DeleteTagged(ch, func(tag string) bool { return slices.Contains(tags, tag) })
				return err
			})
		})
		if err != nil {
			return err
		}
		if added > 0 {
			s.log.Info("added accept rules to a host forward chain with policy drop", "chain", ch, "subnet", s.p.Subnet, "prefix6", s.subnet6())
		}
		rec := HostRules{Family: ch.Table.Family, Table: ch.Table.Name, Chain: ch.Name, Tags: tags}
		if !slices.ContainsFunc(s.st.HostAccept, func(h HostRules) bool { return h.chain().String() == ch.String() }) {
			s.st.HostAccept = append(s.st.HostAccept, rec)
		}
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
