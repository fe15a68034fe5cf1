package bench

import (
	"flag"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay/registry"
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

// isolatedStores are the isolated benchmarks' directory stores (newStore),
// by name: one per implementation of
// BenchmarkResolveIsolated, each of the same isolatedN records (their nodes
// attach their container at the same address), and the dual-stack one of
// BenchmarkResolveIsolatedFamily; each written once per process and
// removed by TestMain.
var isolatedStores struct {
	mu    sync.Mutex
	paths map[string]string
}

// isolatedStore returns the store called name, writing the records of
// targets 0..n-1 to it on first use.
func isolatedStore(tb testing.TB, name string, n int, records func(i int) []registry.Record) string {
	tb.Helper()
	s := &isolatedStores
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.paths[name]; ok {
		return p
	}
	p, err := newStore("ovt-isolated-", n, records)
	if err != nil {
		tb.Fatalf("isolated benchmark store %s: %v", name, err)
	}
	if s.paths == nil {
		s.paths = map[string]string{}
	}
	s.paths[name] = p
	return p
}

// ipv4Records is the record of target i of an IPv4 overlay.
func ipv4Records(i int) []registry.Record {
	return []registry.Record{{IP: resolveIP(i), MAC: resolveMAC(i), VTEP: resolveVTEP(i)}}
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

// isolatedP99 keeps each lane's p99 of the latest run, for the ratios
// benchRounds logs.
var isolatedP99 sync.Map

// BenchmarkResolveIsolated measures the latency of misses one at a time,
// each implementation in a process of its own on a node made by the
// shipped binary (`overlayd create`, `overlayd attach`), measured from the
// benchmark's process: an op is one ARP request for a registered IP the
// resolver has not seen, sent from the container (missgen) once the
// previous miss is resolved; its latency runs from just before the send to
// both the neighbour entry and the FDB entry being in the kernel, as a
// separate RTNLGRP_NEIGH watcher sees them (and checks them), and the next
// miss is raised a gap later. The implementations run side by side, each
// on a node of its own, and take turns in blocks of isolatedBlock misses,
// so that all meet the same machine (a shared machine's load changes by
// the second: one implementation measured after another would meet
// another load) while each runs as if alone during its block.
// A sub-benchmark reports its implementation's share of such a round: the
// first to run starts the round, the others take their share. Run it with
// -benchtime Nx (N < 1000 misses per round); a miss not resolved within 2 s
// fails it.
//
//	ns/op      mean latency
//	p50-us     median latency
//	p99-us     99th percentile
//	cpu-us/op  the implementation's CPU time (all its threads) during its
//	           turns, per miss: its idle wake-ups in its gaps included
//	ctxsw/op   its threads' context switches during its turns, per miss:
//	           1 when one thread reads, answers and waits for the next miss
//	           alone; every other thread woken on the way (a hand-off, the
//	           Go runtime's sysmon) and every preemption adds to it
//
// Sub-benchmarks: gap=5ms|20ms (see isolatedGaps); impl=floor (a minimal C
// resolver: one blocking read, the answer computed from the IP, one netlink
// write; testdata/floor.c), overlayd (the shipped `overlayd run`, no flags:
// the directory store, reactive), libnetwork (libnetworkd: libnetwork's
// way on vishvananda/netlink), python (the lab's arpd on pyroute2). All
// but the floor read a directory store of 1,000 records (tmpfs) per miss;
// the floor is first, so that benchstat -col /impl gives every figure as a
// ratio to it.
func BenchmarkResolveIsolated(b *testing.B) {
	nstest.RequireRoot(b)
	nstest.RequireTools(b, "nsenter", "gcc")
	requirePython(b)
	var names []string
	for _, impl := range isolatedImpls {
		names = append(names, impl.name)
	}
	benchRounds(b, implRounds, "impl", names)
}

// benchRounds runs a sub-benchmark gap=GAP/KEY=LANE for every gap of
// isolatedGaps and every lane, each reporting its lane's share of the next
// of rs's rounds, and logs every lane's p99 as a ratio to the first's.
func benchRounds(b *testing.B, rs *isolatedRounds, key string, lanes []string) {
	for _, gap := range isolatedGaps {
		for _, lane := range lanes {
			b.Run(fmt.Sprintf("gap=%v/%s=%s", gap, key, lane), func(b *testing.B) {
				r := rs.next(b, lane, gap)
				for b.Loop() { // the misses were raised in the round
				}
				reportIsolated(b, lane, gap, r)
			})
		}
		first, ok := isolatedP99.Load(fmt.Sprint(gap, lanes[0]))
		for _, lane := range lanes[1:] {
			p, okP := isolatedP99.Load(fmt.Sprint(gap, lane))
			if ok && okP && first.(time.Duration) > 0 {
				b.Logf("gap=%v: p99 %s / %s = %.2fx", gap, lane, lanes[0], float64(p.(time.Duration))/float64(first.(time.Duration)))
			}
		}
	}
}

// isolatedRun is one lane's share of a round: an implementation's
// (BenchmarkResolveIsolated) or an address family's
// (BenchmarkResolveIsolatedFamily).
type isolatedRun struct {
	lat []time.Duration
	cpu time.Duration
	sw  int64 // context switches
}

// isolatedRounds are the rounds of a benchmark whose sub-benchmarks each
// report one lane of a round: the rounds run so far, per gap, and how many
// of them each lane has reported.
type isolatedRounds struct {
	mu     sync.Mutex
	run    func(b *testing.B, gap time.Duration, n, round int) map[string]isolatedRun
	rounds map[time.Duration][]map[string]isolatedRun
	taken  map[string]int
}

// implRounds are BenchmarkResolveIsolated's.
var implRounds = &isolatedRounds{run: runIsolatedRound}

// next returns the next round lane has not reported at gap, running a new
// round of every lane when there is none.
func (rs *isolatedRounds) next(b *testing.B, lane string, gap time.Duration) isolatedRun {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.rounds == nil {
		rs.rounds, rs.taken = map[time.Duration][]map[string]isolatedRun{}, map[string]int{}
	}
	key := fmt.Sprint(gap, lane)
	k := rs.taken[key]
	if k == len(rs.rounds[gap]) {
		rs.rounds[gap] = append(rs.rounds[gap], rs.run(b, gap, isolatedMisses(b), k))
	}
	rs.taken[key] = k + 1
	return rs.rounds[gap][k][lane]
}

// isolatedMisses is N of -benchtime Nx: the misses of a round.
func isolatedMisses(b *testing.B) int {
	bt := flag.Lookup("test.benchtime").Value.String()
	n, err := strconv.Atoi(strings.TrimSuffix(bt, "x"))
	if !strings.HasSuffix(bt, "x") || err != nil || n < 1 || n >= isolatedN {
		b.Fatalf("-benchtime %s: run %s with -benchtime Nx, 0 < N < %d", bt, b.Name(), isolatedN)
	}
	return n
}

// isolatedBlock is how many misses in a row an implementation gets before
// the next one takes its turn: a block is over within a second or two, so
// that all meet the same load, and long enough that each runs as it would
// alone (the others idle meanwhile, leaving the caches to it).
const isolatedBlock = 50

// isolatedLane is one implementation running on its node, with its
// watcher and its container's generator, raising misses of one family
// (familyLegacy: ARP requests on an IPv4 overlay) for targets first,
// first+1, ... (its miss i asks for target first+i).
type isolatedLane struct {
	name  string
	fam   missFamily
	first int
	c     *completion
	g     *missgen.Generator
	p     *proc
	cpu   time.Duration // p's, during the lane's turns
	sw    int64         // p's threads' context switches, during the lane's turns
	lat   []time.Duration
}

// runIsolatedRound starts every implementation on a node of its own and
// raises n misses on each, gap apart, in turns of isolatedBlock misses
// (takeTurns: round says who starts).
func runIsolatedRound(b *testing.B, gap time.Duration, n, round int) map[string]isolatedRun {
	var lanes []*isolatedLane
	var stops []func()
	for _, impl := range isolatedImpls {
		node := newBenchNode(b, isolatedStore(b, impl.name, isolatedN, ipv4Records))
		c, stopWatch := startCompletion(b, node.Overlay, node.Vxlan)
		b.Cleanup(stopWatch)
		l := &isolatedLane{name: impl.name, fam: familyLegacy, c: c, g: containerGenerator(b, node, missgen.ContainerIP()),
			p: impl.start(b, node)}
		l.warmUp(b)
		lanes = append(lanes, l)
		stops = append(stops, stopWatch)
	}
	takeTurns(b, lanes, gap, n, round)
	for k, l := range lanes {
		if err := l.p.stop(); err != nil {
			b.Fatal(err)
		}
		stops[k]()
	}
	return laneRuns(b, lanes)
}

// containerGenerator opens a generator on the node's container's eth0,
// sending from src (its IPv4 or its IPv6 address), closed when b ends.
func containerGenerator(b *testing.B, node *benchNode, src netip.Addr) *missgen.Generator {
	g, err := missgen.New(node.Container, "eth0", missgen.ContainerMAC(), src)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() })
	return g
}

