package etcdreg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
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
func (r *Registry) register(ctx context.Context, rec registry.Record, lease clientv3.LeaseID) error {
	octx, done := r.opCtx(ctx)
	defer done()
	op := "register " + rec.IP.String()
	arp, fdb := r.arpKey(rec.IP), r.fdbKey(rec.MAC)
	mac, vtep := rec.MAC.String(), rec.VTEP.String()
	puts := []clientv3.Op{
		clientv3.OpPut(arp, mac, clientv3.WithLease(lease)),
		clientv3.OpPut(fdb, vtep, clientv3.WithLease(lease)),
	}
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(arp), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(fdb), "=", 0),
	}
	for range maxTxnAttempts {
		resp, err := r.cli.Txn(octx).If(cmps...).Then(puts...).
			Else(clientv3.OpGet(arp), clientv3.OpGet(fdb)).Commit()
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
		if arpKV != nil && fdbKV != nil && clientv3.LeaseID(arpKV.Lease) == lease && clientv3.LeaseID(fdbKV.Lease) == lease {
			return nil // already ours
		}
		// Same values (or absent): write them under our lease, provided
		// nobody changed either key since we read it.
		cmps = []clientv3.Cmp{sameAs(arp, arpKV), sameAs(fdb, fdbKV)}
	}
	return fmt.Errorf("etcdreg: %s: %s and %s keep changing under concurrent writers", op, arp, fdb)
}

// sameAs compares key with what was read: unchanged, or still absent.
func sameAs(key string, kv *mvccpb.KeyValue) clientv3.Cmp {
	if kv == nil {
		return clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	}
	return clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)
}

func firstKV(r *pb.ResponseOp) *mvccpb.KeyValue {
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
	var ops []clientv3.Op
	if rec.IP.IsValid() {
		k := r.arpKey(rec.IP)
		ops = append(ops, clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Value(k), "=", rec.MAC.String())},
			[]clientv3.Op{clientv3.OpDelete(k)}, nil))
	}
	if rec.VTEP.IsValid() {
		k := r.fdbKey(rec.MAC)
		ops = append(ops, clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Value(k), "=", rec.VTEP.String())},
			[]clientv3.Op{clientv3.OpDelete(k)}, nil))
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
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return err
	}
	return r.wrap(op, err)
}

// awaitNewLease kicks the lease keeper and waits until the lease is no
// longer old.
func (r *Registry) awaitNewLease(ctx context.Context, old clientv3.LeaseID) error {
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

// isUnavailable reports whether err means etcd did not answer.
func isUnavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrNoLeader) ||
		errors.Is(err, rpctypes.ErrTimeout) || errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail) ||
		errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}
