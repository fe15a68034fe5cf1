package overlay

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
)

func TestAttachDetachStatusReset(t *testing.T) {
	tn := newTestNode(t, "ad", testUnderlay, nil)
	ctx := context.Background()
	// A record of another node, which reset must keep.
	remote := recordOf("198.51.100.50", "02:aa:00:00:00:50", "192.0.2.3")
	if err := tn.store.Register(ctx, remote); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.attach(AttachRequest{Name: "early", IP: netip.MustParsePrefix("198.51.100.9/24")}); !errors.Is(err, ErrNotCreated) {
		t.Fatalf("attach before create: %v, want ErrNotCreated", err)
	}
	tn.mustCreate(testConfig("192.0.2.2"))

	pink := tn.mustAttach(AttachRequest{Name: "pinkns", IP: netip.MustParsePrefix("198.51.100.2/24")})
	if pink.MAC.String() != "02:42:c6:33:64:02" || pink.IfName != "eth0" || pink.HostIf != "ve-pinkns" || pink.VTEP != testUnderlay.Addr() ||
		pink.HostIndex == 0 || pink.PeerIndex == 0 {
		t.Fatalf("endpoint %+v", pink)
	}
	// A container netns that exists before attach is used, and kept.
	sky, err := rtnl.CreateNetNS(tn.netnsDir, "skyns")
	if err != nil {
		t.Fatal(err)
	}
	sky.Close()
	skyMAC, _ := ethaddr.Parse("02:00:00:00:00:11")
	tn.mustAttach(AttachRequest{Name: "skyns", IP: netip.MustParsePrefix("198.51.100.11/24"), MAC: skyMAC, IfName: "ovl0"})

	// Kernel read-back with iproute2.
	cpath := tn.path("pinkns")
	eth0 := ipLinkOf(t, cpath, "eth0")
	if eth0.Address != "02:42:c6:33:64:02" || eth0.MTU != 1450 || !eth0.up() {
		t.Errorf("eth0 = %+v", eth0)
	}
	if lo := ipLinkOf(t, cpath, "lo"); !lo.up() {
		t.Errorf("lo is down in the container")
	}
	if out := runIn(t, cpath, "ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, "inet 198.51.100.2/24") {
		t.Errorf("eth0 addresses: %s", out)
	}
	if out := runIn(t, cpath, "ip", "route", "show", "default"); !strings.Contains(out, "default via 198.51.100.1 dev eth0") {
		t.Errorf("container routes: %q", out)
	}
	hv := ipLinkOf(t, tn.path("overns"), "ve-pinkns")
	if hv.Master != "br0" || !hv.up() || hv.MTU != 1450 || hv.Info.Kind != "veth" || hv.Index != pink.HostIndex || hv.LinkIndex != pink.PeerIndex {
		t.Errorf("ve-pinkns = %+v, endpoint %+v", hv, pink)
	}
	// The container reaches its gateway.
	runIn(t, cpath, "ping", "-c1", "-W2", "198.51.100.1")
	if ovl := ipLinkOf(t, tn.path("skyns"), "ovl0"); ovl.Address != "02:00:00:00:00:11" {
		t.Errorf("ovl0 = %+v", ovl)
	}

	// The state directory remembers both.
	if ov, err := tn.node.Overlay(); err != nil || ov.VTEP != testUnderlay.Addr() {
		t.Errorf("Overlay() = %+v, %v", ov, err)
	}
	if eps, err := tn.node.Endpoints(); err != nil || len(eps) != 2 || eps[0] != *pink || eps[1].Name != "skyns" {
		t.Errorf("Endpoints() = %+v, %v", eps, err)
	}

	// Registry.
	if mac, err := tn.store.LookupMAC(ctx, pink.IP.Addr()); err != nil || mac != ethaddr.MAC(pink.MAC) {
		t.Errorf("registry IP->MAC: %s, %v", mac, err)
	}
	if vtep, err := tn.store.LookupVTEP(ctx, ethaddr.MAC(pink.MAC)); err != nil || vtep != testUnderlay.Addr() {
		t.Errorf("registry MAC->VTEP: %s, %v", vtep, err)
	}

	// Refusals, nothing changed.
	for _, tc := range []struct {
		req  AttachRequest
		want error
		text string
	}{
		{AttachRequest{Name: "pinkns", IP: netip.MustParsePrefix("198.51.100.3/24")}, ErrExists, `"pinkns" is attached`},
		{AttachRequest{Name: "dupip", IP: netip.MustParsePrefix("198.51.100.2/24"), MAC: skyMAC}, registry.ErrConflict, `IP 198.51.100.2 is used by endpoint "pinkns"`},
		{AttachRequest{Name: "remoteip", IP: netip.MustParsePrefix("198.51.100.50/24")}, registry.ErrConflict, "IP 198.51.100.50 is registered to MAC 02:aa:00:00:00:50, not 02:42:c6:33:64:32"},
		{AttachRequest{Name: "remotemac", IP: netip.MustParsePrefix("198.51.100.51/24"), MAC: ethaddr.MAC(remote.MAC)}, registry.ErrConflict, "MAC 02:aa:00:00:00:50 is registered at VTEP 192.0.2.3"},
	} {
		before := tn.netnsNames()
		if _, err := tn.attach(tc.req); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("attach %+v: %v, want %v saying %q", tc.req, err, tc.want, tc.text)
		}
		if after := tn.netnsNames(); !slices.Equal(before, after) {
			t.Errorf("refused attach changed netns %v -> %v", before, after)
		}
	}

	// Status.
	st, err := tn.status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Problems) != 0 || len(st.Devices) != 2 || len(st.Endpoints) != 2 {
		t.Fatalf("status %+v", st)
	}
	ps := st.Endpoints[0]
	if ps.Name != "pinkns" || !ps.HostUp || !ps.PeerUp || ps.HostMaster != "br0" || ps.KernelPeerIndex != pink.PeerIndex || len(ps.Problems) != 0 || !ps.CreatedNetNS {
		t.Errorf("pinkns status %+v", ps)
	}
	if st.Endpoints[1].CreatedNetNS {
		t.Errorf("skyns marked created")
	}
	vxs := st.Devices[1]
	if vxs.Kind != "vxlan" || vxs.VNI != 42 || vxs.Port != 4789 || !vxs.Proxy || !vxs.L2Miss || !vxs.L3Miss || vxs.Master != "br0" {
		t.Errorf("vxlan status %+v", vxs)
	}
	// Program a neighbour and an FDB entry the lab's way; status shows them.
	oc := dialPath(t, tn.path("overns"))
	remoteMAC := ethaddr.MAC(remote.MAC)
	if err := oc.NeighReplace(rtnl.ARPEntry{Ifindex: vxs.Index, IP: remote.IP, MAC: remoteMAC}.Message()); err != nil {
		t.Fatal(err)
	}
	if err := oc.NeighReplace(rtnl.FDBEntry{Ifindex: vxs.Index, MAC: remoteMAC, Dst: remote.VTEP}.Message()); err != nil {
		t.Fatal(err)
	}
	st, err = tn.status()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(st.Neighbors, NeighborEntry{IP: remote.IP, MAC: remoteMAC, State: "PERMANENT"}) {
		t.Errorf("neighbours %+v", st.Neighbors)
	}
	found := false
	for _, f := range st.FDB {
		found = found || (f.MAC == remoteMAC && f.VTEP == remote.VTEP && f.State == "PERMANENT")
	}
	if !found {
		t.Errorf("fdb %+v", st.FDB)
	}
	js, err := json.Marshal(st)
	if err != nil || !strings.Contains(string(js), `"mac":"02:42:c6:33:64:02"`) || !strings.Contains(string(js), `"vtep_source":"--local"`) {
		t.Errorf("status JSON %s, %v", js, err)
	}

	// Detach pinkns: veth, netns, records and state go.
	if err := tn.detach("pinkns"); err != nil {
		t.Fatal(err)
	}
	if err := tn.detach("pinkns"); !errors.Is(err, ErrUnknownEndpoint) {
		t.Errorf("second detach: %v", err)
	}
	if fileExists(tn.path("pinkns")) || slices.Contains(tn.links("overns"), "ve-pinkns:veth") {
		t.Errorf("pinkns left behind: netns %v, links %v", tn.netnsNames(), tn.links("overns"))
	}
	if _, err := tn.store.LookupMAC(ctx, pink.IP.Addr()); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("pinkns record after detach: %v", err)
	}
	if _, err := tn.store.LookupVTEP(ctx, ethaddr.MAC(pink.MAC)); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("pinkns fdb record after detach: %v", err)
	}

	// Reset: everything created goes, skyns (pre-existing) stays without
	// its interface, the other node's record stays.
	if err := tn.reset(); err != nil {
		t.Fatal(err)
	}
	if names := tn.netnsNames(); !slices.Equal(names, []string{"skyns"}) {
		t.Errorf("netns after reset %v, want [skyns]", names)
	}
	if got := tn.links("skyns"); !slices.Equal(got, []string{"lo:"}) {
		t.Errorf("skyns links after reset %v", got)
	}
	if files := tn.stateFiles(); len(files) != 0 {
		t.Errorf("state after reset %v", files)
	}
	if files := storeFiles(t, tn.store); !slices.Equal(files, []string{"arp/198.51.100.50", "fdb/02:aa:00:00:00:50"}) {
		t.Errorf("store after reset %v", files)
	}
	if _, err := tn.status(); !errors.Is(err, ErrNotCreated) {
		t.Errorf("status after reset: %v", err)
	}
	if err := tn.reset(); err != nil {
		t.Errorf("second reset: %v", err)
	}
}

