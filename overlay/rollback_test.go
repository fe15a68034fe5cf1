package overlay

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/rtnl"
)

var errInjected = errors.New("injected failure")

// TestAttachRollback fails Attach after each of its steps and checks that
// nothing it created is left: no container netns (or, in a namespace that
// existed, no interface), no host veth, no state, no registry record.
func TestAttachRollback(t *testing.T) {
	tn := newTestNode(t, "rb", testUnderlay, nil)
	ctx := context.Background()
	tn.mustCreate(testConfig("192.0.2.2"))
	// A record already in the store for another container must survive.
	other := recordOf("198.51.100.60", "02:aa:00:00:00:60", "192.0.2.3")
	if err := tn.store.Register(ctx, other); err != nil {
		t.Fatal(err)
	}
	// A container netns that existed before attach.
	pre, err := rtnl.CreateNetNS(tn.netnsDir, "prens")
	if err != nil {
		t.Fatal(err)
	}
	pre.Close()

	base := tn.view()
	all := []string{stepAllocate, stepNetNS, stepVeth, stepAntispoof, stepLoopback, stepAddress, stepLinkUp,
		stepBridgePort, stepRoute, stepState, stepRegister}
	for _, existing := range []bool{false, true} {
		name, steps := "newns", all
		if existing {
			// No netns step: the namespace is there.
			name, steps = "prens", slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == stepNetNS })
		}
		for _, step := range steps {
			t.Run(name+"/"+step, func(t *testing.T) {
				var seen []string
				tn.node.stepHook = func(s string) error {
					seen = append(seen, s)
					if s == step {
						return errInjected
					}
					return nil
				}
				defer func() { tn.node.stepHook = nil }()
				_, err := tn.attach(AttachRequest{Name: name, IP: netip.MustParsePrefix("198.51.100.2/24")})
				if !errors.Is(err, errInjected) || strings.Contains(err.Error(), "rollback") {
					t.Fatalf("attach with a failure at %s: %v", step, err)
				}
				if want := steps[:slices.Index(steps, step)+1]; !slices.Equal(seen, want) {
					t.Fatalf("steps run %v, want %v", seen, want)
				}
				tn.sameView(t, base)
			})
		}
	}
	// Without a failure the same attach succeeds, through the steps tried
	// above and no other.
	var seen []string
	tn.node.stepHook = func(s string) error { seen = append(seen, s); return nil }
	tn.mustAttach(AttachRequest{Name: "newns", IP: netip.MustParsePrefix("198.51.100.2/24")})
	tn.node.stepHook = nil
	if !slices.Equal(seen, all) {
		t.Errorf("attach's steps %v, want %v", seen, all)
	}

	// A failure at registration when the records already existed (same
	// values) must not remove them.
	tn2 := newTestNode(t, "rr", testUnderlay, nil)
	tn2.mustCreate(testConfig("192.0.2.2"))
	mine := recordOf("198.51.100.7", "02:42:c6:33:64:07", "192.0.2.2")
	if err := tn2.store.Register(ctx, mine); err != nil {
		t.Fatal(err)
	}
	tn2.node.stepHook = func(s string) error {
		if s == stepRegister {
			return errInjected
		}
		return nil
	}
	_, err = tn2.attach(AttachRequest{Name: "c7", IP: netip.MustParsePrefix("198.51.100.7/24")})
	tn2.node.stepHook = nil
	if !errors.Is(err, errInjected) {
		t.Fatalf("attach: %v", err)
	}
	if mac, err := tn2.store.LookupMAC(ctx, mine.IP); err != nil || mac != mine.MAC {
		t.Errorf("pre-existing record removed by rollback: %v", err)
	}
	if vtep, err := tn2.store.LookupVTEP(ctx, mine.MAC); err != nil || vtep != mine.VTEP {
		t.Errorf("pre-existing record removed by rollback: %v", err)
	}
}

// TestAttachRollbackKernelFailure makes the kernel, not the hook, fail half
// way: the container netns already has an "eth0", so the veth pair cannot be
// created; the rollback leaves the netns as it was.
func TestAttachRollbackKernelFailure(t *testing.T) {
	tn := newTestNode(t, "rf", testUnderlay, nil)
	tn.mustCreate(testConfig("192.0.2.2"))
	ns, err := rtnl.CreateNetNS(tn.netnsDir, "busy")
	if err != nil {
		t.Fatal(err)
	}
	ns.Close()
	runIn(t, tn.path("busy"), "ip", "link", "add", "eth0", "type", "bridge")
	_, err = tn.attach(AttachRequest{Name: "busy", IP: netip.MustParsePrefix("198.51.100.2/24")})
	if err == nil {
		t.Fatal("attach into a netns that has eth0 succeeded")
	}
	t.Logf("error: %v", err)
	if got := tn.links("busy"); !slices.Equal(got, []string{"eth0:bridge", "lo:"}) {
		t.Errorf("busy links %v", got)
	}
	if got := tn.links("overns"); slices.Contains(got, "ve-busy:veth") {
		t.Errorf("host veth left: %v", got)
	}
	if files := storeFiles(t, tn.store); len(files) != 0 {
		t.Errorf("records left: %v", files)
	}
	// Also a route failure (the container already has a default route), in a
	// netns attach created itself: everything, the netns included, goes.
	tn2 := newTestNode(t, "rg", testUnderlay, nil)
	tn2.mustCreate(testConfig("192.0.2.2"))
	tn2.node.stepHook = func(s string) error {
		if s == stepBridgePort {
			// Occupy the default route just before attach adds its own.
			runIn(t, tn2.path("late"), "ip", "route", "add", "default", "dev", "eth0")
		}
		return nil
	}
	_, err = tn2.attach(AttachRequest{Name: "late", IP: netip.MustParsePrefix("198.51.100.3/24")})
	tn2.node.stepHook = nil
	if err == nil {
		t.Fatal("attach with a taken default route succeeded")
	}
	t.Logf("error: %v", err)
	if got := tn2.netnsNames(); !slices.Equal(got, []string{"overns"}) {
		t.Errorf("netns left: %v", got)
	}
	if got := tn2.stateFiles(); !slices.Equal(got, []string{"overlay.json"}) {
		t.Errorf("state left: %v", got)
	}
}
