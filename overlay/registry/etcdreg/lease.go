package etcdreg

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/etcdreg/internal/etcdv3"
)

// Backoff between attempts to grant a new lease while etcd is away.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Stats returns the lease counters (registry.Leaser).
func (r *Registry) Stats() registry.LeaseStats {
	r.mu.RLock()
	id := r.lease
	r.mu.RUnlock()
	return registry.LeaseStats{
		LeaseID:      int64(id),
		LeaseUp:      r.opts.NoLease || r.leaseUp.Load(),
		LeaseLost:    r.leaseLost.Load(),
		Reregistered: r.reregistered.Load(),
		WatchRelists: r.relists.Load(),
	}
}

// keepLease keeps id alive until Close; when the lease is lost it grants a
// new one and moves this node's records to it.
func (r *Registry) keepLease(id etcdv3.LeaseID) {
	defer r.wg.Done()
	for {
		why := r.holdLease(id)
		if r.ctx.Err() != nil || r.revoked.Load() {
			r.leaseUp.Store(false)
			return
		}
		r.leaseUp.Store(false)
		r.leaseLost.Add(1)
		r.log.Warn("etcd lease lost; will register this node's records again under a new lease",
			"lease", int64(id), "reason", why)
		if id = r.renewLease(id); id == 0 {
			return
		}
	}
}

// holdLease runs KeepAlive on id and returns why it stopped.
func (r *Registry) holdLease(id etcdv3.LeaseID) string {
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	ch, err := r.cli.KeepAlive(ctx, id)
	if err != nil {
		return err.Error()
	}
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return "keep-alive stopped: lease expired, or etcd unreachable for the TTL"
			}
		case <-r.kick:
			tctx, done := r.opCtx(r.ctx)
			resp, err := r.cli.TimeToLive(tctx, id)
			done()
			if err == nil && resp.TTL <= 0 {
				return "lease expired"
			}
		case <-r.ctx.Done():
			return "closed"
		}
	}
}

// renewLease grants a new lease, with backoff while etcd is away, and
// registers the owned records and the node key under it; then it revokes
// old. It returns the new lease, or 0 once the registry is closed.
func (r *Registry) renewLease(old etcdv3.LeaseID) etcdv3.LeaseID {
	backoff := minBackoff
	for attempt := 1; ; attempt++ {
		if id, err := r.tryRenew(old); err == nil {
			r.log.Info("etcd lease re-established", "lease", int64(id), "attempts", attempt)
			return id
		} else if r.ctx.Err() != nil {
			return 0
		} else if attempt == 1 || attempt%10 == 0 {
			r.log.Warn("etcd lease: cannot re-establish yet", "attempts", attempt, "err", err)
		}
		select {
		case <-time.After(backoff):
		case <-r.ctx.Done():
			return 0
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// tryRenew is one attempt of renewLease.
func (r *Registry) tryRenew(old etcdv3.LeaseID) (etcdv3.LeaseID, error) {
	ctx, done := r.opCtx(r.ctx)
	g, err := r.cli.Grant(ctx, ttlSeconds(r.opts.TTL))
	done()
	if err != nil {
		return 0, r.wrap("grant lease", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ownMu.Lock()
	own := make([]registry.Record, 0, len(r.own))
	for _, rec := range r.own {
		own = append(own, rec)
	}
	if r.opts.Keep != nil {
		kept := make(map[registry.Record]bool, len(own))
		for _, rec := range r.opts.Keep(slices.Clone(own)) {
			kept[rec] = true
		}
		own = slices.DeleteFunc(own, func(rec registry.Record) bool {
			if kept[rec] {
				return false
			}
			r.log.Info("etcd: not registering again a record no longer on this node", "record", rec.String())
			delete(r.own, rec.IP)
			return true
		})
	}
	r.ownMu.Unlock()
	var errs []error
	n := 0
	for _, rec := range own {
		err := r.register(r.ctx, rec, g.ID)
		switch {
		case err == nil:
			n++
		case errors.Is(err, registry.ErrConflict):
			// Taken by someone else while we were away: ours no more.
			r.log.Error("etcd: record taken over during the outage; dropping it", "record", rec.String(), "err", err)
			r.ownMu.Lock()
			delete(r.own, rec.IP)
			r.ownMu.Unlock()
		default:
			errs = append(errs, err)
		}
	}
	if err := r.putNode(r.ctx, g.ID); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		ctx, done := r.opCtx(r.ctx)
		r.cli.Revoke(ctx, g.ID) // best effort; it expires anyway
		done()
		return 0, err
	}
	r.lease = g.ID
	r.leaseUp.Store(true)
	r.reregistered.Add(uint64(n))
	// Whatever still hangs on the old lease is no longer ours to keep.
	ctx, done = r.opCtx(r.ctx)
	r.cli.Revoke(ctx, old)
	done()
	return g.ID, nil
}
