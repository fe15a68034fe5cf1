package resolver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
)

// TestResolverFeedSpans: a feed of spans (nodes' address blocks, no record
// per container) on a real vxlan. Entries a previous run left for an
// address no span explains are removed by the first pass; an L3 miss for
// an address of a remote span is answered from memory (the registry holds
// nothing) with the derived MAC and the span's VTEP, and so is an L2 miss
// for a derived MAC; an address of this node's own span, a span outside
// the subnet and a span overlapping another program nothing; a span whose
// VTEP changes (Delete, Put) has its FDB entries moved, its neighbour
// entries kept, and a deleted span loses its entries, each within 2 s of
// the change, without waiting for a reconcile pass.
func TestResolverFeedSpans(t *testing.T) {
	lab := newResolverLab(t)
	// Left by an earlier run: 198.51.100.200 is in no span.
	stale := rtnl.ARPEntry{Ifindex: lab.vxlan, IP: netip.MustParseAddr("198.51.100.200"), MAC: registry.DeriveMAC(netip.MustParseAddr("198.51.100.200")),
		Protocol: ProtocolOverlayd}.Message()
	if err := lab.conn.NeighReplace(stale); err != nil {
		t.Fatal(err)
	}
	nstest.Run(t, lab.over, "bridge", "fdb", "add", "02:42:c6:33:64:c8", "dev", "vx0", "dst", "192.0.2.99", "self", "extern_learn", "permanent")

	own, b, c := span("198.51.100.0/26", "192.0.2.2", "own"), span("198.51.100.64/26", "192.0.2.3", "b"), span("198.51.100.128/26", "192.0.2.4", "c")
	feed := make(chanFeed, 16)
	r, _ := lab.startFeedResolverIn(t, feed, ModeHybrid, 0, netip.MustParsePrefix("198.51.100.0/24"))
	for _, s := range []registry.Span{own, b, c, span("10.0.0.0/24", "192.0.2.5", "outside"), span("198.51.100.64/27", "192.0.2.6", "overlapping")} {
		feed <- registry.Change{Kind: registry.ChangePut, Span: s}
	}
	feed <- registry.Change{Kind: registry.ChangeSynced}
	eventually(t, "the first pass after the sync", func() bool { return r.Metrics().Snapshot().Reconciles >= 1 })
	if fs := r.FeedStats(); fs.Spans != 3 || fs.SpansRefused != 2 {
		t.Errorf("spans %d, refused %d; want 3 and 2 (outside the subnet, overlapping)", fs.Spans, fs.SpansRefused)
	}
	if n := findNeigh(lab.neighbours(t), "198.51.100.200"); n != nil {
		t.Errorf("the stale entry no span explains is still there: %+v", n)
	}
	if f := findFDB(lab.fdb(t), "02:42:c6:33:64:c8"); f != nil {
		t.Errorf("the stale FDB entry no span explains is still there: %+v", f)
	}

	entry := func(ip, vtep string) bool {
		mac := registry.DeriveMAC(netip.MustParseAddr(ip)).String()
		n, f := findNeigh(lab.neighbours(t), ip), findFDB(lab.fdb(t), mac)
		return n != nil && n.LLAddr == mac && f != nil && f.Dst == vtep
	}
	lab.ping("198.51.100.70")
	lab.ping("198.51.100.130")
	eventually(t, "entries toward b and c", func() bool {
		return entry("198.51.100.70", "192.0.2.3") && entry("198.51.100.130", "192.0.2.4")
	})
	// An L2 miss: the container sends to a derived MAC it knows already.
	nstest.Run(t, lab.ctr, "ip", "neigh", "replace", "198.51.100.71", "lladdr", "02:42:c6:33:64:47", "dev", "eth0")
	lab.ping("198.51.100.71")
	eventually(t, "the FDB entry of an L2 miss", func() bool {
		f := findFDB(lab.fdb(t), "02:42:c6:33:64:47")
		return f != nil && f.Dst == "192.0.2.3"
	})
	lab.ping("198.51.100.10") // this node's own span: nothing to program
	snap := r.Metrics().Snapshot()
	if snap.FromFeed < 3 || snap.Unresolved["local"] == 0 {
		t.Errorf("answered from the view %d times, local %d; want every miss answered from memory and the local one unresolved", snap.FromFeed, snap.Unresolved["local"])
	}
	if n := findNeigh(lab.neighbours(t), "198.51.100.10"); n != nil {
		t.Errorf("an address of this node's own span got an entry: %+v", n)
	}
	if n := findNeigh(lab.neighbours(t), "198.51.100.66"); n != nil {
		t.Errorf("an address of the overlapping span got an entry: %+v", n)
	}

	// b's node comes back with another VTEP.
	moved := b
	moved.VTEP = netip.MustParseAddr("192.0.2.33")
	began := time.Now()
	feed <- registry.Change{Kind: registry.ChangeDelete, Span: b}
	feed <- registry.Change{Kind: registry.ChangePut, Span: moved}
	eventually(t, "b's FDB entries at its new VTEP", func() bool {
		f := findFDB(lab.fdb(t), "02:42:c6:33:64:47")
		return entry("198.51.100.70", "192.0.2.33") && f != nil && f.Dst == "192.0.2.33"
	})
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("moving b's entries took %v, want under 2 s", d)
	}
	// c's node is deleted.
	began = time.Now()
	feed <- registry.Change{Kind: registry.ChangeDelete, Span: c}
	eventually(t, "c's entries removed", func() bool {
		return findNeigh(lab.neighbours(t), "198.51.100.130") == nil && findFDB(lab.fdb(t), "02:42:c6:33:64:82") == nil
	})
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("removing c's entries took %v, want under 2 s", d)
	}
	if s := r.Metrics().Snapshot(); s.Reconciles != snap.Reconciles {
		t.Errorf("%d reconcile passes ran meanwhile; the span changes alone were to fix the entries", s.Reconciles-snap.Reconciles)
	}
}

func span(prefix, vtep, node string) registry.Span {
	return registry.Span{Prefix: netip.MustParsePrefix(prefix), VTEP: netip.MustParseAddr(vtep), Node: node}
}
