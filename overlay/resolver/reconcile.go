package resolver

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
)

// reconcileLoop runs a pass at start (adoption), every ReconcileInterval,
// and whenever Kick asks (after a monitor overrun).
func (r *Resolver) reconcileLoop(ctx context.Context) {
	var tick <-chan time.Time
	if r.cfg.ReconcileInterval > 0 {
		t := time.NewTicker(r.cfg.ReconcileInterval)
		defer t.Stop()
		tick = t.C
	}
	if r.feed != nil {
		// Adopt what a previous run left before the feed programs much,
		// then check against the feed's view once it synced, without
		// dumping the FDB again.
		r.adopt(ctx)
		r.awaitFeed(ctx)
		r.reconcileLogged(ctx, true, false)
	} else {
		r.reconcileLogged(ctx, true, true)
	}
	r.noteSettled()
	var sum resolutionSummary
	for {
		fdb := true
		select {
		case <-ctx.Done():
			return
		case <-tick:
			sum.log(r)
			fdb = r.view() == nil
		case <-r.kick:
		}
		r.reconcileLogged(ctx, false, fdb)
		r.noteSettled()
	}
}

// noteSettled closes the feed's settled channel after the first pass that
// followed its first sync (see Settled).
func (r *Resolver) noteSettled() {
	if f := r.feed; f != nil && f.synced.Load() {
		f.settleOnce.Do(func() { close(f.settled) })
	}
}

// Settled returns a channel closed once the change feed's first listing
// is programmed and checked: the first reconcile pass after the feed first
// synced has run. Start-up's transient memory (the listing's pages, the
// batches' buffers) is garbage from then on. It is nil in reactive mode.
func (r *Resolver) Settled() <-chan struct{} {
	if r.feed == nil {
		return nil
	}
	return r.feed.settled
}

// adopt tracks the entries with our marks a previous run left in the
// kernel (neighbours and FDB), before the feed programs its records. The
// FDB entries it cannot show to be ours wait in r.unproven for the first
// pass, which checks them against the feed's view (see adoptUnproven).
func (r *Resolver) adopt(ctx context.Context) {
	ke, adopted, err := r.prog.sync(true)
	r.unproven = ke.unproven
	switch {
	case ctx.Err() != nil:
	case err != nil:
		r.log.Warn("adopting entries of a previous run failed; the first pass checks the FDB", "err", err)
		r.Kick()
	case adopted > 0:
		r.m.reconcileFixes[reconcileAdopted].Add(uint64(adopted))
		r.log.Info("adopted entries of a previous run", "adopted", adopted)
	}
}

// resolutionSummary is the info line the daemon writes per reconcile
// interval in place of a line per resolution (those are debug): what the
// resolver did since the previous summary, if anything.
type resolutionSummary struct {
	resolved, dropped, unresolved uint64
	at                            time.Time
}

func (s *resolutionSummary) log(r *Resolver) {
	var cur resolutionSummary
	for i := range r.m.resolutions {
		cur.resolved += r.m.resolutions[i].Load()
	}
	for i := range r.m.dropped {
		cur.dropped += r.m.dropped[i].Load()
	}
	for i := range r.m.unresolved {
		cur.unresolved += r.m.unresolved[i].Load()
	}
	cur.at = time.Now()
	if cur.resolved != s.resolved || cur.dropped != s.dropped || cur.unresolved != s.unresolved {
		attrs := []any{"resolved", cur.resolved - s.resolved, "unresolved", cur.unresolved - s.unresolved,
			"dropped", cur.dropped - s.dropped}
		if !s.at.IsZero() {
			attrs = append(attrs, "in", cur.at.Sub(s.at).Round(time.Millisecond))
		}
		r.log.Info("misses", attrs...)
	}
	*s = cur
}

func (r *Resolver) reconcileLogged(ctx context.Context, first, fdb bool) {
	st, err := r.reconcile(ctx, fdb)
	switch {
	case ctx.Err() != nil:
	case err != nil:
		r.log.Warn("reconcile failed", "err", err)
	case first || st.Changed() > 0:
		r.log.Info("reconciled", "entries", st.Entries, "adopted", st.Adopted, "updated", st.Updated, "removed", st.Removed, "foreign", st.Foreign, "took", st.Took)
	default:
		r.log.Debug("reconciled", "entries", st.Entries, "took", st.Took)
	}
}

// listTimeout bounds a reconcile pass's listing of the registry.
const listTimeout = 30 * time.Second

// ReconcileStats says what one reconcile pass did.
type ReconcileStats struct {
	Entries int           // entries carrying our marks found in the kernel
	Adopted int           // of those, entries that were not tracked (after a restart: all)
	Updated int           // entries re-programmed because their record changed
	Removed int           // entries removed because their record is gone
	Foreign int           // FDB entries left alone: nothing shows they are ours
	Took    time.Duration // duration of the pass
}

// Changed returns the number of entries adopted, updated or removed.
func (s ReconcileStats) Changed() int { return s.Adopted + s.Updated + s.Removed }

