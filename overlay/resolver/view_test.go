package resolver

import (
	"context"
	"net/netip"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
)

// chanFeed is a ChangeFeed whose changes the test sends by hand (the etcd
// feed itself is tested in etcdreg and end to end in cmd/overlayd).
type chanFeed chan registry.Change

func (f chanFeed) Watch(ctx context.Context) (<-chan registry.Change, error) { return f, nil }

// TestResolverAnswersFromView: once the feed has synced, misses for its
// records (L3 and L2) are answered from its view with no registry lookup
// and are not charged to the scan budget; a miss for a record the feed has
// not delivered yet is looked up in the registry; reconcile passes do not
// list the registry.
func TestResolverAnswersFromView(t *testing.T) {
	reg := newFakeRegistry()
	reg.add("198.51.100.3", macN(3), "192.0.2.3")
	reg.add("198.51.100.4", macN(4), "192.0.2.4") // registered, not yet in the feed
	feed := make(chanFeed, 4)
	k := &fakeKernel{}
	r, _ := newTestResolver(t, reg, k, func(c *testConfig) {
		c.Feed, c.Mode = feed, ModeHybrid
		c.LookupRate, c.LookupBurst = 1e-9, 1 // one budgeted lookup, then none
	})
	feed <- registry.Change{Kind: registry.ChangePut, Record: registry.Record{IP: netip.MustParseAddr("198.51.100.3"), MAC: macN(3), VTEP: netip.MustParseAddr("192.0.2.3")}}
	feed <- registry.Change{Kind: registry.ChangeSynced}
	runResolver(t, r) // the first pass waits for the feed's sync
	if !r.FeedStats().Synced {
		t.Fatal("first reconcile pass ran before the feed synced")
	}
	if n := reg.lists.Load(); n != 0 {
		t.Errorf("the first reconcile pass listed the registry %d times; the feed's view is the listing", n)
	}
	lookups := func() int64 { return reg.lookups.Load() }

	for range 3 { // three misses over time: none reaches the registry or the budget
		r.HandleMiss(l3("198.51.100.3"))
		eventually(t, "the miss resolved", func() bool { in, _ := r.table.sizes(); return in == 0 })
	}
	r.HandleMiss(&rtnl.Miss{Kind: rtnl.MissL2, Ifindex: testVxlan, MAC: ethaddr.MAC(macN(3)), HasMAC: true})
	eventually(t, "the misses resolved", func() bool {
		s := r.Metrics().Snapshot()
		return s.Resolutions["l3miss"] == 3 && s.Resolutions["l2miss"] == 1
	})
	s := r.Metrics().Snapshot()
	if lookups() != 0 || s.FromFeed != 4 || s.Dropped["scan_budget"] != 0 {
		t.Errorf("registry lookups %d, answered from the feed %d, dropped %d; want 0, 4, 0", lookups(), s.FromFeed, s.Dropped["scan_budget"])
	}

	// Not in the feed yet: the registry answers (one budgeted lookup).
	r.HandleMiss(l3("198.51.100.4"))
	eventually(t, "the registry's answer", func() bool { return r.Metrics().Snapshot().Resolutions["l3miss"] == 4 })
	if lookups() != 2 {
		t.Errorf("registry lookups %d, want 2 (MAC, VTEP)", lookups())
	}

	if _, err := r.Reconcile(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := reg.lists.Load(); n != 0 {
		t.Errorf("a reconcile pass with a synced feed listed the registry %d times", n)
	}
}

// TestResolverListsWithoutView: without a feed (reactive mode), a reconcile
// pass lists the registry, as the control of TestResolverAnswersFromView.
func TestResolverListsWithoutView(t *testing.T) {
	reg := newFakeRegistry()
	reg.add("198.51.100.3", macN(3), "192.0.2.3")
	r, _ := newTestResolver(t, reg, &fakeKernel{}, nil)
	if _, err := r.Reconcile(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := reg.lists.Load(); n != 1 {
		t.Errorf("reconcile listed the registry %d times, want 1", n)
	}
}

// TestReconcileFixesCheckedAgainstView: a reconcile fix planned from the
// view is sent only if the view still says the same right before the
// batch; a superseded fix is neither sent nor tracked.
func TestReconcileFixesCheckedAgainstView(t *testing.T) {
	k := &fakeKernel{}
	r, _ := newTestResolver(t, newFakeRegistry(), k, func(c *testConfig) { c.Feed, c.Mode = make(chanFeed), ModeHybrid })
	ip := netip.MustParseAddr("198.51.100.3")
	vtep := netip.MustParseAddr("192.0.2.3")
	view, _ := r.feed.table(registry.Change{})
	view.PutRecord(registry.Record{IP: ip, MAC: macN(3), VTEP: vtep})
	src := viewSource{r, r.feed}
	cases := []struct {
		op   progOp
		want bool
	}{
		{progOp{kind: opSetNeigh, ip: ip, mac: macN(3)}, true},
		{progOp{kind: opSetNeigh, ip: ip, mac: macN(4)}, false}, // the view moved on
		{progOp{kind: opDelNeigh, ip: ip}, false},               // back in the view
		{progOp{kind: opDelNeigh, ip: netip.MustParseAddr("198.51.100.9")}, true},
		{progOp{kind: opSetFDB, mac: macN(3), vtep: vtep}, true},
		{progOp{kind: opSetFDB, mac: macN(3), vtep: netip.MustParseAddr("192.0.2.4")}, false},
		{progOp{kind: opDelFDB, mac: macN(3)}, false},
		{progOp{kind: opDelFDB, mac: macN(9)}, true},
	}
	for _, c := range cases {
		if got := src.current(&c.op); got != c.want {
			t.Errorf("%v %v %v %v: current = %v, want %v", c.op.kind, c.op.ip, c.op.mac, c.op.vtep, got, c.want)
		}
	}

	res := &resolution{action: "reconciled", current: src.current, ops: []progOp{
		{kind: opSetNeigh, ifindex: testVxlan, ip: ip, mac: macN(4)}, // superseded
		{kind: opSetFDB, mac: macN(3), vtep: vtep},
	}}
	r.prog.apply([]*resolution{res})
	if !res.ops[0].superseded || res.ops[1].superseded {
		t.Errorf("superseded: %v, %v; want true, false", res.ops[0].superseded, res.ops[1].superseded)
	}
	if got := k.sizes(); len(got) != 1 || got[0] != 1 {
		t.Errorf("batches %v, want one of 1 request", got)
	}
	if _, ok := r.prog.trackedNeigh(testVxlan, ip); ok {
		t.Errorf("the superseded neighbour fix is tracked")
	}
}

// TestResolverViewIsFeedsTable: with a feed that hands its copy of the
// records (registry.Change.Table), the view is that copy, read in place:
// a record the feed's table holds is answered from it,
// one the policy refuses or at this node's VTEP is not, and a Delete
// removes the entries its Put programmed.
func TestResolverViewIsFeedsTable(t *testing.T) {
	reg := newFakeRegistry()
	feed := make(chanFeed, 4)
	k := &fakeKernel{}
	r, _ := newTestResolver(t, reg, k, func(c *testConfig) { c.Feed, c.Mode = feed, ModeHybrid })
	tab := registry.NewTable(0)
	a := registry.Record{IP: netip.MustParseAddr("198.51.100.3"), MAC: macN(3), VTEP: netip.MustParseAddr("192.0.2.3")}
	tab.SetRecord(a)
	feed <- registry.Change{Kind: registry.ChangePut, Record: a, Table: tab}
	feed <- registry.Change{Kind: registry.ChangeSynced, Table: tab}
	runResolver(t, r)
	requests := func() (n int) {
		for _, b := range k.sizes() {
			n += b
		}
		return n
	}
	eventually(t, "the feed's record programmed", func() bool { return requests() == 2 })

	// Written to the feed's table, not delivered yet: the view has it.
	b := registry.Record{IP: netip.MustParseAddr("198.51.100.5"), MAC: macN(5), VTEP: netip.MustParseAddr("192.0.2.5")}
	tab.SetRecord(b)
	if mac, vtep, ok := r.feed.viewed(b.IP); !ok || mac != b.MAC || vtep != b.VTEP {
		t.Errorf("view of %s = %v %v %v; want the feed table's record", b.IP, mac, vtep, ok)
	}
	local := registry.Record{IP: netip.MustParseAddr("198.51.100.6"), MAC: macN(6), VTEP: r.cfg.LocalVTEP}
	junk := registry.Record{IP: netip.MustParseAddr("198.51.100.7"), MAC: ethaddr.MAC{1, 2, 3, 4, 5, 6}, VTEP: netip.MustParseAddr("192.0.2.7")} // multicast MAC
	tab.SetRecord(local)
	tab.SetRecord(junk)
	for _, rec := range []registry.Record{local, junk} {
		if _, _, ok := r.feed.viewed(rec.IP); ok {
			t.Errorf("the view answers %v", rec)
		}
		if _, ok := r.feed.viewedMAC(rec.MAC); ok {
			t.Errorf("the view answers %v's MAC", rec)
		}
	}

	tab.DeleteRecord(a)
	feed <- registry.Change{Kind: registry.ChangeDelete, Record: a, Table: tab}
	eventually(t, "the deleted record's entries removed", func() bool { return requests() == 4 })
	if got := r.FeedStats().Programmed; got != 0 {
		t.Errorf("programmed records %d after the delete, want 0", got)
	}
}
