package resolver

import (
	"net/netip"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
)

// The feed's view: in proactive and hybrid mode, the remote records the
// change feed delivered (want, macRefs) are the resolver's copy of the
// registry. Once the feed has synced:
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
// The view is exactly as fresh as the feed: the records of the registry at
// the revision of the last change delivered.

// put adds or replaces rec in the view (the follower only).
func (f *feedState) put(rec registry.Record) {
	f.mu.Lock()
	f.want[registry.Compact(rec.IP)] = wantRec{mac: rec.MAC, vtep: registry.Compact(rec.VTEP)}
	ref := f.macRefs[rec.MAC]
	f.macRefs[rec.MAC] = macRef{vtep: registry.Compact(rec.VTEP), n: ref.n + 1}
	f.mu.Unlock()
}

// drop removes rec from the view (the follower only).
func (f *feedState) drop(rec registry.Record) {
	f.mu.Lock()
	delete(f.want, registry.Compact(rec.IP))
	if ref, ok := f.macRefs[rec.MAC]; ok {
		if ref.n <= 1 {
			delete(f.macRefs, rec.MAC)
		} else {
			ref.n--
			f.macRefs[rec.MAC] = ref
		}
	}
	f.mu.Unlock()
}

// viewed returns the view's record for ip (MAC and VTEP): its record, else
// the span holding it (span.go).
func (f *feedState) viewed(ip netip.Addr) (ethaddr.MAC, netip.Addr, bool) {
	f.mu.RLock()
	w, ok := f.want[registry.Compact(ip)]
	f.mu.RUnlock()
	if ok {
		return w.mac, w.vtep.Addr(), true
	}
	if s, ok := f.spanOf(ip); ok {
		if _, err := f.policy.CheckIP(ip); err == nil {
			return registry.DeriveMAC(ip), s.VTEP, true
		}
	}
	return ethaddr.MAC{}, netip.Addr{}, false
}

// viewedMAC returns the VTEP of mac's records in the view, else of the
// span holding the address mac is derived from.
func (f *feedState) viewedMAC(mac ethaddr.MAC) (netip.Addr, bool) {
	f.mu.RLock()
	ref, ok := f.macRefs[mac]
	f.mu.RUnlock()
	if ok {
		return ref.vtep.Addr(), true
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
