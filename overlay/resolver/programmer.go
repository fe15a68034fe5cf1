package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
)

// ProtocolOverlayd is the NDA_PROTOCOL value (an RTPROT_* number outside
// the kernel's and the well-known routing daemons' ones) that marks the
// neighbour entries the resolver programs, so that a restarted daemon adopts
// them instead of flushing them. The kernel stores and echoes NDA_PROTOCOL
// for neighbour (ARP) entries, but the vxlan driver ignores it for its FDB
// entries: those are marked NTF_EXT_LEARNED ("extern_learn", added by a
// controller) instead, and an extern_learn PERMANENT entry of the overlay's
// vxlan is taken as ours (verified on Linux 6.18; see
// TestProgrammerMarks).
const ProtocolOverlayd uint8 = 214

// neighKernel is what the programmer needs from an rtnl.Conn.
type neighKernel interface {
	ExecuteBatch(b *rtnl.Batch) error
	NeighDump(f rtnl.NeighFilter, fn func(*rtnl.NeighMessage) error) error
}

// neighKey names a neighbour entry: an IP on a device. Pointer-free (the
// tracking holds one per remote endpoint; the garbage collector does not
// scan such maps).
type neighKey struct {
	ifindex int32
	ip      registry.CompactAddr
}

// nkey returns the neighKey of ip on ifindex.
func nkey(ifindex int32, ip netip.Addr) neighKey {
	return neighKey{ifindex, registry.Compact(ip)}
}

// opKind is one kind of kernel change.
//
// fdbFirst: the programmer sends a resolution's ops in the order of their
// kinds (fdbFirstOrder), whatever order its producer gave them, so that a
// neighbour entry on the vxlan never points at a MAC without its FDB
// entry: the FDB entry is set before the neighbour entry, and the
// neighbour entry deleted before the FDB entry. From the moment the
// neighbour entry is in, the vxlan's proxy answers ARP requests and
// neighbour solicitations from it, on any CPU; a container answered before
// the FDB entry follows sends a frame the vxlan drops (an L2 miss): the
// first packet of a new peer lost.
type opKind uint8

const (
	opSetNeigh opKind = iota + 1 // neighbour ip → mac, PERMANENT, replace
	opSetFDB                     // vxlan FDB mac → vtep (vni, port, self), replace
	opDelNeigh
	opDelFDB
)

// fdbFirstOrder is the order in which execute sends a resolution's
// requests, by kind (fdbFirst): neighbour entries deleted, FDB entries set,
// neighbour entries set, FDB entries deleted; requests of one kind in the
// resolution's order.
func fdbFirstOrder() [4]opKind { return [4]opKind{opDelNeigh, opSetFDB, opSetNeigh, opDelFDB} }

func (k opKind) String() string {
	switch k {
	case opSetNeigh:
		return "set-neigh"
	case opSetFDB:
		return "set-fdb"
	case opDelNeigh:
		return "del-neigh"
	case opDelFDB:
		return "del-fdb"
	}
	return fmt.Sprintf("opKind(%d)", uint8(k))
}

// progOp is one kernel change.
type progOp struct {
	kind    opKind
	ifindex int32 // neighbour ops: the device
	ip      netip.Addr
	mac     ethaddr.MAC
	vtep    netip.Addr
	err     error // set by apply
	// superseded is set by apply when the resolution's current check
	// refused the op: the record changed since it was planned; the op was
	// not sent.
	superseded bool
	counted    bool // a reconcile fix counted in its ReconcileStats
}

