package overlay

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"strconv"

	"github.com/overlaynet/overlaynet/overlay/egress"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
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
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	prev, err := n.loadOverlayState()
	if err != nil && !errors.Is(err, ErrNotCreated) {
		return nil, err
	}
	// Differences with the registry's network are reported with those of
	// the state directory or the devices, all at once.
	var storeMM []Mismatch
	if n.reg != nil {
		if storeMM, err = storeMismatches(ctx, n.reg, cfg.Network()); err != nil {
			return nil, err
		}
	}
	if prev != nil {
		if mm := diffConfig(cfg, prev.Overlay.Config); len(mm) > 0 {
			return nil, &MismatchError{Mismatches: append(mm, storeMM...)}
		}
	}
	host, err := rtnl.Dial(nil)
	if err != nil {
		return nil, err
	}
	defer host.Close()
	ov, devIndex, err := findUnderlay(host, cfg)
	if err != nil {
		return nil, err
	}
	if err := checkUnderlayMTU(ov); err != nil {
		return nil, err
	}
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}

	// Inspect what exists before creating anything.
	var (
		ns      *rtnl.NetNS
		oc      *rtnl.Conn
		br, vx  *rtnl.LinkMessage
		created Creation
	)
	defer func() {
		if oc != nil {
			oc.Close()
		}
		if ns != nil {
			ns.Close()
		}
	}()
	ns, err = rtnl.OpenNamedNetNS(n.netnsDir, cfg.OverlayNetNS)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("overlay: overlay netns: %w", err)
	}
	if err == nil {
		if oc, err = rtnl.Dial(&rtnl.Config{NetNS: ns}); err != nil {
			return nil, err
		}
		if br, err = linkByName(oc, cfg.Bridge); err != nil {
			return nil, fmt.Errorf("overlay: bridge %s: %w", cfg.Bridge, err)
		}
		if vx, err = linkByName(oc, cfg.Vxlan); err != nil {
			return nil, fmt.Errorf("overlay: vxlan %s: %w", cfg.Vxlan, err)
		}
		mm, err := diffDevices(oc, cfg, br, vx, devIndex)
		if err != nil {
			return nil, err
		}
		if len(mm) > 0 {
			return nil, &MismatchError{Mismatches: append(mm, storeMM...)}
		}
	} else {
		ns = nil
	}
	if len(storeMM) > 0 {
		return nil, &MismatchError{Mismatches: storeMM}
	}

	undo := &undoStack{log: n.log}
	defer undo.finish(&err)
	if ns == nil {
		if ns, err = rtnl.CreateNetNS(n.netnsDir, cfg.OverlayNetNS); err != nil {
			return nil, fmt.Errorf("overlay: create overlay netns: %w", err)
		}
		created.NetNS = true
		name := cfg.OverlayNetNS
		undo.push("netns "+name, func() error { return deleteNetNS(n.netnsDir, name) })
		n.log.Info("created overlay netns", "netns", name, "dir", n.netnsDir)
		if err := n.createStep("netns"); err != nil {
			return nil, err
		}
		if oc, err = rtnl.Dial(&rtnl.Config{NetNS: ns}); err != nil {
			return nil, err
		}
		if err := setLoopbackUp(oc); err != nil {
			return nil, fmt.Errorf("overlay: overlay netns loopback up: %w", err)
		}
	}

	if br == nil {
		m := rtnl.NewBridge(cfg.Bridge)
		m.MTU = cfg.MTU
		if err := oc.LinkAdd(m); err != nil {
			return nil, fmt.Errorf("overlay: create bridge %s: %w", cfg.Bridge, err)
		}
		created.Bridge = true
		undo.push("bridge "+cfg.Bridge, func() error { return deleteLinkByName(oc, cfg.Bridge) })
		n.log.Info("created bridge", "bridge", cfg.Bridge, "mtu", cfg.MTU)
		if err := n.createStep("bridge"); err != nil {
			return nil, err
		}
		if br, err = oc.LinkByName(cfg.Bridge); err != nil {
			return nil, fmt.Errorf("overlay: bridge %s: %w", cfg.Bridge, err)
		}
	}
	// A bridge's MTU is not a fixed setting: unless set after creation it
	// follows the minimum of its ports (1500 with none). So an existing
	// bridge with another MTU is adjusted, not refused.
	if br.MTU != cfg.MTU {
		if err := oc.LinkSetMTU(br.Index, cfg.MTU); err != nil {
			return nil, fmt.Errorf("overlay: set bridge %s MTU %d: %w", cfg.Bridge, cfg.MTU, err)
		}
		n.log.Info("set bridge MTU", "bridge", cfg.Bridge, "old", br.MTU, "new", cfg.MTU)
		old, index := br.MTU, br.Index
		undo.push("bridge MTU", func() error { return oc.LinkSetMTU(index, old) })
	}
	has, err := hasAddress(oc, br.Index, cfg.Gateway)
	if err != nil {
		return nil, err
	}
	if !has {
		if err := oc.AddressAdd(br.Index, cfg.Gateway); err != nil {
			return nil, fmt.Errorf("overlay: add %s to bridge %s: %w", cfg.Gateway, cfg.Bridge, err)
		}
		created.Address = true
		brIndex := br.Index
		undo.push("address "+cfg.Gateway.String(), func() error {
			err := oc.AddressDelete(brIndex, cfg.Gateway)
			if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EADDRNOTAVAIL) {
				return nil
			}
			return err
		})
		n.log.Info("added gateway address", "bridge", cfg.Bridge, "address", cfg.Gateway)
		if err := n.createStep("address"); err != nil {
			return nil, err
		}
	}

	if vx == nil {
		m := rtnl.NewVxlan(cfg.Vxlan, vxlanInfo(cfg, devIndex))
		m.MTU = cfg.MTU
		m.NetNSFD = ns.Fd()
		m.Present |= rtnl.LinkHasNetNSFD
		if err := host.LinkAdd(m); err != nil {
			return nil, fmt.Errorf("overlay: create vxlan %s in netns %s: %w", cfg.Vxlan, cfg.OverlayNetNS, err)
		}
		created.Vxlan = true
		undo.push("vxlan "+cfg.Vxlan, func() error { return deleteLinkByName(oc, cfg.Vxlan) })
		n.log.Info("created vxlan", "vxlan", cfg.Vxlan, "vni", cfg.VNI, "port", cfg.Port, "vtep", ov.VTEP, "vtep_source", ov.VTEPSource)
		if err := n.createStep("vxlan"); err != nil {
			return nil, err
		}
		if vx, err = oc.LinkByName(cfg.Vxlan); err != nil {
			return nil, fmt.Errorf("overlay: vxlan %s: %w", cfg.Vxlan, err)
		}
	}
	if vx.Master != br.Index {
		if err := oc.LinkSetMaster(vx.Index, br.Index); err != nil {
			return nil, fmt.Errorf("overlay: put %s on %s: %w", cfg.Vxlan, cfg.Bridge, err)
		}
	}
	for _, l := range []*rtnl.LinkMessage{br, vx} {
		if l.Flags&rtnl.LinkUp == 0 {
			if err := oc.LinkSetUp(l.Index); err != nil {
				return nil, fmt.Errorf("overlay: set %s up: %w", l.Name, err)
			}
		}
	}

	if err := n.createStep("up"); err != nil {
		return nil, err
	}
	var egressState *egress.State
	if cfg.Egress != nil {
		var prevEgress *egress.State
		if prev != nil {
			prevEgress = prev.Egress
		}
		p := egress.Params{Host: host, Overlay: oc, OverlayNS: ns, OverlayNetNS: cfg.OverlayNetNS,
			Subnet: cfg.Subnet(), Bridge: cfg.Bridge, VTEP: ov.VTEP, UnderlayDev: ov.UnderlayDev, Log: n.log}
		st, undoEgress, err := egress.Setup(p, *cfg.Egress, prevEgress)
		if err != nil {
			return nil, err
		}
		egressState = st
		undo.push("egress", undoEgress)
		if err := n.createStep("egress"); err != nil {
			return nil, err
		}
	}
	if n.reg != nil {
		// Checked above; published only now that this node's overlay
		// exists, so that a create that fails defines nothing. A node that
		// published another network meanwhile wins, and this create rolls
		// back.
		if err := PublishNetwork(ctx, n.reg, cfg); err != nil {
			return nil, err
		}
	}
	st := &overlayState{Overlay: ov, Created: created, Egress: egressState}
	if prev != nil {
		if prev.Overlay.VTEP != ov.VTEP {
			n.log.Warn("VTEP changed since the last create: endpoints attached before stay registered at the old one until re-attached",
				"old", prev.Overlay.VTEP, "new", ov.VTEP, "vtep_source", ov.VTEPSource)
		}
		st.Created.NetNS = st.Created.NetNS || prev.Created.NetNS
		st.Created.Bridge = st.Created.Bridge || prev.Created.Bridge
		st.Created.Vxlan = st.Created.Vxlan || prev.Created.Vxlan
		st.Created.Address = st.Created.Address || prev.Created.Address
	}
	if err := n.saveOverlayState(st); err != nil {
		return nil, err
	}
	// Endpoints attached before a loss of the ruleset (a reboot) get their
	// anti-spoofing rules back; rules in place are kept as they are.
	if k, err := n.restoreAntispoof(cfg); err != nil {
		return nil, err
	} else if k > 0 {
		n.log.Info("anti-spoofing rules in place", "ports", k)
	}
	n.log.Info("overlay ready", "netns", cfg.OverlayNetNS, "bridge", cfg.Bridge, "vxlan", cfg.Vxlan,
		"vtep", ov.VTEP, "vtep_source", ov.VTEPSource, "underlay", ov.UnderlayDev)
	out := st.Overlay
	return &out, nil
}

