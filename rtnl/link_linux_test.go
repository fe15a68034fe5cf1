package rtnl_test

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// ipjLink is the part of `ip -d -j link show` the link tests check.
type ipjLink struct {
	Ifindex     int32    `json:"ifindex"`
	Ifname      string   `json:"ifname"`
	Flags       []string `json:"flags"`
	MTU         uint32   `json:"mtu"`
	Address     string   `json:"address"`
	Master      string   `json:"master"`
	Link        string   `json:"link"`
	LinkIndex   int32    `json:"link_index"`
	LinkNetnsID *int32   `json:"link_netnsid"`
	Linkinfo    struct {
		InfoKind      string         `json:"info_kind"`
		InfoSlaveKind string         `json:"info_slave_kind"`
		InfoData      map[string]any `json:"info_data"`
	} `json:"linkinfo"`
}

func (l ipjLink) up() bool { return slices.Contains(l.Flags, "UP") }

// ipjLinkShow returns iproute2's view of dev in the named namespace.
func ipjLinkShow(t *testing.T, netns, dev string) ipjLink {
	t.Helper()
	out := nstest.Run(t, netns, "ip", "-d", "-j", "link", "show", "dev", dev)
	var links []ipjLink
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -d -j link show dev %s: %v in %s", dev, err, out)
	}
	return links[0]
}

// ipjLinkNames returns the names of all links iproute2 sees in netns.
func ipjLinkNames(t *testing.T, netns string) []string {
	t.Helper()
	var links []ipjLink
	out := nstest.Run(t, netns, "ip", "-j", "link", "show")
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		t.Fatalf("ip -j link show: %v in %s", err, out)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Ifname)
	}
	return names
}

// jsonNum reads a JSON number (float64) of info_data as an int64, failing if
// the key is missing.
func jsonNum(t *testing.T, data map[string]any, key string) int64 {
	t.Helper()
	v, ok := data[key].(float64)
	if !ok {
		t.Fatalf("info_data[%q] = %#v, want a number (all: %v)", key, data[key], data)
	}
	return int64(v)
}

// jsonBool reads a boolean of info_data; iproute2 leaves some out when false.
func jsonBool(data map[string]any, key string) bool {
	v, _ := data[key].(bool)
	return v
}

func mustLink(t *testing.T, c *rtnl.Conn, name string) *rtnl.LinkMessage {
	t.Helper()
	l, err := c.LinkByName(name)
	if err != nil {
		t.Fatalf("LinkByName(%q): %v", name, err)
	}
	return l
}

