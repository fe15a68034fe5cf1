package resolver

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// TestResolverKernelIPv6: on a dual-stack lab, a container's Neighbor
// Solicitation for a registered IPv6 address raises an IPv6 L3 miss that
// the resolver answers with a PERMANENT IPv6 neighbour entry (proto 214)
// and the FDB entry, in one batch; solicitations for a link-local address
// and for an address outside the prefix are ignored and counted, never
// looked up. A restarted resolver adopts the IPv6 entry, and a reconcile
// pass removes it once its record is gone.
func TestResolverKernelIPv6(t *testing.T) {
	lab := missgen.NewDualLab(t)
	g := lab.Generator6(t)
	store := burstStore(t, 0)
	target := missgen.FirstTarget6()
	rec := registry.Record{IP: target, MAC: burstRecord(7).MAC, VTEP: netip.MustParseAddr("192.0.2.3")}
	if err := store.Register(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	dual := func(c *Config) { c.Subnet6 = missgen.Prefix6() }
	mcfg := DefaultMonitorConfig(lab.Overlay)
	r := startBurstResolver(t, lab, store, mcfg, dual)
	before := r.Metrics().Snapshot()
	if n, err := g.NS(target, 1); err != nil || n != 1 {
		t.Fatalf("NS: %d, %v", n, err)
	}
	waitFor(t, 5*time.Second, "the IPv6 miss resolved", func() bool { return r.Metrics().Snapshot().Resolutions["l3miss"] == 1 })
	s := r.Metrics().Snapshot()
	if s.Batches-before.Batches != 1 || s.BatchMessages-before.BatchMessages != 2 || s.FamilyResolutions != [2]uint64{0, 1} {
		t.Errorf("%d batches of %d messages, resolutions by family %v; want the neighbour and FDB entries in one batch, one IPv6",
			s.Batches-before.Batches, s.BatchMessages-before.BatchMessages, s.FamilyResolutions)
	}
	wantNeigh := target.String() + " lladdr " + rec.MAC.String() + " PERMANENT proto 214"
	if out := nstest.Run(t, lab.OverlayName, "ip", "-6", "neigh", "show", "dev", "vxlan1"); !strings.Contains(out, wantNeigh) {
		t.Errorf("IPv6 neighbours of vxlan1, want %q:\n%s", wantNeigh, out)
	}
	if out := nstest.Run(t, lab.OverlayName, "bridge", "fdb", "show", "dev", "vxlan1"); !strings.Contains(out, rec.MAC.String()+" dst 192.0.2.3") {
		t.Errorf("FDB of vxlan1 lacks %s:\n%s", rec.MAC, out)
	}
	lookups := s.Lookups
	for _, ip := range []string{"fe80::42:c6ff:fe33:6409", "2001:db8:41::5"} {
		if n, err := g.NS(netip.MustParseAddr(ip), 1); err != nil || n != 1 {
			t.Fatalf("NS %s: %d, %v", ip, n, err)
		}
	}
	waitFor(t, 5*time.Second, "the noise counted", func() bool {
		s := r.Metrics().Snapshot()
		return s.Ignored["link_local"] >= 1 && s.Ignored["outside_subnet"] >= 1
	})
	if s := r.Metrics().Snapshot(); s.Lookups != lookups || s.Resolutions["l3miss"] != 1 {
		t.Errorf("the noise was looked up (%d lookups, %d before) or resolved", s.Lookups, lookups)
	}

	// A second resolver (the daemon restarted) adopts the entry; a pass
	// after the record is gone removes it.
	r2 := startBurstResolver(t, lab, store, DefaultMonitorConfig(lab.Overlay), dual)
	if a := r2.Metrics().Snapshot().ReconcileChanges["adopted"]; a < 1 {
		t.Errorf("the restarted resolver adopted %d entries, want the IPv6 neighbour (and its FDB entry)", a)
	}
	if err := store.Unregister(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out := nstest.Run(t, lab.OverlayName, "ip", "-6", "neigh", "show", "dev", "vxlan1"); strings.Contains(out, target.String()) {
		t.Errorf("the IPv6 entry of a removed record is still there:\n%s", out)
	}
}
