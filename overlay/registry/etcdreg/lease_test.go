package etcdreg

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/etcdreg/internal/etcdv3"
)

// waitFor polls cond every 50ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leaseExpiryMargin is how much later than its TTL a dead node's records
// may be deleted: etcd's lessor looks for expired leases every 500 ms, and
// the deletes then reach the watchers.
const leaseExpiryMargin = 1500 * time.Millisecond

// A node that dies (its registry closed without revoking, as kill -9 would)
// stops being advertised after the TTL (plus leaseExpiryMargin).
func TestLeaseExpiry(t *testing.T) {
	const ttl = 2 * time.Second
	s := startEtcd(t)
	ctx := ctxT(t, 20*time.Second)
	a, err := Open(ctx, s.URL("le", "ttl="+ttl.String()+"&node=192.0.2.2"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := s.open(t, "le", Options{NoLease: true})
	r1 := rec("198.51.100.2", "02:42:c6:33:64:02", "192.0.2.2")
	if err := a.Register(ctx, r1); err != nil {
		t.Fatal(err)
	}
	ch, err := b.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, ch, registry.ChangePut, r1)
	expect(t, ch, registry.ChangeSynced, registry.Record{})

	lease := etcdv3.LeaseID(a.Stats().LeaseID)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	closed := time.Now()
	// Close does not revoke: the records are still there right after.
	if _, err := b.LookupMAC(ctx, r1.IP); err != nil {
		t.Fatalf("record gone right after Close (revoked?): %v", err)
	}
	select {
	case c := <-ch:
		if c.Kind != registry.ChangeDelete || c.Record != r1 {
			t.Fatalf("change = %v %v, want the delete of %v", c.Kind, c.Record, r1)
		}
	case <-time.After(time.Until(closed.Add(ttl + leaseExpiryMargin))):
		t.Fatalf("records still there %v after the registry closed (TTL %v + margin %v)", time.Since(closed).Round(10*time.Millisecond), ttl, leaseExpiryMargin)
	}
	t.Logf("records deleted %v after the registry closed (TTL %v)", time.Since(closed).Round(10*time.Millisecond), ttl)
	if _, err := b.LookupMAC(ctx, r1.IP); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("LookupMAC after expiry: %v", err)
	}
	if _, err := b.LookupVTEP(ctx, r1.MAC); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("LookupVTEP after expiry: %v", err)
	}
	if nodes, err := b.Nodes(ctx); err != nil || len(nodes) != 0 {
		t.Errorf("Nodes after expiry: %v, %v", nodes, err)
	}
	if ttl, err := b.Client().TimeToLive(ctx, lease); err != nil || ttl.TTL != -1 {
		t.Errorf("lease after expiry: %+v, %v", ttl, err)
	}
}

// etcd goes away (killed) for longer than the TTL and comes back on the same
// data dir: requests fail quickly and clearly meanwhile, then the registry
// takes a new lease and registers its records again, and watchers go on.
func TestOutage(t *testing.T) {
	s := startEtcd(t)
	ctx := ctxT(t, 40*time.Second)
	vtep := netip.MustParseAddr("192.0.2.2")
	a := s.open(t, "out", Options{TTL: 2 * time.Second, Timeout: time.Second, NodeVTEP: vtep})
	b := s.open(t, "out", Options{NoLease: true, Timeout: time.Second})
	r1 := rec("198.51.100.2", "02:42:c6:33:64:02", "192.0.2.2")
	r2 := rec("198.51.100.3", "02:42:c6:33:64:03", "192.0.2.2")
	if err := a.Register(ctx, r1); err != nil {
		t.Fatal(err)
	}
	ch, err := b.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, ch, registry.ChangePut, r1)
	expect(t, ch, registry.ChangeSynced, registry.Record{})
	old := a.Stats().LeaseID

	s.Stop()

	// Requests fail within the registry's timeout, or the caller's
	// deadline if sooner, wrapping registry.ErrUnavailable.
	tests := []struct {
		name string
		ctx  time.Duration
		max  time.Duration
		call func(context.Context) error
	}{
		{"register", 10 * time.Second, 3 * time.Second, func(ctx context.Context) error { return a.Register(ctx, r2) }},
		{"lookup MAC", 10 * time.Second, 3 * time.Second, func(ctx context.Context) error { _, err := a.LookupMAC(ctx, r1.IP); return err }},
		{"lookup VTEP, short ctx", 300 * time.Millisecond, 2 * time.Second, func(ctx context.Context) error { _, err := b.LookupVTEP(ctx, r1.MAC); return err }},
		{"list", 10 * time.Second, 3 * time.Second, func(ctx context.Context) error { _, err := b.List(ctx); return err }},
	}
	for _, tt := range tests {
		cctx, cancel := context.WithTimeout(ctx, tt.ctx)
		start := time.Now()
		err := tt.call(cctx)
		took := time.Since(start)
		cancel()
		if !errors.Is(err, registry.ErrUnavailable) || took > tt.max {
			t.Errorf("%s during outage: %v after %v; want registry.ErrUnavailable within %v", tt.name, err, took, tt.max)
		}
		t.Logf("%s during outage: %v (%v)", tt.name, err, took.Round(time.Millisecond))
	}
	waitFor(t, 10*time.Second, "lease lost", func() bool { return !a.Stats().LeaseUp })

	s.Restart()

	waitFor(t, 15*time.Second, "new lease", func() bool {
		st := a.Stats()
		return st.LeaseUp && st.LeaseID != old
	})
	st := a.Stats()
	if st.LeaseLost != 1 || st.Reregistered != 1 {
		t.Errorf("stats after recovery: %+v, want 1 lease lost and 1 record registered again", st)
	}
	// Own records and the node key hang on the new lease; the old one is gone.
	for _, k := range []string{"arp/198.51.100.2", "fdb/02:42:c6:33:64:02", "nodes/192.0.2.2"} {
		if kv := getKV(t, b, b.Prefix()+k); len(kv.Kvs) != 1 || kv.Kvs[0].Lease != st.LeaseID {
			t.Errorf("%s after recovery: %+v, want it under lease %x", k, kv.Kvs, st.LeaseID)
		}
	}
	if ttl, err := b.Client().TimeToLive(ctx, etcdv3.LeaseID(old)); err != nil || ttl.TTL != -1 {
		t.Errorf("old lease after recovery: %+v, %v; want revoked", ttl, err)
	}
	// Registering works again, and the watcher sees it.
	if err := a.Register(ctx, r2); err != nil {
		t.Fatalf("register after recovery: %v", err)
	}
	for {
		c := next(t, ch)
		if c.Kind == registry.ChangePut && c.Record == r2 {
			break
		}
		// The old lease may expire just before the records move: r1
		// flaps, which the feed must show as delete then put.
		if c.Record != r1 {
			t.Fatalf("unexpected change after recovery: %v %v", c.Kind, c.Record)
		}
	}
	if mac, err := b.LookupMAC(ctx, r1.IP); err != nil || mac != r1.MAC {
		t.Errorf("r1 after recovery: %s, %v", mac, err)
	}
}

