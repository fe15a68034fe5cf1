package rtnl_test

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// TestNodeTopology builds an overlay node with rtnl alone (the overlay
// netns with its bridge and vxlan, one attached container, the static wiring
// of one remote container), then reads every piece back with iproute2:
//
//	H (the node's host netns)   O (overlay netns)              C (container)
//	vxlan1's UDP socket  <----  vxlan1 id 42 ---+ br0 198.51.100.1/24
//	                            veth1 ----------+     eth0 198.51.100.2/24
//	                              \________________________/  default via .1
func TestNodeTopology(t *testing.T) {
	nsH, nameH := nstest.NetNS(t, "H")
	nsO, nameO := nstest.NetNS(t, "O")
	nsC, nameC := nstest.NetNS(t, "C")
	cH, cO, cC := nstest.Dial(t, nsH), nstest.Dial(t, nsO), nstest.Dial(t, nsC)

	var (
		gw       = netip.MustParsePrefix("198.51.100.1/24")
		ctnAddr  = netip.MustParsePrefix("198.51.100.2/24")
		ctnMAC   = mustMAC(t, "02:42:c6:33:64:02")
		remoteIP = netip.MustParseAddr("198.51.100.3")
		remoteHW = mustMAC(t, "02:42:c6:33:64:03")
		vtep     = netip.MustParseAddr("192.0.2.3")
	)

	// The overlay: br0 with the gateway address, vxlan1 enslaved to it.
	if err := cO.LinkAdd(rtnl.NewBridge("br0")); err != nil {
		t.Fatalf("br0: %v", err)
	}
	br0 := mustLink(t, cO, "br0")
	if err := cO.AddressAdd(br0.Index, gw); err != nil {
		t.Fatalf("br0 address: %v", err)
	}
	vx := rtnl.NewVxlan("vxlan1", rtnl.VxlanInfo{ID: 42, Port: rtnl.VxlanPort, Proxy: true, L2Miss: true, L3Miss: true, Ageing: 300})
	vx.NetNSFD = nsO.Fd() // sent from H: the device lands in O, its socket stays in H
	if err := cH.LinkAdd(vx); err != nil {
		t.Fatalf("vxlan1: %v", err)
	}
	if _, err := cH.LinkByName("vxlan1"); err == nil {
		t.Fatal("vxlan1 stayed in H")
	}
	vxlan1 := mustLink(t, cO, "vxlan1")
	if err := cO.LinkSetMaster(vxlan1.Index, br0.Index); err != nil {
		t.Fatalf("vxlan1 master: %v", err)
	}

	// A container, sent from H like `ip link add dev veth1 mtu 1450 netns
	// overns type veth peer name eth0 mtu 1450 netns pinkns`.
	veth := rtnl.NewVethPair("veth1", rtnl.LinkMessage{Name: "eth0", MTU: 1450, Address: ctnMAC, NetNSFD: nsC.Fd()})
	veth.MTU, veth.NetNSFD = 1450, nsO.Fd()
	if err := cH.LinkAdd(veth); err != nil {
		t.Fatalf("veth pair: %v", err)
	}
	veth1, eth0 := mustLink(t, cO, "veth1"), mustLink(t, cC, "eth0")
	if err := cO.LinkSetMaster(veth1.Index, br0.Index); err != nil {
		t.Fatalf("veth1 master: %v", err)
	}
	for _, l := range []*rtnl.LinkMessage{br0, vxlan1, veth1} {
		if err := cO.LinkSetUp(l.Index); err != nil {
			t.Fatalf("%s up: %v", l.Name, err)
		}
	}
	if err := cC.AddressAdd(eth0.Index, ctnAddr); err != nil {
		t.Fatalf("eth0 address: %v", err)
	}
	if err := cC.LinkSetUp(eth0.Index); err != nil {
		t.Fatalf("eth0 up: %v", err)
	}
	if err := cC.RouteAdd(rtnl.NewDefaultRoute(gw.Addr())); err != nil {
		t.Fatalf("default route: %v", err)
	}

	// Static wiring of a remote container: ARP proxy entry and FDB entry.
	if err := cO.NeighAdd(rtnl.ARPEntry{Ifindex: vxlan1.Index, IP: remoteIP, MAC: remoteHW}.Message()); err != nil {
		t.Fatalf("neighbour: %v", err)
	}
	fdb := rtnl.FDBEntry{Ifindex: vxlan1.Index, MAC: remoteHW, Dst: vtep, VNI: 42, Port: rtnl.VxlanPort}
	if err := cO.NeighReplace(fdb.Message()); err != nil {
		t.Fatalf("fdb: %v", err)
	}
	// An entry whose VNI and port differ from the device's, which the
	// kernel therefore reports (it leaves out values equal to the device's).
	other := rtnl.FDBEntry{Ifindex: vxlan1.Index, MAC: mustMAC(t, "02:42:c6:33:64:04"),
		Dst: netip.MustParseAddr("192.0.2.4"), VNI: 4242, Port: 4790}
	if err := cO.NeighReplace(other.Message()); err != nil {
		t.Fatalf("second fdb entry: %v", err)
	}
	// app_solicit on br0, through RTM_SETNEIGHTBL.
	if err := cO.SetNeighTable(rtnl.NeighTableParams{Family: unix.AF_INET, Ifindex: br0.Index, AppProbes: new(uint32(3))}); err != nil {
		t.Fatalf("app_solicit: %v", err)
	}

	// --- Read back with iproute2. ---
	ipVx := ipjLinkShow(t, nameO, "vxlan1")
	d := ipVx.Linkinfo.InfoData
	check(t, "vxlan1 kind", ipVx.Linkinfo.InfoKind, "vxlan")
	check(t, "vxlan1 id", jsonNum(t, d, "id"), 42)
	check(t, "vxlan1 port", jsonNum(t, d, "port"), 4789)
	check(t, "vxlan1 ageing", jsonNum(t, d, "ageing"), 300)
	check(t, "vxlan1 proxy", jsonBool(d, "proxy"), true)
	check(t, "vxlan1 l2miss", jsonBool(d, "l2miss"), true)
	check(t, "vxlan1 l3miss", jsonBool(d, "l3miss"), true)
	check(t, "vxlan1 learning", jsonBool(d, "learning"), false)
	check(t, "vxlan1 master", ipVx.Master, "br0")
	check(t, "vxlan1 up", ipVx.up(), true)
	if ipVx.LinkNetnsID == nil {
		t.Error("vxlan1 has no link_netnsid: its socket should live in H")
	}
	vxlan1 = mustLink(t, cO, "vxlan1")
	if vxlan1.Present&rtnl.LinkHasLinkNetNSID == 0 || ipVx.LinkNetnsID != nil && *ipVx.LinkNetnsID != vxlan1.LinkNetNSID {
		t.Errorf("rtnl link netnsid %d (present %v), ip %v", vxlan1.LinkNetNSID, vxlan1.Present&rtnl.LinkHasLinkNetNSID != 0, ipVx.LinkNetnsID)
	}
	check(t, "rtnl vxlan1 master", vxlan1.Master, br0.Index)

	ipBr := ipjLinkShow(t, nameO, "br0")
	check(t, "br0 kind", ipBr.Linkinfo.InfoKind, "bridge")
	check(t, "br0 up", ipBr.up(), true)

	ipVeth := ipjLinkShow(t, nameO, "veth1")
	check(t, "veth1 kind", ipVeth.Linkinfo.InfoKind, "veth")
	check(t, "veth1 master", ipVeth.Master, "br0")
	check(t, "veth1 MTU", ipVeth.MTU, 1450)
	check(t, "veth1 up", ipVeth.up(), true)
	check(t, "veth1 peer index", ipVeth.LinkIndex, eth0.Index)

	ipEth := ipjLinkShow(t, nameC, "eth0")
	check(t, "eth0 MTU", ipEth.MTU, 1450)
	check(t, "eth0 MAC", ipEth.Address, ctnMAC.String())
	check(t, "eth0 up", ipEth.up(), true)
	check(t, "eth0 peer index", ipEth.LinkIndex, veth1.Index)

	check(t, "O addresses", strings.Join(ipjAddrs(t, nameO, "inet"), ","), "br0 198.51.100.1/24 global br0,lo 127.0.0.1/8 host lo")
	check(t, "C addresses", strings.Join(ipjAddrs(t, nameC, "inet"), ","), "eth0 198.51.100.2/24 global eth0,lo 127.0.0.1/8 host lo")
	check(t, "H links", strings.Join(ipjLinkNames(t, nameH), ","), "lo")
	check(t, "C routes", strings.Join(ipjRoutes(t, nameC), ","),
		"0.0.0.0/0 198.51.100.1 eth0 static global 0,198.51.100.0/24  eth0 kernel link 0")

	var neighs []struct {
		Dst    string   `json:"dst"`
		LLAddr string   `json:"lladdr"`
		State  []string `json:"state"`
	}
	out := nstest.Run(t, nameO, "ip", "-j", "neigh", "show", "dev", "vxlan1")
	if err := json.Unmarshal([]byte(out), &neighs); err != nil || len(neighs) != 1 {
		t.Fatalf("ip neigh: %v: %s", err, out)
	}
	check(t, "neigh dst", neighs[0].Dst, remoteIP.String())
	check(t, "neigh lladdr", neighs[0].LLAddr, remoteHW.String())
	check(t, "neigh state", strings.Join(neighs[0].State, ","), "PERMANENT")

	type fdbEntry struct {
		MAC   string   `json:"mac"`
		Dst   string   `json:"dst"`
		Port  int      `json:"port"`
		VNI   int      `json:"vni"`
		Flags []string `json:"flags"`
		State string   `json:"state"`
	}
	var fdbs []fdbEntry
	out = nstest.Run(t, nameO, "bridge", "-j", "fdb", "show", "dev", "vxlan1")
	if err := json.Unmarshal([]byte(out), &fdbs); err != nil {
		t.Fatalf("bridge fdb: %v: %s", err, out)
	}
	byMAC := map[string]fdbEntry{}
	for _, f := range fdbs {
		if slices.Contains(f.Flags, "self") {
			byMAC[f.MAC] = f
		}
	}
	// The first entry's VNI and port equal the device's, so the kernel omits them.
	check(t, "fdb entries", len(byMAC), 2)
	want := []fdbEntry{
		{MAC: remoteHW.String(), Dst: "192.0.2.3", State: "permanent"},
		{MAC: "02:42:c6:33:64:04", Dst: "192.0.2.4", Port: 4790, VNI: 4242, State: "permanent"},
	}
	for _, w := range want {
		got := byMAC[w.MAC]
		check(t, w.MAC+" dst", got.Dst, w.Dst)
		check(t, w.MAC+" port", got.Port, w.Port)
		check(t, w.MAC+" vni", got.VNI, w.VNI)
		check(t, w.MAC+" state", got.State, w.State)
	}

	appSolicit := strings.TrimSpace(nstest.Run(t, nameO, "cat", "/proc/sys/net/ipv4/neigh/br0/app_solicit"))
	check(t, "br0 app_solicit", appSolicit, "3")

	// The wiring works: C reaches its gateway, and vxlan1's proxy answers
	// C's ARP for the remote container from the permanent neighbour entry.
	nstest.Run(t, nameC, "ping", "-c", "1", "-W", "2", gw.Addr().String())
	nstest.Output(nameC, "ping", "-c", "1", "-W", "1", remoteIP.String()) // no remote node: only ARP matters
	out = nstest.Run(t, nameC, "ip", "-j", "neigh", "show", remoteIP.String(), "dev", "eth0")
	neighs = nil
	if err := json.Unmarshal([]byte(out), &neighs); err != nil || len(neighs) != 1 {
		t.Fatalf("C's neighbour %v: %v: %s", remoteIP, err, out)
	}
	check(t, "proxied ARP answer", neighs[0].LLAddr, remoteHW.String())
}

func mustMAC(t *testing.T, s string) ethaddr.MAC {
	t.Helper()
	m, err := ethaddr.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
