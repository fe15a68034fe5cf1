package overlay

import (
	"fmt"
	"net/netip"

	"github.com/overlaynet/overlaynet/overlay/egress"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// ServiceReturn makes the way back of Service traffic on a node whose
// containers take their addresses from assigned blocks (Kubernetes), with
// addr the node's own overlay address (ipam.NodeAddress: in its podCIDR,
// which every node resolves to this node, with the MAC derived from addr).
// A container's packet to a ClusterIP leaves the overlay by the node path,
// is translated by the node's rules (kube-proxy's) to a container and
// comes back into the overlay; egress.EnsureServiceReturn translates its
// source to addr, so that the reply comes back to this node's connection
// tracking. For that reply to reach the node: the bridge takes addr's
// derived MAC as its own (frames to it from other nodes go up to the
// overlay namespace; the containers' gateway is the bridge, whatever its
// MAC), a route addr/32 via the node path, and a proxy ARP entry for addr
// on the bridge (this node's containers are answered the bridge's MAC).
// Idempotent; reset takes it back with the overlay namespace and egress's
// table. It needs egress.
func (n *Node) ServiceReturn(addr netip.Addr) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	ost, err := n.loadOverlayState()
	if err != nil {
		return err
	}
	if ost.Egress == nil {
		return fmt.Errorf("overlay: the Service return path needs egress (create without --no-egress)")
	}
	cfg := ost.Overlay.Config
	oc, err := n.dial(cfg.OverlayNetNS)
	if err != nil {
		return err
	}
	defer oc.Close()
	br, err := oc.LinkByName(cfg.Bridge)
	if err != nil {
		return fmt.Errorf("overlay: bridge %s: %w", cfg.Bridge, err)
	}
	eg, err := oc.LinkByName(ost.Egress.OverlayIf)
	if err != nil {
		return fmt.Errorf("overlay: %s: %w", ost.Egress.OverlayIf, err)
	}
	route := rtnl.NewRoute(netip.PrefixFrom(addr, 32), ost.Egress.HostAddr.Addr(), eg.Index)
	if err := oc.RouteReplace(route); err != nil {
		return fmt.Errorf("overlay: route %s/32 via %s in %s: %w", addr, ost.Egress.HostAddr.Addr(), cfg.OverlayNetNS, err)
	}
	mac := registry.DeriveMAC(addr)
	if br.Address != mac {
		if err := oc.LinkSetAddress(br.Index, mac); err != nil {
			return fmt.Errorf("overlay: set %s's MAC to %s: %w", cfg.Bridge, mac, err)
		}
	}
	proxy := &rtnl.NeighMessage{Family: unix.AF_INET, Ifindex: br.Index, Flags: rtnl.NeighFlagProxy, Dst: addr}
	if err := oc.NeighReplace(proxy); err != nil {
		return fmt.Errorf("overlay: proxy ARP entry %s on %s: %w", addr, cfg.Bridge, err)
	}
	added, err := egress.EnsureServiceReturn(ost.Egress, cfg.Subnet(), addr)
	if err != nil {
		return err
	}
	if added {
		n.log.Info("Service return path in place", "node_address", addr, "mac", mac)
	}
	return nil
}
