package bench

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// missFamily is how a benchmark raises its L3 misses: ARP requests in an
// IPv4-only lab (familyLegacy: the resolver benchmarks of the IPv4
// overlay), or, in a dual-stack lab (missgen.NewDualLab: IPv6 on, no
// link-local addresses, as overlayd makes a dual-stack overlay), ARP
// requests (familyIPv4) or IPv6 Neighbor Solicitations (familyIPv6) for
// the targets' addresses of that family.
type missFamily struct {
	name string
	dual bool // a dual-stack lab
	v6   bool // Neighbor Solicitations for resolveIP6
}

var (
	familyLegacy = missFamily{name: "ipv4-only lab"}
	familyIPv4   = missFamily{name: "ipv4", dual: true}
	familyIPv6   = missFamily{name: "ipv6", dual: true, v6: true}
)

func (f missFamily) lab(tb testing.TB) *missgen.Lab {
	if f.dual {
		return missgen.NewDualLab(tb)
	}
	return missgen.NewLab(tb)
}

func (f missFamily) generator(tb testing.TB, lab *missgen.Lab) *missgen.Generator {
	if f.v6 {
		return lab.Generator6(tb)
	}
	return lab.Generator(tb)
}

// send raises the misses of targets i .. i+n-1.
func (f missFamily) send(g *missgen.Generator, i, n int) (int, error) {
	if f.v6 {
		return g.NS(resolveIP6(i), n)
	}
	return g.ARP(resolveIP(i), n)
}

// ip is the address target i's miss asks for.
func (f missFamily) ip(i int) netip.Addr {
	if f.v6 {
		return resolveIP6(i)
	}
	return resolveIP(i)
}

func (f missFamily) what() string {
	if f.v6 {
		return "Neighbor Solicitations"
	}
	return "ARP requests"
}

// dualN is how many dual-stack targets the family benchmarks' registry
// holds: an IPv4 and an IPv6 record of each (the largest burst they raise).
const dualN = resolveN

// sharedDualRegistries are the family benchmarks' registries, built once
// per process and removed when it ends.
var sharedDualRegistries struct {
	once sync.Once
	regs []benchRegistry
	err  error
}

// dualRegistries returns a DirStore (on tmpfs where the machine has one)
// and its in-memory copy holding dualN dual-stack targets: resolveIP(i)
// and resolveIP6(i), both of resolveMAC(i) at resolveVTEP(i). Both families
// are looked up in the same store.
func dualRegistries(tb testing.TB) []benchRegistry {
	tb.Helper()
	s := &sharedDualRegistries
	s.once.Do(func() {
		s.regs, dualCleanup, s.err = buildRegistries("ovt-dual-", dualN, func(i int) []registry.Record {
			return []registry.Record{{IP: resolveIP(i), MAC: resolveMAC(i), VTEP: resolveVTEP(i)},
				{IP: resolveIP6(i), MAC: resolveMAC(i), VTEP: resolveVTEP(i)}}
		})
	})
	if s.err != nil {
		tb.Fatalf("dual-stack benchmark registry: %v", s.err)
	}
	return s.regs
}

// dualCleanup is the directory of the dual-stack registry, removed by
// TestMain.
var dualCleanup string

// familyP99 keeps each family's p99 of the latest BenchmarkResolveIsolatedFamily run.
var familyP99 sync.Map

