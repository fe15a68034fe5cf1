//go:build !noetcd

package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/rtnl"
)

// alive reports whether the daemon has not exited (without consuming its
// exit status, which stop still needs).
func (d *daemon) alive() (bool, error) {
	select {
	case err := <-d.done:
		d.done <- err
		return false, err
	default:
		return true, nil
	}
}

// TestEtcdThreeNodes is the lab's three-node exercise on etcd in each mode,
// with a daemon per node and nothing pre-programmed: two containers per
// node attached after the daemons started; every container reaches every
// other one. In proactive and hybrid mode every node has the entries for
// every remote container before the first packet, and each pair's very
// first ping gets its reply with no ARP retry (round trip < 1 s, the
// container's ARP retransmit time) and no miss raised; in reactive mode the
// misses resolve them, a retry allowed.
func TestEtcdThreeNodes(t *testing.T) {
	for _, mode := range []string{"reactive", "proactive", "hybrid"} {
		t.Run(mode, func(t *testing.T) {
			lab := newEtcdLab(t, 3, "")
			vteps := []string{"192.0.2.2", "192.0.2.3", "192.0.2.4"}
			var ds []*daemon
			for i, n := range lab.nodes {
				d := n.startDaemon("--mode", mode, "--log-level", "debug")
				if !strings.Contains(d.String(), "mode="+mode) {
					t.Fatalf("node%d daemon does not run in mode %s:\n%s", i+1, mode, d)
				}
				ds = append(ds, d)
			}
			dumpLogs := func() {
				for i, d := range ds {
					t.Logf("node%d daemon log:\n%s", i+1, d)
				}
			}
			ctrs := []ctr{{0, "pink", "198.51.100.2"}, {0, "sky", "198.51.100.3"}, {1, "pink", "198.51.100.4"},
				{1, "sky", "198.51.100.5"}, {2, "pink", "198.51.100.10"}, {2, "sky", "198.51.100.11"}}
			for _, c := range ctrs {
				lab.nodes[c.node].ok("attach", c.name, "--ip", c.ip+"/24")
			}
			// missingEntries lists the remote containers a node has no
			// (complete) neighbour and FDB entry for.
			missingEntries := func() []string {
				var miss []string
				for i, n := range lab.nodes {
					for _, c := range ctrs {
						if c.node == i {
							continue
						}
						if ne, fdb := remoteEntries(n, c.ip, c.mac(), vteps[c.node]); !ne || !fdb {
							miss = append(miss, fmt.Sprintf("node%d: %v (neigh %v fdb %v)", i+1, c, ne, fdb))
						}
					}
				}
				return miss
			}
			proactive := mode != "reactive"
			if proactive {
				// Before any packet: every node has every remote entry.
				start := time.Now()
				if !waitFor(5*time.Second, func() bool { return len(missingEntries()) == 0 }) {
					dumpLogs()
					t.Fatalf("entries not programmed from the feed within 5s: %v", missingEntries())
				}
				t.Logf("%s: all %d remote entries on the 3 nodes programmed %v after the last attach, before any packet",
					mode, 2*len(ctrs), time.Since(start).Round(time.Millisecond))
			} else if m := missingEntries(); len(m) != 2*len(ctrs) {
				t.Errorf("reactive daemons programmed entries before any miss: only %v missing", m)
			}

			var pairs [][2]ctr
			for _, a := range ctrs {
				for _, b := range ctrs {
					if a != b {
						pairs = append(pairs, [2]ctr{a, b})
					}
				}
			}
			tries := 1
			if !proactive {
				tries = 3 // the first ARP request of a pair may miss: allow the retry
			}
			attempts := make([]int, len(pairs))
			rtts := make([]time.Duration, len(pairs))
			errs := make([]error, len(pairs))
			start := time.Now()
			var wg sync.WaitGroup
			for i, p := range pairs {
				wg.Go(func() {
					for a := 1; a <= tries; a++ {
						rtts[i], errs[i] = pingRTT(lab.nodes[p[0].node], p[0], p[1].ip, "2")
						if errs[i] == nil {
							attempts[i] = a
							return
						}
					}
				})
			}
			wg.Wait()
			hist := map[int]int{}
			var slowest time.Duration
			for i, a := range attempts {
				hist[a]++
				if a == 0 {
					t.Errorf("%v cannot reach %v (%d pings): %v", pairs[i][0], pairs[i][1], tries, errs[i])
					continue
				}
				if a == 1 {
					slowest = max(slowest, rtts[i])
				}
				// A first reply after an ARP retry takes the retransmit
				// time (1 s) at least.
				if proactive && rtts[i] >= time.Second {
					t.Errorf("%v -> %v: first reply after %v: the ARP request was not answered at once", pairs[i][0], pairs[i][1], rtts[i])
				}
			}
			t.Logf("%s: %d pairs in %v; pairs by attempts to first reply (0 = never): %v; slowest first-try round trip %v",
				mode, len(pairs), time.Since(start).Round(time.Millisecond), hist, slowest)
			if t.Failed() {
				dumpLogs()
				t.FailNow()
			}
			// Every node now has the entries for every remote container.
			if m := missingEntries(); len(m) > 0 {
				t.Errorf("entries missing after the full mesh: %v", m)
			}
			for i, d := range ds {
				log := d.String()
				resolved, fed := strings.Count(log, "msg=resolved"), strings.Count(log, `msg="programmed from feed"`)
				t.Logf("%s: node%d daemon: %d misses resolved, %d records programmed from the feed", mode, i+1, resolved, fed)
				switch {
				case proactive && resolved > 0:
					t.Errorf("node%d (%s) resolved %d misses although the feed programmed everything:\n%s", i+1, mode, resolved, log)
				case proactive && fed < 4:
					t.Errorf("node%d (%s) programmed %d records from the feed, want >= 4 (one per remote container)", i+1, mode, fed)
				case !proactive && fed > 0:
					t.Errorf("node%d (reactive) programmed %d records from the feed", i+1, fed)
				case !proactive && resolved < 4:
					t.Errorf("node%d (reactive) resolved %d misses, want >= 4 (one per remote IP)", i+1, resolved)
				}
			}
		})
	}
}

