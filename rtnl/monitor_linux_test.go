package rtnl_test

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// runMonitor runs m in a goroutine until the test's cleanup, handing every
// event to fn (called on the monitor's goroutine). It returns a function
// that stops the monitor and returns Run's error.
func runMonitor(t *testing.T, m *rtnl.Monitor, fn func(*rtnl.Event) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, fn) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("monitor did not stop within 5s of cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func newMonitor(t *testing.T, cfg rtnl.MonitorConfig) *rtnl.Monitor {
	t.Helper()
	m, err := rtnl.DialMonitor(cfg)
	if err != nil {
		t.Fatalf("NewMonitor: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// waitFor polls cond every 10 ms for up to d.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

func TestMonitorMissesAndNeighEvents(t *testing.T) {
	lab := missgen.NewLab(t)
	m := newMonitor(t, rtnl.MonitorConfig{NetNS: lab.Overlay})

	var (
		mu     sync.Mutex
		misses []rtnl.Miss
		adds   []rtnl.NeighMessage
		dels   []rtnl.NeighMessage
		echoes []uint32 // PortID of the PERMANENT add of our entry
	)
	stop := runMonitor(t, m, func(ev *rtnl.Event) error {
		mu.Lock()
		defer mu.Unlock()
		switch ev.Kind {
		case rtnl.EventMiss:
			misses = append(misses, ev.Miss)
		case rtnl.EventNeighAdd, rtnl.EventNeighDelete:
			n := ev.Neigh
			n.LLAddr = append([]byte(nil), n.LLAddr...)
			if ev.Kind == rtnl.EventNeighAdd {
				adds = append(adds, n)
				if n.State == rtnl.NeighPermanent && n.Family == unix.AF_INET {
					echoes = append(echoes, ev.PortID)
				}
			} else {
				dels = append(dels, n)
			}
		}
		return nil
	})

	const n = 5
	g := lab.Generator(t)
	if sent, err := g.ARP(missgen.FirstTarget(), n); err != nil || sent != n {
		t.Fatalf("ARP: sent %d, %v", sent, err)
	}
	if sent, err := g.Unicast(missgen.FirstMAC(), n); err != nil || sent != n {
		t.Fatalf("Unicast: sent %d, %v", sent, err)
	}
	c := nstest.Dial(t, lab.Overlay)
	ip := netip.MustParseAddr("10.66.0.9")
	mac := ethaddr.MAC{0x02, 0x42, 0x0a, 0x42, 0x00, 0x09}
	entry := rtnl.ARPEntry{Ifindex: lab.VxlanIndex, IP: ip, MAC: mac}.Message()
	if err := c.NeighAdd(entry); err != nil {
		t.Fatalf("NeighAdd: %v", err)
	}
	if err := c.NeighDelete(entry); err != nil {
		t.Fatalf("NeighDelete: %v", err)
	}
	ok := eventually(5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(misses) >= 2*n && len(dels) >= 1
	})
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run after cancel: %v, want context.Canceled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !ok {
		t.Fatalf("got %d misses and %d deletes, want %d and 1", len(misses), len(dels), 2*n)
	}

	var l3, l2 int
	for _, ms := range misses {
		if ms.Ifindex != lab.VxlanIndex || ms.State != rtnl.NeighStale {
			t.Errorf("miss %+v: want ifindex %d, state STALE", ms, lab.VxlanIndex)
		}
		switch ms.Kind {
		case rtnl.MissL3:
			if want := missgen.AddrAt(missgen.FirstTarget(), l3); ms.IP != want || ms.VNI != 1<<24 || ms.HasMAC {
				t.Errorf("L3 miss %d: %+v, want IP %v, VNI sentinel 16777216, no MAC", l3, ms, want)
			}
			l3++
		case rtnl.MissL2:
			if want := missgen.MACAt(missgen.FirstMAC(), l2); ms.MAC != want || ms.IP.IsValid() || !ms.HasVNI || ms.VNI != 0 {
				t.Errorf("L2 miss %d: %+v, want MAC %v, VNI 0, no IP", l2, ms, want)
			}
			l2++
		default:
			t.Errorf("unexpected miss %+v", ms)
		}
	}
	if l3 != n || l2 != n {
		t.Errorf("got %d L3 and %d L2 misses, want %d each", l3, l2, n)
	}
	found := func(list []rtnl.NeighMessage, withMAC bool) bool {
		for _, e := range list {
			if e.Dst == ip && e.Ifindex == lab.VxlanIndex && (!withMAC || e.LLAddr.String() == mac.String()) {
				return true
			}
		}
		return false
	}
	// The add echoes the MAC; the delete carries the address only.
	if !found(adds, true) || !found(dels, false) {
		t.Errorf("neighbour add/delete of %v not seen: adds %v, dels %v", ip, adds, dels)
	}
	if len(echoes) != 1 || echoes[0] != c.PortID() {
		t.Errorf("echo port ids %v, want one, the requesting socket's %d", echoes, c.PortID())
	}
	st := m.Stats()
	if st.L3Misses != n || st.L2Misses != n || st.Misses() != 2*n || st.Overruns != 0 || st.DecodeErrors != 0 {
		t.Errorf("stats %+v: want %d L3, %d L2, no overrun or decode error", st, n, n)
	}
}

func TestMonitorResync(t *testing.T) {
	lab := missgen.NewLab(t)
	m := newMonitor(t, rtnl.MonitorConfig{NetNS: lab.Overlay})
	c := nstest.Dial(t, lab.Overlay)
	ip := netip.MustParseAddr("10.66.0.7")
	mac := ethaddr.MAC{0x02, 0x42, 0x0a, 0x42, 0x00, 0x07}
	if err := c.NeighAdd(rtnl.ARPEntry{Ifindex: lab.VxlanIndex, IP: ip, MAC: mac}.Message()); err != nil {
		t.Fatal(err)
	}
	fdb := rtnl.FDBEntry{Ifindex: lab.VxlanIndex, MAC: mac, Dst: netip.MustParseAddr("192.0.2.7")}
	if err := c.NeighAdd(fdb.Message()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		filter  rtnl.NeighFilter
		wantARP bool
		wantFDB bool
	}{
		{"all", rtnl.NeighFilter{}, true, true},
		{"vxlan only", rtnl.NeighFilter{Ifindex: lab.VxlanIndex}, true, true},
		{"bridge family", rtnl.NeighFilter{Family: unix.AF_BRIDGE, Ifindex: lab.VxlanIndex}, false, true},
		{"other device", rtnl.NeighFilter{Ifindex: lab.VethIndex}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotARP, gotFDB bool
			err := m.Resync(tt.filter, func(n *rtnl.NeighMessage) error {
				got, _ := n.MAC()
				switch {
				case n.Family == unix.AF_INET && n.Dst == ip && got == mac:
					gotARP = true
				case n.Family == unix.AF_BRIDGE && n.Flags&rtnl.NeighFlagSelf != 0 && got == mac && n.Dst == fdb.Dst:
					gotFDB = true
				}
				if tt.filter.Ifindex != 0 && n.Ifindex != tt.filter.Ifindex {
					t.Errorf("entry of ifindex %d passed filter %+v", n.Ifindex, tt.filter)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("Resync: %v", err)
			}
			if gotARP != tt.wantARP || gotFDB != tt.wantFDB {
				t.Errorf("ARP entry seen %v (want %v), FDB entry seen %v (want %v)", gotARP, tt.wantARP, gotFDB, tt.wantFDB)
			}
		})
	}
}

func TestMonitorStops(t *testing.T) {
	ns, _ := nstest.NetNS(t, "ms")
	before := runtime.NumGoroutine()

	// Cancel: Run returns ctx.Err(), and the monitor can run again.
	m := newMonitor(t, rtnl.MonitorConfig{NetNS: ns})
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := m.Run(ctx, func(*rtnl.Event) error { return nil })
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run: %v, want context.DeadlineExceeded", err)
		}
	}
	// Already-cancelled context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Run(ctx, func(*rtnl.Event) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run with a done context: %v", err)
	}
	// Close: a parked Run returns nil.
	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background(), func(*rtnl.Event) error { return nil }) }()
	time.Sleep(50 * time.Millisecond)
	m.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after Close: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	if err := m.Run(context.Background(), func(*rtnl.Event) error { return nil }); err == nil {
		t.Fatal("Run on a closed monitor: nil error")
	}
	if !eventually(2*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
		t.Errorf("goroutines: %d before, %d after", before, runtime.NumGoroutine())
	}
}

