package wake

import (
	"net/netip"
	"sync"
	"time"
)

// Table defaults.
const (
	// DefaultTableSize is how many targets a Table holds at most.
	DefaultTableSize = 256
	// DefaultTTL is how long a captured request waits for its answer: the
	// resolver's negative-cache TTL. A container retransmits every second;
	// its newer request replaces the older one meanwhile.
	DefaultTTL = 3 * time.Second
	// MaxFrame is the longest frame a Table keeps: an ARP request is 42
	// bytes (60 padded), a Neighbor Solicitation 86 (with its source
	// link-layer address option).
	MaxFrame = 128
)

// dropReason says why a captured request left the table unanswered before
// it expired.
type dropReason uint8

const (
	dropSuperseded dropReason = iota // a newer request for the same target replaced it
	dropEvicted                      // the table was full: the oldest request went
	dropOversize                     // longer than MaxFrame: never kept
	dropOverflow                     // the socket's buffer was full: the kernel dropped it
	dropReasons
)

// String names the reason as the metrics label does.
func (r dropReason) String() string {
	switch r {
	case dropSuperseded:
		return "superseded"
	case dropEvicted:
		return "evicted"
	case dropOversize:
		return "oversize"
	case dropOverflow:
		return "overflow"
	}
	return "unknown"
}

// Table holds the latest captured request per target address, each for
// a TTL, at most a fixed number of targets; its memory is allocated once.
// Safe for concurrent use.
type Table struct {
	mu      sync.Mutex
	ttl     time.Duration
	slots   []slot
	index   map[netip.Addr]int // target → slot
	free    []int
	expired uint64
	dropped [dropReasons]uint64
}

// slot is one captured request.
type slot struct {
	target netip.Addr
	at     time.Time // when it was captured
	n      int
	frame  [MaxFrame]byte
}

// NewTable returns a table of size targets (DefaultTableSize if <= 0)
// whose requests live ttl (DefaultTTL if <= 0).
func NewTable(size int, ttl time.Duration) *Table {
	if size <= 0 {
		size = DefaultTableSize
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	t := &Table{ttl: ttl, slots: make([]slot, size), index: make(map[netip.Addr]int, size), free: make([]int, 0, size)}
	for i := size - 1; i >= 0; i-- {
		t.free = append(t.free, i)
	}
	return t
}

// Put keeps frame, a request for target captured at now, in place of any
// older one for target. When the table is full the oldest request goes
// (expired ones first). It reports whether it kept frame (false: longer
// than MaxFrame).
func (t *Table) Put(target netip.Addr, frame []byte, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(frame) > MaxFrame {
		t.dropped[dropOversize]++
		return false
	}
	i, ok := t.index[target]
	switch {
	case ok && t.live(i, now):
		t.dropped[dropSuperseded]++
	case ok:
		t.expired++
	default:
		i = t.slotFor(now)
		t.index[target] = i
	}
	s := &t.slots[i]
	s.target, s.at, s.n = target, now, copy(s.frame[:], frame)
	return true
}

// live says whether slot i's request is within its TTL at now.
func (t *Table) live(i int, now time.Time) bool { return now.Sub(t.slots[i].at) < t.ttl }

// slotFor returns a free slot, freeing expired ones first, then the
// oldest. Called with mu held.
func (t *Table) slotFor(now time.Time) int {
	if len(t.free) == 0 {
		t.sweep(now)
	}
	if len(t.free) == 0 {
		oldest := -1
		for _, i := range t.index {
			if oldest < 0 || t.slots[i].at.Before(t.slots[oldest].at) {
				oldest = i
			}
		}
		t.release(oldest)
		t.dropped[dropEvicted]++
	}
	i := t.free[len(t.free)-1]
	t.free = t.free[:len(t.free)-1]
	return i
}

// sweep frees the slots whose request expired. Called with mu held.
func (t *Table) sweep(now time.Time) {
	for _, i := range t.index {
		if !t.live(i, now) {
			t.release(i)
			t.expired++
		}
	}
}

// release frees slot i. Called with mu held.
func (t *Table) release(i int) {
	delete(t.index, t.slots[i].target)
	t.slots[i] = slot{}
	t.free = append(t.free, i)
}

// Take removes the request for target if one is within its TTL at now,
// copies it into b (at least MaxFrame bytes) and returns its length; 0
// when there is none. A request is taken once.
func (t *Table) Take(target netip.Addr, now time.Time, b []byte) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.index[target]
	if !ok {
		return 0
	}
	n := 0
	if t.live(i, now) {
		n = copy(b, t.slots[i].frame[:t.slots[i].n])
	} else {
		t.expired++
	}
	t.release(i)
	return n
}

// Len returns how many requests the table holds (some may have expired).
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.index)
}

// counts returns the expired and dropped requests so far, sweeping the
// expired ones first.
func (t *Table) counts(now time.Time) (expired uint64, dropped [dropReasons]uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep(now)
	return t.expired, t.dropped
}

// overflowed counts n requests the kernel dropped before the table saw
// them.
func (t *Table) overflowed(n uint64) {
	t.mu.Lock()
	t.dropped[dropOverflow] += n
	t.mu.Unlock()
}