// takeTurns raises n misses on each lane, gap apart, the lanes taking turns
// in blocks of isolatedBlock misses, and adds each lane's process's CPU
// time and its threads' context switches during its turns to the lane. Who starts rotates from block to block
// and from round to round (lane round%len(lanes) starts the round's first
// block): a process's periodic work (overlayd's reconcile pass every 10 s
// from its start) falls at the same moment of every round, so that with
// one schedule it would fall in the same lane's turns every round.
func takeTurns(b *testing.B, lanes []*isolatedLane, gap time.Duration, n, round int) {
	time.Sleep(50 * time.Millisecond) // past the warm-ups' own work
	for blk := 0; blk < n; blk += isolatedBlock {
		for k := range lanes {
			l := lanes[(round+blk/isolatedBlock+k)%len(lanes)]
			cpu0, sw0 := l.p.cpu(b), l.p.switches(b)
			for i := blk; i < min(blk+isolatedBlock, n); i++ {
				l.miss(b, i)
				time.Sleep(gap)
			}
			l.cpu += l.p.cpu(b) - cpu0
			l.sw += l.p.switches(b) - sw0
		}
	}
}

// laneRuns checks the lanes' entries (their watchers stopped) and returns
// their shares of the round by name.
func laneRuns(b *testing.B, lanes []*isolatedLane) map[string]isolatedRun {
	out := map[string]isolatedRun{}
	for _, l := range lanes {
		if len(l.c.wrong) > 0 {
			b.Fatalf("%s programmed wrong entries: %v", l.name, l.c.wrong)
		}
		out[l.name] = isolatedRun{lat: l.lat, cpu: l.cpu, sw: l.sw}
	}
	return out
}