// resolution is a group of changes applied in the same batch: what one miss
// (or one reconcile fix) resolved to.
type resolution struct {
	key     missKey
	ops     []progOp
	start   time.Time // when the miss arrived (zero for reconcile fixes)
	action  string    // "resolved" or a reconcile action, for the log
	logInfo bool      // log each change at info (reconcile fixes), not debug
	// table, for a miss's resolution, is the miss table whose lookup for
	// key ends once applied (success or not).
	table *missTable
	// pooled marks a resolution from missResolutions: it goes back to the
	// pool once applied and reported.
	pooled bool
	// current, if set, is asked under the programmer's lock, right before
	// the batch, whether each op still matches the record it was planned
	// from: a reconcile pass's fixes, planned from a view the feed may have
	// changed (and programmed) since, are not sent over newer changes.
	current func(op *progOp) bool
	opsBuf  [2]progOp // backing for ops: a miss resolves to at most 2 changes
}

// missResolutions recycles the resolutions of misses, so that a miss costs
// no allocation on its way from the worker to the kernel.
var missResolutions = sync.Pool{New: func() any { return new(resolution) }}

// newMissResolution returns an empty resolution of the miss k that arrived
// at start, from the pool.
func newMissResolution(k missKey, start time.Time) *resolution {
	r := missResolutions.Get().(*resolution)
	r.key, r.start, r.action, r.pooled = k, start, "resolved", true
	r.ops = r.opsBuf[:0]
	return r
}

// newFeedResolution returns a resolution of the feed's change from the
// pool (100,000 records at start: no garbage per record), ops to be
// appended to its ops.
func newFeedResolution(action string) *resolution {
	r := missResolutions.Get().(*resolution)
	r.action, r.pooled = action, true
	r.ops = r.opsBuf[:0]
	return r
}

// release returns a pooled resolution to the pool; others are left alone.
func (r *resolution) release() {
	if !r.pooled {
		return
	}
	*r = resolution{}
	missResolutions.Put(r)
}

// programmer applies changes to the kernel in batches and tracks which
// entries it programmed. It has no goroutine of its own: the first
// submitter that finds no batch in flight becomes the sender and programs
// its resolution at once, then whatever other submitters queued meanwhile,
// batch after batch, until nothing is pending (opportunistic batching).
//
// Misses go first: their resolutions queue apart from the feed's (urgent
// and pending), a batch takes every urgent one first (up to max changes),
// and the feed's changes fill it only up to bulkMax. A miss thus waits for
// at most one batch of bulkMax feed changes, whatever the feed's backlog
// (the kernel takes some 10 µs per change).
type programmer struct {
	k      neighKernel
	vxlan  int32
	vni    uint32
	port   uint16
	proto  uint8
	window time.Duration
	max    int
	log    *slog.Logger
	m      *Metrics
	now    func() time.Time
	answer Answerer // nil: none

	qmu     sync.Mutex    // guards urgent, pending, spare, sending
	qcond   *sync.Cond    // signalled when urgent or pending shrinks
	urgent  []*resolution // misses' resolutions
	pending []*resolution // the rest: the feed's changes
	spare   []*resolution
	sending bool // a submitter is sending batches
	// pendingMax bounds urgent and pending each: submitters wait beyond
	// it, so that workers do not run ahead of the kernel and take the CPU
	// from the sender.
	pendingMax int
	bulkMax    int // changes of pending a batch takes at most

	mu      sync.Mutex   // guards batch, neigh, fdb; held across a batch
	waiting atomic.Int32 // goroutines waiting for mu in lock (see yield)
	batch   rtnl.Batch
	index   []opRef
	neigh   neighTable
	fdb     fdbTable

	// dump, if set, is where sync dumps the kernel without holding mu;
	// meanwhile track notes the keys it changes in touchedNeigh and
	// touchedFDB (non-nil during such a dump), whose tracking is newer
	// than the dump.
	dump         neighKernel
	touchedNeigh map[neighKey]struct{}
	touchedFDB   map[ethaddr.MAC]struct{}
}

type opRef struct{ res, op int }

// bulkBatchMax is the most feed changes a batch takes (BatchMax if lower):
// a few hundred microseconds of the kernel's time, the longest a miss waits
// for the feed. Smaller batches cost the feed little: its throughput is
// bounded by the kernel's time per change, not per batch (100,000 records
// programmed in the same 3 s with 32 as with 128).
const bulkBatchMax = 32