// missCounter counts L3 misses for the addresses first .. first+n-1, each
// once, on the monitor's goroutine.
type missCounter struct {
	first netip.Addr
	seen  []bool
	mu    sync.Mutex
	count int // distinct addresses seen
	dups  int
	other int // misses outside the range
	overs int // EventOverrun
}

func newMissCounter(first netip.Addr, n int) *missCounter {
	return &missCounter{first: first, seen: make([]bool, n)}
}

func (c *missCounter) handle(ev *rtnl.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ev.Kind {
	case rtnl.EventOverrun:
		c.overs++
	case rtnl.EventMiss:
		if ev.Miss.Kind != rtnl.MissL3 || !ev.Miss.IP.Is4() {
			c.other++
			return nil
		}
		a, b := ev.Miss.IP.As4(), c.first.As4()
		i := int(uint32(a[0])<<24|uint32(a[1])<<16|uint32(a[2])<<8|uint32(a[3])) -
			int(uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3]))
		switch {
		case i < 0 || i >= len(c.seen):
			c.other++
		case c.seen[i]:
			c.dups++
		default:
			c.seen[i] = true
			c.count++
		}
	}
	return nil
}

func (c *missCounter) snapshot() (count, dups, other, overs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count, c.dups, c.other, c.overs
}

// waitIdle waits until n() has not changed for idle.
func waitIdle(n func() int, idle time.Duration) {
	last, since := n(), time.Now()
	for time.Since(since) < idle {
		time.Sleep(5 * time.Millisecond)
		if v := n(); v != last {
			last, since = v, time.Now()
		}
	}
}

