package overlay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/links"

	"github.com/overlaynet/overlaynet/overlay/egress"
	"github.com/overlaynet/overlaynet/overlay/guard"
	"github.com/overlaynet/overlaynet/overlay/ipam"
	"github.com/overlaynet/overlaynet/overlay/nft"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// Status reads the node's overlay back from the kernel: the recorded overlay
// (with how its VTEP was chosen), its devices, each endpoint (container
// namespace, veth pair with the peer ifindex the host end reports, IP, MAC)
// and the vxlan's neighbour and FDB entries with their NUD states, plus the
// address blocks the node holds and their use, as its state directory
// records them (no store is read). What is missing or differs from the
// record is listed in Problems rather than failing, as are the entries and
// allowlisted addresses no record the node may use would give
// (RecordPolicy). Before Create it returns ErrNotCreated.
func (n *Node) Status(ctx context.Context) (*Status, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ost, err := n.loadOverlayState()
	if err != nil {
		return nil, err
	}
	cfg := ost.Overlay.Config
	s := &Status{Overlay: ost.Overlay, Created: ost.Created}
	if err := n.blockStatus(s); err != nil {
		s.Problems = append(s.Problems, err.Error())
	}
	eps, err := n.listEndpoints()
	if err != nil {
		s.Problems = append(s.Problems, err.Error())
	}
	if err := n.halfMadeStatus(s); err != nil {
		s.Problems = append(s.Problems, err.Error())
	}
	oc, err := n.dial(cfg.OverlayNetNS)
	if err != nil {
		s.Gone = true
		s.Problems = append(s.Problems, fmt.Sprintf("overlay netns %s: %v", cfg.OverlayNetNS, err))
		for _, st := range eps {
			s.Endpoints = append(s.Endpoints, EndpointStatus{Endpoint: st.Endpoint, CreatedNetNS: st.CreatedNetNS,
				Problems: []string{"overlay netns missing"}})
		}
		return s, nil
	}
	defer oc.Close()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	links, err := oc.LinkList()
	if err != nil {
		return nil, fmt.Errorf("overlay: status: %w", err)
	}
	li := newLinkIndex(links)
	vxIndex := s.readDevices(oc, cfg, li)
	for _, st := range eps {
		s.Endpoints = append(s.Endpoints, n.endpointStatus(st, li, cfg.Bridge))
	}
	if vxIndex != 0 {
		if err := s.readNeighbors(oc, vxIndex); err != nil {
			return nil, err
		}
	}
	if ost.Egress != nil {
		if err := s.readEgress(oc, ost); err != nil {
			return nil, err
		}
	}
	if err := n.readGuard(s, ost.Overlay, eps); err != nil {
		s.Problems = append(s.Problems, err.Error())
	}
	if ost.Overlay.Tunnel != nil {
		n.readTunnel(s, ost.Overlay)
	}
	s.rejectedEntries(n.RecordPolicy(ost.Overlay))
	return s, nil
}

// linkIndex is the overlay namespace's links by index and by name.
type linkIndex struct {
	byIndex map[int32]*rtnl.LinkMessage
	byName  map[string]*rtnl.LinkMessage
}

func newLinkIndex(links []rtnl.LinkMessage) linkIndex {
	li := linkIndex{byIndex: make(map[int32]*rtnl.LinkMessage, len(links)), byName: make(map[string]*rtnl.LinkMessage, len(links))}
	for i := range links {
		li.byIndex[links[i].Index] = &links[i]
		li.byName[links[i].Name] = &links[i]
	}
	return li
}

// masterName names l's master device ("" without one).
func (li linkIndex) masterName(l *rtnl.LinkMessage) string {
	if l.Master == 0 {
		return ""
	}
	if m := li.byIndex[l.Master]; m != nil {
		return m.Name
	}
	return fmt.Sprintf("ifindex %d", l.Master)
}

// readDevices reads the overlay's bridge and vxlan into s, listing in
// Problems what is missing or differs from cfg. It returns the vxlan's
// ifindex (0 when there is no vxlan of that name).
func (s *Status) readDevices(oc *rtnl.Conn, cfg Config, li linkIndex) (vxIndex int32) {
	for _, d := range []struct{ name, kind string }{{cfg.Bridge, rtnl.KindBridge}, {cfg.Vxlan, rtnl.KindVxlan}} {
		l := li.byName[d.name]
		if l == nil {
			s.Gone = true
			s.Problems = append(s.Problems, fmt.Sprintf("%s %s is missing", d.kind, d.name))
			s.Devices = append(s.Devices, DeviceStatus{Name: d.name, Kind: d.kind, Missing: true})
			continue
		}
		ds := readDevice(oc, l, li)
		if ds.Kind != d.kind {
			s.Problems = append(s.Problems, fmt.Sprintf("%s is a %q device, want %s", d.name, ds.Kind, d.kind))
		} else if d.kind == rtnl.KindVxlan {
			vxIndex = l.Index
			if ds.Master != cfg.Bridge {
				s.Problems = append(s.Problems, fmt.Sprintf("%s is not on bridge %s", d.name, cfg.Bridge))
			}
		}
		if !ds.Up {
			s.Problems = append(s.Problems, fmt.Sprintf("%s is down", d.name))
		}
		s.Devices = append(s.Devices, ds)
	}
	return vxIndex
}