func TestLinkBridgeLifecycle(t *testing.T) {
	ns, nsName := nstest.NetNS(t, "lb")
	c := nstest.Dial(t, ns)

	if err := c.LinkAdd(rtnl.NewBridge("br0")); err != nil {
		t.Fatalf("LinkAdd br0: %v", err)
	}
	if err := c.LinkAdd(rtnl.NewBridge("br0")); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("duplicate LinkAdd: got %v, want EEXIST", err)
	}
	br := mustLink(t, c, "br0")
	ip := ipjLinkShow(t, nsName, "br0")
	check(t, "index", br.Index, ip.Ifindex)
	check(t, "kind", br.Kind(), ip.Linkinfo.InfoKind)
	check(t, "kind", br.Kind(), "bridge")
	check(t, "MTU", br.MTU, ip.MTU)
	check(t, "address", ethaddr.MAC(br.Address).String(), ip.Address)
	if br.Info.Bridge == nil {
		t.Fatalf("no bridge data decoded: %+v", br.Info)
	}
	d := ip.Linkinfo.InfoData
	check(t, "forward_delay", int64(br.Info.Bridge.ForwardDelay), jsonNum(t, d, "forward_delay"))
	check(t, "hello_time", int64(br.Info.Bridge.HelloTime), jsonNum(t, d, "hello_time"))
	check(t, "max_age", int64(br.Info.Bridge.MaxAge), jsonNum(t, d, "max_age"))
	check(t, "ageing_time", int64(br.Info.Bridge.AgeingTime), jsonNum(t, d, "ageing_time"))
	check(t, "stp_state", int64(br.Info.Bridge.STPState), jsonNum(t, d, "stp_state"))
	check(t, "priority", int64(br.Info.Bridge.Priority), jsonNum(t, d, "priority"))
	check(t, "mcast_snooping", br.Info.Bridge.MulticastSnooping, jsonNum(t, d, "mcast_snooping") == 1)

	byIndex, err := c.LinkGet(br.Index)
	if err != nil {
		t.Fatalf("LinkGet(%d): %v", br.Index, err)
	}
	check(t, "LinkGet name", byIndex.Name, "br0")

	// A bridge with non-default data: the encoder sends what is set.
	custom := rtnl.NewBridge("br1")
	// (This kernel lacks CONFIG_BRIDGE_VLAN_FILTERING: VlanFiltering is EOPNOTSUPP.)
	custom.Info.Bridge = &rtnl.BridgeInfo{AgeingTime: 12300, Priority: 4096, ForwardDelay: 1000, HelloTime: 150, MaxAge: 1200}
	if err := c.LinkAdd(custom); err != nil {
		t.Fatalf("LinkAdd br1: %v", err)
	}
	d = ipjLinkShow(t, nsName, "br1").Linkinfo.InfoData
	check(t, "br1 ageing_time", jsonNum(t, d, "ageing_time"), 12300)
	check(t, "br1 priority", jsonNum(t, d, "priority"), 4096)
	check(t, "br1 forward_delay", jsonNum(t, d, "forward_delay"), 1000)
	check(t, "br1 hello_time", jsonNum(t, d, "hello_time"), 150)
	check(t, "br1 max_age", jsonNum(t, d, "max_age"), 1200)

	links, err := c.LinkList()
	if err != nil {
		t.Fatalf("LinkList: %v", err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Name)
	}
	if want := ipjLinkNames(t, nsName); !slices.Equal(names, want) {
		t.Fatalf("LinkList names = %v, ip says %v", names, want)
	}

	if err := c.LinkDelete(br.Index); err != nil {
		t.Fatalf("LinkDelete: %v", err)
	}
	if err := c.LinkDeleteByName("br1"); err != nil {
		t.Fatalf("LinkDeleteByName: %v", err)
	}
	if _, err := c.LinkByName("br0"); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("LinkByName after delete: got %v, want ENODEV", err)
	}
	if _, err := c.LinkGet(br.Index); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("LinkGet after delete: got %v, want ENODEV", err)
	}
	if err := c.LinkDelete(br.Index); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("second LinkDelete: got %v, want ENODEV", err)
	}
	if names := ipjLinkNames(t, nsName); !slices.Equal(names, []string{"lo"}) {
		t.Fatalf("links left: %v", names)
	}
}

