package resolver

import (
	"context"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/dirstore"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// burstRecord is the i-th record of the burst tests: the i-th address the
// generator asks for (from missgen.FirstTarget()), a MAC numbering i, one of
// 200 remote VTEPs.
func burstRecord(i int) registry.Record {
	return registry.Record{
		IP:   missgen.AddrAt(missgen.FirstTarget(), i),
		MAC:  ethaddr.MAC{0x02, 0x42, 0x0b, byte(i >> 16), byte(i >> 8), byte(i)},
		VTEP: netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i%200)}),
	}
}

// burstStore is a directory store holding n burst records, on tmpfs when
// the machine has /dev/shm (the store fsyncs every file).
func burstStore(t *testing.T, n int) *dirstore.Store {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "ovt-burst-")
	if err != nil {
		dir = t.TempDir()
	} else {
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	s, err := dirstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := s.Register(context.Background(), burstRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// startBurstResolver runs a resolver configured as `overlayd run` with no
// flags (mod may change it) on lab, fed by a monitor of mcfg, until the
// test ends.
func startBurstResolver(t *testing.T, lab *missgen.Lab, reg registry.Registry, mcfg rtnl.MonitorConfig, mod func(*Config)) *Resolver {
	return startBurstResolverAfter(t, lab, reg, mcfg, mod, nil)
}

// startBurstResolverAfter is startBurstResolver calling before, if not
// nil, once the monitor is subscribed and before the resolver starts.
func startBurstResolverAfter(t *testing.T, lab *missgen.Lab, reg registry.Registry, mcfg rtnl.MonitorConfig, mod func(*Config), before func()) *Resolver {
	t.Helper()
	conn := nstest.Dial(t, lab.Overlay)
	mon, err := rtnl.DialMonitor(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Close() })
	if before != nil {
		before()
	}
	cfg := Config{Tuning: DefaultTuning()}
	cfg.Conn, cfg.Registry, cfg.Vxlan, cfg.Bridge, cfg.VNI, cfg.Port = conn, reg, lab.VxlanIndex, lab.BridgeIndex, 42, 4789
	cfg.Subnet, cfg.LocalVTEP = netip.MustParsePrefix("10.64.0.0/10"), netip.MustParseAddr("192.0.2.1")
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, mon) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	waitFor(t, 30*time.Second, "the first reconcile pass", func() bool { return r.Metrics().Snapshot().Reconciles >= 1 })
	return r
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// kernelResolved counts the burst records whose PERMANENT neighbour entry
// and FDB entry are in lab's kernel, by dumping both tables.
func kernelResolved(t *testing.T, lab *missgen.Lab, n int) (int, []bool) {
	t.Helper()
	c := nstest.Dial(t, lab.Overlay)
	first := missgen.FirstTarget().As4()
	base := uint32(first[0])<<24 | uint32(first[1])<<16 | uint32(first[2])<<8 | uint32(first[3])
	neigh, fdb := make([]bool, n), make([]bool, n)
	err := c.NeighDump(rtnl.NeighFilter{Family: unix.AF_INET, Ifindex: lab.VxlanIndex}, func(m *rtnl.NeighMessage) error {
		if !m.Dst.Is4() || m.State&rtnl.NeighPermanent == 0 {
			return nil
		}
		a := m.Dst.As4()
		i := int(uint32(a[0])<<24|uint32(a[1])<<16|uint32(a[2])<<8|uint32(a[3])) - int(base)
		if mac, ok := m.MAC(); ok && i >= 0 && i < n && ethaddr.MAC(mac) == burstRecord(i).MAC {
			neigh[i] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = c.NeighDump(rtnl.NeighFilter{Family: unix.AF_BRIDGE, Ifindex: lab.VxlanIndex}, func(m *rtnl.NeighMessage) error {
		mac, ok := m.MAC()
		if !ok || mac[0] != 0x02 || mac[1] != 0x42 || mac[2] != 0x0b {
			return nil
		}
		i := int(mac[3])<<16 | int(mac[4])<<8 | int(mac[5])
		if i < n && m.Dst == burstRecord(i).VTEP {
			fdb[i] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make([]bool, n)
	k := 0
	for i := range n {
		done[i] = neigh[i] && fdb[i]
		if done[i] {
			k++
		}
	}
	return k, done
}

// TestResolverKernelBurst50k: a container ARPs for 50,000 distinct
// registered addresses in one burst, each request sent once; the resolver,
// configured as `overlayd run` with no flags, resolves every one (the
// lookups fall behind, the receive loop waits and the notifications wait in
// the socket: nothing is dropped).
func TestResolverKernelBurst50k(t *testing.T) {
	const n = 50_000
	lab := missgen.NewLab(t)
	store := burstStore(t, n)
	r := startBurstResolver(t, lab, store, DefaultMonitorConfig(lab.Overlay), nil)
	g := lab.Generator(t)
	if sent, err := g.ARP(missgen.FirstTarget(), n); err != nil || sent != n {
		t.Fatalf("generator: sent %d of %d: %v", sent, n, err)
	}
	waitFor(t, 3*time.Minute, "50,000 resolutions", func() bool {
		s := r.Metrics().Snapshot()
		return s.Resolutions["l3miss"] >= n || s.Overruns > 0
	})
	s := r.Metrics().Snapshot()
	if s.Overruns > 0 {
		t.Fatalf("the monitor overran (%d): the 32 MiB buffer did not hold the backlog", s.Overruns)
	}
	for why, d := range s.Dropped {
		if d > 0 {
			t.Errorf("%d misses dropped (%s)", d, why)
		}
	}
	if got, _ := kernelResolved(t, lab, n); got != n {
		t.Errorf("%d of %d addresses have both entries in the kernel", got, n)
	}
}

// TestResolverKernelBacklogAtStart: 20,000 misses wait in the monitor's
// socket when the resolver starts (a daemon restarted into a busy node):
// they are handled only once the first reconcile pass has listed the
// registry, so none is charged to the scan budget, and every one is
// resolved.
func TestResolverKernelBacklogAtStart(t *testing.T) {
	const n = 20_000
	lab := missgen.NewLab(t)
	store := burstStore(t, n)
	g := lab.Generator(t)
	r := startBurstResolverAfter(t, lab, store, DefaultMonitorConfig(lab.Overlay), nil, func() {
		if sent, err := g.ARP(missgen.FirstTarget(), n); err != nil || sent != n {
			t.Fatalf("generator: sent %d of %d: %v", sent, n, err)
		}
	})
	waitFor(t, 2*time.Minute, "20,000 resolutions", func() bool {
		s := r.Metrics().Snapshot()
		return s.Resolutions["l3miss"]+s.Dropped["scan_budget"] >= n || s.Overruns > 0
	})
	s := r.Metrics().Snapshot()
	for why, d := range s.Dropped {
		if d > 0 {
			t.Errorf("%d misses dropped (%s)", d, why)
		}
	}
	if s.Overruns > 0 {
		t.Errorf("%d overruns", s.Overruns)
	}
	if got, _ := kernelResolved(t, lab, n); got != n {
		t.Errorf("%d of %d addresses have both entries in the kernel", got, n)
	}
}

// slowRegistry delays every lookup, so that the resolver falls behind a
// burst.
type slowRegistry struct {
	registry.Registry
	delay time.Duration
}

func (s slowRegistry) LookupMAC(ctx context.Context, ip netip.Addr) (ethaddr.MAC, error) {
	time.Sleep(s.delay)
	return s.Registry.LookupMAC(ctx, ip)
}

// TestResolverKernelBackpressureTinyBuffer: with a receive buffer far too
// small for the burst and a slow registry, the resolver's backpressure
// makes the kernel overflow the socket: the overrun is reported, the
// resolver resyncs and keeps serving, drops nothing itself, and every
// address is resolved once the senders retry (as ARP does, a few at a
// time).
func TestResolverKernelBackpressureTinyBuffer(t *testing.T) {
	const n = 1000
	lab := missgen.NewLab(t)
	store := burstStore(t, n)
	mcfg := DefaultMonitorConfig(lab.Overlay)
	mcfg.ReceiveBuffer = 16 << 10 // the kernel doubles it: some 40 notifications
	r := startBurstResolver(t, lab, slowRegistry{store, 200 * time.Microsecond}, mcfg, func(c *Config) {
		c.Workers, c.QueueLen = 1, 16
	})
	g := lab.Generator(t)
	reconciles := r.Metrics().Snapshot().Reconciles
	idle := func() {
		last := ^uint64(0)
		waitFor(t, time.Minute, "the resolver to go idle", func() bool {
			s := r.Metrics().Snapshot()
			cur := s.Misses["l3miss"] + s.Resolutions["l3miss"]
			in, _ := r.table.sizes()
			if cur == last && in == 0 {
				return true
			}
			last = cur
			time.Sleep(20 * time.Millisecond)
			return false
		})
	}
	if sent, err := g.ARP(missgen.FirstTarget(), n); err != nil || sent != n {
		t.Fatalf("generator: sent %d of %d: %v", sent, n, err)
	}
	idle()
	first, _ := kernelResolved(t, lab, n)
	s := r.Metrics().Snapshot()
	if s.Overruns == 0 {
		t.Fatal("no overrun with a 32 KiB buffer and a slow registry: backpressure did not reach the socket")
	}
	if first == n {
		t.Fatalf("all %d resolved at once: the buffer was not too small, the test proves nothing", n)
	}
	waitFor(t, 30*time.Second, "the resync pass after the overrun", func() bool { return r.Metrics().Snapshot().Reconciles > reconciles })
	for pass := 0; ; pass++ {
		_, done := kernelResolved(t, lab, n)
		var missing []int
		for i, ok := range done {
			if !ok {
				missing = append(missing, i)
			}
		}
		if len(missing) == 0 {
			t.Logf("%d of %d resolved from the burst, the rest on %d passes of retries", first, n, pass)
			break
		}
		if pass == 5 {
			t.Fatalf("%d of %d addresses still unresolved after %d passes of retries", len(missing), n, pass)
		}
		for k := 0; k < len(missing); k += 16 {
			for _, i := range missing[k:min(k+16, len(missing))] {
				if sent, err := g.ARP(burstRecord(i).IP, 1); err != nil || sent != 1 {
					t.Fatalf("generator: %v", err)
				}
			}
			idle()
		}
	}
	s = r.Metrics().Snapshot()
	for why, d := range s.Dropped {
		if d > 0 {
			t.Errorf("%d misses dropped by the resolver (%s)", d, why)
		}
	}
}
