package resolver

import (
	"context"
	"net/netip"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// Spans: a store that assigns every node an address block (Kubernetes: a
// Node's podCIDR) feeds spans (registry.Span), each standing for every
// address of its block: a container at the span's VTEP whose MAC is
// derived from its IP. The spans are part of the feed's view (view.go):
//
//   - a miss for an address of a span, or an L2 miss for a MAC derived from
//     one, is answered from the span held in memory, like a record of the
//     view; nothing is programmed ahead of misses (a /24 per node would be
//     254 entries per node), so spans are resolved on misses in every
//     mode;
//   - a reconcile pass checks each programmed entry against the spans as
//     against records: an entry that no span (and no record) explains is
//     removed, an FDB entry whose span moved to another VTEP is updated;
//   - when spans change (a node deleted, or its VTEP changed: a Delete
//     then a Put), the entries programmed for their blocks are checked at
//     once, spanSettle after the first change, without waiting for the
//     next pass: a node's entries go from every peer, and a node's new
//     VTEP reaches every peer, within that delay.

// spanSettle is how long the follower lets span changes accumulate before
// it checks the entries they touch: a VTEP change arrives as a Delete and
// a Put, and its entries are updated, not removed and learnt again.
const spanSettle = 100 * time.Millisecond

// spanOf returns the span of the view holding ip.
func (f *feedState) spanOf(ip netip.Addr) (registry.Span, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.spans.Holding(ip)
}

// spanOfMAC returns the span holding the address mac is derived from.
func (f *feedState) spanOfMAC(mac ethaddr.MAC) (registry.Span, bool) {
	ip, ok := registry.DerivedIP(mac)
	if !ok {
		return registry.Span{}, false
	}
	return f.spanOf(ip)
}

// handleSpan applies one span change of the feed (the follower only).
func (r *Resolver) handleSpan(c registry.Change) {
	f, s := r.feed, c.Span
	switch c.Kind {
	case registry.ChangePut:
		if f.fresh {
			f.seenSpans[s.Prefix] = struct{}{}
		}
		if !r.check.AcceptSpan(s) { // counted and logged by the checker
			f.spansRefused.Add(1)
			return
		}
		f.mu.Lock()
		held, had := f.spans.Get(s.Prefix)
		other, overlaps := f.spans.Overlapping(s.Prefix)
		if !overlaps && (!had || held != s) {
			f.spans.Put(s)
		}
		f.mu.Unlock()
		switch {
		case overlaps:
			f.spansRefused.Add(1)
			r.log.Warn("change feed: skipping a span overlapping another", "span", s.String(), "overlaps", other.String())
			return
		case had && held == s:
			return
		}
	case registry.ChangeDelete:
		f.mu.Lock()
		held, had := f.spans.Get(s.Prefix)
		if had && held == s {
			f.spans.Drop(s.Prefix)
		}
		f.mu.Unlock()
		if !had || held != s {
			return
		}
	}
	f.spanCount.Store(int64(f.spans.Len()))
	f.dirty = append(f.dirty, s.Prefix)
	r.table.forgetAll() // addresses unknown a moment ago may be in the span now
}

// forgetUnseenSpans drops the spans a fresh watch did not deliver again
// before its first ChangeSynced (the follower only).
func (r *Resolver) forgetUnseenSpans() {
	f := r.feed
	f.mu.Lock()
	for s := range f.spans.All() {
		if _, ok := f.seenSpans[s.Prefix]; !ok {
			f.spans.Drop(s.Prefix)
			f.dirty = append(f.dirty, s.Prefix)
		}
	}
	f.mu.Unlock()
	f.spanCount.Store(int64(f.spans.Len()))
	f.seenSpans = nil
}

// fixSpans checks, against the view, the entries programmed for the
// blocks of the spans that changed since the last call (f.dirty): an
// entry whose span is gone is removed, one whose span moved to another
// VTEP is updated, one whose block is now this node's is removed. It
// plans and sends as a reconcile pass does, for those entries only (the
// follower only).
func (r *Resolver) fixSpans(ctx context.Context) {
	f := r.feed
	dirty := f.dirty
	f.dirty = nil
	in := func(ip netip.Addr) bool {
		for _, p := range dirty {
			if p.Contains(ip) {
				return true
			}
		}
		return false
	}
	ke := r.prog.trackedWhere(in)
	if ke.neigh.len() == 0 && ke.fdb.len() == 0 {
		return
	}
	var st ReconcileStats
	src := viewSource{r, f}
	err := r.sendFixes(r.planFixes(ke, src, &st), src, &st)
	r.m.reconcileFixes[reconcileUpdated].Add(uint64(st.Updated))
	r.m.reconcileFixes[reconcileRemoved].Add(uint64(st.Removed))
	if err != nil || st.Changed() > 0 {
		r.log.Info("entries of changed spans checked", "spans", len(dirty), "entries", ke.neigh.len()+ke.fdb.len(),
			"updated", st.Updated, "removed", st.Removed, "err", err)
	}
	if ctx.Err() == nil && err != nil {
		r.Kick() // a pass tries again
	}
}

// trackedWhere returns the tracked entries of addresses in: the neighbour
// entries of those IPs and the FDB entries of the MACs derived from them.
func (p *programmer) trackedWhere(in func(netip.Addr) bool) kernelEntries {
	p.lock()
	defer p.mu.Unlock()
	var ke kernelEntries
	for k, mac := range p.neigh.all() {
		if in(k.ip.Addr()) {
			ke.neigh.set(k, mac)
		}
	}
	for mac, vtep := range p.fdb.all() {
		if ip, ok := registry.DerivedIP(mac); ok && in(ip) {
			ke.fdb.set(mac, vtep)
		}
	}
	return ke
}
