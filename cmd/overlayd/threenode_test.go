package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/etcdtest"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/resolver"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// reconcileEvery is the daemons' --reconcile in TestThreeNodeExercise: the
// stated bound for a moved container is this interval plus the pass.
const reconcileEvery = 2 * time.Second

// ctr is a container of the three-node exercise.
type ctr struct {
	node int    // index in threeNodes.nodes
	name string // its netns in the node's netns dir
	ip   string
}

func (c ctr) mac() string { return overlay.DeriveMAC(netip.MustParseAddr(c.ip)).String() }

func (c ctr) String() string { return fmt.Sprintf("%s@node%d(%s)", c.name, c.node+1, c.ip) }

// threeNodes is the lab's exercise: three nodes (192.0.2.2/.3/.4) whose u0
// hangs off a bridge in an "underlay" netns, sharing one directory store.
type threeNodes struct {
	t     *testing.T
	nodes []*simNode
	vteps []string
	ds    []*daemon
}

func newThreeNodes(t *testing.T) *threeNodes {
	store := "dir:" + t.TempDir()
	_, ul := nstest.NetNS(t, "ul")
	nstest.Run(t, ul, "ip", "link", "add", "br0", "type", "bridge")
	nstest.Run(t, ul, "ip", "link", "set", "br0", "up")
	l := &threeNodes{t: t, vteps: []string{"192.0.2.2", "192.0.2.3", "192.0.2.4"}}
	for i, vtep := range l.vteps {
		n := newSimNode(t, fmt.Sprintf("t%d", i+1), store)
		port := fmt.Sprintf("ul%d", i+1)
		nstest.Run(t, ul, "ip", "link", "add", port, "type", "veth", "peer", "name", "u0", "netns", n.name)
		nstest.Run(t, ul, "ip", "link", "set", port, "master", "br0", "up")
		n.ip("addr", "add", vtep+"/24", "dev", "u0")
		n.ip("link", "set", "u0", "up")
		n.ok("create", "--local", vtep)
		l.nodes = append(l.nodes, n)
	}
	return l
}

// ping sends one echo request from c to ip, waiting wait seconds for the reply.
func (l *threeNodes) ping(c ctr, ip, wait string) error {
	_, err := l.nodes[c.node].in(c.name, "ping", "-n", "-q", "-c1", "-W"+wait, ip)
	return err
}

// reach pings every pair (src, dst) at once, each up to max attempts of
// `ping -c1 -W2`; it returns the attempts each pair needed (0: never).
func (l *threeNodes) reach(pairs [][2]ctr, max int) []int {
	attempts := make([]int, len(pairs))
	var wg sync.WaitGroup
	for i, p := range pairs {
		wg.Go(func() {
			for a := 1; a <= max; a++ {
				if l.ping(p[0], p[1].ip, "2") == nil {
					attempts[i] = a
					return
				}
			}
		})
	}
	wg.Wait()
	return attempts
}

// neighJSON and fdbJSON are entries as `ip -j -d neigh` / `bridge -j -d fdb` print them.
type neighJSON struct {
	Dst, Lladdr, Protocol string
	State                 []string
}

type fdbJSON struct {
	MAC, Dst, State string
	Flags           []string
}

// wiring reads node i's vxlan1 neighbour entries and its FDB entries with a
// remote (dst) through iproute2.
func (l *threeNodes) wiring(i int) (map[string]neighJSON, map[string]fdbJSON) {
	l.t.Helper()
	n := l.nodes[i]
	var ns []neighJSON
	var fs []fdbJSON
	if err := json.Unmarshal([]byte(n.mustIn("overns", "ip", "-j", "-d", "neigh", "show", "dev", "vxlan1")), &ns); err != nil {
		l.t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(n.mustIn("overns", "bridge", "-j", "-d", "fdb", "show", "dev", "vxlan1")), &fs); err != nil {
		l.t.Fatal(err)
	}
	neigh, fdb := map[string]neighJSON{}, map[string]fdbJSON{}
	for _, e := range ns {
		neigh[e.Dst] = e
	}
	for _, e := range fs {
		if e.Dst != "" {
			fdb[e.MAC] = e
		}
	}
	return neigh, fdb
}

