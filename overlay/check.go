package overlay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/overlaynet/overlaynet/internal/links"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// Check compares endpoint name with the kernel and the registry and returns
// every difference: the host veth (present, up, on the bridge), the
// container interface (present, up, its MAC and MTU), its address, its
// default route via the gateway, and the registry records IP → MAC → VTEP.
// An endpoint that is not recorded is an error wrapping ErrUnknownEndpoint.
func (n *Node) Check(ctx context.Context, name string) (*Endpoint, []string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	st, err := n.loadEndpoint(name)
	if err != nil {
		return nil, nil, err
	}
	ost, err := n.loadOverlayState()
	if err != nil {
		return nil, nil, err
	}
	cfg := ost.Overlay.Config
	e := st.Endpoint
	var problems []string
	problem := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	oc, err := n.dial(cfg.OverlayNetNS)
	if err != nil {
		problem("overlay netns %s: %v", cfg.OverlayNetNS, err)
	} else {
		defer oc.Close()
		links, err := oc.LinkList()
		if err != nil {
			return nil, nil, fmt.Errorf("overlay: check: %w", err)
		}
		es := n.endpointStatus(st, newLinkIndex(links), cfg.Bridge)
		problems = append(problems, es.Problems...)
	}

	cc, err := n.dialEndpoint(e)
	if err == nil {
		defer cc.Close()
		n.checkContainer(cc, e, cfg, problem)
	}
	for _, rec := range e.Records() {
		if err := n.checkRecord(ctx, rec, problem); err != nil {
			return nil, nil, err
		}
	}
	return &e, problems, nil
}

// checkRecord compares the registry's records of rec's IP and MAC with rec.
func (n *Node) checkRecord(ctx context.Context, rec registry.Record, problem func(string, ...any)) error {
	mac, err := n.reg.LookupMAC(ctx, rec.IP)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		problem("registry has no record of IP %s", rec.IP)
	case err != nil:
		return fmt.Errorf("overlay: check: registry: %w", err)
	case mac != rec.MAC:
		problem("registry gives IP %s to MAC %s, not %s", rec.IP, mac, rec.MAC)
	}
	vtep, err := n.reg.LookupVTEP(ctx, rec.MAC)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		problem("registry has no VTEP for MAC %s", rec.MAC)
	case err != nil:
		return fmt.Errorf("overlay: check: registry: %w", err)
	case vtep != rec.VTEP:
		problem("registry puts MAC %s at VTEP %s, not this node's %s", rec.MAC, vtep, rec.VTEP)
	}
	return nil
}

// checkContainer checks the container side's MTU, addresses and default
// routes (one per family it has an address of).
func (n *Node) checkContainer(cc *rtnl.Conn, e Endpoint, cfg Config, problem func(string, ...any)) {
	l, err := links.Find(cc, e.IfName)
	if err != nil || l == nil {
		return // reported by endpointStatus
	}
	if l.MTU != cfg.MTU {
		problem("container interface %s has MTU %d, want %d", e.IfName, l.MTU, cfg.MTU)
	}
	for _, p := range e.Addrs() {
		f := FamilyOf(p.Addr())
		checkContainerAddress(cc, l, p, problem)
		checkContainerRoute(cc, l, cfg.GatewayOf(f).Addr(), problem)
	}
}

// checkContainerAddress reports a container interface l without address p.
func checkContainerAddress(cc *rtnl.Conn, l *rtnl.LinkMessage, p netip.Prefix, problem func(string, ...any)) {
	addrs, err := cc.AddressList(afOf(p.Addr()), l.Index)
	if err != nil {
		problem("addresses of %s: %v", l.Name, err)
		return
	}
	for _, a := range addrs {
		if a.Prefix() == p {
			return
		}
	}
	problem("container interface %s lacks address %s", l.Name, p)
}

// checkContainerRoute reports a container without a default route via gw
// on l.
func checkContainerRoute(cc *rtnl.Conn, l *rtnl.LinkMessage, gw netip.Addr, problem func(string, ...any)) {
	routes, err := cc.RouteList(afOf(gw), rtnl.RouteFilter{})
	if err != nil {
		problem("routes in the container: %v", err)
		return
	}
	for _, r := range routes {
		if r.DstLen == 0 && r.Gateway == gw && r.OIF == l.Index {
			return
		}
	}
	problem("container has no default route via %s on %s", gw, l.Name)
}

// afOf is the address family number of a (AF_INET or AF_INET6).
func afOf(a netip.Addr) uint8 {
	if FamilyOf(a) == IPv6 {
		return unix.AF_INET6
	}
	return unix.AF_INET
}
