package overlay

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStateRoundTrip(t *testing.T) {
	n := NewNode(NodeOptions{StateDir: filepath.Join(t.TempDir(), "state")})
	if _, err := n.loadOverlayState(); !errors.Is(err, ErrNotCreated) {
		t.Fatalf("load before save: %v, want ErrNotCreated", err)
	}
	cfg := DefaultConfig()
	cfg.Local = netip.MustParseAddr("192.0.2.2")
	st := &overlayState{
		Overlay: Overlay{Config: cfg, VTEP: cfg.Local, VTEPSource: "--local", UnderlayDev: "eth1", UnderlayMTU: 1500},
		Created: Creation{NetNS: true, Vxlan: true},
	}
	for range 2 { // the second save replaces the first
		if err := n.saveOverlayState(st); err != nil {
			t.Fatal(err)
		}
	}
	got, err := n.loadOverlayState()
	if err != nil || got.Overlay != st.Overlay || got.Created != st.Created || got.Version != stateVersion {
		t.Fatalf("loaded %+v, %v; want %+v", got, err, st)
	}
	ep := &endpointState{Endpoint: Endpoint{Name: "pinkns", IP: netip.MustParsePrefix("198.51.100.2/24"),
		MAC: DeriveMAC(netip.MustParseAddr("198.51.100.2")), IfName: "eth0", HostIf: "ve-pinkns", VTEP: cfg.Local}, CreatedNetNS: true}
	if err := n.saveEndpoint(ep); err != nil {
		t.Fatal(err)
	}
	eps, err := n.listEndpoints()
	if err != nil || len(eps) != 1 || eps[0].Endpoint != ep.Endpoint || !eps[0].CreatedNetNS {
		t.Fatalf("endpoints %+v, %v", eps, err)
	}
	b, _ := os.ReadFile(n.endpointStatePath("pinkns"))
	if !strings.Contains(string(b), `"mac": "02:42:c6:33:64:02"`) {
		t.Errorf("endpoint state %s: MAC not written as text", b)
	}
	// No temporary files stay behind.
	for _, dir := range []string{n.stateDir, filepath.Join(n.stateDir, endpointsDir)} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("temporary file %s left in %s", e.Name(), dir)
			}
		}
	}
	// A malformed state file is a clear error, not ErrNotCreated.
	if err := os.WriteFile(n.overlayStatePath(), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := n.loadOverlayState(); err == nil || errors.Is(err, ErrNotCreated) || !strings.Contains(err.Error(), "overlay.json is malformed") {
		t.Fatalf("malformed state: %v", err)
	}
}

