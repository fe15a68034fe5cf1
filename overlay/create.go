package overlay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"

	"github.com/overlaynet/overlaynet/internal/links"
	"github.com/overlaynet/overlaynet/internal/steps"
	"github.com/overlaynet/overlaynet/overlay/egress"
	"github.com/overlaynet/overlaynet/overlay/wireguard"
	"github.com/overlaynet/overlaynet/rtnl"
)

// Create steps, in order (see internal/steps); a part that exists as cfg
// wants it takes no step.
const (
	stepOverlayNetNS = "netns"      // the overlay namespace (loopback up)
	stepBridge       = "bridge"     // the bridge
	stepBridgeMTU    = "bridge-mtu" // an existing bridge's MTU set
	stepGateway      = "gateway"    // the gateway address on the bridge
	stepGateway6     = "gateway6"   // the IPv6 gateway address on the bridge
	stepVxlan        = "vxlan"      // the vxlan device, made in the overlay namespace
	stepUp           = "up"         // the vxlan on the bridge, both up
	stepEgress       = "egress"     // egress.Setup
	stepOverlayState = "state"      // the overlay recorded in the state directory
)

// Create builds the node's overlay, idempotently: the overlay namespace
// (cfg.OverlayNetNS in NetNSDir, loopback up), the bridge (MTU cfg.MTU)
// holding the gateway address,
// and the vxlan device (proxy, l2miss, l3miss, learning as cfg says),
// created in the calling ("host") namespace and moved into the overlay
// namespace at creation (as `ip link add dev vxlan1 netns overns type vxlan
// ...` does); the vxlan is put on the bridge and both are brought
// up. The configuration, the chosen VTEP and what was created are recorded
// in StateDir/overlay.json.
//
// With NodeOptions.Registry set, the overlay's network (VNI, port, MTU,
// gateway and subnet: Config.Network) is published in the registry if the
// registry records one (see registry.NetworkStore) and none is recorded yet; a node
// configured differently from the recorded network is refused.
//
// Whatever already exists is checked, never destroyed: a device, a
// recorded configuration or the registry's network with other settings
// makes Create fail with a *MismatchError listing every difference, before
// anything is created. On any other failure, what this call created is
// removed again.
func (n *Node) Create(ctx context.Context, cfg Config) (_ *Overlay, err error) {
	// One create at a time per node, and none beside an attach: a create
	// waiting here finds what the one before made, as existing parts.
	unlock, madeDir, err := n.lockCreate()
	if err != nil {
		return nil, err
	}
	defer unlock()
	defer func() {
		if err != nil && madeDir {
			n.removeLock()
			os.Remove(n.stateDir) // only if empty
		}
	}()
	r := n.runner(ctx, "create", n.newCreateJournal(cfg), n.log)
	defer r.Finish(&err)
	c, err := n.planCreate(ctx, r, cfg)
	if err != nil {
		return nil, err
	}
	for _, step := range []func(*steps.Runner) error{
		c.netns, c.bridge, c.gateway, c.tunnel, c.vxlan, c.up, c.egress, c.publish, c.save,
	} {
		if err := step(r); err != nil {
			return nil, err
		}
	}
	// Endpoints attached before a loss of the ruleset (a reboot) get their
	// anti-spoofing rules back; rules in place are kept as they are.
	if k, err := n.restoreAntispoof(cfg); err != nil {
		return nil, err
	} else if k > 0 {
		n.log.Info("anti-spoofing rules in place", "ports", k)
	}
	ov := c.ov
	n.log.Info("overlay ready", "netns", cfg.OverlayNetNS, "bridge", cfg.Bridge, "vxlan", cfg.Vxlan,
		"vtep", ov.VTEP, "vtep_source", ov.VTEPSource, "underlay", ov.UnderlayDev)
	return &ov, nil
}

