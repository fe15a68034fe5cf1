package overlay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
)

// Attach steps, in order. After each one the node's test hook attachHook is
// consulted, so tests can inject a failure at every step.
const (
	stepNetNS      = "netns"       // container netns opened or created
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

// attachSteps lists the attach steps in order.
var attachSteps = []string{stepNetNS, stepVeth, stepAntispoof, stepLoopback, stepAddress, stepLinkUp,
	stepBridgePort, stepRoute, stepState, stepRegister}

func (n *Node) attachStep(ctx context.Context, step string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("overlay: attach interrupted after %s: %w", step, err)
	}
	if n.attachHook != nil {
		if err := n.attachHook(step); err != nil {
			return fmt.Errorf("overlay: attach step %s: %w", step, err)
		}
	}
	n.log.Debug("attach step done", "step", step)
	return nil
}

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
// Create, an overlay whose network differs from the one recorded in the
// registry (a *registry.NetworkMismatchError naming each difference; a registry that
// records networks but has none yet gets this node's), a name already
// attached, and an IP or MAC that the registry (or another local endpoint)
// gives to someone else (registry.ErrConflict). Any failure
// later rolls back everything this call created, in the kernel, the state
// directory and the registry. In a namespace that already existed, the
// loopback it brought up stays up.
func (n *Node) Attach(ctx context.Context, req AttachRequest) (ep *Endpoint, err error) {
	unlock, err := n.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if n.reg == nil {
		return nil, ErrNoRegistry
	}
	ost, err := n.loadOverlayState()
	if err != nil {
		return nil, err
	}
	ov := ost.Overlay
	cfg := ov.Config
	undo := &undoStack{log: n.log.With("endpoint", req.Name)}
	defer func() {
		if err != nil {
			n.log.Warn("attach failed, rolling back", "endpoint", req.Name, "err", err)
			ep = nil
		}
		undo.finish(&err)
	}()
	if err := ValidateNetNSName(req.Name); err != nil {
		return nil, fmt.Errorf("overlay: container name: %w", err)
	}
	if err := n.checkNameFree(req.Name); err != nil {
		return nil, err
	}
	if req.Addr.IsValid() {
		if req.IP.IsValid() {
			return nil, fmt.Errorf("overlay: both IP %s and Addr %s given (one of them, Addr taking the overlay's prefix length)", req.IP, req.Addr)
		}
		req.IP = netip.PrefixFrom(req.Addr, cfg.Gateway.Bits())
	}
	// An explicit address is checked before it is recorded as allocated,
	// an allocated one after.
	explicit := req.IP.IsValid()
	if explicit {
		if err := n.checkRequest(ctx, ov, &req); err != nil {
			return nil, err
		}
	}
	// The overlay's network is agreed before anything is made (and
	// published here if the store has none yet, as by an older create).
	if err := PublishNetwork(ctx, n.reg, cfg); err != nil {
		return nil, err
	}
	if err := n.allocate(ctx, ov, &req, undo); err != nil {
		return nil, err
	}
	if !explicit {
		if err := n.checkRequest(ctx, ov, &req); err != nil {
			return nil, err
		}
	}

	e := &Endpoint{Name: req.Name, NetNS: req.NetNSPath, ContainerID: req.ContainerID, Network: req.Network,
		IP: req.IP, MAC: req.MAC, IfName: req.IfName, HostIf: HostIfName(req.Name), VTEP: ov.VTEP}

	ons, err := rtnl.OpenNamedNetNS(n.netnsDir, cfg.OverlayNetNS)
	if err != nil {
		return nil, fmt.Errorf("overlay: overlay netns (run create again?): %w", err)
	}
	undo.closeLater(ons.Close)
	oc, err := rtnl.Dial(&rtnl.Config{NetNS: ons})
	if err != nil {
		return nil, err
	}
	undo.closeLater(oc.Close)
	br, err := oc.LinkByName(cfg.Bridge)
	if err != nil {
		return nil, fmt.Errorf("overlay: bridge %s (run create again?): %w", cfg.Bridge, err)
	}

	cns, createdNS, err := n.openContainerNetNS(req)
	if err != nil {
		return nil, err
	}
	undo.closeLater(cns.Close)
	if createdNS {
		undo.push("netns "+req.Name, func() error { return deleteNetNS(n.netnsDir, req.Name) })
		n.log.Info("created container netns", "netns", req.Name)
	}
	if err := n.attachStep(ctx, stepNetNS); err != nil {
		return nil, err
	}
	cc, err := rtnl.Dial(&rtnl.Config{NetNS: cns})
	if err != nil {
		return nil, err
	}
	undo.closeLater(cc.Close)

	peer := rtnl.LinkMessage{Name: req.IfName, MTU: cfg.MTU, Address: req.MAC,
		NetNSFD: cns.Fd(), Present: rtnl.LinkHasNetNSFD}
	veth := rtnl.NewVethPair(e.HostIf, peer)
	veth.MTU = cfg.MTU
	if err := oc.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("overlay: create veth %s (peer %s in %s): %w", e.HostIf, req.IfName, req.Name, err)
	}
	undo.push("veth "+e.HostIf, func() error { return deleteLinkByName(oc, e.HostIf) })
	host, err := oc.LinkByName(e.HostIf)
	if err != nil {
		return nil, fmt.Errorf("overlay: veth %s: %w", e.HostIf, err)
	}
	ctr, err := cc.LinkByName(req.IfName)
	if err != nil {
		return nil, fmt.Errorf("overlay: container interface %s: %w", req.IfName, err)
	}
	e.HostIndex, e.PeerIndex = host.Index, ctr.Index
	n.log.Info("created veth pair", "host_if", e.HostIf, "ifname", req.IfName, "netns", req.Name, "mac", req.MAC)
	if err := n.attachStep(ctx, stepVeth); err != nil {
		return nil, err
	}
	// Before the port is on the bridge: no frame of the container gets
	// through unchecked.
	if !cfg.NoAntispoof {
		if err := installAntispoof(ons, *e); err != nil {
			return nil, err
		}
		undo.push("anti-spoofing rules of "+e.HostIf, func() error { return n.removeAntispoof(cfg.OverlayNetNS, e.HostIf) })
	}
	if err := n.attachStep(ctx, stepAntispoof); err != nil {
		return nil, err
	}

	if err := setLoopbackUp(cc); err != nil {
		return nil, fmt.Errorf("overlay: loopback up in %s: %w", req.Name, err)
	}
	if err := n.attachStep(ctx, stepLoopback); err != nil {
		return nil, err
	}
	if err := cc.AddressAdd(ctr.Index, req.IP); err != nil {
		return nil, fmt.Errorf("overlay: add %s to %s: %w", req.IP, req.IfName, err)
	}
	if err := n.attachStep(ctx, stepAddress); err != nil {
		return nil, err
	}
	if err := cc.LinkSetUp(ctr.Index); err != nil {
		return nil, fmt.Errorf("overlay: set %s up: %w", req.IfName, err)
	}
	if err := n.attachStep(ctx, stepLinkUp); err != nil {
		return nil, err
	}
	if err := oc.LinkSetMaster(host.Index, br.Index); err != nil {
		return nil, fmt.Errorf("overlay: put %s on %s: %w", e.HostIf, cfg.Bridge, err)
	}
	if err := oc.LinkSetUp(host.Index); err != nil {
		return nil, fmt.Errorf("overlay: set %s up: %w", e.HostIf, err)
	}
	if err := n.attachStep(ctx, stepBridgePort); err != nil {
		return nil, err
	}
	// Protocol boot, as `ip route add` makes it, so the container reads back
	// like the lab's.
	route := rtnl.NewDefaultRoute(cfg.Gateway.Addr())
	route.Protocol = rtnl.ProtoBoot
	if err := cc.RouteAdd(route); err != nil {
		return nil, fmt.Errorf("overlay: default route via %s in %s: %w", cfg.Gateway.Addr(), req.Name, err)
	}
	if err := n.attachStep(ctx, stepRoute); err != nil {
		return nil, err
	}

	if err := n.saveEndpoint(&endpointState{Endpoint: *e, CreatedNetNS: createdNS}); err != nil {
		return nil, err
	}
	undo.push("state of "+req.Name, func() error { return n.removeEndpointState(req.Name) })
	if err := n.attachStep(ctx, stepState); err != nil {
		return nil, err
	}

	rec := e.Record()
	_, lerr := n.reg.LookupMAC(ctx, rec.IP)
	ipExisted := lerr == nil
	_, lerr = n.reg.LookupVTEP(ctx, rec.MAC)
	macExisted := lerr == nil
	if err := n.reg.Register(ctx, rec); err != nil {
		return nil, fmt.Errorf("overlay: register %s: %w", rec, err)
	}
	undo.push("registry records of "+req.Name, func() error {
		// Remove only the records this call created.
		r := rec
		if ipExisted {
			r.IP = netip.Addr{}
		}
		if macExisted {
			r.VTEP = netip.Addr{}
		}
		return n.reg.Unregister(context.WithoutCancel(ctx), r)
	})
	if err := n.attachStep(ctx, stepRegister); err != nil {
		return nil, err
	}
	// Best effort: the endpoint works without it, a little later.
	if err := announce(cns, ctr.Index, req.MAC, req.IP.Addr()); err != nil {
		n.log.Warn("gratuitous ARP not sent", "endpoint", req.Name, "err", err)
	}
	n.log.Info("attached", "endpoint", req.Name, "ip", req.IP, "mac", req.MAC, "vtep", ov.VTEP,
		"host_if", e.HostIf, "host_index", e.HostIndex, "peer_index", e.PeerIndex)
	return e, nil
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

// openContainerNetNS opens the container's namespace: req.NetNSPath, which
// must exist, or req.Name in NetNSDir, created if missing (created says so).
func (n *Node) openContainerNetNS(req AttachRequest) (ns *rtnl.NetNS, created bool, err error) {
	if req.NetNSPath == "" {
		return openOrCreateNetNS(n.netnsDir, req.Name)
	}
	ns, err = rtnl.OpenNetNS(req.NetNSPath)
	if err != nil {
		return nil, false, fmt.Errorf("overlay: container netns %s: %w", req.NetNSPath, err)
	}
	return ns, false, nil
}

// dialEndpoint opens an rtnetlink connection in e's container namespace; a
// missing namespace is an error wrapping os.ErrNotExist.
func (n *Node) dialEndpoint(e Endpoint) (*rtnl.Conn, error) {
	if e.NetNS == "" {
		return n.dial(e.Name)
	}
	ns, err := rtnl.OpenNetNS(e.NetNS)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	return rtnl.Dial(&rtnl.Config{NetNS: ns})
}
