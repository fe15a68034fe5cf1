package resolver

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/rtnl"
)

// TestMissTablePerFamily: a sweep of IPv6 addresses fills the IPv6 half
// of the negative cache only; the IPv4 keys cached before stay.
func TestMissTablePerFamily(t *testing.T) {
	clk := newFakeClock()
	tab := newMissTable(3*time.Second, 4, 8, clk.now)
	var v4 []missKey
	for i := range 3 {
		k := missKey{kind: rtnl.MissL3, ip: netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 2)})}
		tab.admit(k)
		tab.done(k, true)
		v4 = append(v4, k)
	}
	for i := range 100 {
		k := missKey{kind: rtnl.MissL3, ip: netip.MustParseAddr(fmt.Sprintf("2001:db8:42::%x", i+2))}
		if tab.admit(k) == admitLookup {
			tab.done(k, true)
		}
	}
	for _, k := range v4 {
		if got := tab.admit(k); got != admitNegative {
			t.Errorf("%v after an IPv6 sweep: admit = %d, want negative (still cached)", k, got)
		}
	}
	if _, neg := tab.sizes(); neg > 3+4 {
		t.Errorf("negative cache holds %d keys, max 4 per family", neg)
	}
}

// TestResolverScanBudgetPerFamily: a sweep of unregistered IPv6 addresses
// spends the IPv6 budget alone (counted as scan_budget_ipv6): an
// unregistered IPv4 address still gets a lookup from its own budget, and
// registered IPv6 and IPv4 records are resolved meanwhile, IPv6 misses
// counted by family.
func TestResolverScanBudgetPerFamily(t *testing.T) {
	reg := newFakeRegistry()
	reg.add("2001:db8:42::2", macN(2), "192.0.2.3")
	reg.add("198.51.100.2", macN(2), "192.0.2.3")
	clk := newFakeClock()
	r, _ := newTestResolver(t, reg, &fakeKernel{}, func(c *testConfig) {
		c.Subnet6 = netip.MustParsePrefix("2001:db8:42::/64")
		c.LookupRate = 20
		c.LookupBurst = 2
		c.now = clk.now
	})
	runResolver(t, r)
	for i := range 50 {
		r.HandleMiss(l3(fmt.Sprintf("2001:db8:42::1:%x", i)))
	}
	r.HandleMiss(l3("2001:db8:42::2"))
	r.HandleMiss(l3("198.51.100.2"))
	r.HandleMiss(l3("198.51.100.77")) // unregistered, IPv4: its own budget
	eventually(t, "the registered misses", func() bool { return r.Metrics().Snapshot().Resolutions["l3miss"] == 2 })
	eventually(t, "the lookups of the budgets", func() bool { return r.Metrics().Snapshot().Unresolved["not_found"] == 3 })
	s := r.Metrics().Snapshot()
	if s.Dropped["scan_budget_ipv6"] != 48 || s.Dropped["scan_budget"] != 0 {
		t.Errorf("dropped %d IPv6, %d IPv4/MAC; want 48 and 0", s.Dropped["scan_budget_ipv6"], s.Dropped["scan_budget"])
	}
	if s.FamilyMisses != [2]uint64{2, 51} || s.FamilyResolutions != [2]uint64{1, 1} {
		t.Errorf("misses by family %v, resolutions %v; want [2 51], [1 1]", s.FamilyMisses, s.FamilyResolutions)
	}
}