// creation is one Create under way: what was asked for, what exists, and
// what the steps made.
type creation struct {
	n    *Node
	ctx  context.Context
	cfg  Config
	prev *overlayState // the overlay recorded before, nil for none
	// host is the calling ("host") namespace; ov the overlay being made,
	// its underlay device devIndex.
	host     *rtnl.Conn
	ov       Overlay
	devIndex int32
	// ns and oc are the overlay namespace and a connection in it; br and
	// vx its bridge and vxlan: nil until they exist.
	ns      *rtnl.NetNS
	oc      *rtnl.Conn
	br, vx  *rtnl.LinkMessage
	created Creation
	// egressState is what egress.Setup made, nil without egress.
	egressState *egress.State
	// egressSrc is the node's source towards its containers: its VTEP, or
	// on an IPv6 underlay an IPv4 address of the underlay device.
	egressSrc netip.Addr
	// dead is what a create killed before it recorded the overlay set out
	// to make (createFile): this create finishes its job.
	dead Creation
	// tun is an encrypted overlay's tunnel being made (nil without), key
	// the node's private key.
	tun *Tunnel
	key wireguard.PrivateKey
}

// netns makes the overlay namespace, with its loopback up, unless it
// exists.
func (c *creation) netns(r *steps.Runner) error {
	if c.ns != nil {
		return nil
	}
	ns, err := createNetNS(r, stepOverlayNetNS, c.n.netnsDir, c.cfg.OverlayNetNS, nil)
	if err != nil {
		return err
	}
	c.ns, c.created.NetNS = ns, true
	c.n.log.Info("created overlay netns", "netns", c.cfg.OverlayNetNS, "dir", c.n.netnsDir)
	if c.oc, err = rtnl.Dial(&rtnl.Config{NetNS: c.ns}); err != nil {
		return err
	}
	r.CloseLater(c.oc.Close)
	if err := links.Up(c.oc, "lo"); err != nil {
		return fmt.Errorf("overlay: overlay netns loopback up: %w", err)
	}
	return nil
}

// bridge makes the bridge, unless it exists, and gives it cfg's MTU.
func (c *creation) bridge(r *steps.Runner) error {
	cfg := c.cfg
	if c.br == nil {
		m := rtnl.NewBridge(cfg.Bridge)
		m.MTU = cfg.MTU
		err := r.Do(stepBridge, func() error {
			if err := c.oc.LinkAdd(m); err != nil {
				return fmt.Errorf("overlay: create bridge %s: %w", cfg.Bridge, err)
			}
			c.created.Bridge = true
			return nil
		}, func() error { return links.Delete(c.oc, cfg.Bridge) })
		if err != nil {
			return err
		}
		c.n.log.Info("created bridge", "bridge", cfg.Bridge, "mtu", cfg.MTU)
		if c.br, err = c.oc.LinkByName(cfg.Bridge); err != nil {
			return fmt.Errorf("overlay: bridge %s: %w", cfg.Bridge, err)
		}
	}
	// A bridge's MTU is not a fixed setting: unless set after creation it
	// follows the minimum of its ports (1500 with none). So an existing
	// bridge with another MTU is adjusted, not refused.
	if c.br.MTU == cfg.MTU {
		return nil
	}
	old, index := c.br.MTU, c.br.Index
	return r.Do(stepBridgeMTU, func() error {
		if err := c.oc.LinkSetMTU(index, cfg.MTU); err != nil {
			return fmt.Errorf("overlay: set bridge %s MTU %d: %w", cfg.Bridge, cfg.MTU, err)
		}
		c.n.log.Info("set bridge MTU", "bridge", cfg.Bridge, "old", old, "new", cfg.MTU)
		return nil
	}, func() error { return c.oc.LinkSetMTU(index, old) })
}

// gateway puts the gateway addresses on the bridge, each unless it is
// there: the IPv4 one, and on a dual-stack overlay the IPv6 one, usable at
// once (nodad: the gateway is the overlay's, no container may have it).
func (c *creation) gateway(r *steps.Runner) error {
	cfg := c.cfg
	index := c.br.Index
	for _, gw := range cfg.Gateways() {
		has, err := hasAddress(c.oc, index, gw)
		if err != nil {
			return err
		}
		if has {
			continue
		}
		v6 := FamilyOf(gw.Addr()) == IPv6
		step := stepGateway
		m := rtnl.NewAddress(index, gw)
		if v6 {
			step, m.Flags = stepGateway6, m.Flags|rtnl.AddrNoDAD
		}
		err = r.Do(step, func() error {
			if err := c.oc.AddressAddMessage(m); err != nil {
				return fmt.Errorf("overlay: add %s to bridge %s: %w%s", gw, cfg.Bridge, err, ipv6Hint(v6, err, cfg.Bridge, cfg.OverlayNetNS))
			}
			if v6 {
				c.created.Address6 = true
			} else {
				c.created.Address = true
			}
			c.n.log.Info("added gateway address", "bridge", cfg.Bridge, "address", gw)
			return nil
		}, func() error { return links.DeleteAddress(c.oc, index, gw) })
		if err != nil {
			return err
		}
	}
	return nil
}

