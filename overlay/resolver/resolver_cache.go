package resolver

import (
	"net/netip"
	"sync"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/rtnl"
)

// missKey names what a miss asks for: an IP (L3 miss, app_solicit) on a
// device, or a MAC (L2 miss). It is the unit of coalescing and of negative
// caching.
type missKey struct {
	kind    rtnl.MissKind
	ifindex int32 // the device the neighbour entry goes on (L3, app_solicit)
	ip      netip.Addr
	mac     ethaddr.MAC
}

// family is the index of k's address family in the resolver's per-family
// budgets and negative caches: 1 for an IPv6 address, 0 for an IPv4 one
// and for a MAC (an L2 miss).
func (k missKey) family() int {
	if k.kind != rtnl.MissL2 && k.ip.Is6() {
		return 1
	}
	return 0
}

func (k missKey) String() string {
	if k.kind == rtnl.MissL2 {
		return k.kind.String() + " " + k.mac.String()
	}
	return k.kind.String() + " " + k.ip.String()
}

// missTable is the resolver's front door, used by the receive loop: it
// coalesces misses for a key whose lookup is in flight and remembers keys the
// registry does not know (negative cache) for a TTL. Memory is bounded: the
// negative cache holds at most max keys of each family (IPv4 addresses and
// MACs; IPv6 addresses), so that a sweep of one family's addresses does
// not push the other's out (expired ones are swept first, then the oldest
// half goes).
type missTable struct {
	mu       sync.Mutex
	now      func() time.Time
	ttl      time.Duration
	max      int
	inflight map[missKey]struct{}
	negative [2]map[missKey]time.Time // by missKey.family: key → expiry
}

// newMissTable returns a table for up to inflight lookups at once (the
// queue's length plus the workers'): its map is sized for them up front, so
// a burst does not grow it step by step.
func newMissTable(ttl time.Duration, max, inflight int, now func() time.Time) *missTable {
	return &missTable{
		now:      now,
		ttl:      ttl,
		max:      max,
		inflight: make(map[missKey]struct{}, inflight),
		negative: [2]map[missKey]time.Time{make(map[missKey]time.Time), make(map[missKey]time.Time)},
	}
}

// admitResult says what to do with a miss.
type admitResult uint8

const (
	admitLookup    admitResult = iota // start a lookup (the key is now in flight)
	admitCoalesced                    // a lookup for the key is already in flight
	admitNegative                     // the key is cached as unknown
)

// admit decides whether a miss for k starts a lookup. When it returns
// admitLookup the caller must call done(k, ...) exactly once later.
func (t *missTable) admit(k missKey) admitResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.inflight[k]; ok {
		return admitCoalesced
	}
	neg := t.negative[k.family()]
	if exp, ok := neg[k]; ok {
		if t.now().Before(exp) {
			return admitNegative
		}
		delete(neg, k)
	}
	t.inflight[k] = struct{}{}
	return admitLookup
}

// done ends the lookup for k; negative caches k for the TTL.
func (t *missTable) done(k missKey, negative bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.inflight, k)
	if !negative || t.ttl <= 0 {
		return
	}
	neg := t.negative[k.family()]
	if len(neg) >= t.max {
		t.shrinkLocked(neg)
	}
	neg[k] = t.now().Add(t.ttl)
}

// shrinkLocked drops neg's expired entries, and if that is not enough, the
// half that expires first.
func (t *missTable) shrinkLocked(neg map[missKey]time.Time) {
	now := t.now()
	for k, exp := range neg {
		if !now.Before(exp) {
			delete(neg, k)
		}
	}
	if len(neg) < t.max {
		return
	}
	cut := now.Add(t.ttl / 2)
	for k, exp := range neg {
		if exp.Before(cut) {
			delete(neg, k)
		}
	}
	for k := range neg { // all expire late: drop arbitrary ones
		if len(neg) < t.max/2+1 {
			break
		}
		delete(neg, k)
	}
}

// forgetAll empties the negative cache: the registry changed, so what was
// unknown may now be known.
func (t *missTable) forgetAll() {
	t.mu.Lock()
	for _, neg := range t.negative {
		clear(neg)
	}
	t.mu.Unlock()
}

// sizes returns the number of keys in flight and negatively cached.
func (t *missTable) sizes() (inflight, negative int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.inflight), len(t.negative[0]) + len(t.negative[1])
}

// tokenBucket is the scan budget: rate tokens per second, at most burst
// banked. take never waits. Safe for concurrent use.
type tokenBucket struct {
	mu     sync.Mutex
	now    func() time.Time
	rate   float64 // tokens per second; <= 0 means unlimited
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate float64, burst int, now func() time.Time) *tokenBucket {
	if burst < 1 {
		burst = 1
	}
	return &tokenBucket{now: now, rate: rate, burst: float64(burst), tokens: float64(burst), last: now()}
}

// take takes a token if one is banked and reports whether it did.
func (b *tokenBucket) take() bool {
	if b.rate <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(b.burst, b.tokens+el.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
