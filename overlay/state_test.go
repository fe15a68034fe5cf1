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