// createSteps are the points after which the node's createHook is consulted.
var createSteps = []string{"netns", "bridge", "address", "vxlan", "up", "egress"}

func (n *Node) createStep(step string) error {
	if n.createHook == nil {
		return nil
	}
	if err := n.createHook(step); err != nil {
		return fmt.Errorf("overlay: create step %s: %w", step, err)
	}
	return nil
}

// vxlanInfo is the vxlan device cfg asks for: proxy ARP and both miss
// notifications on, so a resolver can answer from the registry. IFLA_VXLAN_
// LOCAL is set only for cfg.Local and IFLA_VXLAN_LINK only for cfg.Dev; with
// neither, the kernel picks the source by route, as in the lab.
func vxlanInfo(cfg Config, devIndex int32) rtnl.VxlanInfo {
	info := rtnl.VxlanInfo{
		ID: cfg.VNI, Port: cfg.Port, Learning: cfg.Learning,
		Proxy: true, L2Miss: true, L3Miss: true,
	}
	if cfg.Local.IsValid() {
		info.Local = cfg.Local
	}
	if cfg.Dev != "" {
		info.Dev = devIndex
	}
	return info
}

// hasAddress reports whether link index holds exactly p; the same address
// with another prefix length is an error.
func hasAddress(c *rtnl.Conn, index int32, p netip.Prefix) (bool, error) {
	addrs, err := c.AddressList(unix.AF_INET, index)
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
	}
	add("no-vtep-filter", want.NoVTEPFilter, have.NoVTEPFilter)
	add("no-antispoof", want.NoAntispoof, have.NoAntispoof)
	return mm
}