// readDevice is what the kernel says of the device l: its IPv4 addresses
// and global IPv6 ones and, for a vxlan, its settings.
func readDevice(oc *rtnl.Conn, l *rtnl.LinkMessage, li linkIndex) DeviceStatus {
	ds := DeviceStatus{Name: l.Name, Kind: l.Kind(), Index: l.Index, MTU: l.MTU, Up: l.Flags&rtnl.LinkUp != 0,
		Master: li.masterName(l), MAC: l.Address}
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		addrs, err := oc.AddressList(family, l.Index)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if family == unix.AF_INET || a.Scope == rtnl.ScopeUniverse {
				ds.Addresses = append(ds.Addresses, a.Prefix())
			}
		}
	}
	if l.Info != nil && l.Info.Vxlan != nil {
		v := l.Info.Vxlan
		ds.VNI, ds.Port, ds.Local, ds.Learning, ds.Proxy, ds.L2Miss, ds.L3Miss =
			v.ID, v.Port, v.Local, v.Learning, v.Proxy, v.L2Miss, v.L3Miss
	}
	return ds
}

// readEgress reads the node's egress, as recorded in ost, into s.
func (s *Status) readEgress(oc *rtnl.Conn, ost *overlayState) error {
	cfg := ost.Overlay.Config
	host, err := rtnl.Dial(nil)
	if err != nil {
		return err
	}
	defer host.Close()
	s.Egress = egress.Read(egress.Params{Host: host, Overlay: oc, OverlayNetNS: cfg.OverlayNetNS,
		Subnet: cfg.Subnet(), Subnet6: cfg.Subnet6(), Bridge: cfg.Bridge, VTEP: ost.Overlay.Underlay(), UnderlayDev: ost.Overlay.UnderlayDev}, ost.Egress)
	for _, p := range s.Egress.Problems {
		s.Problems = append(s.Problems, "egress: "+p)
	}
	return nil
}

