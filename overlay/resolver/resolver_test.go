package resolver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
)

// fakeClock is a manually advanced clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_000_000, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestMissTable(t *testing.T) {
	clk := newFakeClock()
	tab := newMissTable(3*time.Second, 4, 8, clk.now)
	a := missKey{kind: rtnl.MissL3, ifindex: 5, ip: netip.MustParseAddr("198.51.100.3")}
	b := missKey{kind: rtnl.MissL2, mac: ethaddr.MAC{2, 0x42, 0, 0, 0, 3}}

	steps := []struct {
		name string
		do   func() admitResult
		want admitResult
	}{
		{"first miss looks up", func() admitResult { return tab.admit(a) }, admitLookup},
		{"duplicate while in flight coalesces", func() admitResult { return tab.admit(a) }, admitCoalesced},
		{"other key looks up", func() admitResult { return tab.admit(b) }, admitLookup},
		{"unknown key is cached", func() admitResult { tab.done(a, true); return tab.admit(a) }, admitNegative},
		{"known key is not cached", func() admitResult { tab.done(b, false); return tab.admit(b) }, admitLookup},
		{"still cached before TTL", func() admitResult { clk.advance(2999 * time.Millisecond); return tab.admit(a) }, admitNegative},
		{"expired after TTL", func() admitResult { clk.advance(time.Millisecond); return tab.admit(a) }, admitLookup},
	}
	for _, s := range steps {
		if got := s.do(); got != s.want {
			t.Fatalf("%s: admit = %d, want %d", s.name, got, s.want)
		}
	}
	// The negative cache stays bounded under a scan.
	for i := range 100 {
		k := missKey{kind: rtnl.MissL3, ip: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})}
		if tab.admit(k) == admitLookup {
			tab.done(k, true)
		}
	}
	if _, neg := tab.sizes(); neg > 4 {
		t.Errorf("negative cache holds %d keys, max 4", neg)
	}
	tab.forgetAll()
	if _, neg := tab.sizes(); neg != 0 {
		t.Errorf("after forgetAll: %d keys", neg)
	}
}

func TestTokenBucket(t *testing.T) {
	clk := newFakeClock()
	b := newTokenBucket(10, 3, clk.now) // 10/s, burst 3
	for i := range 3 {
		if !b.take() {
			t.Fatalf("token %d of the burst refused", i)
		}
	}
	if b.take() {
		t.Fatal("4th token granted with the burst spent")
	}
	clk.advance(99 * time.Millisecond)
	if b.take() {
		t.Fatal("token granted before 100ms at 10/s")
	}
	clk.advance(time.Millisecond)
	if !b.take() {
		t.Fatal("no token after 100ms at 10/s")
	}
	clk.advance(time.Hour) // refills to the burst, not beyond
	for i := range 3 {
		if !b.take() {
			t.Fatalf("after refill, token %d refused", i)
		}
	}
	if b.take() {
		t.Fatal("burst exceeded after refill")
	}
	unl := newTokenBucket(-1, 1, clk.now)
	for range 1000 {
		if !unl.take() {
			t.Fatal("unlimited bucket refused a token")
		}
	}
}

// fakeRegistry is an in-memory Registry that counts lookups and can hold
// them until released.
type fakeRegistry struct {
	mu      sync.Mutex
	macs    map[netip.Addr]ethaddr.MAC
	vteps   map[ethaddr.MAC]netip.Addr
	errs    map[string]error // "ip:..." / "mac:..." → error
	gate    chan struct{}    // if non-nil, lookups wait for it to close
	lookups atomic.Int64
	lists   atomic.Int64 // List calls
}

func newFakeRegistry() *fakeRegistry {
	return &fakeRegistry{macs: map[netip.Addr]ethaddr.MAC{}, vteps: map[ethaddr.MAC]netip.Addr{}, errs: map[string]error{}}
}

func (f *fakeRegistry) add(ip string, mac ethaddr.MAC, vtep string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.macs[netip.MustParseAddr(ip)] = mac
	if vtep != "" {
		f.vteps[mac] = netip.MustParseAddr(vtep)
	}
}