// checkWiring asserts that the nodes' entries are the daemon-made ones for
// the remote containers among ctrs: IP -> MAC PERMANENT proto 214, MAC ->
// the container's VTEP self extern_learn permanent, nothing for local ones
// and nothing else. need says which entries must be there (the others may
// be missing: nobody on the node talked to the container).
func (l *threeNodes) checkWiring(ctrs []ctr, need func(node int, c ctr) bool) {
	l.t.Helper()
	for i := range l.nodes {
		neigh, fdb := l.wiring(i)
		for _, c := range ctrs {
			ne, hasN := neigh[c.ip]
			fe, hasF := fdb[c.mac()]
			delete(neigh, c.ip)
			delete(fdb, c.mac())
			if c.node == i {
				if hasN || hasF {
					l.t.Errorf("node%d has entries for its local container %v: %+v %+v", i+1, c, ne, fe)
				}
				continue
			}
			must := need(i, c)
			if (hasN || must) && (!hasN || ne.Lladdr != c.mac() || !slices.Equal(ne.State, []string{"PERMANENT"}) || ne.Protocol != "214") {
				l.t.Errorf("node%d neighbour entry for %v = %+v (present %v); want lladdr %s PERMANENT proto 214", i+1, c, ne, hasN, c.mac())
			}
			if (hasF || must) && (!hasF || fe.Dst != l.vteps[c.node] || fe.State != "permanent" ||
				!slices.Contains(fe.Flags, "extern_learn") || !slices.Contains(fe.Flags, "self")) {
				l.t.Errorf("node%d FDB entry for %v = %+v (present %v); want dst %s self extern_learn permanent", i+1, c, fe, hasF, l.vteps[c.node])
			}
		}
		if len(neigh) > 0 || len(fdb) > 0 {
			l.t.Errorf("node%d has entries for no container: %+v %+v", i+1, neigh, fdb)
		}
	}
}