func TestLinkVxlan(t *testing.T) {
	ns, nsName := nstest.NetNS(t, "lv")
	c := nstest.Dial(t, ns)
	tests := []struct {
		name string
		info rtnl.VxlanInfo
		// what the kernel should report, where it differs from info
		want rtnl.VxlanInfo
	}{{
		name: "vxlan1",
		info: rtnl.VxlanInfo{ID: 42, Port: 4789, Proxy: true, L2Miss: true, L3Miss: true, Learning: false,
			Ageing: 300, TTL: 64, Local: netip.MustParseAddr("192.0.2.1")},
	}, {
		name: "vxdefaults", // zero fields keep the kernel's defaults, Learning false is sent
		info: rtnl.VxlanInfo{ID: 7},
		want: rtnl.VxlanInfo{ID: 7, Port: 8472, Ageing: 300},
	}, {
		name: "vxlearn",
		info: rtnl.VxlanInfo{ID: 16777215, Port: 4790, Learning: true, RSC: true, Ageing: 30, Limit: 100,
			TOS: 0x10, PortLow: 40000, PortHigh: 50000, Group: netip.MustParseAddr("192.0.2.9")},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want.ID == 0 {
				want = tt.info
			}
			if err := c.LinkAdd(rtnl.NewVxlan(tt.name, tt.info)); err != nil {
				t.Fatalf("LinkAdd: %v", err)
			}
			l := mustLink(t, c, tt.name)
			if l.Kind() != "vxlan" || l.Info.Vxlan == nil {
				t.Fatalf("decoded info %+v, want vxlan data", l.Info)
			}
			if got := *l.Info.Vxlan; got != want {
				t.Errorf("rtnl read back\n got %+v\nwant %+v", got, want)
			}
			ip := ipjLinkShow(t, nsName, tt.name)
			d := ip.Linkinfo.InfoData
			check(t, "info_kind", ip.Linkinfo.InfoKind, "vxlan")
			check(t, "id", jsonNum(t, d, "id"), int64(want.ID))
			check(t, "port", jsonNum(t, d, "port"), int64(want.Port))
			check(t, "ageing", jsonNum(t, d, "ageing"), int64(want.Ageing))
			check(t, "ttl", jsonNum(t, d, "ttl"), int64(want.TTL))
			check(t, "learning", jsonBool(d, "learning"), want.Learning)
			check(t, "proxy", jsonBool(d, "proxy"), want.Proxy)
			check(t, "rsc", jsonBool(d, "rsc"), want.RSC)
			check(t, "l2miss", jsonBool(d, "l2miss"), want.L2Miss)
			check(t, "l3miss", jsonBool(d, "l3miss"), want.L3Miss)
			if want.Local.IsValid() {
				check(t, "local", d["local"], any(want.Local.String()))
			}
			if want.Group.IsValid() {
				check(t, "remote", d["remote"], any(want.Group.String()))
			}
			if want.Limit != 0 {
				check(t, "limit", jsonNum(t, d, "limit"), int64(want.Limit))
			}
			pr, _ := d["port_range"].(map[string]any)
			check(t, "port_range.low", jsonNum(t, pr, "low"), int64(want.PortLow))
			check(t, "port_range.high", jsonNum(t, pr, "high"), int64(want.PortHigh))
		})
	}

	// The kernel refuses to change proxy on an existing device.
	l := mustLink(t, c, "vxdefaults")
	set := &rtnl.LinkMessage{Index: l.Index, Info: &rtnl.LinkInfo{Kind: "vxlan", Vxlan: &rtnl.VxlanInfo{ID: 7, Proxy: true}}}
	if err := c.LinkSet(set); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatalf("changing proxy: got %v, want EOPNOTSUPP", err)
	}
	// Learning and ageing can change.
	set.Info.Vxlan = &rtnl.VxlanInfo{ID: 7, Learning: true, Ageing: 120}
	if err := c.LinkSet(set); err != nil {
		t.Fatalf("changing learning and ageing: %v", err)
	}
	d := ipjLinkShow(t, nsName, "vxdefaults").Linkinfo.InfoData
	check(t, "changed learning", jsonBool(d, "learning"), true)
	check(t, "changed ageing", jsonNum(t, d, "ageing"), 120)

	if err := c.LinkAdd(rtnl.NewVxlan("vxbad", rtnl.VxlanInfo{ID: 1 << 24})); err == nil {
		t.Fatalf("VNI 1<<24 accepted")
	}
}

