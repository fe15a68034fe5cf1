package registry

import (
	"net/netip"
	"testing"
)

func span(prefix, vtep, node string) Span {
	return Span{Prefix: netip.MustParsePrefix(prefix), VTEP: netip.MustParseAddr(vtep), Node: node}
}

// TestSpans: addresses find the span holding them, the longest prefix
// first when lengths differ; overlapping spans of other lengths are found
// both ways; dropping the last span of a length forgets the length.
func TestSpans(t *testing.T) {
	tab := NewSpans()
	a, b, c := span("10.244.1.0/24", "192.0.2.11", "a"), span("10.244.2.0/24", "192.0.2.12", "b"), span("10.244.3.64/26", "192.0.2.13", "c")
	for _, s := range []Span{a, b, c} {
		tab.Put(s)
	}
	for _, tc := range []struct {
		ip   string
		want string // node, "" for none
	}{
		{"10.244.1.1", "a"}, {"10.244.1.255", "a"}, {"10.244.2.7", "b"}, {"10.244.3.70", "c"},
		{"10.244.3.1", ""}, {"10.244.4.1", ""}, {"198.51.100.1", ""},
	} {
		s, ok := tab.Holding(netip.MustParseAddr(tc.ip))
		if ok != (tc.want != "") || s.Node != tc.want {
			t.Errorf("holding(%s) = %v %v, want node %q", tc.ip, s, ok, tc.want)
		}
	}
	for _, tc := range []struct {
		p    string
		want string
	}{
		{"10.244.1.0/26", "a"},  // inside a held /24
		{"10.244.3.0/24", "c"},  // holds a held /26
		{"10.244.1.0/24", ""},   // the same prefix is no overlap (a replacement)
		{"10.244.5.0/24", ""},   // free
		{"10.244.0.0/16", "*"},  // holds every span: any of them
		{"10.244.3.128/26", ""}, // beside c
	} {
		s, ok := tab.Overlapping(netip.MustParsePrefix(tc.p))
		if ok != (tc.want != "") || (ok && tc.want != "*" && s.Node != tc.want) {
			t.Errorf("overlapping(%s) = %v %v, want %q", tc.p, s, ok, tc.want)
		}
	}
	tab.Drop(c.Prefix)
	if len(tab.lens) != 1 || tab.lens[0] != 24 {
		t.Errorf("lengths after dropping the only /26: %v, want [24]", tab.lens)
	}
	if _, ok := tab.Holding(netip.MustParseAddr("10.244.3.70")); ok {
		t.Errorf("a dropped span still holds its addresses")
	}
}
