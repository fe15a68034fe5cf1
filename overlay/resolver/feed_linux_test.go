package resolver

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
)

// startFeedResolver runs a resolver in mode with the feed f and the cap max
// on lab's real vxlan.
func (lab *resolverLab) startFeedResolver(t *testing.T, f registry.ChangeFeed, mode Mode, max int) *Resolver {
	t.Helper()
	r, _ := lab.startFeedResolverIn(t, f, mode, max, netip.MustParsePrefix("198.51.100.0/24"))
	return r
}

// startFeedResolverIn is startFeedResolver for the overlay subnet subnet; it
// also returns the resolver's log.
func (lab *resolverLab) startFeedResolverIn(t *testing.T, f registry.ChangeFeed, mode Mode, max int, subnet netip.Prefix) (*Resolver, *logBuffer) {
	t.Helper()
	return lab.serve(t, Config{Subnet: subnet, Feed: f, Tuning: Tuning{ReconcileInterval: -1, Mode: mode, ProactiveMax: max}})
}

// serve runs a resolver of cfg, given lab's socket, store and vxlan (VNI
// 42, port 4789), this node's VTEP 192.0.2.2 and a log, on lab's real
// vxlan fed by a real monitor, until the test ends; it returns the
// resolver and its log.
func (lab *resolverLab) serve(t *testing.T, cfg Config) (*Resolver, *logBuffer) {
	t.Helper()
	mon, err := rtnl.DialMonitor(rtnl.MonitorConfig{NetNS: lab.ns})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	cfg.Conn, cfg.Registry, cfg.Vxlan, cfg.VNI, cfg.Port = lab.conn, lab.store, lab.vxlan, 42, 4789
	cfg.LocalVTEP, cfg.Logger = netip.MustParseAddr("192.0.2.2"), newTestLogger(logs)
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, mon) }()
	t.Cleanup(func() {
		cancel()
		<-done
		mon.Close()
		if t.Failed() {
			t.Logf("resolver log:\n%s", logs)
		}
	})
	return r, logs
}

