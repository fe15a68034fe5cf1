package resolver

import (
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"runtime"
	"syscall"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/rtnl"
)

// track updates what we programmed after op was applied (or failed).
func (p *programmer) track(op *progOp) {
	if op.err != nil && (op.kind == opDelNeigh || op.kind == opDelFDB) && errors.Is(op.err, syscall.ENOENT) {
		op.err = nil // already gone: the goal is reached
	}
	if op.err != nil {
		p.m.programErrors.Add(1)
		return
	}
	if p.touchedNeigh != nil {
		switch op.kind {
		case opSetNeigh, opDelNeigh:
			p.touchedNeigh[nkey(op.ifindex, op.ip)] = struct{}{}
		case opSetFDB, opDelFDB:
			p.touchedFDB[op.mac] = struct{}{}
		}
	}
	switch op.kind {
	case opSetNeigh:
		p.neigh.set(nkey(op.ifindex, op.ip), op.mac)
	case opSetFDB:
		p.fdb.set(op.mac, op.vtep)
	case opDelNeigh:
		p.neigh.del(nkey(op.ifindex, op.ip))
	case opDelFDB:
		p.fdb.del(op.mac)
	}
}

// kernelEntries are the entries in the kernel carrying our marks (compact:
// a pass holds one of each per remote endpoint).
type kernelEntries struct {
	neigh neighTable
	fdb   fdbTable
	// fdbTracked: the FDB was not dumped, and the entries to check are the
	// programmer's tracking, read in place (programmer.eachFDB) instead of
	// a copy of it (fdb is empty): 100,000 endpoints' FDB entries are not
	// copied every pass.
	fdbTracked bool
	// unproven are PERMANENT extern_learn FDB entries on the vxlan that
	// nothing yet shows to be ours: another controller of the device (an
	// EVPN daemon) programs entries with the same flags. See sync.
	unproven map[ethaddr.MAC]netip.Addr
}

// load dumps, on k, the kernel's IPv4 and IPv6 neighbour entries marked
// with our protocol (any device) and, with fdb, the vxlan's PERMANENT
// extern_learn FDB entries (ke.fdb is empty without).
func (p *programmer) load(k neighKernel, fdb bool) (kernelEntries, error) {
	ke := kernelEntries{neigh: newNeighTable(p.vxlan, p.neigh.len())}
	for _, family := range []uint8{rtnl.FamilyInet, rtnl.FamilyInet6} {
		err := k.NeighDump(rtnl.NeighFilter{Family: family}, func(m *rtnl.NeighMessage) error {
			mac, ok := m.MAC()
			if m.Protocol == p.proto && m.Present.Has(rtnl.NeighAttrProtocol) && ok && m.Dst.IsValid() {
				ke.neigh.set(nkey(m.Ifindex, m.Dst), mac)
			}
			return nil
		})
		if err != nil {
			return ke, fmt.Errorf("resolver: dump neighbours: %w", err)
		}
	}
	if !fdb {
		return ke, nil
	}
	err := k.NeighDump(rtnl.NeighFilter{Family: rtnl.FamilyBridge, Ifindex: p.vxlan}, func(m *rtnl.NeighMessage) error {
		mac, ok := m.MAC()
		if m.Ifindex == p.vxlan && ok && !ethaddr.MAC(mac).IsZero() && m.Dst.IsValid() &&
			m.Flags&(rtnl.NeighFlagSelf|rtnl.NeighFlagExtLearned) == rtnl.NeighFlagSelf|rtnl.NeighFlagExtLearned &&
			m.State&rtnl.NeighPermanent != 0 {
			ke.fdb.set(mac, m.Dst)
		}
		return nil
	})
	if err != nil {
		return ke, fmt.Errorf("resolver: dump vxlan FDB: %w", err)
	}
	return ke, nil
}

