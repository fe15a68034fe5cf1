//go:build !noetcd

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/etcdtest"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/etcdreg"
	"github.com/overlaynet/overlaynet/rtnl"
)

// etcdLab is n simulated nodes 192.0.2.2, .3, ... on an underlay switch
// (a bridge in a netns of its own, which also runs etcd at 192.0.2.1), each
// with `overlayd create` done, all using the same etcd store.
type etcdLab struct {
	srv    *etcdtest.Server
	nodes  []*simNode
	prefix string // etcd key prefix of the overlay: /ovt/vni/42/
	ctl    string // the netns of etcd and the underlay switch
}

func newEtcdLab(t *testing.T, n int, query string) *etcdLab {
	t.Helper()
	return newEtcdLabWith(t, n, labOptions{query: query})
}

// labOptions are the settings of an etcd lab.
type labOptions struct {
	query    string   // the store URL's query
	create   []string // more flags for every node's create
	etcdArgs []string // more etcd flags
}

// newEtcdLabWith is newEtcdLab for benchmarks too, with options.
func newEtcdLabWith(t testing.TB, n int, o labOptions) *etcdLab {
	t.Helper()
	nstest.RequireRoot(t)
	etcdtest.Require(t)
	// Created first, so that its cleanup (etcd killed, netns deleted) runs
	// after the nodes' `overlayd reset`, which talks to etcd.
	_, ctl := nstest.NetNS(t, "ec")
	// A fixed MAC: a bridge otherwise takes its lowest port MAC, which changes
	// when a node goes and leaves the others with a stale ARP entry for etcd.
	nstest.Run(t, ctl, "ip", "link", "add", "ul", "address", "02:00:c0:00:02:01", "type", "bridge")
	nstest.Run(t, ctl, "ip", "addr", "add", "192.0.2.1/24", "dev", "ul")
	nstest.Run(t, ctl, "ip", "link", "set", "ul", "up")
	srv := etcdtest.Start(t, etcdtest.Options{NetNS: filepath.Join(rtnl.DefaultNetNSDir, ctl), Host: "192.0.2.1", Args: o.etcdArgs})
	lab := &etcdLab{srv: srv, prefix: "/ovt/vni/42/", ctl: ctl}
	store := srv.URL("ovt", o.query)
	for i := range n {
		nd := newSimNode(t, fmt.Sprintf("e%d", i+1), store)
		port := fmt.Sprintf("p%d", i+1)
		nd.ip("link", "add", "u0", "type", "veth", "peer", "name", port, "netns", ctl)
		nstest.Run(t, ctl, "ip", "link", "set", port, "master", "ul", "up")
		addr := fmt.Sprintf("192.0.2.%d", i+2)
		nd.ip("addr", "add", addr+"/24", "dev", "u0")
		nd.ip("link", "set", "u0", "up")
		nd.ok(append([]string{"create", "--local", addr}, o.create...)...)
		lab.nodes = append(lab.nodes, nd)
	}
	return lab
}

// keys returns the overlay's etcd keys, relative to the prefix.
func (l *etcdLab) keys(t testing.TB) map[string]etcdtest.KV {
	t.Helper()
	all, err := l.srv.Keys(l.prefix)
	if err != nil {
		t.Fatalf("read etcd: %v\n%s", err, l.srv.LogTail())
	}
	out := make(map[string]etcdtest.KV, len(all))
	for k, v := range all {
		out[strings.TrimPrefix(k, l.prefix)] = v
	}
	return out
}

// missLines returns the daemon's debug lines of misses for ip or mac.
func missLines(d *daemon, ip, mac string) []string {
	var found []string
	for line := range strings.SplitSeq(d.String(), "\n") {
		if strings.Contains(line, "msg=miss ") && (strings.Contains(line, "ip="+ip+" ") || strings.Contains(line, "mac="+mac+" ")) {
			found = append(found, line)
		}
	}
	return found
}