// ipv6Hint explains an IPv6 address the kernel refused because IPv6 is
// disabled on the device (EACCES).
func ipv6Hint(v6 bool, err error, dev, netns string) string {
	if !v6 || !errors.Is(err, syscall.EACCES) {
		return ""
	}
	return fmt.Sprintf(" (IPv6 is disabled on %s: net.ipv6.conf.%s.disable_ipv6 is 1 in netns %s, or net.ipv6.conf.default.disable_ipv6 was when it was made)", dev, dev, netns)
}

// vxlan makes the vxlan device, unless it exists: in the calling
// namespace, on the underlay, moved into the overlay namespace at creation.
func (c *creation) vxlan(r *steps.Runner) error {
	cfg := c.cfg
	if c.vx != nil {
		return nil
	}
	m := rtnl.NewVxlan(cfg.Vxlan, vxlanInfo(c.ov, c.devIndex))
	m.MTU = cfg.MTU
	m.NetNSFD = c.ns.Fd()
	m.Present |= rtnl.LinkHasNetNSFD
	err := r.Do(stepVxlan, func() error {
		if err := c.host.LinkAdd(m); err != nil {
			return fmt.Errorf("overlay: create vxlan %s in netns %s: %w", cfg.Vxlan, cfg.OverlayNetNS, err)
		}
		c.created.Vxlan = true
		return nil
	}, func() error { return links.Delete(c.oc, cfg.Vxlan) })
	if err != nil {
		return err
	}
	c.n.log.Info("created vxlan", "vxlan", cfg.Vxlan, "vni", cfg.VNI, "port", cfg.Port, "vtep", c.ov.VTEP, "vtep_source", c.ov.VTEPSource)
	if c.vx, err = c.oc.LinkByName(cfg.Vxlan); err != nil {
		return fmt.Errorf("overlay: vxlan %s: %w", cfg.Vxlan, err)
	}
	return nil
}

// up puts the vxlan on the bridge and brings both up. Undone with them
// when they are removed; an existing bridge left up stays up.
func (c *creation) up(r *steps.Runner) error {
	return r.Do(stepUp, func() error {
		if c.vx.Master != c.br.Index {
			if err := c.oc.LinkSetMaster(c.vx.Index, c.br.Index); err != nil {
				return fmt.Errorf("overlay: put %s on %s: %w", c.cfg.Vxlan, c.cfg.Bridge, err)
			}
		}
		for _, l := range []*rtnl.LinkMessage{c.br, c.vx} {
			if l.Flags&rtnl.LinkUp == 0 {
				// No IPv6 link-local address, so no DAD probe or router
				// solicitation of the overlay's own devices on the overlay.
				if c.cfg.DualStack() {
					if err := c.oc.LinkSetAddrGenMode(l.Index, rtnl.AddrGenNone); err != nil {
						return fmt.Errorf("overlay: %s addrgenmode none: %w", l.Name, err)
					}
				}
				if err := c.oc.LinkSetUp(l.Index); err != nil {
					return fmt.Errorf("overlay: set %s up: %w", l.Name, err)
				}
			}
		}
		return nil
	}, nil)
}

// vtep6 is a if it is an IPv6 VTEP, else invalid.
func vtep6(a netip.Addr) netip.Addr {
	if FamilyOf(a) != IPv6 {
		return netip.Addr{}
	}
	return a
}

