package kubereg

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/kubereg/internal/kubeapi"
)

// AnnotationMember is an encrypted overlay's member record of the node: its
// tunnel address, WireGuard public key and endpoint, as JSON
// (registry.Member), put there by its own daemon (nodes/status).
const AnnotationMember = "overlaynet.io/wireguard"

// The member capabilities of a Registry (see package registry).
var (
	_ registry.MemberStore   = (*Registry)(nil)
	_ registry.MemberWatcher = (*Registry)(nil)
)

// parseMember reads a Node's member annotation: ok with a valid member, bad
// when there is an annotation that is none.
func parseMember(s string, has bool) (m registry.Member, ok, bad bool) {
	if !has {
		return m, false, false
	}
	var probe struct {
		VTEP netip.Addr `json:"vtep"`
	}
	if len(s) > registry.MaxMemberLen || json.Unmarshal([]byte(s), &probe) != nil || !probe.VTEP.IsValid() {
		return m, false, true
	}
	m, err := registry.ParseMember(probe.VTEP, []byte(s))
	return m, err == nil, err != nil
}

// ClaimMember annotates this node's Node with m, unless another Node's
// member holds m's tunnel address (as the Node list says: two daemons
// claiming one address at the same instant both annotate their own Node,
// and the older Node keeps it, as for VTEPs: Members leaves the other out).
func (r *Registry) ClaimMember(ctx context.Context, m registry.Member) error {
	value, err := registry.MarshalMember(m)
	if err != nil {
		return err
	}
	if !r.synced.Load() {
		return registry.Unavailable(errNotSynced)
	}
	r.mu.RLock()
	for name, ni := range r.nodes {
		if name != r.opts.NodeName && ni.hasMember && ni.member.VTEP == m.VTEP && !ni.deleting {
			r.mu.RUnlock()
			return fmt.Errorf("%w: tunnel address %s is held by Node %s", registry.ErrConflict, m.VTEP, name)
		}
	}
	r.mu.RUnlock()
	return r.annotate(ctx, &value)
}

// annotate sets (or with nil, removes) this node's member annotation.
func (r *Registry) annotate(ctx context.Context, value *string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]*string{AnnotationMember: value}}})
	if err != nil {
		return fmt.Errorf("kubereg: %w", err)
	}
	return r.patchStatus(ctx, kubeapi.MergePatch, patch)
}

// RemoveMember removes this node's member annotation if it holds vtep and
// owner.
func (r *Registry) RemoveMember(ctx context.Context, vtep netip.Addr, owner string) error {
	if !r.synced.Load() {
		return registry.Unavailable(errNotSynced)
	}
	r.mu.RLock()
	own, ok := r.nodes[r.opts.NodeName]
	r.mu.RUnlock()
	if !ok || !own.hasMember || own.member.VTEP != vtep || own.member.Owner != owner {
		return nil
	}
	return r.annotate(ctx, nil)
}

// Members returns the member of every Node that has a valid one, the
// older Node's where two hold one tunnel address; the others are
// Rejected, named nodes/NAME/wireguard.
func (r *Registry) Members(context.Context) ([]registry.Member, []registry.Rejected, error) {
	if !r.synced.Load() {
		return nil, nil, registry.Unavailable(errNotSynced)
	}
	r.mu.RLock()
	nodes := make([]nodeInfo, 0, len(r.nodes))
	for _, ni := range r.nodes {
		if !ni.deleting && (ni.hasMember || ni.badMember) {
			nodes = append(nodes, ni)
		}
	}
	r.mu.RUnlock()
	slices.SortFunc(nodes, older)
	var out []registry.Member
	var rej []registry.Rejected
	held := map[netip.Addr]bool{}
	for _, ni := range nodes {
		key := "nodes/" + ni.name + "/wireguard"
		switch {
		case ni.badMember:
			rej = append(rej, registry.Rejected{Key: key, Reason: registry.ReasonMalformed})
		case held[ni.member.VTEP]:
			rej = append(rej, registry.Rejected{Key: key, Reason: registry.ReasonMalformed})
		default:
			held[ni.member.VTEP] = true
			out = append(out, ni.member)
		}
	}
	return out, rej, nil
}

// WatchMembers signals each change of a Node's member annotation, VTEP or
// deletion, until ctx ends.
func (r *Registry) WatchMembers(ctx context.Context) (<-chan struct{}, error) {
	ch := make(chan struct{}, 1)
	r.mu.Lock()
	if r.memberSubs == nil {
		r.memberSubs = map[chan struct{}]struct{}{}
	}
	r.memberSubs[ch] = struct{}{}
	r.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-r.done.Done():
		}
		r.mu.Lock()
		delete(r.memberSubs, ch)
		r.mu.Unlock()
		close(ch)
	}()
	return ch, nil
}

// signalMembersLocked wakes the member watchers when a Node's member part
// changed from old (had: there was one) to now. The caller holds mu.
func (r *Registry) signalMembersLocked(old nodeInfo, had bool, now nodeInfo, deleted bool) {
	if had && !deleted && old.member == now.member && old.hasMember == now.hasMember && old.vtep == now.vtep && old.deleting == now.deleting {
		return
	}
	if !had && !now.hasMember && !now.badMember {
		return
	}
	for ch := range r.memberSubs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