// TestEtcdFirstPing: in proactive and hybrid mode on etcd, two containers
// attached on different nodes after the daemons started get their
// neighbour and FDB entries on the other node from the change feed before
// any packet is sent; the very first ping gets its reply, and no miss is
// raised for the pair.
func TestEtcdFirstPing(t *testing.T) {
	for _, mode := range []string{"proactive", "hybrid"} {
		t.Run(mode, func(t *testing.T) {
			lab := newEtcdLab(t, 2, "")
			n1, n2 := lab.nodes[0], lab.nodes[1]
			d1 := n1.startDaemon("--mode", mode, "--log-level", "debug")
			d2 := n2.startDaemon("--mode", mode, "--log-level", "debug")
			for i, d := range []*daemon{d1, d2} {
				if !strings.Contains(d.String(), "mode="+mode) {
					t.Errorf("node %d daemon does not run in mode %s:\n%s", i+1, mode, d)
				}
			}
			n1.ok("attach", "pink", "--ip", "198.51.100.2/24")
			n2.ok("attach", "sky", "--ip", "198.51.100.3/24")

			// Before any packet: the entries are there, programmed from the feed.
			ok := waitFor(5*time.Second, func() bool {
				a, b := remoteEntries(n1, "198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3")
				c, d := remoteEntries(n2, "198.51.100.2", "02:42:c6:33:64:02", "192.0.2.2")
				return a && b && c && d
			})
			if !ok {
				t.Fatalf("entries not programmed from the feed within 5s\nnode 1:\n%s\nnode 2:\n%s\nnode 1 daemon:\n%s\nnode 2 daemon:\n%s",
					n1.mustIn("overns", "ip", "neigh"), n2.mustIn("overns", "ip", "neigh"), d1, d2)
			}
			if !waitFor(2*time.Second, func() bool { return strings.Contains(d1.String(), "msg=\"programmed from feed\"") }) { // the line follows the entries
				t.Errorf("node 1 daemon logged no feed programming:\n%s", d1)
			}
			// The first ping, with a one-second wait, gets its reply.
			if out, err := pingOnce(n1, "pink", "198.51.100.3"); err != nil {
				t.Fatalf("first ping pink -> sky failed: %v\n%s\nnode 1 daemon:\n%s\nnode 2 daemon:\n%s", err, out, d1, d2)
			}
			if out, err := pingOnce(n2, "sky", "198.51.100.2"); err != nil {
				t.Fatalf("first ping sky -> pink failed: %v\n%s", err, out)
			}
			// No miss was raised for the pair on either node.
			if l := missLines(d1, "198.51.100.3", "02:42:c6:33:64:03"); len(l) > 0 {
				t.Errorf("node 1 saw misses for sky:\n%s", strings.Join(l, "\n"))
			}
			if l := missLines(d2, "198.51.100.2", "02:42:c6:33:64:02"); len(l) > 0 {
				t.Errorf("node 2 saw misses for pink:\n%s", strings.Join(l, "\n"))
			}
			if strings.Contains(d1.String(), "msg=resolved") || strings.Contains(d2.String(), "msg=resolved") {
				t.Errorf("a daemon resolved a miss although the feed programmed everything:\n%s\n%s", d1, d2)
			}
			// The daemons moved the attached records onto their leases
			// (within adoptInterval of the attach).
			leased := []string{"arp/198.51.100.2", "arp/198.51.100.3", "fdb/02:42:c6:33:64:02", "fdb/02:42:c6:33:64:03"}
			waitFor(5*time.Second, func() bool {
				keys := lab.keys(t)
				for _, k := range leased {
					if keys[k].Lease == 0 {
						return false
					}
				}
				return true
			})
			keys := lab.keys(t)
			for _, k := range []string{"arp/198.51.100.2", "arp/198.51.100.3", "fdb/02:42:c6:33:64:02", "fdb/02:42:c6:33:64:03"} {
				if kv, ok := keys[k]; !ok || kv.Lease == 0 {
					t.Errorf("etcd key %s: %+v present=%v; want it under a daemon's lease", k, kv, ok)
				}
			}
		})
	}
}