func newProgrammer(k neighKernel, cfg *Config, now func() time.Time, m *Metrics, log *slog.Logger) *programmer {
	p := &programmer{
		k: k, vxlan: cfg.Vxlan, vni: cfg.VNI, port: cfg.Port, proto: cfg.Protocol,
		window: cfg.BatchWindow, max: cfg.BatchMax, log: log, m: m, now: now, answer: cfg.Answerer,
		pendingMax: 2 * cfg.BatchMax, bulkMax: min(cfg.BatchMax, bulkBatchMax),
		// Sized for a queue's worth of resolutions, so that the first burst
		// does not grow them step by step inside the batches' critical path.
		neigh: newNeighTable(cfg.Vxlan, cfg.QueueLen),
		fdb:   fdbTable{m: make(map[ethaddr.MAC]uint32, cfg.QueueLen)},
	}
	p.qcond = sync.NewCond(&p.qmu)
	return p
}

// submit programs res: at once, by the caller, if no batch is in flight
// (and then every batch queued meanwhile, until none is pending); else it
// queues res for the next batch of the submitter sending, and returns. It
// waits only while pendingMax resolutions are queued. Workers and the feed
// call it, never the receive loop. The error is ctx's, if it ended before
// res was taken.
func (p *programmer) submit(ctx context.Context, res *resolution) error {
	q := &p.pending
	if res.table != nil {
		q = &p.urgent
	}
	p.qmu.Lock()
	for p.sending && len(*q) >= p.pendingMax {
		if err := ctx.Err(); err != nil {
			p.qmu.Unlock()
			return err
		}
		p.qcond.Wait()
	}
	*q = append(*q, res)
	if p.sending {
		p.qmu.Unlock()
		return nil
	}
	p.sending = true
	p.send(res)
	return nil
}

// send sends batches until nothing is queued. It is called with qmu held by
// the submitter that became the sender (own: its resolution) and returns
// with qmu released. A miss's submitter, once its own resolution is
// applied and no other miss waits, hands what the feed queued to a new
// goroutine: the receive loop (which resolves isolated misses inline) goes
// back to reading misses instead of programming the feed's backlog.
func (p *programmer) send(own *resolution) {
	miss := own != nil && own.table != nil
	for {
		if p.window > 0 {
			p.gather()
		}
		batch := p.take()
		if own != nil && slices.Contains(batch, own) {
			own = nil // applied below; it is recycled by notify
		}
		p.qcond.Broadcast()
		p.qmu.Unlock()
		p.execute(batch)
		p.notify(batch)
		clear(batch)
		p.qmu.Lock()
		p.spare = batch[:0]
		if len(p.pending) == 0 && len(p.urgent) == 0 {
			p.sending = false
			p.qcond.Broadcast()
			p.qmu.Unlock()
			return
		}
		if miss && own == nil && len(p.urgent) == 0 {
			p.qmu.Unlock()
			go func() {
				p.qmu.Lock()
				p.send(nil)
			}()
			return
		}
	}
}

// take removes the next batch: the urgent resolutions up to max changes,
// then pending ones up to bulkMax changes (at least one resolution). Called
// with qmu held.
func (p *programmer) take() []*resolution {
	batch := p.spare[:0]
	p.spare = nil
	n := 0
	batch, n = takeFrom(&p.urgent, batch, n, p.max)
	batch, _ = takeFrom(&p.pending, batch, n, p.bulkMax)
	return batch
}

