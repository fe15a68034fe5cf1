//go:build !noetcd

package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// The scale harness: synthetic remote endpoints written straight into etcd,
// and the daemon's process measured from outside (its RSS excludes what the
// kernel holds for the entries it programs).

// benchEtcdArgs are the etcd flags of the scale benchmarks: no fsync of
// etcd's log (its data directory is on this machine's shared disk, and the
// benchmarks measure the daemon, not the disk; a production etcd has a
// disk of its own).
var benchEtcdArgs = []string{"--unsafe-no-fsync"}

// scaleGateway is the overlay of the scale lab: a /8, room for 100,000
// endpoints and more.
const scaleGateway = "10.0.0.1/8"

// scaleRecord is the i-th synthetic remote endpoint: IP 10.1.0.0 + i, MAC
// 02:43 + the IP's bytes, on one of 100 remote VTEPs 203.0.113.1-100.
func scaleRecord(i int) registry.Record {
	a := netip.AddrFrom4([4]byte{10, byte(1 + i>>16), byte(i >> 8), byte(i)})
	b := a.As4()
	return registry.Record{IP: a, MAC: ethaddr.MAC{0x02, 0x43, b[0], b[1], b[2], b[3]},
		VTEP: netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + i%100)})}
}

// client returns an etcd client of the lab's etcd, connected from its
// namespace, closed at the end of the test.
func (l *etcdLab) client(tb testing.TB) *clientv3.Client {
	tb.Helper()
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		return l.srv.DialContext(ctx, "tcp", addr)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{l.srv.Endpoint()}, DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(dial)}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cli.Close() })
	return cli
}

