package resolver

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// track updates what we programmed after op was applied (or failed).
func (p *programmer) track(op *progOp) {
	if op.err != nil && (op.kind == opDelNeigh || op.kind == opDelFDB) && errors.Is(op.err, unix.ENOENT) {
		op.err = nil // already gone: the goal is reached
	}
	if op.err != nil {
		p.m.programErrors.Add(1)
		return
	}
	if p.touchedNeigh != nil {
		switch op.kind {
		case opSetNeigh, opDelNeigh:
			p.touchedNeigh[neighKey{op.ifindex, op.ip}] = struct{}{}
		case opSetFDB, opDelFDB:
			p.touchedFDB[op.mac] = struct{}{}
		}
	}
	switch op.kind {
	case opSetNeigh:
		p.neigh[neighKey{op.ifindex, op.ip}] = op.mac
	case opSetFDB:
		p.fdb[op.mac] = op.vtep
	case opDelNeigh:
		delete(p.neigh, neighKey{op.ifindex, op.ip})
	case opDelFDB:
		delete(p.fdb, op.mac)
	}
}

// kernelEntries are the entries in the kernel carrying our marks.
type kernelEntries struct {
	neigh map[neighKey]registry.MAC
	fdb   map[registry.MAC]netip.Addr
	// unproven are PERMANENT extern_learn FDB entries on the vxlan that
	// nothing yet shows to be ours: another controller of the device (an
	// EVPN daemon) programs entries with the same flags. See sync.
	unproven map[registry.MAC]netip.Addr
}

// load dumps, on k, the kernel's IPv4 neighbour entries marked with our protocol
// (any device) and the vxlan's PERMANENT extern_learn FDB entries.
func (p *programmer) load(k neighKernel) (kernelEntries, error) {
	ke := kernelEntries{neigh: make(map[neighKey]registry.MAC), fdb: make(map[registry.MAC]netip.Addr)}
	err := k.NeighDump(rtnl.NeighFilter{Family: unix.AF_INET}, func(m *rtnl.NeighMessage) error {
		mac, ok := m.MAC()
		if m.Protocol == p.proto && m.Present.Has(rtnl.NeighAttrProtocol) && ok && m.Dst.IsValid() {
			ke.neigh[neighKey{m.Ifindex, m.Dst}] = registry.MAC(mac)
		}
		return nil
	})
	if err != nil {
		return ke, fmt.Errorf("overlay: dump neighbours: %w", err)
	}
	err = k.NeighDump(rtnl.NeighFilter{Family: unix.AF_BRIDGE, Ifindex: p.vxlan}, func(m *rtnl.NeighMessage) error {
		mac, ok := m.MAC()
		if m.Ifindex == p.vxlan && ok && !mac.IsZero() && m.Dst.IsValid() &&
			m.Flags&(rtnl.NeighFlagSelf|rtnl.NeighFlagExtLearned) == rtnl.NeighFlagSelf|rtnl.NeighFlagExtLearned &&
			m.State&rtnl.NeighPermanent != 0 {
			ke.fdb[registry.MAC(mac)] = m.Dst
		}
		return nil
	})
	if err != nil {
		return ke, fmt.Errorf("overlay: dump vxlan FDB: %w", err)
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
func (p *programmer) sync() (kernelEntries, int, error) {
	var ke kernelEntries
	var err error
	if p.dump == nil {
		p.mu.Lock()
		ke, err = p.load(p.k)
	} else {
		// Dumped on a socket of its own, programming going on: what is
		// programmed meanwhile is noted and taken from the tracking.
		p.mu.Lock()
		p.touchedNeigh, p.touchedFDB = make(map[neighKey]struct{}), make(map[registry.MAC]struct{})
		p.mu.Unlock()
		ke, err = p.load(p.dump)
		p.mu.Lock()
		if err == nil {
			for k := range p.touchedNeigh {
				if mac, ok := p.neigh[k]; ok {
					ke.neigh[k] = mac
				} else {
					delete(ke.neigh, k)
				}
			}
			for mac := range p.touchedFDB {
				if vtep, ok := p.fdb[mac]; ok {
					ke.fdb[mac] = vtep
				} else {
					delete(ke.fdb, mac)
				}
			}
		}
		p.touchedNeigh, p.touchedFDB = nil, nil
	}
	defer p.mu.Unlock()
	if err != nil {
		return ke, 0, err
	}
	adopted := 0
	for k := range ke.neigh {
		if _, ok := p.neigh[k]; !ok {
			adopted++
		}
	}
	named := make(map[registry.MAC]bool, len(ke.neigh))
	for _, mac := range ke.neigh {
		named[mac] = true
	}
	ke.unproven = make(map[registry.MAC]netip.Addr)
	for k, vtep := range ke.fdb {
		if _, ok := p.fdb[k]; ok {
			continue
		}
		if !named[k] {
			ke.unproven[k] = vtep
			delete(ke.fdb, k)
			continue
		}
		adopted++
	}
	// Refilled in place: the maps keep the room they were sized with.
	clear(p.neigh)
	maps.Copy(p.neigh, ke.neigh)
	clear(p.fdb)
	maps.Copy(p.fdb, ke.fdb)
	p.m.programmedNeigh.Store(int64(len(p.neigh)))
	p.m.programmedFDB.Store(int64(len(p.fdb)))
	return ke, adopted, nil
}

// adoptFDB tracks the kernel's FDB entry mac → vtep as ours (an unproven
// entry whose MAC the registry holds: this overlay's container).
func (p *programmer) adoptFDB(mac registry.MAC, vtep netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fdb[mac] = vtep
	p.m.programmedFDB.Store(int64(len(p.fdb)))
}

// ProgrammedEntry is one kernel entry the resolver programmed and tracks.
type ProgrammedEntry struct {
	// Table is "neigh" (IP → MAC on Ifindex) or "fdb" (MAC → VTEP on the
	// vxlan).
	Table   string       `json:"table"`
	Ifindex int32        `json:"ifindex"`
	IP      netip.Addr   `json:"ip,omitzero"`
	MAC     registry.MAC `json:"mac"`
	VTEP    netip.Addr   `json:"vtep,omitzero"`
}

// entries lists what is tracked.
func (p *programmer) entries() []ProgrammedEntry {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ProgrammedEntry, 0, len(p.neigh)+len(p.fdb))
	for k, mac := range p.neigh {
		out = append(out, ProgrammedEntry{Table: "neigh", Ifindex: k.ifindex, IP: k.ip, MAC: mac})
	}
	for mac, vtep := range p.fdb {
		out = append(out, ProgrammedEntry{Table: "fdb", Ifindex: p.vxlan, MAC: mac, VTEP: vtep})
	}
	return out
}