// takeFrom moves resolutions from the head of q to batch while the changes
// in batch (n) stay within limit, or while batch is empty.
func takeFrom(q *[]*resolution, batch []*resolution, n, limit int) ([]*resolution, int) {
	k := 0
	for k < len(*q) && (len(batch) == 0 || n+len((*q)[k].ops) <= limit) {
		n += len((*q)[k].ops)
		batch = append(batch, (*q)[k])
		k++
	}
	rest := copy(*q, (*q)[k:])
	clear((*q)[rest:])
	*q = (*q)[:rest]
	return batch, n
}

// gather is the BatchWindow tuning option: it waits up to window for more
// changes, or until max are pending. Called with qmu held; releases it
// while waiting.
func (p *programmer) gather() {
	deadline := time.Now().Add(p.window)
	for {
		n := 0
		for _, r := range p.urgent {
			n += len(r.ops)
		}
		for _, r := range p.pending {
			n += len(r.ops)
		}
		left := time.Until(deadline)
		if n >= p.max || left <= 0 {
			return
		}
		p.qmu.Unlock()
		time.Sleep(min(left, 100*time.Microsecond))
		p.qmu.Lock()
	}
}

// apply sends every op of res in one batch (chunked by rtnl as the socket
// requires), records each op's result, updates the tracking, logs and
// counts, on the caller's goroutine, beside the submitters' batches.
func (p *programmer) apply(res []*resolution) {
	p.execute(res)
	p.notify(res)
}

// execute is apply up to the tracking: when it returns, every op's result
// is recorded and the tracking follows the kernel.
func (p *programmer) execute(res []*resolution) {
	p.lock()
	p.batch.Reset()
	p.index = p.index[:0]
	for i, r := range res {
		for _, kind := range fdbFirstOrder() {
			for j := range r.ops {
				if op := &r.ops[j]; op.kind == kind {
					p.add(opRef{i, j}, r, op)
				}
			}
		}
	}
	var err error
	if p.batch.Len() > 0 {
		t0 := time.Now()
		err = p.k.ExecuteBatch(&p.batch)
		p.m.batch.observe(time.Since(t0))
		p.m.batches.Add(1)
		p.m.batchMessages.Add(uint64(p.batch.Len()))
	}
	var be *rtnl.BatchError
	switch {
	case err == nil:
	case errors.As(err, &be):
		for _, f := range be.Failures {
			if f.Index >= 0 && f.Index < len(p.index) {
				ref := p.index[f.Index]
				res[ref.res].ops[ref.op].err = f.Err
			}
		}
	default: // the whole batch failed (socket error)
		for _, ref := range p.index {
			res[ref.res].ops[ref.op].err = err
		}
	}
	for _, r := range res {
		for j := range r.ops {
			if !r.ops[j].superseded {
				p.track(&r.ops[j])
			}
		}
	}
	p.m.programmedNeigh.Store(int64(p.neigh.len()))
	p.m.programmedFDB.Store(int64(p.fdb.len()))
	p.mu.Unlock()
}

// notify is the rest of apply once res is executed: it answers the
// requests waiting for the neighbour entries now in (Answerer), logs and
// counts each resolution, ends its lookup and recycles it.
func (p *programmer) notify(res []*resolution) {
	now := p.now()
	for _, r := range res {
		if p.answer != nil {
			for j := range r.ops {
				if op := &r.ops[j]; op.kind == opSetNeigh && op.err == nil && !op.superseded && op.ifindex == p.vxlan {
					if r.table != nil { // a miss's
						p.answer.Answer(op.ip, r.start)
					} else {
						p.answer.AnswerHeld(op.ip)
					}
				}
			}
		}
		p.report(r, now)
		if r.table != nil {
			r.table.done(r.key, false)
		}
		r.release()
	}
}

// add encodes op, of resolution r at ref, into the batch, unless it is
// superseded.
func (p *programmer) add(ref opRef, r *resolution, op *progOp) {
	if r.current != nil && !r.current(op) {
		op.superseded = true
		return
	}
	if op.err = p.encode(op); op.err == nil {
		p.index = append(p.index, ref)
	}
}

