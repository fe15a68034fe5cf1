package overlay

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"

	"github.com/overlaynet/overlaynet/internal/links"
	"github.com/overlaynet/overlaynet/internal/steps"
	"github.com/overlaynet/overlaynet/overlay/registry"
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

// validateAttach fills in req's defaults and checks it against the overlay.
func validateAttach(cfg Config, req *AttachRequest) error {
	if req.IfName == "" {
		req.IfName = DefaultIfName
	}
	var errs []error
	if err := ValidateNetNSName(req.Name); err != nil {
		errs = append(errs, fmt.Errorf("overlay: container name: %w", err))
	}
	if err := validateIfName("ifname", req.IfName); err != nil {
		errs = append(errs, err)
	}
	subnet := cfg.Subnet()
	ip := req.IP
	switch {
	case !ip.IsValid():
		errs = append(errs, errors.New("overlay: no IP given (want an address with prefix, e.g. 198.51.100.2/24)"))
	case !ip.Addr().Is4():
		errs = append(errs, fmt.Errorf("overlay: IP %s is not IPv4", ip))
	case !subnet.Contains(ip.Addr()):
		errs = append(errs, fmt.Errorf("overlay: IP %s is outside the overlay subnet %s", ip.Addr(), subnet))
	case ip.Bits() != subnet.Bits():
		errs = append(errs, fmt.Errorf("overlay: IP %s has prefix /%d, the overlay subnet is %s", ip, ip.Bits(), subnet))
	case ip.Addr() == cfg.Gateway.Addr():
		errs = append(errs, fmt.Errorf("overlay: IP %s is the gateway's address", ip.Addr()))
	case ip.Addr() == subnet.Addr():
		errs = append(errs, fmt.Errorf("overlay: IP %s is the subnet's network address", ip.Addr()))
	case ip.Addr() == broadcast(subnet):
		errs = append(errs, fmt.Errorf("overlay: IP %s is the subnet's broadcast address", ip.Addr()))
	}
	if req.MAC.IsZero() && ip.IsValid() {
		req.MAC = DeriveMAC(ip.Addr())
	}
	if err := registry.ValidateMAC(req.MAC); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

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
	r := n.runner(ctx, "attach", n.log.With("endpoint", req.Name))
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
}

// planAttach checks req against the overlay, the container and the
// registry before anything is changed, and opens the namespaces that
// exist. r closes what it opens.
func (n *Node) planAttach(ctx context.Context, r *steps.Runner, req AttachRequest) (*attachment, error) {
	if n.reg == nil {
		return nil, ErrNoRegistry
	}
	ost, err := n.loadOverlayState()
	if err != nil {
		return nil, err
	}
	a := &attachment{n: n, ctx: ctx, ov: ost.Overlay, req: req}
	cfg := a.ov.Config
	if err := ValidateNetNSName(req.Name); err != nil {
		return nil, fmt.Errorf("overlay: container name: %w", err)
	}
	if err := n.checkNameFree(req.Name); err != nil {
		return nil, err
	}
	if a.req.IfName == "" {
		a.req.IfName = DefaultIfName
	}
	if err := validateIfName("ifname", a.req.IfName); err != nil {
		return nil, err
	}
	if req.Addr.IsValid() {
		if req.IP.IsValid() {
			return nil, fmt.Errorf("overlay: both IP %s and Addr %s given (one of them, Addr taking the overlay's prefix length)", req.IP, req.Addr)
		}
		a.req.IP = netip.PrefixFrom(req.Addr, cfg.Gateway.Bits())
	}
	if err := a.openOverlay(r); err != nil {
		return nil, err
	}
	if err := a.openContainer(r); err != nil {
		return nil, err
	}
	// An explicit address is checked before it is recorded as allocated,
	// an allocated one after.
	if a.explicit = a.req.IP.IsValid(); a.explicit {
		if err := n.checkRequest(ctx, a.ov, &a.req); err != nil {
			return nil, err
		}
	}
	// The overlay's network is agreed before anything is made (and
	// published here if the store has none yet, as by an older create).
	if err := PublishNetwork(ctx, n.reg, cfg); err != nil {
		return nil, err
	}
	return a, nil
}

