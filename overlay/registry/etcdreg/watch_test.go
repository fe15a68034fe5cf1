package etcdreg

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/etcdreg/internal/etcdv3"
)

// next returns the feed's next change, failing after 10s.
func next(t *testing.T, ch <-chan registry.Change) registry.Change {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("change feed closed")
		}
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no change within 10s")
	}
	panic("unreachable")
}

// expect checks the feed's next change.
func expect(t *testing.T, ch <-chan registry.Change, kind registry.ChangeKind, r registry.Record) registry.Change {
	t.Helper()
	c := next(t, ch)
	if c.Kind != kind || c.Record != r {
		t.Fatalf("change = %v %v (rev %d), want %v %v", c.Kind, c.Record, c.Revision, kind, r)
	}
	return c
}

func TestWatch(t *testing.T) {
	s := startEtcd(t)
	a := s.open(t, "w", Options{})
	b := s.open(t, "w", Options{NoLease: true})
	ctx := ctxT(t, 30*time.Second)
	r1 := rec("198.51.100.2", "02:42:c6:33:64:02", "192.0.2.2")
	r2 := rec("198.51.100.3", "02:42:c6:33:64:03", "192.0.2.2")
	moved := rec("198.51.100.3", "02:42:c6:33:64:33", "192.0.2.3")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Register(ctx, r1))

	wctx, stop := context.WithCancel(ctx)
	ch, err := b.Watch(wctx)
	must(err)
	expect(t, ch, registry.ChangePut, r1)
	synced := expect(t, ch, registry.ChangeSynced, registry.Record{})

	must(a.Register(ctx, r2))
	c := expect(t, ch, registry.ChangePut, r2)
	if c.Revision <= synced.Revision {
		t.Errorf("put at revision %d, not after the listing's %d", c.Revision, synced.Revision)
	}
	must(a.Register(ctx, r1)) // same values, same lease: no change
	must(a.Unregister(ctx, r1))
	expect(t, ch, registry.ChangeDelete, r1)

	// A container moves: detached on one node, attached on another.
	must(a.Unregister(ctx, r2))
	expect(t, ch, registry.ChangeDelete, r2)
	must(b.Register(ctx, moved))
	expect(t, ch, registry.ChangePut, moved)

	// Its MAC's VTEP changes under it (a raw write): delete, then put.
	kv := b.Client()
	_, err = kv.Put(ctx, b.Prefix()+"fdb/"+moved.MAC.String(), "192.0.2.4")
	must(err)
	expect(t, ch, registry.ChangeDelete, moved)
	moved4 := moved
	moved4.VTEP = netip.MustParseAddr("192.0.2.4")
	expect(t, ch, registry.ChangePut, moved4)

	// Two IPs share the MAC (a raw write): a VTEP change moves both.
	_, err = kv.Put(ctx, b.Prefix()+"arp/198.51.100.5", moved.MAC.String())
	must(err)
	alias := moved4
	alias.IP = netip.MustParseAddr("198.51.100.5")
	expect(t, ch, registry.ChangePut, alias)
	_, err = kv.Put(ctx, b.Prefix()+"fdb/"+moved.MAC.String(), "192.0.2.5")
	must(err)
	expect(t, ch, registry.ChangeDelete, moved4)
	moved4.VTEP = netip.MustParseAddr("192.0.2.5")
	expect(t, ch, registry.ChangePut, moved4)
	expect(t, ch, registry.ChangeDelete, alias)
	alias.VTEP = moved4.VTEP
	expect(t, ch, registry.ChangePut, alias)

	// Malformed values and keys are delivered as rejected, never as
	// records; foreign keys are not delivered at all.
	for _, p := range []struct {
		key, value string
		why        registry.Reason
	}{
		{"arp/198.51.100.9", "not-a-mac", registry.ReasonMalformed},
		{"arp/not-an-ip", "02:42:00:00:00:01", registry.ReasonMalformed},
		{"fdb/02:42:00:00:00:09", "not-an-ip", registry.ReasonMalformed},
		{"fdb/02:42:00:00:00:0a", strings.Repeat("9", 1000), registry.ReasonOversized},
		{"foreign/x", "y", 0},
	} {
		_, err = kv.Put(ctx, b.Prefix()+p.key, p.value)
		must(err)
		if p.why == 0 {
			continue
		}
		select {
		case c := <-ch:
			if c.Kind != registry.ChangeRejected || c.Rejected != (registry.Rejected{Key: p.key, Reason: p.why}) {
				t.Errorf("after putting %s: %v %+v, want it rejected (%s)", p.key, c.Kind, c.Rejected, p.why)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("nothing delivered after putting %s", p.key)
		}
	}
	r3 := rec("198.51.100.4", "02:42:c6:33:64:04", "192.0.2.2")
	must(a.Register(ctx, r3))
	expect(t, ch, registry.ChangePut, r3)

	stop()
	for range ch { // drains, then closes
	}
}

