package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/overlaynet/overlaynet/internal/etcdtest"
	"github.com/overlaynet/overlaynet/internal/nstest"
)

// TestEtcdStore: the plugin on two nodes sharing a real etcd, 12 ADDs on
// each node at once: every address distinct, each node's addresses in
// blocks it claimed (etcd transactions; never the same block for both),
// and after the DELs no record and no block is left in etcd.
func TestEtcdStore(t *testing.T) {
	etcdtest.Require(t)
	// The underlay: a bridge in a namespace of its own holding etcd at
	// 192.0.2.1, made first so that it goes last, after the nodes' reset.
	_, ctl := nstest.NetNS(t, "ec")
	// A fixed MAC: a bridge otherwise takes its lowest port's, which changes
	// when a node goes and leaves the other with a stale ARP entry for etcd.
	nstest.Run(t, ctl, "ip", "link", "add", "ul", "address", "02:00:c0:00:02:01", "type", "bridge")
	nstest.Run(t, ctl, "ip", "addr", "add", "192.0.2.1/24", "dev", "ul")
	nstest.Run(t, ctl, "ip", "link", "set", "ul", "up")
	srv := etcdtest.Start(t, etcdtest.Options{NetNS: "/var/run/netns/" + ctl, Host: "192.0.2.1"})
	store := srv.URL("ovn", "timeout=3s")
	var nodes []*node
	for i, vtep := range []string{"192.0.2.2", "192.0.2.3"} {
		n := newNode(t, fmt.Sprintf("e%d", i), "", store, false)
		n.vtep = vtep
		port := fmt.Sprintf("p%d", i)
		nstest.Run(t, n.name, "ip", "link", "add", "u0", "type", "veth", "peer", "name", port, "netns", ctl)
		nstest.Run(t, ctl, "ip", "link", "set", port, "master", "ul", "up")
		nstest.Run(t, n.name, "ip", "addr", "add", vtep+"/24", "dev", "u0")
		nstest.Run(t, n.name, "ip", "link", "set", "u0", "up")
		n.mustOverlayd("create", "--local", vtep)
		nodes = append(nodes, n)
	}
	n1, n2 := nodes[0], nodes[1]
	const per = 12
	type added struct {
		n    *node
		ns   string
		id   string
		addr netip.Prefix
	}
	var (
		mu  sync.Mutex
		all []added
		wg  sync.WaitGroup
	)
	for ni, n := range []*node{n1, n2} {
		conf := n.conf("1.0.0", map[string]any{"logLevel": "warn"})
		for i := range per {
			ns := n.containerNS(fmt.Sprintf("e%d", i))
			id := fmt.Sprintf("etcd-%d-%d", ni, i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := n.plugin(call{cmd: "ADD", containerID: id, netns: ns, ifname: "eth0", stdin: conf})
				if r.code != 0 {
					t.Errorf("ADD %s: %+v\n%s", id, r.err, r.stderr)
					return
				}
				var res addResult
				json.Unmarshal([]byte(r.stdout), &res)
				mu.Lock()
				all = append(all, added{n, ns, id, netip.MustParsePrefix(res.IPs[0].Address)})
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	keys, err := srv.Keys("/ovn/vni/42/")
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[netip.Prefix]string{}
	for k, v := range keys {
		if name, ok := strings.CutPrefix(k, "/ovn/vni/42/blocks/"); ok {
			b, err := netip.ParsePrefix(strings.Replace(name, "-", "/", 1))
			if err != nil {
				t.Fatalf("block key %s", k)
			}
			blocks[b] = v.Value
		}
	}
	seen := map[netip.Addr]string{}
	for _, a := range all {
		if prev, dup := seen[a.addr.Addr()]; dup {
			t.Fatalf("%s and %s both got %s", prev, a.id, a.addr)
		}
		seen[a.addr.Addr()] = a.id
		b := netip.PrefixFrom(a.addr.Addr(), 26).Masked()
		if blocks[b] != a.n.vtep {
			t.Errorf("%s of node %s is in block %s held by %q", a.addr, a.n.vtep, b, blocks[b])
		}
		if _, ok := keys["/ovn/vni/42/arp/"+a.addr.Addr().String()]; !ok {
			t.Errorf("no arp record for %s", a.addr)
		}
	}
	t.Logf("blocks: %v", blocks)
	for _, a := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := a.n.plugin(call{cmd: "DEL", containerID: a.id, netns: a.ns, ifname: "eth0", stdin: a.n.conf("1.0.0", map[string]any{"logLevel": "warn"})}); r.code != 0 {
				t.Errorf("DEL %s: %+v", a.id, r.err)
			}
		}()
	}
	wg.Wait()
	keys, err = srv.Keys("/ovn/vni/42/")
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys {
		if !strings.HasSuffix(k, "/config") {
			t.Errorf("left in etcd after the DELs: %s", k)
		}
	}
}
