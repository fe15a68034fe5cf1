package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/dirstore"
)

// isolatedN is how many records the isolated benchmark's store holds: a
// node's worth of remote endpoints. The last one is the warm-up miss; the
// others are the misses measured, so -benchtime Nx takes N < isolatedN.
const isolatedN = 1000

// isolatedGaps are the pauses between a resolution and the next miss: 5 ms
// (the resolver's threads may still be awake) and 20 ms (the CPUs went
// idle in between, as on a node where connections to new peers open now
// and then).
var isolatedGaps = []time.Duration{5 * time.Millisecond, 20 * time.Millisecond}

// isolatedImpl is a resolver run in a process of its own on a benchNode.
type isolatedImpl struct {
	name string
	// start starts it; graceful processes stop on SIGTERM with status 0.
	start func(tb testing.TB, n *benchNode) *proc
}

// isolatedImpls are the implementations BenchmarkResolveIsolated compares,
// the floor first (benchstat -col /impl gives every other column's ratio to
// the first).
var isolatedImpls = []isolatedImpl{
	{"floor", startFloorProc},
	{"overlayd", startOverlaydProc},
	{"libnetwork", startLibnetworkProc},
	{"python", startPythonProc},
}

// isolatedStore is the directory store (on tmpfs when the machine has
// /dev/shm) of isolatedN records, written once per process.
var isolatedStore struct {
	once sync.Once
	path string
	err  error
}

// isolatedStorePath returns the isolated benchmark's store.
func isolatedStorePath(tb testing.TB) string {
	tb.Helper()
	s := &isolatedStore
	s.once.Do(func() {
		if s.path, s.err = os.MkdirTemp("/dev/shm", "ovt-isolated-"); s.err != nil {
			s.path, s.err = os.MkdirTemp("", "ovt-isolated-")
		}
		if s.err != nil {
			return
		}
		var reg *dirstore.Store
		if reg, s.err = dirstore.New(s.path); s.err != nil {
			return
		}
		for i := range isolatedN {
			rec := registry.Record{IP: resolveIP(i), MAC: ethaddr.MAC(resolveMAC(i)), VTEP: resolveVTEP(i)}
			if s.err = reg.Register(context.Background(), rec); s.err != nil {
				return
			}
		}
	})
	if s.err != nil {
		tb.Fatalf("isolated benchmark store: %v", s.err)
	}
	return s.path
}

// startOverlaydProc runs the shipped daemon as an operator does: `overlayd
// run` with no flags but the node's directories and store, in the node's
// netns.
func startOverlaydProc(tb testing.TB, n *benchNode) *proc {
	return startProc(tb, "overlayd run", true, n.overlaydArgs("run")...)
}

// startLibnetworkProc runs libnetworkd (the libnetwork way, in a process of
// its own) in the overlay namespace, on the node's store.
func startLibnetworkProc(tb testing.TB, n *benchNode) *proc {
	return startProc(tb, "libnetworkd", true, "--net="+n.overlayPath(), binPath(tb, "libnetworkd"),
		n.store, "vxlan1", resolveSubnet.String())
}

// startPythonProc runs the old lab's arpd (testdata/arpd.py) in the
// overlay namespace, reading the node's store per miss as the lab did.
func startPythonProc(tb testing.TB, n *benchNode) *proc {
	requirePython(tb)
	return startProc(tb, "python arpd", false, "--net="+n.overlayPath(), pythonInterpreter, pythonArpdScript, n.store, "vxlan1")
}

// startFloorProc runs the C floor (testdata/floor.c) in the overlay
// namespace: the answer computed from the IP, no store.
func startFloorProc(tb testing.TB, n *benchNode) *proc {
	return startProc(tb, "floor", false, "--net="+n.overlayPath(), floorBinary(tb),
		strconv.Itoa(int(n.Vxlan)), missgen.FirstTarget().String(), strconv.Itoa(isolatedN))
}

// isolatedP99 keeps each implementation's p99 of the latest run, for the
// ratios BenchmarkResolveIsolated logs.
var isolatedP99 sync.Map

