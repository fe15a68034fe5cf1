package resolver

import (
	"net/netip"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
)

// The feed's view: in proactive and hybrid mode, the remote records of the
// change feed (feedState.tab: the feed's own copy, registry.Change.Table,
// read in place) are the resolver's copy of the registry. Once the feed has
// synced:
//
//   - a miss for a record of the view is answered from it, with no registry
//     call (a registry under write load answers in milliseconds; the view in
//     a map read). A miss for anything else is looked up in the registry as
//     in reactive mode: a record registered this instant may not have
//     reached the feed yet.
//   - the view is the set of known keys (see knownKeys): misses for its
//     records are not charged to the scan budget.
//   - reconcile passes check the kernel's entries against the view instead
//     of listing the registry (a listing of 100,000 endpoints reads 200,000
//     etcd keys, every pass).
//
// The view is as fresh as the feed's copy: the records of the registry at
// the revision of the last change the feed read, which may be ahead of the
// changes the follower has applied (those are programmed as they come). Its
// remote records are those the policy accepts and that are not at this
// node's VTEP: the others are skipped when it is read.

// viewed returns the view's record for ip (MAC and VTEP): its record, else
// the span holding it (span.go).
func (f *feedState) viewed(ip netip.Addr) (ethaddr.MAC, netip.Addr, bool) {
	if t := f.tab.Load(); t != nil {
		if rec, ok := t.Record(ip); ok && f.remote(rec) {
			return rec.MAC, rec.VTEP, true
		}
	}
	if s, ok := f.spanOf(ip); ok {
		if _, err := f.policy.CheckIP(ip); err == nil {
			return registry.DeriveMAC(ip), s.VTEP, true
		}
	}
	return ethaddr.MAC{}, netip.Addr{}, false
}

// remote says whether rec is a remote record of the view: accepted by the
// policy, not at this node's VTEP.
func (f *feedState) remote(rec registry.Record) bool {
	return (!f.local.IsValid() || rec.VTEP != f.local) && f.policy.Accepts(rec)
}

// viewedMAC returns the VTEP of mac's records in the view, else of the
// span holding the address mac is derived from.
func (f *feedState) viewedMAC(mac ethaddr.MAC) (netip.Addr, bool) {
	if t := f.tab.Load(); t != nil {
		vtep, refs, ok := t.VTEP(mac)
		if ok && refs > 0 && (!f.local.IsValid() || vtep != f.local) {
			if _, err := f.policy.CheckFDB(mac, vtep); err == nil {
				return vtep, true
			}
		}
	}
	if s, ok := f.spanOfMAC(mac); ok {
		return s.VTEP, true
	}
	return netip.Addr{}, false
}

// holds says whether the view has a record for k's key (its IP, or its MAC
// for an L2 miss).
func (f *feedState) holds(k missKey) bool {
	if k.kind == rtnl.MissL2 {
		_, ok := f.viewedMAC(k.mac)
		return ok
	}
	_, _, ok := f.viewed(k.ip)
	return ok
}

// view returns the feed's view once the feed has synced, nil before (and in
// reactive mode).
func (r *Resolver) view() *feedState {
	if r.feed == nil || !r.feed.synced.Load() {
		return nil
	}
	return r.feed
}

// isKnown says whether k's key is known to be in the registry: listed,
// found by a lookup, or in the feed's view. See knownKeys.
func (r *Resolver) isKnown(k missKey) bool {
	return r.known.has(k) || (r.feed != nil && r.feed.holds(k))
}

// answerFromView resolves k from the feed's view: its MAC (L3) and VTEP.
// ok is false when the view cannot answer (not synced, or no such record):
// the registry is asked instead.
func (r *Resolver) answerFromView(k missKey) (mac ethaddr.MAC, vtep netip.Addr, ok bool) {
	v := r.view()
	if v == nil {
		return mac, vtep, false
	}
	if k.kind == rtnl.MissL2 {
		mac = k.mac
		vtep, ok = v.viewedMAC(mac)
	} else {
		mac, vtep, ok = v.viewed(k.ip)
	}
	if ok {
		r.m.viewAnswers.Add(1)
	}
	return mac, vtep, ok
}