// TestResetKeepsForeignDevices checks that reset removes only what create
// made: here the overlay netns and bridge existed before.
func TestResetKeepsForeignDevices(t *testing.T) {
	tn := newTestNode(t, "rk", testUnderlay, nil)
	ns, err := rtnl.CreateNetNS(tn.netnsDir, "overns")
	if err != nil {
		t.Fatal(err)
	}
	ns.Close()
	runIn(t, tn.path("overns"), "ip", "link", "add", "br0", "mtu", "1450", "type", "bridge")
	runIn(t, tn.path("overns"), "ip", "link", "add", "keep0", "type", "bridge")
	tn.mustCreate(testConfig("192.0.2.2"))
	tn.mustAttach(AttachRequest{Name: "c1", IP: netip.MustParsePrefix("198.51.100.2/24")})
	if err := tn.reset(); err != nil {
		t.Fatal(err)
	}
	if names := tn.netnsNames(); !slices.Equal(names, []string{"overns"}) {
		t.Errorf("netns after reset %v", names)
	}
	if got := tn.links("overns"); !slices.Equal(got, []string{"br0:bridge", "keep0:bridge", "lo:"}) {
		t.Errorf("links after reset %v", got)
	}
	if out := runIn(t, tn.path("overns"), "ip", "-4", "-o", "addr", "show", "dev", "br0"); out != "" {
		t.Errorf("gateway address left on br0: %s", out)
	}
}

