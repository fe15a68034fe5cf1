package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/internal/nstest"
)

// dualGateways are create's flags of a dual-stack overlay: its IPv6
// gateway 2001:db8:42::1/64 beside the default IPv4 one.
var dualGateways = []string{"--gateway", "198.51.100.1/24", "--gateway", "2001:db8:42::1/64"}

// newDualNode is newNode with a dual-stack overlay.
func newDualNode(t *testing.T, tag string) *node {
	t.Helper()
	n := newNode(t, tag, "192.0.2.2", "", false)
	n.mustOverlayd(append([]string{"create", "--local", n.vtep}, dualGateways...)...)
	return n
}

// TestDualStackAdd: on a dual-stack overlay, ADD gives the container both
// addresses (usable at once: not tentative, no link-local address), the
// result lists both with their gateways and a default route of each family
// (cniVersion 0.3.0 to 1.1.0), CHECK accepts it, DEL removes it; with
// "family" one family only; an address of each family can be asked for;
// an IPv6 address outside the prefix or with a zone, two IPv6 addresses,
// an IPv6 address for an ipv4-only network and "ipv6" on an IPv4 overlay
// are refused, nothing left behind.
func TestDualStackAdd(t *testing.T) {
	n := newDualNode(t, "dsa")
	before := n.snapshot()
	for i, ver := range []string{"0.3.0", "0.4.0", "1.0.0", "1.1.0"} {
		ns := n.containerNS(fmt.Sprintf("c%d", i))
		c := call{cmd: "ADD", containerID: fmt.Sprintf("ds%d", i), netns: ns, ifname: "eth0", stdin: n.conf(ver, nil)}
		out := n.ok(c)
		var res addResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		if len(res.IPs) != 2 || !strings.HasPrefix(res.IPs[0].Address, "198.51.100.") || res.IPs[0].Gateway != "198.51.100.1" ||
			!strings.HasPrefix(res.IPs[1].Address, "2001:db8:42::") || !strings.HasSuffix(res.IPs[1].Address, "/64") || res.IPs[1].Gateway != "2001:db8:42::1" {
			t.Fatalf("%s: ADD result IPs: %s", ver, out)
		}
		if len(res.Routes) != 2 || res.Routes[0].Dst != "0.0.0.0/0" || res.Routes[1].Dst != "::/0" || res.Routes[1].GW != "2001:db8:42::1" {
			t.Errorf("%s: ADD result routes: %s", ver, out)
		}
		addr6 := strings.TrimSuffix(res.IPs[1].Address, "/64")
		if a := in(t, ns, "ip", "-6", "addr", "show", "dev", "eth0"); !strings.Contains(a, addr6) || strings.Contains(a, "tentative") || strings.Contains(a, "fe80:") {
			t.Errorf("%s: container's IPv6 addresses:\n%s", ver, a)
		}
		if r := in(t, ns, "ip", "-6", "route", "show", "default"); !strings.Contains(r, "via 2001:db8:42::1 dev eth0") {
			t.Errorf("%s: container's IPv6 default route:\n%s", ver, r)
		}
		if ver != "0.3.0" { // CHECK came with 0.4.0
			c.cmd, c.stdin = "CHECK", withPrev(t, n.conf(ver, nil), out)
			n.ok(c)
		}
		c.cmd, c.stdin = "DEL", withPrev(t, n.conf(ver, nil), out)
		n.ok(c)
		deleteNS(t, n, fmt.Sprintf("c%d", i))
	}
	for _, f := range []struct{ family, prefix string }{{"ipv4", "198.51.100."}, {"ipv6", "2001:db8:42::"}} {
		ns := n.containerNS("one")
		c := call{cmd: "ADD", containerID: "one-" + f.family, netns: ns, ifname: "eth0", stdin: n.conf("1.0.0", map[string]any{"family": f.family})}
		out := n.ok(c)
		var res addResult
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.IPs) != 1 || !strings.HasPrefix(res.IPs[0].Address, f.prefix) || len(res.Routes) != 1 {
			t.Errorf("family %s: %v\n%s", f.family, err, out)
		}
		c.cmd = "DEL"
		n.ok(c)
		deleteNS(t, n, "one")
	}
	ns := n.containerNS("req")
	asked := map[string]any{"runtimeConfig": map[string]any{"ips": []string{"198.51.100.77/24", "2001:db8:42::77/64"}}}
	c := call{cmd: "ADD", containerID: "req", netns: ns, ifname: "eth0", stdin: n.conf("1.0.0", asked)}
	out := n.ok(c)
	var res addResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.IPs) != 2 || res.IPs[0].Address != "198.51.100.77/24" || res.IPs[1].Address != "2001:db8:42::77/64" {
		t.Errorf("both addresses asked for: %v\n%s", err, out)
	}
	c.cmd = "DEL"
	n.ok(c)
	for _, bad := range []struct {
		args  string
		extra map[string]any
		code  uint
		msg   string
	}{
		{"IP=2001:db8:43::5", nil, 102, "outside the overlay subnet 2001:db8:42::/64"},
		{"", map[string]any{"runtimeConfig": map[string]any{"ips": []string{"2001:db8:42::5%eth0"}}}, 102, "has a zone"},
		{"", map[string]any{"runtimeConfig": map[string]any{"ips": []string{"2001:db8:42::5", "2001:db8:42::6"}}}, 7, "two addresses requested"},
		{"IP=2001:db8:42::5", map[string]any{"family": "ipv4"}, 102, "gives IPv4 addresses only"},
		{"IP=2001:db8:42::", nil, 102, "subnet-router anycast"},
		{"", map[string]any{"family": "ipv5"}, 7, `family "ipv5"`},
	} {
		n.fails(call{cmd: "ADD", containerID: "bad", netns: ns, ifname: "eth0", args: bad.args, stdin: n.conf("1.0.0", bad.extra)}, bad.code, bad.msg)
	}
	deleteNS(t, n, "req")
	if after := n.snapshot(); after != before {
		t.Errorf("left behind:\nbefore: %s\nafter:  %s", before, after)
	}

	v4 := newNode(t, "dsv", "192.0.2.2", "", true)
	ns4 := v4.containerNS("c")
	v4.fails(call{cmd: "ADD", containerID: "v6", netns: ns4, ifname: "eth0", stdin: v4.conf("1.0.0", map[string]any{"family": "ipv6"})}, 7, "no IPv6 prefix")
	v4.fails(call{cmd: "ADD", containerID: "v6", netns: ns4, ifname: "eth0", args: "IP=2001:db8:42::5", stdin: v4.conf("1.0.0", nil)}, 102, "no IPv6 prefix")
}

