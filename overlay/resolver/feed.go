package resolver

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/promtext"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
)

// Mode says how a Resolver learns which entries to program.
type Mode uint8

// Modes of a Resolver.
const (
	// ModeAuto (the zero value) is ModeHybrid when Config.Feed is
	// set and ModeReactive otherwise.
	ModeAuto Mode = iota
	// ModeReactive programs entries only in answer to misses.
	ModeReactive
	// ModeProactive programs every remote record of the change feed before
	// any packet needs it. Misses are resolved only while the feed has not
	// synced yet, or for the records beyond ProactiveMax.
	ModeProactive
	// ModeHybrid is ModeProactive with every miss resolved too, as a
	// safety net.
	ModeHybrid
)

// String names m.
func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeReactive:
		return "reactive"
	case ModeProactive:
		return "proactive"
	case ModeHybrid:
		return "hybrid"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseMode parses "reactive", "proactive", "hybrid" or "auto" (or "").
func ParseMode(s string) (Mode, error) {
	for m := ModeAuto; m <= ModeHybrid; m++ {
		if s == m.String() {
			return m, nil
		}
	}
	if s == "" {
		return ModeAuto, nil
	}
	return 0, fmt.Errorf("resolver: unknown mode %q (want reactive, proactive or hybrid)", s)
}

// feedState is what the feed follower knows. Only the follower goroutine
// writes its fields; the view (tab and spans) is also read by misses and
// reconcile passes (see view.go). The counters are read by the receive
// loop and metrics.
type feedState struct {
	mode Mode
	max  int
	// tab is the view's records: the feed's own copy (registry.Change.Table)
	// or, from a feed without one, a table the follower fills from the
	// changes. It holds every record of the registry, this node's and those
	// the policy refuses too: the view's readers skip those (view.go).
	tab atomic.Pointer[registry.Table]
	// next is the table of a fresh watch until its first Synced (tab stays
	// the view meanwhile); fresh is true until then.
	next  *registry.Table
	fresh bool
	// records counts the remote records of the view the follower handled
	// (accepted, not this node's): every one is programmed without a
	// budget.
	records int
	// prog holds those programmed proactively when there is a budget
	// (max > 0); without one, every remote record is, and prog is nil.
	prog map[netip.Addr]struct{}
	// local is this node's VTEP: its records are not remote.
	local netip.Addr
	// mu guards spans against the readers of the view; the follower, their
	// only writer, reads them without it. seenSpans are those a fresh watch
	// delivered, dirty the prefixes whose entries fixSpans checks next (the
	// follower only).
	mu        sync.RWMutex
	spans     *registry.Spans
	seenSpans map[netip.Prefix]struct{}
	dirty     []netip.Prefix
	// policy is the checker's: the view answers only records it accepts,
	// and an address of a span no container may have (the subnet's
	// network, broadcast and gateway addresses) is no record.
	policy registry.Policy
	// budgetLogged: crossing the budget was logged (once per daemon).
	budgetLogged bool

	synced       atomic.Bool
	syncedCh     chan struct{} // closed at the first ChangeSynced
	settled      chan struct{} // closed after the first pass that followed it (Resolver.Settled)
	settleOnce   sync.Once
	watchFailed  chan struct{} // closed when a watch first could not start
	failOnce     sync.Once
	programmed   atomic.Int64 // records programmed proactively
	overflow     atomic.Int64 // remote records left to misses by the budget
	changes      [registry.ChangeSynced + 1]atomic.Uint64
	ignored      atomic.Uint64 // misses ignored in proactive mode
	restarts     atomic.Uint64
	spanCount    atomic.Int64  // len(spans.byPrefix)
	spansRefused atomic.Uint64 // spans not taken: bad, outside the subnet, overlapping
}

func newFeedState(mode Mode, max int, policy registry.Policy, local netip.Addr) *feedState {
	f := &feedState{mode: mode, max: max, local: local, spans: registry.NewSpans(), policy: policy,
		syncedCh: make(chan struct{}), settled: make(chan struct{}), watchFailed: make(chan struct{})}
	if max > 0 {
		f.prog = make(map[netip.Addr]struct{})
	}
	return f
}

// isProg says whether the remote record of ip is programmed proactively.
func (f *feedState) isProg(ip netip.Addr) bool {
	if f.prog == nil {
		return true
	}
	_, ok := f.prog[ip]
	return ok
}

// progCount is the number of records programmed proactively.
func (f *feedState) progCount() int {
	if f.prog == nil {
		return f.records
	}
	return len(f.prog)
}

// withinBudget says whether one more record may be programmed from the
// feed: always without a budget (max 0).
func (f *feedState) withinBudget() bool { return f.max == 0 || len(f.prog) < f.max }

