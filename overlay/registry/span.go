package registry

import (
	"crypto/sha256"
	"fmt"
	"iter"
	"net/netip"
	"slices"

	"github.com/overlaynet/overlaynet/ethaddr"
)

// Span is a range of overlay addresses that all live on one node, each a
// container whose MAC is DeriveMAC of its IP: a store that assigns every
// node an address block of its own (the Kubernetes store: a Node's
// podCIDR) describes its containers by spans instead of one record each,
// so that nothing is written per container and a node answers any miss
// from the spans it holds. Every address of Prefix is the record
// {IP, DeriveMAC(IP), VTEP} (see Record).
type Span struct {
	// Prefix is the node's block of overlay addresses.
	Prefix netip.Prefix `json:"prefix"`
	// VTEP is the node's underlay address.
	VTEP netip.Addr `json:"vtep"`
	// Node names the node, for logs ("" if the store has no names).
	Node string `json:"node,omitempty"`
}

// String formats s as "PREFIX VTEP (NODE)".
func (s Span) String() string {
	if s.Node == "" {
		return s.Prefix.String() + " " + s.VTEP.String()
	}
	return fmt.Sprintf("%s %s (%s)", s.Prefix, s.VTEP, s.Node)
}

// Record returns the record of ip in s (ok false if s does not hold ip).
func (s Span) Record(ip netip.Addr) (Record, bool) {
	if !s.Prefix.Contains(ip) {
		return Record{}, false
	}
	return Record{IP: ip, MAC: DeriveMAC(ip), VTEP: s.VTEP}, true
}

// Validate checks that s can be used: a masked IPv4 prefix (IPv6 once the
// overlay carries it) and a VTEP as a record's (see Record.Validate).
func (s Span) Validate() error {
	switch {
	case !s.Prefix.IsValid():
		return fmt.Errorf("registry: span of node %q has no prefix", s.Node)
	case s.Prefix != s.Prefix.Masked():
		return fmt.Errorf("registry: span %s of node %q is not a network prefix (want %s)", s.Prefix, s.Node, s.Prefix.Masked())
	case !s.VTEP.IsValid():
		return fmt.Errorf("registry: span %s of node %q has no VTEP", s.Prefix, s.Node)
	}
	if err := checkCanonical("span prefix", s.Prefix.Addr()); err != nil {
		return err
	}
	return checkCanonical("VTEP", s.VTEP)
}

// DeriveMAC returns the MAC of a container whose MAC is derived from its
// address, as overlaynet's attach and the CNI plugin give it: for IPv4,
// 02:42 followed by the four address bytes (198.51.100.2 →
// 02:42:c6:33:64:02, as Docker does); for any other address, 02:42
// followed by four bytes of its SHA-256 (not reversible: see DerivedIP).
func DeriveMAC(ip netip.Addr) ethaddr.MAC {
	if ip.Is4() || ip.Is4In6() {
		a := ip.Unmap().As4()
		return ethaddr.MAC{0x02, 0x42, a[0], a[1], a[2], a[3]}
	}
	sum := sha256.Sum256(ip.AsSlice())
	return ethaddr.MAC{0x02, 0x42, sum[0], sum[1], sum[2], sum[3]}
}

// DerivedIP returns the IPv4 address whose DeriveMAC is mac (02:42 and the
// four address bytes), and false for any other MAC. An L2 miss for a
// derived MAC is answered from the span holding its address.
func DerivedIP(mac ethaddr.MAC) (netip.Addr, bool) {
	if mac[0] != 0x02 || mac[1] != 0x42 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte{mac[2], mac[3], mac[4], mac[5]}), true
}

// Spans indexes spans by prefix, for lookups by address (the longest
// prefix first among the prefix lengths present: usually one, the
// --node-cidr-mask-size of kube-controller-manager). Its maps hold no
// pointer but each span's node name. Not safe for concurrent use.
type Spans struct {
	byPrefix map[netip.Prefix]spanRec
	lens     []int // prefix lengths present, longest first
	lenCount map[int]int
}

// spanRec is what the table holds of a span.
type spanRec struct {
	vtep CompactAddr
	node string
}

// NewSpans returns an empty index.
func NewSpans() *Spans {
	return &Spans{byPrefix: map[netip.Prefix]spanRec{}, lenCount: map[int]int{}}
}

// Put adds s, or replaces the span of its prefix.
func (t *Spans) Put(s Span) {
	if _, had := t.byPrefix[s.Prefix]; !had {
		t.lenCount[s.Prefix.Bits()]++
		if t.lenCount[s.Prefix.Bits()] == 1 {
			t.lens = append(t.lens, s.Prefix.Bits())
			slices.SortFunc(t.lens, func(a, b int) int { return b - a })
		}
	}
	t.byPrefix[s.Prefix] = spanRec{vtep: Compact(s.VTEP), node: s.Node}
}

// Drop removes the span of prefix p, if held.
func (t *Spans) Drop(p netip.Prefix) {
	if _, had := t.byPrefix[p]; !had {
		return
	}
	delete(t.byPrefix, p)
	if t.lenCount[p.Bits()]--; t.lenCount[p.Bits()] == 0 {
		delete(t.lenCount, p.Bits())
		t.lens = slices.DeleteFunc(t.lens, func(b int) bool { return b == p.Bits() })
	}
}

// Get returns the span of prefix p.
func (t *Spans) Get(p netip.Prefix) (Span, bool) {
	s, ok := t.byPrefix[p]
	if !ok {
		return Span{}, false
	}
	return Span{Prefix: p, VTEP: s.vtep.Addr(), Node: s.node}, true
}

// Holding returns the span whose prefix holds ip.
func (t *Spans) Holding(ip netip.Addr) (Span, bool) {
	for _, bits := range t.lens {
		p, err := ip.Prefix(bits)
		if err != nil {
			continue
		}
		if s, ok := t.Get(p); ok {
			return s, true
		}
	}
	return Span{}, false
}

// Overlapping returns a held span of another length than p's that
// overlaps p (one holding p, or one inside it); the span of p itself is
// no overlap.
func (t *Spans) Overlapping(p netip.Prefix) (Span, bool) {
	for _, bits := range t.lens {
		switch {
		case bits < p.Bits():
			if q, err := p.Addr().Prefix(bits); err == nil {
				if s, ok := t.Get(q); ok {
					return s, true
				}
			}
		case bits > p.Bits():
			for held := range t.byPrefix {
				if held.Bits() == bits && p.Contains(held.Addr()) {
					s, _ := t.Get(held)
					return s, true
				}
			}
		}
	}
	return Span{}, false
}

// Len returns the number of spans held.
func (t *Spans) Len() int { return len(t.byPrefix) }

// All yields every span held, in no order.
func (t *Spans) All() iter.Seq[Span] {
	return func(yield func(Span) bool) {
		for p := range t.byPrefix {
			s, _ := t.Get(p)
			if !yield(s) {
				return
			}
		}
	}
}