// egress sets up egress (egress.Setup), if cfg asks for it.
func (c *creation) egress(r *steps.Runner) error {
	cfg := c.cfg
	if cfg.Egress == nil {
		return nil
	}
	var prev *egress.State
	if c.prev != nil {
		prev = c.prev.Egress
	}
	p := egress.Params{Host: c.host, Overlay: c.oc, OverlayNS: c.ns, OverlayNetNS: cfg.OverlayNetNS,
		Subnet: cfg.Subnet(), Subnet6: cfg.Subnet6(), Bridge: cfg.Bridge, VTEP: c.egressSrc, VTEP6: vtep6(c.ov.Underlay()), UnderlayDev: c.ov.UnderlayDev, Log: c.n.log}
	var undo func() error
	return r.Do(stepEgress, func() error {
		st, u, err := egress.Setup(p, *cfg.Egress, prev)
		if err != nil {
			return err
		}
		c.egressState, undo = st, u
		return nil
	}, func() error { return undo() })
}

// publish records the overlay's network in the registry, if there is one.
// Checked by planCreate; published only now that this node's overlay
// exists, so that a create that fails defines nothing. A node that
// published another network meanwhile wins, and this create rolls back.
// The network stays published: other nodes may use it already.
func (c *creation) publish(*steps.Runner) error {
	if c.n.reg == nil {
		return nil
	}
	return PublishNetwork(c.ctx, c.n.reg, c.ov)
}

// save records the overlay, and what this and earlier creates made, in the
// state directory; undone by putting the earlier record back.
func (c *creation) save(r *steps.Runner) error {
	st := &overlayState{Overlay: c.ov, Created: c.created, Egress: c.egressState}
	st.Created.NetNS = st.Created.NetNS || c.dead.NetNS
	st.Created.Bridge = st.Created.Bridge || c.dead.Bridge
	st.Created.Vxlan = st.Created.Vxlan || c.dead.Vxlan
	st.Created.Address = st.Created.Address || c.dead.Address
	if prev := c.prev; prev != nil {
		if prev.Overlay.VTEP != c.ov.VTEP {
			c.n.log.Warn("VTEP changed since the last create: endpoints attached before stay registered at the old one until re-attached",
				"old", prev.Overlay.VTEP, "new", c.ov.VTEP, "vtep_source", c.ov.VTEPSource)
		}
		st.Created.NetNS = st.Created.NetNS || prev.Created.NetNS
		st.Created.Bridge = st.Created.Bridge || prev.Created.Bridge
		st.Created.Vxlan = st.Created.Vxlan || prev.Created.Vxlan
		st.Created.Address = st.Created.Address || prev.Created.Address
		st.Created.Address6 = st.Created.Address6 || prev.Created.Address6
	}
	return r.Do(stepOverlayState, func() error { return c.n.saveOverlayState(st) }, func() error {
		if c.prev != nil {
			return c.n.saveOverlayState(c.prev)
		}
		return c.n.removeOverlayState()
	})
}

// vxlanInfo is the vxlan device ov asks for: proxy ARP (and ND) and both
// miss notifications on, so a resolver can answer from the registry.
// IFLA_VXLAN_LOCAL is set for Config.Local and on an IPv6 underlay (the
// device's socket is IPv6 only when its local or remote address is), and
// IFLA_VXLAN_LINK only for Config.Dev; with neither, the kernel picks the
// source by route, as in the lab. In an encrypted overlay the local address
// is the tunnel address (ov.VTEP, when known) and there is no underlay
// device: VXLAN is routed through the WireGuard device.
func vxlanInfo(ov Overlay, devIndex int32) rtnl.VxlanInfo {
	cfg := ov.Config
	info := rtnl.VxlanInfo{
		ID: cfg.VNI, Port: cfg.Port, Learning: cfg.Learning,
		Proxy: true, L2Miss: true, L3Miss: true,
	}
	switch {
	case cfg.Encrypt != nil:
		info.Local = ov.VTEP
		return info
	case cfg.Local.IsValid():
		info.Local = cfg.Local
	case ov.VTEP.IsValid() && FamilyOf(ov.VTEP) == IPv6:
		info.Local = ov.VTEP
	}
	if cfg.Dev != "" {
		info.Dev = devIndex
	}
	return info
}