// TestThreeNodeExercise is the lab's exercise end to end, with a daemon per
// node and nothing pre-programmed: every container reaches every other one;
// a container moved to another node is reachable again within the reconcile
// bound with stale entries gone; a daemon killed with SIGKILL leaves traffic
// and entries alone, and once restarted adopts them and resolves new misses.
func TestThreeNodeExercise(t *testing.T) {
	l := newThreeNodes(t)
	ctrs := []ctr{{0, "pink", "198.51.100.2"}, {0, "sky", "198.51.100.3"}, {1, "pink", "198.51.100.4"},
		{1, "sky", "198.51.100.5"}, {2, "pink", "198.51.100.10"}, {2, "sky", "198.51.100.11"}}
	for _, c := range ctrs {
		l.nodes[c.node].ok("attach", c.name, "--ip", c.ip+"/24")
	}
	for _, n := range l.nodes {
		l.ds = append(l.ds, n.startDaemon("--reconcile", reconcileEvery.String(), "--log-level", "debug"))
	}
	dumpLogs := func() {
		for i, d := range l.ds {
			t.Logf("node%d daemon log:\n%s", i+1, d)
		}
	}

	// 1. Every container reaches every other one.
	var pairs [][2]ctr
	for _, a := range ctrs {
		for _, b := range ctrs {
			if a != b {
				pairs = append(pairs, [2]ctr{a, b})
			}
		}
	}
	start := time.Now()
	attempts := l.reach(pairs, 3)
	hist := map[int]int{}
	for i, a := range attempts {
		hist[a]++
		if a == 0 {
			t.Errorf("%v cannot reach %v (3 pings)", pairs[i][0], pairs[i][1])
		}
	}
	t.Logf("full mesh: %d pairs reachable in %v; pairs by attempts to first reply (0 = never): %v", len(pairs), time.Since(start).Round(time.Millisecond), hist)
	if t.Failed() {
		dumpLogs()
		t.FailNow()
	}
	l.checkWiring(ctrs, func(int, ctr) bool { return true })
	for i, d := range l.ds {
		resolved := func() int { return strings.Count(d.String(), "msg=resolved") }
		waitFor(2*time.Second, func() bool { return resolved() >= 4 }) // a ping may return before its line is written
		if n := resolved(); n < 4 {
			t.Errorf("node%d daemon logged %d resolutions, want >= 4 (one per remote IP)", i+1, n)
		}
	}

	// 2. sky moves from node 1 to node 3 with its IP (and so its derived MAC).
	l.nodes[0].ok("detach", "sky")
	mover := ctr{2, "mover", "198.51.100.3"}
	l.nodes[2].ok("attach", mover.name, "--ip", mover.ip+"/24")
	moved := time.Now()
	bound := reconcileEvery + 3*time.Second
	var srcs []ctr
	for _, c := range ctrs {
		if c.ip != mover.ip {
			srcs = append(srcs, c)
		}
	}
	took := make([]time.Duration, len(srcs))
	var wg sync.WaitGroup
	for i, c := range srcs {
		wg.Go(func() {
			for time.Since(moved) < bound+time.Second {
				if l.ping(c, mover.ip, "1") == nil {
					took[i] = time.Since(moved)
					return
				}
			}
		})
	}
	wg.Wait()
	for i, c := range srcs {
		if took[i] == 0 || took[i] > bound {
			t.Errorf("%v reached the moved %v after %v; bound %v (reconcile %v + margin)", c, mover, took[i], bound, reconcileEvery)
		}
	}
	t.Logf("moved container reachable again after %v (from %v), bound %v", took, srcs, bound)
	ctrs = append(slices.DeleteFunc(slices.Clone(ctrs), func(c ctr) bool { return c.ip == mover.ip }), mover)
	// Stale entries (the MAC at node 1's VTEP; node 3's entries for what is
	// now local) are gone everywhere within the bound.
	stale := func() []string {
		var s []string
		for i := range l.nodes {
			neigh, fdb := l.wiring(i)
			if f, ok := fdb[mover.mac()]; ok && (i == mover.node || f.Dst != l.vteps[mover.node]) {
				s = append(s, fmt.Sprintf("node%d fdb %+v", i+1, f))
			}
			if n, ok := neigh[mover.ip]; ok && (i == mover.node || n.Lladdr != mover.mac()) {
				s = append(s, fmt.Sprintf("node%d neigh %+v", i+1, n))
			}
		}
		return s
	}
	for s := stale(); len(s) > 0; s = stale() {
		if time.Since(moved) > bound {
			dumpLogs()
			t.Fatalf("stale entries %v after %v (bound %v)", s, time.Since(moved).Round(time.Millisecond), bound)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("no stale entry left %v after the move", time.Since(moved).Round(time.Millisecond))

	// 3. kill -9 node 1's daemon during a flow pink@1 -> pink@2.
	l.killAndRestart(ctrs[0], ctrs[1], ctrs, mover)
}

// marked lists the entries on the vxlan vx (through c, in a node's overlay
// netns) that carry the daemon's marks, keyed by what they say, with their
// age (NDA_CACHEINFO updated, in 1/100 s).
// pingFlow is a ping running in the background in a container's network
// namespace.
type pingFlow struct {
	cmd  *exec.Cmd
	out  bytes.Buffer // its output; read it once done has delivered
	done chan error   // delivers Wait's result once
}

// startPingFlow starts ping with args in the network namespace at netnsPath;
// a flow still running when the test ends is killed.
func startPingFlow(t *testing.T, netnsPath string, args ...string) *pingFlow {
	t.Helper()
	f := &pingFlow{done: make(chan error, 1)}
	f.cmd = exec.Command("nsenter", append([]string{"--net=" + netnsPath, "ping"}, args...)...)
	f.cmd.Stdout, f.cmd.Stderr = &f.out, &f.out
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { f.done <- f.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			f.cmd.Process.Kill()
			<-exited
		}
	})
	return f
}

