package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/internal/spoof"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/guard"
	"github.com/overlaynet/overlaynet/rtnl"
)

// secLab is nodes on an underlay switch (a bridge in a netns of its own),
// sharing one store, plus a stranger on the same switch at 192.0.2.9 that is
// no node of the overlay.
type secLab struct {
	t        *testing.T
	ul       string
	store    string
	nodes    []*simNode
	stranger string // netns of the stranger
}

func newSecLab(t *testing.T, store string) *secLab {
	nstest.RequireTools(t, "nft")
	if store == "" {
		store = "dir:" + t.TempDir()
	}
	_, ul := nstest.NetNS(t, "su")
	nstest.Run(t, ul, "ip", "link", "add", "br0", "type", "bridge")
	nstest.Run(t, ul, "ip", "link", "set", "br0", "up")
	l := &secLab{t: t, ul: ul, store: store}
	_, l.stranger = nstest.NetNS(t, "sx")
	l.plug(l.stranger, "192.0.2.9")
	return l
}

// plug connects netns to the underlay switch with address addr.
func (l *secLab) plug(netns, addr string) {
	port := nstest.UniqueName("p")
	nstest.Run(l.t, l.ul, "ip", "link", "add", port, "type", "veth", "peer", "name", "u0", "netns", netns)
	nstest.Run(l.t, l.ul, "ip", "link", "set", port, "master", "br0", "up")
	nstest.Run(l.t, netns, "ip", "addr", "add", addr+"/24", "dev", "u0")
	nstest.Run(l.t, netns, "ip", "link", "set", "u0", "up")
}

// addNode creates node i (192.0.2.2+i) with create done.
func (l *secLab) addNode() *simNode {
	i := len(l.nodes)
	n := newSimNode(l.t, fmt.Sprintf("s%d", i+1), l.store)
	vtep := fmt.Sprintf("192.0.2.%d", i+2)
	l.plug(n.name, vtep)
	n.ok("create", "--local", vtep)
	l.nodes = append(l.nodes, n)
	return n
}

func nodePath(n *simNode) string { return filepath.Join(rtnl.DefaultNetNSDir, n.name) }

// injected is the VXLAN datagram a host of the underlay sends to a node to
// put a UDP datagram (payload msg, from 198.51.100.77) in front of the
// container ip/mac's port 7000.
func injected(ip netip.Addr, mac ethaddr.MAC, msg string) []byte {
	inner := spoof.IPv4UDP(netip.MustParseAddr("198.51.100.77"), ip, 5000, 7000, []byte(msg))
	return spoof.VXLAN(42, spoof.Ether(mac, spoof.ParseMAC("02:42:c6:33:64:4d"), spoof.EtherIPv4, inner))
}