func TestChangeKindString(t *testing.T) {
	for k, want := range map[registry.ChangeKind]string{registry.ChangePut: "put", registry.ChangeDelete: "delete", registry.ChangeSynced: "synced", registry.ChangeRejected: "rejected", 9: "ChangeKind(9)"} {
		if k.String() != want {
			t.Errorf("%d: %q, want %q", k, k.String(), want)
		}
	}
}

// The watch starts from a revision that has been compacted meanwhile: the
// feed lists again and delivers the difference.
func TestWatchRelistAfterCompaction(t *testing.T) {
	s := startEtcd(t)
	a := s.open(t, "wc", Options{})
	b := s.open(t, "wc", Options{NoLease: true})
	ctx := ctxT(t, 30*time.Second)
	r1 := rec("198.51.100.2", "02:42:c6:33:64:02", "192.0.2.2")
	r2 := rec("198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3")
	r3 := rec("198.51.100.4", "02:42:c6:33:64:04", "192.0.2.4")
	if err := a.Register(ctx, r1); err != nil {
		t.Fatal(err)
	}
	if err := a.Register(ctx, r2); err != nil {
		t.Fatal(err)
	}

	// Between the listing and the watch: changes, then a compaction past
	// the listing's revision.
	calls := 0
	b.listedHook = func() {
		calls++
		if calls > 1 {
			return
		}
		if err := a.Register(ctx, r3); err != nil {
			t.Error(err)
		}
		if err := a.Unregister(ctx, r1); err != nil {
			t.Error(err)
		}
		resp, err := a.Client().Get(ctx, "any")
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := a.Client().Compact(ctx, resp.Header.Revision); err != nil {
			t.Error(err)
		}
	}

	ch, err := b.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, ch, registry.ChangePut, r1)
	expect(t, ch, registry.ChangePut, r2)
	first := expect(t, ch, registry.ChangeSynced, registry.Record{})
	expect(t, ch, registry.ChangeDelete, r1)
	expect(t, ch, registry.ChangePut, r3)
	second := expect(t, ch, registry.ChangeSynced, registry.Record{})
	if second.Revision <= first.Revision {
		t.Errorf("re-listing at revision %d, not after %d", second.Revision, first.Revision)
	}
	if st := b.Stats(); st.WatchRelists != 1 {
		t.Errorf("WatchRelists = %d, want 1", st.WatchRelists)
	}
	// And the feed goes on from the new listing.
	if err := a.Unregister(ctx, r2); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, registry.ChangeDelete, r2)
}

// TestWatchDualStack: a dual-stack container on an IPv6 underlay is two
// records of one MAC, registered one after the other under the node's
// lease: the feed delivers each, listed or watched; unregistering both
// deletes both, and the lease's records are both.
func TestWatchDualStack(t *testing.T) {
	s := startEtcd(t)
	a := s.open(t, "d", Options{})
	b := s.open(t, "d", Options{NoLease: true})
	ctx := ctxT(t, 30*time.Second)
	v4 := rec("198.51.100.2", "02:42:c6:33:64:02", "2001:db8::2")
	v6 := rec("2001:db8:42::2", "02:42:c6:33:64:02", "2001:db8::2")
	w4 := rec("198.51.100.3", "02:42:c6:33:64:03", "2001:db8::3")
	w6 := rec("2001:db8:42::3", "02:42:c6:33:64:03", "2001:db8::3")
	for _, r := range []registry.Record{v4, v6} {
		if err := a.Register(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	ch, err := b.Watch(wctx)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, ch, registry.ChangePut, v4)
	expect(t, ch, registry.ChangePut, v6)
	expect(t, ch, registry.ChangeSynced, registry.Record{})
	for _, r := range []registry.Record{w4, w6} {
		if err := a.Register(ctx, r); err != nil {
			t.Fatal(err)
		}
		expect(t, ch, registry.ChangePut, r)
	}
	if owned := a.Owned(); len(owned) != 4 {
		t.Errorf("the lease holds %v, want the four records", owned)
	}
	for _, r := range []registry.Record{w4, w6} {
		if err := a.Unregister(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, ch, registry.ChangeDelete, w4)
	expect(t, ch, registry.ChangeDelete, w6)
	if mac, err := b.LookupMAC(ctx, v6.IP); err != nil || mac != v6.MAC {
		t.Errorf("LookupMAC(%s) = %s, %v", v6.IP, mac, err)
	}
}

// putStreamRecords writes n records (IPs 10.9.0.0 + i) with raw puts, 32
// to a transaction, and returns them by IP.
func putStreamRecords(t *testing.T, r *Registry, n int) map[netip.Addr]registry.Record {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	recs := make(map[netip.Addr]registry.Record, n)
	var ops []etcdv3.Op
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)})
		b := a.As4()
		rc := registry.Record{IP: a, MAC: ethaddr.MAC{0x02, 0x43, b[0], b[1], b[2], b[3]}, VTEP: netip.MustParseAddr("192.0.2.7")}
		recs[a] = rc
		ops = append(ops, etcdv3.OpPut(r.Prefix()+"arp/"+a.String(), rc.MAC.String()), etcdv3.OpPut(r.Prefix()+"fdb/"+rc.MAC.String(), rc.VTEP.String()))
		if len(ops) == 64 || i == n-1 {
			if _, err := r.Client().Txn(ctx).Then(ops...).Commit(); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	return recs
}

