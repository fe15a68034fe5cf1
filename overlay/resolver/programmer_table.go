package resolver

import (
	"iter"
	"net/netip"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// neighTable holds neighbour entries (device, IP → MAC) compactly: per
// device, IPv4 keys of 4 bytes and IPv6 keys of 16, so an IPv4 entry takes
// 10 bytes of map slot where a map keyed by neighKey takes 32. The
// programmer's tracking and a pass's kernel entries hold one entry per
// remote endpoint. The zero value is empty and ready for use.
type neighTable struct {
	devs map[int32]*devNeigh
	n    int
}

// devNeigh are the entries of one device.
type devNeigh struct {
	v4 map[[4]byte]ethaddr.MAC
	v6 map[[16]byte]ethaddr.MAC
}

// newNeighTable returns a table with room for n entries of IPv4 addresses
// on dev.
func newNeighTable(dev int32, n int) neighTable {
	return neighTable{devs: map[int32]*devNeigh{dev: {v4: make(map[[4]byte]ethaddr.MAC, n), v6: make(map[[16]byte]ethaddr.MAC)}}}
}

// neighOf returns a table of m's entries.
func neighOf(m map[neighKey]ethaddr.MAC) neighTable {
	var t neighTable
	for k, mac := range m {
		t.set(k, mac)
	}
	return t
}

func (t *neighTable) get(k neighKey) (ethaddr.MAC, bool) {
	d := t.devs[k.ifindex]
	if d == nil {
		return ethaddr.MAC{}, false
	}
	ip := k.ip.Addr()
	var mac ethaddr.MAC
	var ok bool
	if ip.Is4() {
		mac, ok = d.v4[ip.As4()]
	} else {
		mac, ok = d.v6[ip.As16()]
	}
	return mac, ok
}

func (t *neighTable) has(k neighKey) bool {
	_, ok := t.get(k)
	return ok
}

func (t *neighTable) set(k neighKey, mac ethaddr.MAC) {
	if t.devs == nil {
		t.devs = make(map[int32]*devNeigh)
	}
	d := t.devs[k.ifindex]
	if d == nil {
		d = &devNeigh{v4: make(map[[4]byte]ethaddr.MAC), v6: make(map[[16]byte]ethaddr.MAC)}
		t.devs[k.ifindex] = d
	}
	ip := k.ip.Addr()
	before := len(d.v4) + len(d.v6)
	if ip.Is4() {
		d.v4[ip.As4()] = mac
	} else {
		d.v6[ip.As16()] = mac
	}
	t.n += len(d.v4) + len(d.v6) - before
}

func (t *neighTable) del(k neighKey) {
	d := t.devs[k.ifindex]
	if d == nil {
		return
	}
	ip := k.ip.Addr()
	before := len(d.v4) + len(d.v6)
	if ip.Is4() {
		delete(d.v4, ip.As4())
	} else {
		delete(d.v6, ip.As16())
	}
	t.n -= before - len(d.v4) - len(d.v6)
}

func (t *neighTable) len() int { return t.n }

// all yields every entry; the loop body may delete the entry it is given
// or change its MAC (set), nothing else.
func (t *neighTable) all() iter.Seq2[neighKey, ethaddr.MAC] {
	return func(yield func(neighKey, ethaddr.MAC) bool) {
		for dev, d := range t.devs {
			for ip, mac := range d.v4 {
				if !yield(nkey(dev, netip.AddrFrom4(ip)), mac) {
					return
				}
			}
			for ip, mac := range d.v6 {
				if !yield(nkey(dev, netip.AddrFrom16(ip)), mac) {
					return
				}
			}
		}
	}
}

// fdbTable holds FDB entries (MAC → VTEP) compactly: the VTEPs interned
// (a few per overlay), an entry in 10 bytes of map slot. The zero value is
// empty and ready for use.
type fdbTable struct {
	m     map[ethaddr.MAC]uint32
	vteps registry.AddrIndex
}

// fdbOf returns a table of m's entries.
func fdbOf(m map[ethaddr.MAC]netip.Addr) fdbTable {
	var t fdbTable
	for mac, vtep := range m {
		t.set(mac, vtep)
	}
	return t
}

func (t *fdbTable) get(mac ethaddr.MAC) (netip.Addr, bool) {
	i, ok := t.m[mac]
	if !ok {
		return netip.Addr{}, false
	}
	return t.vteps.Addr(i), true
}

func (t *fdbTable) has(mac ethaddr.MAC) bool {
	_, ok := t.m[mac]
	return ok
}

func (t *fdbTable) set(mac ethaddr.MAC, vtep netip.Addr) {
	if t.m == nil {
		t.m = make(map[ethaddr.MAC]uint32)
	}
	if i, ok := t.m[mac]; ok {
		if t.vteps.Addr(i) == vtep {
			return
		}
		t.vteps.Release(i)
	}
	t.m[mac] = t.vteps.Add(vtep)
}

func (t *fdbTable) del(mac ethaddr.MAC) {
	if i, ok := t.m[mac]; ok {
		t.vteps.Release(i)
		delete(t.m, mac)
	}
}

func (t *fdbTable) len() int { return len(t.m) }

// all yields every entry; the loop body may delete the entry it is given
// or change its VTEP (set), nothing else.
func (t *fdbTable) all() iter.Seq2[ethaddr.MAC, netip.Addr] {
	return func(yield func(ethaddr.MAC, netip.Addr) bool) {
		for mac, i := range t.m {
			if !yield(mac, t.vteps.Addr(i)) {
				return
			}
		}
	}
}

// clone returns a copy of t.
func (t *fdbTable) clone() fdbTable {
	c := fdbTable{m: make(map[ethaddr.MAC]uint32, len(t.m))}
	for mac, vtep := range t.all() {
		c.set(mac, vtep)
	}
	return c
}