// putRecords writes records from..to-1 (scaleRecord) without a lease, 64
// per transaction (etcd's default limit is 128 operations), 4 transactions
// at a time.
func (l *etcdLab) putRecords(tb testing.TB, cli *clientv3.Client, from, to int) {
	tb.Helper()
	const perTxn = 64
	work := make(chan int)
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for start := range work {
				var ops []clientv3.Op
				for i := start; i < min(start+perTxn, to); i++ {
					r := scaleRecord(i)
					ops = append(ops, clientv3.OpPut(l.prefix+"arp/"+r.IP.String(), r.MAC.String()),
						clientv3.OpPut(l.prefix+"fdb/"+r.MAC.String(), r.VTEP.String()))
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := cli.Txn(ctx).Then(ops...).Commit()
				cancel()
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for start := from; start < to; start += perTxn {
		work <- start
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		tb.Fatalf("put records: %v", err)
	default:
	}
}

// procStat is what /proc says about a process.
type procStat struct {
	rss, hwm int64         // resident set now and at its peak, bytes
	anon     int64         // of rss, the anonymous memory (heap, stacks); the rest is mostly the binary's pages
	cpu      time.Duration // user + system CPU time
}

// readProc reads pid's resident set and CPU time.
func readProc(tb testing.TB, pid int) procStat {
	tb.Helper()
	var st procStat
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			st.rss = kb << 10
		case "VmHWM":
			st.hwm = kb << 10
		case "RssAnon":
			st.anon = kb << 10
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name (which may hold spaces): state is 3,
	// utime 14, stime 15, in clock ticks (100 per second here).
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	fields := strings.Fields(rest)
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	stt, _ := strconv.ParseInt(fields[12], 10, 64)
	st.cpu = time.Duration(ut+stt) * 10 * time.Millisecond
	return st
}

var programmedRE = regexp.MustCompile(`(?m)^overlayd_programmed_entries\{table="(neigh|fdb)"\} (\d+)$`)

// programmed returns the daemon's programmed neighbour and FDB entries, from
// its metrics at addr in n's netns (-1, -1 if it does not answer yet).
func (n *simNode) programmed(addr string) (neigh, fdb int) {
	neigh, fdb = -1, -1
	for _, line := range n.metrics(addr) {
		if m := programmedRE.FindStringSubmatch(line); m != nil {
			v, _ := strconv.Atoi(m[2])
			if m[1] == "neigh" {
				neigh = v
			} else {
				fdb = v
			}
		}
	}
	return
}

// reconcileRuns returns the reconcile passes the daemon at addr completed
// (-1 if it does not answer).
func (n *simNode) reconcileRuns(addr string) int {
	for _, line := range n.metrics(addr) {
		if v, ok := strings.CutPrefix(line, "overlayd_reconcile_runs_total "); ok {
			runs, _ := strconv.Atoi(v)
			return runs
		}
	}
	return -1
}

// waitRuns waits until the daemon at addr completed runs reconcile passes.
func (n *simNode) waitRuns(tb testing.TB, addr string, runs int, limit time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for n.reconcileRuns(addr) < runs {
		if time.Now().After(deadline) {
			tb.Fatalf("after %v the daemon completed %d reconcile passes, want %d", limit, n.reconcileRuns(addr), runs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metrics returns the lines of the daemon's metrics at addr in n's netns
// (none if it does not answer).
func (n *simNode) metrics(addr string) []string {
	ns, err := rtnl.OpenNamedNetNS("", n.name)
	if err != nil {
		return nil
	}
	defer ns.Close()
	var conn net.Conn
	if ns.Do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", addr, time.Second)
		return err
	}) != nil {
		return nil
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

var bucketRE = regexp.MustCompile(`^([a-z_]+)_bucket\{le="([^"]+)"\} (\d+)$`)

// histogramQuantile returns the upper bound of the bucket of the metrics'
// histogram name that holds quantile q: 0 without observations, +Inf
// beyond the last finite bucket.
func histogramQuantile(lines []string, name string, q float64) float64 {
	var les, counts []float64 // cumulative, the last one +Inf's
	for _, line := range lines {
		m := bucketRE.FindStringSubmatch(line)
		if m == nil || m[1] != name {
			continue
		}
		le := math.Inf(1)
		if m[2] != "+Inf" {
			le, _ = strconv.ParseFloat(m[2], 64)
		}
		c, _ := strconv.ParseFloat(m[3], 64)
		les, counts = append(les, le), append(counts, c)
	}
	if len(counts) == 0 || counts[len(counts)-1] == 0 {
		return 0
	}
	for i, c := range counts {
		if c >= q*counts[len(counts)-1] {
			return les[i]
		}
	}
	return math.Inf(1)
}

// kernelEntries counts the PERMANENT neighbour entries and the extern_learn
// FDB entries of n's vxlan (what the daemon programmed), read back with ip
// and bridge.
func (n *simNode) kernelEntries(tb testing.TB) (neigh, fdb int) {
	tb.Helper()
	count := func(what string, argv ...string) int {
		cmd := exec.Command("nsenter", append([]string{"--net=" + filepath.Join(n.dir, "overns")}, argv...)...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			tb.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		c := 0
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), what) {
				c++
			}
		}
		if err := cmd.Wait(); err != nil {
			tb.Fatalf("%q: %v", argv, err)
		}
		return c
	}
	return count("PERMANENT", "ip", "neigh", "show", "dev", "vxlan1"),
		count("extern_learn", "bridge", "fdb", "show", "dev", "vxlan1")
}

// startMeasured starts `overlayd run` with args on n (the process itself:
// nsenter execs it) and returns it; it is killed at the end of the test.
func (n *simNode) startMeasured(tb testing.TB, env []string, args ...string) *exec.Cmd {
	tb.Helper()
	return n.startMeasuredBin(tb, overlaydBinary(tb), env, args...)
}

// startMeasuredBin is startMeasured with the overlayd binary bin, or the
// one OVERLAYD_BENCH_BIN names (a build of one's own: another commit's, or
// -tags profile).
func (n *simNode) startMeasuredBin(tb testing.TB, bin string, env []string, args ...string) *exec.Cmd {
	tb.Helper()
	if v := os.Getenv("OVERLAYD_BENCH_BIN"); v != "" {
		bin = v
	}
	argv := []string{"--net=" + filepath.Join(rtnl.DefaultNetNSDir, n.name), bin, "run",
		"--netns-dir", n.dir, "--state-dir", n.state, "--store", n.store, "--log-level", "warn"}
	cmd := exec.Command("nsenter", append(argv, args...)...)
	cmd.Env = append(os.Environ(), env...)
	logDir := tb.TempDir()
	if d := os.Getenv("OVERLAYD_BENCH_PROFILE"); d != "" {
		logDir = d // kept with the profiles
	}
	logf, err := os.CreateTemp(logDir, "overlayd-*.log")
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	startReaped(tb, cmd, logf)
	return cmd
}

// stopMeasured stops a daemon of startMeasured with SIGTERM.
func stopMeasured(tb testing.TB, cmd *exec.Cmd) {
	tb.Helper()
	cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		tb.Errorf("overlayd run ignored SIGINT for 30 s")
	}
}

// waitProgrammed polls the daemon's metrics until it programmed want
// neighbour and FDB entries or limit passes; it returns when.
func (n *simNode) waitProgrammed(tb testing.TB, cmd *exec.Cmd, addr string, want int, limit time.Duration) time.Time {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for {
		ne, fd := n.programmed(addr)
		if ne == want && fd == want {
			return time.Now()
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %v the daemon programmed %d neighbour and %d FDB entries, want %d", limit, ne, fd, want)
		}
		if cmd.ProcessState != nil {
			tb.Fatalf("overlayd run exited: %v", cmd.ProcessState)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkStartup100k: 100,000 remote endpoints (on 100 VTEPs) already in
// etcd; `overlayd run` with defaults (hybrid mode) starts on a node with an
// empty vxlan. One op is one start, until every endpoint's neighbour and
// FDB entry is programmed (ns/op); the daemon's resident set then
// (RSS-MiB; of it anonymous, anon-RSS-MiB: the rest is mostly the binary's
// pages), at its peak (peak-RSS-MiB), its CPU time, and the bytes of
// resident set per endpoint above an idle daemon's (B/endpoint); then,
// once the first periodic reconcile pass ran (within 10 s), the resident
// set at rest, a pass's garbage included (pass-RSS-MiB), and the peak
// until then (pass-peak-RSS-MiB). The kernel holds the entries: its memory
// is not in the daemon's RSS.
//
//	go test ./cmd/overlayd -run '^$' -bench 'Startup' -benchtime 1x -count 3
func BenchmarkStartup10k(b *testing.B)  { benchStartup(b, 10_000) }
func BenchmarkStartup100k(b *testing.B) { benchStartup(b, 100_000) }

// BenchmarkStartup100kNoKube: BenchmarkStartup100k with overlayd built
// BUILDTAGS=nokube, beside it: what the Kubernetes client costs a daemon on
// etcd (its pages of the binary).
func BenchmarkStartup100kNoKube(b *testing.B) {
	benchStartupBin(b, filepath.Join(nokubeBins.Dir(b), "overlayd"), 100_000)
}

func benchStartup(b *testing.B, n int, env ...string) {
	benchStartupBin(b, overlaydBinary(b), n, env...)
}

func benchStartupBin(b *testing.B, bin string, n int, env ...string) {
	prof := os.Getenv("OVERLAYD_BENCH_PROFILE")
	lab := newEtcdLabWith(b, 1, labOptions{create: []string{"--gateway", scaleGateway}, etcdArgs: benchEtcdArgs})
	node := lab.nodes[0]
	const metrics = "127.0.0.1:9477"
	// An idle daemon: no remote endpoint.
	idle := node.startMeasuredBin(b, bin, env, "--metrics", metrics)
	node.waitProgrammed(b, idle, metrics, 0, 30*time.Second)
	time.Sleep(500 * time.Millisecond)
	base := readProc(b, idle.Process.Pid)
	stopMeasured(b, idle)

	lab.putRecords(b, lab.client(b), 0, n)
	var rss, hwm, anon, cpu, took, passRSS, passHWM float64
	b.ResetTimer()
	for i := range b.N {
		if i > 0 {
			b.StopTimer()
			node.ok("reset")
			node.ok("create", "--local", "192.0.2.2", "--gateway", scaleGateway)
			b.StartTimer()
		}
		runEnv := env
		var perf *exec.Cmd
		if prof != "" {
			runEnv = append(slices.Clip(env), "OVERLAYD_PROFILE_DIR="+profileDir(b, prof, i))
		}
		start := time.Now()
		d := node.startMeasuredBin(b, bin, runEnv, "--metrics", metrics)
		if prof != "" {
			perf = startPerf(b, d.Process.Pid, profileDir(b, prof, i))
		}
		done := node.waitProgrammed(b, d, metrics, n, 120*time.Second)
		b.StopTimer()
		if prof != "" {
			captureProfile(b, d.Process.Pid, perf, profileDir(b, prof, i))
		}
		took += done.Sub(start).Seconds()
		st := readProc(b, d.Process.Pid)
		rss += float64(st.rss)
		hwm += float64(st.hwm)
		anon += float64(st.anon)
		cpu += st.cpu.Seconds()
		// The first pass follows the feed's sync; the second is the
		// first periodic one (--reconcile 10s): the resident set once it
		// ran is the daemon's at rest, a pass's garbage included.
		node.waitRuns(b, metrics, 2, 30*time.Second)
		ps := readProc(b, d.Process.Pid)
		if prof != "" {
			capturePass(b, d.Process.Pid, profileDir(b, prof, i))
		}
		passRSS += float64(ps.rss)
		passHWM += float64(ps.hwm)
		stopMeasured(b, d)
		if ne, fd := node.kernelEntries(b); ne != n || fd != n {
			b.Fatalf("kernel holds %d neighbour and %d FDB entries, want %d each", ne, fd, n)
		}
		b.StartTimer()
	}
	b.StopTimer()
	k := float64(b.N)
	b.ReportMetric(took/k, "s/startup")
	b.ReportMetric(rss/k/(1<<20), "RSS-MiB")
	b.ReportMetric(hwm/k/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(base.rss)/(1<<20), "idle-RSS-MiB")
	b.ReportMetric(anon/k/(1<<20), "anon-RSS-MiB")
	b.ReportMetric(float64(base.anon)/(1<<20), "idle-anon-MiB")
	b.ReportMetric((rss/k-float64(base.rss))/float64(n), "B/endpoint")
	b.ReportMetric((hwm/k-float64(base.hwm))/float64(n), "peak-B/endpoint")
	b.ReportMetric(cpu/k, "CPU-s")
	b.ReportMetric(passRSS/k/(1<<20), "pass-RSS-MiB")
	b.ReportMetric(passHWM/k/(1<<20), "pass-peak-RSS-MiB")
}

// writeEndpoints records n endpoints scaleRecord(from..from+n-1) at vtep in
// node's state directory, as attach would (without their containers: the
// daemon only registers their records), and removes them at the end of the
// test, before the node's reset.
func (n *simNode) writeEndpoints(tb testing.TB, from, count int, vtep netip.Addr) {
	tb.Helper()
	dir := filepath.Join(n.state, "endpoints")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	for i := from; i < from+count; i++ {
		r := scaleRecord(i)
		name := fmt.Sprintf("s%d", i)
		js := fmt.Sprintf(`{"version":1,"endpoint":{"name":%q,"ip":"%s/8","mac":%q,"ifname":"eth0","host_if":"ve-%s","host_index":0,"peer_index":0,"vtep":%q},"created_netns":false,"registered":true}`,
			name, r.IP, r.MAC, name, vtep)
		if err := os.WriteFile(filepath.Join(dir, name+".json"), []byte(js), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
}

// TestEtcdNodeDeathAtScale: a node whose daemon holds 10,000 endpoints on its
// lease (TTL 3 s) is killed with SIGKILL; the other node, which programmed
// all of them, has removed every entry within TTL + 2 s.
func TestEtcdNodeDeathAtScale(t *testing.T) {
	const n, ttl = 10_000, 3 * time.Second
	lab := newEtcdLabWith(t, 2, labOptions{query: "ttl=3s", create: []string{"--gateway", scaleGateway}})
	n1, n2 := lab.nodes[0], lab.nodes[1]
	n2.writeEndpoints(t, 0, n, netip.MustParseAddr("192.0.2.3"))
	const metrics = "127.0.0.1:9477"
	d1 := n1.startMeasured(t, nil, "--metrics", metrics)
	d2 := n2.startMeasured(t, nil)
	n1.waitProgrammed(t, d1, metrics, n, 120*time.Second)
	if ne, fd := n1.kernelEntries(t); ne != n || fd != n {
		t.Fatalf("node 1 holds %d neighbour and %d FDB entries, want %d each", ne, fd, n)
	}

	d2.Process.Kill()
	d2.Wait()
	killed := time.Now()
	n1.waitProgrammed(t, d1, metrics, 0, ttl+10*time.Second)
	took := time.Since(killed)
	if ne, fd := n1.kernelEntries(t); ne != 0 || fd != 0 {
		t.Fatalf("node 1 still holds %d neighbour and %d FDB entries of dead node 2", ne, fd)
	}
	t.Logf("node 1 removed the %d entries of node 2 %v after its daemon's SIGKILL (TTL %v)", n, took.Round(10*time.Millisecond), ttl)
	if took > ttl+2*time.Second {
		t.Errorf("entries gone %v after SIGKILL, want within TTL + 2 s = %v", took, ttl+2*time.Second)
	}
}

// BenchmarkStartup100kGOGC100: the default start-up with Go's own GC
// target instead of overlayd run's DefaultGOGC; BenchmarkStartup100kGOGC10
// with a lower one (a tuning variant: less memory, more CPU).
func BenchmarkStartup100kGOGC100(b *testing.B) { benchStartup(b, 100_000, "GOGC=100") }
func BenchmarkStartup100kGOGC10(b *testing.B)  { benchStartup(b, 100_000, "GOGC=10") }

// profileDir is the directory of run i's profiles under dir
// (OVERLAYD_BENCH_PROFILE).
func profileDir(tb testing.TB, dir string, i int) string {
	tb.Helper()
	d := filepath.Join(dir, fmt.Sprintf("run%d", i))
	if err := os.MkdirAll(d, 0o755); err != nil {
		tb.Fatal(err)
	}
	return d
}

// startPerf records the daemon pid's start-up with perf (user and kernel
// stacks), if perf is installed.
func startPerf(tb testing.TB, pid int, dir string) *exec.Cmd {
	tb.Helper()
	if _, err := exec.LookPath("perf"); err != nil {
		return nil
	}
	cmd := exec.Command("perf", "record", "-g", "-F", "999", "-p", strconv.Itoa(pid), "-o", filepath.Join(dir, "perf.data"))
	startReaped(tb, cmd, nil)
	return cmd
}

// captureProfile saves what the kernel says about the daemon pid's memory
// (smaps_rollup, smaps, status) into dir, stops perf, and has a daemon
// built -tags profile write its profiles there (SIGUSR1, see profile.go).
func captureProfile(tb testing.TB, pid int, perf *exec.Cmd, dir string) {
	tb.Helper()
	for _, f := range []string{"smaps_rollup", "smaps", "status"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	if perf != nil {
		perf.Process.Signal(os.Interrupt)
		perf.Wait()
	}
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		tb.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
			return
		}
	}
	tb.Logf("no profiles in %s: overlayd not built -tags profile?", dir)
}

// capturePass saves the daemon pid's smaps_rollup once a periodic pass ran
// (pass-smaps_rollup) and has a daemon built -tags profile write its heap
// profile and metrics again (heap-1.pprof, metrics-1.txt).
func capturePass(tb testing.TB, pid int, dir string) {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pass-smaps_rollup"), b, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		tb.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "done-1")); err == nil {
			return
		}
	}
}

// startReaped starts cmd and, at the end of the test, kills it if it still
// runs, reaps it and closes out (if any).
func startReaped(tb testing.TB, cmd *exec.Cmd, out *os.File) {
	tb.Helper()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if out != nil {
			out.Close()
		}
	})
}
