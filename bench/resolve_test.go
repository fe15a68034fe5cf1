package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/dirstore"
	"github.com/overlaynet/overlaynet/overlay/resolver"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// resolveN is how many distinct IPs (one L3 miss each) a 10k round asks
// for; registryN is how many records the benchmarks' registry holds (the
// largest burst).
const (
	resolveN  = 10_000
	registryN = 50_000
)

// resolveSubnet is the overlay subnet of the missgen lab (its container is
// 10.64.0.2/10, its targets start at 10.65.0.1).
var resolveSubnet = netip.MustParsePrefix("10.64.0.0/10")

// resolveIP, resolveMAC and resolveVTEP are the registry record of the i-th
// target: the i-th address the generator asks for, a locally administered
// MAC numbering i, and one of 200 remote VTEPs in 192.0.2.0/24.
func resolveIP(i int) netip.Addr { return missgen.AddrAt(missgen.FirstTarget(), i) }

func resolveMAC(i int) ethaddr.MAC {
	return ethaddr.MAC{0x02, 0x42, 0x0b, byte(i >> 16), byte(i >> 8), byte(i)}
}

func resolveVTEP(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i%200)}) }

// resolveIP6 is the IPv6 address of the i-th target of a dual-stack lab:
// the i-th address the generator's Neighbor Solicitations ask for. Its
// record has the MAC and VTEP of resolveIP(i)'s (a dual-stack container).
func resolveIP6(i int) netip.Addr { return missgen.AddrAt(missgen.FirstTarget6(), i) }

// ipIndex and macIndex invert resolveIP (and resolveIP6) and resolveMAC.
func ipIndex(ip netip.Addr) (int, bool) {
	if ip.Is6() {
		a, f := ip.As16(), missgen.FirstTarget6().As16()
		if [8]byte(a[:8]) != [8]byte(f[:8]) {
			return 0, false
		}
		d := int64(binary.BigEndian.Uint64(a[8:]) - binary.BigEndian.Uint64(f[8:]))
		return int(d), d >= 0 && d < registryN
	}
	d := int64(binary.BigEndian.Uint32(ip.AsSlice())) - int64(binary.BigEndian.Uint32(missgen.FirstTarget().AsSlice()))
	return int(d), d >= 0 && d < registryN
}

func macIndex(m ethaddr.MAC) (int, bool) {
	i := int(m[3])<<16 | int(m[4])<<8 | int(m[5])
	return i, m[0] == 0x02 && m[1] == 0x42 && m[2] == 0x0b && i < registryN
}

// benchRegistry is a registry the resolvers answer from: a DirStore on
// tmpfs (dir) or an in-memory copy of it (mem). Dir is the store's
// directory either way (the Python peer reads the files, or preloads them
// for mem).
type benchRegistry struct {
	name string
	reg  registry.Registry
	dir  string
}

// sharedRegistries are built once per process (registryN records take a few
// seconds to write) and removed by TestMain.
var sharedRegistries struct {
	once sync.Once
	regs []benchRegistry
	path string
	err  error
}

// resolveRegistries returns the dir and mem registries holding the
// registryN records. The DirStore lives on tmpfs when the machine has
// /dev/shm (the store fsyncs every file). Both implementations read the same
// store, so the registry costs them the same per lookup.
func resolveRegistries(tb testing.TB) []benchRegistry {
	tb.Helper()
	s := &sharedRegistries
	s.once.Do(func() {
		s.regs, s.path, s.err = buildRegistries("ovt-resolve-", registryN, ipv4Records)
	})
	if s.err != nil {
		tb.Fatalf("benchmark registry: %v", s.err)
	}
	return s.regs
}