// TestEtcdNodeDeath: a daemon killed with SIGKILL stops renewing its lease;
// one TTL later its node's records are gone from etcd and the other node
// has removed its entries, while its own records stay.
// leaseExpiryMargin is how much later than its TTL a dead node's records
// may be gone from etcd and its entries from the other nodes: etcd's lessor
// looks for expired leases every 500 ms, then the deletes travel through the
// watch to the other daemons, which remove the entries in one batch.
const leaseExpiryMargin = 1500 * time.Millisecond

func TestEtcdNodeDeath(t *testing.T) {
	const ttl = 3 * time.Second
	lab := newEtcdLab(t, 2, "ttl="+ttl.String())
	n1, n2 := lab.nodes[0], lab.nodes[1]
	// Attached before the daemons: written without a lease, moved onto the
	// daemon's lease when it starts.
	n1.ok("attach", "pink", "--ip", "198.51.100.2/24")
	n2.ok("attach", "sky", "--ip", "198.51.100.3/24")
	if kv := lab.keys(t)["arp/198.51.100.3"]; kv.Lease != 0 {
		t.Fatalf("attach wrote arp/198.51.100.3 under lease %x; want none (one-shot command)", kv.Lease)
	}
	d1 := n1.startDaemon("--log-level", "debug")
	d2 := n2.startDaemon()
	if !waitFor(5*time.Second, func() bool { return lab.keys(t)["arp/198.51.100.3"].Lease != 0 }) {
		t.Fatalf("node 2 daemon did not move sky's record onto its lease: %+v\n%s", lab.keys(t), d2)
	}
	if !waitFor(5*time.Second, func() bool {
		a, b := remoteEntries(n1, "198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3")
		return a && b
	}) {
		t.Fatalf("node 1 has no entries for sky:\n%s", d1)
	}
	if out, err := pingOnce(n1, "pink", "198.51.100.3"); err != nil {
		t.Fatalf("ping pink -> sky: %v\n%s", err, out)
	}

	d2.cmd.Process.Signal(syscall.SIGKILL)
	<-d2.done
	killed := time.Now()
	deadline := killed.Add(ttl + leaseExpiryMargin) // "its records expire one TTL later"
	gone := waitFor(time.Until(deadline), func() bool {
		k := lab.keys(t)
		_, arp := k["arp/198.51.100.3"]
		_, fdb := k["fdb/02:42:c6:33:64:03"]
		_, node := k["nodes/192.0.2.3"]
		return !arp && !fdb && !node
	})
	if !gone {
		t.Fatalf("node 2's records still in etcd %v after its daemon died (TTL %v + margin %v): %+v",
			time.Since(killed).Round(100*time.Millisecond), ttl, leaseExpiryMargin, lab.keys(t))
	}
	t.Logf("node 2's records expired %v after SIGKILL (TTL %v)", time.Since(killed).Round(100*time.Millisecond), ttl)
	// "... and every other daemon removes its entries": within the same bound.
	if !waitFor(time.Until(deadline), func() bool {
		a, b := remoteEntries(n1, "198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3")
		return !a && !b
	}) {
		t.Fatalf("node 1 kept its entries for dead node 2's sky:\n%s\n%s\n%s", n1.mustIn("overns", "ip", "neigh"),
			n1.mustIn("overns", "bridge", "fdb", "show", "dev", "vxlan1"), d1)
	}
	if !strings.Contains(d1.String(), "msg=\"removed from feed\"") {
		t.Errorf("node 1 daemon logged no removal:\n%s", d1)
	}
	// Node 1 is alive: its records stay.
	k := lab.keys(t)
	if _, ok := k["arp/198.51.100.2"]; !ok {
		t.Errorf("live node 1's record vanished: %+v", k)
	}
	if _, ok := k["nodes/192.0.2.2"]; !ok {
		t.Errorf("live node 1's node key vanished: %+v", k)
	}
}

