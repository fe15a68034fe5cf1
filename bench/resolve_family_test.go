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
		s.regs, dualCleanup, s.err = buildRegistries("ovt-dual-", dualN, dualRecords)
	})
	if s.err != nil {
		tb.Fatalf("dual-stack benchmark registry: %v", s.err)
	}
	return s.regs
}

// dualRecords are the records of dual-stack target i: resolveIP(i) and
// resolveIP6(i), both of resolveMAC(i) at resolveVTEP(i).
func dualRecords(i int) []registry.Record {
	return []registry.Record{{IP: resolveIP(i), MAC: resolveMAC(i), VTEP: resolveVTEP(i)},
		{IP: resolveIP6(i), MAC: resolveMAC(i), VTEP: resolveVTEP(i)}}
}

// dualCleanup is the directory of the dual-stack registry, removed by
// TestMain.
var dualCleanup string

// BenchmarkResolveIsolatedFamily is BenchmarkResolveIsolated for the two
// address families of a dual-stack overlay: the shipped `overlayd run`
// (no flags: the directory store, reactive) in a process of its own on a
// dual-stack node made with the shipped binary (`overlayd create` with an
// IPv4 and an IPv6 gateway, `overlayd attach` giving the container both
// addresses), measured from the benchmark's process. An op is one miss,
// raised from the container once the previous one is resolved: an ARP
// request (family=ipv4) or an IPv6 Neighbor Solicitation (family=ipv6) for
// a registered address of a dual-stack target the daemon has not seen,
// timed from the send to both the neighbour entry (of that family) and the
// FDB entry being in the kernel; the next miss is raised a gap later. The
// store holds 2 x isolatedN dual-stack targets (an IPv4 and an IPv6 record
// of one MAC each); IPv4 misses ask for the first isolatedN, IPv6 misses for
// the others, so that each miss of either family finds neither entry in
// the kernel. The two families take turns in blocks of isolatedBlock misses
// within one round on the one daemon, so that both meet the same machine
// load. Its metrics are BenchmarkResolveIsolated's (ns/op, p50-us, p99-us,
// cpu-us/op: the daemon's CPU time during the family's turns, per miss);
// benchstat -col /family gives IPv6's as a ratio to IPv4's. Run it with
// -benchtime Nx (N < 1000 misses per family and round).
func BenchmarkResolveIsolatedFamily(b *testing.B) {
	nstest.RequireRoot(b)
	nstest.RequireTools(b, "nsenter")
	benchRounds(b, familyRounds, "family", []string{familyIPv4.name, familyIPv6.name})
}

// familyRounds are BenchmarkResolveIsolatedFamily's.
var familyRounds = &isolatedRounds{run: runFamilyRound}

// runFamilyRound starts `overlayd run` on a dual-stack node and raises n
// IPv4 and n IPv6 misses on it, gap apart, the families taking turns in
// blocks of isolatedBlock misses (takeTurns: round says which starts).
func runFamilyRound(b *testing.B, gap time.Duration, n, round int) map[string]isolatedRun {
	node := newDualBenchNode(b, isolatedStore(b, "dual-stack", 2*isolatedN, dualRecords))
	c, stopWatch := startCompletion(b, node.Overlay, node.Vxlan)
	b.Cleanup(stopWatch)
	p := startOverlaydProc(b, node)
	lanes := []*isolatedLane{
		{name: familyIPv4.name, fam: familyIPv4, c: c, p: p, g: containerGenerator(b, node, missgen.ContainerIP())},
		{name: familyIPv6.name, fam: familyIPv6, first: isolatedN, c: c, p: p, g: containerGenerator(b, node, missgen.ContainerIP6())},
	}
	for _, l := range lanes {
		l.warmUp(b)
	}
	takeTurns(b, lanes, gap, n, round)
	if err := p.stop(); err != nil {
		b.Fatal(err)
	}
	stopWatch()
	return laneRuns(b, lanes)
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