// BenchmarkResolveIsolated measures the latency of misses one at a time,
// each implementation in a process of its own on a node made by the
// shipped binary (`overlayd create`, `overlayd attach`), measured from the
// benchmark's process: an op is one ARP request for a registered IP the
// resolver has not seen, sent from the container (missgen) once the
// previous miss is resolved and a gap has passed; its latency runs from
// just before the send to both the neighbour entry and the FDB entry being
// in the kernel, as a separate RTNLGRP_NEIGH watcher sees them (and checks
// them). Run it with -benchtime Nx (N < 1000 misses per run); a miss not
// resolved within 2 s fails it.
//
//	ns/op      mean latency
//	p50-us     median latency
//	p99-us     99th percentile
//	cpu-us/op  the implementation's CPU time (all its threads) per miss,
//	           its idle wake-ups in the gaps included
//
// Sub-benchmarks: gap=5ms|20ms (see isolatedGaps); impl=floor (a minimal C
// resolver: one blocking read, the answer computed from the IP, one netlink
// write; testdata/floor.c), overlayd (the shipped `overlayd run`, no flags:
// the directory store, reactive), libnetwork (libnetworkd: libnetwork's
// way on vishvananda/netlink), python (the lab's arpd on pyroute2). All
// but the floor read the same directory store of 1,000 records (tmpfs)
// per miss; the floor is first, so that benchstat -col /impl gives every
// figure as a ratio to it.
func BenchmarkResolveIsolated(b *testing.B) {
	nstest.RequireRoot(b)
	nstest.RequireTools(b, "nsenter", "gcc")
	for _, gap := range isolatedGaps {
		for _, impl := range isolatedImpls {
			b.Run(fmt.Sprintf("gap=%v/impl=%s", gap, impl.name), func(b *testing.B) {
				benchIsolated(b, impl, gap)
			})
		}
		f, ok := isolatedP99.Load(fmt.Sprint(gap, "floor"))
		for _, impl := range isolatedImpls[1:] {
			p, okP := isolatedP99.Load(fmt.Sprint(gap, impl.name))
			if ok && okP && f.(time.Duration) > 0 {
				b.Logf("gap=%v: p99 %s / floor = %.2fx", gap, impl.name, float64(p.(time.Duration))/float64(f.(time.Duration)))
			}
		}
	}
}

func benchIsolated(b *testing.B, impl isolatedImpl, gap time.Duration) {
	n := newBenchNode(b, isolatedStorePath(b))
	c, stopWatch := startCompletion(b, n.Overlay, n.Vxlan)
	b.Cleanup(stopWatch)
	g, err := missgen.New(n.Container, "eth0", missgen.ContainerMAC(), missgen.ContainerIP())
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	p := impl.start(b, n)
	warmUp(b, p, g, c)
	time.Sleep(50 * time.Millisecond) // past the warm-up's own work

	var lat []time.Duration
	cpu0 := p.cpu(b)
	i := 0
	for b.Loop() {
		if i >= isolatedN-1 {
			b.Fatalf("more than %d misses: use -benchtime Nx with N < %d", isolatedN-1, isolatedN)
		}
		t0 := time.Now()
		if n, err := g.ARP(resolveIP(i), 1); err != nil || n != 1 {
			b.Fatalf("generator: %v", err)
		}
		select {
		case got := <-c.completed:
			if got != i {
				b.Fatalf("%s: IP #%d resolved while waiting for #%d", impl.name, got, i)
			}
		case <-time.After(2 * time.Second):
			p.alive(b)
			b.Fatalf("%s: miss #%d (%s) not resolved within 2s", impl.name, i, resolveIP(i))
		}
		lat = append(lat, time.Duration(max(c.neigh[i], c.fdb[i])-t0.UnixNano()))
		i++
		time.Sleep(gap)
	}
	cpu := p.cpu(b) - cpu0
	if err := p.stop(); err != nil {
		b.Fatal(err)
	}
	stopWatch()
	if len(c.wrong) > 0 {
		b.Fatalf("%s programmed wrong entries: %v", impl.name, c.wrong)
	}
	reportIsolated(b, impl.name, gap, lat, cpu)
}

// warmUp raises the warm-up miss (the store's last record) every 100 ms
// until p has resolved it: p is then subscribed, has read its store if it
// does so at start, and serves.
func warmUp(b *testing.B, p *proc, g *missgen.Generator, c *completion) {
	b.Helper()
	warm := isolatedN - 1
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err := g.ARP(resolveIP(warm), 1); err != nil {
			b.Fatalf("generator: %v", err)
		}
		select {
		case got := <-c.completed:
			if got == warm {
				return
			}
		case <-time.After(100 * time.Millisecond):
		}
		p.alive(b)
		if time.Now().After(deadline) {
			b.Fatalf("%s: the warm-up miss not resolved within 30 s\n%s", p.name, p.stderr.String())
		}
	}
}

// reportIsolated reports the latencies lat and the CPU time cpu of one run.
func reportIsolated(b *testing.B, name string, gap time.Duration, lat []time.Duration, cpu time.Duration) {
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	slices.Sort(lat)
	p99 := percentile(lat, 0.99)
	isolatedP99.Store(fmt.Sprint(gap, name), p99)
	b.ReportMetric(float64(sum.Nanoseconds())/float64(len(lat)), "ns/op")
	b.ReportMetric(float64(percentile(lat, 0.50).Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(p99.Nanoseconds())/1e3, "p99-us")
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(len(lat)), "cpu-us/op")
	b.Logf("%s, gap %v: %d misses, p50 %v, p99 %v, max %v, CPU %v", name, gap, len(lat),
		percentile(lat, 0.5), p99, lat[len(lat)-1], cpu)
}