// halfMadeStatus fills s.HalfMade from the records of intent, and lists
// each one that is not under way among the problems.
func (n *Node) halfMadeStatus(s *Status) error {
	names, err := n.listIntents()
	if err != nil {
		return err
	}
	busy := n.busy()
	var errs []error
	for _, name := range names {
		in, err := n.loadIntent(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if in == nil {
			continue
		}
		h := HalfMade{Name: name, Op: in.Op, IP: in.Endpoint.IP, MAC: in.Endpoint.MAC, PID: in.PID, Started: in.Started,
			InProgress: busy && processAlive(in.PID), Steps: []string{}, Made: []string{}}
		for _, st := range in.Steps {
			h.Steps = append(h.Steps, st.Name)
			if st.Made {
				h.Made = append(h.Made, st.Name)
			}
		}
		s.HalfMade = append(s.HalfMade, h)
		if !h.InProgress {
			s.Problems = append(s.Problems, fmt.Sprintf("endpoint %s: %s ended half-way (pid %d, steps %s; made %s): the next attach or detach of %s, or overlayd run, takes it back",
				name, in.Op, in.PID, strings.Join(h.Steps, ","), strings.Join(h.Made, ","), name))
		}
	}
	return errors.Join(errs...)
}

// processAlive reports whether process pid exists.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// readGuard reads the allowlist (in the calling, "host", namespace) and
// the anti-spoofing rules (in the overlay namespace) into s.
func (n *Node) readGuard(s *Status, ov Overlay, eps []*endpointState) error {
	cfg := ov.Config
	g := &s.Guard
	g.VTEPFilter, g.Antispoof = !cfg.NoVTEPFilter, !cfg.NoAntispoof
	if n.dialer != nil {
		return nil // a fake kernel (unit tests) has no nftables to read
	}
	host, err := nft.Dial(-1)
	if err != nil {
		return err
	}
	defer host.Close()
	if a, err := guard.OpenAllowlist(host, cfg.Port, ov.VTEP); err == nil {
		if g.AllowlistInstalled, err = a.Installed(); err != nil {
			return err
		}
		if g.AllowlistInstalled {
			if g.Allowlist, err = a.Addrs(); err != nil {
				return err
			}
			if err := readGuardDrops(g, a, ov); err != nil {
				return err
			}
		}
	}
	c, err := n.dialNft(cfg.OverlayNetNS)
	if err != nil {
		return err
	}
	defer c.Close()
	if g.Ports, err = guard.Ports(c); err != nil {
		return err
	}
	if g.Antispoof {
		guarded := map[string]bool{}
		for _, p := range g.Ports {
			guarded[p.HostIf] = p.Dispatched
		}
		for _, st := range eps {
			if !guarded[st.Endpoint.HostIf] {
				s.Problems = append(s.Problems, fmt.Sprintf("endpoint %s: no anti-spoofing rules on %s (run create again to restore them)", st.Endpoint.Name, st.Endpoint.HostIf))
			}
		}
	}
	return nil
}

// endpointStatus compares a recorded endpoint with the kernel.
func (n *Node) endpointStatus(st *endpointState, li linkIndex, bridge string) EndpointStatus {
	e := st.Endpoint
	es := EndpointStatus{Endpoint: e, CreatedNetNS: st.CreatedNetNS}
	problem := func(format string, args ...any) { es.Problems = append(es.Problems, fmt.Sprintf(format, args...)) }
	if h := li.byName[e.HostIf]; h == nil {
		problem("host veth %s is missing", e.HostIf)
	} else {
		es.HostUp, es.HostMaster, es.KernelPeerIndex = h.Flags&rtnl.LinkUp != 0, li.masterName(h), h.Link
		es.HostIndex = h.Index
		if es.HostMaster != bridge {
			problem("host veth %s is not on bridge %s", e.HostIf, bridge)
		}
		if !es.HostUp {
			problem("host veth %s is down", e.HostIf)
		}
	}
	cc, err := n.dialEndpoint(e)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			problem("container netns %s is missing", e.Name)
		} else {
			problem("container netns %s: %v", e.Name, err)
		}
		return es
	}
	defer cc.Close()
	p, err := links.Find(cc, e.IfName)
	switch {
	case err != nil:
		problem("container interface %s: %v", e.IfName, err)
	case p == nil:
		problem("container interface %s is missing", e.IfName)
	default:
		es.PeerUp = p.Flags&rtnl.LinkUp != 0
		if !es.PeerUp {
			problem("container interface %s is down", e.IfName)
		}
		if p.Address != e.MAC {
			problem("container interface %s has MAC %s, want %s", e.IfName, ethaddr.MAC(p.Address), e.MAC)
		}
		if es.KernelPeerIndex != 0 && es.KernelPeerIndex != p.Index {
			problem("host veth peer is ifindex %d, container interface is %d", es.KernelPeerIndex, p.Index)
		}
		es.PeerIndex = p.Index
	}
	return es
}

// readNeighbors fills Neighbors and FDB with the vxlan's entries: its ARP
// and IPv6 neighbour entries and its own (NTF_SELF) forwarding entries, not
// the bridge's.
func (s *Status) readNeighbors(c *rtnl.Conn, vxIndex int32) error {
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		err := c.NeighDump(rtnl.NeighFilter{Family: family, Ifindex: vxIndex}, func(m *rtnl.NeighMessage) error {
			if m.Dst.IsMulticast() {
				return nil // the kernel's own mapping of a group the device joined (ff02::1, MLD's ff02::16)
			}
			mac, _ := m.MAC()
			s.Neighbors = append(s.Neighbors, NeighborEntry{IP: m.Dst, MAC: mac, State: m.State.String()})
			return nil
		})
		if err != nil {
			return fmt.Errorf("overlay: status: neighbours: %w", err)
		}
	}
	err := c.NeighDump(rtnl.NeighFilter{Family: unix.AF_BRIDGE, Ifindex: vxIndex}, func(m *rtnl.NeighMessage) error {
		if m.Flags&rtnl.NeighFlagSelf == 0 {
			return nil // the bridge's own (learned) entry for the vxlan port, not the vxlan's
		}
		mac, _ := m.MAC()
		s.FDB = append(s.FDB, FDBEntry{MAC: mac, VTEP: m.Dst, VNI: m.VNI, Port: m.Port,
			State: m.State.String(), Flags: m.Flags.String()})
		return nil
	})
	if err != nil {
		return fmt.Errorf("overlay: status: fdb: %w", err)
	}
	return nil
}

// blockStatus fills s.Blocks from the node's allocation directory (no
// store is read), IPv4 blocks first.
func (n *Node) blockStatus(s *Status) error {
	cfg := s.Overlay.Config
	for _, f := range cfg.Families() {
		bits := n.blockBits
		if f == IPv6 {
			bits = cfg.EffectiveBlockBits6()
		}
		a, err := ipam.New(ipam.Config{Dir: filepath.Join(n.stateDir, ipamDir), Owner: s.Overlay.VTEP.String(),
			Gateway: cfg.GatewayOf(f), BlockBits: bits})
		if err != nil {
			return err
		}
		u, err := a.Usage()
		if err != nil {
			return err
		}
		s.Blocks = append(s.Blocks, u...)
	}
	return nil
}