// BenchmarkResolveIsolatedFamily measures isolated misses for both
// address families of a dual-stack overlay, side by side in one run, in
// the benchmark's process (BenchmarkResolveIsolated runs the shipped
// binary, IPv4 only): the rtnl resolver (`overlayd run`'s defaults) on a dual-stack lab, misses one
// at a time, an op one ARP request (family=ipv4) or one Neighbor
// Solicitation (family=ipv6) for a registered address of a dual-stack
// target, timed from the frame leaving the container to the neighbour
// entry (an IPv6 one for IPv6) and the FDB entry in the kernel. Run it
// with -benchtime Nx (N <= 10000). It logs the IPv6/IPv4 ratio of the
// p99s.
func BenchmarkResolveIsolatedFamily(b *testing.B) {
	nstest.RequireRoot(b)
	for _, reg := range dualRegistries(b) {
		for _, fam := range []missFamily{familyIPv4, familyIPv6} {
			b.Run("registry="+reg.name+"/family="+fam.name, func(b *testing.B) {
				if b.N > dualN {
					b.Fatalf("-benchtime %dx: at most %d", b.N, dualN)
				}
				familyP99.Store(reg.name+"/"+fam.name, benchIsolatedOf(b, resolverImpls[0], reg, fam))
			})
		}
		v4, ok4 := familyP99.Load(reg.name + "/ipv4")
		v6, ok6 := familyP99.Load(reg.name + "/ipv6")
		if ok4 && ok6 && v4.(time.Duration) > 0 {
			b.Logf("registry=%s: p99 ipv6 / ipv4 = %.2f", reg.name, float64(v6.(time.Duration))/float64(v4.(time.Duration)))
		}
	}
}

// familyGap is the pause between a resolution and the next miss in
// BenchmarkResolveIsolatedFamily: the resolver is idle when each miss
// arrives.
const familyGap = 5 * time.Millisecond

// benchIsolatedOf raises the misses of fam one at a time on impl, run in
// the benchmark's process on reg, each familyGap after the previous one is
// resolved; it reports their latencies and returns the p99.
func benchIsolatedOf(b *testing.B, impl resolverImpl, reg benchRegistry, fam missFamily) time.Duration {
	lab := fam.lab(b)
	g := fam.generator(b, lab)
	r, run := startImpl(b, lab, impl, reg)
	c := r.c
	run()
	time.Sleep(50 * time.Millisecond) // past the start-up's own work

	var lat []time.Duration
	i := 0
	for b.Loop() {
		if i >= registryN {
			b.Fatalf("more than %d misses: use -benchtime Nx with N <= %d", registryN, registryN)
		}
		t0 := time.Now()
		if n, err := fam.send(g, i, 1); err != nil || n != 1 {
			b.Fatalf("generator: %v", err)
		}
		select {
		case got := <-c.completed:
			if got != i {
				b.Fatalf("%s: IP #%d resolved while waiting for #%d", impl.name, got, i)
			}
		case <-time.After(2 * time.Second):
			b.Fatalf("%s: miss #%d (%s) not resolved within 2s", impl.name, i, fam.ip(i))
		}
		lat = append(lat, time.Duration(max(c.neigh[i], c.fdb[i])-t0.UnixNano()))
		i++
		time.Sleep(familyGap)
	}
	r.finish(b)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	slices.Sort(lat)
	p99 := percentile(lat, 0.99)
	b.ReportMetric(float64(sum.Nanoseconds())/float64(len(lat)), "ns/op")
	b.ReportMetric(float64(percentile(lat, 0.50).Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(p99.Nanoseconds())/1e3, "p99-us")
	b.Logf("%s on %s (%s): %d misses, p50 %v, p99 %v, max %v", impl.name, reg.name, fam.name, len(lat),
		percentile(lat, 0.5), p99, fmt.Sprint(lat[len(lat)-1]))
	return p99
}

// BenchmarkResolveFamily is BenchmarkResolve (a live burst, each address
// asked once, the rtnl resolver with `overlayd run`'s defaults) for both
// families of a dual-stack overlay in one run: a burst of 10,000 ARP
// requests (family=ipv4) or 10,000 Neighbor Solicitations (family=ipv6)
// for distinct registered addresses of dual-stack targets, on a dual-stack
// lab. Run it with -benchtime 1x.
func BenchmarkResolveFamily(b *testing.B) {
	nstest.RequireRoot(b)
	for _, reg := range dualRegistries(b) {
		for _, fam := range []missFamily{familyIPv4, familyIPv6} {
			b.Run(fmt.Sprintf("n=%d/registry=%s/family=%s", dualN, reg.name, fam.name), func(b *testing.B) {
				benchResolveOf(b, resolverImpls[0], reg, loadLive, dualN, fam)
			})
		}
	}
}
