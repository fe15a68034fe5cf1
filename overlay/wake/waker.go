package wake

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/overlaynet/overlaynet/internal/promtext"
)

// Link is where a Waker reads captured requests and sends them again: the
// packet socket Open returns on Linux, or a fake in tests.
type Link interface {
	// Receive reads the frames queued now, without waiting: the i-th into
	// bufs[i] (cut to its length) and its full length into lens[i]. It
	// returns how many it read; 0 and no error when none is queued.
	Receive(bufs [][]byte, lens []int) (int, error)
	// Send transmits frame to the device the link captures on, without
	// waiting.
	Send(frame []byte) error
	// Close releases the link.
	Close() error
}

// overflowCounter is a Link that counts the frames its kernel buffer could
// not hold (the packet socket's PACKET_STATISTICS drops), since the last
// call.
type overflowCounter interface {
	Overflowed() (uint64, error)
}

// Reading defaults.
const (
	// DrainInterval is how often Run reads what the capture queued when no
	// miss did: the socket's buffer holds requests until read, so that a
	// miss reads them itself, with no thread woken per request.
	DrainInterval = time.Second
	// batch is how many frames one read takes (recvmmsg).
	batch = 64
	// answerBatches bounds the reading a miss's Answer does: the request
	// that raised the miss is queued before the miss, among the last read;
	// under a flood of requests Answer does not read the whole flood.
	answerBatches = 4
	// calm is the most requests one of Run's reads may find for the capture
	// to count as calm again after a flood (see Waker.flooded).
	calm = 2 * batch
)

// Waker answers the requests waiting for the entries the resolver programs
// (see the package doc). Its methods are safe for concurrent use.
type Waker struct {
	link     Link
	table    *Table
	log      *slog.Logger
	now      func() time.Time
	captured atomic.Uint64
	answered atomic.Uint64
	sendErrs atomic.Uint64
	ignored  atomic.Uint64 // frames the filter let through that are no request

	readMu sync.Mutex // guards bufs, lens, readErrs; held while reading
	bufs   [][]byte
	lens   []int
	// readUpTo is when the latest completed read started (UnixNano): every
	// frame queued before it has been read.
	readUpTo atomic.Int64
	readErrs uint64
	// flooded is set when an Answer's read found more requests queued than
	// it may read (more than answerBatches full batches since the last
	// read: a container, or several, sending requests faster than misses
	// resolve, as a scan of the subnet does). Answers then send what the
	// table holds without reading — the request that raised the miss is
	// behind the flood, out of reach — so that the flood costs a resolved
	// miss nothing, and the requester waits for its retransmit as it would
	// with no capture. Run's read, once a second, clears it when it finds
	// at most calm requests queued.
	flooded    atomic.Bool
	floodSkips atomic.Uint64 // Answers that skipped their read while flooded
}

// Config is a Waker's table and logger; zero fields take the defaults.
type Config struct {
	TableSize int           // requests held at most (DefaultTableSize)
	TTL       time.Duration // a request's life from its reading (DefaultTTL)
	Logger    *slog.Logger  // nil discards
}

// New returns a Waker on link; Run reads it now and then.
func New(link Link, cfg Config) *Waker {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Waker{link: link, table: NewTable(cfg.TableSize, cfg.TTL), log: log, now: time.Now,
		bufs: make([][]byte, batch), lens: make([]int, batch)}
	for i := range w.bufs {
		w.bufs[i] = make([]byte, MaxFrame+1) // one more: a longer frame shows as oversize
	}
	return w
}

// Run reads the captured requests every DrainInterval, until ctx ends; then
// it closes the link and returns nil.
func (w *Waker) Run(ctx context.Context) error {
	t := time.NewTicker(DrainInterval)
	defer t.Stop()
	defer w.link.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			w.read(0)
		}
	}
}

// read reads the queued requests into the table, up to batches reads (0:
// until none is queued), and updates the flood mode: set by a bounded read
// that found more queued than it may read, cleared by a read of all that
// found at most calm.
func (w *Waker) read(batches int) {
	w.readMu.Lock()
	defer w.readMu.Unlock()
	start := w.now().UnixNano()
	frames, full := 0, true
	for i := 0; batches == 0 || i < batches; i++ {
		n, err := w.link.Receive(w.bufs, w.lens)
		if err != nil {
			if w.readErrs++; w.readErrs == 1 {
				w.log.Warn("wake: reading captured requests failed", "err", err)
			}
			return
		}
		for j := range n {
			w.keep(w.bufs[j][:min(w.lens[j], len(w.bufs[j]))])
		}
		frames += n
		if n < len(w.bufs) {
			full = false
			break // the queue is empty
		}
	}
	w.readUpTo.Store(start)
	switch {
	case batches > 0 && full && !w.flooded.Load():
		w.flooded.Store(true)
		w.log.Warn("wake: requests captured faster than misses resolve (a scan?): answering only what Run reads, once a second, until it calms")
	case batches == 0 && frames <= calm && w.flooded.Load():
		w.flooded.Store(false)
		w.log.Info("wake: the capture is calm again: answers read the requests that raised their misses")
	}
}

