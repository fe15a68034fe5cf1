package overlay

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"
	"slices"

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
	if err := a.req.takeAddrs(cfg); err != nil {
		return nil, err
	}
	// The addresses given are checked before anything is made; all of
	// them, and whether another endpoint or the registry has them, before
	// they are recorded as allocated when no address is to be allocated,
	// after otherwise.
	if err := checkGiven(cfg, &a.req); err != nil {
		return nil, err
	}
	if err := a.openOverlay(r); err != nil {
		return nil, err
	}
	if err := a.openContainer(r); err != nil {
		return nil, err
	}
	if a.explicit = a.req.complete(cfg); a.explicit {
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

// validateAttach fills in req's defaults and checks it against the
// overlay: an address of each family it is to have, each valid.
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
	if err := checkGiven(cfg, req); err != nil {
		errs = append(errs, err)
	}
	for _, f := range req.families(cfg) {
		if !req.ipOf(f).IsValid() {
			errs = append(errs, fmt.Errorf("overlay: no IP given (want an %s address with prefix, e.g. %s)", f, exampleIP(f)))
		}
	}
	if req.MAC.IsZero() {
		switch {
		case req.IP.IsValid():
			req.MAC = DeriveMAC(req.IP.Addr())
		case req.IP6.IsValid():
			req.MAC = DeriveMAC(req.IP6.Addr())
		}
	}
	if err := registry.ValidateMAC(req.MAC); err != nil && (req.IP.IsValid() || req.IP6.IsValid()) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkGiven checks the families req asks for and the addresses it gives
// (an address of a family it is not to have is an error).
func checkGiven(cfg Config, req *AttachRequest) error {
	var errs []error
	switch {
	case req.Only != 0 && req.Only != IPv4 && req.Only != IPv6:
		return fmt.Errorf("overlay: address family %v unknown (want IPv4 or IPv6)", req.Only)
	case req.Only == IPv6 && !cfg.DualStack():
		return errors.New("overlay: an IPv6 address asked for, but the overlay has no IPv6 prefix (create with an IPv6 gateway)")
	}
	fams := req.families(cfg)
	for _, f := range []Family{IPv4, IPv6} {
		p := req.ipOf(f)
		switch {
		case !p.IsValid():
		case !slices.Contains(fams, f) && !cfg.DualStack() && f == IPv6:
			errs = append(errs, fmt.Errorf("overlay: IP %s is IPv6, but the overlay has no IPv6 prefix (create with an IPv6 gateway)", p))
		case !slices.Contains(fams, f):
			errs = append(errs, fmt.Errorf("overlay: IP %s given, but the container is to have an %s address only", p, req.Only))
		case f == IPv4:
			errs = append(errs, validateIP4(cfg, p))
		default:
			errs = append(errs, validateIP6(cfg, p))
		}
	}
	return errors.Join(errs...)
}

// validateIP4 checks a container's IPv4 address against the overlay
// subnet.
func validateIP4(cfg Config, ip netip.Prefix) error {
	subnet := cfg.Subnet()
	switch {
	case !ip.Addr().Is4():
		return fmt.Errorf("overlay: IP %s is not IPv4", ip)
	case !subnet.Contains(ip.Addr()):
		return fmt.Errorf("overlay: IP %s is outside the overlay subnet %s", ip.Addr(), subnet)
	case ip.Bits() != subnet.Bits():
		return fmt.Errorf("overlay: IP %s has prefix /%d, the overlay subnet is %s", ip, ip.Bits(), subnet)
	case ip.Addr() == cfg.Gateway.Addr():
		return fmt.Errorf("overlay: IP %s is the gateway's address", ip.Addr())
	case ip.Addr() == subnet.Addr():
		return fmt.Errorf("overlay: IP %s is the subnet's network address", ip.Addr())
	case ip.Addr() == broadcast(subnet):
		return fmt.Errorf("overlay: IP %s is the subnet's broadcast address", ip.Addr())
	}
	return nil
}

// validateIP6 checks a container's IPv6 address against the overlay's
// IPv6 prefix.
func validateIP6(cfg Config, ip netip.Prefix) error {
	prefix := cfg.Subnet6()
	switch {
	case !ip.Addr().Is6() || ip.Addr().Is4In6():
		return fmt.Errorf("overlay: IP %s is not IPv6", ip)
	case !prefix.Contains(ip.Addr()):
		return fmt.Errorf("overlay: IP %s is outside the overlay's IPv6 prefix %s", ip.Addr(), prefix)
	case ip.Bits() != prefix.Bits():
		return fmt.Errorf("overlay: IP %s has prefix /%d, the overlay's IPv6 prefix is %s", ip, ip.Bits(), prefix)
	case ip.Addr() == cfg.Gateway6.Addr():
		return fmt.Errorf("overlay: IP %s is the IPv6 gateway's address", ip.Addr())
	case ip.Addr() == prefix.Addr():
		return fmt.Errorf("overlay: IP %s is the prefix's subnet-router anycast address", ip.Addr())
	}
	return nil
}

func exampleIP(f Family) string {
	if f == IPv6 {
		return "2001:db8:42::2/64"
	}
	return "198.51.100.2/24"
}

// families returns the families of the addresses req is to have on an
// overlay of cfg: req.Only's, or every family of the overlay.
func (req *AttachRequest) families(cfg Config) []Family {
	if req.Only != 0 {
		return []Family{req.Only}
	}
	return cfg.Families()
}

// ipOf returns req's address of family f.
func (req *AttachRequest) ipOf(f Family) netip.Prefix {
	if f == IPv6 {
		return req.IP6
	}
	return req.IP
}

// setIP sets req's address of family f.
func (req *AttachRequest) setIP(f Family, p netip.Prefix) {
	if f == IPv6 {
		req.IP6 = p
	} else {
		req.IP = p
	}
}

// complete says whether req gives an address of every family it is to
// have (nothing to allocate).
func (req *AttachRequest) complete(cfg Config) bool {
	for _, f := range req.families(cfg) {
		if !req.ipOf(f).IsValid() {
			return false
		}
	}
	return true
}

// takeAddrs turns req's bare addresses (Addr, Addr6) into addresses with
// the overlay's prefix lengths (IP, IP6), refusing one given both ways and
// an IPv6 zone.
func (req *AttachRequest) takeAddrs(cfg Config) error {
	if req.Addr.IsValid() {
		if req.IP.IsValid() {
			return fmt.Errorf("overlay: both IP %s and Addr %s given (one of them, Addr taking the overlay's prefix length)", req.IP, req.Addr)
		}
		req.IP = netip.PrefixFrom(req.Addr, cfg.Gateway.Bits())
	}
	if !req.Addr6.IsValid() {
		return nil
	}
	switch {
	case req.IP6.IsValid():
		return fmt.Errorf("overlay: both IP6 %s and Addr6 %s given (one of them, Addr6 taking the overlay's prefix length)", req.IP6, req.Addr6)
	case req.Addr6.Zone() != "":
		return fmt.Errorf("overlay: IPv6 address %s has a zone: the overlay is one link, give the address alone", req.Addr6)
	case !cfg.DualStack():
		return fmt.Errorf("overlay: IP %s is IPv6, but the overlay has no IPv6 prefix (create with an IPv6 gateway)", req.Addr6)
	}
	req.IP6 = netip.PrefixFrom(req.Addr6, cfg.Gateway6.Bits())
	return nil
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
		case o.Has(req.IP.Addr()):
			return fmt.Errorf("%w: IP %s is used by endpoint %q", registry.ErrConflict, req.IP.Addr(), o.Name)
		case o.Has(req.IP6.Addr()):
			return fmt.Errorf("%w: IP %s is used by endpoint %q", registry.ErrConflict, req.IP6.Addr(), o.Name)
		case o.MAC == req.MAC:
			return fmt.Errorf("%w: MAC %s is used by endpoint %q", registry.ErrConflict, req.MAC, o.Name)
		case o.HostIf == hostIf:
			return fmt.Errorf("%w: host interface name %s of %q is used by endpoint %q", ErrExists, hostIf, req.Name, o.Name)
		}
	}
	for _, p := range []netip.Prefix{req.IP, req.IP6} {
		if !p.IsValid() {
			continue
		}
		mac, err := n.reg.LookupMAC(ctx, p.Addr())
		switch {
		case err == nil && mac != req.MAC:
			return fmt.Errorf("%w: IP %s is registered to MAC %s, not %s", registry.ErrConflict, p.Addr(), mac, req.MAC)
		case err != nil && !errors.Is(err, registry.ErrNotFound):
			return fmt.Errorf("overlay: registry: %w", err)
		}
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