func TestLinkVethPeerInAnotherNamespace(t *testing.T) {
	nsA, nameA := nstest.NetNS(t, "va")
	nsB, nameB := nstest.NetNS(t, "vb")
	cA := nstest.Dial(t, nsA)
	cB := nstest.Dial(t, nsB)
	peerMAC, _ := ethaddr.Parse("02:42:c6:33:64:02")

	req := rtnl.NewVethPair("veth1", rtnl.LinkMessage{Name: "eth0", MTU: 1450, Address: peerMAC, NetNSFD: nsB.Fd()})
	req.MTU = 1450
	if err := cA.LinkAdd(req); err != nil {
		t.Fatalf("LinkAdd veth: %v", err)
	}
	if _, err := cA.LinkByName("eth0"); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("peer visible in A: %v", err)
	}
	veth := mustLink(t, cA, "veth1")
	eth0 := mustLink(t, cB, "eth0")
	check(t, "veth1 kind", veth.Kind(), "veth")
	check(t, "veth1 MTU", veth.MTU, 1450)
	check(t, "eth0 MTU", eth0.MTU, 1450)
	check(t, "eth0 MAC", eth0.Address, peerMAC)
	check(t, "veth1 IFLA_LINK is the peer's ifindex", veth.Link, eth0.Index)
	check(t, "eth0 IFLA_LINK is the peer's ifindex", eth0.Link, veth.Index)
	if veth.Present&rtnl.LinkHasLinkNetNSID == 0 || eth0.Present&rtnl.LinkHasLinkNetNSID == 0 {
		t.Fatalf("IFLA_LINK_NETNSID missing: veth1 %+v eth0 %+v", veth, eth0)
	}

	ipA := ipjLinkShow(t, nameA, "veth1")
	ipB := ipjLinkShow(t, nameB, "eth0")
	check(t, "ip link_index of veth1", ipA.LinkIndex, eth0.Index)
	check(t, "ip link_index of eth0", ipB.LinkIndex, veth.Index)
	if ipA.LinkNetnsID == nil || *ipA.LinkNetnsID != veth.LinkNetNSID {
		t.Fatalf("ip link_netnsid of veth1 = %v, rtnl %d", ipA.LinkNetnsID, veth.LinkNetNSID)
	}
	check(t, "ip MAC of eth0", ipB.Address, peerMAC.String())
	check(t, "ip MTU of eth0", ipB.MTU, 1450)
	// The nsid veth1 reports names B, as seen from A.
	var ids []struct {
		NsID int32  `json:"nsid"`
		Name string `json:"name"`
	}
	out := nstest.Run(t, nameA, "ip", "-j", "netns", "list-id")
	if err := json.Unmarshal([]byte(out), &ids); err != nil {
		t.Fatalf("ip netns list-id: %v: %s", err, out)
	}
	found := false
	for _, id := range ids {
		if id.NsID == veth.LinkNetNSID && id.Name == nameB {
			found = true
		}
	}
	if !found {
		t.Fatalf("nsid %d does not name %s in A: %s", veth.LinkNetNSID, nameB, out)
	}

	// Deleting one end deletes both.
	if err := cB.LinkDelete(eth0.Index); err != nil {
		t.Fatalf("LinkDelete eth0: %v", err)
	}
	if _, err := cA.LinkByName("veth1"); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("veth1 survived its peer: %v", err)
	}
}

