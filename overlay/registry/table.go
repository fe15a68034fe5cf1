package registry

import (
	"iter"
	"net/netip"
	"sync"

	"github.com/overlaynet/overlaynet/ethaddr"
)

// Table is a store's keys held in memory, compact: arp/<ip> → MAC and
// fdb/<mac> → VTEP, a record being an IP whose MAC has a VTEP. It is the
// one copy of the records a node follows: a change feed keeps it (etcd's
// watcher joins its keys in it) and hands it to its consumer with every
// change (Change.Table), whose view of the registry it then is, instead of
// a copy rebuilt from the changes.
//
// An IPv4 key takes 4 bytes, an IPv6 key 16, a MAC 6; a VTEP is interned
// (AddrIndex), a record's MAC entry holding its index and how many IPs name
// the MAC: about 35 bytes per IPv4 record with the maps' own overhead, and
// no pointer, so the garbage collector never scans them.
//
// One goroutine writes (the feed); any number read. Readers see every
// write of the writer as soon as it returns.
type Table struct {
	mu    sync.RWMutex
	ip4   map[[4]byte]ethaddr.MAC
	ip6   map[[16]byte]ethaddr.MAC
	macs  map[ethaddr.MAC]macEntry
	vteps AddrIndex
}

// macEntry is what the table holds of a MAC: the index of its fdb/ key's
// VTEP in the table's AddrIndex (0: no fdb/ key) and how many arp/ keys
// name it, little-endian in bytes so that an entry packs into 8 bytes.
type macEntry struct {
	vtep [4]byte
	refs [4]byte
}

func (e macEntry) vtepIndex() uint32 { return le32(e.vtep) }
func (e macEntry) refCount() uint32  { return le32(e.refs) }

func le32(b [4]byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
func put32(v uint32) [4]byte {
	return [4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
}

// NewTable returns an empty table with room for about n IPv4 records.
func NewTable(n int) *Table {
	return &Table{ip4: make(map[[4]byte]ethaddr.MAC, n), ip6: make(map[[16]byte]ethaddr.MAC),
		macs: make(map[ethaddr.MAC]macEntry, n)}
}

// arp returns ip's MAC. t.mu is held.
func (t *Table) arp(ip netip.Addr) (ethaddr.MAC, bool) {
	if ip.Is4() {
		m, ok := t.ip4[ip.As4()]
		return m, ok
	}
	m, ok := t.ip6[ip.As16()]
	return m, ok
}

// SetARP records arp/ip → mac (replacing ip's MAC, if any). ip is a
// record's address: no zone, not IPv4-mapped (CheckKeyIP).
func (t *Table) SetARP(ip netip.Addr, mac ethaddr.MAC) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.arp(ip); ok {
		if old == mac {
			return
		}
		t.unref(old)
	}
	if ip.Is4() {
		t.ip4[ip.As4()] = mac
	} else {
		t.ip6[ip.As16()] = mac
	}
	e := t.macs[mac]
	e.refs = put32(e.refCount() + 1)
	t.macs[mac] = e
}

// DeleteARP removes arp/ip.
func (t *Table) DeleteARP(ip netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old, ok := t.arp(ip)
	if !ok {
		return
	}
	if ip.Is4() {
		delete(t.ip4, ip.As4())
	} else {
		delete(t.ip6, ip.As16())
	}
	t.unref(old)
}

// unref takes one arp/ key from mac's count. t.mu is held.
func (t *Table) unref(mac ethaddr.MAC) {
	e := t.macs[mac]
	n := e.refCount()
	if n <= 1 && e.vtepIndex() == 0 {
		delete(t.macs, mac)
		return
	}
	e.refs = put32(max(n, 1) - 1)
	t.macs[mac] = e
}

// SetFDB records fdb/mac → vtep.
func (t *Table) SetFDB(mac ethaddr.MAC, vtep netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.macs[mac]
	if i := e.vtepIndex(); i != 0 {
		if t.vteps.Addr(i) == vtep {
			return
		}
		t.vteps.Release(i)
	}
	e.vtep = put32(t.vteps.Add(vtep))
	t.macs[mac] = e
}

// DeleteFDB removes fdb/mac.
func (t *Table) DeleteFDB(mac ethaddr.MAC) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.macs[mac]
	if !ok || e.vtepIndex() == 0 {
		return
	}
	t.vteps.Release(e.vtepIndex())
	if e.refCount() == 0 {
		delete(t.macs, mac)
		return
	}
	e.vtep = [4]byte{}
	t.macs[mac] = e
}

// SetRecord records r's two keys: arp/IP → MAC and fdb/MAC → VTEP.
func (t *Table) SetRecord(r Record) {
	t.SetARP(r.IP, r.MAC)
	t.SetFDB(r.MAC, r.VTEP)
}

