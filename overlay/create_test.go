package overlay

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay/egress"
	"github.com/overlaynet/overlaynet/rtnl"
)

var testUnderlay = netip.MustParsePrefix("192.0.2.2/24")

func TestCreateIdempotent(t *testing.T) {
	tn := newTestNode(t, "ci", testUnderlay, nil)
	cfg := testConfig("192.0.2.2")
	ov := tn.mustCreate(cfg)
	if ov.VTEP != cfg.Local || ov.VTEPSource != "--local" || ov.UnderlayDev != "ul0" || ov.UnderlayMTU != 1500 {
		t.Fatalf("overlay = %+v", ov)
	}
	first := tn.links("overns")
	ov2 := tn.mustCreate(cfg)
	if *ov2 != *ov {
		t.Fatalf("second create returned %+v, want %+v", ov2, ov)
	}
	got := tn.links("overns")
	want := []string{"br0:bridge", "lo:", "vxlan1:vxlan"}
	if !slices.Equal(got, want) || !slices.Equal(first, want) {
		t.Fatalf("overlay netns links after two creates = %v (after one: %v), want %v", got, first, want)
	}
	if names := tn.netnsNames(); !slices.Equal(names, []string{"overns"}) {
		t.Fatalf("netns dir holds %v", names)
	}
	// Read back with iproute2, as the lab would.
	path := tn.path("overns")
	vx := ipLinkOf(t, path, "vxlan1")
	d := vx.Info.Data
	if d.ID != 42 || d.Port != 4789 || !d.Proxy || !d.L2Miss || !d.L3Miss || d.Learning || d.Local != "192.0.2.2" ||
		vx.MTU != 1450 || vx.Master != "br0" || !vx.up() {
		t.Errorf("vxlan1 = %+v", vx)
	}
	br := ipLinkOf(t, path, "br0")
	if br.MTU != 1450 || !br.up() {
		t.Errorf("br0 = %+v", br)
	}
	if out := runIn(t, path, "ip", "-4", "-o", "addr", "show", "dev", "br0"); !strings.Contains(out, "inet 198.51.100.1/24") {
		t.Errorf("br0 addresses: %s", out)
	}
	// The vxlan was created in the node's host netns and moved: its UDP
	// socket stays there, so the device reports a link netns id.
	vl, err := dialPath(t, path).LinkByName("vxlan1")
	if err != nil || vl.Present&rtnl.LinkHasLinkNetNSID == 0 {
		t.Errorf("vxlan1 reports no IFLA_LINK_NETNSID (created in the overlay netns itself?): %+v, %v", vl, err)
	}
	if files := tn.stateFiles(); !slices.Equal(files, []string{"overlay.json"}) {
		t.Errorf("state files %v", files)
	}
}

func TestCreateMismatch(t *testing.T) {
	tn := newTestNode(t, "cm", testUnderlay, nil)
	// A vxlan1 with VNI 43 already in the overlay netns, built by hand.
	ns, err := rtnl.CreateNetNS(tn.netnsDir, "overns")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	runIn(t, tn.path("overns"), "ip", "link", "add", "vxlan1", "type", "vxlan", "id", "43", "dstport", "4789", "proxy", "nolearning")
	cfg := testConfig("192.0.2.2")
	_, err = tn.create(cfg)
	var me *MismatchError
	if !errors.As(err, &me) {
		t.Fatalf("create over VNI 43: %v, want *MismatchError", err)
	}
	t.Logf("error: %v", err)
	var vni *Mismatch
	for i := range me.Mismatches {
		if me.Mismatches[i].Field == "VNI" {
			vni = &me.Mismatches[i]
		}
	}
	if vni == nil || vni.Device != "vxlan1" || vni.Want != "42" || vni.Have != "43" {
		t.Fatalf("mismatches %+v, want vxlan1 VNI want 42 have 43", me.Mismatches)
	}
	if !strings.Contains(err.Error(), "vxlan1 VNI: want 42, have 43") || !strings.Contains(err.Error(), "l2miss: want true, have false") {
		t.Errorf("error text %q", err)
	}
	// Nothing created, nothing destroyed.
	if got := tn.links("overns"); !slices.Equal(got, []string{"lo:", "vxlan1:vxlan"}) {
		t.Errorf("overlay netns links = %v", got)
	}
	if vx := ipLinkOf(t, tn.path("overns"), "vxlan1"); vx.Info.Data.ID != 43 {
		t.Errorf("vxlan1 VNI now %d", vx.Info.Data.ID)
	}
	if files := tn.stateFiles(); len(files) != 0 {
		t.Errorf("state files %v", files)
	}

	// A recorded overlay with other settings is refused the same way.
	runIn(t, tn.path("overns"), "ip", "link", "del", "vxlan1")
	tn.mustCreate(cfg)
	other := cfg
	other.VNI, other.Port = 7, 4790
	_, err = tn.create(other)
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "state VNI: want 7, have 42") || !strings.Contains(err.Error(), "state port: want 4790, have 4789") {
		t.Fatalf("create with another VNI: %v", err)
	}
	if vx := ipLinkOf(t, tn.path("overns"), "vxlan1"); vx.Info.Data.ID != 42 {
		t.Errorf("vxlan1 VNI now %d", vx.Info.Data.ID)
	}
}

