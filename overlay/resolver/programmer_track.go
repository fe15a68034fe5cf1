package resolver

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"syscall"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
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
		p.neigh[nkey(op.ifindex, op.ip)] = op.mac
	case opSetFDB:
		p.fdb[op.mac] = registry.Compact(op.vtep)
	case opDelNeigh:
		delete(p.neigh, nkey(op.ifindex, op.ip))
	case opDelFDB:
		delete(p.fdb, op.mac)
	}
}

// kernelEntries are the entries in the kernel carrying our marks.
type kernelEntries struct {
	neigh map[neighKey]ethaddr.MAC
	fdb   map[ethaddr.MAC]netip.Addr
	// unproven are PERMANENT extern_learn FDB entries on the vxlan that
	// nothing yet shows to be ours: another controller of the device (an
	// EVPN daemon) programs entries with the same flags. See sync.
	unproven map[ethaddr.MAC]netip.Addr
}

// load dumps, on k, the kernel's IPv4 neighbour entries marked with our
// protocol (any device) and, with fdb, the vxlan's PERMANENT extern_learn
// FDB entries (ke.fdb is nil without).
func (p *programmer) load(k neighKernel, fdb bool) (kernelEntries, error) {
	ke := kernelEntries{neigh: make(map[neighKey]ethaddr.MAC)}
	err := k.NeighDump(rtnl.NeighFilter{Family: rtnl.FamilyInet}, func(m *rtnl.NeighMessage) error {
		mac, ok := m.MAC()
		if m.Protocol == p.proto && m.Present.Has(rtnl.NeighAttrProtocol) && ok && m.Dst.IsValid() {
			ke.neigh[nkey(m.Ifindex, m.Dst)] = mac
		}
		return nil
	})
	if err != nil {
		return ke, fmt.Errorf("resolver: dump neighbours: %w", err)
	}
	if !fdb {
		return ke, nil
	}
	ke.fdb = make(map[ethaddr.MAC]netip.Addr)
	err = k.NeighDump(rtnl.NeighFilter{Family: rtnl.FamilyBridge, Ifindex: p.vxlan}, func(m *rtnl.NeighMessage) error {
		mac, ok := m.MAC()
		if m.Ifindex == p.vxlan && ok && !mac.IsZero() && m.Dst.IsValid() &&
			m.Flags&(rtnl.NeighFlagSelf|rtnl.NeighFlagExtLearned) == rtnl.NeighFlagSelf|rtnl.NeighFlagExtLearned &&
			m.State&rtnl.NeighPermanent != 0 {
			ke.fdb[mac] = m.Dst
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
	var tracked map[ethaddr.MAC]netip.Addr // without fdb: the tracked FDB, for ke
	p.mu.Lock()
	if p.dump == nil {
		ke, err = p.load(p.k, fdb)
		if !fdb {
			tracked = make(map[ethaddr.MAC]netip.Addr, len(p.fdb))
		}
	} else {
		p.touchedNeigh, p.touchedFDB = make(map[neighKey]struct{}), make(map[ethaddr.MAC]struct{})
		n := len(p.fdb)
		p.mu.Unlock()
		if !fdb {
			// Allocated without the lock: clearing a map of 100,000
			// entries takes milliseconds.
			tracked = make(map[ethaddr.MAC]netip.Addr, n)
		}
		ke, err = p.load(p.dump, fdb)
		p.mu.Lock()
	}
	defer func() {
		p.touchedNeigh, p.touchedFDB = nil, nil
		p.m.programmedNeigh.Store(int64(len(p.neigh)))
		p.m.programmedFDB.Store(int64(len(p.fdb)))
		p.mu.Unlock()
	}()
	if err != nil {
		return ke, 0, err
	}
	adopted := 0
	st := &stride{p: p}
	// Kernel entries: touched ones take the tracking's value; the others
	// are tracked as the kernel has them (adopted if new).
	for k, mac := range ke.neigh {
		st.step()
		if _, touched := p.touchedNeigh[k]; touched {
			if m, ok := p.neigh[k]; ok {
				ke.neigh[k] = m
			} else {
				delete(ke.neigh, k)
			}
			continue
		}
		if _, ok := p.neigh[k]; !ok {
			adopted++
		}
		p.neigh[k] = mac
	}
	forgetVanished(st, p.neigh, ke.neigh, p.touchedNeigh, func(m ethaddr.MAC) ethaddr.MAC { return m })
	var named map[ethaddr.MAC]bool // the MACs of our neighbour entries, built if needed
	ke.unproven = make(map[ethaddr.MAC]netip.Addr)
	for mac, vtep := range ke.fdb {
		st.step()
		if _, touched := p.touchedFDB[mac]; touched {
			if v, ok := p.fdb[mac]; ok {
				ke.fdb[mac] = v.Addr()
			} else {
				delete(ke.fdb, mac)
			}
			continue
		}
		if _, ok := p.fdb[mac]; ok {
			p.fdb[mac] = registry.Compact(vtep)
			continue
		}
		if named == nil {
			named = make(map[ethaddr.MAC]bool, len(ke.neigh))
			for _, m := range ke.neigh {
				named[m] = true
			}
		}
		if !named[mac] {
			ke.unproven[mac] = vtep
			delete(ke.fdb, mac)
			continue
		}
		p.fdb[mac] = registry.Compact(vtep)
		adopted++
	}
	if !fdb {
		// Not dumped: the tracking stands, and is what the pass checks.
		ke.fdb = tracked
		for mac, vtep := range p.fdb {
			st.step()
			ke.fdb[mac] = vtep.Addr()
		}
		return ke, adopted, nil
	}
	forgetVanished(st, p.fdb, ke.fdb, p.touchedFDB, registry.CompactAddr.Addr)
	return ke, adopted, nil
}

// forgetVanished forgets the tracked entries the dump (have) lacks, unless
// they were programmed during the dump (touched): those join have.
func forgetVanished[K comparable, T, H any](st *stride, tracked map[K]T, have map[K]H, touched map[K]struct{}, toHave func(T) H) {
	for k, v := range tracked {
		st.step()
		if _, ok := have[k]; ok {
			continue
		}
		if _, ok := touched[k]; ok {
			have[k] = toHave(v)
			continue
		}
		delete(tracked, k)
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
	if p.touchedNeigh == nil || p.waiting.Load() == 0 {
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

// adoptFDB tracks the kernel's FDB entry mac → vtep as ours (an unproven
// entry whose MAC the registry holds: this overlay's container).
func (p *programmer) adoptFDB(mac ethaddr.MAC, vtep netip.Addr) {
	p.lock()
	defer p.mu.Unlock()
	p.fdb[mac] = registry.Compact(vtep)
	p.m.programmedFDB.Store(int64(len(p.fdb)))
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
	out := make([]ProgrammedEntry, 0, len(p.neigh)+len(p.fdb))
	for k, mac := range p.neigh {
		out = append(out, ProgrammedEntry{Table: "neigh", Ifindex: k.ifindex, IP: k.ip.Addr(), MAC: mac})
	}
	for mac, vtep := range p.fdb {
		out = append(out, ProgrammedEntry{Table: "fdb", Ifindex: p.vxlan, MAC: mac, VTEP: vtep.Addr()})
	}
	return out
}