// TestResolverFeedProactive: records of the feed are programmed without any
// miss, up to the cap; a deleted record's entries go and a record left to
// misses takes its place; a record moving to this node loses its entries;
// in proactive mode with nothing beyond the cap, misses are not resolved.
func TestResolverFeedProactive(t *testing.T) {
	lab := newResolverLab(t)
	a := lab.register(t, "198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3")
	b := lab.register(t, "198.51.100.4", "02:42:c6:33:64:04", "192.0.2.4")
	c := lab.register(t, "198.51.100.5", "02:42:c6:33:64:05", "192.0.2.3")
	feed := make(chanFeed, 16)
	r := lab.startFeedResolver(t, feed, ModeProactive, 2)
	if r.FeedStats().Max != 2 || r.Mode() != ModeProactive {
		t.Fatalf("mode %v, stats %+v", r.Mode(), r.FeedStats())
	}
	programmed := func(rec registry.Record) bool {
		n := findNeigh(lab.neighbours(t), rec.IP.String())
		f := findFDB(lab.fdb(t), rec.MAC.String())
		return n != nil && n.LLAddr == rec.MAC.String() && f != nil && f.Dst == rec.VTEP.String()
	}
	absent := func(rec registry.Record) bool {
		return findNeigh(lab.neighbours(t), rec.IP.String()) == nil && findFDB(lab.fdb(t), rec.MAC.String()) == nil
	}

	for _, rec := range []registry.Record{a, b, c} {
		feed <- registry.Change{Kind: registry.ChangePut, Record: rec}
	}
	feed <- registry.Change{Kind: registry.ChangeSynced}
	eventually(t, "two records programmed from the feed", func() bool {
		s := r.FeedStats()
		return s.Synced && s.Programmed == 2 && s.LeftToMisses == 1 && programmed(a) && programmed(b)
	})
	if !absent(c) {
		t.Errorf("record beyond the cap of 2 was programmed")
	}
	if got := r.Metrics().Snapshot().Resolutions["l3miss"]; got != 0 {
		t.Errorf("%d misses resolved; the feed alone programmed", got)
	}

	// a goes: its entries are removed and c, left to misses, takes its place.
	if err := lab.store.Unregister(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	feed <- registry.Change{Kind: registry.ChangeDelete, Record: a}
	eventually(t, "a removed, c promoted", func() bool {
		s := r.FeedStats()
		return absent(a) && programmed(c) && s.Programmed == 2 && s.LeftToMisses == 0
	})

	// c moves to this node: reached through the bridge, no entries.
	local := registry.Record{IP: c.IP, MAC: c.MAC, VTEP: netip.MustParseAddr("192.0.2.2")}
	feed <- registry.Change{Kind: registry.ChangeDelete, Record: c}
	feed <- registry.Change{Kind: registry.ChangePut, Record: local}
	eventually(t, "c's entries removed after it moved here", func() bool { return absent(c) && r.FeedStats().Programmed == 1 })
	if !programmed(b) {
		t.Errorf("b lost its entries")
	}

	// Proactive, nothing beyond the cap: a miss is not resolved.
	lab.register(t, "198.51.100.7", "02:42:c6:33:64:07", "192.0.2.4")
	lab.ping("198.51.100.7")
	eventually(t, "the miss to be ignored", func() bool { return r.FeedStats().MissesIgnore >= 1 })
	if findNeigh(lab.neighbours(t), "198.51.100.7") != nil {
		t.Errorf("proactive mode resolved a miss although nothing was beyond its cap")
	}
}

// TestResolverModeNeedsFeed: proactive and hybrid need a change feed; the
// zero mode picks hybrid with one and reactive without.
func TestResolverModeNeedsFeed(t *testing.T) {
	base := testConfig{
		Config: Config{Registry: newFakeRegistry(), Vxlan: 3, Subnet: netip.MustParsePrefix("198.51.100.0/24")},
		seams:  seams{kernel: &fakeKernel{}},
	}
	cases := []struct {
		mode Mode
		feed registry.ChangeFeed
		want Mode
		ok   bool
	}{
		{ModeAuto, nil, ModeReactive, true},
		{ModeAuto, make(chanFeed), ModeHybrid, true},
		{ModeReactive, make(chanFeed), ModeReactive, true},
		{ModeProactive, make(chanFeed), ModeProactive, true},
		{ModeProactive, nil, 0, false},
		{ModeHybrid, nil, 0, false},
		{Mode(9), make(chanFeed), 0, false},
	}
	for _, c := range cases {
		cfg := base
		cfg.Mode, cfg.Feed = c.mode, c.feed
		r, err := newTest(cfg)
		if (err == nil) != c.ok || (err == nil && r.Mode() != c.want) {
			t.Errorf("mode %v feed %v: resolver %v, err %v; want mode %v ok %v", c.mode, c.feed != nil, r != nil, err, c.want, c.ok)
		}
	}
	for _, s := range []string{"reactive", "proactive", "hybrid"} {
		if m, err := ParseMode(s); err != nil || m.String() != s {
			t.Errorf("ParseMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseMode("eager"); err == nil {
		t.Error("ParseMode accepted eager")
	}
}

// TestResolverFeedNoBudget: with no budget (the default), every remote
// record of the feed is programmed, past the neighbour table's gc_thresh3:
// PERMANENT neighbours and vxlan FDB entries are exempt from it.
func TestResolverFeedNoBudget(t *testing.T) {
	lab := newResolverLab(t)
	t3 := 1024
	if b, err := os.ReadFile("/proc/sys/net/ipv4/neigh/default/gc_thresh3"); err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			t3 = v
		}
	}
	n := min(t3, 20000) + 1000
	feed := make(chanFeed, 64)
	r, _ := lab.startFeedResolverIn(t, feed, ModeHybrid, 0, netip.MustParsePrefix("10.0.0.0/8"))
	// The records are in the store too (the reconcile pass after the sync
	// checks them there), written directly: the store's own writes fsync.
	recs := make([]registry.Record, n)
	for i := range recs {
		recs[i] = registry.Record{IP: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}),
			MAC: ethaddr.MAC{0x02, 0x42, 10, 1, byte(i >> 8), byte(i)}, VTEP: netip.AddrFrom4([4]byte{192, 0, 2, byte(3 + i%100)})}
		for path, v := range map[string]string{"arp/" + recs[i].IP.String(): recs[i].MAC.String(), "fdb/" + recs[i].MAC.String(): recs[i].VTEP.String()} {
			if err := os.WriteFile(filepath.Join(lab.store.Root(), path), []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	go func() {
		for _, rec := range recs {
			feed <- registry.Change{Kind: registry.ChangePut, Record: rec}
		}
		feed <- registry.Change{Kind: registry.ChangeSynced}
	}()
	eventually(t, "every record programmed", func() bool {
		s := r.FeedStats()
		return s.Synced && s.Programmed == int64(n)
	})
	if s := r.FeedStats(); s.LeftToMisses != 0 || s.Max != 0 {
		t.Errorf("stats %+v, want none left to misses and no budget", s)
	}
	var neigh, fdb int
	deadline := time.Now().Add(10 * time.Second)
	for (neigh != n || fdb != n) && time.Now().Before(deadline) {
		neigh = strings.Count(nstest.Run(t, lab.over, "ip", "neigh", "show", "dev", "vx0"), "PERMANENT")
		fdb = strings.Count(nstest.Run(t, lab.over, "bridge", "fdb", "show", "dev", "vx0"), "extern_learn")
		time.Sleep(100 * time.Millisecond)
	}
	if neigh != n || fdb != n {
		t.Errorf("kernel holds %d neighbour and %d FDB entries, want %d each (gc_thresh3 %d)", neigh, fdb, n, t3)
	}
	if e := r.Metrics().Snapshot().Errors; e != 0 {
		t.Errorf("%d programming errors", e)
	}
}

// TestResolverFeedBudget: an explicit budget programs that many records;
// crossing it is logged once and exported as a metric.
func TestResolverFeedBudget(t *testing.T) {
	lab := newResolverLab(t)
	feed := make(chanFeed, 16)
	r, logs := lab.startFeedResolverIn(t, feed, ModeHybrid, 1, netip.MustParsePrefix("198.51.100.0/24"))
	for i := range 3 {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)})
		feed <- registry.Change{Kind: registry.ChangePut, Record: registry.Record{IP: ip, MAC: ethaddr.MAC{2, 0x42, 198, 51, 100, byte(10 + i)}, VTEP: netip.MustParseAddr("192.0.2.3")}}
	}
	feed <- registry.Change{Kind: registry.ChangeSynced}
	eventually(t, "one programmed, two left to misses", func() bool {
		s := r.FeedStats()
		return s.Synced && s.Programmed == 1 && s.LeftToMisses == 2
	})
	if got := strings.Count(logs.String(), "proactive budget reached"); got != 1 {
		t.Errorf("budget crossing logged %d times, want once:\n%s", got, logs)
	}
	var b strings.Builder
	if err := r.Metrics().WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"overlayd_proactive_left_to_misses 2\n", "overlayd_proactive_max 1\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestReconcileAgainstView: with a synced feed, a reconcile pass checks the