// status returns `overlayd status --json` of n.
func nodeStatus(t testing.TB, n *simNode) overlay.Status {
	t.Helper()
	var st overlay.Status
	if err := json.Unmarshal([]byte(n.ok("status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func payloads(rs []spoof.Received) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Payload)
	}
	return out
}

func ctrIP(s string) netip.Addr { return netip.MustParseAddr(s) }

func ctrMAC(ip string) ethaddr.MAC { return ethaddr.MAC(overlay.DeriveMAC(netip.MustParseAddr(ip))) }

// TestVTEPAllowlist: VXLAN for VNI 42 aimed at a container, from a host of
// the underlay that is no node of the overlay, is not delivered and is
// counted; the same datagram from a registered node is delivered; a node
// that joins later reaches the existing containers with its first packet;
// once it is reset, datagrams from its address are dropped again. The
// directory store.
func TestVTEPAllowlist(t *testing.T) {
	l := newSecLab(t, "")
	n1, n2 := l.addNode(), l.addNode()
	n1.ok("attach", "c1", "--ip", "198.51.100.2/24")
	n2.ok("attach", "c2", "--ip", "198.51.100.3/24")
	n1.startDaemon("--metrics", "127.0.0.1:9477")
	n2.startDaemon()
	warm(t, n2, "c2", "198.51.100.2")
	rcv, err := spoof.ListenUDP(filepath.Join(n1.dir, "c1"), netip.MustParseAddrPort("198.51.100.2:7000"))
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	c1, c1MAC := ctrIP("198.51.100.2"), ctrMAC("198.51.100.2")
	node1 := netip.MustParseAddrPort("192.0.2.2:4789")
	send := func(ns, from, msg string) {
		t.Helper()
		if err := spoof.SendUDP(ns, netip.AddrPortFrom(netip.MustParseAddr(from), 0), node1, injected(c1, c1MAC, msg)); err != nil {
			t.Fatal(err)
		}
	}
	nstest.Run(t, l.stranger, "ping", "-c1", "-W2", "192.0.2.2") // ARP resolved: nothing queued
	send(filepath.Join(rtnl.DefaultNetNSDir, l.stranger), "192.0.2.9", "from-stranger")
	send(nodePath(n2), "192.0.2.3", "from-node2")
	if got := payloads(rcv.Wait(time.Second)); !slices.Equal(got, []string{"from-node2"}) {
		t.Errorf("c1 received %q, want only the datagram from node 2", got)
	}
	st := nodeStatus(t, n1)
	if !st.Guard.AllowlistInstalled || !slices.Equal(addrs(st.Guard.Allowlist), []string{"192.0.2.2", "192.0.2.3"}) || st.Guard.VTEPDrops != 1 {
		t.Errorf("node 1's guard status: %+v, want allowlist 192.0.2.2, 192.0.2.3 and 1 drop", st.Guard)
	}
	if m := n1.scrape("127.0.0.1:9477"); !strings.Contains(m, `overlayd_guard_drops_total{reason="vtep_not_allowed"} 1`) {
		t.Errorf("metrics lack the drop:\n%s", grepLines(m, "overlayd_guard"))
	}
	text := n1.ok("status")
	if !strings.Contains(text, "192.0.2.2, 192.0.2.3 (1 dropped)") {
		t.Errorf("status text lacks the allowlist:\n%s", text)
	}

	// A node joining later is allowed before its first packet needs it:
	// by the time its daemon runs, node 1 (and 2) already allow it, and
	// none of its packets is ever dropped there.
	n3 := l.addNode()
	n3.ok("attach", "c3", "--ip", "198.51.100.4/24")
	n3.startDaemon()
	for _, n := range []*simNode{n1, n2} {
		if g := nodeStatus(t, n).Guard; !slices.Contains(addrs(g.Allowlist), "192.0.2.4") {
			t.Errorf("%s does not allow the new node yet when its daemon starts: %v", n.name, g.Allowlist)
		}
	}
	for _, dst := range []string{"198.51.100.2", "198.51.100.3"} {
		warm(t, n3, "c3", dst)
	}
	if st := nodeStatus(t, n1); st.Guard.VTEPDrops != 1 {
		t.Errorf("node 1 dropped %d datagrams, want only the stranger's 1: the new node's packets were dropped", st.Guard.VTEPDrops)
	}
	// Node 3 is reset: its address leaves node 1's allowlist.
	n3.ok("reset")
	if !waitFor(3*time.Second, func() bool { return !slices.Contains(addrs(nodeStatus(t, n1).Guard.Allowlist), "192.0.2.4") }) {
		t.Fatalf("192.0.2.4 still allowed on node 1 after node 3's reset: %v", nodeStatus(t, n1).Guard.Allowlist)
	}
	send(nodePath(n3), "192.0.2.4", "from-reset-node3")
	send(nodePath(n2), "192.0.2.3", "from-node2-again")
	if got := payloads(rcv.Wait(time.Second)); !slices.Equal(got, []string{"from-node2-again"}) {
		t.Errorf("after node 3's reset c1 received %q, want only node 2's datagram", got)
	}
	if st := nodeStatus(t, n1); st.Guard.VTEPDrops != 2 {
		t.Errorf("drops after the reset node's datagram: %d, want 2", st.Guard.VTEPDrops)
	}
}

// TestVTEPAllowlistAdvertisedNodes: on the directory store each node's
// daemon advertises its node (ROOT/nodes/<vtep>), so that the other node's
// allowlist admits it before any container is attached anywhere: the first
// packets between containers attached later never wait for the allowlist
// to see their records. The advertisement stays while the daemon is killed
// (the node is still part of the overlay) and reset withdraws it: the node
// then leaves the other node's allowlist.
func TestVTEPAllowlistAdvertisedNodes(t *testing.T) {
	nodes := newDirLab(t)
	n1, n2 := nodes[0], nodes[1]
	n1.startDaemon()
	d2 := n2.startDaemon()
	knowEachOther(t, nodes)
	advertised := func() []string {
		var out []string
		for _, f := range dirStoreFiles(t, n1.store) {
			if strings.HasPrefix(f, "nodes/") {
				out = append(out, f)
			}
		}
		return out
	}
	if got, want := advertised(), []string{"nodes/192.0.2.2", "nodes/192.0.2.3"}; !slices.Equal(got, want) {
		t.Errorf("advertised %q, want %q", got, want)
	}
	d2.cmd.Process.Signal(syscall.SIGKILL)
	<-d2.done
	if got, want := advertised(), []string{"nodes/192.0.2.2", "nodes/192.0.2.3"}; !slices.Equal(got, want) {
		t.Errorf("advertised after node 2's daemon was killed: %q, want %q", got, want)
	}
	n2.ok("reset")
	if got, want := advertised(), []string{"nodes/192.0.2.2"}; !slices.Equal(got, want) {
		t.Errorf("advertised after node 2's reset: %q, want %q", got, want)
	}
	allowed := func() []string { return addrs(nodeStatus(t, n1).Guard.Allowlist) }
	if !waitFor(3*time.Second, func() bool { return slices.Equal(allowed(), []string{"192.0.2.2"}) }) {
		t.Errorf("node 1's allowlist after node 2's reset: %v, want only itself", allowed())
	}
}

func addrs(as []netip.Addr) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

func grepLines(s, sub string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// TestAntispoofAcrossNodes: a container forging another container's source
// IP, its source MAC, or an ARP reply gets nothing delivered, neither to a
// container of its node nor across nodes; its honest traffic flows; the
// drops are counted by reason (status and metrics).
func TestAntispoofAcrossNodes(t *testing.T) {
	l := newSecLab(t, "")
	n1, n2 := l.addNode(), l.addNode()
	n1.ok("attach", "c1", "--ip", "198.51.100.2/24")
	n2.ok("attach", "c2", "--ip", "198.51.100.3/24")
	n2.ok("attach", "c4", "--ip", "198.51.100.5/24") // a neighbour of c2 on node 2
	n1.startDaemon()
	n2.startDaemon("--metrics", "127.0.0.1:9477")
	for _, dst := range []string{"198.51.100.2", "198.51.100.5"} {
		warm(t, n2, "c2", dst)
	}
	warm(t, n1, "c1", "198.51.100.1") // c1 knows its gateway
	var rcvs []*spoof.Listener
	for _, x := range []struct {
		n       *simNode
		ctr, ip string
	}{{n1, "c1", "198.51.100.2"}, {n2, "c4", "198.51.100.5"}} {
		r, err := spoof.ListenUDP(filepath.Join(x.n.dir, x.ctr), netip.AddrPortFrom(ctrIP(x.ip), 7000))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rcvs = append(rcvs, r)
	}
	c2, c2MAC := ctrIP("198.51.100.3"), ctrMAC("198.51.100.3")
	victim := ctrIP("198.51.100.5") // c4, whose address c2 forges
	c2Path := filepath.Join(n2.dir, "c2")
	for _, dst := range []struct{ ip, mac string }{{"198.51.100.2", "198.51.100.2"}, {"198.51.100.5", "198.51.100.5"}} {
		dIP, dMAC := ctrIP(dst.ip), ctrMAC(dst.mac)
		for _, f := range [][]byte{
			spoof.Ether(dMAC, c2MAC, spoof.EtherIPv4, spoof.IPv4UDP(c2, dIP, 5000, 7000, []byte("honest"))),
			spoof.Ether(dMAC, c2MAC, spoof.EtherIPv4, spoof.IPv4UDP(victim, dIP, 5000, 7000, []byte("forged-ip"))),
			spoof.Ether(dMAC, ctrMAC("198.51.100.5"), spoof.EtherIPv4, spoof.IPv4UDP(c2, dIP, 5000, 7000, []byte("forged-mac"))),
		} {
			if err := spoof.SendFrame(c2Path, "eth0", f); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, r := range rcvs {
		if got := payloads(r.Wait(time.Second)); !slices.Equal(got, []string{"honest"}) {
			t.Errorf("receiver %d got %q, want only the honest datagram", i, got)
		}
	}
	// A forged ARP reply to c1 across nodes: "the gateway is at c2's MAC",
	// once the kernel's ARP lock time (1 s) since c1 learned it has passed.
	time.Sleep(1100 * time.Millisecond)
	gw := ctrIP("198.51.100.1")
	c1MAC := ctrMAC("198.51.100.2")
	if err := spoof.SendFrame(c2Path, "eth0", spoof.Ether(c1MAC, c2MAC, spoof.EtherARP, spoof.ARPReply(c2MAC, gw, c1MAC, ctrIP("198.51.100.2")))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if neigh, _ := n1.in("c1", "ip", "neigh", "show", "198.51.100.1"); strings.Contains(neigh, overlay.DeriveMAC(c2).String()) {
		t.Errorf("c1's ARP entry for the gateway poisoned across nodes: %s", neigh)
	}
	// Honest traffic still flows.
	if out, err := pingOnce(n2, "c2", "198.51.100.2"); err != nil {
		t.Errorf("honest ping c2 -> c1 after the forgeries: %v\n%s", err, out)
	}
	var drops map[guard.Reason]uint64
	for _, p := range nodeStatus(t, n2).Guard.Ports {
		if p.HostIf == overlay.HostIfName("c2") {
			drops = p.Drops
		}
	}
	if drops[guard.ReasonSrcIP] < 2 || drops[guard.ReasonSrcMAC] < 2 || drops[guard.ReasonARPSender] < 1 {
		t.Errorf("c2's port drops %v, want src_ip >= 2, src_mac >= 2, arp_sender >= 1", drops)
	}
	m := n2.scrape("127.0.0.1:9477")
	for _, r := range []guard.Reason{guard.ReasonSrcIP, guard.ReasonSrcMAC, guard.ReasonARPSender} {
		if strings.Contains(m, fmt.Sprintf("overlayd_guard_drops_total{reason=%q} 0\n", r)) || !strings.Contains(m, fmt.Sprintf("overlayd_guard_drops_total{reason=%q}", r)) {
			t.Errorf("metrics do not count %s drops:\n%s", r, grepLines(m, "overlayd_guard"))
		}
	}
}

// TestGuardLifecycle: the rules are installed by attach and run, survive
// daemon restarts unchanged, come back after a reboot-like loss (create,
// run), are removed exactly by detach and reset: the node's ruleset outside
// overlaynet's tables, and the whole ruleset after reset, are as before
// create. With --no-antispoof and --no-vtep-filter nothing is installed.
func TestGuardLifecycle(t *testing.T) {
	l := newSecLab(t, "")
	n := l.addNode0()
	// A rule of the host's own, which must come through untouched.
	nstest.Run(t, n.name, "nft", "add", "table", "inet", "hostfw")
	nstest.Run(t, n.name, "nft", "add", "chain", "inet", "hostfw", "in", "{ type filter hook input priority 0; policy accept; }")
	nstest.Run(t, n.name, "nft", "add", "rule", "inet", "hostfw", "in", "udp", "dport", "53", "counter", "accept")
	hostBefore := nstest.Run(t, n.name, "nft", "list", "ruleset")
	n.ok("create", "--local", "192.0.2.2")
	n.ok("attach", "c1", "--ip", "198.51.100.2/24")
	n.ok("attach", "c2", "--ip", "198.51.100.3/24")
	rules := func() (host, over string) {
		h, err := nstest.Output(n.name, "nft", "list", "ruleset")
		if err != nil {
			t.Fatal(err)
		}
		o, _ := n.in("overns", "nft", "-a", "list", "table", "bridge", "overlaynet-guard")
		return h, o
	}
	n.startDaemon().stop(t)
	host1, over1 := rules()
	if !strings.Contains(host1, "table inet overlaynet-guard") || !strings.Contains(over1, "port-ve-c1") || !strings.Contains(over1, "port-ve-c2") {
		t.Fatalf("after attach and run:\nhost:\n%s\noverlay:\n%s", host1, over1)
	}
	for range 2 {
		n.startDaemon().stop(t)
	}
	n.ok("create", "--local", "192.0.2.2")
	if host2, over2 := rules(); host2 != host1 || noCounters(over2) != noCounters(over1) {
		t.Errorf("restarts and a second create changed the rules:\n%s\n%s\n---\n%s\n%s", host1, over1, host2, over2)
	}
	// Detach removes c1's rules exactly.
	n.ok("detach", "c1")
	_, over3 := rules()
	if strings.Contains(over3, "ve-c1") || !strings.Contains(over3, "port-ve-c2") {
		t.Errorf("after detach c1:\n%s", over3)
	}
	// Every rule left is one from before, same handle; every rule of c2 is left.
	before, after := strings.Split(noCounters(over1), "\n"), strings.Split(noCounters(over3), "\n")
	for _, line := range after {
		if !slices.Contains(before, line) {
			t.Errorf("detach changed or added %q", line)
		}
	}
	for _, line := range before {
		if strings.Contains(line, "ve-c2") && !slices.Contains(after, line) {
			t.Errorf("detach of c1 removed %q", line)
		}
	}
	// A reboot-like loss of the overlay namespace's ruleset: create puts
	// c2's rules back; so does run.
	n.in("overns", "nft", "flush", "ruleset")
	if st := nodeStatus(t, n); !slices.ContainsFunc(st.Problems, func(p string) bool { return strings.Contains(p, "no anti-spoofing rules") }) {
		t.Errorf("status does not report the lost rules: %q", st.Problems)
	}
	n.ok("create", "--local", "192.0.2.2")
	if _, o := rules(); !strings.Contains(o, "port-ve-c2") {
		t.Errorf("create did not restore the rules:\n%s", o)
	}
	n.in("overns", "nft", "flush", "ruleset")
	nstest.Run(t, n.name, "nft", "delete", "table", "inet", "overlaynet-guard")
	n.startDaemon().stop(t)
	if h, o := rules(); !strings.Contains(o, "port-ve-c2") || !strings.Contains(h, "overlaynet-guard") {
		t.Errorf("run did not restore the rules:\n%s\n%s", h, o)
	}
	if st := nodeStatus(t, n); len(st.Problems) != 0 || len(st.Guard.Ports) != 1 || !st.Guard.Ports[0].Dispatched {
		t.Errorf("status after the restore: problems %q, ports %+v", st.Problems, st.Guard.Ports)
	}
	n.ok("reset")
	if got := nstest.Run(t, n.name, "nft", "list", "ruleset"); got != hostBefore {
		t.Errorf("ruleset after reset:\n%s\nbefore create:\n%s", got, hostBefore)
	}

	// The opt-outs install nothing.
	n.ok("create", "--local", "192.0.2.2", "--no-vtep-filter", "--no-antispoof")
	n.ok("attach", "c1", "--ip", "198.51.100.2/24")
	n.startDaemon().stop(t)
	if h, o := rules(); strings.Contains(h, "overlaynet-guard") || o != "" {
		t.Errorf("with the opt-outs:\nhost:\n%s\noverlay:\n%s", h, o)
	}
	st := nodeStatus(t, n)
	if st.Guard.VTEPFilter || st.Guard.Antispoof || len(st.Problems) != 0 {
		t.Errorf("status with the opt-outs: %+v %q", st.Guard, st.Problems)
	}
}

// addNode0 is a node plugged into the underlay at 192.0.2.2 without create.
func (l *secLab) addNode0() *simNode {
	n := newSimNode(l.t, "s1", l.store)
	l.plug(n.name, "192.0.2.2")
	l.nodes = append(l.nodes, n)
	return n
}

// noCounters drops the counter values from nft output (handles stay: a
// rule put back would have another one).
func noCounters(s string) string {
	return regexp.MustCompile(`counter packets \d+ bytes \d+`).ReplaceAllString(s, "counter")
}

// warm pings dst from ctr of n until a reply (at most 3 tries: the first
// misses of the directory store's reactive mode are resolved meanwhile).
func warm(t *testing.T, n *simNode, ctr, dst string) {
	t.Helper()
	var out string
	var err error
	for range 3 {
		if out, err = pingOnce(n, ctr, dst); err == nil {
			return
		}
	}
	t.Fatalf("%s on %s -> %s: no reply in 3 pings: %v\n%s", ctr, n.name, dst, err, out)
}

// TestMetricsExposure: `run --metrics :PORT` serves the metrics on every
// address of the node's namespace — a host of the underlay reaches them,
// and so does a container of the node, at the node's underlay address
// through egress — and the daemon warns so, naming those addresses and
// 127.0.0.1:PORT instead; with 127.0.0.1:PORT neither reaches them and
// nothing is warned. As the README says.
func TestMetricsExposure(t *testing.T) {
	l := newSecLab(t, "")
	n := l.addNode()
	n.ok("attach", "c1", "--ip", "198.51.100.2/24")
	ctr := filepath.Join(n.dir, "c1")
	stranger := filepath.Join(rtnl.DefaultNetNSDir, l.stranger)
	d := n.startDaemon("--metrics", ":9478")
	var warning string
	for line := range strings.SplitSeq(d.String(), "\n") {
		if strings.Contains(line, "metrics are served on every address") {
			warning = line
		}
	}
	for _, want := range []string{"level=WARN", "192.0.2.2", "169.254.100.1", "containers included", "instead=127.0.0.1:9478"} {
		if !strings.Contains(warning, want) {
			t.Errorf("the warning lacks %q: %q\n%s", want, warning, d)
		}
	}
	for _, from := range []string{ctr, stranger} {
		if m, err := scrapeIn(from, "192.0.2.2:9478"); err != nil || !strings.Contains(m, "overlayd_misses_total") {
			t.Errorf("from %s, the metrics at 192.0.2.2:9478: %v, want them served", from, err)
		}
	}
	d.stop(t)

	d = n.startDaemon("--metrics", "127.0.0.1:9478")
	if strings.Contains(d.String(), "metrics are served on every address") {
		t.Errorf("warned with a loopback address:\n%s", d)
	}
	for _, from := range []string{ctr, stranger} {
		if _, err := scrapeIn(from, "192.0.2.2:9478"); err == nil {
			t.Errorf("from %s, the metrics at 192.0.2.2:9478 are served with --metrics 127.0.0.1:9478", from)
		}
	}
	if m := n.scrape("127.0.0.1:9478"); !strings.Contains(m, "overlayd_misses_total") {
		t.Errorf("the node does not reach its metrics at 127.0.0.1:9478:\n%s", m)
	}
}

// scrapeIn fetches /metrics from addr inside the network namespace at
// path (a plain TCP connection opened on a thread in it).
func scrapeIn(path, addr string) (string, error) {
	ns, err := rtnl.OpenNetNS(path)
	if err != nil {
		return "", err
	}
	defer ns.Close()
	var conn net.Conn
	if err := ns.Do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", addr, 2*time.Second)
		return err
	}); err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
	body, err := io.ReadAll(conn)
	return string(body), err
}