// keep puts one captured frame in the table; b holds at most MaxFrame+1
// of its bytes (a longer frame is cut to that and counted as oversize).
func (w *Waker) keep(b []byte) {
	target, ok := Target(b)
	if !ok {
		w.ignored.Add(1)
		return
	}
	w.captured.Add(1)
	w.table.Put(target, b, w.now())
}

// Answer sends again the requests waiting for ip (the latest of each
// sender), if any were captured within the TTL and not answered yet: the
// kernel answers them from the entry just programmed. Call it only once
// ip's neighbour entry is in the kernel, for a miss read at since: the
// request that raised it was queued before, so Answer first reads what was
// queued, unless a read that started after since has completed (in a burst
// one read serves many misses). It does not wait for anything but that
// read and the sends.
//
// While the capture is flooded (see Waker) Answer does not read: it sends
// what Run has read.
func (w *Waker) Answer(ip netip.Addr, since time.Time) {
	if w.readUpTo.Load() <= since.UnixNano() {
		if w.flooded.Load() {
			w.floodSkips.Add(1)
		} else {
			w.read(answerBatches)
		}
	}
	w.send(ip)
}

// AnswerHeld is Answer without the reading: for entries programmed with no
// miss waiting (from the change feed, by a reconcile pass), many at a time;
// a request read meanwhile is answered.
func (w *Waker) AnswerHeld(ip netip.Addr) { w.send(ip) }

// send sends the requests held for ip, if any (under the table's lock: a
// send does not wait).
func (w *Waker) send(ip netip.Addr) {
	w.table.Take(ip.Unmap(), w.now(), func(frame []byte) {
		if err := w.link.Send(frame); err != nil {
			if w.sendErrs.Add(1) == 1 || w.log.Enabled(context.Background(), slog.LevelDebug) {
				w.log.Warn("wake: request not sent again", "target", ip, "err", err)
			}
			return
		}
		w.answered.Add(1)
	})
}

// Stats are a Waker's counters.
type Stats struct {
	Captured uint64 // requests captured (kept in the table, or oversize)
	Answered uint64 // requests sent again once their entry was programmed
	// Expired are requests nothing programmed an entry for within the TTL:
	// the kernel answered them from an entry already there, or their miss
	// was not resolved (an address the registry does not hold).
	Expired    uint64
	Dropped    map[string]uint64 // by reason: superseded, evicted, oversize, overflow
	SendErrors uint64
	// FloodSkips are resolved misses whose Answer did not read the capture
	// because it was flooded (see Waker).
	FloodSkips uint64
	// Flooded says whether the capture is flooded now.
	Flooded bool
}

// Stats returns the counters.
func (w *Waker) Stats() Stats {
	if oc, ok := w.link.(overflowCounter); ok {
		if n, err := oc.Overflowed(); err == nil && n > 0 {
			w.table.overflowed(n)
		}
	}
	expired, dropped := w.table.counts(w.now())
	s := Stats{Captured: w.captured.Load(), Answered: w.answered.Load(), Expired: expired,
		Dropped: make(map[string]uint64, dropReasons), SendErrors: w.sendErrs.Load(),
		FloodSkips: w.floodSkips.Load(), Flooded: w.flooded.Load()}
	for r := range dropReasons {
		s.Dropped[r.String()] = dropped[r]
	}
	return s
}

// Collector returns a function writing w's counters in the Prometheus text
// format (for resolver.Metrics.AddCollector). w may be nil (no capture):
// the counters are then written as zeros.
func Collector(w *Waker) func(io.Writer) {
	return func(out io.Writer) {
		s := Stats{Dropped: map[string]uint64{}}
		if w != nil {
			s = w.Stats()
		}
		promtext.Counter(out, "overlayd_requests_captured_total", "ARP requests and neighbour solicitations from local ports captured on their way to the vxlan device.", s.Captured)
		promtext.Counter(out, "overlayd_requests_answered_total", "Captured requests sent to the vxlan device again once the resolver programmed their target's entry: the kernel answered them at once.", s.Answered)
		promtext.Counter(out, "overlayd_requests_expired_total", "Captured requests no entry was programmed for within their TTL (the kernel answered them from an entry already there, or their target is unknown).", s.Expired)
		promtext.Family(out, "overlayd_requests_dropped_total", "counter",
			"Captured requests not kept until answered or expired, by reason: superseded (a newer one of the same sender, or of a fifth sender, for the same target), evicted (the table was full), oversize, overflow (the capture socket's buffer was full).",
			"reason", int(dropReasons), func(i int) (string, uint64) { r := dropReason(i).String(); return r, s.Dropped[r] })
		promtext.Counter(out, "overlayd_requests_send_errors_total", "Captured requests whose sending again failed.", s.SendErrors)
		promtext.Counter(out, "overlayd_requests_flood_skips_total", "Resolved misses whose answer did not read the capture because requests were captured faster than misses resolved (a scan): their requesters wait for their retransmit, as with no capture.", s.FloodSkips)
	}
}

// ErrNotSupported is Open's error where the platform has no packet
// sockets.
var ErrNotSupported = errors.New("wake: packet capture is not supported on this platform")
