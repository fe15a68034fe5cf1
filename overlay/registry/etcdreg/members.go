package etcdreg

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/etcdreg/internal/etcdv3"
)

// The member capabilities of a Registry (see package registry).
var (
	_ registry.MemberStore   = (*Registry)(nil)
	_ registry.MemberWatcher = (*Registry)(nil)
)

func (r *Registry) memberKey(v netip.Addr) string { return r.base + registry.MemberKey(v) }

// ClaimMember writes members/<vtep> (no lease: a member outlives its
// daemon) in a transaction that succeeds only if the key does not exist, or
// still holds what was read of it, a member of m's owner: of two nodes
// claiming one tunnel address at once, exactly one wins.
func (r *Registry) ClaimMember(ctx context.Context, m registry.Member) error {
	value, err := registry.MarshalMember(m)
	if err != nil {
		return err
	}
	octx, done := r.opCtx(ctx)
	defer done()
	k := r.memberKey(m.VTEP)
	cmp := etcdv3.Compare(etcdv3.CreateRevision(k), "=", 0)
	for range maxTxnAttempts {
		resp, err := r.cli.Txn(octx).If(cmp).Then(etcdv3.OpPut(k, value)).Else(etcdv3.OpGet(k)).Commit()
		if err != nil {
			return r.wrap("claim member "+m.VTEP.String(), err)
		}
		if resp.Succeeded {
			return nil
		}
		kv := firstKV(resp.Responses[0])
		if kv == nil {
			cmp = etcdv3.Compare(etcdv3.CreateRevision(k), "=", 0) // removed meanwhile
			continue
		}
		held, err := registry.ParseMember(m.VTEP, kv.Value)
		if err != nil {
			return fmt.Errorf("%w: tunnel address %s holds no member record: %w", registry.ErrConflict, m.VTEP, err)
		}
		if held.Owner != m.Owner {
			return fmt.Errorf("%w: tunnel address %s is held by another node (%s)", registry.ErrConflict, m.VTEP, held.Endpoint)
		}
		if string(kv.Value) == value {
			return nil
		}
		cmp = etcdv3.Compare(etcdv3.ModRevision(k), "=", kv.ModRevision)
	}
	return fmt.Errorf("etcdreg: claim member %s: %s keeps changing under concurrent writers", m.VTEP, k)
}

// RemoveMember deletes members/<vtep> if owner holds it (and nobody
// changed it since it was read).
func (r *Registry) RemoveMember(ctx context.Context, vtep netip.Addr, owner string) error {
	k := r.memberKey(vtep)
	kv, err := r.get(ctx, "read member "+vtep.String(), k)
	if errors.Is(err, registry.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if m, err := registry.ParseMember(vtep, kv.Value); err != nil || m.Owner != owner {
		return nil
	}
	octx, done := r.opCtx(ctx)
	defer done()
	_, err = r.cli.Txn(octx).If(etcdv3.Compare(etcdv3.ModRevision(k), "=", kv.ModRevision)).
		Then(etcdv3.OpDelete(k)).Commit()
	if err != nil {
		return r.wrap("remove member "+vtep.String(), err)
	}
	return nil
}

// Members returns every member record under members/, and the keys there
// that are no member (a name that is no canonical address, a value that
// is no valid member of that address or too long).
func (r *Registry) Members(ctx context.Context) ([]registry.Member, []registry.Rejected, error) {
	octx, done := r.opCtx(ctx)
	defer done()
	prefix := r.base + "members/"
	resp, err := r.cli.Get(octx, prefix, etcdv3.WithPrefix())
	if err != nil {
		return nil, nil, r.wrap("list members", err)
	}
	var (
		out []registry.Member
		rej []registry.Rejected
	)
	for _, kv := range resp.Kvs {
		name := strings.TrimPrefix(string(kv.Key), prefix)
		vtep, err := netip.ParseAddr(name)
		if err != nil || vtep.String() != name || registry.CheckKeyIP(vtep) != nil {
			rej = append(rej, registry.Rejected{Key: "members/" + name, Reason: registry.ReasonMalformed})
			continue
		}
		m, err := registry.ParseMember(vtep, kv.Value)
		var rj registry.Rejected
		if errors.As(err, &rj) {
			rej = append(rej, rj)
			continue
		}
		out = append(out, m)
	}
	return out, rej, nil
}

// memberRewatch is how long WatchMembers waits before watching again after
// its watch broke (etcd away, no leader).
const memberRewatch = 500 * time.Millisecond

// WatchMembers signals every change under members/ and nodes/ (a member
// claimed, rekeyed or removed; a node's lease granted or expired) made
// after it returns, coalescing bursts, until ctx ends: the first watch
// starts after the store's revision when it was called, so that a change
// made before the watch is in place is not lost. A broken watch is watched
// again, and signalled, since something may have changed meanwhile.
func (r *Registry) WatchMembers(ctx context.Context) (<-chan struct{}, error) {
	ch := make(chan struct{}, 1)
	var from int64 // where etcd cannot say its revision: now, and signalled
	octx, done := r.opCtx(ctx)
	if resp, err := r.cli.Get(octx, r.base+"members/", etcdv3.WithLimit(1)); err == nil {
		from = resp.Header.Revision + 1
	} else {
		ch <- struct{}{}
	}
	done()
	signal := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(ch)
		for ctx.Err() == nil && r.ctx.Err() == nil {
			wctx, cancel := context.WithCancel(etcdv3.WithRequireLeader(ctx))
			stop := context.AfterFunc(r.ctx, cancel)
			members := r.cli.Watch(wctx, r.base+"members/", etcdv3.WithPrefix(), etcdv3.WithRev(from))
			nodes := r.cli.Watch(wctx, r.base+"nodes/", etcdv3.WithPrefix(), etcdv3.WithRev(from))
			from = 0 // a watch again starts now; the signal below covers the gap
		watching:
			for {
				var resp etcdv3.WatchResponse
				var ok bool
				select {
				case resp, ok = <-members:
				case resp, ok = <-nodes:
				}
				if !ok || resp.Err() != nil {
					break watching // both are watched again
				}
				signal()
			}
			stop()
			cancel()
			signal() // something may have been missed while the watch was down
			select {
			case <-ctx.Done():
			case <-r.ctx.Done():
			case <-time.After(memberRewatch):
			}
		}
	}()
	return ch, nil
}
