package bench

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/nstest"
)

// isolatedGap is the pause after a miss is resolved before the next one is
// raised: the resolver is idle when each miss arrives (its goroutines
// parked, no batch in flight), as on a node where connections to new peers
// are opened now and then.
const isolatedGap = 5 * time.Millisecond

// isolatedImpls are the resolvers BenchmarkResolveIsolated compares: rtnl
// with `overlayd run`'s defaults, the libnetwork-style peer and the old
// lab's Python arpd.
var isolatedImpls = []resolverImpl{
	{"rtnl", startRtnlResolver},
	{"vishvananda", startVishvanandaResolver},
	{"python", startPythonResolver},
}

// isolatedP99 keeps each implementation's p99 of the latest run, for the
// ratios BenchmarkResolveIsolated logs.
var isolatedP99 sync.Map

// BenchmarkResolveIsolated measures the latency of misses one at a time: an
// op is one ARP request for a registered IP the resolver has not seen,
// sent from the container when the resolver is idle; its latency runs from
// the frame leaving the container (just before the send) to both the
// neighbour entry and the FDB entry being in the kernel (seen by a separate
// RTNLGRP_NEIGH watcher). isolatedGap separates a resolution from the next
// miss. Run it with -benchtime Nx (N misses per run, e.g. 300x); a miss not
// resolved within 2 s fails it.
//
//	ns/op   mean latency
//	p50-us  median latency
//	p99-us  99th percentile
//
// Sub-benchmarks: registry=dir|mem as in BenchmarkResolve (the Python peer
// reads the files per miss on dir, as the lab did, and a dict preloaded from
// them on mem); impl=rtnl (`overlayd run`'s defaults), vishvananda
// (libnetwork's way), python (the lab's arpd on pyroute2, a subprocess).
func BenchmarkResolveIsolated(b *testing.B) {
	nstest.RequireRoot(b)
	for _, reg := range resolveRegistries(b) {
		for _, impl := range isolatedImpls {
			b.Run("registry="+reg.name+"/impl="+impl.name, func(b *testing.B) {
				benchIsolated(b, impl, reg)
			})
		}
		a, okA := isolatedP99.Load(reg.name + "/rtnl")
		for _, peer := range []string{"vishvananda", "python"} {
			p, okP := isolatedP99.Load(reg.name + "/" + peer)
			if okA && okP && a.(time.Duration) > 0 {
				b.Logf("registry=%s: p99 %s / rtnl = %.1fx", reg.name, peer, float64(p.(time.Duration))/float64(a.(time.Duration)))
			}
		}
	}
}

func benchIsolated(b *testing.B, impl resolverImpl, reg benchRegistry) {
	p99 := benchIsolatedOf(b, impl, reg, familyLegacy)
	isolatedP99.Store(reg.name+"/"+impl.name, p99)
}

// benchIsolatedOf is benchIsolated with the misses of fam; it returns the
// p99.
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
		time.Sleep(isolatedGap)
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
