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
// writes the maps; want and macRefs are also read by misses and reconcile
// passes (the feed's view of the registry, see view.go), under mu. The
// counters are read by the receive loop and metrics.
type feedState struct {
	mode Mode
	max  int
	// mu guards want and macRefs against the readers of the view; the
	// follower, their only writer, reads them without it.
	mu   sync.RWMutex
	want map[registry.CompactAddr]wantRec // remote records in the feed
	// prog holds those programmed proactively when there is a budget
	// (max > 0); without one, every record of want is, and prog is nil.
	prog    map[netip.Addr]struct{}
	macRefs map[ethaddr.MAC]macRef            // records of want per MAC
	seen    map[registry.CompactAddr]struct{} // records delivered by a fresh watch, until its first Synced
	fresh   bool
	// spans are the view's spans (span.go), guarded by mu like want;
	// seenSpans those a fresh watch delivered, dirty the prefixes whose
	// entries fixSpans checks next (the follower only).
	spans     *registry.Spans
	seenSpans map[netip.Prefix]struct{}
	dirty     []netip.Prefix
	// policy is the checker's: an address of a span no container may have
	// (the subnet's network, broadcast and gateway addresses) is no record.
	policy registry.Policy
	// budgetLogged: crossing the budget was logged (once per daemon).
	budgetLogged bool

	synced       atomic.Bool
	syncedCh     chan struct{} // closed at the first ChangeSynced
	watchFailed  chan struct{} // closed when a watch first could not start
	failOnce     sync.Once
	programmed   atomic.Int64 // len(prog)
	overflow     atomic.Int64 // remote records left to misses by the budget
	changes      [registry.ChangeSynced + 1]atomic.Uint64
	ignored      atomic.Uint64 // misses ignored in proactive mode
	restarts     atomic.Uint64
	spanCount    atomic.Int64  // len(spans.byPrefix)
	spansRefused atomic.Uint64 // spans not taken: bad, outside the subnet, overlapping
}

// wantRec is a record of want without its IP (the key): per-record state is
// kept small and pointer-free, since a node may follow 100,000 remote
// records.
type wantRec struct {
	mac  ethaddr.MAC
	vtep registry.CompactAddr
}

// macRef is what want holds of a MAC: the VTEP of its latest record, and
// how many records name it.
type macRef struct {
	vtep registry.CompactAddr
	n    uint32
}

// rec is the record of want for ip.
func (w wantRec) rec(ip registry.CompactAddr) registry.Record {
	return registry.Record{IP: ip.Addr(), MAC: w.mac, VTEP: w.vtep.Addr()}
}

func newFeedState(mode Mode, max int, policy registry.Policy) *feedState {
	f := &feedState{mode: mode, max: max, want: make(map[registry.CompactAddr]wantRec), macRefs: make(map[ethaddr.MAC]macRef),
		spans: registry.NewSpans(), policy: policy, syncedCh: make(chan struct{}), watchFailed: make(chan struct{})}
	if max > 0 {
		f.prog = make(map[netip.Addr]struct{})
	}
	return f
}

// record returns the record of want for ip.
func (f *feedState) record(ip netip.Addr) (registry.Record, bool) {
	w, ok := f.want[registry.Compact(ip)]
	if !ok {
		return registry.Record{IP: ip}, false
	}
	return registry.Record{IP: ip, MAC: w.mac, VTEP: w.vtep.Addr()}, true
}

// isProg says whether ip's record is programmed proactively.
func (f *feedState) isProg(ip netip.Addr) bool {
	if f.prog == nil {
		_, ok := f.want[registry.Compact(ip)]
		return ok
	}
	_, ok := f.prog[ip]
	return ok
}

// progCount is the number of records programmed proactively.
func (f *feedState) progCount() int {
	if f.prog == nil {
		return len(f.want)
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
		f.fresh, f.seen, f.seenSpans = true, make(map[registry.CompactAddr]struct{}), make(map[netip.Prefix]struct{})
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
		rec := c.Record
		if f.fresh {
			f.seen[registry.Compact(rec.IP)] = struct{}{}
		}
		if !r.check.Accept(rec) { // counted and logged by the checker
			return
		}
		old, had := f.record(rec.IP)
		if had && old == rec {
			return
		}
		if had {
			r.forgetRecord(ctx, old, false)
		}
		if r.cfg.LocalVTEP.IsValid() && rec.VTEP == r.cfg.LocalVTEP {
			r.unprogramLocal(ctx, rec)
			return
		}
		f.put(rec)
		if f.withinBudget() {
			r.programRecord(ctx, rec)
		} else if !f.budgetLogged {
			f.budgetLogged = true
			r.log.Warn("proactive budget reached: further remote records are resolved on misses (logged once; see overlayd_proactive_left_to_misses)",
				"proactive_max", f.max, "first_left_to_misses", rec.String())
		}
	case registry.ChangeDelete:
		r.known.missing(missKey{kind: rtnl.MissL3, ip: c.Record.IP})
		if old, ok := f.record(c.Record.IP); ok && old == c.Record {
			r.forgetRecord(ctx, old, true)
		}
	case registry.ChangeRejected:
		r.check.Reject(c.Rejected)
	case registry.ChangeSynced:
		if f.fresh {
			for ip, w := range f.want {
				if _, ok := f.seen[ip]; !ok {
					r.forgetRecord(ctx, w.rec(ip), true)
				}
			}
			r.forgetUnseenSpans()
			f.fresh, f.seen = false, nil
		}
		first := !f.synced.Swap(true)
		if first {
			close(f.syncedCh)
			r.markListed() // misses are answered from the view from now on
		}
		r.log.Info("change feed synced", "revision", c.Revision, "remote_records", len(f.want), "spans", f.spanCount.Load(),
			"programmed", f.progCount(), "left_to_misses", len(f.want)-f.progCount(), "first", first)
		if !first || r.m.reconciles.Load() > 0 {
			// A pass checks the kernel against the new listing. At the
			// first sync none is needed unless a pass already ran without
			// it: the first pass waits for it (awaitFeed).
			r.Kick()
		}
	}
	f.programmed.Store(int64(f.progCount()))
	f.overflow.Store(int64(len(f.want) - f.progCount()))
}

