//go:build !noetcd

package main

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// etcdMetrics sums, in etcd's Prometheus metrics (read from its
// namespace), the samples of each of names.
func (l *etcdLab) etcdMetrics(tb testing.TB, names ...string) map[string]float64 {
	tb.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: l.srv.DialContext}}
	resp, err := hc.Get("http://" + l.srv.Endpoint() + "/metrics")
	if err != nil {
		tb.Fatalf("etcd metrics: %v", err)
	}
	defer resp.Body.Close()
	out := make(map[string]float64, len(names))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, n := range names {
			if strings.HasPrefix(line, n+" ") || strings.HasPrefix(line, n+"{") {
				f := strings.Fields(line)
				v, _ := strconv.ParseFloat(f[len(f)-1], 64)
				out[n] += v
			}
		}
	}
	io.Copy(io.Discard, resp.Body)
	return out
}

var simRequests = []string{"grpc_server_handled_total", "etcd_debugging_mvcc_watcher_total", "etcd_debugging_mvcc_watch_stream_total"}

// TestSimulation50Nodes: 50 simulated nodes on one etcd, a daemon per node
// in hybrid mode (the default), 4 containers attached on each after the
// daemons started. It reports the time from the last attach to every node
// holding every remote container's entries, etcd's watchers and request
// rate (while attaching, and idle), the daemons' total RSS and CPU, and
// checks that a sample of cross-node pings is answered on the first
// attempt. -short skips it (it takes a few minutes on a loaded machine).
func TestSimulation50Nodes(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the 50-node simulation in -short mode")
	}
	const nodes, perNode, metrics = 50, 4, "127.0.0.1:9477"
	const remote = nodes*perNode - perNode
	start := time.Now()
	lab := newEtcdLabWith(t, nodes, labOptions{})
	t.Logf("%d nodes created in %v", nodes, time.Since(start).Round(time.Second))
	daemons := make([]*exec_, nodes)
	for i, n := range lab.nodes {
		daemons[i] = &exec_{cmd: n.startMeasured(t, nil, "--metrics", metrics)}
	}
	for i, n := range lab.nodes {
		n.waitProgrammed(t, daemons[i].cmd, metrics, 0, 60*time.Second)
	}
	before := lab.etcdMetrics(t, simRequests...)
	tAttach := time.Now()

	// 4 containers per node, attached by 8 workers at a time.
	type job struct{ node, ctr int }
	jobs := make(chan job)
	errs := make(chan error, nodes*perNode)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for j := range jobs {
				r := lab.nodes[j.node].run("attach", fmt.Sprintf("c%d", j.ctr), "--ip", simIP(j.node, j.ctr)+"/24")
				if r.code != 0 {
					errs <- fmt.Errorf("attach on node %d: exit %d: %s", j.node+1, r.code, r.stderr)
				}
			}
		})
	}
	for c := range perNode {
		for i := range nodes {
			jobs <- job{i, c}
		}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	lastAttach := time.Now()
	attaching := lab.etcdMetrics(t, simRequests...)

	// Every node holds every remote container's entries.
	deadline := time.Now().Add(60 * time.Second)
	pending := map[int]bool{}
	for i := range nodes {
		pending[i] = true
	}
	for len(pending) > 0 {
		for i := range pending {
			if ne, fd := lab.nodes[i].programmed(metrics); ne == remote && fd == remote {
				delete(pending, i)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("60 s after the last attach, %d nodes still lack entries (want %d each)", len(pending), remote)
		}
		time.Sleep(50 * time.Millisecond)
	}
	converged := time.Since(lastAttach)

	// Idle: 10 s of leases kept alive and watches open.
	time.Sleep(10 * time.Second)
	idle := lab.etcdMetrics(t, simRequests...)
	var rss int64
	var cpu time.Duration
	for _, d := range daemons {
		st := readProc(t, d.cmd.Process.Pid)
		rss += st.rss
		cpu += st.cpu
	}
	attachRate := (attaching["grpc_server_handled_total"] - before["grpc_server_handled_total"]) / lastAttach.Sub(tAttach).Seconds()
	idleRate := (idle["grpc_server_handled_total"] - attaching["grpc_server_handled_total"]) / 10
	t.Logf("%d containers attached in %v; every node held all %d remote entries %v after the last attach",
		nodes*perNode, lastAttach.Sub(tAttach).Round(time.Millisecond), remote, converged.Round(time.Millisecond))
	t.Logf("etcd: %.0f watchers on %.0f watch streams; %.0f requests/s while attaching (attach, adoption, watches), %.1f requests/s idle (lease keep-alives)",
		idle["etcd_debugging_mvcc_watcher_total"], idle["etcd_debugging_mvcc_watch_stream_total"], attachRate, idleRate)
	t.Logf("daemons: total RSS %.1f MiB (%.1f MiB each), total CPU %v since start", float64(rss)/(1<<20), float64(rss)/(1<<20)/nodes, cpu.Round(10*time.Millisecond))

	// A sample of cross-node pings, each answered on the first attempt.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10 {
		a, b := rng.IntN(nodes), rng.IntN(nodes-1)
		if b >= a {
			b++
		}
		ca, cb := rng.IntN(perNode), rng.IntN(perNode)
		if out, err := pingOnce(lab.nodes[a], fmt.Sprintf("c%d", ca), simIP(b, cb)); err != nil {
			t.Errorf("ping node %d c%d -> node %d c%d (%s) not answered on the first attempt: %v\n%s", a+1, ca, b+1, cb, simIP(b, cb), err, out)
		}
	}
	if converged > 30*time.Second {
		t.Errorf("convergence took %v", converged)
	}
}

// exec_ holds a measured daemon.
type exec_ struct{ cmd *exec.Cmd }

// simIP is the address of container c on node i.
func simIP(i, c int) string { return fmt.Sprintf("198.51.100.%d", 2+i*4+c) }
