package resolver

import (
	"net/netip"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
)

// TestNeighTable: entries of both families on several devices, counted,
// replaced, deleted while iterated.
func TestNeighTable(t *testing.T) {
	t4, t6 := nkey(testVxlan, netip.MustParseAddr("10.1.0.1")), nkey(testVxlan, netip.MustParseAddr("2001:db8::1"))
	br := nkey(3, netip.MustParseAddr("10.1.0.1"))
	m1, m2 := ethaddr.MAC{2, 0x42, 0, 0, 0, 1}, ethaddr.MAC{2, 0x42, 0, 0, 0, 2}
	tab := newNeighTable(testVxlan, 4)
	tab.set(t4, m1)
	tab.set(t6, m1)
	tab.set(br, m2)
	tab.set(t4, m2) // replaced: still 3
	if tab.len() != 3 {
		t.Fatalf("len %d, want 3", tab.len())
	}
	for k, want := range map[neighKey]ethaddr.MAC{t4: m2, t6: m1, br: m2} {
		if got, ok := tab.get(k); !ok || got != want {
			t.Errorf("get(%v) = %v, %v; want %v", k, got, ok, want)
		}
	}
	seen := 0
	for k := range tab.all() {
		seen++
		if k.ip.Addr().Is6() {
			tab.del(k)
		}
	}
	if seen != 3 || tab.len() != 2 || tab.has(t6) {
		t.Errorf("iterated %d, left %d (IPv6 entry kept: %v); want 3, 2, false", seen, tab.len(), tab.has(t6))
	}
	f := fdbOf(map[ethaddr.MAC]netip.Addr{m1: netip.MustParseAddr("192.0.2.1"), m2: netip.MustParseAddr("2001:db8::9")})
	c := f.clone()
	f.set(m1, netip.MustParseAddr("192.0.2.2"))
	f.del(m2)
	if v, _ := c.get(m1); v != netip.MustParseAddr("192.0.2.1") || !c.has(m2) || f.len() != 1 || f.vteps.Len() != 1 {
		t.Errorf("the clone changed with its original, or the original's VTEPs leaked: %v, %d entries, %d VTEPs", v, f.len(), f.vteps.Len())
	}
}
