package bench

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// The scan: scanN addresses nobody registered (10.80.0.0/16, inside the
// lab's overlay subnet, outside the registered records), swept in
// scanDuration by one container while another raises scanLegitN misses for
// registered addresses, one every scanLegitEvery.
const (
	scanN          = 1 << 16
	scanDuration   = 2 * time.Second
	scanLegitN     = 400
	scanLegitEvery = 5 * time.Millisecond
)

var (
	scanPrefix = netip.MustParsePrefix("10.80.0.0/16")
	// The second container, whose misses are the legitimate ones.
	legitMAC = ethaddr.MAC{0x02, 0x42, 0xc6, 0x33, 0x64, 0x03}
	legitIP  = netip.MustParseAddr("10.64.0.3")
)

// countingRegistry counts the IP → MAC lookups that reach the registry, by
// whether the address belongs to the scan.
type countingRegistry struct {
	registry.Registry
	scan, other atomic.Int64
	lastScan    atomic.Int64 // UnixNano of the latest scan lookup
}

func (c *countingRegistry) LookupMAC(ctx context.Context, ip netip.Addr) (ethaddr.MAC, error) {
	if scanPrefix.Contains(ip) {
		c.scan.Add(1)
		c.lastScan.Store(time.Now().UnixNano())
	} else {
		c.other.Add(1)
	}
	return c.Registry.LookupMAC(ctx, ip)
}

// BenchmarkResolveScan measures what a subnet scan costs the registry and
// the node's legitimate traffic: one op is a round in a fresh lab where a
// container sweeps 65,536 unregistered addresses (an ARP request each, sent
// once, paced over 2 s: ~33,000 misses/s) while a second container raises
// 400 misses for registered addresses, one every 5 ms, each sent once.
//
//	scan-lookups/s    registry lookups of scanned addresses / the scan's
//	                  window (first scan frame → the later of its last frame
//	                  and its last lookup)
//	scan-lookups      the same, per round
//	budget-used       scan lookups / what the daemon's scan budget allows in
//	                  the window (rate × window + burst): at most 1 means
//	                  the registry saw no more than the budget
//	legit-p50-us      median latency of the legitimate misses (send → both
//	                  entries in the kernel)
//	legit-p99-us      their 99th percentile
//	legit-unresolved  legitimate misses never resolved (dropped), per round
//
// For impl=rtnl (`overlayd run`'s defaults) the round fails if the scan's
// lookups exceed the configured budget (rate × window + burst) or a
// legitimate miss stays unresolved. impl=vishvananda (libnetwork's way, no
// protection) shows what an unbounded resolver lets through. Run it with
// -benchtime 1x.
func BenchmarkResolveScan(b *testing.B) {
	nstest.RequireRoot(b)
	for _, reg := range resolveRegistries(b) {
		for _, impl := range resolverImpls {
			b.Run("registry="+reg.name+"/impl="+impl.name, func(b *testing.B) {
				benchScan(b, impl, reg)
			})
		}
	}
}

func benchScan(b *testing.B, impl resolverImpl, reg benchRegistry) {
	var scanLookups int64
	var window time.Duration
	var lat []time.Duration
	unresolved := 0
	for range b.N {
		r := scanRound(b, impl, reg)
		scanLookups += r.scanLookups
		window += r.window
		lat = append(lat, r.legit...)
		unresolved += r.unresolved
	}
	slices.Sort(lat)
	b.ReportMetric(float64(window.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(scanLookups)/window.Seconds(), "scan-lookups/s")
	b.ReportMetric(float64(scanLookups)/float64(b.N), "scan-lookups")
	rate, burst := benchScanBudget()
	b.ReportMetric(float64(scanLookups)/(rate*window.Seconds()+float64(burst*b.N)), "budget-used")
	b.ReportMetric(float64(percentile(lat, 0.50).Nanoseconds())/1e3, "legit-p50-us")
	b.ReportMetric(float64(percentile(lat, 0.99).Nanoseconds())/1e3, "legit-p99-us")
	b.ReportMetric(float64(unresolved)/float64(b.N), "legit-unresolved")
}

type scanResult struct {
	scanLookups int64
	window      time.Duration
	legit       []time.Duration
	unresolved  int
}

func scanRound(b *testing.B, impl resolverImpl, reg benchRegistry) scanResult {
	b.StopTimer()
	lab := missgen.NewLab(b)
	scanner := lab.Generator(b)
	legit := lab.AddContainer(b, legitMAC, legitIP)
	counted := &countingRegistry{Registry: reg.reg}
	r, run := startImpl(b, lab, impl, benchRegistry{reg.name, counted, reg.dir})
	c := r.c
	run()
	time.Sleep(50 * time.Millisecond)
	other0 := counted.other.Load()

	b.StartTimer()
	start := time.Now()
	scanDone := make(chan error, 1)
	go func() {
		const chunk = 256
		every := scanDuration / (scanN / chunk)
		next := time.Now()
		for i := 0; i < scanN; i += chunk {
			first := missgen.AddrAt(scanPrefix.Addr(), i)
			if n, err := scanner.ARP(first, chunk); err != nil || n != chunk {
				scanDone <- fmt.Errorf("scanner: sent %d of %d: %v", n, chunk, err)
				return
			}
			next = next.Add(every)
			time.Sleep(time.Until(next))
		}
		scanDone <- nil
	}()
	sent := make([]int64, scanLegitN)
	next := time.Now()
	for j := range scanLegitN {
		sent[j] = time.Now().UnixNano()
		if n, err := legit.ARP(resolveIP(j), 1); err != nil || n != 1 {
			b.Fatalf("legitimate container: %v", err)
		}
		next = next.Add(scanLegitEvery)
		time.Sleep(time.Until(next))
	}
	if err := <-scanDone; err != nil {
		b.Fatal(err)
	}
	scanEnd := time.Now()
	for since, last := time.Now(), -1; ; time.Sleep(time.Millisecond) {
		done := c.resolved()
		if done >= scanLegitN {
			break
		}
		if done != last {
			last, since = done, time.Now()
		} else if time.Since(since) > 2*time.Second {
			break
		}
	}
	b.StopTimer()
	r.finish(b)
	end := scanEnd
	if ls := time.Unix(0, counted.lastScan.Load()); ls.After(end) {
		end = ls
	}
	res := scanResult{scanLookups: counted.scan.Load(), window: end.Sub(start)}
	for j := range scanLegitN {
		if c.neigh[j] == 0 || c.fdb[j] == 0 {
			res.unresolved++
			continue
		}
		res.legit = append(res.legit, time.Duration(max(c.neigh[j], c.fdb[j])-sent[j]))
	}
	b.Logf("%s on %s: scan of %d addresses in %v: %d registry lookups of scanned addresses (%.0f/s), %d of registered ones; %d of %d legitimate misses resolved",
		impl.name, reg.name, scanN, res.window.Round(time.Millisecond), res.scanLookups,
		float64(res.scanLookups)/res.window.Seconds(), counted.other.Load()-other0, len(res.legit), scanLegitN)
	if impl.name == "rtnl" {
		rate, burst := benchScanBudget()
		if limit := int64(rate*res.window.Seconds()) + int64(burst); res.scanLookups > limit {
			b.Errorf("rtnl: %d registry lookups for scanned addresses in %v, over the budget of %.0f/s + %d (%d)",
				res.scanLookups, res.window, rate, burst, limit)
		}
		if res.unresolved > 0 {
			b.Errorf("rtnl: %d of %d legitimate misses never resolved", res.unresolved, scanLegitN)
		}
	}
	return res
}