// TestStateBeforeDualStack: an overlay and an endpoint recorded before
// dual-stack (no gateway6, no ip6) read as IPv4 only, an IPv4 endpoint is
// written as it was (no ip6 key), and a dual-stack overlay and endpoint
// round-trip with their IPv6 halves and give one record per address.
func TestStateBeforeDualStack(t *testing.T) {
	n := NewNode(NodeOptions{StateDir: filepath.Join(t.TempDir(), "state")})
	old := `{"version":1,"overlay":{"config":{"vni":42,"port":4789,"mtu":1450,"gateway":"198.51.100.1/24","learning":false,` +
		`"overlay_netns":"overns","bridge":"br0","vxlan":"vxlan1"},"vtep":"192.0.2.2","vtep_source":"--local","underlay_dev":"u0","underlay_mtu":1500},` +
		`"created":{"netns":true,"bridge":true,"vxlan":true,"address":true}}`
	if err := os.MkdirAll(n.stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.overlayStatePath(), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := n.loadOverlayState()
	if err != nil || st.Overlay.Config.DualStack() || st.Overlay.Network().Underlay6 || len(st.Overlay.Config.Families()) != 1 {
		t.Fatalf("old overlay state: %+v, %v", st, err)
	}
	oldEp := `{"version":1,"endpoint":{"name":"pink","ip":"198.51.100.2/24","mac":"02:42:c6:33:64:02","ifname":"eth0",` +
		`"host_if":"ve-pink","host_index":5,"peer_index":2,"vtep":"192.0.2.2"},"created_netns":true,"registered":true}`
	if err := os.MkdirAll(filepath.Join(n.stateDir, endpointsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.endpointStatePath("pink"), []byte(oldEp), 0o644); err != nil {
		t.Fatal(err)
	}
	ep, err := n.loadEndpoint("pink")
	if err != nil || ep.Endpoint.IP6.IsValid() || len(ep.Endpoint.Records()) != 1 {
		t.Fatalf("old endpoint: %+v, %v", ep, err)
	}
	if err := n.saveEndpoint(ep); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(n.endpointStatePath("pink")); strings.Contains(string(b), "ip6") {
		t.Errorf("IPv4 endpoint written with an ip6 key: %s", b)
	}

	dual := Endpoint{Name: "sky", IP: netip.MustParsePrefix("198.51.100.3/24"), IP6: netip.MustParsePrefix("2001:db8:42::3/64"),
		MAC: DeriveMAC(netip.MustParseAddr("198.51.100.3")), IfName: "eth0", HostIf: "ve-sky", VTEP: netip.MustParseAddr("2001:db8::2")}
	if err := n.saveEndpoint(&endpointState{Endpoint: dual}); err != nil {
		t.Fatal(err)
	}
	got, err := n.loadEndpoint("sky")
	if err != nil || got.Endpoint != dual {
		t.Fatalf("dual-stack endpoint read back as %+v, %v", got, err)
	}
	recs := got.Endpoint.Records()
	if len(recs) != 2 || recs[0].IP != dual.IP.Addr() || recs[1].IP != dual.IP6.Addr() || recs[1].MAC != dual.MAC || recs[1].VTEP != dual.VTEP {
		t.Fatalf("records of a dual-stack endpoint: %v", recs)
	}
	v6only := dual
	v6only.IP = netip.Prefix{}
	if recs := v6only.Records(); len(recs) != 1 || recs[0].IP != dual.IP6.Addr() || !v6only.Has(dual.IP6.Addr()) || v6only.Has(dual.IP.Addr()) {
		t.Fatalf("records of an IPv6-only endpoint: %v", recs)
	}
}

// TestIntentOwn: the records a dead attach made are those whose IP (per
// family) and MAC did not exist before it.
func TestIntentOwn(t *testing.T) {
	e := Endpoint{Name: "sky", IP: netip.MustParsePrefix("198.51.100.3/24"), IP6: netip.MustParsePrefix("2001:db8:42::3/64"),
		MAC: DeriveMAC(netip.MustParseAddr("198.51.100.3")), VTEP: netip.MustParseAddr("192.0.2.2")}
	ip4, ip6 := e.IP.Addr(), e.IP6.Addr()
	for _, c := range []struct {
		name               string
		v4, v6, mac        bool
		wantIP4, wantIP6   netip.Addr
		wantVTEP4, wantVT6 bool
	}{
		{"all made", false, false, false, ip4, ip6, true, true},
		{"IPv4 existed", true, false, false, netip.Addr{}, ip6, true, true},
		{"IPv6 existed", false, true, false, ip4, netip.Addr{}, true, true},
		{"MAC existed", false, false, true, ip4, ip6, false, false},
	} {
		in := intent{Endpoint: e, IPExisted: c.v4, IP6Existed: c.v6, MACExisted: c.mac}
		own := in.own()
		if len(own) != 2 || own[0].IP != c.wantIP4 || own[1].IP != c.wantIP6 ||
			own[0].VTEP.IsValid() != c.wantVTEP4 || own[1].VTEP.IsValid() != c.wantVT6 {
			t.Errorf("%s: own() = %v", c.name, own)
		}
	}
}