func (l *threeNodes) marked(c *rtnl.Conn, vx int32) map[string]uint32 {
	l.t.Helper()
	out := map[string]uint32{}
	err := c.NeighDump(rtnl.NeighFilter{Family: unix.AF_INET}, func(m *rtnl.NeighMessage) error {
		if mac, ok := m.MAC(); ok && m.Ifindex == vx && m.Protocol == resolver.ProtocolOverlayd {
			out["neigh "+m.Dst.String()+" "+ethaddr.MAC(mac).String()] = m.CacheInfo.Updated
		}
		return nil
	})
	if err == nil {
		err = c.NeighDump(rtnl.NeighFilter{Family: unix.AF_BRIDGE, Ifindex: vx}, func(m *rtnl.NeighMessage) error {
			if mac, ok := m.MAC(); ok && m.Ifindex == vx && m.Dst.IsValid() && m.Flags&rtnl.NeighFlagExtLearned != 0 {
				out["fdb "+ethaddr.MAC(mac).String()+" "+m.Dst.String()] = m.CacheInfo.Updated
			}
			return nil
		})
	}
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

// killAndRestart kills src's node's daemon with SIGKILL while src pings dst
// every 200 ms, checks that no echo is lost and no entry is deleted, restarts
// the daemon, and checks it adopts every entry and resolves a new miss.
func (l *threeNodes) killAndRestart(src, dst ctr, ctrs []ctr, mover ctr) {
	t := l.t
	n := l.nodes[src.node]
	ns, err := rtnl.OpenNamedNetNS(n.dir, "overns")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	conn := nstest.Dial(t, ns)
	vx, err := conn.LinkByName("vxlan1")
	if err != nil {
		t.Fatal(err)
	}
	// Every deletion on the vxlan, seen by a monitor of our own.
	mon, err := rtnl.DialMonitor(rtnl.MonitorConfig{NetNS: ns})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var deleted []string
	monDone := make(chan struct{})
	go func() {
		defer close(monDone)
		mon.Run(ctx, func(ev *rtnl.Event) error {
			if ev.Kind == rtnl.EventNeighDelete && ev.Neigh.Ifindex == vx.Index {
				mac, _ := ev.Neigh.MAC()
				mu.Lock()
				deleted = append(deleted, fmt.Sprintf("family %d %v %v", ev.Neigh.Family, ev.Neigh.Dst, ethaddr.MAC(mac)))
				mu.Unlock()
			}
			return nil
		})
	}()
	defer func() { cancel(); mon.Close(); <-monDone }()

	before := l.marked(conn, vx.Index)
	t0 := time.Now()
	const count = 25
	flow := startPingFlow(t, filepath.Join(n.dir, src.name), "-n", "-i", "0.2", "-c", fmt.Sprint(count), "-W", "1", dst.ip)
	missing := func() []string { // entries present before the kill and absent now
		now := l.marked(conn, vx.Index)
		var m []string
		for k := range before {
			if _, ok := now[k]; !ok {
				m = append(m, k)
			}
		}
		return m
	}
	time.Sleep(time.Second)
	d := l.ds[src.node]
	d.cmd.Process.Kill()
	<-d.done
	killedAt := time.Now()
	for time.Since(killedAt) < 1500*time.Millisecond {
		if m := missing(); len(m) > 0 {
			t.Fatalf("%v after kill -9, entries vanished: %v", time.Since(killedAt), m)
		}
		time.Sleep(100 * time.Millisecond)
	}
	atRestart := l.marked(conn, vx.Index)
	restartedAt := time.Now()
	d2 := n.startDaemon("--reconcile", reconcileEvery.String(), "--log-level", "debug")
	l.ds[src.node] = d2
	if want := fmt.Sprintf("adopted=%d updated=0 removed=0", len(atRestart)); !strings.Contains(d2.String(), want) {
		t.Errorf("restarted daemon did not log %q:\n%s", want, d2)
	}
	for {
		if m := missing(); len(m) > 0 {
			t.Fatalf("after restart, entries vanished: %v", m)
		}
		select {
		case err := <-flow.done:
			if err != nil || !strings.Contains(flow.out.String(), fmt.Sprintf("%d packets transmitted, %d received, 0%% packet loss", count, count)) {
				t.Fatalf("flow %v -> %v across kill -9 and restart lost echoes (%v):\n%s", src, dst, err, flow.out.String())
			}
			t.Logf("flow %v -> %v, killed at +%v, restarted at +%v, ended +%v: %s", src, dst, killedAt.Sub(t0).Round(time.Millisecond),
				restartedAt.Sub(t0).Round(time.Millisecond), time.Since(t0).Round(time.Millisecond), regexp.MustCompile(`\d+ packets transmitted.*`).FindString(flow.out.String()))
			goto flowed
		case <-time.After(100 * time.Millisecond):
		}
	}
flowed:

	// A new miss: a container nobody has talked to yet, on another node.
	lime := ctr{dst.node, "lime", "198.51.100.6"}
	l.nodes[lime.node].ok("attach", lime.name, "--ip", lime.ip+"/24")
	got := l.reach([][2]ctr{{src, lime}}, 3)
	if got[0] == 0 {
		t.Fatalf("%v cannot reach the new %v after the restart:\n%s", src, lime, d2)
	}
	t.Logf("new miss %v -> %v resolved by the restarted daemon, attempts %d", src, lime, got[0])
	// The daemon answers the requester before it logs the resolution: the
	// reply can reach the container first.
	if want := `msg=resolved key="l3miss ` + lime.ip + `"`; !waitFor(2*time.Second, func() bool { return strings.Contains(d2.String(), want) }) {
		t.Errorf("restarted daemon did not log %s:\n%s", want, d2)
	}
	l.checkWiring(append(ctrs, lime), func(node int, c ctr) bool {
		// Since the move, node 1 may know the mover by its FDB entry only
		// (its containers had its MAC cached); only node 1 talked to lime.
		return c.ip == lime.ip && node == src.node || c.ip != lime.ip && c.ip != mover.ip
	})

	// Nothing was deleted, and nothing re-created: every entry from before
	// the kill is at least as old as the time since.
	mu.Lock()
	if len(deleted) > 0 {
		t.Errorf("entries deleted on node%d's vxlan1 across kill -9 and restart: %v", src.node+1, deleted)
	}
	mu.Unlock()
	elapsed := uint32(time.Since(t0) / (10 * time.Millisecond))
	for k, age := range l.marked(conn, vx.Index) {
		if _, ok := before[k]; ok && age+10 < elapsed {
			t.Errorf("entry %s updated %d/100 s ago, within the %d/100 s since before the kill: re-programmed", k, age, elapsed)
		}
	}
	if !t.Failed() {
		t.Logf("restarted daemon adopted all %d entries: none deleted, none re-programmed", len(atRestart))
	}
}

// TestDemoScript runs scripts/demo.sh (what `make demo` runs) to the end;
// again interrupted by SIGTERM once its daemons run; and with a binary whose
// `run` resolves nothing. It checks the exit status (0; 143 when terminated;
// 1 when pings fail), that a complete demo's 30 pings were each answered on
// their first try within firstContactBound (the requester answered at once,
// not at its ARP retransmit), and that nothing is left behind: no namespace,
// mount or file.
func TestDemoScript(t *testing.T) {
	nstest.RequireRoot(t)
	noDaemon := filepath.Join(t.TempDir(), "overlayd")
	wrapper := "#!/bin/sh\nif [ \"$1\" = run ]; then echo 'msg=reconciled (test: no daemon)' >&2; exec sleep 60; fi\nexec " +
		overlaydBinary(t) + " \"$@\"\n"
	if err := os.WriteFile(noDaemon, []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		bin       string
		store     string // DEMO_STORE: "" (the directory store) or "etcd"
		interrupt string // SIGTERM once a line containing it is printed; "" runs to the end
		code      int
		want      []string
	}{
		{"complete", overlaydBinary(t), "", "", 0, []string{"all 30 pings answered", "the outside and the nodes reached: all answered", "resolved key=\"l3miss 198.51.100.11\"",
			"FDB on vxlan1", "cleaned up"}},
		{"interrupted", overlaydBinary(t), "", "node3: daemon pid", 143, []string{"demo: terminated", "cleaned up"}},
		{"no daemon", noDaemon, "", "", 1, []string{"24 of 30 pings FAILED", "cleaned up"}},
		// On etcd the daemons program every remote container from the watch
		// before the first ping: each answers at once, and no miss is resolved.
		{"etcd", overlaydBinary(t), "etcd", "", 0, []string{"all 30 pings answered", "the outside and the nodes reached: all answered",
			"from feed change=set-fdb ip=\"\" mac=02:42:c6:33:64:0b vtep=192.0.2.4",
			`overlayd_resolutions_total{kind="l3miss"} 0`, "cleaned up"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.store == "etcd" {
				etcdtest.Require(t)
			}
			tmp := t.TempDir()
			cmd := exec.Command("bash", "../../scripts/demo.sh", c.bin)
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "DEMO_STORE="+c.store)
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stdout, cmd.Stderr = pw, pw
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			var out strings.Builder
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				out.WriteString(sc.Text() + "\n")
				if c.interrupt != "" && strings.Contains(sc.Text(), c.interrupt) {
					cmd.Process.Signal(unix.SIGTERM)
				}
			}
			err = cmd.Wait()
			pr.Close()
			t.Logf("demo.sh output:\n%s", out.String())
			if code := cmd.ProcessState.ExitCode(); code != c.code {
				t.Errorf("demo.sh exit %d (%v), want %d", code, err, c.code)
			}
			for _, want := range c.want {
				if !strings.Contains(out.String(), want) {
					t.Errorf("demo output lacks %q", want)
				}
			}
			if c.code == 0 && c.interrupt == "" {
				checkDemoFirstTries(t, out.String())
			}
			if c.name == "complete" {
				checkDemoResolutions(t, out.String())
			}
			tag := fmt.Sprintf("ovdemo%d", cmd.Process.Pid)
			if ns := nstest.Run(t, "", "ip", "netns", "list"); strings.Contains(ns, tag) {
				t.Errorf("demo left namespaces behind:\n%s", ns)
			}
			if m := mountsUnder(t, tmp); len(m) > 0 {
				t.Errorf("demo left mounts behind: %q", m)
			}
			if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
				t.Errorf("demo left files in its TMPDIR: %v", ents)
			}
		})
	}
}

