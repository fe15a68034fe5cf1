//go:build !noetcd

package main

import (
	"bytes"
	"crypto/rand"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/internal/spoof"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/wireguard"
	"github.com/overlaynet/overlaynet/rtnl"
)

// TestEncryptThreeNodes: three nodes with create --encrypt, on the
// directory store and on etcd, a daemon each: every container reaches
// every other, and a capture on the underlay switch holds WireGuard only
// between the nodes (no VXLAN, no container address or MAC anywhere);
// status shows the userspace provider and each peer's handshake and bytes.
func TestEncryptThreeNodes(t *testing.T) {
	for _, store := range []string{"dir", "etcd"} {
		t.Run(store, func(t *testing.T) {
			l := newEncLab(t, 3, store)
			for i := range l.nodes {
				l.start(i)
			}
			c := l.startCapture()
			l.reachAll()
			n := l.checkCapture(c)
			t.Logf("%s: every pair reached; %d WireGuard packets crossed the underlay, nothing else between nodes", store, n)
			for i := range l.nodes {
				st := l.status(i)
				ts := st.Tunnel
				if ts.Provider != wireguard.ProviderUserspace || !ts.Running || len(ts.Peers) != 2 || len(st.Problems) > 0 {
					t.Errorf("node %d tunnel: provider %v running %v peers %d problems %q", i+1, ts.Provider, ts.Running, len(ts.Peers), st.Problems)
				}
				for _, p := range ts.Peers {
					if p.LastHandshake.IsZero() || p.RxBytes == 0 || p.TxBytes == 0 {
						t.Errorf("node %d peer %s: handshake %v rx %d tx %d", i+1, p.PublicKey, p.LastHandshake, p.RxBytes, p.TxBytes)
					}
				}
				if want := l.nodes[i].ok("status"); !strings.Contains(want, "userspace provider") || !strings.Contains(want, "LAST HANDSHAKE") {
					t.Errorf("status does not show the provider and handshakes:\n%s", want)
				}
			}
		})
	}
}

// TestEncryptDaemonKill: kill -9 of a node's `overlayd run` while a
// container pings through it every 100 ms: no echo lost beyond one; the
// restarted daemon finds the device process, its key and its peers as they
// were, and changes nothing.
func TestEncryptDaemonKill(t *testing.T) {
	l := newEncLab(t, 2, "dir")
	l.start(0)
	d := l.start(1)
	l.reachAll()
	pid := l.devicePid(1)
	peersBefore := l.peerKeys(1)
	const count = 40
	flow := startPingFlow(t, filepath.Join(l.nodes[0].dir, l.ctrName(0)), "-n", "-i", "0.1", "-c", strconv.Itoa(count), "-W", "1", l.ctrIP(1))
	time.Sleep(time.Second)
	d.cmd.Process.Kill()
	<-d.done
	time.Sleep(time.Second)
	d2 := l.nodes[1].startDaemon("--reconcile", "2s")
	l.ds[1] = d2
	err := <-flow.done
	got := received(flow.out.String())
	if err != nil && got == 0 || got < count-1 {
		t.Fatalf("%d of %d echoes across kill -9 and restart of the daemon (%v):\n%s", got, count, err, flow.out.String())
	}
	t.Logf("kill -9 of overlayd run and restart: %d of %d echoes (every 100 ms)", got, count)
	if now := l.devicePid(1); now != pid {
		t.Errorf("device process %d replaced by %d across the daemon's restart", pid, now)
	}
	if after := l.peerKeys(1); len(after) != len(peersBefore) {
		t.Errorf("peers %v before, %v after", peersBefore, after)
	}
	for _, rebuilt := range []string{"WireGuard peers updated", "WireGuard device made again", "device process started"} {
		if strings.Contains(d2.String(), rebuilt) {
			t.Errorf("the restarted daemon rebuilt something (%q):\n%s", rebuilt, d2)
		}
	}
}