// wantMisses says whether the receive loop resolves misses: always in hybrid
// mode; in proactive mode until the feed first synced, while records are
// beyond the budget, and while the view holds spans (their addresses are
// programmed on misses only).
func (f *feedState) wantMisses() bool {
	return f.mode == ModeHybrid || !f.synced.Load() || f.overflow.Load() > 0 || f.spanCount.Load() > 0
}

// followFeed runs the change feed until ctx ends, watching again with
// backoff when it cannot start or breaks.
func (r *Resolver) followFeed(ctx context.Context) {
	f := r.feed
	backoff := 100 * time.Millisecond
	for {
		ch, err := r.cfg.Feed.Watch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("change feed: cannot watch yet; misses are resolved meanwhile", "err", err, "retry_in", backoff)
			f.failOnce.Do(func() { close(f.watchFailed) })
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		f.fresh, f.next, f.seenSpans = true, nil, make(map[netip.Prefix]struct{})
		if !r.readFeed(ctx, ch) {
			return
		}
		f.restarts.Add(1)
		r.log.Warn("change feed ended; watching again")
	}
}

// readFeed applies the changes of one watch until its channel closes
// (true) or ctx ends (false). The entries of spans that changed are checked
// spanSettle after the first change (fixSpans).
func (r *Resolver) readFeed(ctx context.Context, ch <-chan registry.Change) bool {
	var settle <-chan time.Time
	for {
		select {
		case c, ok := <-ch:
			if !ok {
				return ctx.Err() == nil
			}
			r.handleChange(ctx, c)
			if len(r.feed.dirty) > 0 && settle == nil {
				settle = time.After(spanSettle)
			}
		case <-settle:
			settle = nil
			r.fixSpans(ctx)
		case <-ctx.Done(): // the feed closes its channel too
			return false
		}
	}
}

// handleChange applies one feed event.
func (r *Resolver) handleChange(ctx context.Context, c registry.Change) {
	f := r.feed
	if int(c.Kind) < len(f.changes) {
		f.changes[c.Kind].Add(1)
	}
	if c.IsSpan() {
		r.handleSpan(c)
		return
	}
	switch c.Kind {
	case registry.ChangePut:
		r.putRecord(ctx, c)
	case registry.ChangeDelete:
		r.known.missing(missKey{kind: rtnl.MissL3, ip: c.Record.IP})
		t, own := f.table(c)
		if own {
			if old, ok := t.Record(c.Record.IP); !ok || old != c.Record {
				break
			}
			t.DeleteRecord(c.Record)
		}
		r.forgetRecord(ctx, t, c.Record, true)
	case registry.ChangeRejected:
		r.check.Reject(c.Rejected)
	case registry.ChangeSynced:
		r.synced(ctx, c)
	}
	f.programmed.Store(int64(f.progCount()))
	f.overflow.Store(int64(f.records - f.progCount()))
}

// table returns the table c's record belongs to, and whether the follower
// fills it (own: the feed has none of its own). The feed's table becomes
// the view (a re-listing brings a new one), unless a fresh watch is being
// listed: its table is the view from its Synced on.
func (f *feedState) table(c registry.Change) (t *registry.Table, own bool) {
	if c.Table != nil {
		if f.fresh {
			f.next = c.Table
		} else if f.tab.Load() != c.Table {
			f.tab.Store(c.Table)
		}
		return c.Table, false
	}
	if f.fresh {
		if f.next == nil {
			f.next = registry.NewTable(0)
		}
		return f.next, true
	}
	if f.tab.Load() == nil {
		f.tab.Store(registry.NewTable(0))
	}
	return f.tab.Load(), true
}

// putRecord applies a Put of a record: programmed, unless the view had it
// as it is (a fresh watch delivers every record again), it is this node's
// (its entries are removed) or the budget is spent.
func (r *Resolver) putRecord(ctx context.Context, c registry.Change) {
	f := r.feed
	rec := c.Record
	if !r.check.Accept(rec) { // counted and logged by the checker
		return
	}
	t, own := f.table(c)
	var old registry.Record
	var had bool
	if own {
		old, had = t.PutRecord(rec)
	}
	if v := f.tab.Load(); !had && f.fresh && v != nil {
		old, had = v.Record(rec.IP)
		had = had && f.policy.Accepts(old)
	}
	if had && old == rec {
		return
	}
	if had {
		r.forgetRecord(ctx, t, old, false)
	}
	if r.isLocal(rec.VTEP) {
		r.unprogramLocal(ctx, rec)
		return
	}
	f.records++
	if f.withinBudget() {
		r.programRecord(ctx, rec)
	} else if !f.budgetLogged {
		f.budgetLogged = true
		r.log.Warn("proactive budget reached: further remote records are resolved on misses (logged once; see overlayd_proactive_left_to_misses)",
			"proactive_max", f.max, "first_left_to_misses", rec.String())
	}
}

