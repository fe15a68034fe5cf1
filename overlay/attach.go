package overlay

import (
	"context"
	"errors"
	"fmt"

	"github.com/overlaynet/overlaynet/internal/links"
	"github.com/overlaynet/overlaynet/internal/steps"
	"github.com/overlaynet/overlaynet/rtnl"
)

// Attach steps, in order (see internal/steps): the node's step hook can make
// Attach fail right after each. Allocation is a step only with a registry
// that holds blocks, the namespace only when Attach creates it, the
// anti-spoofing rules only unless Config.NoAntispoof.
const (
	stepAllocate   = "allocate"    // the address recorded as allocated
	stepNetNS      = "netns"       // container netns created
	stepVeth       = "veth"        // veth pair created, peer in the container
	stepAntispoof  = "antispoof"   // the port's anti-spoofing rules installed
	stepLoopback   = "loopback"    // container lo up
	stepAddress    = "address"     // container address added
	stepLinkUp     = "link-up"     // container interface up
	stepBridgePort = "bridge-port" // host end on the bridge and up
	stepRoute      = "route"       // default route via the gateway
	stepState      = "state"       // endpoint recorded in the state dir
	stepRegister   = "register"    // IP → MAC → VTEP in the registry
)

// Attach connects a container to the overlay, all or nothing: it opens the
// container namespace req.Name in NetNSDir (creating it if missing), creates
// a veth pair from the overlay namespace whose host end (HostIfName) joins
// the bridge and whose other end lands in the container as req.IfName with
// req.MAC, req.IP and the overlay MTU, brings the container's loopback and
// both ends up, adds a default route via the gateway, records the endpoint
// in the state directory, and registers IP → MAC and MAC → this node's VTEP.
//
// It refuses, before changing anything, a bad request, a call before
// Create, a container namespace that does not exist (req.NetNSPath) or is
// not a network namespace (ErrNetNSNotFound) or is the caller's own
// (ErrOwnNetNS), an interface name the container has already
// (ErrInterfaceExists), an overlay whose network differs from the one
// recorded in the registry (a *registry.NetworkMismatchError naming each
// difference; a registry that records networks but has none yet gets this
// node's), a name already attached (ErrExists), and an IP or MAC that the
// registry (or another local endpoint) gives to someone else
// (registry.ErrConflict). Any failure later rolls back everything this
// call created, in the kernel, the state directory and the registry. In a
// namespace that already existed, the loopback it brought up stays up.
func (n *Node) Attach(ctx context.Context, req AttachRequest) (ep *Endpoint, err error) {
	unlock, err := n.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := n.tidyAttach(ctx, req.Name); err != nil {
		return nil, err
	}
	j := n.newJournal(OpAttach, Endpoint{Name: req.Name, NetNS: req.NetNSPath, HostIf: HostIfName(req.Name)}, "")
	r := n.runner(ctx, "attach", j, n.log.With("endpoint", req.Name))
	defer func() {
		if err != nil {
			n.log.Warn("attach failed, rolling back", "endpoint", req.Name, "err", err)
			ep = nil
		}
		r.Finish(&err)
	}()
	a, err := n.planAttach(ctx, r, req)
	if err != nil {
		return nil, err
	}
	a.j = j
	j.update(false, func(in *intent) { in.OverlayNetNS = a.ov.Config.OverlayNetNS })
	for _, step := range []func(*steps.Runner) error{
		a.allocate, a.netns, a.veth, a.antispoof, a.container, a.bridgePort, a.route, a.save, a.register,
	} {
		if err := step(r); err != nil {
			return nil, err
		}
	}
	a.announce()
	return a.e, nil
}

// tidyAttach finishes or undoes a dead operation on name and removes what
// of name nothing owns, before an attach of name (see tidy).
func (n *Node) tidyAttach(ctx context.Context, name string) error {
	if ValidateNetNSName(name) != nil || n.reg == nil {
		return nil // planAttach says why
	}
	ost, err := n.loadOverlayState()
	if err != nil {
		return nil // planAttach says why
	}
	_, err = n.tidy(ctx, &ost.Overlay, name, false)
	return err
}

// attachment is one Attach under way: the request, the overlay, and what
// the steps opened and made.
type attachment struct {
	n   *Node
	ctx context.Context
	ov  Overlay
	req AttachRequest
	// explicit says req came with its address.
	explicit bool
	// e is the endpoint, once its address is known.
	e *Endpoint
	// oc is a connection in the overlay namespace, br its bridge.
	oc *rtnl.Conn
	br *rtnl.LinkMessage
	// cns and cc are the container namespace and a connection in it: nil
	// until it exists; createdNS says Attach made it.
	cns       *rtnl.NetNS
	cc        *rtnl.Conn
	createdNS bool
	// ctr is the container's interface, once made.
	ctr *rtnl.LinkMessage
	// j is the record of intent, told what undoing the steps needs.
	j *journal
}

