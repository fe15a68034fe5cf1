package resolver

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// mapSource is a recordSource of fixed records; bad keys are unusable.
type mapSource struct {
	macs  map[netip.Addr]ethaddr.MAC
	vteps map[ethaddr.MAC]netip.Addr
	bad   map[any]bool
	ok    bool // what current answers
}

func (s mapSource) mac(ip netip.Addr) (ethaddr.MAC, bool, error) {
	if s.bad[ip] {
		return ethaddr.MAC{}, false, errors.New("unusable")
	}
	m, ok := s.macs[ip]
	return m, !ok, nil
}

func (s mapSource) vtep(mac ethaddr.MAC) (netip.Addr, bool, error) {
	if s.bad[mac] {
		return netip.Addr{}, false, errors.New("unusable")
	}
	v, ok := s.vteps[mac]
	return v, !ok, nil
}

func (s mapSource) holdsMAC(mac ethaddr.MAC) bool { _, ok := s.vteps[mac]; return ok }
func (s mapSource) current(*progOp) bool          { return s.ok }

func opString(op progOp) string {
	s := fmt.Sprintf("%v", op.kind)
	if op.ip.IsValid() {
		s += " " + op.ip.String()
	}
	s += " " + op.mac.String()
	if op.vtep.IsValid() {
		s += " " + op.vtep.String()
	}
	if !op.counted {
		s += " (uncounted)"
	}
	return s
}

// TestPlanFixes: what a reconcile pass changes for each entry it found, by
// what the records say (this node's VTEP is 192.0.2.2).
func TestPlanFixes(t *testing.T) {
	r, _ := newTestResolver(t, newFakeRegistry(), &fakeKernel{}, nil)
	ip := func(n byte) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, n}) }
	vt := func(n byte) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, n}) }
	neigh := func(n byte) neighKey { return nkey(testVxlan, ip(n)) }
	for _, tc := range []struct {
		name       string
		neigh      map[neighKey]ethaddr.MAC
		fdb        map[ethaddr.MAC]netip.Addr
		src        mapSource
		want       []string
		upd, remov int
	}{
		{name: "in line",
			neigh: map[neighKey]ethaddr.MAC{neigh(3): macN(3)}, fdb: map[ethaddr.MAC]netip.Addr{macN(3): vt(3)},
			src: mapSource{macs: map[netip.Addr]ethaddr.MAC{ip(3): macN(3)}, vteps: map[ethaddr.MAC]netip.Addr{macN(3): vt(3)}}},
		{name: "record gone",
			neigh: map[neighKey]ethaddr.MAC{neigh(3): macN(3)}, fdb: map[ethaddr.MAC]netip.Addr{macN(3): vt(3)},
			want: []string{"del-fdb 02:42:c6:33:64:03 192.0.2.3", "del-neigh 198.51.100.3 02:42:c6:33:64:03"}, remov: 2},
		{name: "container now on this node",
			neigh: map[neighKey]ethaddr.MAC{neigh(3): macN(3)}, fdb: map[ethaddr.MAC]netip.Addr{macN(3): vt(3)},
			src:  mapSource{macs: map[netip.Addr]ethaddr.MAC{ip(3): macN(3)}, vteps: map[ethaddr.MAC]netip.Addr{macN(3): vt(2)}},
			want: []string{"del-fdb 02:42:c6:33:64:03 192.0.2.3", "del-neigh 198.51.100.3 02:42:c6:33:64:03"}, remov: 2},
		{name: "IPs moved to one new MAC: its FDB entry planned once",
			neigh: map[neighKey]ethaddr.MAC{neigh(3): macN(3), neigh(5): macN(5)},
			fdb:   map[ethaddr.MAC]netip.Addr{macN(3): vt(3), macN(4): vt(3)},
			src:   mapSource{macs: map[netip.Addr]ethaddr.MAC{ip(3): macN(4), ip(5): macN(4)}, vteps: map[ethaddr.MAC]netip.Addr{macN(4): vt(4)}},
			want: []string{"del-fdb 02:42:c6:33:64:03 192.0.2.3", "set-fdb 02:42:c6:33:64:04 192.0.2.4 (uncounted)",
				"set-neigh 198.51.100.3 02:42:c6:33:64:04", "set-neigh 198.51.100.5 02:42:c6:33:64:04"}, upd: 2, remov: 1},
		{name: "IP moved to a MAC without VTEP",
			neigh: map[neighKey]ethaddr.MAC{neigh(3): macN(3)},
			src:   mapSource{macs: map[netip.Addr]ethaddr.MAC{ip(3): macN(4)}},
			want:  []string{"del-neigh 198.51.100.3 02:42:c6:33:64:03"}, remov: 1},
		{name: "IP moved to a MAC on this node",
			neigh: map[neighKey]ethaddr.MAC{neigh(3): macN(3)},
			src:   mapSource{macs: map[netip.Addr]ethaddr.MAC{ip(3): macN(4)}, vteps: map[ethaddr.MAC]netip.Addr{macN(4): vt(2)}},
			want:  []string{"del-neigh 198.51.100.3 02:42:c6:33:64:03"}, remov: 1},
		{name: "unusable records keep their entries",
			neigh: map[neighKey]ethaddr.MAC{neigh(3): macN(3)}, fdb: map[ethaddr.MAC]netip.Addr{macN(3): vt(3)},
			src: mapSource{bad: map[any]bool{ip(3): true, macN(3): true}}},
		{name: "FDB entry's VTEP changed",
			fdb:  map[ethaddr.MAC]netip.Addr{macN(3): vt(3)},
			src:  mapSource{vteps: map[ethaddr.MAC]netip.Addr{macN(3): vt(4)}},
			want: []string{"set-fdb 02:42:c6:33:64:03 192.0.2.4"}, upd: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st ReconcileStats
			var got []string
			for _, op := range r.planFixes(kernelEntries{neigh: neighOf(tc.neigh), fdb: fdbOf(tc.fdb)}, tc.src, &st) {
				got = append(got, opString(op))
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) || st.Updated != tc.upd || st.Removed != tc.remov {
				t.Errorf("planned %q, %d updated, %d removed; want %q, %d, %d", got, st.Updated, st.Removed, tc.want, tc.upd, tc.remov)
			}
		})
	}
}