// outage is how long TestEtcdOutage keeps etcd down (the figure;
// longer than the daemons' lease TTL, 10 s by default, so their leases are
// lost and they must register again).
const outage = 30 * time.Second

// reachBound is how soon after etcd is back a container attached during or
// after the outage must answer a ping from another node.
const reachBound = 10 * time.Second

// TestEtcdOutage: etcd killed for 30 s while a container pings another on
// another node every 200 ms: the flow loses (almost) nothing, the daemons
// keep running, and after etcd is back (same data directory) the daemons
// have their records registered again under a lease, and a container
// attached during the outage (or, if that attach failed, right after it)
// and one attached after it answer pings from another node within
// reachBound.
func TestEtcdOutage(t *testing.T) {
	lab := newEtcdLab(t, 2, "")
	n1, n2 := lab.nodes[0], lab.nodes[1]
	d1 := n1.startDaemon("--mode", "hybrid")
	d2 := n2.startDaemon("--mode", "hybrid")
	down := false
	t.Cleanup(func() { // runs before the daemons stop and the nodes reset
		if down {
			lab.srv.Restart()
		}
	})
	pink, sky := ctr{0, "pink", "198.51.100.2"}, ctr{1, "sky", "198.51.100.3"}
	n1.ok("attach", pink.name, "--ip", pink.ip+"/24")
	n2.ok("attach", sky.name, "--ip", sky.ip+"/24")
	own := []string{"arp/" + pink.ip, "fdb/" + pink.mac(), "nodes/192.0.2.2", "arp/" + sky.ip, "fdb/" + sky.mac(), "nodes/192.0.2.3"}
	leased := func(keys []string) []string { // keys absent or without a lease
		k := lab.keys(t)
		var bad []string
		for _, key := range keys {
			if kv, ok := k[key]; !ok || kv.Lease == 0 {
				bad = append(bad, key)
			}
		}
		return bad
	}
	if !waitFor(5*time.Second, func() bool { return len(leased(own)) == 0 }) {
		t.Fatalf("records not under the daemons' leases: %v\n%+v", leased(own), lab.keys(t))
	}
	before := lab.keys(t)
	if _, err := pingRTT(n1, pink, sky.ip, "2"); err != nil {
		t.Fatalf("ping %v -> %v before the outage: %v\n%s\n%s", pink, sky, err, d1, d2)
	}

	// The flow, stopped with SIGINT for ping's summary.
	flow := startPingFlow(t, filepath.Join(n1.dir, pink.name), "-n", "-i", "0.2", "-W", "1", sky.ip)
	time.Sleep(2 * time.Second)

	lab.srv.Stop()
	down = true
	stopped := time.Now()
	t.Logf("etcd stopped (SIGKILL) for %v", outage)

	// A container attached during the outage (the attach may fail: the
	// registry is unreachable).
	lime := ctr{0, "lime", "198.51.100.6"}
	time.Sleep(3 * time.Second)
	during := make(chan result, 1)
	go func() { during <- n1.run("attach", lime.name, "--ip", lime.ip+"/24") }()

	for time.Since(stopped) < outage {
		for i, d := range []*daemon{d1, d2} {
			if ok, err := d.alive(); !ok {
				t.Fatalf("node%d daemon exited %v after etcd stopped: %v\n%s", i+1, time.Since(stopped).Round(time.Millisecond), err, d)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	lab.srv.Restart()
	down = false
	back := time.Now()
	t.Logf("etcd back after %v (same data directory)", back.Sub(stopped).Round(time.Millisecond))
	// When the daemons' own keys are back under new leases, from now.
	rereg := make(chan time.Duration, 1)
	go func() {
		for time.Since(back) < 2*reachBound {
			if k, err := lab.srv.Keys(lab.prefix); err == nil {
				n := 0
				for _, key := range own {
					if kv, ok := k[lab.prefix+key]; ok && kv.Lease != 0 && kv.Lease != before[key].Lease {
						n++
					}
				}
				if n == len(own) {
					rereg <- time.Since(back)
					return
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		rereg <- 0
	}()

	var r result
	select {
	case r = <-during:
	case <-time.After(20 * time.Second):
		t.Fatal("the attach started during the outage did not return 20s after etcd came back")
	}
	attachedDuring := r.code == 0
	t.Logf("attach of %v during the outage: exit %d %s", lime, r.code, strings.TrimSpace(r.stderr))
	if !attachedDuring {
		if !strings.Contains(r.stderr, "etcd") && !strings.Contains(r.stderr, "registry") {
			t.Errorf("failed attach during the outage: stderr %q does not say the registry is unreachable", r.stderr)
		}
		if names, _ := rtnl.ListNetNS(n1.dir); contains(names, lime.name) {
			t.Errorf("the failed attach left netns %s behind: %q", lime.name, names)
		}
		n1.ok("attach", lime.name, "--ip", lime.ip+"/24")
		t.Logf("%v attached %v after etcd came back", lime, time.Since(back).Round(time.Millisecond))
	}
	teal := ctr{0, "teal", "198.51.100.7"}
	n1.ok("attach", teal.name, "--ip", teal.ip+"/24")

	// Both answer sky on node 2 within the bound.
	took := make([]time.Duration, 2)
	var wg sync.WaitGroup
	for i, c := range []ctr{lime, teal} {
		wg.Go(func() {
			for time.Since(back) < reachBound {
				if _, err := pingRTT(n2, sky, c.ip, "1"); err == nil {
					took[i] = time.Since(back)
					return
				}
			}
		})
	}
	wg.Wait()
	for i, c := range []ctr{lime, teal} {
		if took[i] == 0 {
			t.Errorf("%v not reachable from %v within %v after etcd came back", c, sky, reachBound)
		}
	}
	t.Logf("reachable from %v after etcd came back: %v (attached during the outage: %v) after %v, %v (attached after) after %v; bound %v",
		sky, lime, attachedDuring, took[0].Round(time.Millisecond), teal, took[1].Round(time.Millisecond), reachBound)

	// The daemons lost their leases (the outage outlasts the TTL) and
	// registered their records again under new ones.
	all := append(own, "arp/"+lime.ip, "fdb/"+lime.mac(), "arp/"+teal.ip, "fdb/"+teal.mac())
	renewed := func() []string { // own keys still under the lease from before
		k := lab.keys(t)
		var old []string
		for _, key := range own {
			if k[key].Lease == before[key].Lease {
				old = append(old, key)
			}
		}
		return old
	}
	if !waitFor(reachBound, func() bool { return len(leased(all)) == 0 && len(renewed()) == 0 }) {
		t.Errorf("%v after etcd came back, keys missing or without a lease: %v; still under the old lease: %v\n%+v",
			reachBound, leased(all), renewed(), lab.keys(t))
	}
	if d := <-rereg; d == 0 || d > reachBound {
		t.Errorf("the daemons' own keys were under new leases %v after etcd came back (0: not within %v); bound %v", d, 2*reachBound, reachBound)
	} else {
		t.Logf("the daemons' %d own keys were registered again under new leases %v after etcd came back", len(own), d.Round(time.Millisecond))
	}
	after := lab.keys(t)
	for _, k := range own {
		t.Logf("%s: lease %x before the outage, %x after", k, before[k].Lease, after[k].Lease)
	}
	for i, d := range []*daemon{d1, d2} {
		log := d.String()
		if !strings.Contains(log, "etcd lease lost") || !strings.Contains(log, "etcd lease re-established") {
			t.Errorf("node%d daemon did not report losing and re-establishing its lease over a %v outage:\n%s", i+1, outage, log)
		}
		if ok, err := d.alive(); !ok {
			t.Errorf("node%d daemon exited: %v\n%s", i+1, err, log)
		}
	}

	// The flow across the outage.
	flow.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-flow.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("ping did not stop on SIGINT:\n%s", flow.out.String())
	}
	m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindStringSubmatch(flow.out.String())
	if m == nil {
		t.Fatalf("no ping summary:\n%s", flow.out.String())
	}
	sent, got := atoi(m[1]), atoi(m[2])
	if sent < int(outage/(200*time.Millisecond)) {
		t.Errorf("flow sent %d echoes, fewer than the outage's %v at 5/s", sent, outage)
	}
	loss := 100 * float64(sent-got) / float64(max(sent, 1))
	t.Logf("flow %v -> %v across the outage: %d sent, %d received, %.1f%% loss", pink, sky, sent, got, loss)
	if float64(got) < 0.95*float64(sent) {
		t.Errorf("flow across the outage lost %.1f%% (%d of %d); want < 5%%:\n%s", loss, sent-got, sent, flow.out.String())
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