// encode appends op's request to the batch, encoded in place by rtnl (no
// allocation per request): neighbour entries PERMANENT with our protocol,
// FDB entries PERMANENT extern_learn toward op's VTEP with the vxlan's VNI
// and port.
func (p *programmer) encode(op *progOp) error {
	switch op.kind {
	case opSetNeigh:
		return p.batch.NeighReplaceARP(rtnl.ARPEntry{Ifindex: op.ifindex, IP: op.ip, MAC: op.mac, Protocol: p.proto})
	case opSetFDB:
		return p.batch.NeighReplaceFDB(rtnl.FDBEntry{Ifindex: p.vxlan, MAC: op.mac, Dst: op.vtep,
			VNI: p.vni, Port: p.port, HasVNI: true, HasPort: true, Flags: rtnl.NeighFlagExtLearned})
	case opDelNeigh:
		return p.batch.NeighDeleteARP(rtnl.ARPEntry{Ifindex: op.ifindex, IP: op.ip, MAC: op.mac})
	case opDelFDB:
		return p.batch.NeighDeleteFDB(rtnl.FDBEntry{Ifindex: p.vxlan, MAC: op.mac})
	}
	return fmt.Errorf("resolver: unknown kernel change %v", op.kind)
}

// report logs one resolution of a miss (debug) or its failure (warn), and
// a reconcile or feed change (info), and counts it. The log line is only
// built when the logger takes its level.
func (p *programmer) report(r *resolution, now time.Time) {
	failed := false
	for j := range r.ops {
		if r.ops[j].err != nil {
			failed = true
			break
		}
	}
	level := slog.LevelDebug
	if failed {
		level = slog.LevelWarn
	}
	if r.key.kind == 0 { // a reconcile or feed change: one line per change
		for j := range r.ops {
			op := &r.ops[j]
			if op.superseded {
				continue
			}
			lv := slog.LevelDebug // the feed's: one per record
			if r.logInfo {
				lv = slog.LevelInfo
			}
			if op.err != nil {
				lv = slog.LevelWarn
			}
			if !p.log.Enabled(context.Background(), lv) {
				continue
			}
			attrs := []any{"change", op.kind.String(), "ip", op.ip, "mac", op.mac, "vtep", op.vtep}
			if op.err != nil {
				p.log.Warn(r.action+" failed", append(attrs, "err", op.err)...)
			} else {
				p.log.Log(context.Background(), lv, r.action, attrs...)
			}
		}
		return
	}
	var d time.Duration
	if !r.start.IsZero() {
		d = now.Sub(r.start)
		if !failed {
			p.m.missToEntry.observe(d)
			p.m.resolutions[r.key.kind].Add(1)
			if r.key.kind != rtnl.MissL2 {
				p.m.familyResolved[r.key.family()].Add(1)
			}
		}
	}
	if !p.log.Enabled(context.Background(), level) {
		return
	}
	attrs := []any{"key", r.key.String()}
	for j := range r.ops {
		op := &r.ops[j]
		switch op.kind {
		case opSetNeigh, opDelNeigh:
			attrs = append(attrs, "ip", op.ip, "mac", op.mac, "dev", op.ifindex)
		case opSetFDB, opDelFDB:
			if len(r.ops) == 1 {
				attrs = append(attrs, "mac", op.mac)
			}
			if op.vtep.IsValid() {
				attrs = append(attrs, "vtep", op.vtep)
			}
		}
	}
	if !r.start.IsZero() {
		attrs = append(attrs, "latency", d)
	}
	if failed {
		var errs []error
		for j := range r.ops {
			if err := r.ops[j].err; err != nil {
				errs = append(errs, fmt.Errorf("%v: %w", r.ops[j].kind, err))
			}
		}
		p.log.Warn(r.action+" failed", append(attrs, "err", errors.Join(errs...))...)
		return
	}
	p.log.Debug(r.action, attrs...)
}