// TestDualStackDelegated: host-local with two ranges, an IPv4 and an IPv6
// one, gives the container an address of each, which the result and the
// container carry; CHECK and DEL work; a host-local of one family on a
// dual-stack network is refused (106) and its address given back.
func TestDualStackDelegated(t *testing.T) {
	requirePlugins(t)
	n := newDualNode(t, "dsd")
	before := n.snapshot()
	data := t.TempDir()
	ranges := []any{
		[]map[string]string{{"subnet": "198.51.100.0/24", "rangeStart": "198.51.100.200", "rangeEnd": "198.51.100.210"}},
		[]map[string]string{{"subnet": "2001:db8:42::/64", "rangeStart": "2001:db8:42::200", "rangeEnd": "2001:db8:42::210"}},
	}
	conf := n.conf("1.0.0", map[string]any{"ipam": map[string]any{"type": "host-local", "dataDir": data, "ranges": ranges}})
	ns := n.containerNS("ctr")
	out := n.ok(call{cmd: "ADD", containerID: "d1", netns: ns, ifname: "eth0", stdin: conf})
	var res addResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.IPs) != 2 || res.IPs[0].Address != "198.51.100.200/24" || res.IPs[1].Address != "2001:db8:42::200/64" {
		t.Fatalf("ADD with host-local's two ranges: %v\n%s", err, out)
	}
	if a := in(t, ns, "ip", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(a, "198.51.100.200/24") || !strings.Contains(a, "2001:db8:42::200/64") {
		t.Errorf("container eth0: %s", a)
	}
	n.ok(call{cmd: "CHECK", containerID: "d1", netns: ns, ifname: "eth0", stdin: withPrev(t, conf, out)})
	n.ok(call{cmd: "DEL", containerID: "d1", netns: ns, ifname: "eth0", stdin: withPrev(t, conf, out)})

	one := n.conf("1.0.0", map[string]any{"ipam": map[string]any{"type": "host-local", "dataDir": data, "ranges": ranges[:1]}})
	n.fails(call{cmd: "ADD", containerID: "d2", netns: ns, ifname: "eth0", stdin: one}, 106, "no IPv6 address in the overlay's IPv6 prefix")
	deleteNS(t, n, "ctr")
	if after := n.snapshot(); after != before {
		t.Errorf("left behind:\nbefore: %s\nafter:  %s", before, after)
	}
	nstest.Run(t, n.name, "true") // the node is still there
}