// openOverlay connects to the overlay namespace and finds its bridge.
func (a *attachment) openOverlay(r *steps.Runner) error {
	cfg := a.ov.Config
	oc, err := a.n.dial(cfg.OverlayNetNS)
	if err != nil {
		return fmt.Errorf("overlay: overlay netns (run create again?): %w", err)
	}
	r.CloseLater(oc.Close)
	a.oc = oc
	if a.br, err = oc.LinkByName(cfg.Bridge); err != nil {
		return fmt.Errorf("overlay: bridge %s (run create again?): %w", cfg.Bridge, err)
	}
	return nil
}

// openContainer opens the container namespace, req.NetNSPath (which must
// exist) or req.Name in NetNSDir (left for step netns to create if
// missing), and refuses an interface name taken in it.
func (a *attachment) openContainer(r *steps.Runner) error {
	path := a.req.NetNSPath
	if path == "" {
		path = filepath.Join(a.n.netnsDir, a.req.Name)
	}
	ns, err := openContainerNetNS(path)
	if a.req.NetNSPath == "" && errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	r.CloseLater(ns.Close)
	a.cns = ns
	if err := a.dialContainer(r); err != nil {
		return err
	}
	l, err := links.Find(a.cc, a.req.IfName)
	if err != nil {
		return fmt.Errorf("overlay: interface %s in %s: %w", a.req.IfName, path, err)
	}
	if l != nil {
		return fmt.Errorf("%w: %s already exists in %s", ErrInterfaceExists, a.req.IfName, path)
	}
	return nil
}

func (a *attachment) dialContainer(r *steps.Runner) error {
	cc, err := rtnl.Dial(&rtnl.Config{NetNS: a.cns})
	if err != nil {
		return fmt.Errorf("overlay: netlink in container netns %s: %w", a.cns.Path(), err)
	}
	r.CloseLater(cc.Close)
	a.cc = cc
	return nil
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
		IP: req.IP, MAC: req.MAC, IfName: req.IfName, HostIf: HostIfName(req.Name), VTEP: a.ov.VTEP}
	return nil
}