// buildRegistries writes the records of targets 0..n-1 to a DirStore
// (newStore) and returns it as the daemon opens it (dir: its cache on and
// filled) and an in-memory copy (mem), and the directory.
func buildRegistries(pattern string, n int, records func(i int) []registry.Record) ([]benchRegistry, string, error) {
	dir, err := newStore(pattern, n, records)
	if err != nil {
		return nil, "", err
	}
	reg, err := dirstore.New(dir)
	if err != nil {
		return nil, dir, err
	}
	// As the daemon has it: the cache on (registry.Options.Cache) and
	// filled by a listing (its VTEP allowlist lists the store at start).
	reg.EnableCache()
	if _, err := reg.List(context.Background()); err != nil {
		return nil, dir, err
	}
	mem, err := newMemRegistry(reg)
	if err != nil {
		return nil, dir, err
	}
	return []benchRegistry{{"dir", reg, dir}, {"mem", mem, dir}}, dir, nil
}

// newStore writes the records of targets 0..n-1 to a DirStore in a new
// directory named after pattern, on tmpfs when the machine has /dev/shm
// (the store fsyncs every file); on failure it removes what it wrote.
func newStore(pattern string, n int, records func(i int) []registry.Record) (string, error) {
	dir, err := os.MkdirTemp("/dev/shm", pattern)
	if err != nil {
		dir, err = os.MkdirTemp("", pattern)
	}
	if err != nil {
		return "", err
	}
	if err := writeRecords(dir, n, records); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

func writeRecords(dir string, n int, records func(i int) []registry.Record) error {
	reg, err := dirstore.New(dir)
	if err != nil {
		return err
	}
	for i := range n {
		for _, rec := range records(i) {
			if err := reg.Register(context.Background(), rec); err != nil {
				return err
			}
		}
	}
	return nil
}

// TestMain removes the shared registries, the commands and the floor
// resolver after the run.
func TestMain(m *testing.M) {
	code := m.Run()
	paths := []string{sharedRegistries.path, dualCleanup, floorBuild.dir}
	for _, p := range isolatedStores.paths {
		paths = append(paths, p)
	}
	for _, p := range paths {
		if p != "" {
			os.RemoveAll(p)
		}
	}
	bins.Remove()
	os.Exit(code)
}

// resolverImpl is a miss resolver under test. start prepares it in lab's
// overlay namespace, answering from reg: from then on its socket is
// subscribed and the kernel queues misses for it. run makes it start
// reading, and returns once it is serving. stop ends it and returns a note
// worth logging (the peer's subscription overrunning) or an error that
// fails the benchmark (a programming error, a receive error, a crash).
type resolverImpl struct {
	name  string
	start func(tb testing.TB, lab *missgen.Lab, reg benchRegistry) (run func(), stop func() (note string, err error))
}

// implRun is an implementation running on a lab, watched by a completion
// watcher. Both are stopped once: by finish, or at cleanup when the
// benchmark fails midway (before the lab's namespaces go).
type implRun struct {
	name      string
	c         *completion
	stopWatch func()
	stopImpl  func() (note string, err error)
}

// startImpl starts a completion watcher on lab and impl on reg; run starts
// the implementation's work.
func startImpl(b *testing.B, lab *missgen.Lab, impl resolverImpl, reg benchRegistry) (r *implRun, run func()) {
	c, stopWatch := startCompletion(b, lab.Overlay, lab.VxlanIndex)
	r = &implRun{name: impl.name, c: c, stopWatch: sync.OnceFunc(stopWatch)}
	b.Cleanup(r.stopWatch)
	run, stop := impl.start(b, lab, reg)
	r.stopImpl = sync.OnceValues(stop)
	b.Cleanup(func() { r.stopImpl() })
	return r, run
}

// finish stops the implementation, then the watcher, and fails b if the
// implementation failed or programmed wrong entries.
func (r *implRun) finish(b *testing.B) {
	note, err := r.stopImpl()
	r.stopWatch()
	if note != "" {
		b.Log(note)
	}
	if err != nil {
		b.Fatal(err)
	}
	if len(r.c.wrong) > 0 {
		b.Fatalf("%s programmed wrong entries: %v", r.name, r.c.wrong)
	}
}

var resolverImpls = []resolverImpl{
	{"rtnl", startRtnlResolver},
	{"vishvananda", startVishvanandaResolver},
}

// startRtnlResolver runs resolver.Resolver the way `overlayd run` with no
// flags does, with the capture of the requests that raise misses as the
// daemon wires it (benchWaker): benchResolverConfig is the daemon's
// configuration (defaults,
// logger and level included; TestBenchmarkConfigIsTheDaemons checks it),
// fed by an rtnl.Monitor configured as the daemon's (32 MiB forced receive
// buffer, MissesOnly: a kernel socket filter drops the RTM_NEWNEIGH/DELNEIGH
// echoes of the entries it programs, which the peers receive and skip in
// user space).
func startRtnlResolver(tb testing.TB, lab *missgen.Lab, reg benchRegistry) (func(), func() (string, error)) {
	conn := nstest.Dial(tb, lab.Overlay)
	mon, err := rtnl.DialMonitor(benchMonitorConfig(lab))
	if err != nil {
		tb.Fatal(err)
	}
	w := benchWaker(tb, lab)
	rc := benchResolverConfig(conn, lab, reg.reg, slog.New(daemonLogHandler(io.Discard)))
	rc.Answerer = w
	r, err := resolver.New(rc)
	if err != nil {
		mon.Close()
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	started := false
	run := func() {
		started = true
		go w.Run(ctx)
		go func() { served <- r.Serve(ctx, mon) }()
		for deadline := time.Now().Add(10 * time.Second); r.Metrics().Snapshot().Reconciles < 1; {
			if time.Now().After(deadline) {
				tb.Fatal("rtnl resolver: no first reconcile pass within 10s")
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	return run, func() (string, error) {
		cancel()
		var err error
		if started {
			err = <-served
		}
		mon.Close()
		s := r.Metrics().Snapshot()
		note := ""
		if d := s.Dropped["scan_budget"] + s.Dropped["stopped"]; d+s.Overruns > 0 {
			note = fmt.Sprintf("rtnl resolver: %d misses dropped %v, %d overruns", d, s.Dropped, s.Overruns)
		}
		if err != nil {
			return note, fmt.Errorf("rtnl resolver: Serve: %w", err)
		}
		if s.Errors > 0 {
			return note, fmt.Errorf("rtnl resolver: %d programming errors", s.Errors)
		}
		return note, nil
	}
}

// roundResult is what one round measured.
type roundResult struct {
	resolved  int
	cpu       time.Duration   // CPU time of the whole process in the timed part
	elapsed   time.Duration   // first send (live) or resolver start (backlog) to the last IP resolved
	latencies []time.Duration // send to resolved, per resolved IP
}

// resolveLoad is how a round raises its misses.
type resolveLoad int

const (
	// loadLive sends the burst while the resolver runs: the generator (the
	// kernel raising each miss inside its sendmmsg) and the resolver share
	// the machine's cores, and each IP's latency counts from its send.
	loadLive resolveLoad = iota
	// loadBacklog sends the whole burst before the resolver starts reading:
	// the kernel queues every miss in the resolver's socket (as after a
	// daemon restart into a busy node, or a stall), and the round measures
	// draining that backlog, from the resolver's start, on cores of its own.
	// Latencies count from that start.
	loadBacklog
)

// resolveRoundOf raises n L3 misses of fam for distinct registered IPs in
// a fresh lab with impl and waits until every IP is resolved, or until none was for
// resolveIdle. The timer runs only around the sending (live) or the
// resolver's start (backlog) and the waiting.
func resolveRoundOf(b *testing.B, impl resolverImpl, reg benchRegistry, load resolveLoad, n int, fam missFamily) roundResult {
	b.StopTimer()
	lab := fam.lab(b)
	g := fam.generator(b, lab)
	r, run := startImpl(b, lab, impl, reg)
	c := r.c

	// One sendmmsg (256 ARP requests or solicitations) at a time, each IP
	// stamped with the start of its call.
	send := func(sent []int64) {
		const chunk = 256
		for i := 0; i < n; i += chunk {
			k := min(chunk, n-i)
			now := time.Now().UnixNano()
			for j := range k {
				sent[i+j] = now
			}
			if m, err := fam.send(g, i, k); err != nil || m != k {
				b.Fatalf("generator: sent %d of %d: %v", m, k, err)
			}
		}
	}
	sent := make([]int64, n)
	var cpu0 time.Duration
	if load == loadLive {
		run()
		runtime.GC() // the setup's garbage is not the round's to collect
		cpu0 = processCPU(b)
		b.StartTimer()
		send(sent)
	} else {
		send(make([]int64, n))
		runtime.GC()
		cpu0 = processCPU(b)
		b.StartTimer()
		now := time.Now().UnixNano()
		for i := range sent {
			sent[i] = now
		}
		run()
	}
	// The kernel raises a request's miss inside the sendmmsg that sends it.
	lastSent := time.Now().UnixNano()
	const resolveIdle, resolveMax = 2 * time.Second, 60 * time.Second
	lastDone, since, deadline := -1, time.Now(), time.Now().Add(resolveMax)
	for {
		done := c.resolved()
		if done >= n || time.Now().After(deadline) {
			break
		}
		if done != lastDone {
			lastDone, since = done, time.Now()
		} else if time.Since(since) > resolveIdle {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	cpu := processCPU(b) - cpu0
	r.finish(b)
	if c.overruns > 0 {
		b.Fatalf("completion watcher overran %d times: the measurement is incomplete", c.overruns)
	}
	res := roundResult{cpu: cpu}
	var last int64
	for i := range n {
		if c.neigh[i] == 0 || c.fdb[i] == 0 {
			continue
		}
		at := max(c.neigh[i], c.fdb[i])
		last = max(last, at)
		res.resolved++
		res.latencies = append(res.latencies, time.Duration(at-sent[i]))
	}
	if res.resolved > 0 {
		res.elapsed = time.Duration(last - sent[0])
	}
	if load == loadLive {
		b.Logf("%s: %d %s sent (the last %v after the first), %d resolved (the last after %v)",
			impl.name, n, fam.what(), time.Duration(lastSent-sent[0]).Round(time.Millisecond), res.resolved, res.elapsed.Round(time.Millisecond))
	} else {
		b.Logf("%s: %d misses queued before its start, %d resolved (the last %v after its start)",
			impl.name, n, res.resolved, res.elapsed.Round(time.Millisecond))
	}
	return res
}

// processCPU returns the CPU time (user and system) the process has used:
// the resolver under test, the generator and the watcher, with the kernel
// work each does in its system calls.
func processCPU(tb testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// percentile returns the p-th percentile (0 < p <= 1, nearest rank) of
// sorted d.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	k := int(float64(len(d))*p+0.999999) - 1
	return d[max(0, min(k, len(d)-1))]
}

// resolveThroughput keeps each implementation's resolved/s of the latest
// run, for the ratio BenchmarkResolve logs.
var resolveThroughput sync.Map

// burstSizes are the bursts BenchmarkResolve and BenchmarkResolveBacklog
// raise: a container's ARP burst, and five times that (a proxy or a
// restarted service opening connections to 50,000 peers at once).
var burstSizes = []int{resolveN, registryN}

// BenchmarkResolve measures a miss resolver end to end: one op is a round
// in a fresh lab (missgen: overlay namespace with br0 and a proxy vxlan1
// with l3miss, a container namespace) where the container sends ARP
// requests for n distinct registered IPs in one burst, each sent once;
// every request raises an L3 miss, and the resolver under test looks the IP
// up (IP → MAC → VTEP) and programs the PERMANENT neighbour entry and the
// vxlan FDB entry. An IP counts as resolved when a separate RTNLGRP_NEIGH
// watcher has seen both entries arrive (and checked them). The burst is
// sent while the resolver runs (BenchmarkResolveBacklog sends it before).
// The rtnl resolver runs with `overlayd run`'s defaults.
//
//	resolved/s  IPs resolved / (first send → last IP resolved)
//	p50-us      median latency from an IP's send to its entries' arrival
//	p99-us      99th percentile of it
//	unresolved  IPs of the round never resolved (per op): the generator
//	            does not retry, so a dropped miss stays unresolved
//	cpu-us/ip   CPU time of the process in the timed part (resolver,
//	            generator and watcher, user and kernel) per resolved IP
//	ns/op       first send → last IP resolved, per round
//
// Sub-benchmarks: n=10000 and n=50000; registry=dir (a DirStore on tmpfs,
// shared by both implementations: two small-file reads per IP) and
// registry=mem (an in-memory copy: libnetwork's own peer map); impl=rtnl
// (resolver.Resolver on rtnl.Monitor) and impl=vishvananda (the libnetwork
// way: one goroutine reading vishvananda/netlink's socket, a synchronous
// lookup and two NeighSet calls per miss). Setup (namespaces, resolver
// start) is outside the timer. Run it with -benchtime 1x: a round is one op.
func BenchmarkResolve(b *testing.B) { benchResolveLoads(b, loadLive) }

// BenchmarkResolveBacklog is BenchmarkResolve with the burst sent before
// the resolver starts reading: the kernel queues all the misses in its
// socket, and the round times the resolver's start and the draining of the
// backlog. The generator no longer shares the cores with the resolver, so
// this is the resolver's own throughput; latencies count from its start.
func BenchmarkResolveBacklog(b *testing.B) { benchResolveLoads(b, loadBacklog) }

func benchResolveLoads(b *testing.B, load resolveLoad) {
	nstest.RequireRoot(b)
	regs := resolveRegistries(b)
	for _, n := range burstSizes {
		for _, reg := range regs {
			for _, impl := range resolverImpls {
				b.Run(fmt.Sprintf("n=%d/registry=%s/impl=%s", n, reg.name, impl.name), func(b *testing.B) {
					benchResolve(b, impl, reg, load, n)
				})
			}
			a, okA := resolveThroughput.Load(fmt.Sprint(load, n, reg.name, "rtnl"))
			p, okP := resolveThroughput.Load(fmt.Sprint(load, n, reg.name, "vishvananda"))
			if okA && okP && p.(float64) > 0 {
				b.Logf("n=%d registry=%s: resolved/s rtnl / vishvananda = %.1fx", n, reg.name, a.(float64)/p.(float64))
			}
		}
	}
}

func benchResolve(b *testing.B, impl resolverImpl, reg benchRegistry, load resolveLoad, n int) {
	perSec := benchResolveOf(b, impl, reg, load, n, familyLegacy)
	resolveThroughput.Store(fmt.Sprint(load, n, reg.name, impl.name), perSec)
}

// benchResolveOf is benchResolve with the misses of fam; it returns the
// resolved/s.
func benchResolveOf(b *testing.B, impl resolverImpl, reg benchRegistry, load resolveLoad, n int, fam missFamily) float64 {
	var resolved int
	var elapsed, cpu time.Duration
	var lat []time.Duration
	for range b.N {
		r := resolveRoundOf(b, impl, reg, load, n, fam)
		resolved += r.resolved
		elapsed += r.elapsed
		cpu += r.cpu
		lat = append(lat, r.latencies...)
	}
	slices.Sort(lat)
	perSec := 0.0
	if elapsed > 0 {
		perSec = float64(resolved) / elapsed.Seconds()
	}
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(perSec, "resolved/s")
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds()), "p50-us")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds()), "p99-us")
	b.ReportMetric(float64(b.N*n-resolved)/float64(b.N), "unresolved")
	if resolved > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(resolved), "cpu-us/ip")
	}
	return perSec
}