func TestLinkSetters(t *testing.T) {
	nsA, nameA := nstest.NetNS(t, "sa")
	nsB, nameB := nstest.NetNS(t, "sb")
	c := nstest.Dial(t, nsA)
	cB := nstest.Dial(t, nsB)
	if err := c.LinkAdd(rtnl.NewBridge("br0")); err != nil {
		t.Fatal(err)
	}
	if err := c.LinkAdd(rtnl.NewVethPair("va", rtnl.LinkMessage{Name: "vb"})); err != nil {
		t.Fatal(err)
	}
	br := mustLink(t, c, "br0")
	va := mustLink(t, c, "va")

	steps := []struct {
		name  string
		do    func() error
		check func(ip ipjLink, m *rtnl.LinkMessage)
	}{
		{"up", func() error { return c.LinkSetUp(va.Index) }, func(ip ipjLink, m *rtnl.LinkMessage) {
			check(t, "ip UP", ip.up(), true)
			check(t, "rtnl UP", m.Flags&rtnl.LinkUp != 0, true)
		}},
		{"mtu", func() error { return c.LinkSetMTU(va.Index, 1450) }, func(ip ipjLink, m *rtnl.LinkMessage) {
			check(t, "ip MTU", ip.MTU, 1450)
			check(t, "rtnl MTU", m.MTU, 1450)
		}},
		{"address", func() error {
			mac, _ := ethaddr.Parse("02:42:c6:33:64:05")
			return c.LinkSetAddress(va.Index, mac)
		}, func(ip ipjLink, m *rtnl.LinkMessage) {
			check(t, "ip MAC", ip.Address, "02:42:c6:33:64:05")
			check(t, "rtnl MAC", ethaddr.MAC(m.Address).String(), "02:42:c6:33:64:05")
		}},
		{"master", func() error { return c.LinkSetMaster(va.Index, br.Index) }, func(ip ipjLink, m *rtnl.LinkMessage) {
			check(t, "ip master", ip.Master, "br0")
			check(t, "ip slave kind", ip.Linkinfo.InfoSlaveKind, "bridge")
			check(t, "rtnl master", m.Master, br.Index)
			check(t, "rtnl slave kind", m.Info.SlaveKind, "bridge")
		}},
		{"nomaster", func() error { return c.LinkSetMaster(va.Index, 0) }, func(ip ipjLink, m *rtnl.LinkMessage) {
			check(t, "ip master", ip.Master, "")
			check(t, "rtnl master", m.Master, 0)
		}},
		{"down", func() error { return c.LinkSetDown(va.Index) }, func(ip ipjLink, m *rtnl.LinkMessage) {
			check(t, "ip UP", ip.up(), false)
			check(t, "rtnl UP", m.Flags&rtnl.LinkUp != 0, false)
		}},
		{"name", func() error { return c.LinkSetName(va.Index, "vrenamed") }, func(ip ipjLink, m *rtnl.LinkMessage) {
			check(t, "ip name", ip.Ifname, "vrenamed")
			check(t, "rtnl name", m.Name, "vrenamed")
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		m, err := c.LinkGet(va.Index)
		if err != nil {
			t.Fatalf("%s: LinkGet: %v", s.name, err)
		}
		s.check(ipjLinkShow(t, nameA, m.Name), m)
	}

	if err := c.LinkSetNetNS(va.Index, nsB.Fd()); err != nil {
		t.Fatalf("LinkSetNetNS: %v", err)
	}
	if _, err := c.LinkGet(va.Index); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("link still in A after the move: %v", err)
	}
	moved := mustLink(t, cB, "vrenamed")
	check(t, "moved MTU", moved.MTU, 1450)
	check(t, "ip in B", ipjLinkShow(t, nameB, "vrenamed").Ifindex, moved.Index)
	vb := mustLink(t, c, "vb")
	check(t, "vb now points at B", vb.Link, moved.Index)

	if err := c.LinkSetMTU(vb.Index, 0); err == nil {
		t.Fatal("MTU 0 accepted")
	}
	if err := c.LinkSet(&rtnl.LinkMessage{MTU: 1400}); err == nil {
		t.Fatal("LinkSet without index or name accepted")
	}
}

// TestLinkInfoNestFlags records which NLA_F_NESTED forms the kernel accepts
// for IFLA_LINKINFO, IFLA_INFO_DATA and VETH_INFO_PEER.
func TestLinkInfoNestFlags(t *testing.T) {
	ns, _ := nstest.NetNS(t, "nf")
	c := nstest.Dial(t, ns)
	for i, flagged := range [][3]bool{{false, false, false}, {true, true, false}, {true, true, true}} {
		name := "v" + string(rune('a'+i))
		ae := rtnl.NewAttributeEncoder(make([]byte, unix.SizeofIfInfomsg))
		ae.String(unix.IFLA_IFNAME, name)
		begin := func(typ uint16, f bool) int {
			if f {
				return ae.Begin(typ)
			}
			return ae.BeginUnflagged(typ)
		}
		li := begin(unix.IFLA_LINKINFO, flagged[0])
		ae.String(unix.IFLA_INFO_KIND, "veth")
		d := begin(unix.IFLA_INFO_DATA, flagged[1])
		p := begin(1, flagged[2]) // VETH_INFO_PEER
		ae.AppendRaw(make([]byte, unix.SizeofIfInfomsg))
		ae.String(unix.IFLA_IFNAME, name+"p")
		ae.End(p)
		ae.End(d)
		ae.End(li)
		if err := c.Execute(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, ae.Bytes()); err != nil {
			t.Errorf("nest flags %v: %v", flagged, err)
			continue
		}
		if p := mustLink(t, c, name+"p"); p.Link != mustLink(t, c, name).Index {
			t.Errorf("nest flags %v: peer not linked", flagged)
		}
	}
}