// TestPodmanDualStack: podman 4.3 (CNI backend) starts containers on two
// nodes of a dual-stack overlay: each gets an IPv4 and an IPv6 address
// (podman reports both), and a container on node 2 reaches one on node 1
// over IPv6 and over IPv4 through the nodes' daemons; podman rm leaves
// nothing behind.
func TestPodmanDualStack(t *testing.T) {
	requirePodman(t)
	requirePlugins(t)
	store := "dir:" + t.TempDir()
	n1, n2 := newPair(t, "pds", store, dualGateways...)
	netName := n1.name + "-net"
	rootfs := busyboxRootfs(t)
	before1, before2 := n1.snapshot(), n2.snapshot()
	n1.startDaemon()
	n2.startDaemon()
	p1, p2 := newPodman(t, n1, netName), newPodman(t, n2, netName)
	if out := p1.ok("network", "inspect", netName); !strings.Contains(out, "overlaynet") {
		t.Fatalf("podman does not see the network (VERSION failed?):\n%s", out)
	}
	if out, err := p1.container(rootfs, true, "alpha", "/bin/sleep", "600"); err != nil {
		t.Fatalf("podman run alpha: %v\n%s", err, out)
	}
	ip := p1.ok("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "alpha")
	ip6 := p1.ok("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}{{end}}", "alpha")
	if ip != "198.51.100.2" || ip6 != "2001:db8:42::2" {
		t.Fatalf("alpha's addresses %q and %q, want 198.51.100.2 and 2001:db8:42::2", ip, ip6)
	}
	if out := p1.ok("exec", "alpha", "/bin/ip", "addr", "show", "dev", "eth0"); !strings.Contains(out, "inet6 2001:db8:42::2/64") || !strings.Contains(out, "inet 198.51.100.2/24") {
		t.Errorf("alpha's eth0:\n%s", out)
	}
	// A container on node 2 pings alpha on node 1 over IPv6, then IPv4.
	for _, dst := range []string{ip6, ip} {
		if out, err := p2.container(rootfs, false, "beta", "/bin/ping", "-c", "3", "-w", "10", dst); err != nil || !strings.Contains(out, " 0% packet loss") && !strings.Contains(out, "packets received") {
			t.Errorf("beta (node 2) ping %s: %v\n%s", dst, err, out)
		}
	}
	p1.ok("rm", "-f", "-t", "0", "alpha")
	if c := cniCache(netName); len(c) != 0 {
		t.Errorf("CNI cache after podman rm: %v", c)
	}
	for i, c := range []struct {
		n      *node
		before string
	}{{n1, before1}, {n2, before2}} {
		if after := c.n.snapshot(); after != c.before {
			t.Errorf("node %d: left behind:\nbefore: %s\nafter:  %s", i+1, c.before, after)
		}
	}
}