// demoPing is a line of the demo's ping matrix: "... ok, try N, rtt X ms".
var demoPing = regexp.MustCompile(`-> .* ok, try (\d+), rtt ([0-9.]+) ms`)

// checkDemoFirstTries checks that the demo's 30 pings were all answered on
// their first try, each within firstContactBound.
func checkDemoFirstTries(t *testing.T, out string) {
	t.Helper()
	pings := demoPing.FindAllStringSubmatch(out, -1)
	if len(pings) != 30 {
		t.Errorf("demo printed %d answered pings with their round trip, want 30", len(pings))
	}
	for _, m := range pings {
		rtt, err := strconv.ParseFloat(m[2], 64)
		if m[1] != "1" || err != nil || time.Duration(rtt*float64(time.Millisecond)) > firstContactBound {
			t.Errorf("demo ping %q: want the first try, within %v", m[0], firstContactBound)
		}
	}
}

// demoResolutions matches a node's count of resolved L3 misses in the
// demo's metrics.
var demoResolutions = regexp.MustCompile(`overlayd_resolutions_total\{kind="l3miss"\} ([0-9]+)`)

// checkDemoResolutions checks that each of the demo's three nodes resolved
// a miss for each of its 4 remote containers, and at most one per asking
// container and peer (8): the pings run in parallel, so that two local
// containers may ask for the same peer within one resolution, the second
// miss read after the first was answered.
func checkDemoResolutions(t *testing.T, out string) {
	t.Helper()
	m := demoResolutions.FindAllStringSubmatch(out, -1)
	if len(m) != 3 {
		t.Fatalf("demo output has %d counts of resolved L3 misses, want one per node (3)", len(m))
	}
	for i, s := range m {
		if n, _ := strconv.Atoi(s[1]); n < 4 || n > 8 {
			t.Errorf("node%d resolved %d L3 misses, want 4 to 8 (each of its 4 remote containers, at most once per asking container)", i+1, n)
		}
	}
}