// allocate records the address as allocated (allocating one if req has
// none), and makes the endpoint.
func (a *attachment) allocate(r *steps.Runner) error {
	if err := a.n.allocate(a.ctx, r, a.ov, &a.req); err != nil {
		return err
	}
	if !a.explicit {
		if err := a.n.checkRequest(a.ctx, a.ov, &a.req); err != nil {
			return err
		}
	}
	req := a.req
	a.e = &Endpoint{Name: req.Name, NetNS: req.NetNSPath, ContainerID: req.ContainerID, Network: req.Network,
		IP: req.IP, IP6: req.IP6, MAC: req.MAC, IfName: req.IfName, HostIf: HostIfName(req.Name), VTEP: a.ov.VTEP}
	a.j.update(false, func(in *intent) { in.Endpoint = *a.e })
	return nil
}

// netns creates the container namespace req.Name, unless it exists.
func (a *attachment) netns(r *steps.Runner) error {
	if a.cns != nil {
		return nil
	}
	// The namespace's identity is recorded as soon as it exists: the undo
	// of a killed attach deletes that namespace, never another.
	ns, err := createNetNS(r, stepNetNS, a.n.netnsDir, a.req.Name, func(ns *rtnl.NetNS) error {
		id, err := netnsIdentity(ns)
		if err == nil {
			a.j.update(false, func(in *intent) { in.NetNSID = id })
		}
		return err
	})
	if err != nil {
		return err
	}
	a.cns, a.createdNS = ns, true
	a.n.log.Info("created container netns", "netns", a.req.Name)
	return a.dialContainer(r)
}

// veth makes the veth pair, its host end in the overlay namespace and its
// peer in the container.
func (a *attachment) veth(r *steps.Runner) error {
	cfg, e := a.ov.Config, a.e
	peer := rtnl.LinkMessage{Name: e.IfName, MTU: cfg.MTU, Address: e.MAC,
		NetNSFD: a.cns.Fd(), Present: rtnl.LinkHasNetNSFD}
	veth := rtnl.NewVethPair(e.HostIf, peer)
	veth.MTU = cfg.MTU
	err := r.Do(stepVeth, func() error {
		if err := a.oc.LinkAdd(veth); err != nil {
			return fmt.Errorf("overlay: create veth %s (peer %s in %s): %w", e.HostIf, e.IfName, e.Name, err)
		}
		return nil
	}, func() error { return links.Delete(a.oc, e.HostIf) })
	if err != nil {
		return err
	}
	host, err := a.oc.LinkByName(e.HostIf)
	if err != nil {
		return fmt.Errorf("overlay: veth %s: %w", e.HostIf, err)
	}
	if a.ctr, err = a.cc.LinkByName(e.IfName); err != nil {
		return fmt.Errorf("overlay: container interface %s: %w", e.IfName, err)
	}
	e.HostIndex, e.PeerIndex = host.Index, a.ctr.Index
	a.n.log.Info("created veth pair", "host_if", e.HostIf, "ifname", e.IfName, "netns", e.Name, "mac", e.MAC)
	return nil
}

// antispoof installs the port's anti-spoofing rules, before the port is on
// the bridge: no frame of the container gets through unchecked.
func (a *attachment) antispoof(r *steps.Runner) error {
	cfg, e := a.ov.Config, a.e
	if cfg.NoAntispoof {
		return nil
	}
	return r.Do(stepAntispoof, func() error { return a.n.installAntispoof(cfg.OverlayNetNS, *e) },
		func() error { return a.n.removeAntispoof(cfg.OverlayNetNS, e.HostIf) })
}

// container brings the container's loopback up, gives its interface the
// address and brings it up: undone with the veth pair.
func (a *attachment) container(r *steps.Runner) error {
	e := a.e
	err := r.Do(stepLoopback, func() error {
		if err := links.Up(a.cc, "lo"); err != nil {
			return fmt.Errorf("overlay: loopback up in %s: %w", e.Name, err)
		}
		return nil
	}, nil)
	if err != nil {
		return err
	}
	err = r.Do(stepAddress, func() error { return a.addresses() }, nil)
	if err != nil {
		return err
	}
	return r.Do(stepLinkUp, func() error {
		if err := a.cc.LinkSetUp(e.PeerIndex); err != nil {
			return fmt.Errorf("overlay: set %s up: %w", e.IfName, err)
		}
		return nil
	}, nil)
}

