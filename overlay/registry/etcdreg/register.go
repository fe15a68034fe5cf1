package etcdreg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/etcdreg/internal/etcdv3"
)

// maxTxnAttempts bounds the optimistic retries of Register when other
// writers keep changing the same keys.
const maxTxnAttempts = 8

// Register records r as arp/<ip> = MAC and fdb/<mac> = VTEP under this
// registry's lease, in one transaction that succeeds only if neither key
// holds another value: an IP registered to another MAC, or a MAC registered
// at another VTEP, is refused with an error wrapping registry.ErrConflict and
// nothing is written. Registering the same values again succeeds; if they
// are held under another lease (this node's daemon before a restart, or a
// one-shot client) they are moved to this registry's lease. The record is
// remembered and registered again whenever the lease has to be replaced.
func (r *Registry) Register(ctx context.Context, rec registry.Record) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	if r.revoked.Load() {
		return fmt.Errorf("etcdreg: register %s: this registry's lease was revoked", rec.IP)
	}
	for {
		r.mu.RLock()
		lease := r.lease
		err := r.register(ctx, rec, lease)
		if err == nil {
			r.ownMu.Lock()
			r.own[rec.IP] = rec
			r.ownMu.Unlock()
		}
		r.mu.RUnlock()
		if !errors.Is(err, etcdv3.ErrLeaseNotFound) {
			return err
		}
		// The lease expired (an outage longer than the TTL): have the
		// keeper grant a new one, then try again.
		if werr := r.awaitNewLease(ctx, lease); werr != nil {
			return fmt.Errorf("etcdreg: register %s: lease %x expired and no new lease yet: %w", rec.IP, lease, werr)
		}
	}
}

// register writes rec under lease (see Register). The caller holds r.mu.
func (r *Registry) register(ctx context.Context, rec registry.Record, lease etcdv3.LeaseID) error {
	octx, done := r.opCtx(ctx)
	defer done()
	op := "register " + rec.IP.String()
	arp, fdb := r.arpKey(rec.IP), r.fdbKey(rec.MAC)
	mac, vtep := rec.MAC.String(), rec.VTEP.String()
	puts := []etcdv3.Op{
		etcdv3.OpPut(arp, mac, etcdv3.WithLease(lease)),
		etcdv3.OpPut(fdb, vtep, etcdv3.WithLease(lease)),
	}
	cmps := []etcdv3.Cmp{
		etcdv3.Compare(etcdv3.CreateRevision(arp), "=", 0),
		etcdv3.Compare(etcdv3.CreateRevision(fdb), "=", 0),
	}
	for range maxTxnAttempts {
		resp, err := r.cli.Txn(octx).If(cmps...).Then(puts...).
			Else(etcdv3.OpGet(arp), etcdv3.OpGet(fdb)).Commit()
		if err != nil {
			return r.wrapLease(op, err)
		}
		if resp.Succeeded {
			return nil
		}
		arpKV := firstKV(resp.Responses[0])
		fdbKV := firstKV(resp.Responses[1])
		if arpKV != nil {
			have, err := parseMAC("arp/"+rec.IP.String(), arpKV.Value)
			if err != nil {
				return err
			}
			if have != rec.MAC {
				return fmt.Errorf("%w: IP %s is registered to MAC %s, not %s", registry.ErrConflict, rec.IP, have, rec.MAC)
			}
		}
		if fdbKV != nil {
			have, err := parseAddr("fdb/"+rec.MAC.String(), fdbKV.Value)
			if err != nil {
				return err
			}
			if have != rec.VTEP {
				return fmt.Errorf("%w: MAC %s is registered at VTEP %s, not %s", registry.ErrConflict, rec.MAC, have, rec.VTEP)
			}
		}
		if arpKV != nil && fdbKV != nil && etcdv3.LeaseID(arpKV.Lease) == lease && etcdv3.LeaseID(fdbKV.Lease) == lease {
			return nil // already ours
		}
		// Same values (or absent): write them under our lease, provided
		// nobody changed either key since we read it.
		cmps = []etcdv3.Cmp{sameAs(arp, arpKV), sameAs(fdb, fdbKV)}
	}
	return fmt.Errorf("etcdreg: %s: %s and %s keep changing under concurrent writers", op, arp, fdb)
}

// sameAs compares key with what was read: unchanged, or still absent.
func sameAs(key string, kv *etcdv3.KeyValue) etcdv3.Cmp {
	if kv == nil {
		return etcdv3.Compare(etcdv3.CreateRevision(key), "=", 0)
	}
	return etcdv3.Compare(etcdv3.ModRevision(key), "=", kv.ModRevision)
}

func firstKV(r *etcdv3.ResponseOp) *etcdv3.KeyValue {
	if rr := r.GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
		return rr.Kvs[0]
	}
	return nil
}

// Unregister deletes arp/<ip> if it holds r's MAC and fdb/<mac> if it holds
// r's VTEP, in one transaction, and forgets r. Missing records are not an
// error. An invalid IP or VTEP leaves that key alone.
func (r *Registry) Unregister(ctx context.Context, rec registry.Record) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	r.ownMu.Lock()
	if have, ok := r.own[rec.IP]; ok && have == rec {
		delete(r.own, rec.IP)
	}
	r.ownMu.Unlock()
	octx, done := r.opCtx(ctx)
	defer done()
	var ops []etcdv3.Op
	if rec.IP.IsValid() {
		k := r.arpKey(rec.IP)
		ops = append(ops, etcdv3.OpTxn(
			[]etcdv3.Cmp{etcdv3.Compare(etcdv3.Value(k), "=", rec.MAC.String())},
			[]etcdv3.Op{etcdv3.OpDelete(k)}, nil))
	}
	if rec.VTEP.IsValid() {
		k := r.fdbKey(rec.MAC)
		ops = append(ops, etcdv3.OpTxn(
			[]etcdv3.Cmp{etcdv3.Compare(etcdv3.Value(k), "=", rec.VTEP.String())},
			[]etcdv3.Op{etcdv3.OpDelete(k)}, nil))
	}
	if len(ops) == 0 {
		return nil
	}
	if _, err := r.cli.Txn(octx).Then(ops...).Commit(); err != nil {
		return r.wrap("unregister "+rec.IP.String(), err)
	}
	return nil
}

// Owned returns the records this registry keeps under its lease, the ones
// it registers again after an outage.
func (r *Registry) Owned() []registry.Record {
	r.ownMu.Lock()
	defer r.ownMu.Unlock()
	out := make([]registry.Record, 0, len(r.own))
	for _, rec := range r.own {
		out = append(out, rec)
	}
	return out
}

// wrapLease is wrap, except that an expired lease stays recognisable.
func (r *Registry) wrapLease(op string, err error) error {
	if errors.Is(err, etcdv3.ErrLeaseNotFound) {
		return err
	}
	return r.wrap(op, err)
}

// awaitNewLease kicks the lease keeper and waits until the lease is no
// longer old.
func (r *Registry) awaitNewLease(ctx context.Context, old etcdv3.LeaseID) error {
	select {
	case r.kick <- struct{}{}:
	default:
	}
	ctx, done := r.opCtx(ctx)
	defer done()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		r.mu.RLock()
		cur := r.lease
		r.mu.RUnlock()
		if cur != old && r.leaseUp.Load() {
			return nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return registry.Unavailable(ctx.Err())
		case <-r.ctx.Done():
			return errors.New("etcdreg: registry closed")
		}
	}
}
