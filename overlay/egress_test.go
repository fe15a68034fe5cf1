package overlay

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay/egress"
	"github.com/overlaynet/overlaynet/rtnl"
)

// egressLab is two nodes and an "outside" host on one underlay L2 segment
// (a bridge in a namespace of its own), each node with an overlay, egress
// on, and one container; the containers know each other (entries
// programmed from the registry as a resolver would).
type egressLab struct {
	t       *testing.T
	nodes   []*testNode
	vteps   []netip.Addr
	ctnIPs  []netip.Prefix
	eps     []*Endpoint
	outside *rtnl.NetNS
	outName string
	outAddr netip.Addr
}

var egressVTEPs = []string{"192.0.2.2", "192.0.2.3"}

// newEgressLab builds the underlay and the nodes; before(tn) runs in each
// node's host namespace before create (to set up hostile conditions).
func newEgressLab(t *testing.T, before func(tn *testNode)) *egressLab {
	t.Helper()
	nstest.RequireTools(t, "nft", "iptables-nft", "ping")
	store := newTestStore(t)
	lab := &egressLab{t: t, outAddr: netip.MustParseAddr("192.0.2.100")}
	ul, ulName := nstest.NetNS(t, "eul")
	nstest.Run(t, ulName, "ip", "link", "add", "ulbr", "type", "bridge")
	nstest.Run(t, ulName, "ip", "link", "set", "ulbr", "up")
	plug := func(ns *rtnl.NetNS, nsName, port string, addr netip.Prefix) {
		c := nstest.Dial(t, ul)
		if err := c.LinkAdd(rtnl.NewVethPair(port, rtnl.LinkMessage{Name: "ul0", NetNSFD: ns.Fd(), Present: rtnl.LinkHasNetNSFD})); err != nil {
			t.Fatalf("underlay port %s: %v", port, err)
		}
		nstest.Run(t, ulName, "ip", "link", "set", port, "master", "ulbr", "up")
		nstest.Run(t, nsName, "ip", "addr", "add", addr.String(), "dev", "ul0")
		nstest.Run(t, nsName, "ip", "link", "set", "ul0", "up")
	}
	lab.outside, lab.outName = nstest.NetNS(t, "eout")
	plug(lab.outside, lab.outName, "p-out", netip.PrefixFrom(lab.outAddr, 24))
	for i, v := range egressVTEPs {
		tn := newTestNode(t, "en", netip.Prefix{}, store)
		plug(tn.host, tn.hostName, "p-n"+string(rune('1'+i)), netip.PrefixFrom(netip.MustParseAddr(v), 24))
		lab.nodes = append(lab.nodes, tn)
		lab.vteps = append(lab.vteps, netip.MustParseAddr(v))
		lab.ctnIPs = append(lab.ctnIPs, netip.MustParsePrefix("198.51.100."+string(rune('2'+i))+"/24"))
		if before != nil {
			before(tn)
		}
	}
	return lab
}

func egressConfig(vtep string, e *egress.Config) Config {
	cfg := testConfig(vtep)
	cfg.Egress = e
	return cfg
}

// up creates the overlays and attaches a container on each node, then
// programs each node with the other's container.
func (lab *egressLab) up(e *egress.Config) {
	t := lab.t
	t.Helper()
	for i, tn := range lab.nodes {
		tn.mustCreate(egressConfig(egressVTEPs[i], e))
		lab.eps = append(lab.eps, tn.mustAttach(AttachRequest{Name: "ctn", IP: lab.ctnIPs[i]}))
	}
	for i, tn := range lab.nodes {
		o := lab.eps[1-i]
		c := dialPath(t, tn.path("overns"))
		vx, err := c.LinkByName("vxlan1")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.NeighReplace(rtnl.ARPEntry{Ifindex: vx.Index, IP: o.IP.Addr(), MAC: o.MAC}.Message()); err != nil {
			t.Fatal(err)
		}
		if err := c.NeighReplace(rtnl.FDBEntry{Ifindex: vx.Index, MAC: o.MAC, Dst: lab.vteps[1-i]}.Message()); err != nil {
			t.Fatal(err)
		}
	}
}

