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
	if err := PublishNetwork(ctx, n.reg, a.ov); err != nil {
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

// dialContainer connects to the container namespace a.cns.
func (a *attachment) dialContainer(r *steps.Runner) error {
	cc, err := rtnl.Dial(&rtnl.Config{NetNS: a.cns})
	if err != nil {
		return fmt.Errorf("overlay: netlink in container netns %s: %w", a.cns.Path(), err)
	}
	r.CloseLater(cc.Close)
	a.cc = cc
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