// sync makes the tracking match the kernel: entries with our marks that we
// do not track are adopted (after a restart, all of them), tracked entries
// that vanished are forgotten. It returns the kernel's entries and how many
// were adopted.
//
// Neighbour entries carry our protocol number: they are ours. An FDB entry
// has no such mark, so it is ours only if it is tracked (programmed by this
// process) or one of our neighbour entries names its MAC (an L3 miss
// programs both); the others are returned as unproven, for Reconcile to
// adopt those whose MAC the registry holds (see adoptFDB).
//
// With a dump socket of its own, programming goes on during the pass: the
// kernel is dumped without the lock, and the comparison with the tracking
// (200,000 entries for 100,000 remote endpoints) releases the lock every
// syncStride entries. What is programmed meanwhile is noted (touchedNeigh,
// touchedFDB) and its tracking, newer than the dump, wins.
//
// Without fdb, the FDB is not dumped: ke.fdb is the tracking's. The
// kernel's vxlan FDB dump holds the RTNL lock while it skips, for every
// message it fills, the entries of the earlier ones (quadratic: seconds of
// RTNL for 100,000 entries, during which every FDB change waits; see
// Resolver.reconcile).
func (p *programmer) sync(fdb bool) (kernelEntries, int, error) {
	var ke kernelEntries
	var err error
	p.mu.Lock()
	if p.dump == nil {
		ke, err = p.load(p.k, fdb)
	} else {
		p.touchedNeigh, p.touchedFDB = make(map[neighKey]struct{}), make(map[ethaddr.MAC]struct{})
		p.mu.Unlock()
		ke, err = p.load(p.dump, fdb)
		p.mu.Lock()
	}
	defer func() {
		p.touchedNeigh, p.touchedFDB = nil, nil
		p.m.programmedNeigh.Store(int64(p.neigh.len()))
		p.m.programmedFDB.Store(int64(p.fdb.len()))
		p.mu.Unlock()
	}()
	if err != nil {
		return ke, 0, err
	}
	st := &stride{p: p}
	adopted := p.syncNeigh(&ke, st)
	if !fdb {
		// Not dumped: the tracking stands, and is what the pass checks,
		// in place.
		ke.unproven = make(map[ethaddr.MAC]netip.Addr)
		ke.fdbTracked = true
		return ke, adopted, nil
	}
	adopted += p.syncFDB(&ke, st)
	return ke, adopted, nil
}

// syncNeigh makes the neighbour tracking match the dump ke (see sync) and
// returns how many entries it adopted. p.mu is held.
func (p *programmer) syncNeigh(ke *kernelEntries, st *stride) int {
	adopted := 0
	// Kernel entries: touched ones take the tracking's value; the others
	// are tracked as the kernel has them (adopted if new).
	for k, mac := range ke.neigh.all() {
		st.step()
		if _, touched := p.touchedNeigh[k]; touched {
			if m, ok := p.neigh.get(k); ok {
				ke.neigh.set(k, m)
			} else {
				ke.neigh.del(k)
			}
			continue
		}
		if !p.neigh.has(k) {
			adopted++
		}
		p.neigh.set(k, mac)
	}
	forgetVanished(st, &p.neigh, &ke.neigh, p.touchedNeigh)
	return adopted
}

// syncFDB makes the FDB tracking match the dump ke (see sync), moving the
// entries nothing shows to be ours to ke.unproven, and returns how many
// entries it adopted. p.mu is held.
func (p *programmer) syncFDB(ke *kernelEntries, st *stride) int {
	adopted := 0
	var named map[ethaddr.MAC]bool // the MACs of our neighbour entries, built if needed
	ke.unproven = make(map[ethaddr.MAC]netip.Addr)
	for mac, vtep := range ke.fdb.all() {
		st.step()
		if _, touched := p.touchedFDB[mac]; touched {
			if v, ok := p.fdb.get(mac); ok {
				ke.fdb.set(mac, v)
			} else {
				ke.fdb.del(mac)
			}
			continue
		}
		if p.fdb.has(mac) {
			p.fdb.set(mac, vtep)
			continue
		}
		if named == nil {
			named = make(map[ethaddr.MAC]bool, ke.neigh.len())
			for _, m := range ke.neigh.all() {
				named[m] = true
			}
		}
		if !named[mac] {
			ke.unproven[mac] = vtep
			ke.fdb.del(mac)
			continue
		}
		p.fdb.set(mac, vtep)
		adopted++
	}
	forgetVanished(st, &p.fdb, &ke.fdb, p.touchedFDB)
	return adopted
}

// entryTable is a table of entries, neighTable or fdbTable.
type entryTable[K comparable, V any] interface {
	all() iter.Seq2[K, V]
	has(K) bool
	set(K, V)
	del(K)
}