// addresses gives the container's interface its addresses. With an IPv6
// one, the interface makes no link-local address (addrgenmode none: no DAD
// probe, no router solicitation on the overlay) and the address is usable
// at once (nodad: the registry keeps the overlay's addresses unique).
func (a *attachment) addresses() error {
	e := a.e
	if e.IP6.IsValid() {
		if err := a.cc.LinkSetAddrGenMode(e.PeerIndex, rtnl.AddrGenNone); err != nil {
			return fmt.Errorf("overlay: %s addrgenmode none in %s: %w", e.IfName, e.Name, err)
		}
	}
	for _, p := range e.Addrs() {
		m := rtnl.NewAddress(e.PeerIndex, p)
		v6 := FamilyOf(p.Addr()) == IPv6
		if v6 {
			m.Flags |= rtnl.AddrNoDAD
		}
		if err := a.cc.AddressAddMessage(m); err != nil {
			return fmt.Errorf("overlay: add %s to %s: %w%s", p, e.IfName, err, ipv6Hint(v6, err, e.IfName, e.Name))
		}
	}
	return nil
}

// bridgePort puts the host end on the bridge and brings it up.
func (a *attachment) bridgePort(r *steps.Runner) error {
	e, bridge := a.e, a.ov.Config.Bridge
	return r.Do(stepBridgePort, func() error {
		if a.ov.Config.DualStack() {
			if err := a.oc.LinkSetAddrGenMode(e.HostIndex, rtnl.AddrGenNone); err != nil {
				return fmt.Errorf("overlay: %s addrgenmode none: %w", e.HostIf, err)
			}
		}
		if err := a.oc.LinkSetMaster(e.HostIndex, a.br.Index); err != nil {
			return fmt.Errorf("overlay: put %s on %s: %w", e.HostIf, bridge, err)
		}
		if err := a.oc.LinkSetUp(e.HostIndex); err != nil {
			return fmt.Errorf("overlay: set %s up: %w", e.HostIf, err)
		}
		return nil
	}, nil)
}

// route adds the container's default routes via the gateways of the
// families it has an address of, protocol boot as `ip route add` makes
// them (so the container reads back like the lab's).
func (a *attachment) route(r *steps.Runner) error {
	return r.Do(stepRoute, func() error {
		for _, p := range a.e.Addrs() {
			gw := a.ov.Config.GatewayOf(FamilyOf(p.Addr())).Addr()
			route := rtnl.NewDefaultRoute(gw)
			route.Protocol = rtnl.ProtoBoot
			if err := a.cc.RouteAdd(route); err != nil {
				return fmt.Errorf("overlay: default route via %s in %s: %w", gw, a.e.Name, err)
			}
		}
		return nil
	}, nil)
}

// save records the endpoint in the state directory.
func (a *attachment) save(r *steps.Runner) error {
	name := a.e.Name
	return r.Do(stepState, func() error { return a.n.saveEndpoint(&endpointState{Endpoint: *a.e, CreatedNetNS: a.createdNS}) },
		func() error { return a.n.removeEndpointState(name) })
}

// register records IP → MAC → VTEP in the registry, for each of the
// endpoint's addresses; undone by removing only the records this call
// created.
func (a *attachment) register(r *steps.Runner) error {
	ctx, reg, recs := a.ctx, a.n.reg, a.e.Records()
	own := intent{Endpoint: *a.e}
	for _, rec := range recs {
		if _, lerr := reg.LookupMAC(ctx, rec.IP); lerr == nil {
			if rec.IP.Is6() {
				own.IP6Existed = true
			} else {
				own.IPExisted = true
			}
		}
	}
	_, lerr := reg.LookupVTEP(ctx, a.e.MAC)
	own.MACExisted = lerr == nil
	a.j.update(false, func(in *intent) {
		in.IPExisted, in.IP6Existed, in.MACExisted = own.IPExisted, own.IP6Existed, own.MACExisted
	})
	undo := func() error {
		var errs []error
		for _, rec := range own.own() {
			errs = append(errs, reg.Unregister(context.WithoutCancel(ctx), rec))
		}
		return errors.Join(errs...)
	}
	return r.Do(stepRegister, func() error {
		for _, rec := range recs {
			if err := reg.Register(ctx, rec); err != nil {
				return errors.Join(fmt.Errorf("overlay: register %s: %w", rec, err), undo())
			}
		}
		return nil
	}, undo)
}

// announce sends the container's gratuitous ARP, best effort: the endpoint
// works without it, a little later. A container with an IPv6 address only
// sends none (the bridge learns its MAC from its first frame).
func (a *attachment) announce() {
	e := a.e
	if e.IP.IsValid() {
		if err := announce(a.cns, a.ctr.Index, e.MAC, e.IP.Addr()); err != nil {
			a.n.log.Warn("gratuitous ARP not sent", "endpoint", e.Name, "err", err)
		}
	}
	a.n.log.Info("attached", "endpoint", e.Name, "ip", e.IP, "ip6", e.IP6, "mac", e.MAC, "vtep", a.ov.VTEP,
		"host_if", e.HostIf, "host_index", e.HostIndex, "peer_index", e.PeerIndex)
}