// dialPath opens an rtnl.Conn in the namespace bound at path.
func dialPath(t *testing.T, path string) *rtnl.Conn {
	t.Helper()
	ns, err := rtnl.OpenNetNS(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	return nstest.Dial(t, ns)
}

// TestAttachAddr: an address without a prefix length (AttachRequest.Addr,
// overlayd attach --ip 198.51.100.3) takes the overlay subnet's, MAC
// derived from it; giving both IP and Addr is refused before anything is
// made; an Addr outside the subnet is refused as an IP would be.
func TestAttachAddr(t *testing.T) {
	tn := newTestNode(t, "aa", testUnderlay, nil)
	tn.mustCreate(testConfig("192.0.2.2"))
	ep := tn.mustAttach(AttachRequest{Name: "barens", Addr: netip.MustParseAddr("198.51.100.3")})
	if ep.IP != netip.MustParsePrefix("198.51.100.3/24") || ep.MAC.String() != "02:42:c6:33:64:03" {
		t.Errorf("endpoint IP %s MAC %s, want 198.51.100.3/24 and 02:42:c6:33:64:03", ep.IP, ep.MAC)
	}
	before := tn.netnsNames()
	for _, tc := range []struct {
		req  AttachRequest
		want string
	}{
		{AttachRequest{Name: "bothns", IP: netip.MustParsePrefix("198.51.100.4/24"), Addr: netip.MustParseAddr("198.51.100.4")}, "both IP"},
		{AttachRequest{Name: "outns", Addr: netip.MustParseAddr("203.0.113.4")}, "outside the overlay subnet"},
	} {
		if _, err := tn.attach(tc.req); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("attach %+v: %v, want an error saying %q", tc.req, err, tc.want)
		}
	}
	if after := tn.netnsNames(); !slices.Equal(before, after) {
		t.Errorf("refused attaches left namespaces: %v, before %v", after, before)
	}
}
