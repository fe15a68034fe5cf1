package overlay

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"strconv"

	"github.com/overlaynet/overlaynet/internal/links"
	"github.com/overlaynet/overlaynet/internal/steps"
	"github.com/overlaynet/overlaynet/overlay/wireguard"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// planCreate checks cfg against the recorded overlay, the registry's
// network, the underlay and the devices that exist, before anything is
// made: every difference is reported at once, in a *MismatchError. r
// closes the handles it opens.
func (n *Node) planCreate(ctx context.Context, r *steps.Runner, cfg Config) (*creation, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	prev, err := n.loadOverlayState()
	if err != nil && !errors.Is(err, ErrNotCreated) {
		return nil, err
	}
	c := &creation{n: n, ctx: ctx, prev: prev}
	if c.host, err = rtnl.Dial(nil); err != nil {
		return nil, err
	}
	r.CloseLater(c.host.Close)
	// The underlay's family decides the default MTU and is part of the
	// network every node agrees on: the underlay is found first.
	if c.ov, c.devIndex, err = findUnderlay(c.host, cfg); err != nil {
		return nil, err
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTUFor(c.ov.VTEP)
		if cfg.Encrypt != nil { // inside WireGuard: 1390 on an IPv4 underlay
			_, cfg.MTU = tunnelMTUs(1500, c.ov.VTEP, cfg.Encrypt.Tunnel)
		}
	}
	c.cfg, c.ov.Config = cfg, cfg
	if err := CheckSpansFamily(n.reg, c.ov); err != nil {
		return nil, err
	}
	// Differences with the registry's network are reported with those of
	// the state directory or the devices, all at once.
	var storeMM []Mismatch
	if n.reg != nil {
		if storeMM, err = storeMismatches(ctx, n.reg, c.ov.Network()); err != nil {
			return nil, err
		}
	}
	if prev != nil {
		if mm := diffConfig(cfg, prev.Overlay.Config); len(mm) > 0 {
			return nil, &MismatchError{Mismatches: append(mm, storeMM...)}
		}
	}
	if err := c.adoptDead(); err != nil {
		return nil, err
	}
	if cfg.Encrypt != nil {
		if err := c.planTunnel(); err != nil {
			return nil, err
		}
	} else if err := checkUnderlayMTU(c.ov); err != nil {
		return nil, err
	}
	if c.egressSrc, err = egressSource(c.host, c.ov, c.devIndex); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	mm, err := c.inspect(r)
	if err != nil {
		return nil, err
	}
	if mm = append(mm, storeMM...); len(mm) > 0 {
		return nil, &MismatchError{Mismatches: mm}
	}
	return c, nil
}

// adoptDead reads the record of a create killed before it recorded the
// overlay (createFile): this create finishes its job, if it builds the
// same namespace and devices.
func (c *creation) adoptDead() error {
	dead, err := c.n.loadCreateRecord()
	if err != nil || dead == nil {
		return err
	}
	d, cfg := dead.Config, c.cfg
	if d.OverlayNetNS != cfg.OverlayNetNS || d.Bridge != cfg.Bridge || d.Vxlan != cfg.Vxlan || d.Gateway != cfg.Gateway {
		return fmt.Errorf("overlay: a create killed half-way (pid %d) was building netns %s (bridge %s %s, vxlan %s): run reset first, or create it again as it was",
			dead.PID, d.OverlayNetNS, d.Bridge, d.Gateway, d.Vxlan)
	}
	c.dead = dead.created()
	c.n.log.Info("finishing what a create killed half-way began", "steps", dead.Intended, "pid", dead.PID)
	return nil
}