// miss raises the lane's miss i and waits for its entries. Its timeout is
// armed before the clock starts: a timer first waited on after the send
// goes into the runtime's timer heap then, and wakes the poller's thread
// to see it (an eventfd write, some 20 µs here), while the resolver, woken
// by the send on this thread's CPU, waits for this thread to sleep. That
// would add the benchmark's own work to every lane's latency.
func (l *isolatedLane) miss(b *testing.B, i int) {
	t := l.first + i
	expired := make(chan struct{})
	timeout := time.AfterFunc(2*time.Second, func() { close(expired) })
	defer timeout.Stop()
	t0 := time.Now()
	if n, err := l.fam.send(l.g, t, 1); err != nil || n != 1 {
		b.Fatalf("generator: %v", err)
	}
	select {
	case got := <-l.c.completed:
		if got != t {
			b.Fatalf("%s: target #%d resolved while waiting for #%d", l.name, got, t)
		}
		if l.c.neigh6[t] != l.fam.v6 {
			b.Fatalf("%s: target #%d resolved by a neighbour entry of the other family", l.name, t)
		}
	case <-expired:
		l.p.alive(b)
		b.Fatalf("%s: miss #%d (%s) not resolved within 2s", l.name, i, l.fam.ip(t))
	}
	l.lat = append(l.lat, time.Duration(max(l.c.neigh[t], l.c.fdb[t])-t0.UnixNano()))
}

// warmUp raises the lane's warm-up miss (its last target, first +
// isolatedN - 1) every 100 ms until its process has resolved it: the
// process is then subscribed, has read its store if it does so at start,
// and serves.
func (l *isolatedLane) warmUp(b *testing.B) {
	b.Helper()
	warm := l.first + isolatedN - 1
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err := l.fam.send(l.g, warm, 1); err != nil {
			b.Fatalf("generator: %v", err)
		}
		select {
		case got := <-l.c.completed:
			if got == warm {
				return
			}
		case <-time.After(100 * time.Millisecond):
		}
		l.p.alive(b)
		if time.Now().After(deadline) {
			b.Fatalf("%s: the warm-up miss (%s) not resolved within 30 s\n%s", l.name, l.fam.ip(warm), l.p.stderr.String())
		}
	}
}

// reportIsolated reports the latencies, the CPU time and the context
// switches of one implementation's share of a round.
func reportIsolated(b *testing.B, name string, gap time.Duration, r isolatedRun) {
	lat, cpu := r.lat, r.cpu
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	lat = slices.Sorted(slices.Values(lat))
	p99 := percentile(lat, 0.99)
	isolatedP99.Store(fmt.Sprint(gap, name), p99)
	b.ReportMetric(float64(sum.Nanoseconds())/float64(len(lat)), "ns/op")
	b.ReportMetric(float64(percentile(lat, 0.50).Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(p99.Nanoseconds())/1e3, "p99-us")
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(len(lat)), "cpu-us/op")
	b.ReportMetric(float64(r.sw)/float64(len(lat)), "ctxsw/op")
	b.Logf("%s, gap %v: %d misses, p50 %v, p99 %v, max %v, CPU %v", name, gap, len(lat),
		percentile(lat, 0.5), p99, lat[len(lat)-1], cpu)
}