// listen starts a TCP server ("tcp4" or "tcp6": network) in ns on addr
// that reports each client's source address and closes the connection.
func listen(t *testing.T, ns *rtnl.NetNS, network, addr string) (netip.AddrPort, <-chan netip.Addr) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen(network, addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	seen := make(chan netip.Addr, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			seen <- c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
			io.WriteString(c, "hello\n")
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort(), seen
}

// dialFrom connects from ns to dst and reads the greeting; it returns the
// source address the server saw.
func dialFrom(t *testing.T, ns *rtnl.NetNS, dst netip.AddrPort, seen <-chan netip.Addr) netip.Addr {
	t.Helper()
	network := "tcp4"
	if dst.Addr().Is6() {
		network = "tcp6"
	}
	err := ns.Do(func() error {
		c, err := net.DialTimeout(network, dst.String(), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil || string(b) != "hello\n" {
			return errors.Join(err, errors.New("no greeting: "+string(b)))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("TCP to %s: %v", dst, err)
	}
	select {
	case a := <-seen:
		return a
	case <-time.After(5 * time.Second):
		t.Fatalf("server at %s saw no client", dst)
	}
	return netip.Addr{}
}

func openPath(t *testing.T, path string) *rtnl.NetNS {
	t.Helper()
	ns, err := rtnl.OpenNetNS(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

func ping(t *testing.T, path, dst string) {
	t.Helper()
	out, err := outputIn(path, "ping", "-c1", "-W3", dst)
	if err != nil || !strings.Contains(out, "1 received") {
		t.Fatalf("ping %s from %s: %v\n%s", dst, filepath.Base(path), err, out)
	}
}

// check runs the acceptance of the connectivity: outside reached from
// both containers by ping and TCP, seen as the node's VTEP; container to
// container not masqueraded; each node reaching its own container.
func (lab *egressLab) check() {
	t := lab.t
	t.Helper()
	srv, seen := listen(t, lab.outside, "tcp4", lab.outAddr.String()+":0")
	for i, tn := range lab.nodes {
		ctn := tn.path("ctn")
		ping(t, ctn, lab.outAddr.String())
		if src := dialFrom(t, openPath(t, ctn), srv, seen); src != lab.vteps[i] {
			t.Errorf("outside saw container %d as %s, want its node's underlay address %s", i+1, src, lab.vteps[i])
		}
	}
	// Container to container: the receiver sees the sender's own address.
	peer, peerSeen := listen(t, openPath(t, lab.nodes[1].path("ctn")), "tcp4", lab.ctnIPs[1].Addr().String()+":0")
	ping(t, lab.nodes[0].path("ctn"), lab.ctnIPs[1].Addr().String())
	if src := dialFrom(t, openPath(t, lab.nodes[0].path("ctn")), peer, peerSeen); src != lab.ctnIPs[0].Addr() {
		t.Errorf("container 2 saw container 1 as %s, want %s (not masqueraded)", src, lab.ctnIPs[0].Addr())
	}
	// The node reaches its own container, from its underlay address.
	for i, tn := range lab.nodes {
		ctnSrv, ctnSeen := listen(t, openPath(t, tn.path("ctn")), "tcp4", lab.ctnIPs[i].Addr().String()+":0")
		ping(t, filepath.Join(rtnl.DefaultNetNSDir, tn.hostName), lab.ctnIPs[i].Addr().String())
		if src := dialFrom(t, tn.host, ctnSrv, ctnSeen); src != lab.vteps[i] {
			t.Errorf("container %d saw its node as %s, want %s", i+1, src, lab.vteps[i])
		}
	}
}

// forwarding returns every device's IPv4 forwarding value in the namespace
// at path, read from /proc (the test's cross-check of what egress set over
// netlink).
func forwarding(t *testing.T, path string) map[string]string {
	t.Helper()
	out := runIn(t, path, "sh", "-c", `for f in /proc/sys/net/ipv4/conf/*/forwarding; do echo "$f $(cat $f)"; done`)
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		m[strings.TrimSuffix(strings.TrimPrefix(f[0], "/proc/sys/net/ipv4/conf/"), "/forwarding")] = f[1]
	}
	return m
}

func (tn *testNode) hostPath() string { return filepath.Join(rtnl.DefaultNetNSDir, tn.hostName) }

func (tn *testNode) ruleset(stateless bool) string {
	args := []string{"list", "ruleset"}
	if stateless {
		args = append([]string{"-s"}, args...)
	}
	return runIn(tn.t, tn.hostPath(), "nft", args...)
}

// TestEgress: containers on two nodes reach an outside host on the
// underlay (ping, TCP) seen as their node's underlay address, and each
// other unmasqueraded; each node reaches its own container; create again
// changes nothing; reset leaves the ruleset byte-identical and forwarding
// as it was.
func TestEgress(t *testing.T) {
	lab := newEgressLab(t, nil)
	before := make([]string, 2)
	fwdBefore := make([]map[string]string, 2)
	for i, tn := range lab.nodes {
		before[i] = tn.ruleset(false)
		fwdBefore[i] = forwarding(t, tn.hostPath())
	}
	lab.up(&egress.Config{})
	lab.check()

	for i, tn := range lab.nodes {
		st, err := tn.status()
		if err != nil {
			t.Fatal(err)
		}
		e := st.Egress
		if e == nil || len(st.Problems) != 0 {
			t.Fatalf("node %d status: egress %+v, problems %q", i+1, e, st.Problems)
		}
		if e.Dev != "ul0" || e.HostIf != egress.DefaultHostIf || e.OverlayIf != egress.DefaultOverlayIf ||
			e.Link != netip.MustParsePrefix("169.254.100.0/30") || e.HostAddr != netip.MustParsePrefix("169.254.100.1/30") {
			t.Errorf("node %d egress path: %+v", i+1, e)
		}
		for _, r := range e.Routes {
			if !r.Present {
				t.Errorf("node %d route missing: %+v", i+1, r)
			}
		}
		if len(e.Forwarding) != 4 {
			t.Errorf("node %d forwarding: %+v", i+1, e.Forwarding)
		}
		for _, f := range e.Forwarding {
			if f.Value != 1 || !f.SetByEgress || f.Was != 0 {
				t.Errorf("node %d forwarding %+v", i+1, f)
			}
		}
		if len(e.Rules) != 1 || e.Rules[0].Chain != "inet overlaynet-egress postrouting" || e.Rules[0].Packets == 0 {
			t.Errorf("node %d rules: %+v", i+1, e.Rules)
		}
		fwd := forwarding(t, tn.hostPath())
		if fwd["all"] != "0" || fwd["ul0"] != "1" || fwd[egress.DefaultHostIf] != "1" || fwd["lo"] != "0" {
			t.Errorf("node %d host forwarding: %v", i+1, fwd)
		}
		ov := forwarding(t, tn.path("overns"))
		if ov["all"] != "0" || ov["br0"] != "1" || ov[egress.DefaultOverlayIf] != "1" || ov["vxlan1"] != "0" {
			t.Errorf("node %d overlay forwarding: %v", i+1, ov)
		}
		// The container's routes are the ones attach gives.
		routes := runIn(t, tn.path("ctn"), "ip", "-4", "route")
		if routes != "default via 198.51.100.1 dev eth0 \n198.51.100.0/24 dev eth0 proto kernel scope link src "+lab.ctnIPs[i].Addr().String()+" \n" {
			t.Errorf("container %d routes:\n%s", i+1, routes)
		}
	}

	// Create again: nothing changes (same rules, same handles, same
	// counters: the ruleset lists byte-identical).
	for i, tn := range lab.nodes {
		mid := tn.ruleset(false)
		links := tn.links("")
		tn.mustCreate(egressConfig(egressVTEPs[i], &egress.Config{}))
		if again := tn.ruleset(false); again != mid {
			t.Errorf("node %d: a second create changed the ruleset:\n%s\n---\n%s", i+1, mid, again)
		}
		if l := tn.links(""); !slices.Equal(l, links) {
			t.Errorf("node %d: a second create changed links %v -> %v", i+1, links, l)
		}
	}

	for i, tn := range lab.nodes {
		if err := tn.reset(); err != nil {
			t.Fatal(err)
		}
		if after := tn.ruleset(false); after != before[i] {
			t.Errorf("node %d ruleset after reset differs:\nbefore:\n%s\nafter:\n%s", i+1, before[i], after)
		}
		if fwd := forwarding(t, tn.hostPath()); !mapsEqual(fwd, fwdBefore[i]) {
			t.Errorf("node %d forwarding after reset %v, before %v", i+1, fwd, fwdBefore[i])
		}
		if l := tn.links(""); slices.Contains(l, egress.DefaultHostIf+":veth") {
			t.Errorf("node %d: node path left: %v", i+1, l)
		}
		if r := runIn(t, tn.hostPath(), "ip", "-4", "route"); strings.Contains(r, "198.51.100.0/24") {
			t.Errorf("node %d: route to the overlay left:\n%s", i+1, r)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
