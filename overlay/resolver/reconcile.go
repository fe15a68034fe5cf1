package resolver

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
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
	r.reconcileLogged(ctx, true)
	var sum resolutionSummary
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			sum.log(r)
		case <-r.kick:
		}
		r.reconcileLogged(ctx, false)
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

func (r *Resolver) reconcileLogged(ctx context.Context, first bool) {
	st, err := r.Reconcile(ctx)
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
//  2. the registry is listed once (keys it does not list are looked up one
//     by one), and the listing becomes the resolver's view of known keys
//     (see knownKeys);
//  3. an entry whose record changed is re-programmed, one whose record is
//     gone is removed; an FDB entry whose MAC now lives at this node's VTEP
//     is removed. An entry whose record cannot be read or is malformed is
//     left as is (and logged): a broken registry never tears down traffic.
//
// The changes go to the kernel in one batch. The negative cache is cleared,
// so keys registered since are resolved at their next miss.
func (r *Resolver) Reconcile(ctx context.Context) (ReconcileStats, error) {
	start := time.Now()
	var st ReconcileStats
	defer r.m.reconciles.Add(1)
	defer r.markListed() // whatever the outcome: misses must not wait forever
	ke, adopted, err := r.prog.sync()
	if err != nil {
		r.m.reconcileErrors.Add(1)
		return st, err
	}
	st.Entries = len(ke.neigh) + len(ke.fdb)
	st.Adopted = adopted
	r.m.reconcileFixes[reconcileAdopted].Add(uint64(adopted))
	r.table.forgetAll()

	// Nothing to check against the records: the keys are all the pass
	// needs, and a KeyLister gives them without reading every record.
	if kl, ok := r.cfg.Registry.(KeyLister); ok && st.Entries == 0 && len(ke.unproven) == 0 {
		lctx, cancel := context.WithTimeout(ctx, max(r.cfg.LookupTimeout, listTimeout))
		ips, macs, err := kl.Keys(lctx)
		cancel()
		if err == nil {
			r.known.replaceKeys(ips, macs)
			r.markListed()
			st.Took = time.Since(start)
			return st, nil
		}
	}

	// A listing reads the whole overlay (200,000 etcd keys for 100,000
	// endpoints: seconds on a loaded machine), not one key: it gets
	// listTimeout, not the lookups' timeout.
	lctx, cancel := context.WithTimeout(ctx, max(r.cfg.LookupTimeout, listTimeout))
	t0 := time.Now()
	recs, listErr := r.cfg.Registry.List(lctx)
	r.m.lookup.observe(time.Since(t0))
	cancel()
	if listErr != nil && recs == nil {
		r.m.reconcileErrors.Add(1)
		return st, listErr
	}
	if listErr != nil {
		r.log.Warn("registry list incomplete; unlisted keys are looked up one by one", "err", listErr)
		for _, rec := range recs {
			r.known.found(rec.IP, rec.MAC)
		}
	} else {
		r.known.replace(recs)
	}
	r.markListed()
	if st.Entries == 0 && len(ke.unproven) == 0 {
		st.Took = time.Since(start)
		return st, nil
	}
	byIP := make(map[netip.Addr]registry.MAC, len(recs))
	byMAC := make(map[registry.MAC]netip.Addr, len(recs))
	for _, rec := range recs {
		byIP[rec.IP] = rec.MAC
		if rec.VTEP.IsValid() {
			byMAC[rec.MAC] = rec.VTEP
		}
	}
	r.adoptUnproven(ctx, ke, byMAC, listErr != nil, &st)
	// wantVTEP answers MAC → VTEP: from the list, else one lookup.
	// gone is true when the registry has no record; err when the record
	// cannot be used.
	wantVTEP := func(mac registry.MAC) (vtep netip.Addr, gone bool, err error) {
		if v, ok := byMAC[mac]; ok {
			if err := r.checkVTEP(v); err != nil {
				return v, false, err
			}
			return v, false, nil
		}
		v, err := r.lookupVTEP(ctx, mac)
		if errors.Is(err, registry.ErrNotFound) {
			return v, true, nil
		}
		return v, false, err
	}
	wantMAC := func(ip netip.Addr) (mac registry.MAC, gone bool, err error) {
		if m, ok := byIP[ip]; ok {
			if err := registry.ValidateMAC(m); err != nil {
				return m, false, err
			}
			return m, false, nil
		}
		if listErr == nil {
			return mac, true, nil
		}
		m, err := r.lookupMAC(ctx, ip)
		if errors.Is(err, registry.ErrNotFound) {
			return m, true, nil
		}
		return m, false, err
	}

	fix := &resolution{action: "reconciled", logInfo: true}
	fdbPlanned := make(map[registry.MAC]bool)
	for k, have := range ke.neigh {
		want, gone, err := wantMAC(k.ip)
		switch {
		case err != nil:
			r.log.Warn("reconcile: keeping neighbour entry, its record is unusable", "ip", k.ip, "mac", have, "err", err)
		case gone:
			fix.ops = append(fix.ops, progOp{kind: opDelNeigh, ifindex: k.ifindex, ip: k.ip, mac: have})
			st.Removed++
		case want == have:
			// A container that moved to this node answers ARP itself: a proxy
			// entry would make the bridge learn its MAC on the vxlan port.
			if vtep, vgone, verr := wantVTEP(want); verr == nil && !vgone && r.isLocal(vtep) {
				fix.ops = append(fix.ops, progOp{kind: opDelNeigh, ifindex: k.ifindex, ip: k.ip, mac: have})
				st.Removed++
			}
		default:
			vtep, vgone, verr := wantVTEP(want)
			if verr != nil || vgone {
				r.log.Warn("reconcile: IP moved to a MAC without a usable VTEP; removing its entry", "ip", k.ip, "mac", want, "err", verr)
				fix.ops = append(fix.ops, progOp{kind: opDelNeigh, ifindex: k.ifindex, ip: k.ip, mac: have})
				st.Removed++
				continue
			}
			if r.isLocal(vtep) {
				fix.ops = append(fix.ops, progOp{kind: opDelNeigh, ifindex: k.ifindex, ip: k.ip, mac: have})
				st.Removed++
				continue
			}
			fix.ops = append(fix.ops, progOp{kind: opSetNeigh, ifindex: k.ifindex, ip: k.ip, mac: want})
			st.Updated++
			if ke.fdb[want] != vtep && !fdbPlanned[want] {
				fix.ops = append(fix.ops, progOp{kind: opSetFDB, mac: want, vtep: vtep})
				fdbPlanned[want] = true
			}
		}
	}
	for mac, have := range ke.fdb {
		want, gone, err := wantVTEP(mac)
		switch {
		case err != nil:
			r.log.Warn("reconcile: keeping FDB entry, its record is unusable", "mac", mac, "vtep", have, "err", err)
		case gone || r.isLocal(want):
			fix.ops = append(fix.ops, progOp{kind: opDelFDB, mac: mac, vtep: have})
			st.Removed++
		case want != have && !fdbPlanned[mac]:
			fix.ops = append(fix.ops, progOp{kind: opSetFDB, mac: mac, vtep: want})
			st.Updated++
		}
	}
	if len(fix.ops) > 0 {
		r.prog.apply([]*resolution{fix})
		var errs []error
		for _, op := range fix.ops {
			if op.err != nil {
				errs = append(errs, op.err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			r.m.reconcileErrors.Add(1)
			st.Took = time.Since(start)
			return st, err
		}
	}
	r.m.reconcileFixes[reconcileUpdated].Add(uint64(st.Updated))
	r.m.reconcileFixes[reconcileRemoved].Add(uint64(st.Removed))
	st.Took = time.Since(start)
	return st, nil
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
// another controller of the vxlan and are never changed or removed. When
// the listing was incomplete, unlisted MACs are looked up.
func (r *Resolver) adoptUnproven(ctx context.Context, ke kernelEntries, byMAC map[registry.MAC]netip.Addr, incomplete bool, st *ReconcileStats) {
	for mac, vtep := range ke.unproven {
		_, ours := byMAC[mac]
		if !ours && incomplete {
			_, err := r.lookupVTEP(ctx, mac)
			ours = err == nil
		}
		if !ours {
			st.Foreign++
			continue
		}
		r.prog.adoptFDB(mac, vtep)
		ke.fdb[mac] = vtep
		st.Adopted++
		st.Entries++
		r.m.reconcileFixes[reconcileAdopted].Add(1)
	}
}