// PutRecord makes r ip's record: arp/IP → MAC and fdb/MAC → VTEP; the fdb/
// key of the MAC it replaces goes once no arp/ key names that MAC. It
// returns the record it replaces, if complete.
func (t *Table) PutRecord(r Record) (old Record, had bool) {
	old, had = t.Record(r.IP)
	mac, named := t.MAC(r.IP)
	t.SetRecord(r)
	if named && mac != r.MAC && t.Refs(mac) == 0 {
		t.DeleteFDB(mac)
	}
	return old, had
}

// DeleteRecord removes r: its arp/ key, and its fdb/ key once no arp/ key
// names its MAC.
func (t *Table) DeleteRecord(r Record) {
	t.DeleteARP(r.IP)
	if t.Refs(r.MAC) == 0 {
		t.DeleteFDB(r.MAC)
	}
}

// MAC returns the MAC of arp/ip.
func (t *Table) MAC(ip netip.Addr) (ethaddr.MAC, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.arp(ip)
}

// VTEP returns the VTEP of fdb/mac and how many arp/ keys name mac.
func (t *Table) VTEP(mac ethaddr.MAC) (vtep netip.Addr, refs uint32, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e := t.macs[mac]
	if i := e.vtepIndex(); i != 0 {
		return t.vteps.Addr(i), e.refCount(), true
	}
	return netip.Addr{}, e.refCount(), false
}

// Refs returns how many arp/ keys name mac.
func (t *Table) Refs(mac ethaddr.MAC) uint32 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.macs[mac].refCount()
}

// Record returns ip's record, if complete (its MAC has a VTEP).
func (t *Table) Record(ip netip.Addr) (Record, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	mac, ok := t.arp(ip)
	if !ok {
		return Record{}, false
	}
	i := t.macs[mac].vtepIndex()
	if i == 0 {
		return Record{}, false
	}
	return Record{IP: ip, MAC: mac, VTEP: t.vteps.Addr(i)}, true
}

// Len returns the number of arp/ keys.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.ip4) + len(t.ip6)
}

// ARP yields every arp/ key: its IP and MAC, in no order. The table is
// read-locked meanwhile: yield must not write it.
func (t *Table) ARP() iter.Seq2[netip.Addr, ethaddr.MAC] {
	return func(yield func(netip.Addr, ethaddr.MAC) bool) {
		t.mu.RLock()
		defer t.mu.RUnlock()
		for ip, mac := range t.ip4 {
			if !yield(netip.AddrFrom4(ip), mac) {
				return
			}
		}
		for ip, mac := range t.ip6 {
			if !yield(netip.AddrFrom16(ip), mac) {
				return
			}
		}
	}
}

// Records yields every complete record, in no order. The table is
// read-locked meanwhile: yield must not write it.
func (t *Table) Records() iter.Seq[Record] {
	return func(yield func(Record) bool) {
		t.mu.RLock()
		defer t.mu.RUnlock()
		rec := func(ip netip.Addr, mac ethaddr.MAC) bool {
			if i := t.macs[mac].vtepIndex(); i != 0 {
				return yield(Record{IP: ip, MAC: mac, VTEP: t.vteps.Addr(i)})
			}
			return true
		}
		for ip, mac := range t.ip4 {
			if !rec(netip.AddrFrom4(ip), mac) {
				return
			}
		}
		for ip, mac := range t.ip6 {
			if !rec(netip.AddrFrom16(ip), mac) {
				return
			}
		}
	}
}

// AddrIndex interns addresses (VTEPs: a few per overlay, each named by
// many records) as small indexes, counting their references: an index is
// reused once its last reference is released. Index 0 is never given. Not
// safe for concurrent use.
type AddrIndex struct {
	index map[netip.Addr]uint32
	addrs []netip.Addr // index-1 → address
	refs  []uint32     // index-1 → references
	free  []uint32
}

// Add returns a's index, adding a reference.
func (x *AddrIndex) Add(a netip.Addr) uint32 {
	if i, ok := x.index[a]; ok {
		x.refs[i-1]++
		return i
	}
	if x.index == nil {
		x.index = make(map[netip.Addr]uint32)
	}
	var i uint32
	if n := len(x.free); n > 0 {
		i, x.free = x.free[n-1], x.free[:n-1]
		x.addrs[i-1], x.refs[i-1] = a, 1
	} else {
		x.addrs, x.refs = append(x.addrs, a), append(x.refs, 1)
		i = uint32(len(x.addrs))
	}
	x.index[a] = i
	return i
}

// Addr returns the address of index i (the zero Addr for an index not in
// use).
func (x *AddrIndex) Addr(i uint32) netip.Addr {
	if i == 0 || int(i) > len(x.addrs) {
		return netip.Addr{}
	}
	return x.addrs[i-1]
}

// Release drops one reference of index i; the last one frees it.
func (x *AddrIndex) Release(i uint32) {
	if i == 0 || int(i) > len(x.addrs) || x.refs[i-1] == 0 {
		return
	}
	if x.refs[i-1]--; x.refs[i-1] == 0 {
		delete(x.index, x.addrs[i-1])
		x.addrs[i-1] = netip.Addr{}
		x.free = append(x.free, i)
	}
}

// Len returns the number of addresses in use.
func (x *AddrIndex) Len() int { return len(x.index) }