// netns creates the container namespace req.Name, unless it exists.
func (a *attachment) netns(r *steps.Runner) error {
	if a.cns != nil {
		return nil
	}
	dir, name := a.n.netnsDir, a.req.Name
	err := r.Do(stepNetNS, func() error {
		ns, err := rtnl.CreateNetNS(dir, name)
		if err != nil {
			return fmt.Errorf("overlay: netns %s: %w", name, err)
		}
		r.CloseLater(ns.Close)
		a.cns, a.createdNS = ns, true
		return nil
	}, func() error { return deleteNetNS(dir, name) })
	if err != nil {
		return err
	}
	a.n.log.Info("created container netns", "netns", name)
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
	err = r.Do(stepAddress, func() error {
		if err := a.cc.AddressAdd(e.PeerIndex, e.IP); err != nil {
			return fmt.Errorf("overlay: add %s to %s: %w", e.IP, e.IfName, err)
		}
		return nil
	}, nil)
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

// bridgePort puts the host end on the bridge and brings it up.
func (a *attachment) bridgePort(r *steps.Runner) error {
	e, bridge := a.e, a.ov.Config.Bridge
	return r.Do(stepBridgePort, func() error {
		if err := a.oc.LinkSetMaster(e.HostIndex, a.br.Index); err != nil {
			return fmt.Errorf("overlay: put %s on %s: %w", e.HostIf, bridge, err)
		}
		if err := a.oc.LinkSetUp(e.HostIndex); err != nil {
			return fmt.Errorf("overlay: set %s up: %w", e.HostIf, err)
		}
		return nil
	}, nil)
}

// route adds the container's default route via the gateway, protocol boot
// as `ip route add` makes it (so the container reads back like the lab's).
func (a *attachment) route(r *steps.Runner) error {
	gw := a.ov.Config.Gateway.Addr()
	route := rtnl.NewDefaultRoute(gw)
	route.Protocol = rtnl.ProtoBoot
	return r.Do(stepRoute, func() error {
		if err := a.cc.RouteAdd(route); err != nil {
			return fmt.Errorf("overlay: default route via %s in %s: %w", gw, a.e.Name, err)
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

// register records IP → MAC → VTEP in the registry; undone by removing
// only the records this call created.
func (a *attachment) register(r *steps.Runner) error {
	ctx, reg, rec := a.ctx, a.n.reg, a.e.Record()
	_, lerr := reg.LookupMAC(ctx, rec.IP)
	ipExisted := lerr == nil
	_, lerr = reg.LookupVTEP(ctx, rec.MAC)
	macExisted := lerr == nil
	return r.Do(stepRegister, func() error {
		if err := reg.Register(ctx, rec); err != nil {
			return fmt.Errorf("overlay: register %s: %w", rec, err)
		}
		return nil
	}, func() error {
		own := rec
		if ipExisted {
			own.IP = netip.Addr{}
		}
		if macExisted {
			own.VTEP = netip.Addr{}
		}
		return reg.Unregister(context.WithoutCancel(ctx), own)
	})
}

// announce sends the container's gratuitous ARP, best effort: the endpoint
// works without it, a little later.
func (a *attachment) announce() {
	e := a.e
	if err := announce(a.cns, a.ctr.Index, e.MAC, e.IP.Addr()); err != nil {
		a.n.log.Warn("gratuitous ARP not sent", "endpoint", e.Name, "err", err)
	}
	a.n.log.Info("attached", "endpoint", e.Name, "ip", e.IP, "mac", e.MAC, "vtep", a.ov.VTEP,
		"host_if", e.HostIf, "host_index", e.HostIndex, "peer_index", e.PeerIndex)
}

// checkAttachFree refuses a name already attached and an IP or MAC taken by
// another local endpoint or, in the registry, by another MAC or VTEP.
func (n *Node) checkAttachFree(ctx context.Context, ov Overlay, req AttachRequest) error {
	if err := n.checkNameFree(req.Name); err != nil {
		return err
	}
	eps, err := n.listEndpoints()
	if err != nil {
		return err
	}
	hostIf := HostIfName(req.Name)
	for _, st := range eps {
		o := st.Endpoint
		switch {
		case o.IP.Addr() == req.IP.Addr():
			return fmt.Errorf("%w: IP %s is used by endpoint %q", registry.ErrConflict, req.IP.Addr(), o.Name)
		case o.MAC == req.MAC:
			return fmt.Errorf("%w: MAC %s is used by endpoint %q", registry.ErrConflict, req.MAC, o.Name)
		case o.HostIf == hostIf:
			return fmt.Errorf("%w: host interface name %s of %q is used by endpoint %q", ErrExists, hostIf, req.Name, o.Name)
		}
	}
	mac, err := n.reg.LookupMAC(ctx, req.IP.Addr())
	switch {
	case err == nil && mac != req.MAC:
		return fmt.Errorf("%w: IP %s is registered to MAC %s, not %s", registry.ErrConflict, req.IP.Addr(), mac, req.MAC)
	case err != nil && !errors.Is(err, registry.ErrNotFound):
		return fmt.Errorf("overlay: registry: %w", err)
	}
	vtep, err := n.reg.LookupVTEP(ctx, req.MAC)
	switch {
	case err == nil && vtep != ov.VTEP:
		return fmt.Errorf("%w: MAC %s is registered at VTEP %s, not this node's %s", registry.ErrConflict, req.MAC, vtep, ov.VTEP)
	case err != nil && !errors.Is(err, registry.ErrNotFound):
		return fmt.Errorf("overlay: registry: %w", err)
	}
	return nil
}

// checkRequest validates req against the overlay and refuses what another
// endpoint or the registry holds.
func (n *Node) checkRequest(ctx context.Context, ov Overlay, req *AttachRequest) error {
	if err := validateAttach(ov.Config, req); err != nil {
		return err
	}
	return n.checkAttachFree(ctx, ov, *req)
}

// checkNameFree refuses a name already attached.
func (n *Node) checkNameFree(name string) error {
	if _, err := n.loadEndpoint(name); err == nil {
		return fmt.Errorf("%w: %q is attached (detach it first)", ErrExists, name)
	} else if !errors.Is(err, ErrUnknownEndpoint) {
		return err
	}
	return nil
}