// The lease vanishes under a live registry (revoked by an operator, or
// expired by etcd during a long pause): the next Register gets a new lease
// and every own record is registered again.
func TestLeaseLostUnderneath(t *testing.T) {
	s := startEtcd(t)
	ctx := ctxT(t, 20*time.Second)
	a := s.open(t, "lu", Options{TTL: 30 * time.Second})
	r1 := rec("198.51.100.2", "02:42:c6:33:64:02", "192.0.2.2")
	r2 := rec("198.51.100.3", "02:42:c6:33:64:03", "192.0.2.2")
	if err := a.Register(ctx, r1); err != nil {
		t.Fatal(err)
	}
	old := a.Stats().LeaseID
	if _, err := a.Client().Revoke(ctx, etcdv3.LeaseID(old)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.LookupMAC(ctx, r1.IP); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("r1 after its lease was revoked: %v", err)
	}
	if err := a.Register(ctx, r2); err != nil {
		t.Fatalf("register once the lease is gone: %v", err)
	}
	st := a.Stats()
	if st.LeaseID == old || !st.LeaseUp || st.LeaseLost != 1 {
		t.Fatalf("stats: %+v (old lease %x)", st, old)
	}
	for _, r := range []registry.Record{r1, r2} {
		kv := getKV(t, a, a.Prefix()+"arp/"+r.IP.String())
		if len(kv.Kvs) != 1 || kv.Kvs[0].Lease != st.LeaseID {
			t.Errorf("%s: %+v, want it under the new lease %x", r.IP, kv.Kvs, st.LeaseID)
		}
	}
}

// A new lease registers again only the own records Keep returns, asking it
// once for all of them; the others are forgotten.
func TestLeaseLostKeep(t *testing.T) {
	s := startEtcd(t)
	ctx := ctxT(t, 20*time.Second)
	r1 := rec("198.51.100.2", "02:42:c6:33:64:02", "192.0.2.2")
	r2 := rec("198.51.100.3", "02:42:c6:33:64:03", "192.0.2.2")
	r3 := rec("198.51.100.4", "02:42:c6:33:64:04", "192.0.2.2")
	var mu sync.Mutex
	var calls [][]registry.Record
	keep := func(owned []registry.Record) []registry.Record {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, slices.Clone(owned))
		return slices.DeleteFunc(owned, func(r registry.Record) bool { return r == r2 })
	}
	a := s.open(t, "lk", Options{TTL: 30 * time.Second, Keep: keep})
	for _, r := range []registry.Record{r1, r2} {
		if err := a.Register(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	old := a.Stats().LeaseID
	if _, err := a.Client().Revoke(ctx, etcdv3.LeaseID(old)); err != nil {
		t.Fatal(err)
	}
	if err := a.Register(ctx, r3); err != nil {
		t.Fatalf("register once the lease is gone: %v", err)
	}
	st := a.Stats()
	if st.LeaseID == old || !st.LeaseUp || st.LeaseLost != 1 || st.Reregistered != 1 {
		t.Fatalf("stats: %+v (old lease %x), want 1 lease lost and 1 record registered again", st, old)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 || len(calls[0]) != 2 || !slices.Contains(calls[0], r1) || !slices.Contains(calls[0], r2) {
		t.Errorf("Keep called with %v, want once with r1 and r2", calls)
	}
	for _, r := range []registry.Record{r1, r3} {
		kv := getKV(t, a, a.Prefix()+"arp/"+r.IP.String())
		if len(kv.Kvs) != 1 || kv.Kvs[0].Lease != st.LeaseID {
			t.Errorf("%s: %+v, want it under the new lease %x", r.IP, kv.Kvs, st.LeaseID)
		}
	}
	if _, err := a.LookupMAC(ctx, r2.IP); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("r2, left out by Keep, after the new lease: %v; want ErrNotFound", err)
	}
}