// kernel's entries against the feed's view, not the registry: an entry
// changed behind the resolver's back is put back to the view's record, and
// a record the registry lost but the feed has not deleted keeps its
// entries, until the feed deletes it.
func TestReconcileAgainstView(t *testing.T) {
	lab := newResolverLab(t)
	a := lab.register(t, "198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3")
	b := lab.register(t, "198.51.100.4", "02:42:c6:33:64:04", "192.0.2.4")
	feed := make(chanFeed, 8)
	r := lab.startFeedResolver(t, feed, ModeHybrid, 0)
	for _, rec := range []registry.Record{a, b} {
		feed <- registry.Change{Kind: registry.ChangePut, Record: rec}
	}
	feed <- registry.Change{Kind: registry.ChangeSynced}
	neighMAC := func(rec registry.Record) string {
		if n := findNeigh(lab.neighbours(t), rec.IP.String()); n != nil {
			return n.LLAddr
		}
		return ""
	}
	eventually(t, "both records programmed", func() bool {
		return neighMAC(a) == a.MAC.String() && neighMAC(b) == b.MAC.String() && r.Metrics().Snapshot().Reconciles >= 1
	})

	// a's entry is changed in the kernel (with our mark); b leaves the
	// registry without the feed saying so.
	wrong := rtnl.ARPEntry{Ifindex: lab.vxlan, IP: a.IP, MAC: ethaddr.MAC{0x02, 0x42, 0xde, 0xad, 0, 1}}.Message()
	wrong.Protocol = ProtocolOverlayd
	if err := lab.conn.NeighReplace(wrong); err != nil {
		t.Fatal(err)
	}
	if err := lab.store.Unregister(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	st, err := r.Reconcile(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if neighMAC(a) != a.MAC.String() || st.Updated != 1 {
		t.Errorf("a's entry is %s after the pass (updated %d), want the view's %s", neighMAC(a), st.Updated, a.MAC)
	}
	if neighMAC(b) != b.MAC.String() || st.Removed != 0 {
		t.Errorf("b's entry is %q after the pass (removed %d): the pass read the registry, not the view", neighMAC(b), st.Removed)
	}
	feed <- registry.Change{Kind: registry.ChangeDelete, Record: b}
	eventually(t, "b's entries removed by the feed", func() bool {
		return neighMAC(b) == "" && findFDB(lab.fdb(t), b.MAC.String()) == nil
	})
}

// TestFeedStartAdoptsFDBOnly: an FDB-only entry an earlier run left (an L2
// miss programs the FDB entry alone) for a MAC the feed holds but, beyond
// the budget, does not program, is adopted by the first pass after the
// feed's sync and corrected to the feed's VTEP; another controller's entry
// is left alone.
func TestFeedStartAdoptsFDBOnly(t *testing.T) {
	lab := newResolverLab(t)
	const foreign, foreignDst = "02:aa:bb:cc:dd:01", "192.0.2.77"
	nstest.Run(t, lab.over, "bridge", "fdb", "add", foreign, "dev", "vx0", "dst", foreignDst, "self", "extern_learn", "permanent")
	a := lab.register(t, "198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3")
	b := lab.register(t, "198.51.100.4", "02:42:c6:33:64:04", "192.0.2.4")
	nstest.Run(t, lab.over, "bridge", "fdb", "add", b.MAC.String(), "dev", "vx0", "dst", "192.0.2.99", "self", "extern_learn", "permanent")

	feed := make(chanFeed, 4)
	r, _ := lab.startFeedResolverIn(t, feed, ModeHybrid, 1, netip.MustParsePrefix("198.51.100.0/24"))
	feed <- registry.Change{Kind: registry.ChangePut, Record: a}
	feed <- registry.Change{Kind: registry.ChangePut, Record: b} // beyond the budget of 1
	feed <- registry.Change{Kind: registry.ChangeSynced}
	eventually(t, "the first pass", func() bool { return r.Metrics().Snapshot().Reconciles >= 1 })
	fdb := lab.fdb(t)
	if f := findFDB(fdb, b.MAC.String()); f == nil || f.Dst != "192.0.2.4" {
		t.Errorf("FDB-only entry of a MAC the feed holds = %+v, want it adopted and corrected to 192.0.2.4", f)
	}
	if f := findFDB(fdb, foreign); f == nil || f.Dst != foreignDst {
		t.Errorf("foreign FDB entry = %+v, want it untouched", f)
	}
}

// TestResolverSettled: Settled closes once the feed's first listing is
// programmed and the pass after its sync ran, not before the sync.
func TestResolverSettled(t *testing.T) {
	lab := newResolverLab(t)
	feed := make(chanFeed, 64)
	r := lab.startFeedResolver(t, feed, ModeHybrid, 0)
	a := registry.Record{IP: netip.MustParseAddr("198.51.100.7"), MAC: ethaddr.MAC{0x02, 0x42, 198, 51, 100, 7}, VTEP: netip.MustParseAddr("192.0.2.9")}
	feed <- registry.Change{Kind: registry.ChangePut, Record: a}
	select {
	case <-r.Settled():
		t.Fatal("settled before the feed synced")
	case <-time.After(300 * time.Millisecond):
	}
	feed <- registry.Change{Kind: registry.ChangeSynced}
	select {
	case <-r.Settled():
	case <-time.After(10 * time.Second):
		t.Fatal("not settled 10 s after the feed synced")
	}
	if s := r.Metrics().Snapshot(); s.Reconciles == 0 || r.FeedStats().Programmed != 1 {
		t.Errorf("settled after %d passes with %d records programmed, want a pass and 1", s.Reconciles, r.FeedStats().Programmed)
	}
	if !strings.Contains(nstest.Run(t, lab.over, "ip", "neigh", "show", "dev", "vx0"), "198.51.100.7") {
		t.Error("settled before the record's neighbour entry is in the kernel")
	}
}