func (f *fakeRegistry) wait(ctx context.Context) error {
	f.mu.Lock()
	g := f.gate
	f.mu.Unlock()
	if g == nil {
		return nil
	}
	select {
	case <-g:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeRegistry) LookupMAC(ctx context.Context, ip netip.Addr) (ethaddr.MAC, error) {
	f.lookups.Add(1)
	if err := f.wait(ctx); err != nil {
		return ethaddr.MAC{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["ip:"+ip.String()]; err != nil {
		return ethaddr.MAC{}, err
	}
	m, ok := f.macs[ip]
	if !ok {
		return m, fmt.Errorf("%w: %s", registry.ErrNotFound, ip)
	}
	return m, nil
}

func (f *fakeRegistry) LookupVTEP(ctx context.Context, mac ethaddr.MAC) (netip.Addr, error) {
	f.lookups.Add(1)
	if err := f.wait(ctx); err != nil {
		return netip.Addr{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["mac:"+mac.String()]; err != nil {
		return netip.Addr{}, err
	}
	v, ok := f.vteps[mac]
	if !ok {
		return v, fmt.Errorf("%w: %s", registry.ErrNotFound, mac)
	}
	return v, nil
}

func (f *fakeRegistry) Register(context.Context, registry.Record) error {
	return errors.New("not supported")
}
func (f *fakeRegistry) Unregister(context.Context, registry.Record) error {
	return errors.New("not supported")
}
func (f *fakeRegistry) Close() error { return nil }

func (f *fakeRegistry) List(context.Context) ([]registry.Record, error) {
	f.lists.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []registry.Record
	for ip, mac := range f.macs {
		out = append(out, registry.Record{IP: ip, MAC: mac, VTEP: f.vteps[mac]})
	}
	return out, nil
}

// fakeKernel records batch sizes; it has no entries to dump.
type fakeKernel struct {
	mu      sync.Mutex
	batches []int
	fail    map[int]error // request index in a batch → error
}

func (k *fakeKernel) ExecuteBatch(b *rtnl.Batch) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.batches = append(k.batches, b.Len())
	if len(k.fail) > 0 {
		be := &rtnl.BatchError{Total: b.Len()}
		for i, err := range k.fail {
			if i < b.Len() {
				be.Failures = append(be.Failures, rtnl.BatchFailure{Index: i, Err: err})
			}
		}
		return be
	}
	return nil
}

func (k *fakeKernel) NeighDump(rtnl.NeighFilter, func(*rtnl.NeighMessage) error) error { return nil }

func (k *fakeKernel) sizes() []int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]int(nil), k.batches...)
}

const testVxlan = 7

func newTestResolver(t *testing.T, reg registry.Registry, k neighKernel, mod func(*testConfig)) (*Resolver, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	cfg := testConfig{
		Config: Config{
			Registry: reg, Vxlan: testVxlan, Bridge: 3, VNI: 42, Port: 4789,
			Subnet:    netip.MustParsePrefix("198.51.100.0/24"),
			LocalVTEP: netip.MustParseAddr("192.0.2.2"),
			Logger:    newTestLogger(logs),
			Tuning:    Tuning{ReconcileInterval: -1},
		},
		seams: seams{
			kernel: k,
			// HandleMiss must not block on the tests' gated registries: the
			// inline path has its own test (TestResolverIsolatedMissInline).
			noInline: true,
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := newTest(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, logs
}

func newTestLogger(w *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// logBuffer is a log destination safe for concurrent writes and reads.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func runResolver(t *testing.T, r *Resolver) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	// The first reconcile pass (adoption) clears the negative cache: let
	// it pass before the test starts.
	eventually(t, "the first reconcile pass", func() bool { return r.Metrics().Snapshot().Reconciles >= 1 })
}

func l3(ip string) *rtnl.Miss {
	return &rtnl.Miss{Kind: rtnl.MissL3, Ifindex: testVxlan, IP: netip.MustParseAddr(ip), State: rtnl.NeighStale}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func macN(n byte) ethaddr.MAC { return ethaddr.MAC{0x02, 0x42, 198, 51, 100, n} }

func TestResolverCoalescesDuplicateMisses(t *testing.T) {
	reg := newFakeRegistry()
	reg.add("198.51.100.3", macN(3), "192.0.2.3")
	reg.gate = make(chan struct{})
	k := &fakeKernel{}
	r, logs := newTestResolver(t, reg, k, nil)
	runResolver(t, r)

	for range 100 {
		r.HandleMiss(l3("198.51.100.3"))
	}
	eventually(t, "the first lookup to start", func() bool { return reg.lookups.Load() >= 1 })
	close(reg.gate)
	eventually(t, "the resolution", func() bool { return r.Metrics().Snapshot().Resolutions["l3miss"] == 1 })

	s := r.Metrics().Snapshot()
	if got := reg.lookups.Load(); got != 2 { // one LookupMAC + one LookupVTEP
		t.Errorf("registry lookups = %d, want 2", got)
	}
	if s.Coalesced != 99 || s.Misses["l3miss"] != 100 {
		t.Errorf("coalesced = %d, misses = %d; want 99, 100", s.Coalesced, s.Misses["l3miss"])
	}
	// Neighbour and FDB entries went to the kernel in the same batch.
	if b := k.sizes(); len(b) != 1 || b[0] != 2 {
		t.Errorf("batches = %v, want one batch of 2 requests", b)
	}
	want := map[string]ProgrammedEntry{
		"neigh": {Table: "neigh", Ifindex: testVxlan, IP: netip.MustParseAddr("198.51.100.3"), MAC: macN(3)},
		"fdb":   {Table: "fdb", Ifindex: testVxlan, MAC: macN(3), VTEP: netip.MustParseAddr("192.0.2.3")},
	}
	ents := r.Entries()
	if len(ents) != 2 {
		t.Fatalf("entries = %v", ents)
	}
	for _, e := range ents {
		if e != want[e.Table] {
			t.Errorf("entry %+v, want %+v", e, want[e.Table])
		}
	}
	eventually(t, "the resolution log line", func() bool { return strings.Contains(logs.String(), "msg=resolved") })
	if n := strings.Count(logs.String(), "level=DEBUG msg=resolved"); n != 1 {
		t.Errorf("%d debug resolution lines, want 1:\n%s", n, logs)
	}
	// Once resolved, a new miss for the key (the entry was deleted) is
	// looked up again: only lookups in flight are coalesced.
	r.HandleMiss(l3("198.51.100.3"))
	eventually(t, "the second resolution", func() bool { return r.Metrics().Snapshot().Resolutions["l3miss"] == 2 })
}

func TestResolverNegativeCache(t *testing.T) {
	clk := newFakeClock()
	reg := newFakeRegistry()
	k := &fakeKernel{}
	r, _ := newTestResolver(t, reg, k, func(c *testConfig) { c.now = clk.now; c.NegativeTTL = 3 * time.Second })
	runResolver(t, r)

	r.HandleMiss(l3("198.51.100.9"))
	eventually(t, "the lookup to finish", func() bool {
		in, neg := r.table.sizes()
		return in == 0 && neg == 1
	})
	for range 50 {
		r.HandleMiss(l3("198.51.100.9"))
	}
	s := r.Metrics().Snapshot()
	if s.NegativeHits != 50 || reg.lookups.Load() != 1 || s.Unresolved["not_found"] != 1 {
		t.Errorf("negative hits %d, lookups %d, not_found %d; want 50, 1, 1", s.NegativeHits, reg.lookups.Load(), s.Unresolved["not_found"])
	}
	// The container appears; after the TTL its next miss resolves.
	reg.add("198.51.100.9", macN(9), "192.0.2.4")
	r.HandleMiss(l3("198.51.100.9"))
	if r.Metrics().Snapshot().NegativeHits != 51 {
		t.Error("miss within the TTL was looked up")
	}
	clk.advance(3 * time.Second)
	r.HandleMiss(l3("198.51.100.9"))
	eventually(t, "the resolution after the TTL", func() bool { return r.Metrics().Snapshot().Resolutions["l3miss"] == 1 })
	if len(k.sizes()) != 1 {
		t.Errorf("batches = %v", k.sizes())
	}
}

func TestResolverBatchesBursts(t *testing.T) {
	reg := newFakeRegistry()
	const n = 200
	for i := range n {
		reg.add(fmt.Sprintf("198.51.100.%d", i+2), ethaddr.MAC{2, 0x42, 0, 0, 1, byte(i)}, "192.0.2.3")
	}
	k := &fakeKernel{}
	r, _ := newTestResolver(t, reg, k, func(c *testConfig) {
		c.BatchWindow = 200 * time.Millisecond
		c.BatchMax = 100000
		c.LookupRate = -1
	})
	runResolver(t, r)
	for i := range n {
		r.HandleMiss(l3(fmt.Sprintf("198.51.100.%d", i+2)))
	}
	eventually(t, "all resolutions", func() bool { return r.Metrics().Snapshot().Resolutions["l3miss"] == n })
	sizes := k.sizes()
	total := 0
	for _, s := range sizes {
		total += s
	}
	if total != 2*n {
		t.Errorf("requests sent = %d, want %d", total, 2*n)
	}
	if len(sizes) > 4 {
		t.Errorf("%d batches for a burst of %d misses (sizes %v): not batched", len(sizes), n, sizes)
	}

	// BatchMax cuts batches.
	reg2 := newFakeRegistry()
	for i := range 40 {
		reg2.add(fmt.Sprintf("198.51.100.%d", i+2), ethaddr.MAC{2, 0x42, 0, 0, 2, byte(i)}, "192.0.2.3")
	}
	k2 := &fakeKernel{}
	r2, _ := newTestResolver(t, reg2, k2, func(c *testConfig) {
		c.BatchWindow = time.Hour
		c.BatchMax = 10
		c.LookupRate = -1
	})
	runResolver(t, r2)
	for i := range 40 {
		r2.HandleMiss(l3(fmt.Sprintf("198.51.100.%d", i+2)))
	}
	eventually(t, "batches cut at BatchMax", func() bool { return r2.Metrics().Snapshot().Resolutions["l3miss"] == 40 })
	for _, s := range k2.sizes() {
		if s > 10 {
			t.Errorf("batch of %d requests, BatchMax 10", s)
		}
	}
}

func TestResolverScanBudget(t *testing.T) {
	reg := newFakeRegistry()
	for i := range 40 {
		reg.add(fmt.Sprintf("198.51.100.%d", i+2), macN(byte(i+2)), "192.0.2.3")
	}
	clk := newFakeClock()
	r, _ := newTestResolver(t, reg, &fakeKernel{}, func(c *testConfig) {
		c.LookupRate = 20
		c.LookupBurst = 2
		c.now = clk.now
	})
	runResolver(t, r) // its first pass lists the 40 records
	// A scan of 60 addresses nobody registered, interleaved with misses
	// for the 40 registered ones: the scan gets the burst (2 lookups) and
	// nothing more while the clock stands still; every registered one is
	// resolved, none waits.
	for i := range 60 {
		r.HandleMiss(l3(fmt.Sprintf("198.51.100.%d", i+150)))
		if i < 40 {
			r.HandleMiss(l3(fmt.Sprintf("198.51.100.%d", i+2)))
		}
	}
	// Counted once every lookup has ended: a scan miss's lookup may still
	// run on a worker when the last registered one is resolved.
	eventually(t, "the registered misses and every lookup", func() bool {
		in, _ := r.table.sizes()
		return in == 0 && r.Metrics().Snapshot().Resolutions["l3miss"] == 40
	})
	s := r.Metrics().Snapshot()
	if s.Unresolved["not_found"] != 2 || s.Dropped["scan_budget"] != 58 {
		t.Errorf("scan: %d looked up (not found), %d dropped; want 2 (the burst) and 58", s.Unresolved["not_found"], s.Dropped["scan_budget"])
	}
	// The budget refills at the rate: 100 ms at 20/s is 2 more lookups.
	clk.advance(100 * time.Millisecond)
	for i := range 10 {
		r.HandleMiss(l3(fmt.Sprintf("198.51.100.%d", i+220)))
	}
	eventually(t, "the refilled budget's lookups", func() bool {
		in, _ := r.table.sizes()
		return in == 0 && r.Metrics().Snapshot().Unresolved["not_found"] >= 4
	})
	if s := r.Metrics().Snapshot(); s.Unresolved["not_found"] != 4 || s.Dropped["scan_budget"] != 66 {
		t.Errorf("after the refill: %d looked up (not found), %d dropped; want 4 and 66", s.Unresolved["not_found"], s.Dropped["scan_budget"])
	}
	// A record registered after the listing is resolved within the budget
	// and known from then on.
	reg.add("198.51.100.99", macN(99), "192.0.2.3")
	clk.advance(time.Second)
	r.HandleMiss(l3("198.51.100.99"))
	eventually(t, "the new record", func() bool { return r.Metrics().Snapshot().Resolutions["l3miss"] == 41 })
	if !r.known.has(missKey{kind: rtnl.MissL3, ifindex: testVxlan, ip: netip.MustParseAddr("198.51.100.99")}) {
		t.Error("a record found by a lookup is not known afterwards")
	}
}

// TestResolverIsolatedMissInline: an isolated miss is resolved on the
// caller's goroutine (its entries are programmed when HandleMiss returns);
// the misses of a burst right after it go to the workers.
func TestResolverIsolatedMissInline(t *testing.T) {
	reg := newFakeRegistry()
	for i := range 20 {
		reg.add(fmt.Sprintf("198.51.100.%d", i+2), macN(byte(i+2)), "192.0.2.3")
	}
	k := &fakeKernel{}
	r, _ := newTestResolver(t, reg, k, func(c *testConfig) { c.noInline = false })
	runResolver(t, r)
	time.Sleep(2 * isolatedGap)
	r.HandleMiss(l3("198.51.100.2"))
	if s := r.Metrics().Snapshot(); s.Resolutions["l3miss"] != 1 || len(k.sizes()) != 1 {
		t.Fatalf("after an isolated HandleMiss: %d resolutions, %d batches; want 1, 1 (resolved inline)", s.Resolutions["l3miss"], len(k.sizes()))
	}
	// Misses right after it are a burst: queued for the workers, so
	// HandleMiss returns at once even while the registry hangs.
	reg.mu.Lock()
	reg.gate = make(chan struct{})
	reg.mu.Unlock()
	done := make(chan struct{})
	go func() {
		// As if a miss had just been handled (this goroutine may start
		// late on a loaded machine).
		r.lastMiss.Store(time.Now().UnixNano())
		for i := range 10 {
			r.HandleMiss(l3(fmt.Sprintf("198.51.100.%d", i+3)))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("HandleMiss blocked on the registry during a burst: resolved inline, not by the workers")
	}
	reg.mu.Lock()
	close(reg.gate)
	reg.gate = nil
	reg.mu.Unlock()
	eventually(t, "the burst's resolutions", func() bool { return r.Metrics().Snapshot().Resolutions["l3miss"] == 11 })
}

func TestResolverBackpressure(t *testing.T) {
	reg := newFakeRegistry()
	const n = 300
	for i := range n {
		reg.add(fmt.Sprintf("198.51.%d.%d", 100+i/250, i%250+1), ethaddr.MAC{2, 0x42, 0, 0, byte(i >> 8), byte(i)}, "192.0.2.3")
	}
	r, _ := newTestResolver(t, reg, &fakeKernel{}, func(c *testConfig) {
		c.QueueLen = 8
		c.Workers = 2
		c.Subnet = netip.MustParsePrefix("198.51.100.0/23")
	})
	runResolver(t, r)
	reg.mu.Lock()
	reg.gate = make(chan struct{}) // the registry hangs
	reg.mu.Unlock()
	handled := atomic.Int64{}
	go func() {
		for i := range n {
			r.HandleMiss(l3(fmt.Sprintf("198.51.%d.%d", 100+i/250, i%250+1)))
			handled.Add(1)
		}
	}()
	// The queue (8) and the workers (2) fill up (or the first, isolated
	// miss is being resolved on the caller's goroutine), then HandleMiss
	// waits.
	time.Sleep(100 * time.Millisecond)
	if h := handled.Load(); h > 11 {
		t.Fatalf("HandleMiss took %d misses with a queue of 8, 2 workers and the registry hung: no backpressure", h)
	}
	reg.mu.Lock()
	close(reg.gate)
	reg.gate = nil
	reg.mu.Unlock()
	eventually(t, "every miss resolved", func() bool { return r.Metrics().Snapshot().Resolutions["l3miss"] == n })
	s := r.Metrics().Snapshot()
	for why, d := range s.Dropped {
		if d != 0 {
			t.Errorf("%d misses dropped (%s)", d, why)
		}
	}
}

func TestResolverFilters(t *testing.T) {
	mac := ethaddr.MAC{2, 0x42, 1, 2, 3, 4}
	cases := []struct {
		name   string
		miss   rtnl.Miss
		reason string // "" = accepted
	}{
		{"l3 in subnet", rtnl.Miss{Kind: rtnl.MissL3, Ifindex: testVxlan, IP: netip.MustParseAddr("198.51.100.3")}, ""},
		{"l3 v4-mapped in subnet", rtnl.Miss{Kind: rtnl.MissL3, Ifindex: testVxlan, IP: netip.MustParseAddr("::ffff:198.51.100.3")}, ""},
		{"l3 other device", rtnl.Miss{Kind: rtnl.MissL3, Ifindex: 99, IP: netip.MustParseAddr("198.51.100.3")}, "other_device"},
		{"l3 outside subnet", rtnl.Miss{Kind: rtnl.MissL3, Ifindex: testVxlan, IP: netip.MustParseAddr("203.0.113.3")}, "outside_subnet"},
		{"ipv6 link-local", rtnl.Miss{Kind: rtnl.MissL3, Ifindex: testVxlan, IP: netip.MustParseAddr("fe80::1")}, "link_local"},
		{"ipv4 link-local", rtnl.Miss{Kind: rtnl.MissL3, Ifindex: testVxlan, IP: netip.MustParseAddr("169.254.1.1")}, "link_local"},
		{"ipv6 DAD", rtnl.Miss{Kind: rtnl.MissL3, Ifindex: testVxlan, IP: netip.MustParseAddr("::")}, "noise"},
		{"ipv6 multicast", rtnl.Miss{Kind: rtnl.MissL3, Ifindex: testVxlan, IP: netip.MustParseAddr("ff02::1:ff00:1")}, "multicast"},
		{"ipv4 multicast", rtnl.Miss{Kind: rtnl.MissL3, Ifindex: testVxlan, IP: netip.MustParseAddr("224.0.0.251")}, "multicast"},
		{"ipv6 in prefix", rtnl.Miss{Kind: rtnl.MissL3, Ifindex: testVxlan, IP: netip.MustParseAddr("2001:db8:42::5")}, ""},
		{"ipv6 app_solicit in prefix", rtnl.Miss{Kind: rtnl.MissAppSolicit, Ifindex: 3, IP: netip.MustParseAddr("2001:db8:42::5")}, ""},
		{"ipv6 global", rtnl.Miss{Kind: rtnl.MissL3, Ifindex: testVxlan, IP: netip.MustParseAddr("2001:db8::1")}, "outside_subnet"},
		{"l2 unicast", rtnl.Miss{Kind: rtnl.MissL2, Ifindex: testVxlan, MAC: mac, HasMAC: true}, ""},
		{"l2 right vni", rtnl.Miss{Kind: rtnl.MissL2, Ifindex: testVxlan, MAC: mac, HasMAC: true, VNI: 42, HasVNI: true}, ""},
		{"l2 vni 0 (as the kernel sends it)", rtnl.Miss{Kind: rtnl.MissL2, Ifindex: testVxlan, MAC: mac, HasMAC: true, VNI: 0, HasVNI: true}, ""},
		{"l2 multicast", rtnl.Miss{Kind: rtnl.MissL2, Ifindex: testVxlan, MAC: ethaddr.MAC{0x33, 0x33, 0, 0, 0, 1}, HasMAC: true}, "multicast"},
		{"l2 other device", rtnl.Miss{Kind: rtnl.MissL2, Ifindex: 1, MAC: mac, HasMAC: true}, "other_device"},
		{"app_solicit on bridge", rtnl.Miss{Kind: rtnl.MissAppSolicit, Ifindex: 3, IP: netip.MustParseAddr("198.51.100.3")}, ""},
		{"app_solicit elsewhere", rtnl.Miss{Kind: rtnl.MissAppSolicit, Ifindex: 4, IP: netip.MustParseAddr("198.51.100.3")}, "other_device"},
	}
	r, _ := newTestResolver(t, newFakeRegistry(), &fakeKernel{}, func(c *testConfig) { c.Subnet6 = netip.MustParsePrefix("2001:db8:42::/64") })
	v4only, _ := newTestResolver(t, newFakeRegistry(), &fakeKernel{}, nil)
	if _, why, ok := v4only.classify(&rtnl.Miss{Kind: rtnl.MissL3, Ifindex: testVxlan, IP: netip.MustParseAddr("2001:db8:42::5")}); ok || why != ignoreOutsideSubnet {
		t.Errorf("IPv4-only resolver accepts an IPv6 miss (%v)", why)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, why, ok := r.classify(&c.miss)
			got := ""
			if !ok {
				got = ignoreReasonNames[why]
			}
			if got != c.reason {
				t.Errorf("classify = %q, want %q", got, c.reason)
			}
		})
	}
}

// TestResolverSkipsBadRecords: misses for the hostile records a member
// node can write program nothing; each is counted by the checker under its
// reason and logged with its key; an unreadable store is a registry error,
// and the honest record is programmed.
func TestResolverSkipsBadRecords(t *testing.T) {
	reg := newFakeRegistry()
	hostile := []struct {
		ip, vtep string
		mac      ethaddr.MAC
		why      registry.Reason
	}{
		{"198.51.100.10", "192.0.2.3", ethaddr.MAC{0x03, 0, 0, 0, 0, 1}, registry.ReasonMACNotUnicast},
		{"198.51.100.11", "2001:db8::3", macN(11), registry.ReasonVTEPFamily},
		{"198.51.100.12", "224.0.0.1", macN(12), registry.ReasonVTEPMulticast},
		{"198.51.100.17", "127.0.0.1", macN(17), registry.ReasonVTEPLoopback},
		{"198.51.100.18", "0.0.0.0", macN(18), registry.ReasonVTEPUnspecified},
		{"198.51.100.19", "255.255.255.255", macN(19), registry.ReasonVTEPBroadcast},
		{"198.51.100.20", "198.51.100.2", macN(20), registry.ReasonVTEPInOverlay},
		{"198.51.100.0", "192.0.2.3", macN(21), registry.ReasonIPNetwork},
		{"198.51.100.255", "192.0.2.3", macN(22), registry.ReasonIPBroadcast},
		{"198.51.100.1", "192.0.2.3", macN(23), registry.ReasonIPGateway},
	}
	for _, h := range hostile {
		reg.add(h.ip, h.mac, h.vtep)
	}
	reg.errs["ip:198.51.100.13"] = errors.New("dirstore: read arp/198.51.100.13: input/output error")            // unreadable store
	reg.errs["ip:198.51.100.24"] = registry.Rejected{Key: "arp/198.51.100.24", Reason: registry.ReasonOversized} // no record
	reg.add("198.51.100.14", macN(14), "")                                                                       // no VTEP
	reg.add("198.51.100.15", macN(15), "192.0.2.2")                                                              // local container
	reg.add("198.51.100.16", macN(16), "192.0.2.4")                                                              // good
	check := registry.NewChecker(registry.Policy{Subnet: netip.MustParsePrefix("198.51.100.0/24"), Gateway: netip.MustParseAddr("198.51.100.1"),
		Underlay: netip.MustParsePrefix("192.0.2.2/24")}, nil, time.Hour)
	k := &fakeKernel{}
	r, logs := newTestResolver(t, reg, k, func(c *testConfig) { c.Checker = check })
	runResolver(t, r)
	misses := []string{"198.51.100.13", "198.51.100.14", "198.51.100.15", "198.51.100.16", "198.51.100.24"}
	for _, h := range hostile {
		misses = append(misses, h.ip)
	}
	for _, ip := range misses {
		r.HandleMiss(l3(ip))
	}
	eventually(t, "all lookups to finish", func() bool {
		in, _ := r.table.sizes()
		return in == 0 && r.Metrics().Snapshot().Resolutions["l3miss"] == 1
	})
	s := r.Metrics().Snapshot()
	want := map[string]uint64{"bad_record": uint64(len(hostile)) + 1, "registry_error": 1, "not_found": 1, "local": 1}
	for k, v := range want {
		if s.Unresolved[k] != v {
			t.Errorf("unresolved[%s] = %d, want %d", k, s.Unresolved[k], v)
		}
	}
	ents := r.Entries()
	if len(ents) != 2 {
		t.Fatalf("entries = %+v, want only 198.51.100.16's two", ents)
	}
	for _, e := range ents {
		if e.MAC != macN(16) {
			t.Errorf("bad record installed: %+v", e)
		}
	}
	for _, h := range hostile { // met twice: by the first pass's listing, and by the miss
		if check.Rejections(h.why) != 2 {
			t.Errorf("%s: %d rejections counted, want 2", h.why, check.Rejections(h.why))
		}
	}
	if check.Rejections(registry.ReasonOversized) != 1 {
		t.Errorf("the store's rejection was not counted")
	}
	if strings.Contains(logs.String(), "record rejected") {
		t.Errorf("the resolver logs rejections itself (the checker, with its own logger, does):\n%s", logs)
	}
}

func TestResolverKernelFailureIsReported(t *testing.T) {
	reg := newFakeRegistry()
	reg.add("198.51.100.3", macN(3), "192.0.2.3")
	k := &fakeKernel{fail: map[int]error{0: errors.New("rtnl: EINVAL")}} // the FDB request, the batch's first
	r, logs := newTestResolver(t, reg, k, nil)
	runResolver(t, r)
	r.HandleMiss(l3("198.51.100.3"))
	eventually(t, "the failure", func() bool { return r.Metrics().Snapshot().Errors == 1 })
	if s := r.Metrics().Snapshot(); s.Resolutions["l3miss"] != 0 {
		t.Error("a half-failed resolution was counted as resolved")
	}
	ents := r.Entries()
	if len(ents) != 1 || ents[0].Table != "neigh" {
		t.Errorf("tracked %+v, want only the neighbour entry that applied", ents)
	}
	eventually(t, "the failure to be logged", func() bool { return strings.Contains(logs.String(), "resolved failed") })
	// The key is not stuck in flight: the next miss is looked up again.
	eventually(t, "the key to leave the in-flight set", func() bool { in, _ := r.table.sizes(); return in == 0 })
}

func TestMetricsExposition(t *testing.T) {
	var m Metrics
	m.misses[rtnl.MissL3].Add(3)
	m.negativeHits.Add(2)
	m.lookup.observe(300 * time.Microsecond)
	m.lookup.observe(2 * time.Second)
	m.batch.observe(3 * time.Millisecond)
	m.programmedFDB.Store(5)
	m.AddCollector(MonitorCollector(func() rtnl.MonitorStats { return rtnl.MonitorStats{Overruns: 4} }))
	var b bytes.Buffer
	if err := m.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"# TYPE overlayd_misses_total counter\n",
		`overlayd_misses_total{kind="l3miss"} 3` + "\n",
		"overlayd_negative_cache_hits_total 2\n",
		`overlayd_programmed_entries{table="fdb"} 5` + "\n",
		`overlayd_registry_lookup_duration_seconds_bucket{le="0.00025"} 0` + "\n",
		`overlayd_registry_lookup_duration_seconds_bucket{le="0.0005"} 1` + "\n",
		`overlayd_registry_lookup_duration_seconds_bucket{le="2.5"} 2` + "\n",
		`overlayd_registry_lookup_duration_seconds_bucket{le="+Inf"} 2` + "\n",
		"overlayd_registry_lookup_duration_seconds_sum 2.0003\n",
		"overlayd_registry_lookup_duration_seconds_count 2\n",
		`overlayd_program_batch_duration_seconds_bucket{le="0.0025"} 0` + "\n",
		`overlayd_program_batch_duration_seconds_bucket{le="0.005"} 1` + "\n",
		"overlayd_program_batch_duration_seconds_count 1\n",
		"overlayd_monitor_overruns_total 4\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	// Every sample line is "name{labels} value" or "name value".
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if f := strings.Fields(line); len(f) != 2 {
			t.Errorf("malformed sample line %q", line)
		}
	}
}

// TestLookupCtx checks the per-lookup context against what
// context.WithTimeout promises: the earlier deadline, Err by the clock, a
// Done that closes at the deadline, and a Done or Err asked for after the
// call ended (a registry goroutine that outlived it) that reports the end.
func TestLookupCtx(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	lc := &lookupCtx{Context: parent, deadline: time.Now().Add(20 * time.Millisecond)}
	if d, ok := lc.Deadline(); !ok || !d.Equal(lc.deadline) {
		t.Fatalf("Deadline = %v %v", d, ok)
	}
	if lc.Err() != nil {
		t.Fatalf("Err before the deadline = %v", lc.Err())
	}
	select {
	case <-lc.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("Done did not close at the deadline")
	}
	if !errors.Is(lc.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err after the deadline = %v", lc.Err())
	}
	lc.stop()

	late := &lookupCtx{Context: parent, deadline: time.Now().Add(time.Hour)}
	late.stop()
	select {
	case <-late.Done():
	default:
		t.Fatal("Done after stop is not closed")
	}
	if !errors.Is(late.Err(), context.Canceled) {
		t.Fatalf("Err after stop = %v", late.Err())
	}
}