// drainListing reads a listing's changes up to its ChangeSynced and checks
// they are a Put of every record of want, each once, and nothing else.
func drainListing(t *testing.T, ch <-chan registry.Change, want map[netip.Addr]registry.Record) {
	t.Helper()
	got := make(map[netip.Addr]registry.Record)
	for {
		c := next(t, ch)
		if c.Kind == registry.ChangeSynced {
			break
		}
		if c.Kind != registry.ChangePut {
			t.Fatalf("listing delivered %v %v", c.Kind, c.Record)
		}
		if _, dup := got[c.Record.IP]; dup {
			t.Fatalf("listing delivered %v twice", c.Record)
		}
		got[c.Record.IP] = c.Record
	}
	if len(got) != len(want) {
		t.Fatalf("listing delivered %d records, want %d", len(got), len(want))
	}
	for ip, rc := range want {
		if got[ip] != rc {
			t.Fatalf("listing delivered %v for %v, want %v", got[ip], ip, rc)
		}
	}
}

// TestWatchStreamsListing: the first listing's records are delivered while
// its arp/ keys are still being read (the consumer programs them while
// etcd serves the next page): when the first record arrives, at most 4 of
// its 8 pages have been asked for (one in the feed's buffer, one being
// delivered, one waiting, one being read); every record then arrives once.
func TestWatchStreamsListing(t *testing.T) {
	s := startEtcd(t)
	b := s.open(t, "w", Options{NoLease: true})
	const perPage, pages = 64, 8
	want := putStreamRecords(t, b, perPage*pages-10)
	b.pageKeys = perPage
	var asked atomic.Int32
	b.pageHook = func(page int) error {
		asked.Store(int32(page))
		return nil
	}
	ch, err := b.Watch(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	first := next(t, ch)
	time.Sleep(200 * time.Millisecond) // let the reader run ahead as far as it may
	if n := asked.Load(); n > 4 {
		t.Errorf("%d of %d pages asked for before the first record was taken", n, pages)
	}
	delete(want, first.Record.IP)
	drainListing(t, ch, want)
	if n := asked.Load(); n != pages {
		t.Errorf("%d pages asked for, want %d", n, pages)
	}
}

// TestWatchStreamedListingBroken: a streamed listing whose third page
// cannot be read is completed by a listing again: every record is
// delivered once, no Delete, then ChangeSynced, and the watch follows.
func TestWatchStreamedListingBroken(t *testing.T) {
	s := startEtcd(t)
	a := s.open(t, "w", Options{})
	b := s.open(t, "w", Options{NoLease: true})
	const perPage = 64
	want := putStreamRecords(t, b, 5*perPage)
	b.pageKeys = perPage
	var failed atomic.Bool
	b.pageHook = func(page int) error {
		if page == 3 && !failed.Swap(true) {
			return errors.New("injected: page 3 unreadable")
		}
		return nil
	}
	ctx := ctxT(t, 30*time.Second)
	ch, err := b.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	drainListing(t, ch, want)
	if !failed.Load() {
		t.Fatal("page 3 was never asked for")
	}
	if n := b.relists.Load(); n != 1 {
		t.Errorf("%d listings again, want 1", n)
	}
	r := rec("198.51.100.2", "02:42:c6:33:64:02", "192.0.2.2")
	if err := a.Register(ctx, r); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, registry.ChangePut, r)
}
