package resolver

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// recordSource is what a reconcile pass checks the kernel's entries
// against: the feed's view (viewSource) or a listing of the registry
// (listSource). gone is true when the registry has no record; err when the
// record cannot be used (the entry is then kept).
type recordSource interface {
	mac(ip netip.Addr) (mac ethaddr.MAC, gone bool, err error)
	vtep(mac ethaddr.MAC) (vtep netip.Addr, gone bool, err error)
	// holdsMAC says whether the registry has records naming mac: an
	// unproven FDB entry for it is this overlay's (see adoptUnproven).
	holdsMAC(mac ethaddr.MAC) bool
	// current says, right before a planned fix is sent, whether it still
	// matches the source (nil: the source does not change).
	current(op *progOp) bool
}

// viewSource answers from the feed's view: no registry call. The view holds
// only records the checker accepted.
type viewSource struct {
	r *Resolver
	v *feedState
}

func (s viewSource) mac(ip netip.Addr) (ethaddr.MAC, bool, error) {
	mac, _, ok := s.v.viewed(ip)
	return mac, !ok, nil
}

func (s viewSource) vtep(mac ethaddr.MAC) (netip.Addr, bool, error) {
	v, ok := s.v.viewedMAC(mac)
	return v, !ok, nil
}

func (s viewSource) holdsMAC(mac ethaddr.MAC) bool {
	_, ok := s.v.viewedMAC(mac)
	return ok
}

// current checks a fix against the view as it is now: the feed changes it
// (and then programs the change) while a pass plans its fixes.
func (s viewSource) current(op *progOp) bool {
	switch op.kind {
	case opSetNeigh:
		mac, vtep, ok := s.v.viewed(op.ip)
		return ok && mac == op.mac && !s.r.isLocal(vtep)
	case opDelNeigh:
		_, vtep, ok := s.v.viewed(op.ip)
		return !ok || s.r.isLocal(vtep)
	case opSetFDB:
		vtep, ok := s.v.viewedMAC(op.mac)
		return ok && vtep == op.vtep
	case opDelFDB:
		vtep, ok := s.v.viewedMAC(op.mac)
		return !ok || s.r.isLocal(vtep)
	}
	return true
}

// listSource answers from one listing of the registry, of the records the
// checker accepted; when the listing was incomplete, keys it lacks are
// looked up one by one. A record the checker rejects is gone: its entries
// are removed, as they would never have been programmed.
type listSource struct {
	r          *Resolver
	ctx        context.Context
	byIP       map[netip.Addr]ethaddr.MAC
	byMAC      map[ethaddr.MAC]netip.Addr
	incomplete bool
}

func (s listSource) mac(ip netip.Addr) (ethaddr.MAC, bool, error) {
	if m, ok := s.byIP[ip]; ok {
		return m, false, nil
	}
	if !s.incomplete {
		return ethaddr.MAC{}, true, nil
	}
	m, err := s.r.lookupMAC(s.ctx, ip)
	if errors.Is(err, registry.ErrNotFound) || errors.Is(err, errBadRecord) {
		return m, true, nil
	}
	return m, false, err
}

func (s listSource) vtep(mac ethaddr.MAC) (netip.Addr, bool, error) {
	if v, ok := s.byMAC[mac]; ok {
		return v, false, nil
	}
	v, err := s.r.lookupVTEP(s.ctx, mac)
	if errors.Is(err, registry.ErrNotFound) || errors.Is(err, errBadRecord) {
		return v, true, nil
	}
	return v, false, err
}

func (listSource) current(*progOp) bool { return true }

func (s listSource) holdsMAC(mac ethaddr.MAC) bool {
	if _, ok := s.byMAC[mac]; ok {
		return true
	}
	if !s.incomplete {
		return false
	}
	_, err := s.r.lookupVTEP(s.ctx, mac)
	return err == nil
}

// recordSource returns what a pass checks ke against: the feed's view once
// it synced (no listing: the known keys are the view's, plus what lookups
// find until the next pass), else a listing of the registry (see
// listRecords; done: the pass has nothing more to do).
func (r *Resolver) recordSource(ctx context.Context, ke *kernelEntries, st *ReconcileStats, start time.Time) (src recordSource, done bool, err error) {
	if v := r.view(); v != nil {
		r.known.replaceKeys(nil, nil)
		return viewSource{r, v}, false, nil
	}
	done, ls, err := r.listRecords(ctx, ke, st, start)
	return ls, done, err
}

// listRecords lists the registry for a pass that has no feed view to check
// against, and makes the listing the known keys. done is true when the pass
// has nothing more to do (no entries to check: the keys were all it needed).
func (r *Resolver) listRecords(ctx context.Context, ke *kernelEntries, st *ReconcileStats, start time.Time) (done bool, src listSource, err error) {
	nothingToCheck := st.Entries == 0 && len(ke.unproven) == 0
	// A KeyLister gives the keys without reading every record.
	if kl, ok := r.cfg.Registry.(registry.KeyLister); ok && nothingToCheck {
		lctx, cancel := context.WithTimeout(ctx, max(r.cfg.LookupTimeout, listTimeout))
		ips, macs, err := kl.Keys(lctx)
		cancel()
		if err == nil {
			r.known.replaceKeys(ips, macs)
			r.markListed()
			st.Took = time.Since(start)
			return true, src, nil
		}
	}

	// A listing reads the whole overlay (200,000 etcd keys for 100,000
	// endpoints: seconds on a loaded machine), not one key: it gets
	// listTimeout, not the lookups' timeout.
	lctx, cancel := context.WithTimeout(ctx, max(r.cfg.LookupTimeout, listTimeout))
	t0 := time.Now()
	recs, listErr := r.check.List(lctx, r.cfg.Registry)
	r.m.lookup.observe(time.Since(t0))
	cancel()
	if listErr != nil && recs == nil {
		r.m.reconcileErrors.Add(1)
		return true, src, listErr
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
	if nothingToCheck {
		st.Took = time.Since(start)
		return true, src, nil
	}
	src = listSource{r: r, ctx: ctx, incomplete: listErr != nil,
		byIP: make(map[netip.Addr]ethaddr.MAC, len(recs)), byMAC: make(map[ethaddr.MAC]netip.Addr, len(recs))}
	for _, rec := range recs {
		src.byIP[rec.IP] = rec.MAC
		if rec.VTEP.IsValid() {
			src.byMAC[rec.MAC] = rec.VTEP
		}
	}
	return false, src, nil
}

// awaitFeed waits, before the first reconcile pass, for the change feed's
// first sync (its listing of the registry), so that the pass checks against
// the feed's view instead of listing the registry a second time. It waits
// at most listTimeout, and not once a watch could not start.
func (r *Resolver) awaitFeed(ctx context.Context) {
	if r.feed == nil {
		return
	}
	t := time.NewTimer(listTimeout)
	defer t.Stop()
	select {
	case <-r.feed.syncedCh:
	case <-r.feed.watchFailed:
	case <-t.C:
	case <-ctx.Done():
	}
}
