package rtnl_test

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
)

// eventTally counts one monitor's events and remembers whether it has seen
// the L3 miss for a sentinel address.
type eventTally struct {
	sentinel    netip.Addr
	sentinelMAC ethaddr.MAC // an FDB entry added last, the end for a changes-only monitor
	mu          sync.Mutex
	l3, l2      int
	adds        int
	dels        int
	overruns    int
	sawEnd      bool
}

func (c *eventTally) handle(ev *rtnl.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ev.Kind {
	case rtnl.EventMiss:
		switch {
		case ev.Miss.Kind == rtnl.MissL3 && ev.Miss.IP == c.sentinel:
			c.sawEnd = true
		case ev.Miss.Kind == rtnl.MissL3:
			c.l3++
		case ev.Miss.Kind == rtnl.MissL2:
			c.l2++
		}
	case rtnl.EventNeighAdd:
		if mac, ok := ev.Neigh.MAC(); ok && mac == c.sentinelMAC {
			c.sawEnd = true
			break
		}
		c.adds++
	case rtnl.EventNeighDelete:
		c.dels++
	case rtnl.EventOverrun:
		c.overruns++
	}
	return nil
}

func (c *eventTally) done() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sawEnd
}

// TestMonitorFilters runs a plain monitor, a MissesOnly one and a
// ChangesOnly one side by side in one namespace: the misses-only monitor
// must see the same misses as the plain one and none of the neighbour and
// FDB adds and deletes; the changes-only one the adds and deletes and no
// miss. A last L3 miss, then a last FDB add, raised after everything else,
// mark the end: the kernel queues a socket's notifications in order, so once
// a monitor has its marker, it has had (or had filtered out) everything
// before it.
func TestMonitorFilters(t *testing.T) {
	if _, err := rtnl.DialMonitor(rtnl.MonitorConfig{MissesOnly: true, ChangesOnly: true}); err == nil {
		t.Fatal("NewMonitor with MissesOnly and ChangesOnly: no error")
	}
	lab := missgen.NewLab(t)
	const n = 8
	sentinel := netip.MustParseAddr("10.66.0.200")
	sentinelMAC := ethaddr.MAC{0x02, 0x42, 0x0a, 0x42, 0x00, 0xff}
	plain := &eventTally{sentinel: sentinel, sentinelMAC: sentinelMAC}
	filtered := &eventTally{sentinel: sentinel, sentinelMAC: sentinelMAC}
	changes := &eventTally{sentinel: sentinel, sentinelMAC: sentinelMAC}
	mPlain := newMonitor(t, rtnl.MonitorConfig{NetNS: lab.Overlay})
	mFiltered := newMonitor(t, rtnl.MonitorConfig{NetNS: lab.Overlay, MissesOnly: true})
	mChanges := newMonitor(t, rtnl.MonitorConfig{NetNS: lab.Overlay, ChangesOnly: true})
	runMonitor(t, mPlain, plain.handle)
	runMonitor(t, mFiltered, filtered.handle)
	runMonitor(t, mChanges, changes.handle)

	g := lab.Generator(t)
	if sent, err := g.ARP(missgen.FirstTarget(), n); err != nil || sent != n {
		t.Fatalf("ARP: sent %d, %v", sent, err)
	}
	if sent, err := g.Unicast(missgen.FirstMAC(), n); err != nil || sent != n {
		t.Fatalf("Unicast: sent %d, %v", sent, err)
	}
	c := nstest.Dial(t, lab.Overlay)
	entries := []*rtnl.NeighMessage{
		rtnl.ARPEntry{Ifindex: lab.VxlanIndex,
			IP: netip.MustParseAddr("10.66.0.9"), MAC: ethaddr.MAC{0x02, 0x42, 0x0a, 0x42, 0x00, 0x09}}.Message(),
		rtnl.FDBEntry{Ifindex: lab.VxlanIndex, MAC: ethaddr.MAC{0x02, 0x42, 0x0a, 0x42, 0x00, 0x0a},
			Dst: netip.MustParseAddr("192.0.2.77")}.Message(),
	}
	for _, e := range entries {
		if err := c.NeighAdd(e); err != nil {
			t.Fatalf("NeighAdd %+v: %v", e, err)
		}
	}
	for _, e := range entries {
		if err := c.NeighDelete(e); err != nil {
			t.Fatalf("NeighDelete %+v: %v", e, err)
		}
	}
	if sent, err := g.ARP(sentinel, 1); err != nil || sent != 1 {
		t.Fatalf("ARP sentinel: sent %d, %v", sent, err)
	}
	if err := c.NeighAdd(rtnl.FDBEntry{Ifindex: lab.VxlanIndex, MAC: sentinelMAC, Dst: netip.MustParseAddr("192.0.2.78")}.Message()); err != nil {
		t.Fatalf("NeighAdd sentinel: %v", err)
	}
	if !eventually(5*time.Second, func() bool { return plain.done() && filtered.done() && changes.done() }) {
		t.Fatalf("end markers not seen within 5s: plain %v, misses-only %v, changes-only %v", plain.done(), filtered.done(), changes.done())
	}

	for _, c := range []*eventTally{plain, filtered, changes} {
		c.mu.Lock()
		defer c.mu.Unlock()
	}
	tests := []struct {
		name                     string
		tally                    *eventTally
		wantMisses               int
		wantAddsMin, wantDelsMin int
		wantAddsMax, wantDelsMax int
	}{
		// The plain and changes-only monitors see at least our two adds
		// and two deletes (the kernel may add its own, e.g. for the ARP
		// the generator sends); the misses-only one none at all.
		{"plain", plain, n, len(entries), len(entries), 1 << 30, 1 << 30},
		{"misses-only", filtered, n, 0, 0, 0, 0},
		{"changes-only", changes, 0, len(entries), len(entries), 1 << 30, 1 << 30},
	}
	for _, tc := range tests {
		c := tc.tally
		if c.l3 != tc.wantMisses || c.l2 != tc.wantMisses || c.overruns != 0 {
			t.Errorf("%s: %d L3, %d L2 misses, %d overruns; want %d, %d, 0", tc.name, c.l3, c.l2, c.overruns, tc.wantMisses, tc.wantMisses)
		}
		if c.adds < tc.wantAddsMin || c.adds > tc.wantAddsMax || c.dels < tc.wantDelsMin || c.dels > tc.wantDelsMax {
			t.Errorf("%s: %d adds and %d deletes, want [%d, %d] and [%d, %d]", tc.name, c.adds, c.dels,
				tc.wantAddsMin, tc.wantAddsMax, tc.wantDelsMin, tc.wantDelsMax)
		}
	}

	// The filters judge a datagram by its first message; that is exact
	// because every neighbour notification travels alone.
	sp, sf, sc := mPlain.Stats(), mFiltered.Stats(), mChanges.Stats()
	if sp.Datagrams != sp.Messages {
		t.Errorf("plain monitor: %d datagrams held %d messages, want one each", sp.Datagrams, sp.Messages)
	}
	if want := uint64(2*n + 1); sf.Datagrams != want || sf.Messages != want || sf.Misses() != want {
		t.Errorf("misses-only monitor stats %+v: want %d datagrams, messages and misses", sf, want)
	}
	if sc.Misses() != 0 || sc.Datagrams != sc.Messages || sc.Datagrams < uint64(2*len(entries)+1) {
		t.Errorf("changes-only monitor stats %+v: want no misses and at least %d datagrams of one message", sc, 2*len(entries)+1)
	}
}