// Reconcile brings the entries the resolver programmed in line with the
// kernel and the registry, in one pass:
//
//  1. the kernel is dumped: entries carrying our marks are tracked (adopted
//     if unknown, e.g. after a restart; nothing is flushed), tracked entries
//     that vanished are forgotten;
//  2. the entries are checked against the change feed's view of the
//     registry once the feed has synced (see view.go); otherwise the
//     registry is listed once (keys it does not list are looked up one by
//     one), and the listing becomes the resolver's view of known keys (see
//     knownKeys);
//  3. an entry whose record changed is re-programmed, one whose record is
//     gone is removed; an FDB entry whose MAC now lives at this node's VTEP
//     is removed. A record the checker rejects counts as gone (nothing
//     programs it). An entry whose record cannot be read (the store fails)
//     is left as is (and logged): a broken registry never tears down
//     traffic.
//
// The changes go to the kernel in batches of the feed's size, programming of
// misses and of the feed going on between them. The negative cache is cleared,
// so keys registered since are resolved at their next miss.
func (r *Resolver) Reconcile(ctx context.Context) (ReconcileStats, error) {
	return r.reconcile(ctx, true)
}

// reconcile is Reconcile; without fdb, the vxlan's FDB is not dumped, and
// the FDB entries checked are the tracked ones. The periodic passes of a
// resolver with a synced feed are such: the kernel's FDB dump is costly at
// scale (see programmer.sync). With a feed, the FDB is dumped when the
// resolver starts (adopt), and by passes after a monitor overrun or a feed
// re-sync (Kick); without one, by every pass.
func (r *Resolver) reconcile(ctx context.Context, fdb bool) (ReconcileStats, error) {
	start := time.Now()
	var st ReconcileStats
	defer r.m.reconciles.Add(1)
	defer r.markListed() // whatever the outcome: misses must not wait forever
	ke, adopted, err := r.prog.sync(fdb)
	if err != nil {
		r.m.reconcileErrors.Add(1)
		return st, err
	}
	if !fdb && r.unproven != nil {
		r.takeUnproven(ke)
	}
	st.Entries = ke.neigh.len() + ke.fdb.len()
	if ke.fdbTracked {
		st.Entries += r.prog.fdbLen()
	}
	st.Adopted = adopted
	r.m.reconcileFixes[reconcileAdopted].Add(uint64(adopted))
	r.table.forgetAll()

	src, done, err := r.recordSource(ctx, &ke, &st, start)
	if done || err != nil {
		return st, err
	}
	if _, view := src.(viewSource); ke.fdbTracked && !view {
		// A listing's source may look keys up in the registry: not
		// under the programmer's lock, so the tracking is copied.
		ke.fdb, ke.fdbTracked = r.prog.fdbCopy(), false
	}
	r.adoptUnproven(&ke, src, &st)
	err = r.sendFixes(r.planFixes(ke, src, &st), src, &st)
	st.Took = time.Since(start)
	if err != nil {
		r.m.reconcileErrors.Add(1)
		return st, err
	}
	r.m.reconcileFixes[reconcileUpdated].Add(uint64(st.Updated))
	r.m.reconcileFixes[reconcileRemoved].Add(uint64(st.Removed))
	return st, nil
}

// takeUnproven gives a pass that does not dump the FDB the entries adopt
// could not show to be ours, unless programmed since: the pass decides
// about them (adoptUnproven).
func (r *Resolver) takeUnproven(ke kernelEntries) {
	for mac, vtep := range r.unproven {
		if _, ok := r.prog.trackedFDB(mac); !ok {
			ke.unproven[mac] = vtep
		}
	}
	r.unproven = nil
}

// fixPlan gathers the fixes of one pass, counted in st as they are planned.
type fixPlan struct {
	r         *Resolver
	src       recordSource
	kernelFDB func(ethaddr.MAC) (netip.Addr, bool) // the FDB entries the pass found
	st        *ReconcileStats
	ops       []progOp
	fdbSet    map[ethaddr.MAC]bool // FDB entries planned for a neighbour entry's new MAC
}

// planFixes returns the changes that bring the entries of ke in line with
// src: a neighbour or FDB entry whose record changed is re-programmed, one
// whose record is gone, or now at this node, is removed, one whose record
// is unusable is kept. With ke.fdbTracked, the FDB entries are the
// tracking's, read in place (src is then the view: its answers take no
// registry call).
func (r *Resolver) planFixes(ke kernelEntries, src recordSource, st *ReconcileStats) []progOp {
	p := &fixPlan{r: r, src: src, kernelFDB: ke.fdb.get, st: st, fdbSet: make(map[ethaddr.MAC]bool)}
	if ke.fdbTracked {
		p.kernelFDB = r.prog.trackedFDB
	}
	for k, have := range ke.neigh.all() {
		p.neigh(k, have)
	}
	if ke.fdbTracked {
		r.prog.eachFDB(p.fdb)
		return p.ops
	}
	for mac, have := range ke.fdb.all() {
		p.fdb(mac, have)
	}
	return p.ops
}