// forgetVanished forgets the tracked entries the dump (have) lacks, unless
// they were programmed during the dump (touched): those join have.
func forgetVanished[K comparable, V any](st *stride, tracked, have entryTable[K, V], touched map[K]struct{}) {
	for k, v := range tracked.all() {
		st.step()
		if have.has(k) {
			continue
		}
		if _, ok := touched[k]; ok {
			have.set(k, v)
			continue
		}
		tracked.del(k)
	}
}

// stride counts sync's steps and lets waiting batches go every syncStride
// (see yield).
type stride struct {
	p *programmer
	n int
}

func (s *stride) step() {
	if s.n++; s.n%syncStride == 0 {
		s.p.yield()
	}
}

// syncStride is how many entries sync compares between two releases of
// the programmer's lock.
const syncStride = 1024

// yield lets the batches and lookups waiting for mu (lock) go first, when
// sync runs beside them (with a dump socket of its own); without one, sync
// holds mu throughout, as for the dump. A plain unlock and lock would not
// do: the mutex lets sync take it again before a woken waiter runs.
func (p *programmer) yield() {
	if p.touchedNeigh == nil {
		return
	}
	p.letWaitersGo()
}

// letWaitersGo releases mu (held) while batches or lookups wait for it,
// and takes it again.
func (p *programmer) letWaitersGo() {
	if p.waiting.Load() == 0 {
		return
	}
	p.mu.Unlock()
	for i := 0; i < 1000 && p.waiting.Load() > 0; i++ {
		runtime.Gosched()
	}
	p.mu.Lock()
}

// lock takes mu for a batch or a lookup of the tracking, announcing the
// wait to sync (see yield).
func (p *programmer) lock() {
	p.waiting.Add(1)
	p.mu.Lock()
	p.waiting.Add(-1)
}

// eachFDB calls fn with every tracked FDB entry, in place: under mu,
// released every syncStride entries while batches or lookups wait (an
// entry programmed or removed meanwhile may or may not be seen; a pass's
// fixes are checked again before they are sent). fn must not call into
// the programmer.
func (p *programmer) eachFDB(fn func(ethaddr.MAC, netip.Addr)) {
	p.lock()
	defer p.mu.Unlock()
	n := 0
	for mac, vtep := range p.fdb.all() {
		fn(mac, vtep)
		if n++; n%syncStride == 0 {
			p.letWaitersGo()
		}
	}
}

// fdbCopy returns a copy of the FDB tracking.
func (p *programmer) fdbCopy() fdbTable {
	p.lock()
	defer p.mu.Unlock()
	return p.fdb.clone()
}

// fdbLen returns how many FDB entries are tracked.
func (p *programmer) fdbLen() int {
	p.lock()
	defer p.mu.Unlock()
	return p.fdb.len()
}

// adoptFDB tracks the kernel's FDB entry mac → vtep as ours (an unproven
// entry whose MAC the registry holds: this overlay's container).
func (p *programmer) adoptFDB(mac ethaddr.MAC, vtep netip.Addr) {
	p.lock()
	defer p.mu.Unlock()
	p.fdb.set(mac, vtep)
	p.m.programmedFDB.Store(int64(p.fdb.len()))
}

// ProgrammedEntry is one kernel entry the resolver programmed and tracks.
type ProgrammedEntry struct {
	// Table is "neigh" (IP → MAC on Ifindex) or "fdb" (MAC → VTEP on the
	// vxlan).
	Table   string      `json:"table"`
	Ifindex int32       `json:"ifindex"`
	IP      netip.Addr  `json:"ip,omitzero"`
	MAC     ethaddr.MAC `json:"mac"`
	VTEP    netip.Addr  `json:"vtep,omitzero"`
}

// entries lists what is tracked.
func (p *programmer) entries() []ProgrammedEntry {
	p.lock()
	defer p.mu.Unlock()
	out := make([]ProgrammedEntry, 0, p.neigh.len()+p.fdb.len())
	for k, mac := range p.neigh.all() {
		out = append(out, ProgrammedEntry{Table: "neigh", Ifindex: k.ifindex, IP: k.ip.Addr(), MAC: mac})
	}
	for mac, vtep := range p.fdb.all() {
		out = append(out, ProgrammedEntry{Table: "fdb", Ifindex: p.vxlan, MAC: mac, VTEP: vtep})
	}
	return out
}