// waitStable waits until c's count reaches want or stops growing for idle.
func (c *missCounter) waitStable(want int, idle time.Duration) int {
	last, since := -1, time.Now()
	for {
		n, _, _, _ := c.snapshot()
		if n >= want {
			return n
		}
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > idle {
			return n
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMonitorBurstNoLoss sends 200,000 ARP requests for distinct addresses
// while the monitor runs with its default (32 MiB forced) buffer, and
// checks that every one the kernel saw reach the bridge came out as an L3
// miss, once.
func TestMonitorBurstNoLoss(t *testing.T) {
	const n = 200_000
	lab := missgen.NewLab(t)
	m := newMonitor(t, rtnl.MonitorConfig{NetNS: lab.Overlay})
	t.Logf("receive buffer: %d bytes", m.ReceiveBuffer())
	mc := newMissCounter(missgen.FirstTarget(), n)
	runMonitor(t, m, mc.handle)

	g := lab.Generator(t)
	before := missgen.Stats(t, lab.OverlayName, "veth1")
	start := time.Now()
	sent, err := g.ARP(missgen.FirstTarget(), n)
	genTime := time.Since(start)
	if err != nil {
		t.Fatalf("generator: sent %d: %v", sent, err)
	}
	got := mc.waitStable(n, 2*time.Second)
	total := time.Since(start)
	after := missgen.Stats(t, lab.OverlayName, "veth1")
	reached := after.RxPackets - before.RxPackets
	count, dups, other, overs := mc.snapshot()
	t.Logf("sent %d in %v (%.0f/s); bridge port received %d (dropped %d); delivered %d in %v; stats %+v",
		sent, genTime, float64(sent)/genTime.Seconds(), reached, after.RxDropped-before.RxDropped,
		got, total, m.Stats())
	if sent != n {
		t.Errorf("generator sent %d of %d", sent, n)
	}
	if reached != uint64(sent) || after.RxDropped != before.RxDropped {
		t.Errorf("veth1 received %d frames, dropped %d: want exactly the %d sent", reached, after.RxDropped-before.RxDropped, sent)
	}
	if count != sent || dups != 0 || overs != 0 {
		t.Errorf("delivered %d distinct misses (%d duplicates, %d overruns), want %d, 0, 0", count, dups, overs, sent)
	}
	if other != 0 {
		t.Logf("%d misses outside the generated range (stray traffic)", other)
	}
}

// TestMonitorOverrunKeepsDelivering overflows a small receive buffer on
// purpose (the monitor is not reading while 5,000 misses arrive), then
// checks that Run reports an EventOverrun and goes on delivering: a second
// wave, sent while Run reads, arrives in full.
func TestMonitorOverrunKeepsDelivering(t *testing.T) {
	const flood, wave = 5_000, 2_000
	lab := missgen.NewLab(t)
	m := newMonitor(t, rtnl.MonitorConfig{NetNS: lab.Overlay, ReceiveBuffer: 64 << 10})
	g := lab.Generator(t)
	if sent, err := g.ARP(missgen.FirstTarget(), flood); err != nil || sent != flood {
		t.Fatalf("flood: sent %d: %v", sent, err)
	}

	second := missgen.AddrAt(missgen.FirstTarget(), flood)
	mc := newMissCounter(second, wave)
	var firstOverrun, beforeOverrun, afterOverrun int
	var mu sync.Mutex
	runMonitor(t, m, func(ev *rtnl.Event) error {
		mu.Lock()
		switch {
		case ev.Kind == rtnl.EventOverrun && firstOverrun == 0:
			firstOverrun = 1
		case ev.Kind == rtnl.EventMiss && firstOverrun == 0:
			beforeOverrun++
		case ev.Kind == rtnl.EventMiss:
			afterOverrun++
		}
		mu.Unlock()
		return mc.handle(ev)
	})
	// Let Run drain what the small buffer kept, then send the second wave in
	// slices the buffer can hold.
	if !eventually(5*time.Second, func() bool { _, _, _, o := mc.snapshot(); return o > 0 }) {
		t.Fatalf("no EventOverrun after %d misses into a %d-byte buffer; stats %+v", flood, m.ReceiveBuffer(), m.Stats())
	}
	// The kernel reports an overflow once, then drops silently until the
	// socket's queue has emptied: the wave must not start before Run has
	// drained what the flood left (counted as other misses).
	waitIdle(func() int { _, _, other, _ := mc.snapshot(); return other }, 200*time.Millisecond)
	for i := 0; i < wave; i += 50 {
		if sent, err := g.ARP(missgen.AddrAt(second, i), 50); err != nil || sent != 50 {
			t.Fatalf("wave: sent %d: %v", sent, err)
		}
		mc.waitStable(i+50, 500*time.Millisecond)
	}
	got := mc.waitStable(wave, time.Second)
	st := m.Stats()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("buffer %d bytes: %d misses before the overrun event, %d after; stats %+v", m.ReceiveBuffer(), beforeOverrun, afterOverrun, st)
	if st.Overruns == 0 {
		t.Errorf("stats report no overrun: %+v", st)
	}
	if got != wave {
		t.Errorf("after the overrun, %d of the %d misses of the second wave arrived", got, wave)
	}
	if total := st.L3Misses; total >= flood+wave {
		t.Errorf("%d L3 misses delivered: the flood cannot have fit the small buffer", total)
	}
}