// neigh plans the fix of the neighbour entry k -> have, if it needs one.
func (p *fixPlan) neigh(k neighKey, have ethaddr.MAC) {
	want, gone, err := p.src.mac(k.ip.Addr())
	switch {
	case err != nil:
		p.r.log.Warn("reconcile: keeping neighbour entry, its record is unusable", "ip", k.ip.Addr(), "mac", have, "err", err)
	case gone:
		p.delNeigh(k, have)
	case want == have:
		// A container that moved to this node answers ARP itself: a proxy
		// entry would make the bridge learn its MAC on the vxlan port.
		if vtep, vgone, verr := p.src.vtep(want); verr == nil && !vgone && p.r.isLocal(vtep) {
			p.delNeigh(k, have)
		}
	default:
		p.moved(k, have, want)
	}
}

// moved plans the fix of a neighbour entry whose IP now has another MAC,
// want: the entry points at want, and want's FDB entry at its VTEP; or it
// is removed when want has no usable VTEP or lives on this node.
func (p *fixPlan) moved(k neighKey, have, want ethaddr.MAC) {
	vtep, gone, err := p.src.vtep(want)
	if err != nil || gone {
		p.r.log.Warn("reconcile: IP moved to a MAC without a usable VTEP; removing its entry", "ip", k.ip.Addr(), "mac", want, "err", err)
		p.delNeigh(k, have)
		return
	}
	if p.r.isLocal(vtep) {
		p.delNeigh(k, have)
		return
	}
	if have, _ := p.kernelFDB(want); have != vtep && !p.fdbSet[want] {
		p.ops = append(p.ops, progOp{kind: opSetFDB, mac: want, vtep: vtep})
		p.fdbSet[want] = true
	}
	p.ops = append(p.ops, progOp{kind: opSetNeigh, ifindex: k.ifindex, ip: k.ip.Addr(), mac: want, counted: true})
	p.st.Updated++
}

func (p *fixPlan) delNeigh(k neighKey, have ethaddr.MAC) {
	p.ops = append(p.ops, progOp{kind: opDelNeigh, ifindex: k.ifindex, ip: k.ip.Addr(), mac: have, counted: true})
	p.st.Removed++
}

// fdb plans the fix of the FDB entry mac -> have, if it needs one.
func (p *fixPlan) fdb(mac ethaddr.MAC, have netip.Addr) {
	want, gone, err := p.src.vtep(mac)
	switch {
	case err != nil:
		p.r.log.Warn("reconcile: keeping FDB entry, its record is unusable", "mac", mac, "vtep", have, "err", err)
	case gone || p.r.isLocal(want):
		p.ops = append(p.ops, progOp{kind: opDelFDB, mac: mac, vtep: have, counted: true})
		p.st.Removed++
	case want != have && !p.fdbSet[mac]:
		p.ops = append(p.ops, progOp{kind: opSetFDB, mac: mac, vtep: want, counted: true})
		p.st.Updated++
	}
}

// sendFixes sends the fixes a batch of the feed's size at a time, the
// programmer's lock released in between: misses and the feed are
// programmed between the chunks. A fix src no longer agrees with when its
// turn comes is not sent, and no longer counted in st.
func (r *Resolver) sendFixes(ops []progOp, src recordSource, st *ReconcileStats) error {
	if len(ops) == 0 {
		return nil
	}
	var errs []error
	for chunk := range slices.Chunk(ops, r.prog.bulkMax) {
		part := &resolution{action: "reconciled", logInfo: true, ops: chunk, current: src.current}
		r.prog.apply([]*resolution{part})
		for _, op := range part.ops {
			switch {
			case op.err != nil:
				errs = append(errs, op.err)
			case op.superseded && op.counted && (op.kind == opDelNeigh || op.kind == opDelFDB):
				st.Removed--
			case op.superseded && op.counted:
				st.Updated--
			}
		}
	}
	return errors.Join(errs...)
}

// isLocal says whether vtep is this node's: its containers are reached
// through the bridge, with no neighbour or FDB entry on the vxlan.
func (r *Resolver) isLocal(vtep netip.Addr) bool {
	return r.cfg.LocalVTEP.IsValid() && vtep == r.cfg.LocalVTEP
}

// adoptUnproven decides about the FDB entries sync could not show to be
// ours: one whose MAC the registry holds is this overlay's container, left
// by an earlier run (an L2 miss, or the change feed, programs FDB entries
// alone): it is adopted and reconciled like the others. The rest belong to
// another controller of the vxlan and are never changed or removed.
func (r *Resolver) adoptUnproven(ke *kernelEntries, src recordSource, st *ReconcileStats) {
	for mac, vtep := range ke.unproven {
		if !src.holdsMAC(mac) {
			st.Foreign++
			continue
		}
		r.prog.adoptFDB(mac, vtep)
		if !ke.fdbTracked {
			ke.fdb.set(mac, vtep)
		}
		st.Adopted++
		st.Entries++
		r.m.reconcileFixes[reconcileAdopted].Add(1)
	}
}