func TestCreateUnderlayChoice(t *testing.T) {
	tn := newTestNode(t, "cu", testUnderlay, nil)
	// Default route via ul0: the VTEP comes from it.
	nstest.Run(t, tn.hostName, "ip", "route", "add", "default", "via", "192.0.2.1", "dev", "ul0")
	for _, tc := range []struct {
		name   string
		edit   func(*Config)
		source string
		err    string
	}{
		{"default route", func(c *Config) {}, "source of the default route via ul0", ""},
		{"dev", func(c *Config) { c.Dev = "ul0" }, "address of --dev ul0", ""},
		{"local", func(c *Config) { c.Local = netip.MustParseAddr("192.0.2.2") }, "--local", ""},
		{"local not ours", func(c *Config) { c.Local = netip.MustParseAddr("192.0.2.9") }, "", "192.0.2.9 is not an address of this node"},
		{"no such dev", func(c *Config) { c.Dev = "nope0" }, "", `underlay device "nope0"`},
		{"mtu above underlay", func(c *Config) { c.MTU = 1451 }, "", "MTU 1451 is above what underlay ul0 (MTU 1500, chosen by source of the default route via ul0) allows for VXLAN: at most 1450"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.edit(&cfg)
			var ov Overlay
			var err error
			tn.do(func() error {
				host, derr := rtnl.Dial(nil)
				if derr != nil {
					return derr
				}
				defer host.Close()
				ov, _, err = findUnderlay(host, cfg)
				if err == nil {
					err = checkUnderlayMTU(ov)
				}
				return nil
			})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil || ov.VTEPSource != tc.source || ov.VTEP != testUnderlay.Addr() || ov.UnderlayDev != "ul0" || ov.UnderlayMTU != 1500 {
				t.Fatalf("got %+v, %v; want VTEP 192.0.2.2 from %q", ov, err, tc.source)
			}
		})
	}
	// Through Create: the choice is recorded and explained in Status.
	ov := tn.mustCreate(DefaultConfig())
	st, err := tn.status()
	if err != nil {
		t.Fatal(err)
	}
	if ov.VTEPSource != "source of the default route via ul0" || st.Overlay.VTEPSource != ov.VTEPSource || st.Overlay.VTEP != testUnderlay.Addr() {
		t.Fatalf("create %+v, status %+v", ov, st.Overlay)
	}
	if vx := ipLinkOf(t, tn.path("overns"), "vxlan1"); vx.Info.Data.Local != "" {
		t.Errorf("vxlan1 has local %s without --local", vx.Info.Data.Local)
	}
}

// TestCreateRollback fails create after each of its steps: the netns,
// bridge, address, vxlan and egress it made are removed (the ruleset lists
// as before), and no state is written. Then, over a netns and bridge that
// existed, only what create added or changed goes.
func TestCreateRollback(t *testing.T) {
	nstest.RequireTools(t, "nft")
	tn := newTestNode(t, "cr", testUnderlay, nil)
	hostLinks := tn.links("")
	ruleset := tn.ruleset(false)
	cfg := egressConfig("192.0.2.2", &egress.Config{})
	fresh := []string{stepOverlayNetNS, stepBridge, stepGateway, stepVxlan, stepUp, stepEgress, stepOverlayState}
	// Over an existing netns and bridge (MTU 1500: create sets it).
	existing := []string{stepBridgeMTU, stepGateway, stepVxlan, stepUp, stepEgress, stepOverlayState}
	for _, pre := range []bool{false, true} {
		all := fresh
		if pre {
			all = existing
			ns, err := rtnl.CreateNetNS(tn.netnsDir, "overns")
			if err != nil {
				t.Fatal(err)
			}
			ns.Close()
			runIn(t, tn.path("overns"), "ip", "link", "add", "br0", "type", "bridge")
		}
		for _, step := range all {
			t.Run(fmt.Sprintf("existing=%v/%s", pre, step), func(t *testing.T) {
				var seen []string
				tn.node.stepHook = func(s string) error {
					seen = append(seen, s)
					if s == step {
						return errInjected
					}
					return nil
				}
				defer func() { tn.node.stepHook = nil }()
				_, err := tn.create(cfg)
				if !errors.Is(err, errInjected) || strings.Contains(err.Error(), "rollback") {
					t.Fatalf("create with a failure at %s: %v", step, err)
				}
				if want := all[:slices.Index(all, step)+1]; !slices.Equal(seen, want) {
					t.Errorf("steps %v, want %v", seen, want)
				}
				if pre {
					if got := tn.links("overns"); !slices.Equal(got, []string{"br0:bridge", "lo:"}) {
						t.Errorf("overlay links left %v", got)
					}
					if out := runIn(t, tn.path("overns"), "ip", "-4", "-o", "addr", "show", "dev", "br0"); out != "" {
						t.Errorf("address left on br0: %s", out)
					}
					if br := ipLinkOf(t, tn.path("overns"), "br0"); br.MTU != 1500 {
						t.Errorf("br0 MTU left at %d, was 1500", br.MTU)
					}
				} else if names := tn.netnsNames(); len(names) != 0 {
					t.Errorf("netns left: %v", names)
				}
				if got := tn.links(""); !slices.Equal(got, hostLinks) {
					t.Errorf("host links %v, want %v", got, hostLinks)
				}
				if files := tn.stateFiles(); len(files) != 0 {
					t.Errorf("state left: %v", files)
				}
				if got := tn.ruleset(false); got != ruleset {
					t.Errorf("ruleset left:\n%s", got)
				}
			})
		}
	}
	// And without a failure it succeeds, adopting the existing bridge,
	// through the steps tried above and no other.
	var seen []string
	tn.node.stepHook = func(s string) error { seen = append(seen, s); return nil }
	tn.mustCreate(cfg)
	tn.node.stepHook = nil
	if !slices.Equal(seen, existing) {
		t.Errorf("create's steps %v, want %v", seen, existing)
	}
	st, err := tn.status()
	if err != nil || st.Created.Bridge || st.Created.NetNS || !st.Created.Vxlan || !st.Created.Address || len(st.Problems) != 0 {
		t.Fatalf("status %+v, %v", st, err)
	}
	if err := tn.reset(); err != nil {
		t.Fatal(err)
	}
}