// synced applies a ChangeSynced: the table of a fresh watch becomes the
// view, and the records of the former view it lacks are forgotten.
func (r *Resolver) synced(ctx context.Context, c registry.Change) {
	f := r.feed
	if f.fresh {
		old, next := f.tab.Load(), f.next
		if next == nil {
			next = c.Table
		}
		if next == nil {
			next = registry.NewTable(0)
		}
		f.tab.Store(next)
		if old != nil && old != next {
			var gone []registry.Record
			for rec := range old.Records() {
				if _, ok := next.Record(rec.IP); !ok && f.policy.Accepts(rec) {
					gone = append(gone, rec)
				}
			}
			for _, rec := range gone {
				r.forgetRecord(ctx, next, rec, true)
			}
		}
		r.forgetUnseenSpans()
		f.fresh, f.next = false, nil
	}
	first := !f.synced.Swap(true)
	if first {
		close(f.syncedCh)
		r.markListed() // misses are answered from the view from now on
	}
	r.log.Info("change feed synced", "revision", c.Revision, "remote_records", f.records, "spans", f.spanCount.Load(),
		"programmed", f.progCount(), "left_to_misses", f.records-f.progCount(), "first", first)
	if !first || r.m.reconciles.Load() > 0 {
		// A pass checks the kernel against the new listing. At the
		// first sync none is needed unless a pass already ran without
		// it: the first pass waits for it (awaitFeed).
		r.Kick()
	}
}

// programRecord submits the neighbour and FDB entries of a remote record.
func (r *Resolver) programRecord(ctx context.Context, rec registry.Record) {
	if r.feed.prog != nil {
		r.feed.prog[rec.IP] = struct{}{}
	}
	res := newFeedResolution("programmed from feed")
	res.ops = append(res.ops, progOp{kind: opSetFDB, mac: rec.MAC, vtep: rec.VTEP},
		progOp{kind: opSetNeigh, ifindex: r.cfg.Vxlan, ip: rec.IP, mac: rec.MAC})
	if r.prog.submit(ctx, res) != nil {
		res.release() // not taken: ctx ended
	}
}

// forgetRecord drops a remote record that t no longer holds as it was: its
// entries (proactive or miss-driven) are removed (its FDB entry once no
// record of t names its MAC), and with promote a record left to misses by
// the budget takes its place. This node's records have no entries.
func (r *Resolver) forgetRecord(ctx context.Context, t *registry.Table, rec registry.Record, promote bool) {
	f := r.feed
	if r.isLocal(rec.VTEP) {
		return
	}
	inProg := f.isProg(rec.IP)
	f.records--
	delete(f.prog, rec.IP)
	var ops []progOp
	for _, dev := range []int32{r.cfg.Vxlan, r.cfg.Bridge} {
		if dev == 0 {
			continue
		}
		if mac, ok := r.prog.trackedNeigh(dev, rec.IP); (ok && mac == rec.MAC) || (inProg && dev == r.cfg.Vxlan) {
			ops = append(ops, progOp{kind: opDelNeigh, ifindex: dev, ip: rec.IP, mac: rec.MAC})
		}
	}
	if t.Refs(rec.MAC) == 0 {
		if vtep, ok := r.prog.trackedFDB(rec.MAC); (ok && vtep == rec.VTEP) || inProg {
			ops = append(ops, progOp{kind: opDelFDB, mac: rec.MAC, vtep: rec.VTEP})
		}
	}
	if len(ops) > 0 {
		r.prog.submit(ctx, &resolution{action: "removed from feed", ops: ops})
	}
	if promote && f.max > 0 && f.records > len(f.prog) {
		r.promote(ctx, t)
	}
}

// promote programs records of t left to misses by the budget, while the
// budget allows.
func (r *Resolver) promote(ctx context.Context, t *registry.Table) {
	f := r.feed
	var next []registry.Record
	for rec := range t.Records() {
		if len(f.prog)+len(next) >= f.max {
			break
		}
		if !r.isLocal(rec.VTEP) && !f.isProg(rec.IP) && f.policy.Accepts(rec) {
			next = append(next, rec)
		}
	}
	for _, rec := range next {
		r.programRecord(ctx, rec)
	}
}

