package registry

import "net/netip"

// CompactAddr is a record's address (IP or VTEP) in a form for maps that
// hold one entry per record: a netip.Addr without its zone (a record's
// addresses have none) and without pointers, 17 bytes instead of 24, so
// that maps of them are not scanned by the garbage collector.
type CompactAddr struct {
	b  [16]byte
	v4 bool
}

// Compact returns a as a CompactAddr; a's zone, if any, is dropped.
func Compact(a netip.Addr) CompactAddr { return CompactAddr{a.As16(), a.Is4()} }

// Addr returns c as a netip.Addr.
func (c CompactAddr) Addr() netip.Addr {
	a := netip.AddrFrom16(c.b)
	if c.v4 {
		return a.Unmap()
	}
	return a
}
