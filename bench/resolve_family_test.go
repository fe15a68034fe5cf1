package bench

import (
	"fmt"
	"net/netip"
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

// BenchmarkResolveIsolatedFamily is BenchmarkResolveIsolated for both
// address families of a dual-stack overlay, side by side in one run: the
// rtnl resolver (`overlayd run`'s defaults) on a dual-stack lab, misses one
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
				familyP99.Store(reg.name+"/"+fam.name, benchIsolatedOf(b, isolatedImpls[0], reg, fam))
			})
		}
		v4, ok4 := familyP99.Load(reg.name + "/ipv4")
		v6, ok6 := familyP99.Load(reg.name + "/ipv6")
		if ok4 && ok6 && v4.(time.Duration) > 0 {
			b.Logf("registry=%s: p99 ipv6 / ipv4 = %.2f", reg.name, float64(v6.(time.Duration))/float64(v4.(time.Duration)))
		}
	}
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