// egressSource is the node's source address towards its containers over
// the egress path (IPv4): its VTEP, or on an IPv6 underlay the underlay
// device's first global IPv4 address (egress is IPv4). Without egress, none.
func egressSource(host *rtnl.Conn, ov Overlay, devIndex int32) (netip.Addr, error) {
	under := ov.Underlay() // an encrypted overlay's VTEP is its tunnel address
	if ov.Config.Egress == nil || FamilyOf(under) == IPv4 {
		return under, nil
	}
	link, err := host.LinkGet(devIndex)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("overlay: underlay device: %w", err)
	}
	a, err := firstGlobal(host, link, unix.AF_INET)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("overlay: egress on the IPv6 underlay %s needs an IPv4 address there too, "+
			"the node's source towards its containers (egress is IPv4): add one, or create with no egress", ov.UnderlayDev)
	}
	return a, nil
}

// inspect opens the overlay namespace, if it exists, finds its bridge and
// vxlan and lists how they differ from the configuration.
func (c *creation) inspect(r *steps.Runner) ([]Mismatch, error) {
	cfg := c.cfg
	ns, err := rtnl.OpenNamedNetNS(c.n.netnsDir, cfg.OverlayNetNS)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("overlay: overlay netns: %w", err)
	}
	r.CloseLater(ns.Close)
	c.ns = ns
	if c.oc, err = rtnl.Dial(&rtnl.Config{NetNS: ns}); err != nil {
		return nil, err
	}
	r.CloseLater(c.oc.Close)
	if c.br, err = links.Find(c.oc, cfg.Bridge); err != nil {
		return nil, fmt.Errorf("overlay: bridge %s: %w", cfg.Bridge, err)
	}
	if c.vx, err = links.Find(c.oc, cfg.Vxlan); err != nil {
		return nil, fmt.Errorf("overlay: vxlan %s: %w", cfg.Vxlan, err)
	}
	return diffDevices(c.oc, c.ov, c.br, c.vx, c.devIndex)
}

// hasAddress reports whether link index holds exactly p; the same address
// with another prefix length is an error.
func hasAddress(c *rtnl.Conn, index int32, p netip.Prefix) (bool, error) {
	addrs, err := c.AddressList(afOf(p.Addr()), index)
	if err != nil {
		return false, fmt.Errorf("overlay: list bridge addresses: %w", err)
	}
	for _, a := range addrs {
		if a.Prefix() == p {
			return true, nil
		}
	}
	return false, nil
}

// diffConfig lists the settings in which want differs from the recorded
// configuration have.
func diffConfig(want, have Config) []Mismatch {
	var mm []Mismatch
	add := func(field string, w, h any) {
		ws, hs := fmt.Sprint(w), fmt.Sprint(h)
		if ws != hs {
			mm = append(mm, Mismatch{Device: "state", Field: field, Want: ws, Have: hs})
		}
	}
	add("VNI", want.VNI, have.VNI)
	add("port", want.Port, have.Port)
	add("MTU", want.MTU, have.MTU)
	add("gateway", want.Gateway, have.Gateway)
	add("IPv6 gateway", prefixOrNone(want.Gateway6), prefixOrNone(have.Gateway6))
	add("IPv6 block bits", want.Network().BlockBits6, have.Network().BlockBits6) // 0 and 120 are one

	add("local", addrString(want.Local), addrString(have.Local))
	add("dev", strOrNone(want.Dev), strOrNone(have.Dev))
	add("learning", want.Learning, have.Learning)
	add("overlay netns", want.OverlayNetNS, have.OverlayNetNS)
	add("bridge", want.Bridge, have.Bridge)
	add("vxlan", want.Vxlan, have.Vxlan)
	add("egress", want.Egress != nil, have.Egress != nil)
	if w, h := want.Egress, have.Egress; w != nil && h != nil {
		add("egress link subnet", prefixOrAuto(w.LinkSubnet), prefixOrAuto(h.LinkSubnet))
		add("egress dev", strOrNone(w.Dev), strOrNone(h.Dev))
		add("egress no-host-accept", w.NoHostAccept, h.NoHostAccept)
		add("egress host interface", strOrNone(w.HostIf), strOrNone(h.HostIf))
		add("egress overlay interface", strOrNone(w.OverlayIf), strOrNone(h.OverlayIf))
		if want.DualStack() || have.DualStack() {
			add("egress IPv6", w.Mode6.OrDefault(), h.Mode6.OrDefault())
		}
	}
	add("no-vtep-filter", want.NoVTEPFilter, have.NoVTEPFilter)
	add("no-antispoof", want.NoAntispoof, have.NoAntispoof)
	add("encrypt", want.Encrypt != nil, have.Encrypt != nil)
	if w, h := want.Encrypt, have.Encrypt; w != nil && h != nil {
		add("tunnel subnet", w.Tunnel, h.Tunnel)
		add("WireGuard port", w.Port, h.Port)
		add("WireGuard device", strOrNone(w.Device), strOrNone(h.Device))
		add("WireGuard provider", providerOrAuto(w.Provider), providerOrAuto(h.Provider))
	}
	return mm
}

