//go:build !noetcd

package main

import (
	"context"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/spoof"
	"github.com/overlaynet/overlaynet/rtnl"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestEtcdLeaseExpiryAllowlist: on etcd, a node's address is in the other
// node's VTEP allowlist while its daemon holds its lease, and VXLAN from it
// is delivered; once its daemon dies and the lease expires, the address
// leaves the allowlist (through the change feed) and the same datagram is
// dropped and counted.
func TestEtcdLeaseExpiryAllowlist(t *testing.T) {
	const ttl = 3 * time.Second
	lab := newEtcdLab(t, 2, "ttl="+ttl.String())
	n1, n2 := lab.nodes[0], lab.nodes[1]
	n1.ok("attach", "pink", "--ip", "198.51.100.2/24")
	n2.ok("attach", "sky", "--ip", "198.51.100.3/24")
	n1.startDaemon()
	d2 := n2.startDaemon()
	allowed := func() []string { return addrs(nodeStatus(t, n1).Guard.Allowlist) }
	if !waitFor(5*time.Second, func() bool { return slices.Contains(allowed(), "192.0.2.3") }) {
		t.Fatalf("node 1 does not allow node 2: %v", allowed())
	}
	rcv, err := spoof.ListenUDP(filepath.Join(n1.dir, "pink"), netip.MustParseAddrPort("198.51.100.2:7000"))
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	node2 := filepath.Join(rtnl.DefaultNetNSDir, n2.name)
	send := func(msg string) {
		t.Helper()
		if err := spoof.SendUDP(node2, netip.MustParseAddrPort("192.0.2.3:0"), netip.MustParseAddrPort("192.0.2.2:4789"),
			injected(netip.MustParseAddr("198.51.100.2"), ctrMAC("198.51.100.2"), msg)); err != nil {
			t.Fatal(err)
		}
	}
	send("while-alive")
	if got := payloads(rcv.Wait(time.Second)); !slices.Equal(got, []string{"while-alive"}) {
		t.Fatalf("pink received %q from live node 2, want its datagram", got)
	}

	d2.cmd.Process.Signal(syscall.SIGKILL)
	<-d2.done
	killed := time.Now()
	if !waitFor(ttl+leaseExpiryMargin+time.Second, func() bool { return !slices.Contains(allowed(), "192.0.2.3") }) {
		t.Fatalf("node 2's address still allowed %v after its lease expired: %v", time.Since(killed), allowed())
	}
	t.Logf("node 2's address left node 1's allowlist %v after its daemon was killed (TTL %v)", time.Since(killed).Round(time.Millisecond), ttl)
	drops := nodeStatus(t, n1).Guard.VTEPDrops
	send("after-expiry")
	if got := payloads(rcv.Wait(time.Second)); len(got) != 0 {
		t.Errorf("pink received %q from node 2 after its lease expired", got)
	}
	if d := nodeStatus(t, n1).Guard.VTEPDrops; d != drops+1 {
		t.Errorf("drops %d -> %d, want one more", drops, d)
	}
}

// TestEtcdJoinAllowlist: on etcd (hybrid mode), a node that joins later —
// its first container attached, then its daemon started — is in the
// existing nodes' allowlists before its daemon runs (the feed delivered its
// record), and its container's very first ping to a container of each
// existing node gets its reply, with no packet dropped there.
func TestEtcdJoinAllowlist(t *testing.T) {
	lab := newEtcdLab(t, 3, "")
	n1, n2, n3 := lab.nodes[0], lab.nodes[1], lab.nodes[2]
	n1.ok("attach", "pink", "--ip", "198.51.100.2/24")
	n2.ok("attach", "sky", "--ip", "198.51.100.3/24")
	n1.startDaemon()
	n2.startDaemon()
	n3.ok("attach", "lime", "--ip", "198.51.100.4/24")
	for _, n := range []*simNode{n1, n2} {
		if !waitFor(time.Second, func() bool { return slices.Contains(addrs(nodeStatus(t, n).Guard.Allowlist), "192.0.2.4") }) {
			t.Errorf("%s does not allow the joining node 192.0.2.4 within 1 s of its attach: %v", n.name, nodeStatus(t, n).Guard.Allowlist)
		}
	}
	n3.startDaemon()
	// Hybrid mode: node 3's entries come from the feed; give it a moment.
	waitFor(3*time.Second, func() bool {
		a, b := remoteEntries(n3, "198.51.100.2", "02:42:c6:33:64:02", "192.0.2.2")
		c, d := remoteEntries(n3, "198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3")
		return a && b && c && d
	})
	for _, dst := range []string{"198.51.100.2", "198.51.100.3"} {
		if out, err := pingOnce(n3, "lime", dst); err != nil {
			t.Errorf("lime on the joining node -> %s, first ping: %v\n%s", dst, err, out)
		}
	}
	for _, n := range []*simNode{n1, n2} {
		if d := nodeStatus(t, n).Guard.VTEPDrops; d != 0 {
			t.Errorf("%s dropped %d VXLAN packets", n.name, d)
		}
	}
}

// TestHostileWriterEtcd: the hostile writer's set planted in etcd (raw
// puts, as a member node's credentials allow) while the daemons run in
// hybrid mode, the allowlist fed by the change feed. See testHostileWriter.
func TestHostileWriterEtcd(t *testing.T) {
	lab := newEtcdLab(t, 3, "")
	cli := lab.client(t)
	put := func(t *testing.T, kv map[string]string) {
		keys := slices.Sorted(maps.Keys(kv))
		for chunk := range slices.Chunk(keys, 64) { // etcd's default limit is 128 operations
			var ops []clientv3.Op
			for _, k := range chunk {
				ops = append(ops, clientv3.OpPut(lab.prefix+k, kv[k]))
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			_, err := cli.Txn(ctx).Then(ops...).Commit()
			cancel()
			if err != nil {
				t.Fatalf("put the hostile keys: %v", err)
			}
		}
	}
	testHostileWriter(t, &hostileLab{n1: lab.nodes[0], n2: lab.nodes[1], n3: lab.nodes[2], put: put})
}
