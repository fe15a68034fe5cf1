package resolver

import (
	"context"
	"testing"

	"github.com/overlaynet/overlaynet/internal/nstest"
)

// TestReconcileLeavesForeignFDB: another controller's PERMANENT
// extern_learn FDB entry on the vxlan (an EVPN daemon's, say) survives
// reconcile passes and restarts, untouched, while overlaynet's own entries
// left by an earlier run are adopted and reconciled: one whose record is
// gone is removed (its MAC is named by our neighbour entry), and an
// FDB-only entry whose MAC the registry holds is adopted and corrected.
func TestReconcileLeavesForeignFDB(t *testing.T) {
	lab := newResolverLab(t)
	const foreign, foreignDst = "02:aa:bb:cc:dd:01", "192.0.2.77"
	nstest.Run(t, lab.over, "bridge", "fdb", "add", foreign, "dev", "vx0", "dst", foreignDst, "self", "extern_learn", "permanent")

	// A first run programs 198.51.100.3 (neighbour + FDB entry).
	gone := lab.register(t, "198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3")
	r, stop := lab.start(t)
	lab.ping("198.51.100.3")
	eventually(t, "the L3 miss to be resolved", func() bool { return r.Metrics().Snapshot().Resolutions["l3miss"] >= 1 })
	st, err := r.Reconcile(t.Context())
	if err != nil || st.Foreign != 1 || st.Removed != 0 {
		t.Errorf("reconcile while running: %+v, %v; want the foreign entry counted and nothing removed", st, err)
	}
	stop()

	// While no daemon runs: 198.51.100.3 is unregistered, and an FDB-only
	// entry for a registered MAC points at a stale VTEP (as an L2 miss of
	// an earlier run would have left it before the container moved).
	if err := lab.store.Unregister(context.Background(), gone); err != nil {
		t.Fatal(err)
	}
	lab.register(t, "198.51.100.4", "02:42:c6:33:64:04", "192.0.2.4")
	nstest.Run(t, lab.over, "bridge", "fdb", "add", "02:42:c6:33:64:04", "dev", "vx0", "dst", "192.0.2.99", "self", "extern_learn", "permanent")

	r, _ = lab.start(t) // its first pass adopts
	st, err = r.Reconcile(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	fdb := lab.fdb(t)
	if f := findFDB(fdb, foreign); f == nil || f.Dst != foreignDst {
		t.Errorf("foreign FDB entry after restart and reconcile = %+v, want it untouched (dst %s)", f, foreignDst)
	}
	if f := findFDB(fdb, "02:42:c6:33:64:03"); f != nil {
		t.Errorf("our FDB entry for an unregistered container survived: %+v", f)
	}
	if n := findNeigh(lab.neighbours(t), "198.51.100.3"); n != nil {
		t.Errorf("our neighbour entry for an unregistered container survived: %+v", n)
	}
	if f := findFDB(fdb, "02:42:c6:33:64:04"); f == nil || f.Dst != "192.0.2.4" {
		t.Errorf("FDB-only entry of a registered MAC = %+v, want it adopted and corrected to 192.0.2.4", f)
	}
	if st.Foreign != 1 {
		t.Errorf("second pass: %+v, want 1 foreign entry", st)
	}
	for _, e := range r.Entries() {
		if e.MAC.String() == foreign {
			t.Errorf("the foreign entry is tracked as ours: %+v", e)
		}
	}
}