// received is the count of echo replies a ping reports.
func received(out string) int {
	m := regexp.MustCompile(`(\d+) received`).FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestEncryptDeviceKill: kill -9 of a node's WireGuard device process.
// With its daemon running, the daemon starts it again at once and gives it
// its peers: traffic resumes within a few pings. With no daemon, the next
// create (the same flags) starts it again.
func TestEncryptDeviceKill(t *testing.T) {
	l := newEncLab(t, 2, "dir")
	l.start(0)
	l.start(1)
	l.reachAll()
	pid := l.devicePid(1)
	const count = 50
	flow := startPingFlow(t, filepath.Join(l.nodes[0].dir, l.ctrName(0)), "-n", "-i", "0.1", "-c", strconv.Itoa(count), "-W", "1", l.ctrIP(1))
	time.Sleep(time.Second)
	syscall.Kill(pid, syscall.SIGKILL)
	killed := time.Now()
	var repid int
	if !waitFor(5*time.Second, func() bool {
		p, running, _ := wireguard.ProcessRunning(filepath.Join(l.nodes[1].state, "wireguard"))
		repid = p
		return running && p != pid
	}) {
		t.Fatalf("no new device process 5 s after kill -9 of %d:\n%s", pid, l.ds[1])
	}
	restarted := time.Since(killed)
	<-flow.done
	got := received(flow.out.String())
	if got < count-20 {
		t.Fatalf("%d of %d echoes across kill -9 of the device process:\n%s", got, count, flow.out.String())
	}
	t.Logf("device process %d killed, %d running %v later; %d of %d echoes every 100 ms", pid, repid, restarted.Round(time.Millisecond), got, count)
	if err := l.ping(0, 1, "2"); err != nil {
		t.Fatalf("no traffic after the device came back: %v", err)
	}

	// No daemon: the next create takes it back.
	l.ds[1].stop(t)
	syscall.Kill(repid, syscall.SIGKILL)
	if !waitFor(5*time.Second, func() bool {
		_, running, _ := wireguard.ProcessRunning(filepath.Join(l.nodes[1].state, "wireguard"))
		return !running
	}) {
		t.Fatal("the device process outlived kill -9")
	}
	l.nodes[1].ok(append([]string{"create", "--local", l.underlay(1), "--no-egress"}, encryptFlags...)...)
	l.start(1)
	if err := l.ping(0, 1, "3"); err != nil {
		t.Fatalf("no traffic after create made the device again: %v", err)
	}
}

// TestEncryptLeaveJoin: a node that leaves is removed as a peer within the
// lease TTL + 2 s (etcd: its daemon killed, its lease of 3 s expiring;
// directory store: reset, 2 s), and a node that joins has a handshake with
// every node within 1 s of its first attach, and is reachable within 1 s
// of it on both stores (etcd: hybrid mode programs the entries from the
// feed; the directory store: the miss's requester is answered as soon as
// its entry is in).
func TestEncryptLeaveJoin(t *testing.T) {
	for _, store := range []string{"dir", "etcd"} {
		t.Run(store, func(t *testing.T) {
			l := newEncLab(t, 3, store)
			for i := range l.nodes {
				l.start(i)
			}
			l.reachAll()
			key := l.status(2).Tunnel.PublicKey.String()
			bound := 2 * time.Second
			left := time.Now()
			if store == "etcd" {
				l.ds[2].cmd.Process.Kill()
				<-l.ds[2].done
				bound += 3 * time.Second
			} else {
				l.nodes[2].ok("reset")
			}
			for _, i := range []int{0, 1} {
				if !waitFor(bound+time.Second, func() bool { return !l.peerKeys(i)[key] }) {
					t.Fatalf("node %d still has the departed node as a peer %v after it left", i+1, time.Since(left))
				}
				if took := time.Since(left); took > bound {
					t.Errorf("node %d removed the departed peer %v after it left; bound %v", i+1, took, bound)
				} else {
					t.Logf("node %d removed the departed peer %v after it left (bound %v)", i+1, took.Round(time.Millisecond), bound)
				}
			}
			l.join(3, time.Second)
		})
	}
}

// join adds node i with its daemon, attaches its first container, and
// checks that every other node has it as a peer with a handshake made
// within 1 s of the attach, and that container 0 reaches it within bound
// of the attach.
func (l *encLab) join(i int, bound time.Duration) {
	t := l.t
	nd := l.createNode(i)
	l.start(i)
	key := l.status(i).Tunnel.PublicKey
	nd.ok("attach", l.ctrName(i), "--ip", l.ctrIP(i)+"/24")
	attached := time.Now()
	for l.ping(0, i, "0.2") != nil {
		if time.Since(attached) > 5*time.Second {
			t.Fatalf("the joining node is not reachable 5 s after its first attach")
		}
	}
	took := time.Since(attached)
	for j := range i {
		if l.ds[j] == nil || l.ds[j].cmd.ProcessState != nil {
			continue // a node that left
		}
		var hs time.Time
		for _, p := range l.status(j).Tunnel.Peers {
			if p.PublicKey == key {
				hs = p.LastHandshake
			}
		}
		if hs.IsZero() || hs.Sub(attached) > time.Second {
			t.Errorf("node %d: handshake with the joining node %v after its first attach; bound 1 s", j+1, hs.Sub(attached))
		}
	}
	if took > bound {
		t.Errorf("the joining node was reached %v after its first attach; bound %v", took, bound)
	}
	t.Logf("the joining node was reached %v after its first attach (bound %v); every node had made a handshake with it within 1 s", took.Round(time.Millisecond), bound)
}

// TestEncryptStranger: a host on the underlay that is no node sends VXLAN
// to a node's VXLAN port (a frame for a container, from its own address and
// from a member's) and WireGuard handshakes with keys nobody knows (from
// its own address and from a member's): nothing reaches the container,
// and every packet is counted — the guard's drops (VXLAN from outside the
// tunnel, WireGuard from no peer) and the device's rejected handshakes.
func TestEncryptStranger(t *testing.T) {
	l := newEncLab(t, 2, "dir")
	l.start(0)
	l.start(1)
	l.reachAll()
	_, stranger := nstest.NetNS(t, "wx")
	nstest.Run(t, l.ctl, "ip", "link", "add", "px", "type", "veth", "peer", "name", "u0", "netns", stranger)
	nstest.Run(t, l.ctl, "ip", "link", "set", "px", "master", "ul", "up")
	nstest.Run(t, stranger, "ip", "addr", "add", "192.0.2.99/24", "dev", "u0")
	nstest.Run(t, stranger, "ip", "link", "set", "u0", "up")
	sPath := filepath.Join(rtnl.DefaultNetNSDir, stranger)
	rcv, err := spoof.ListenUDP(filepath.Join(l.nodes[0].dir, l.ctrName(0)), netip.AddrPortFrom(netip.MustParseAddr(l.ctrIP(0)), 7000))
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	before := l.status(0)
	node1 := netip.MustParseAddr(l.underlay(0))
	node1MAC := linkMAC(t, l.nodes[0].name, "u0")
	strangerMAC := linkMAC(t, stranger, "u0")
	c1 := netip.MustParseAddr(l.ctrIP(0))
	inner := spoof.IPv4UDP(netip.MustParseAddr(l.ctrIP(1)), c1, 5000, 7000, []byte("injected"))
	frame := spoof.VXLAN(42, spoof.Ether(overlay.DeriveMAC(c1), overlay.DeriveMAC(netip.MustParseAddr(l.ctrIP(1))), spoof.EtherIPv4, inner))
	const n = 20
	for _, from := range []string{"192.0.2.99", l.underlay(1)} { // its own address, and a member's (forged)
		src := netip.MustParseAddr(from)
		for k := range n {
			hs := junkHandshake()
			for _, p := range [][]byte{
				spoof.IPv4UDP(src, node1, uint16(40000+k), 4789, frame),
				spoof.IPv4UDP(src, node1, uint16(40000+k), 51820, hs),
			} {
				if err := spoof.SendFrame(sPath, "u0", spoof.Ether(node1MAC, strangerMAC, spoof.EtherIPv4, p)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if got := rcv.Wait(1500 * time.Millisecond); len(got) > 0 {
		t.Fatalf("the container received the stranger's datagrams: %v", got)
	}
	after := l.status(0)
	outside := after.Guard.OutsideTunnelDrops - before.Guard.OutsideTunnelDrops
	wgDrops := after.Guard.WireGuardDrops - before.Guard.WireGuardDrops
	rejected := after.Tunnel.Rejected.InvalidHandshakes - before.Tunnel.Rejected.InvalidHandshakes
	t.Logf("VXLAN dropped outside the tunnel %d, WireGuard dropped from no peer %d, handshakes rejected by the device %d", outside, wgDrops, rejected)
	if outside < 2*n || wgDrops < n || rejected < n {
		t.Errorf("drops not counted: VXLAN outside the tunnel %d (want >= %d), WireGuard from no peer %d (want >= %d), rejected handshakes %d (want >= %d)",
			outside, 2*n, wgDrops, n, rejected, n)
	}
	if err := l.ping(0, 1, "2"); err != nil {
		t.Errorf("the nodes no longer reach each other after the stranger: %v", err)
	}
}

// linkMAC returns the MAC of dev in the named netns.
func linkMAC(t *testing.T, netns, dev string) ethaddr.MAC {
	m := regexp.MustCompile(`link/ether ([0-9a-f:]{17})`).FindStringSubmatch(nstest.Run(t, netns, "ip", "-o", "link", "show", dev))
	if m == nil {
		t.Fatalf("no MAC for %s in %s", dev, netns)
	}
	return spoof.ParseMAC(m[1])
}

// junkHandshake is a WireGuard handshake initiation (type 1, 148 bytes)
// from a key nobody knows: random bytes after its header.
func junkHandshake() []byte {
	b := make([]byte, 148)
	rand.Read(b)
	b[0], b[1], b[2], b[3] = 1, 0, 0, 0
	return b
}

// TestEncryptDisagree: a node whose --encrypt (or tunnel subnet) differs
// from the network every node agreed on is refused, naming the difference,
// and nothing of it is made.
func TestEncryptDisagree(t *testing.T) {
	l := newEncLab(t, 1, "dir")
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--mtu", "1390"}, "store encrypt: want false, have true"},
		{append([]string{}, "--encrypt", "--tunnel-subnet", "10.98.0.0/16"), "store tunnel subnet: want 10.98.0.0/16, have " + tunnelSubnet},
	} {
		nd := newSimNode(t, "wd", l.store)
		nstest.Run(t, l.ctl, "ip", "link", "add", "pd", "type", "veth", "peer", "name", "u0", "netns", nd.name)
		nstest.Run(t, l.ctl, "ip", "link", "set", "pd", "master", "ul", "up")
		nd.ip("addr", "add", "192.0.2.50/24", "dev", "u0")
		nd.ip("link", "set", "u0", "up")
		before := nd.snapshot()
		r := nd.run(append([]string{"create", "--local", "192.0.2.50", "--no-egress"}, c.flags...)...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("create %v: exit %d, stderr %q; want a refusal naming %q", c.flags, r.code, r.stderr, c.want)
		}
		if after := nd.snapshot(); after != before {
			t.Errorf("the refused create changed the node:\nbefore %s\nafter %s", before, after)
		}
		nstest.Run(t, l.ctl, "ip", "link", "del", "pd")
	}
}

// TestEncryptRunCreate: run --create --encrypt (one process builds the
// overlay and serves it) claims the node's tunnel address in the store
// like create does: its container reaches one of a node made by create.
func TestEncryptRunCreate(t *testing.T) {
	l := newEncLab(t, 1, "dir")
	l.start(0)
	nd := l.plugNode(1)
	l.ds[1] = nd.startDaemon(append([]string{"--reconcile", "2s", "--create", "--local", l.underlay(1), "--no-egress"}, encryptFlags...)...)
	if !waitFor(10*time.Second, func() bool { return nd.run("status").code == 0 }) {
		t.Fatalf("run --create --encrypt made no overlay:\n%s", l.ds[1])
	}
	nd.ok("attach", l.ctrName(1), "--ip", l.ctrIP(1)+"/24")
	l.reachAll()
	if st := l.status(1); !netip.MustParsePrefix(tunnelSubnet).Contains(st.Tunnel.Address.Addr()) {
		t.Errorf("node 2's tunnel address %s is outside %s", st.Tunnel.Address, tunnelSubnet)
	}
}

// TestEncryptKubeRefused: --encrypt on a kube: store (create, run
// --create) is a usage error naming both, and makes nothing.
func TestEncryptKubeRefused(t *testing.T) {
	for _, args := range [][]string{
		{"create", "--encrypt"},
		{"run", "--create", "--encrypt"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			state, netns := t.TempDir(), t.TempDir()
			argv := append(args, "--store", "kube:"+filepath.Join(t.TempDir(), "kubeconfig"), "--state-dir", state, "--netns-dir", netns, "--local", "192.0.2.2")
			var stdout, stderr bytes.Buffer
			code := runMain(t.Context(), argv, &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), "--encrypt") || !strings.Contains(stderr.String(), "kube:") {
				t.Errorf("%q: exit %d, stderr %q; want 2 naming --encrypt and kube:", argv, code, stderr.String())
			}
			for _, dir := range []string{state, netns} {
				if ents, _ := os.ReadDir(dir); len(ents) > 0 {
					t.Errorf("the refused %s left %d entries in %s", args[0], len(ents), dir)
				}
			}
		})
	}
}

// TestEncryptRekey: a node's rekey while a container pings across it
// every 100 ms loses no echo beyond one; the peer then knows the new key
// only.
func TestEncryptRekey(t *testing.T) {
	l := newEncLab(t, 2, "dir")
	l.start(0)
	l.start(1)
	l.reachAll()
	old := l.status(1).Tunnel.PublicKey.String()
	const count = 50
	flow := startPingFlow(t, filepath.Join(l.nodes[0].dir, l.ctrName(0)), "-n", "-i", "0.1", "-c", strconv.Itoa(count), "-W", "1", l.ctrIP(1))
	time.Sleep(500 * time.Millisecond)
	out := l.nodes[1].ok("rekey", "--settle", "1s")
	<-flow.done
	got := received(flow.out.String())
	newKey := l.status(1).Tunnel.PublicKey.String()
	t.Logf("%s; %d of %d echoes every 100 ms", strings.TrimSpace(out), got, count)
	if got < count-1 {
		t.Errorf("%d of %d echoes across the rekey:\n%s\nnode 1 daemon:\n%s\nnode 2 daemon:\n%s", got, count, flow.out.String(), l.ds[0], l.ds[1])
	}
	if newKey == old || !strings.Contains(out, newKey) {
		t.Fatalf("rekey: key %s before, %s after; output %q", old, newKey, out)
	}
	if !waitFor(3*time.Second, func() bool { k := l.peerKeys(0); return k[newKey] && !k[old] && len(k) == 1 }) {
		t.Errorf("node 1's peers after the rekey: %v; want %s only", l.peerKeys(0), newKey)
	}
}
