package guard

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// FeedVTEPs counts, per VTEP, the records (and spans) a change feed
// delivered: the allowlist's view of the records, O(nodes) in memory
// whatever the number of records. It relies on the feed's contract: a
// changed record or span is delivered as a Delete of it as last
// delivered, then a Put of the new one, so a Put adds one to its VTEP and
// a Delete takes one from its own. Fed either by Follow's own watch or by Tee, which shares
// the watch of another consumer (the resolver's) instead of holding a
// second copy of every record.
type FeedVTEPs struct {
	mu     sync.Mutex
	count  map[netip.Addr]int // VTEP -> records
	synced bool               // the current watch delivered every record
	// changed is signalled (never blocking) when the set of VTEPs changes
	// or the feed synced or started over.
	changed chan struct{}

	// While a Follow keeps an allowlist in line with the counts
	// (following), allowed is what it last committed to the set, and
	// committed is closed (and replaced) at each commit: Tee holds a record
	// with a new VTEP until the VTEP is allowed (see Tee).
	following bool
	local     netip.Addr // the follower's VTEP: VTEPs of another family are never allowed
	allowed   map[netip.Addr]bool
	committed chan struct{}
}

// NewFeedVTEPs returns empty counts, not synced.
func NewFeedVTEPs() *FeedVTEPs {
	return &FeedVTEPs{count: map[netip.Addr]int{}, changed: make(chan struct{}, 1), committed: make(chan struct{})}
}

// AllowWait bounds how long Tee holds a record whose VTEP the allowlist
// has not committed yet (a failing nftables update must not stop the
// feed).
const AllowWait = 500 * time.Millisecond

// follow marks v followed by an allowlist of local's family; the returned
// func ends it (and releases every waiting Tee).
func (v *FeedVTEPs) follow(local netip.Addr) (end func()) {
	v.mu.Lock()
	v.following, v.local = true, local
	v.mu.Unlock()
	return func() {
		v.mu.Lock()
		v.following = false
		close(v.committed)
		v.committed = make(chan struct{})
		v.mu.Unlock()
	}
}

// commit records that the allowlist now holds set.
func (v *FeedVTEPs) commit(set map[netip.Addr]bool) {
	v.mu.Lock()
	v.allowed = make(map[netip.Addr]bool, len(set))
	for a := range set {
		v.allowed[a] = true
	}
	close(v.committed)
	v.committed = make(chan struct{})
	v.mu.Unlock()
}

// awaitAllowed waits, at most AllowWait, until the allowlist following v
// holds vt; it returns at once when nothing follows v.
func (v *FeedVTEPs) awaitAllowed(ctx context.Context, vt netip.Addr) {
	var deadline <-chan time.Time
	for {
		v.mu.Lock()
		if !v.following || v.allowed[vt] || !vt.IsValid() || vt.Is4() != v.local.Is4() {
			v.mu.Unlock()
			return
		}
		ch := v.committed
		v.mu.Unlock()
		if deadline == nil {
			t := time.NewTimer(AllowWait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-ch:
		case <-deadline:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (v *FeedVTEPs) signal() {
	select {
	case v.changed <- struct{}{}:
	default:
	}
}

// Restart forgets the counts: a new watch delivers every record again.
// Until its ChangeSynced, the counts are partial.
func (v *FeedVTEPs) Restart() {
	v.mu.Lock()
	v.count, v.synced = map[netip.Addr]int{}, false
	v.mu.Unlock()
	v.signal()
}

// Apply counts one change of the feed; added says its VTEP is new (a Put
// of the first record at it).
func (v *FeedVTEPs) Apply(c registry.Change) (added bool) {
	vt := c.VTEP().Unmap()
	v.mu.Lock()
	changed := false
	switch c.Kind {
	case registry.ChangePut:
		if vt.IsValid() {
			v.count[vt]++
			changed = v.count[vt] == 1
			added = changed
		}
	case registry.ChangeDelete:
		if n, ok := v.count[vt]; ok {
			if n <= 1 {
				delete(v.count, vt)
				changed = true
			} else {
				v.count[vt] = n - 1
			}
		}
	case registry.ChangeSynced:
		v.synced, changed = true, true
	}
	v.mu.Unlock()
	if changed {
		v.signal()
	}
	return added
}

// Changed is signalled when the VTEPs change, the feed synced or started
// over; several signals may be one.
func (v *FeedVTEPs) Changed() <-chan struct{} { return v.changed }

// VTEPs returns the VTEPs with records, and whether the feed has delivered
// every record (if not, the list is partial: only additions are safe).
func (v *FeedVTEPs) VTEPs() (vteps []netip.Addr, synced bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	vteps = make([]netip.Addr, 0, len(v.count))
	for vt := range v.count {
		vteps = append(vteps, vt)
	}
	return vteps, v.synced
}

// Tee returns feed with every change it delivers counted in v on the way
// (each Watch restarts the counts): one watch of the registry serves both
// its consumer and the allowlist. While a Follow keeps an allowlist in line
// with v, a record whose VTEP is new is passed on only once the allowlist
// holds the VTEP (at most AllowWait later): its consumer programs entries
// toward the VTEP as soon as it gets the record, and the VTEP's first reply
// must not be dropped.
func Tee(feed registry.ChangeFeed, v *FeedVTEPs) registry.ChangeFeed {
	return teeFeed{feed, v}
}

type teeFeed struct {
	feed registry.ChangeFeed
	v    *FeedVTEPs
}

func (t teeFeed) Watch(ctx context.Context) (<-chan registry.Change, error) {
	in, err := t.feed.Watch(ctx)
	if err != nil {
		return nil, err
	}
	t.v.Restart()
	out := make(chan registry.Change, cap(in))
	go func() {
		defer close(out)
		for c := range in {
			if t.v.Apply(c) {
				t.v.awaitAllowed(ctx, c.VTEP().Unmap())
			}
			select {
			case out <- c:
			case <-ctx.Done():
				for range in { // the feed closes once ctx ended
				}
				return
			}
		}
	}()
	return out, nil
}