// diffDevices compares the existing bridge and vxlan (either may be nil)
// with ov's configuration.
func diffDevices(c *rtnl.Conn, ov Overlay, br, vx *rtnl.LinkMessage, devIndex int32) ([]Mismatch, error) {
	cfg := ov.Config
	var mm []Mismatch
	add := func(dev, field string, w, h any) {
		ws, hs := fmt.Sprint(w), fmt.Sprint(h)
		if ws != hs {
			mm = append(mm, Mismatch{Device: dev, Field: field, Want: ws, Have: hs})
		}
	}
	if br != nil {
		add(br.Name, "kind", rtnl.KindBridge, kindOf(br))
		if br.Kind() == rtnl.KindBridge {
			for _, gw := range cfg.Gateways() {
				addrs, err := c.AddressList(afOf(gw.Addr()), br.Index)
				if err != nil {
					return nil, fmt.Errorf("overlay: list bridge addresses: %w", err)
				}
				for _, a := range addrs {
					if p := a.Prefix(); p.Addr() == gw.Addr() && p != gw {
						add(br.Name, "address", gw, p)
					}
				}
			}
		}
	}
	if vx != nil {
		add(vx.Name, "kind", rtnl.KindVxlan, kindOf(vx))
		if vx.Kind() == rtnl.KindVxlan && vx.Info.Vxlan != nil {
			v, want := vx.Info.Vxlan, vxlanInfo(ov, devIndex)
			add(vx.Name, "VNI", cfg.VNI, v.ID)
			add(vx.Name, "port", cfg.Port, v.Port)
			add(vx.Name, "MTU", cfg.MTU, vx.MTU)
			add(vx.Name, "proxy", true, v.Proxy)
			add(vx.Name, "l2miss", true, v.L2Miss)
			add(vx.Name, "l3miss", true, v.L3Miss)
			add(vx.Name, "learning", cfg.Learning, v.Learning)
			if want.Local.IsValid() {
				add(vx.Name, "local", want.Local, addrString(v.Local))
			}
			if cfg.Dev != "" && cfg.Encrypt == nil {
				add(vx.Name, "dev (ifindex)", devIndex, v.Dev)
			}
		}
		if vx.Master != 0 && (br == nil || vx.Master != br.Index) {
			add(vx.Name, "master", cfg.Bridge, "ifindex "+strconv.Itoa(int(vx.Master)))
		}
	}
	return mm, nil
}

func kindOf(l *rtnl.LinkMessage) string {
	if k := l.Kind(); k != "" {
		return k
	}
	return "(none)"
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "(none)"
	}
	return a.String()
}

func prefixOrNone(p netip.Prefix) string {
	if !p.IsValid() {
		return "(none)"
	}
	return p.String()
}

func prefixOrAuto(p netip.Prefix) string {
	if !p.IsValid() {
		return "(chosen)"
	}
	return p.String()
}

func strOrNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func providerOrAuto(p wireguard.Provider) string {
	if p == 0 {
		return "(chosen)"
	}
	return p.String()
}