// programRecord submits the neighbour and FDB entries of a remote record.
func (r *Resolver) programRecord(ctx context.Context, rec registry.Record) {
	if r.feed.prog != nil {
		r.feed.prog[rec.IP] = struct{}{}
	}
	r.prog.submit(ctx, &resolution{action: "programmed from feed", ops: []progOp{
		{kind: opSetNeigh, ifindex: r.cfg.Vxlan, ip: rec.IP, mac: rec.MAC},
		{kind: opSetFDB, mac: rec.MAC, vtep: rec.VTEP},
	}})
}

// forgetRecord drops a remote record: its entries (proactive or
// miss-driven) are removed, and with promote a record left to misses by the
// cap takes its place.
func (r *Resolver) forgetRecord(ctx context.Context, rec registry.Record, promote bool) {
	f := r.feed
	inProg := f.isProg(rec.IP)
	f.drop(rec)
	delete(f.prog, rec.IP)
	var ops []progOp
	for _, dev := range []int32{r.cfg.Vxlan, r.cfg.Bridge} {
		if dev == 0 {
			continue
		}
		if mac, ok := r.prog.trackedNeigh(nkey(dev, rec.IP)); (ok && mac == rec.MAC) || (inProg && dev == r.cfg.Vxlan) {
			ops = append(ops, progOp{kind: opDelNeigh, ifindex: dev, ip: rec.IP, mac: rec.MAC})
		}
	}
	if _, named := f.macRefs[rec.MAC]; !named {
		if vtep, ok := r.prog.trackedFDB(rec.MAC); (ok && vtep == rec.VTEP) || inProg {
			ops = append(ops, progOp{kind: opDelFDB, mac: rec.MAC, vtep: rec.VTEP})
		}
	}
	if len(ops) > 0 {
		r.prog.submit(ctx, &resolution{action: "removed from feed", ops: ops})
	}
	if !promote || f.max == 0 || len(f.want) <= len(f.prog) {
		return
	}
	for ip, w := range f.want {
		if !f.withinBudget() {
			break
		}
		if rec := w.rec(ip); !f.isProg(rec.IP) {
			r.programRecord(ctx, rec)
		}
	}
}

// unprogramLocal removes entries for a record that now lives on this node
// (a container moved here): the bridge reaches it.
func (r *Resolver) unprogramLocal(ctx context.Context, rec registry.Record) {
	var ops []progOp
	for _, dev := range []int32{r.cfg.Vxlan, r.cfg.Bridge} {
		if mac, ok := r.prog.trackedNeigh(nkey(dev, rec.IP)); dev != 0 && ok {
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

// trackedNeigh returns the MAC of a neighbour entry we programmed.
func (p *programmer) trackedNeigh(k neighKey) (ethaddr.MAC, bool) {
	p.lock()
	defer p.mu.Unlock()
	mac, ok := p.neigh[k]
	return mac, ok
}

// trackedFDB returns the VTEP of an FDB entry we programmed.
func (p *programmer) trackedFDB(mac ethaddr.MAC) (netip.Addr, bool) {
	p.lock()
	defer p.mu.Unlock()
	v, ok := p.fdb[mac]
	return v.Addr(), ok
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
	header(w, "overlayd_feed_changes_total", "counter", "Change feed events, by kind.")
	fmt.Fprintf(w, "overlayd_feed_changes_total{kind=\"put\"} %d\n", s.Puts)
	fmt.Fprintf(w, "overlayd_feed_changes_total{kind=\"delete\"} %d\n", s.Deletes)
	fmt.Fprintf(w, "overlayd_feed_changes_total{kind=\"synced\"} %d\n", s.Syncs)
	synced := 0
	if s.Synced {
		synced = 1
	}
	header(w, "overlayd_feed_synced", "gauge", "1 once the change feed delivered a complete listing.")
	fmt.Fprintf(w, "overlayd_feed_synced %d\n", synced)
	header(w, "overlayd_proactive_records", "gauge", "Remote records programmed from the change feed.")
	fmt.Fprintf(w, "overlayd_proactive_records %d\n", s.Programmed)
	header(w, "overlayd_proactive_left_to_misses", "gauge", "Remote records beyond the proactive budget (--proactive-max), resolved on misses.")
	fmt.Fprintf(w, "overlayd_proactive_left_to_misses %d\n", s.LeftToMisses)
	header(w, "overlayd_proactive_max", "gauge", "Budget of records programmed from the change feed (0: none, every remote record).")
	fmt.Fprintf(w, "overlayd_proactive_max %d\n", s.Max)
	counter(w, "overlayd_feed_misses_ignored_total", "Misses not resolved because proactive mode programs their records.", s.MissesIgnore)
	counter(w, "overlayd_feed_restarts_total", "Times the change feed ended and was watched again.", s.Restarts)
	header(w, "overlayd_feed_spans", "gauge", "Spans in the change feed's view: nodes' address blocks (Kubernetes: podCIDRs), every address resolved on misses from memory.")
	fmt.Fprintf(w, "overlayd_feed_spans %d\n", s.Spans)
	counter(w, "overlayd_feed_spans_refused_total", "Spans of the change feed not taken: malformed, outside the overlay subnet, overlapping another node's.", s.SpansRefused)
}
