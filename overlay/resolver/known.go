package resolver

import (
	"net/netip"
	"sync"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
)

// knownKeys is the resolver's view of which keys the registry holds: the
// IPs and MACs of its latest listing (every reconcile pass lists it), plus
// the keys lookups found since, minus the keys lookups found missing since.
// With a synced change feed, no pass lists the registry: the feed's view
// holds its keys (Resolver.isKnown asks both), and knownKeys only what
// lookups found since the last pass.
//
// It only decides which budget a lookup is charged to, never an answer:
// every miss is still answered by a registry lookup made at the time of the
// miss (or from the feed's view, see view.go). A lookup for a known key runs at once; a lookup for any other key (a
// scan sweeping addresses nobody registered, a typo, a record registered
// since the last listing) first takes a token from the scan budget, and the
// miss is dropped (and counted) when none is left. So a stale view costs at
// most this: a record registered since the last listing is resolved within
// the budget (at once unless a scan is spending it, else at the sender's
// retry after the scan, and at the latest once the next reconcile pass has
// listed it); a record removed since is looked up once unbudgeted, found
// missing and forgotten. Safe for concurrent use.
type knownKeys struct {
	mu   sync.RWMutex
	ips  map[registry.CompactAddr]struct{} // pointer-free: a listing's worth of keys
	macs map[ethaddr.MAC]struct{}
}

func newKnownKeys() *knownKeys {
	return &knownKeys{ips: make(map[registry.CompactAddr]struct{}), macs: make(map[ethaddr.MAC]struct{})}
}

// has says whether k's key (its IP, or its MAC for an L2 miss) is known.
func (kk *knownKeys) has(k missKey) bool {
	kk.mu.RLock()
	defer kk.mu.RUnlock()
	if k.kind == rtnl.MissL2 {
		_, ok := kk.macs[k.mac]
		return ok
	}
	_, ok := kk.ips[registry.Compact(k.ip)]
	return ok
}

// found records that a lookup found ip (if valid) and mac.
func (kk *knownKeys) found(ip netip.Addr, mac ethaddr.MAC) {
	kk.mu.Lock()
	if ip.IsValid() {
		kk.ips[registry.Compact(ip)] = struct{}{}
	}
	kk.macs[mac] = struct{}{}
	kk.mu.Unlock()
}

// missing records that the registry has no record for k's key.
func (kk *knownKeys) missing(k missKey) {
	kk.mu.Lock()
	if k.kind == rtnl.MissL2 {
		delete(kk.macs, k.mac)
	} else {
		delete(kk.ips, registry.Compact(k.ip))
	}
	kk.mu.Unlock()
}

// replace makes the view the registry's listing recs.
func (kk *knownKeys) replace(recs []registry.Record) {
	ips := make(map[registry.CompactAddr]struct{}, len(recs))
	macs := make(map[ethaddr.MAC]struct{}, len(recs))
	for _, r := range recs {
		ips[registry.Compact(r.IP)] = struct{}{}
		if r.VTEP.IsValid() {
			macs[r.MAC] = struct{}{}
		}
	}
	kk.mu.Lock()
	kk.ips, kk.macs = ips, macs
	kk.mu.Unlock()
}

// replaceKeys makes the view the keys ips and macs.
func (kk *knownKeys) replaceKeys(ipList []netip.Addr, macList []ethaddr.MAC) {
	ips := make(map[registry.CompactAddr]struct{}, len(ipList))
	macs := make(map[ethaddr.MAC]struct{}, len(macList))
	for _, ip := range ipList {
		ips[registry.Compact(ip)] = struct{}{}
	}
	for _, m := range macList {
		macs[m] = struct{}{}
	}
	kk.mu.Lock()
	kk.ips, kk.macs = ips, macs
	kk.mu.Unlock()
}

// size returns the number of known IPs and MACs.
func (kk *knownKeys) size() (ips, macs int) {
	kk.mu.RLock()
	defer kk.mu.RUnlock()
	return len(kk.ips), len(kk.macs)
}
