package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/rtnl"
)

var versions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// TestVersion: VERSION answers with every supported version, whatever the
// config's version, without a network config.
func TestVersion(t *testing.T) {
	n := &node{t: t}
	binaries(t)
	for _, v := range append(versions, "") {
		stdin := []byte(`{"cniVersion":"` + v + `"}`)
		r := n.plugin(call{env: []string{"CNI_COMMAND=VERSION"}, stdin: stdin})
		if r.code != 0 {
			t.Fatalf("VERSION %q: exit %d %+v", v, r.code, r.err)
		}
		var info struct {
			CNIVersion        string   `json:"cniVersion"`
			SupportedVersions []string `json:"supportedVersions"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
			t.Fatalf("VERSION: %v: %s", err, r.stdout)
		}
		if !slices.Equal(info.SupportedVersions, versions) {
			t.Errorf("VERSION %q: supported %v, want %v", v, info.SupportedVersions, versions)
		}
	}
}

// result is the ADD result, in any of the versions (0.3.x/0.4.0 add an IP
// "version" field, 1.x drops it).
type addResult struct {
	CNIVersion string `json:"cniVersion"`
	Interfaces []struct {
		Name    string `json:"name"`
		Mac     string `json:"mac"`
		Sandbox string `json:"sandbox"`
	} `json:"interfaces"`
	IPs []struct {
		Version   string `json:"version"`
		Interface *int   `json:"interface"`
		Address   string `json:"address"`
		Gateway   string `json:"gateway"`
	} `json:"ips"`
	Routes []struct {
		Dst string `json:"dst"`
		GW  string `json:"gw"`
	} `json:"routes"`
}

// TestCommandsPerVersion runs ADD, CHECK, STATUS, GC and DEL (twice)
// through the binary for each cniVersion, each command where the version
// has it (others are refused with code 1), and checks the result, the
// container and the registry.
func TestCommandsPerVersion(t *testing.T) {
	n := newNode(t, "pv", "192.0.2.2", "", true)
	before := n.snapshot()
	for i, v := range versions {
		t.Run(v, func(t *testing.T) {
			n.t = t
			ns := n.containerNS(fmt.Sprintf("ctr%d", i))
			id := fmt.Sprintf("container-%d", i)
			conf := n.conf(v, nil)
			add := call{cmd: "ADD", containerID: id, netns: ns, ifname: "eth0", stdin: conf}
			out := n.ok(add)
			var res addResult
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("ADD result: %v\n%s", err, out)
			}
			if res.CNIVersion != v {
				t.Errorf("result version %q, want %q", res.CNIVersion, v)
			}
			if len(res.Interfaces) != 1 || res.Interfaces[0].Name != "eth0" || res.Interfaces[0].Sandbox != ns {
				t.Errorf("interfaces %+v", res.Interfaces)
			}
			if len(res.IPs) != 1 || res.IPs[0].Gateway != "198.51.100.1" || res.IPs[0].Interface == nil || *res.IPs[0].Interface != 0 {
				t.Fatalf("ips %+v", res.IPs)
			}
			wantVer := "4"
			if strings.HasPrefix(v, "1.") {
				wantVer = ""
			}
			if res.IPs[0].Version != wantVer {
				t.Errorf("ips[0].version %q, want %q for %s", res.IPs[0].Version, wantVer, v)
			}
			if len(res.Routes) != 1 || res.Routes[0].Dst != "0.0.0.0/0" || res.Routes[0].GW != "198.51.100.1" {
				t.Errorf("routes %+v", res.Routes)
			}
			addr := res.IPs[0].Address
			ip := strings.TrimSuffix(addr, "/24")
			if a, err := netip.ParsePrefix(addr); err != nil || a.Bits() != 24 {
				t.Fatalf("address %q", addr)
			}
			// The container, as the result says.
			link := in(t, ns, "ip", "-o", "addr", "show", "dev", "eth0")
			if !strings.Contains(link, "inet "+addr) {
				t.Errorf("container eth0: %s", link)
			}
			if r := in(t, ns, "ip", "route", "show", "default"); !strings.Contains(r, "via 198.51.100.1 dev eth0") {
				t.Errorf("container route: %s", r)
			}
			if l := in(t, ns, "ip", "-o", "link", "show", "dev", "eth0"); !strings.Contains(l, "link/ether "+res.Interfaces[0].Mac+" ") || !strings.Contains(l, "mtu 1450") {
				t.Errorf("container eth0 %s; result MAC %s, want MTU 1450", l, res.Interfaces[0].Mac)
			}
			store := strings.TrimPrefix(n.store, "dir:")
			if b, err := os.ReadFile(filepath.Join(store, "arp", ip)); err != nil || strings.TrimSpace(string(b)) != res.Interfaces[0].Mac {
				t.Errorf("registry arp/%s: %q, %v", ip, b, err)
			}
			// The gateway answers through the overlay bridge.
			in(t, ns, "ping", "-c", "1", "-W", "2", "198.51.100.1")

			check := call{cmd: "CHECK", containerID: id, netns: ns, ifname: "eth0", stdin: withPrev(t, conf, out)}
			if v >= "0.4.0" {
				n.ok(check)
			} else {
				n.fails(check, 1, "does not allow CHECK")
			}
			gc := call{cmd: "GC", stdin: n.conf(v, map[string]any{"cni.dev/valid-attachments": []map[string]string{{"containerID": id, "ifname": "eth0"}}})}
			status := call{cmd: "STATUS", stdin: conf}
			if v == "1.1.0" {
				n.ok(gc) // keeps the valid attachment
				if _, err := os.Stat(filepath.Join(store, "arp", ip)); err != nil {
					t.Errorf("GC removed a valid attachment: %v", err)
				}
				n.fails(status, 50, "resolver daemon")
			} else {
				n.fails(gc, 1, "does not allow GC")
				n.fails(status, 1, "does not allow STATUS")
			}
			del := call{cmd: "DEL", containerID: id, netns: ns, ifname: "eth0", stdin: withPrev(t, conf, out)}
			n.ok(del)
			if links := in(t, ns, "ip", "-o", "link", "show"); strings.Contains(links, "eth0") {
				t.Errorf("eth0 left after DEL: %s", links)
			}
			n.ok(del) // idempotent
			if err := rtnl.DeleteNetNS(n.dir, fmt.Sprintf("ctr%d", i)); err != nil {
				t.Fatal(err)
			}
			if got := n.snapshot(); got != before {
				t.Errorf("left behind after DEL:\nbefore: %s\nafter:  %s", before, got)
			}
		})
	}
}

// withPrev adds prevResult to a config.
func withPrev(t testing.TB, conf []byte, prev string) []byte {
	t.Helper()
	var c map[string]any
	if err := json.Unmarshal(conf, &c); err != nil {
		t.Fatal(err)
	}
	var p any
	if err := json.Unmarshal([]byte(prev), &p); err != nil {
		t.Fatal(err)
	}
	c["prevResult"] = p
	b, _ := json.Marshal(c)
	return b
}

// TestErrors: each bad invocation is the spec's error object with its code
// and a clear message, and leaves nothing behind.
func TestErrors(t *testing.T) {
	n := newNode(t, "er", "192.0.2.2", "", true)
	bare := newNode(t, "eb", "192.0.2.3", "", false) // overlay not created
	ns := n.containerNS("ctr")
	// An address taken by another container of the overlay.
	n.mustOverlayd("attach", "taken", "--ip", "198.51.100.9/24")
	// And one registered by a container of another node (192.0.2.9).
	store := strings.TrimPrefix(n.store, "dir:")
	os.WriteFile(filepath.Join(store, "arp", "198.51.100.10"), []byte("02:aa:00:00:00:10\n"), 0o644)
	os.WriteFile(filepath.Join(store, "fdb", "02:aa:00:00:00:10"), []byte("192.0.2.9\n"), 0o644)
	busy := n.containerNS("busy")
	in(t, busy, "ip", "link", "add", "eth0", "type", "bridge")
	notNS := filepath.Join(t.TempDir(), "notns")
	if err := os.WriteFile(notNS, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := n.conf("1.0.0", nil)
	add := func(mod func(*call)) call {
		c := call{cmd: "ADD", containerID: "c1", netns: ns, ifname: "eth0", stdin: conf}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	tests := []struct {
		name string
		node *node
		call call
		code uint
		msg  string
	}{
		{"bad JSON", n, add(func(c *call) { c.stdin = []byte(`{"cniVersion":"1.0.0","name":`) }), 6, "unmarshal"},
		{"unknown cniVersion", n, add(func(c *call) { c.stdin = n.conf("9.9.9", nil) }), 1, "incompatible CNI versions"},
		{"missing CNI_NETNS", n, add(func(c *call) { c.netns = "" }), 4, "CNI_NETNS"},
		{"netns does not exist", n, add(func(c *call) { c.netns = "/var/run/netns/ovt-no-such-ns" }), 3, "ovt-no-such-ns"},
		{"netns is not a network namespace", n, add(func(c *call) { c.netns = notNS }), 3, notNS + " is not a network namespace"},
		{"address outside the subnet", n, add(func(c *call) { c.args = "IP=203.0.113.5" }), 102, "outside the overlay subnet 198.51.100.0/24"},
		{"address is the gateway", n, add(func(c *call) { c.args = "IgnoreUnknown=1;IP=198.51.100.1" }), 102, "gateway"},
		{"address taken", n, add(func(c *call) {
			c.stdin = n.conf("1.0.0", map[string]any{"runtimeConfig": map[string]any{"ips": []string{"198.51.100.9/24"}}})
		}), 101, "198.51.100.9"},
		{"address of another node's container", n, add(func(c *call) { c.args = "IP=198.51.100.10" }), 101, "198.51.100.10 is registered to MAC 02:aa:00:00:00:10"},
		{"overlay not created", bare, add(func(c *call) { c.stdin = bare.conf("1.0.0", nil) }), 100, "run create first"},
		{"interface exists", n, add(func(c *call) { c.netns = busy }), 104, "eth0 already exists"},
		{"bad blockBits", n, add(func(c *call) { c.stdin = n.conf("1.0.0", map[string]any{"blockBits": 40}) }), 7, "blockBits 40"},
		{"unknown store scheme", n, add(func(c *call) { c.stdin = n.conf("1.0.0", map[string]any{"store": "zk://x"}) }), 7, "unknown scheme"},
		{"store URL without a scheme", n, add(func(c *call) { c.stdin = n.conf("1.0.0", map[string]any{"store": "/var/lib/overlayd/store"}) }), 7, "no scheme"},
		{"malformed etcd store URL", n, add(func(c *call) { c.stdin = n.conf("1.0.0", map[string]any{"store": "etcd://h:1/p?vni=x"}) }), 7, `vni "x"`},
		{"store unreachable", n, add(func(c *call) {
			c.stdin = n.conf("1.0.0", map[string]any{"store": "etcd://alice:s3cret@192.0.2.99:2379/nowhere?timeout=1s"})
		}), 11, `store "etcd://alice:xxxxx@192.0.2.99:2379/nowhere?timeout=1s"`},
		{"own netns", n, add(func(c *call) { c.netns = "/var/run/netns/" + n.name }), 8, "own network namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.node.t = t
			before := tt.node.snapshot()
			e := tt.node.fails(tt.call, tt.code, tt.msg)
			t.Logf("code %d: %s", e.Code, e.Msg)
			if strings.Contains(e.Msg+e.Details, "s3cret") {
				t.Errorf("the store's password in the error: %s", e.Msg)
			}
			if after := tt.node.snapshot(); after != before {
				t.Errorf("left behind:\nbefore: %s\nafter:  %s", before, after)
			}
		})
	}
	n.t = t
	if links := in(t, ns, "ip", "-o", "link", "show"); strings.Contains(links, "eth0") {
		t.Errorf("eth0 in the container after failed ADDs: %s", links)
	}
}

// TestAddTwice: a second ADD of the same attachment is an error and keeps
// the first; an explicit free address is honoured.
func TestAddTwice(t *testing.T) {
	n := newNode(t, "tw", "192.0.2.2", "", true)
	ns := n.containerNS("ctr")
	c := call{cmd: "ADD", containerID: "c1", netns: ns, ifname: "net1", args: "IP=198.51.100.77", stdin: n.conf("1.0.0", nil)}
	if out := n.ok(c); !strings.Contains(out, `"198.51.100.77/24"`) {
		t.Fatalf("explicit address not honoured: %s", out)
	}
	before := n.snapshot()
	n.fails(c, 104, "already exists")
	if after := n.snapshot(); after != before {
		t.Errorf("second ADD changed the node:\nbefore: %s\nafter:  %s", before, after)
	}
	// ADD installed the port's anti-spoofing rules; DEL removes them.
	var st overlay.Status
	if err := json.Unmarshal([]byte(n.mustOverlayd("status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Guard.Ports) != 1 || st.Guard.Ports[0].HostIf != st.Endpoints[0].HostIf || !st.Guard.Ports[0].Dispatched {
		t.Errorf("after ADD, guarded ports %+v, want the endpoint's", st.Guard.Ports)
	}
	n.ok(call{cmd: "DEL", containerID: "c1", netns: ns, ifname: "net1", stdin: n.conf("1.0.0", nil)})
	if err := json.Unmarshal([]byte(n.mustOverlayd("status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Guard.Ports) != 0 {
		t.Errorf("after DEL, guarded ports %+v, want none", st.Guard.Ports)
	}
}

// TestDelIdempotent: DEL succeeds when ADD never ran, and when the netns is
// already gone (the veth, records and address still go).
func TestDelIdempotent(t *testing.T) {
	n := newNode(t, "di", "192.0.2.2", "", true)
	before := n.snapshot()
	conf := n.conf("1.0.0", nil)
	n.ok(call{cmd: "DEL", containerID: "never", netns: "/var/run/netns/ovt-gone", ifname: "eth0", stdin: conf})
	n.ok(call{cmd: "DEL", containerID: "never", ifname: "eth0", stdin: conf}) // no CNI_NETNS at all
	ns := n.containerNS("ctr")
	n.ok(call{cmd: "ADD", containerID: "c1", netns: ns, ifname: "eth0", stdin: conf})
	if err := rtnl.DeleteNetNS(n.dir, "ctr"); err != nil {
		t.Fatal(err)
	}
	n.ok(call{cmd: "DEL", containerID: "c1", netns: ns, ifname: "eth0", stdin: conf})
	n.ok(call{cmd: "DEL", containerID: "c1", netns: ns, ifname: "eth0", stdin: conf})
	if after := n.snapshot(); after != before {
		t.Errorf("left behind:\nbefore: %s\nafter:  %s", before, after)
	}
}

// TestParallelAdds: 32 ADDs at once (32 plugin processes) get 32 distinct
// addresses; 32 DELs at once leave nothing.
func TestParallelAdds(t *testing.T) {
	n := newNode(t, "pa", "192.0.2.2", "", true)
	before := n.snapshot()
	const count = 32
	conf := n.conf("1.0.0", map[string]any{"logLevel": "warn"})
	nss := make([]string, count)
	for i := range nss {
		nss[i] = n.containerNS(fmt.Sprintf("p%d", i))
	}
	outs := make([]reply, count)
	var wg sync.WaitGroup
	for i := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i] = n.plugin(call{cmd: "ADD", containerID: fmt.Sprintf("par-%d", i), netns: nss[i], ifname: "eth0", stdin: conf})
		}()
	}
	wg.Wait()
	seen := map[string]int{}
	for i, r := range outs {
		if r.code != 0 {
			t.Fatalf("ADD %d: %+v\n%s", i, r.err, r.stderr)
		}
		var res addResult
		json.Unmarshal([]byte(r.stdout), &res)
		a := res.IPs[0].Address
		if j, dup := seen[a]; dup {
			t.Fatalf("ADDs %d and %d both got %s", i, j, a)
		}
		seen[a] = i
	}
	st := n.mustOverlayd("status")
	if !strings.Contains(st, "198.51.100.0/26  32") {
		t.Errorf("status after 32 ADDs:\n%s", st)
	}
	for i := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i] = n.plugin(call{cmd: "DEL", containerID: fmt.Sprintf("par-%d", i), netns: nss[i], ifname: "eth0", stdin: conf})
		}()
	}
	wg.Wait()
	for i, r := range outs {
		if r.code != 0 {
			t.Errorf("DEL %d: %+v", i, r.err)
		}
	}
	for i := range nss {
		rtnl.DeleteNetNS(n.dir, fmt.Sprintf("p%d", i))
	}
	if after := n.snapshot(); after != before {
		t.Errorf("left behind:\nbefore: %s\nafter:  %s", before, after)
	}
}

// TestCheckFindsDifferences: CHECK reports each difference between the
// container, the registry and prevResult.
func TestCheckFindsDifferences(t *testing.T) {
	n := newNode(t, "ck", "192.0.2.2", "", true)
	ns := n.containerNS("ctr")
	conf := n.conf("1.0.0", nil)
	out := n.ok(call{cmd: "ADD", containerID: "c1", netns: ns, ifname: "eth0", stdin: conf})
	check := call{cmd: "CHECK", containerID: "c1", netns: ns, ifname: "eth0", stdin: withPrev(t, conf, out)}
	n.ok(check)
	// A CNI_NETNS that is gone, or the plugin's own: the spec's codes.
	gone := check
	gone.netns = "/var/run/netns/ovt-no-such-ns"
	n.fails(gone, 3, "ovt-no-such-ns")
	own := check
	own.netns = "/var/run/netns/" + n.name
	n.fails(own, 8, "own network namespace")
	// A prevResult that lies about the address.
	lie := strings.Replace(out, "198.51.100.2/24", "198.51.100.3/24", 1)
	e := n.fails(call{cmd: "CHECK", containerID: "c1", netns: ns, ifname: "eth0", stdin: withPrev(t, conf, lie)}, 107, "prevResult has address 198.51.100.3/24")
	t.Logf("%s: %s", e.Msg, e.Details)
	// The container loses its route and its address; the registry its record.
	in(t, ns, "ip", "route", "del", "default")
	in(t, ns, "ip", "addr", "del", "198.51.100.2/24", "dev", "eth0")
	os.Remove(filepath.Join(strings.TrimPrefix(n.store, "dir:"), "arp", "198.51.100.2"))
	e = n.fails(check, 107, "lacks address 198.51.100.2/24")
	for _, want := range []string{"no default route via 198.51.100.1", "registry has no record of IP 198.51.100.2"} {
		if !strings.Contains(e.Details, want) {
			t.Errorf("CHECK details lack %q: %s", want, e.Details)
		}
	}
	n.ok(call{cmd: "DEL", containerID: "c1", netns: ns, ifname: "eth0", stdin: conf})
	n.fails(check, 107, "not attached")
}

// TestGC releases exactly the attachments not in valid-attachments (and
// leaves overlayd's own attachments alone).
func TestGC(t *testing.T) {
	n := newNode(t, "gc", "192.0.2.2", "", true)
	n.mustOverlayd("attach", "byhand")
	conf := n.conf("1.1.0", nil)
	var keep []map[string]string
	for i := range 4 {
		ns := n.containerNS(fmt.Sprintf("g%d", i))
		n.ok(call{cmd: "ADD", containerID: fmt.Sprintf("gc-%d", i), netns: ns, ifname: "eth0", stdin: conf})
		if i%2 == 0 {
			keep = append(keep, map[string]string{"containerID": fmt.Sprintf("gc-%d", i), "ifname": "eth0"})
		}
	}
	n.ok(call{cmd: "GC", stdin: n.conf("1.1.0", map[string]any{"cni.dev/valid-attachments": keep})})
	st := n.mustOverlayd("status")
	for i := range 4 {
		ns := filepath.Join(n.dir, fmt.Sprintf("g%d", i))
		links := in(t, ns, "ip", "-o", "link", "show")
		if has := strings.Contains(links, "eth0"); has != (i%2 == 0) {
			t.Errorf("gc-%d after GC: eth0 present %v, want %v", i, has, i%2 == 0)
		}
	}
	if !strings.Contains(st, "byhand") {
		t.Errorf("GC removed overlayd's own attachment:\n%s", st)
	}
	// .2 byhand, .3 gc-0, .5 gc-2 remain; .4 and .6 are free again.
	store := strings.TrimPrefix(n.store, "dir:")
	for ip, want := range map[string]bool{"198.51.100.2": true, "198.51.100.3": true, "198.51.100.4": false, "198.51.100.5": true, "198.51.100.6": false} {
		_, err := os.Stat(filepath.Join(store, "arp", ip))
		if (err == nil) != want {
			t.Errorf("record of %s after GC: present %v, want %v", ip, err == nil, want)
		}
		_, err = os.Stat(filepath.Join(n.state, "ipam", ip))
		if (err == nil) != want {
			t.Errorf("allocation of %s after GC: present %v, want %v", ip, err == nil, want)
		}
	}
	n.ok(call{cmd: "GC", stdin: n.conf("1.1.0", nil)}) // none valid: all of the plugin's go
	if st := n.mustOverlayd("status"); strings.Contains(st, "cni-") || !strings.Contains(st, "byhand") {
		t.Errorf("after GC with no valid attachment:\n%s", st)
	}
}

// TestStatus: ready only with the overlay, an answering registry and the
// resolver daemon; otherwise code 50 naming what is missing.
func TestStatus(t *testing.T) {
	n := newNode(t, "st", "192.0.2.2", "", true)
	bare := newNode(t, "sb", "192.0.2.3", "", false)
	conf := n.conf("1.1.0", nil)
	n.fails(call{cmd: "STATUS", stdin: conf}, 50, "the resolver daemon (overlayd run) is not running")
	d := n.startDaemon()
	n.ok(call{cmd: "STATUS", stdin: conf})
	n.fails(call{cmd: "STATUS", stdin: n.conf("1.1.0", map[string]any{"store": "etcd://192.0.2.99:2379/nowhere?timeout=1s"})}, 50, "registry")
	d.stop(t)
	n.fails(call{cmd: "STATUS", stdin: conf}, 50, "resolver daemon")
	bare.fails(call{cmd: "STATUS", stdin: bare.conf("1.1.0", nil)}, 50, "run create first")
}

// TestParallelAddsExhausted: 32 ADDs at once on an overlay of 29 free
// addresses (a /27 with its gateway): 29 succeed with distinct addresses,
// 3 fail with code 103 and leave nothing (no interface, no state, no
// record); the state directory is consistent (status finds no problem).
func TestParallelAddsExhausted(t *testing.T) {
	n := newNode(t, "px", "192.0.2.2", "", false)
	n.mustOverlayd("create", "--local", "192.0.2.2", "--gateway", "198.51.100.1/27")
	const count = 32
	conf := n.conf("1.0.0", map[string]any{"logLevel": "warn"})
	nss := make([]string, count)
	for i := range nss {
		nss[i] = n.containerNS(fmt.Sprintf("x%d", i))
	}
	outs := make([]reply, count)
	var wg sync.WaitGroup
	for i := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i] = n.plugin(call{cmd: "ADD", containerID: fmt.Sprintf("x-%d", i), netns: nss[i], ifname: "eth0", stdin: conf})
		}()
	}
	wg.Wait()
	ok, exhausted := 0, 0
	seen := map[string]bool{}
	for i, r := range outs {
		switch {
		case r.code == 0:
			ok++
			var res addResult
			json.Unmarshal([]byte(r.stdout), &res)
			if seen[res.IPs[0].Address] {
				t.Errorf("%s handed out twice", res.IPs[0].Address)
			}
			seen[res.IPs[0].Address] = true
		case r.err.Code == 103:
			exhausted++
			if links := in(t, nss[i], "ip", "-o", "link", "show"); strings.Contains(links, "eth0") {
				t.Errorf("failed ADD %d left eth0: %s", i, links)
			}
		default:
			t.Errorf("ADD %d: %+v", i, r.err)
		}
	}
	if ok != 29 || exhausted != 3 {
		t.Errorf("%d ADDs succeeded and %d found no address; want 29 and 3", ok, exhausted)
	}
	st := n.mustOverlayd("status")
	// Each endpoint shows twice: its row, and its guarded port (the ADD
	// installed its anti-spoofing rules).
	if strings.Contains(st, "PROBLEMS") || strings.Count(st, "ve-cni-") != 2*29 || len(regexp.MustCompile(`ve-cni-\w+\s+5\s+IPv4\s+src_mac`).FindAllString(st, -1)) != 29 {
		t.Errorf("status after the ADDs:\n%s", st)
	}
	store := strings.TrimPrefix(n.store, "dir:")
	if recs, _ := os.ReadDir(filepath.Join(store, "arp")); len(recs) != 29 {
		t.Errorf("%d records in the store, want 29", len(recs))
	}
}

// TestRequestedAddress: an address asked for through CNI_ARGS IP=, the
// "ips" capability (runtimeConfig.ips) or args.cni.ips is honoured when
// free; two different ones at once are refused.
func TestRequestedAddress(t *testing.T) {
	n := newNode(t, "ra", "192.0.2.2", "", true)
	tests := []struct {
		name  string
		args  string
		extra map[string]any
		want  string
	}{
		{"CNI_ARGS", "IgnoreUnknown=1;IP=198.51.100.40", nil, "198.51.100.40/24"},
		{"ips capability", "", map[string]any{"runtimeConfig": map[string]any{"ips": []string{"198.51.100.41/24"}}}, "198.51.100.41/24"},
		{"args.cni.ips", "", map[string]any{"args": map[string]any{"cni": map[string]any{"ips": []string{"198.51.100.42"}}}}, "198.51.100.42/24"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n.t = t
			ns := n.containerNS(fmt.Sprintf("r%d", i))
			c := call{cmd: "ADD", containerID: fmt.Sprintf("req-%d", i), netns: ns, ifname: "eth0", args: tt.args, stdin: n.conf("1.0.0", tt.extra)}
			out := n.ok(c)
			var res addResult
			if err := json.Unmarshal([]byte(out), &res); err != nil || res.IPs[0].Address != tt.want {
				t.Fatalf("ADD: %v, want %s\n%s", err, tt.want, out)
			}
			c.cmd = "DEL"
			n.ok(c)
		})
	}
	n.t = t
	ns := n.containerNS("two")
	n.fails(call{cmd: "ADD", containerID: "two", netns: ns, ifname: "eth0", args: "IP=198.51.100.50",
		stdin: n.conf("1.0.0", map[string]any{"runtimeConfig": map[string]any{"ips": []string{"198.51.100.51/24"}}})}, 7, "two addresses requested")
}

// TestChainedPrevResult: behind another plugin in a chain, ADD keeps the
// prevResult's interfaces and addresses and appends its own; blockBits
// sizes the node's blocks.
func TestChainedPrevResult(t *testing.T) {
	n := newNode(t, "cp", "192.0.2.2", "", true)
	ns := n.containerNS("ctr")
	prev := `{"cniVersion":"1.0.0","interfaces":[{"name":"lo0x","sandbox":"` + ns + `"}],"ips":[{"address":"10.9.0.2/24","interface":0}]}`
	conf := withPrev(t, n.conf("1.0.0", map[string]any{"blockBits": 28}), prev)
	out := n.ok(call{cmd: "ADD", containerID: "ch", netns: ns, ifname: "eth0", stdin: conf})
	var res addResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Interfaces) != 2 || res.Interfaces[0].Name != "lo0x" || res.Interfaces[1].Name != "eth0" {
		t.Errorf("interfaces %+v; want the previous one, then eth0", res.Interfaces)
	}
	if len(res.IPs) != 2 || res.IPs[0].Address != "10.9.0.2/24" || res.IPs[1].Address != "198.51.100.2/24" ||
		res.IPs[1].Interface == nil || *res.IPs[1].Interface != 1 {
		t.Errorf("ips %+v; want the previous one, then 198.51.100.2/24 on interface 1", res.IPs)
	}
	if st := n.mustOverlayd("status"); !strings.Contains(st, "198.51.100.0/28") {
		t.Errorf("status: no /28 block:\n%s", st)
	}
	n.ok(call{cmd: "DEL", containerID: "ch", netns: ns, ifname: "eth0", stdin: conf})
}