// diffDevices compares the existing bridge and vxlan (either may be nil)
// with cfg.
func diffDevices(c *rtnl.Conn, cfg Config, br, vx *rtnl.LinkMessage, devIndex int32) ([]Mismatch, error) {
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
			addrs, err := c.AddressList(unix.AF_INET, br.Index)
			if err != nil {
				return nil, fmt.Errorf("overlay: list bridge addresses: %w", err)
			}
			for _, a := range addrs {
				if p := a.Prefix(); p.Addr() == cfg.Gateway.Addr() && p != cfg.Gateway {
					add(br.Name, "address", cfg.Gateway, p)
				}
			}
		}
	}
	if vx != nil {
		add(vx.Name, "kind", rtnl.KindVxlan, kindOf(vx))
		if vx.Kind() == rtnl.KindVxlan && vx.Info.Vxlan != nil {
			v := vx.Info.Vxlan
			add(vx.Name, "VNI", cfg.VNI, v.ID)
			add(vx.Name, "port", cfg.Port, v.Port)
			add(vx.Name, "MTU", cfg.MTU, vx.MTU)
			add(vx.Name, "proxy", true, v.Proxy)
			add(vx.Name, "l2miss", true, v.L2Miss)
			add(vx.Name, "l3miss", true, v.L3Miss)
			add(vx.Name, "learning", cfg.Learning, v.Learning)
			if cfg.Local.IsValid() {
				add(vx.Name, "local", cfg.Local, addrString(v.Local))
			}
			if cfg.Dev != "" {
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