// unprogramLocal removes entries for a record that now lives on this node
// (a container moved here): the bridge reaches it.
func (r *Resolver) unprogramLocal(ctx context.Context, rec registry.Record) {
	var ops []progOp
	for _, dev := range []int32{r.cfg.Vxlan, r.cfg.Bridge} {
		if mac, ok := r.prog.trackedNeigh(dev, rec.IP); dev != 0 && ok {
			ops = append(ops, progOp{kind: opDelNeigh, ifindex: dev, ip: rec.IP, mac: mac})
		}
	}
	if vtep, ok := r.prog.trackedFDB(rec.MAC); ok {
		ops = append(ops, progOp{kind: opDelFDB, mac: rec.MAC, vtep: vtep})
	}
	if len(ops) > 0 {
		r.prog.submit(ctx, &resolution{action: "removed (record now local)", ops: ops})
	}
}

// trackedNeigh returns the MAC of a neighbour entry we programmed: ip on
// dev.
func (p *programmer) trackedNeigh(dev int32, ip netip.Addr) (ethaddr.MAC, bool) {
	p.lock()
	defer p.mu.Unlock()
	return p.neigh.get(nkey(dev, ip))
}

// trackedFDB returns the VTEP of an FDB entry we programmed.
func (p *programmer) trackedFDB(mac ethaddr.MAC) (netip.Addr, bool) {
	p.lock()
	defer p.mu.Unlock()
	return p.fdb.get(mac)
}

// FeedStats are the change feed follower's counters.
type FeedStats struct {
	Mode         Mode   // the resolver's effective mode
	Synced       bool   // the feed delivered a complete listing
	Programmed   int64  // remote records programmed proactively
	LeftToMisses int64  // remote records beyond ProactiveMax
	Max          int    // ProactiveMax (0: no budget)
	Puts         uint64 // registry.ChangePut events
	Deletes      uint64 // registry.ChangeDelete events
	Syncs        uint64 // registry.ChangeSynced events
	MissesIgnore uint64 // misses ignored (proactive mode, record programmed)
	Restarts     uint64 // watches started again after the feed ended
	Spans        int64  // spans in the view (nodes' address blocks)
	SpansRefused uint64 // spans not taken: malformed, outside the subnet, overlapping another
}

// FeedStats returns the feed follower's counters (zero in reactive mode,
// apart from Mode).
func (r *Resolver) FeedStats() FeedStats {
	f := r.feed
	if f == nil {
		return FeedStats{Mode: ModeReactive}
	}
	return FeedStats{Mode: f.mode, Synced: f.synced.Load(), Programmed: f.programmed.Load(),
		LeftToMisses: f.overflow.Load(), Max: f.max, Puts: f.changes[registry.ChangePut].Load(),
		Deletes: f.changes[registry.ChangeDelete].Load(), Syncs: f.changes[registry.ChangeSynced].Load(),
		MissesIgnore: f.ignored.Load(), Restarts: f.restarts.Load(), Spans: f.spanCount.Load(), SpansRefused: f.spansRefused.Load()}
}

// feedCollector exports FeedStats in the Prometheus text format.
func (r *Resolver) feedCollector(w io.Writer) {
	s := r.FeedStats()
	changes := [...]uint64{s.Puts, s.Deletes, s.Syncs}
	promtext.Family(w, "overlayd_feed_changes_total", "counter", "Change feed events, by kind.",
		"kind", len(changes), func(i int) (string, uint64) { return [...]string{"put", "delete", "synced"}[i], changes[i] })
	synced := int64(0)
	if s.Synced {
		synced = 1
	}
	promtext.Gauge(w, "overlayd_feed_synced", "1 once the change feed delivered a complete listing.", synced)
	promtext.Gauge(w, "overlayd_proactive_records", "Remote records programmed from the change feed.", s.Programmed)
	promtext.Gauge(w, "overlayd_proactive_left_to_misses", "Remote records beyond the proactive budget (--proactive-max), resolved on misses.", s.LeftToMisses)
	promtext.Gauge(w, "overlayd_proactive_max", "Budget of records programmed from the change feed (0: none, every remote record).", int64(s.Max))
	promtext.Counter(w, "overlayd_feed_misses_ignored_total", "Misses not resolved because proactive mode programs their records.", s.MissesIgnore)
	promtext.Counter(w, "overlayd_feed_restarts_total", "Times the change feed ended and was watched again.", s.Restarts)
	promtext.Gauge(w, "overlayd_feed_spans", "Spans in the change feed's view: nodes' address blocks (Kubernetes: podCIDRs), every address resolved on misses from memory.", s.Spans)
	promtext.Counter(w, "overlayd_feed_spans_refused_total", "Spans of the change feed not taken: malformed, outside the overlay subnet, overlapping another node's.", s.SpansRefused)
}
