package wake

import (
	"net/netip"
	"sync"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
)

// Table defaults.
const (
	// DefaultTableSize is how many requests a Table holds at most.
	DefaultTableSize = 256
	// DefaultTTL is how long a captured request waits for its answer: the
	// resolver's negative-cache TTL. A container retransmits every second;
	// its newer request replaces the older one meanwhile.
	DefaultTTL = 3 * time.Second
	// MaxFrame is the longest frame a Table keeps: an ARP request is 42
	// bytes (60 padded), a Neighbor Solicitation 86 (with its source
	// link-layer address option).
	MaxFrame = 128
	// SendersPerTarget is how many requesters of one address a Table
	// holds (the latest request of each): containers of a node that start
	// talking to the same peer at once are all answered.
	SendersPerTarget = 4
)

// dropReason says why a captured request left the table unanswered before
// it expired.
type dropReason uint8

const (
	dropSuperseded dropReason = iota // a newer request of the same sender, or of a fifth one, for the same target
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

// Table holds the latest captured request of each sender (its Ethernet
// source) per target address, SendersPerTarget senders per target, each
// for a TTL, a fixed number of requests in all; its memory is allocated
// once. Safe for concurrent use.
type Table struct {
	mu    sync.Mutex
	ttl   time.Duration
	slots []slot
	// index maps a target to its senders' slots, as slot index + 1 (0:
	// none).
	index   map[netip.Addr][SendersPerTarget]int32
	free    []int32
	expired uint64
	dropped [dropReasons]uint64
}

// slot is one captured request.
type slot struct {
	target netip.Addr
	sender ethaddr.MAC
	at     time.Time // when it was captured
	n      int
	frame  [MaxFrame]byte
}

// NewTable returns a table of size requests (DefaultTableSize if <= 0)
// that live ttl (DefaultTTL if <= 0).
func NewTable(size int, ttl time.Duration) *Table {
	if size <= 0 {
		size = DefaultTableSize
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	t := &Table{ttl: ttl, slots: make([]slot, size), index: make(map[netip.Addr][SendersPerTarget]int32, size),
		free: make([]int32, 0, size)}
	for i := size - 1; i >= 0; i-- {
		t.free = append(t.free, int32(i))
	}
	return t
}

// Put keeps frame, a request for target captured at now, in place of an
// older one of the same sender (the frame's Ethernet source) for target,
// or of the oldest of SendersPerTarget others. When the table is full the
// oldest request goes (expired ones first). It reports whether it kept
// frame (false: longer than MaxFrame, or shorter than an Ethernet header).
func (t *Table) Put(target netip.Addr, frame []byte, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(frame) > MaxFrame || len(frame) < ethHdrLen {
		t.dropped[dropOversize]++
		return false
	}
	sender := ethaddr.MAC(frame[6:12])
	senders := t.index[target]
	k := t.senderSlot(&senders, sender, now)
	if senders[k] == 0 {
		i := t.slotFor(now)
		senders = t.index[target] // slotFor may have evicted one of target's own
		senders[k] = i + 1
	}
	t.index[target] = senders
	s := &t.slots[senders[k]-1]
	s.target, s.sender, s.at, s.n = target, sender, now, copy(s.frame[:], frame)
	return true
}

// senderSlot returns where in senders sender's request goes: its own
// place, counted as superseded if its request there is live; else an empty
// one; else the oldest's, counted as superseded. Called with mu held.
func (t *Table) senderSlot(senders *[SendersPerTarget]int32, sender ethaddr.MAC, now time.Time) int {
	empty, oldest := -1, -1
	for k, i := range senders {
		switch {
		case i == 0:
			if empty < 0 {
				empty = k
			}
		case t.slots[i-1].sender == sender:
			t.retire(i-1, now, dropSuperseded)
			return k
		case oldest < 0 || t.slots[i-1].at.Before(t.slots[senders[oldest]-1].at):
			oldest = k
		}
	}
	if empty >= 0 {
		return empty
	}
	t.retire(senders[oldest]-1, now, dropSuperseded)
	return oldest
}

// retire counts the request in slot i as it leaves for a newer one: expired
// if it had, else why. Called with mu held.
func (t *Table) retire(i int32, now time.Time, why dropReason) {
	if t.live(i, now) {
		t.dropped[why]++
	} else {
		t.expired++
	}
}

// live says whether slot i's request is within its TTL at now.
func (t *Table) live(i int32, now time.Time) bool { return now.Sub(t.slots[i].at) < t.ttl }

// slotFor returns a free slot, freeing expired ones first, then the
// oldest. Called with mu held.
func (t *Table) slotFor(now time.Time) int32 {
	if len(t.free) == 0 {
		t.sweep(now)
	}
	if len(t.free) == 0 {
		oldest := int32(0)
		for i := range t.slots {
			if t.slots[i].at.Before(t.slots[oldest].at) {
				oldest = int32(i)
			}
		}
		t.dropped[dropEvicted]++
		t.unlink(oldest)
		t.slots[oldest] = slot{}
		return oldest
	}
	i := t.free[len(t.free)-1]
	t.free = t.free[:len(t.free)-1]
	return i
}

// sweep frees the slots whose request expired. Called with mu held.
func (t *Table) sweep(now time.Time) {
	for i := range t.slots {
		if t.slots[i].target.IsValid() && !t.live(int32(i), now) {
			t.unlink(int32(i))
			t.slots[i] = slot{}
			t.free = append(t.free, int32(i))
			t.expired++
		}
	}
}

// unlink removes slot i from its target's senders. Called with mu held.
func (t *Table) unlink(i int32) {
	target := t.slots[i].target
	senders, ok := t.index[target]
	if !ok {
		return
	}
	empty := true
	for k := range senders {
		if senders[k] == i+1 {
			senders[k] = 0
		}
		empty = empty && senders[k] == 0
	}
	if empty {
		delete(t.index, target)
	} else {
		t.index[target] = senders
	}
}

// Take removes the requests for target and calls fn with each that is
// within its TTL at now (the frame is valid during the call only); it
// returns how many it passed. A request is taken once.
func (t *Table) Take(target netip.Addr, now time.Time, fn func(frame []byte)) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	senders, ok := t.index[target]
	if !ok {
		return 0
	}
	delete(t.index, target)
	n := 0
	for _, i := range senders {
		if i == 0 {
			continue
		}
		s := &t.slots[i-1]
		if t.live(i-1, now) {
			fn(s.frame[:s.n])
			n++
		} else {
			t.expired++
		}
		*s = slot{}
		t.free = append(t.free, i-1)
	}
	return n
}

// Len returns how many requests the table holds (some may have expired).
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.slots) - len(t.free)
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