// TestEtcdConcurrentAttach: the same IP attached on two nodes at once, with
// different MACs: exactly one attach wins, the other fails with a registry
// conflict and leaves nothing behind.
func TestEtcdConcurrentAttach(t *testing.T) {
	lab := newEtcdLab(t, 2, "")
	n1, n2 := lab.nodes[0], lab.nodes[1]
	for round, ip := range []string{"198.51.100.9", "198.51.100.10", "198.51.100.11"} {
		var wg sync.WaitGroup
		res := make([]result, 2)
		start := make(chan struct{})
		for i, n := range []*simNode{n1, n2} {
			wg.Go(func() {
				<-start
				res[i] = n.run("attach", fmt.Sprintf("c%d", round), "--ip", ip+"/24", "--mac", fmt.Sprintf("02:00:00:00:%02x:%02x", round, i+1))
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, r := range res {
			if r.code == 0 {
				if winner >= 0 {
					t.Fatalf("round %d: both attaches of %s succeeded", round, ip)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no attach of %s succeeded: %+v", round, ip, res)
		}
		loser := 1 - winner
		if r := res[loser]; r.code != 1 || !strings.Contains(r.stderr, "registry: conflict") || !strings.Contains(r.stderr, ip) {
			t.Errorf("round %d: losing attach: exit %d, stderr %q; want exit 1 and a registry conflict naming %s", round, r.code, r.stderr, ip)
		}
		t.Logf("round %d: node %d won; node %d: %s", round, winner+1, loser+1, strings.TrimSpace(res[loser].stderr))
		// The loser rolled back: no container netns, no veth, no state.
		ln := []*simNode{n1, n2}[loser]
		name := fmt.Sprintf("c%d", round)
		if names, _ := rtnl.ListNetNS(ln.dir); contains(names, name) {
			t.Errorf("round %d: losing node kept netns %s: %q", round, name, names)
		}
		if links := ln.mustIn("overns", "ip", "-o", "link"); strings.Contains(links, overlay.HostIfName(name)+"@") {
			t.Errorf("round %d: losing node kept a veth:\n%s", round, links)
		}
		// etcd holds the winner's record only.
		k := lab.keys(t)
		wantMAC := fmt.Sprintf("02:00:00:00:%02x:%02x", round, winner+1)
		if got := k["arp/"+ip].Value; got != wantMAC {
			t.Errorf("round %d: arp/%s = %q, want the winner's %s", round, ip, got, wantMAC)
		}
		if got := k["fdb/"+wantMAC].Value; got != fmt.Sprintf("192.0.2.%d", winner+2) {
			t.Errorf("round %d: fdb/%s = %q", round, wantMAC, got)
		}
		if _, ok := k[fmt.Sprintf("fdb/02:00:00:00:%02x:%02x", round, loser+1)]; ok {
			t.Errorf("round %d: the loser's MAC is registered: %+v", round, k)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// barrierRegistry holds every Register until all the racers reached it, so
// that both attaches pass their pre-checks and meet in etcd's transaction.
type barrierRegistry struct {
	registry.Registry
	once    sync.Once
	arrived *sync.WaitGroup
	all     <-chan struct{}
}

func (b *barrierRegistry) Register(ctx context.Context, rec registry.Record) error {
	b.once.Do(b.arrived.Done)
	select {
	case <-b.all:
	case <-time.After(5 * time.Second):
	}
	return b.Registry.Register(ctx, rec)
}

// TestEtcdConcurrentAttachRace: overlay.Node.Attach of the same IP (with
// different MACs) on two nodes, both past their registry pre-checks before
// either registers: etcd's transaction lets exactly one win; the other
// fails with registry.ErrConflict and rolls back everything it made.
func TestEtcdConcurrentAttachRace(t *testing.T) {
	lab := newEtcdLab(t, 2, "")
	// A registry the test process reaches (on its own loopback); the nodes
	// only need it through the library calls below.
	srv := etcdtest.Start(t, etcdtest.Options{})
	var arrived sync.WaitGroup
	arrived.Add(2)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()

	ip := netip.MustParsePrefix("198.51.100.20/24")
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, nd := range lab.nodes {
		reg, err := etcdreg.Open(t.Context(), srv.URL("race", ""), etcdreg.Options{NoLease: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		node := overlay.NewNode(overlay.NodeOptions{NetNSDir: nd.dir, StateDir: nd.state,
			Registry: &barrierRegistry{Registry: reg, arrived: &arrived, all: all}})
		ns, err := rtnl.OpenNamedNetNS("", nd.name)
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		mac := ethaddr.MAC{0x02, 0, 0, 0, 0x20, byte(i + 1)}
		wg.Go(func() {
			ns.Do(func() error {
				_, errs[i] = node.Attach(t.Context(), overlay.AttachRequest{Name: "racer", IP: ip, MAC: mac})
				return nil
			})
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatal("both attaches succeeded")
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("no attach succeeded: %v", errs)
	}
	loser := 1 - winner
	lerr := errs[loser]
	if !errors.Is(lerr, registry.ErrConflict) || !strings.Contains(lerr.Error(), "overlay: register ") || !strings.Contains(lerr.Error(), "198.51.100.20") {
		t.Errorf("losing attach: %v; want a registry conflict from the register transaction naming the IP", lerr)
	}
	t.Logf("node %d won; node %d: %v", winner+1, loser+1, lerr)
	ln := lab.nodes[loser]
	if names, _ := rtnl.ListNetNS(ln.dir); contains(names, "racer") {
		t.Errorf("losing node kept netns racer: %q", names)
	}
	if links := ln.mustIn("overns", "ip", "-o", "link"); strings.Contains(links, overlay.HostIfName("racer")+"@") {
		t.Errorf("losing node kept its veth:\n%s", links)
	}
	if eps, err := overlay.NewNode(overlay.NodeOptions{NetNSDir: ln.dir, StateDir: ln.state}).Endpoints(); err != nil || len(eps) != 0 {
		t.Errorf("losing node's state: %v %v; want no endpoint", eps, err)
	}
	keys, err := srv.Keys("/race/vni/42/")
	if err != nil {
		t.Fatal(err)
	}
	wantMAC := fmt.Sprintf("02:00:00:00:20:%02x", winner+1)
	if keys["/race/vni/42/arp/198.51.100.20"].Value != wantMAC || keys["/race/vni/42/fdb/"+wantMAC].Value != fmt.Sprintf("192.0.2.%d", winner+2) {
		t.Errorf("etcd holds %+v; want the winner's record only", keys)
	}
	if len(keys) != 2 {
		t.Errorf("etcd holds %d keys, want the winner's 2: %+v", len(keys), keys)
	}
}

// TestRunModeUsage: bad --mode and --proactive-max values are usage errors,
// as are proactive and hybrid on a store without a change feed.
func TestRunModeUsage(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--mode", "eager"},
		{"run", "--mode", "auto"},
		{"run", "--proactive-max", "-1"},
	} {
		var stdout, stderr bytes.Buffer
		if code := runMain(t.Context(), args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), args[1]) {
			t.Errorf("%q: exit %d, stderr %q; want 2 naming %s", args, code, stderr.String(), args[1])
		}
	}
}

// TestEtcdOverlayVNI: on an etcd store whose URL names no vni, every
// command of a node uses the keys of its own overlay: create those of the
// VNI it is asked for, attach and the daemon those of the overlay the state
// directory records; nothing is written under the default VNI.
func TestEtcdOverlayVNI(t *testing.T) {
	lab := newEtcdLabWith(t, 1, labOptions{create: []string{"--vni", "77"}})
	lab.prefix = "/ovt/vni/77/"
	n := lab.nodes[0]
	n.ok("attach", "pink", "--ip", "198.51.100.2/24")
	d := n.startDaemon()
	if !waitFor(5*time.Second, func() bool { return lab.keys(t)["arp/198.51.100.2"].Lease != 0 }) {
		t.Fatalf("the daemon did not move pink's record onto its lease under vni/77: %+v\n%s", lab.keys(t), d)
	}
	k := lab.keys(t)
	for _, key := range []string{"config", "arp/198.51.100.2", "fdb/02:42:c6:33:64:02", "nodes/192.0.2.2"} {
		if _, ok := k[key]; !ok {
			t.Errorf("no %s under /ovt/vni/77/: %+v", key, k)
		}
	}
	if def, err := lab.srv.Keys("/ovt/vni/42/"); err != nil || len(def) != 0 {
		t.Errorf("keys under the default VNI: %+v %v", def, err)
	}
}