// TestSendFixes: fixes go in batches of the programmer's bulk size; one
// the source no longer agrees with is not sent and no longer counted.
func TestSendFixes(t *testing.T) {
	ops := func() []progOp {
		return []progOp{
			{kind: opSetNeigh, ifindex: testVxlan, ip: netip.MustParseAddr("198.51.100.3"), mac: macN(3), counted: true},
			{kind: opSetFDB, mac: macN(3), vtep: netip.MustParseAddr("192.0.2.3")},
			{kind: opDelFDB, mac: macN(4), vtep: netip.MustParseAddr("192.0.2.4"), counted: true},
		}
	}
	for _, tc := range []struct {
		name       string
		current    bool
		batches    []int
		upd, remov int
	}{
		{"current", true, []int{2, 1}, 1, 1},
		{"superseded", false, nil, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &fakeKernel{}
			r, _ := newTestResolver(t, newFakeRegistry(), k, nil)
			r.prog.bulkMax = 2
			st := ReconcileStats{Updated: 1, Removed: 1}
			if err := r.sendFixes(ops(), mapSource{ok: tc.current}, &st); err != nil {
				t.Fatal(err)
			}
			if got := k.sizes(); !slices.Equal(got, tc.batches) || st.Updated != tc.upd || st.Removed != tc.remov {
				t.Errorf("batches %v, %d updated, %d removed; want %v, %d, %d", got, st.Updated, st.Removed, tc.batches, tc.upd, tc.remov)
			}
		})
	}
}

var _ recordSource = mapSource{}

// TestReconcileReadsFDBTrackingInPlace: a pass that does not dump the FDB
// checks the tracked FDB entries against the view in place, not in a copy:
// the entry whose record moved to another VTEP is updated, the one whose
// record is gone removed, and the pass allocates less than half of what
// a copy of the tracking (20,000 entries) takes.
func TestReconcileReadsFDBTrackingInPlace(t *testing.T) {
	const n = 20_000
	k := &fakeKernel{}
	r, _ := newTestResolver(t, newFakeRegistry(), k, func(c *testConfig) { c.Feed, c.Mode = make(chanFeed), ModeHybrid })
	view, _ := r.feed.table(registry.Change{})
	vtepA, vtepB := netip.MustParseAddr("192.0.2.3"), netip.MustParseAddr("192.0.2.4")
	mac := func(i int) ethaddr.MAC { return ethaddr.MAC{0x02, 0x43, 10, 1, byte(i >> 8), byte(i)} }
	for i := range n {
		if i != n-1 { // the last one's record is gone
			view.PutRecord(registry.Record{IP: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), MAC: mac(i), VTEP: vtepA})
		}
		tracked := vtepA
		if i == 0 { // programmed before its record moved to vtepA
			tracked = vtepB
		}
		r.prog.fdb.set(mac(i), tracked)
	}
	r.feed.synced.Store(true)
	if v, ok := r.feed.viewedMAC(mac(1)); !ok || v != vtepA {
		t.Fatalf("the view holds %v %v for a record put in it", v, ok)
	}

	var m0, m1, m2 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	_ = r.prog.fdbCopy()
	runtime.ReadMemStats(&m1)
	copyBytes := m1.TotalAlloc - m0.TotalAlloc
	st, err := r.reconcile(t.Context(), false)
	runtime.ReadMemStats(&m2)
	if err != nil {
		t.Fatal(err)
	}
	if passBytes := m2.TotalAlloc - m1.TotalAlloc; passBytes >= copyBytes/2 {
		t.Errorf("the pass allocated %d bytes; a copy of the FDB tracking takes %d", passBytes, copyBytes)
	}
	if st.Entries != n || st.Updated != 1 || st.Removed != 1 {
		t.Errorf("pass: %d entries, %d updated, %d removed; want %d, 1, 1", st.Entries, st.Updated, st.Removed, n)
	}
	if v, ok := r.prog.trackedFDB(mac(0)); !ok || v != vtepA {
		t.Errorf("moved entry tracked at %v %v, want %v", v, ok, vtepA)
	}
	if _, ok := r.prog.trackedFDB(mac(n - 1)); ok {
		t.Errorf("the entry of a gone record is still tracked")
	}
	if got := k.sizes(); len(got) != 1 || got[0] != 2 {
		t.Errorf("batches %v, want one of 2 requests", got)
	}
}
