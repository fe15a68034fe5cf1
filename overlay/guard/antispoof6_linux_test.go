package guard

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/internal/spoof"
	"github.com/overlaynet/overlaynet/overlay/nft"
	"github.com/overlaynet/overlaynet/rtnl"
)

// TestAntispoofIPv6Source: the first step of the IPv6 guard. A port with
// an IPv6 address lets through its container's IPv6 packets from that
// address (and neighbour discovery, no DAD: nodad), drops those from
// another source (src_ip); a port with an IPv4 address only drops IPv6 at
// the port (ethertype), as before dual-stack.
func TestAntispoofIPv6Source(t *testing.T) {
	nstest.RequireTools(t, "nft")
	ons, over := nstest.NetNS(t, "g6o")
	_, a := nstest.NetNS(t, "g6a")
	_, b := nstest.NetNS(t, "g6b")
	_, c4 := nstest.NetNS(t, "g6c")
	nstest.Run(t, over, "ip", "link", "add", "br0", "type", "bridge")
	nstest.Run(t, over, "ip", "link", "set", "br0", "addrgenmode", "none")
	nstest.Run(t, over, "ip", "link", "set", "br0", "up")
	nc := dial(t, ons)
	ports := []struct {
		ns, host, mac, ip4, ip6 string
	}{
		{a, "va", "02:42:c6:33:64:02", "198.51.100.2", "2001:db8:42::2"},
		{b, "vb", "02:42:c6:33:64:03", "198.51.100.3", "2001:db8:42::3"},
		{c4, "vc", "02:42:c6:33:64:04", "198.51.100.4", ""}, // an IPv4-only container
	}
	for _, p := range ports {
		gp := Port{HostIf: p.host, MAC: spoof.ParseMAC(p.mac), IP: netip.MustParseAddr(p.ip4)}
		if p.ip6 != "" {
			gp.IP6 = netip.MustParseAddr(p.ip6)
		}
		if err := InstallPort(nc, gp); err != nil {
			t.Fatal(err)
		}
		nstest.Run(t, over, "ip", "link", "add", p.host, "type", "veth", "peer", "name", "eth0", "netns", p.ns)
		nstest.Run(t, over, "ip", "link", "set", p.host, "addrgenmode", "none")
		nstest.Run(t, over, "ip", "link", "set", p.host, "master", "br0", "up")
		nstest.Run(t, p.ns, "ip", "link", "set", "eth0", "address", p.mac, "addrgenmode", "none")
		nstest.Run(t, p.ns, "ip", "addr", "add", p.ip4+"/24", "dev", "eth0")
		if p.ip6 != "" {
			nstest.Run(t, p.ns, "ip", "addr", "add", p.ip6+"/64", "dev", "eth0", "nodad")
		}
		if p.ns == a { // a source a has no right to
			nstest.Run(t, p.ns, "ip", "addr", "add", "2001:db8:42::99/64", "dev", "eth0", "nodad")
		}
		nstest.Run(t, p.ns, "ip", "link", "set", "eth0", "up")
	}
	if _, err := nstest.Output(a, "ping", "-6", "-c1", "-W2", "-I", "2001:db8:42::2", "2001:db8:42::3"); err != nil {
		t.Errorf("honest IPv6 ping a -> b: %v", err)
	}
	if _, err := nstest.Output(a, "ping", "-6", "-c1", "-W1", "-I", "2001:db8:42::99", "2001:db8:42::3"); err == nil {
		t.Error("a ping from a forged IPv6 source was answered")
	}
	if d := portDrops(t, nc, "va"); d[ReasonSrcIP] == 0 {
		t.Errorf("a's drops %v: the forged source not counted as src_ip", d)
	}
	nstest.Run(t, c4, "ip", "addr", "add", "2001:db8:42::4/64", "dev", "eth0", "nodad")
	if _, err := nstest.Output(c4, "ping", "-6", "-c1", "-W1", "2001:db8:42::3"); err == nil {
		t.Error("an IPv4-only container's IPv6 ping was answered")
	}
	if d := portDrops(t, nc, "vc"); d[ReasonEtherType] == 0 {
		t.Errorf("c's drops %v: its IPv6 not counted as ethertype", d)
	}
}

// portDrops is the drops of hostIf's rules.
func portDrops(t *testing.T, c *nft.Conn, hostIf string) map[Reason]uint64 {
	t.Helper()
	ports, err := Ports(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		if p.HostIf == hostIf {
			return p.Drops
		}
	}
	t.Fatalf("port %s not guarded", hostIf)
	return nil
}

// portLab6 is a dual-stack bridge with two guarded container ports, a and
// b, as attach makes them: each container's IPv6 address usable at once
// (nodad); their link-local addresses are left to the kernel (from their
// MAC), as a container that makes one has them.
type portLab6 struct {
	*portLab
	ip6A, ip6B, gw6 netip.Addr
}

func newPortLab6(t *testing.T) *portLab6 {
	nstest.RequireTools(t, "nft", "ping")
	ons, over := nstest.NetNS(t, "g6o")
	_, a := nstest.NetNS(t, "g6a")
	_, b := nstest.NetNS(t, "g6b")
	l := &portLab6{portLab: &portLab{over: over, a: a, b: b,
		macA: spoof.ParseMAC("02:42:c6:33:64:02"), macB: spoof.ParseMAC("02:42:c6:33:64:03"),
		ipA: netip.MustParseAddr("198.51.100.2"), ipB: netip.MustParseAddr("198.51.100.3")},
		ip6A: netip.MustParseAddr("2001:db8:42::2"), ip6B: netip.MustParseAddr("2001:db8:42::3"), gw6: netip.MustParseAddr("2001:db8:42::1")}
	nstest.Run(t, over, "ip", "link", "add", "br0", "type", "bridge")
	nstest.Run(t, over, "ip", "link", "set", "br0", "addrgenmode", "none")
	nstest.Run(t, over, "ip", "addr", "add", "198.51.100.1/24", "dev", "br0")
	nstest.Run(t, over, "ip", "addr", "add", l.gw6.String()+"/64", "dev", "br0", "nodad")
	nstest.Run(t, over, "ip", "link", "set", "br0", "up")
	l.c = dial(t, ons)
	for _, p := range []struct {
		ns, host string
		mac      ethaddr.MAC
		ip, ip6  netip.Addr
	}{{a, "va", l.macA, l.ipA, l.ip6A}, {b, "vb", l.macB, l.ipB, l.ip6B}} {
		if err := InstallPort(l.c, Port{HostIf: p.host, MAC: p.mac, IP: p.ip, IP6: p.ip6}); err != nil {
			t.Fatal(err)
		}
		nstest.Run(t, over, "ip", "link", "add", p.host, "type", "veth", "peer", "name", "eth0", "netns", p.ns)
		nstest.Run(t, over, "ip", "link", "set", p.host, "addrgenmode", "none")
		nstest.Run(t, over, "ip", "link", "set", p.host, "master", "br0", "up")
		nstest.Run(t, p.ns, "ip", "link", "set", "eth0", "address", netMAC(p.mac))
		nstest.Run(t, p.ns, "ip", "addr", "add", p.ip.String()+"/24", "dev", "eth0")
		nstest.Run(t, p.ns, "ip", "addr", "add", p.ip6.String()+"/64", "dev", "eth0", "nodad")
		nstest.Run(t, p.ns, "ip", "link", "set", "eth0", "up")
		nstest.Run(t, p.ns, "ip", "-6", "route", "add", "default", "via", l.gw6.String(), "dev", "eth0")
	}
	return l
}

// send sends each frame from a's eth0.
func (l *portLab6) send(t *testing.T, frames ...[]byte) {
	t.Helper()
	for _, f := range frames {
		if err := spoof.SendFrame(nsPath(l.a), "eth0", f); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAntispoofIPv6: a container's IPv6 frames with another source
// address (another container's, a link-local address not its own, the
// unspecified address outside ICMPv6), Neighbor Advertisements for
// another's address or naming another MAC, a duplicate address probe for
// another's address, Router Advertisements, redirects and DHCPv6 server
// replies are dropped at its port, each counted by its reason, and none
// reaches the other container (its interface receives none of those
// frames, its neighbour entry for the gateway and its routes are
// unchanged); its honest IPv6 traffic flows: Neighbor Discovery of its
// own addresses (from its global and its link-local address), ping, UDP
// and TCP, before and after the forgeries.
func TestAntispoofIPv6(t *testing.T) {
	l := newPortLab6(t)
	ll := LinkLocal(l.macA)
	waitLinkLocal(t, l.a, ll)
	for _, dst := range []netip.Addr{l.ip6B, l.gw6} {
		if out, err := nstest.Output(l.a, "ping", "-6", "-c1", "-W2", dst.String()); err != nil {
			t.Fatalf("honest ping -6 a -> %s: %v\n%s", dst, err, out)
		}
	}
	// b knows the gateway; the kernel's lock time (1 s) passes, so that an
	// advertisement would overwrite b's entry.
	if out, err := nstest.Output(l.b, "ping", "-6", "-c1", "-W2", l.gw6.String()); err != nil {
		t.Fatalf("ping -6 b -> gateway: %v\n%s", err, out)
	}
	time.Sleep(1200 * time.Millisecond)
	sn, err := spoof.Sniff(nsPath(l.b), "eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	allNodes := netip.MustParseAddr("ff02::1")
	other := spoof.ParseMAC("02:42:c6:33:64:09")
	toB := func(ethDst ethaddr.MAC, pkt []byte) []byte { return spoof.Ether(ethDst, l.macA, spoof.EtherIPv6, pkt) }
	honest := [][]byte{
		toB(l.macB, spoof.UDP6(l.ip6A, l.ip6B, 5000, 7000, []byte("honest"))),
		toB(l.macB, spoof.UDP6(ll, l.ip6B, 5000, 7000, []byte("honest from link-local"))),
		toB(l.macB, spoof.ICMPv6(l.ip6A, l.ip6B, spoof.ICMPv6NA, 0, spoof.NA(spoof.NASolicited|spoof.NAOverride, l.ip6A, l.macA))),
		toB(spoof.MulticastMAC(spoof.SolicitedNode(l.ip6B)), spoof.ICMPv6(l.ip6A, spoof.SolicitedNode(l.ip6B), spoof.ICMPv6NS, 0,
			spoof.NS(l.ip6B, spoof.LLAddrOption(1, l.macA)))),
		toB(spoof.MulticastMAC(spoof.SolicitedNode(l.ip6A)), spoof.ICMPv6(netip.IPv6Unspecified(), spoof.SolicitedNode(l.ip6A), spoof.ICMPv6NS, 0, spoof.NS(l.ip6A))),
	}
	forged := map[Reason][][]byte{
		ReasonSrcIP: {
			toB(l.macB, spoof.UDP6(netip.MustParseAddr("2001:db8:42::9"), l.ip6B, 5000, 7000, []byte("another's source"))),
			toB(l.macB, spoof.UDP6(l.ip6B, l.ip6B, 5000, 7000, []byte("b's own source"))),
			toB(l.macB, spoof.UDP6(LinkLocal(other), l.ip6B, 5000, 7000, []byte("another link-local source"))),
			toB(l.macB, spoof.UDP6(netip.IPv6Unspecified(), l.ip6B, 5000, 7000, []byte("unspecified to unicast"))),
			toB(spoof.MulticastMAC(allNodes), spoof.UDP6(netip.IPv6Unspecified(), allNodes, 5000, 7000, []byte("unspecified, UDP"))),
		},
		ReasonNDTarget: {
			// "The gateway is at a's MAC", and "b's address is at a's".
			toB(spoof.MulticastMAC(allNodes), spoof.ICMPv6(l.ip6A, allNodes, spoof.ICMPv6NA, 0, spoof.NA(spoof.NAOverride, l.gw6, l.macA))),
			toB(l.macB, spoof.ICMPv6(ll, l.ip6B, spoof.ICMPv6NA, 0, spoof.NA(spoof.NASolicited|spoof.NAOverride, l.ip6B, l.macA))),
			// A duplicate address probe for b's address.
			toB(spoof.MulticastMAC(spoof.SolicitedNode(l.ip6B)), spoof.ICMPv6(netip.IPv6Unspecified(), spoof.SolicitedNode(l.ip6B), spoof.ICMPv6NS, 0, spoof.NS(l.ip6B))),
		},
		ReasonNDLLAddr: {
			toB(l.macB, spoof.ICMPv6(l.ip6A, l.ip6B, spoof.ICMPv6NA, 0, spoof.NA(spoof.NAOverride, l.ip6A, other))),
			toB(spoof.MulticastMAC(spoof.SolicitedNode(l.gw6)), spoof.ICMPv6(l.ip6A, spoof.SolicitedNode(l.gw6), spoof.ICMPv6NS, 0,
				spoof.NS(l.gw6, spoof.LLAddrOption(1, other)))),
			// A second option could hide another MAC.
			toB(l.macB, spoof.ICMPv6(l.ip6A, l.ip6B, spoof.ICMPv6NS, 0, spoof.NS(l.ip6B, spoof.LLAddrOption(14, l.macA), spoof.LLAddrOption(1, other)))),
		},
		ReasonRouterAdvert: {
			toB(spoof.MulticastMAC(allNodes), spoof.ICMPv6(ll, allNodes, spoof.ICMPv6RA, 0, spoof.RA(1800, l.macA, netip.MustParsePrefix("2001:db8:77::/64")))),
		},
		ReasonRedirect: {
			toB(l.macB, spoof.ICMPv6(ll, l.ip6B, spoof.ICMPv6Redirect, 0, spoof.Redirect(ll, netip.MustParseAddr("2001:db8:99::1")))),
		},
		ReasonDHCP6Server: {
			toB(l.macB, spoof.UDP6(ll, LinkLocal(l.macB), 547, 546, []byte("dhcpv6 advertise"))),
			toB(l.macB, spoof.UDP6(l.ip6A, l.ip6B, 547, 546, []byte("dhcpv6 reply"))),
		},
	}
	l.send(t, honest...)
	for _, fs := range forged {
		l.send(t, fs...)
	}
	received := sn.Frames(700 * time.Millisecond)
	for i, f := range honest {
		if !containsFrame(received, f) {
			t.Errorf("honest frame %d not delivered to b", i)
		}
	}
	d := l.drops(t, "va")
	for r, fs := range forged {
		for i, f := range fs {
			if containsFrame(received, f) {
				t.Errorf("forged frame %s %d delivered to b", r, i)
			}
		}
		if d[r] < uint64(len(fs)) {
			t.Errorf("drops %s = %d, want at least %d (all drops %v)", r, d[r], len(fs), d)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if neigh := nstest.Run(t, l.b, "ip", "-6", "neigh", "show", l.gw6.String()); strings.Contains(neigh, netMAC(l.macA)) {
		t.Errorf("b's neighbour entry for the gateway poisoned: %s", neigh)
	}
	if routes := nstest.Run(t, l.b, "ip", "-6", "route"); strings.Contains(routes, "via fe80::") || strings.Contains(routes, "2001:db8:77") {
		t.Errorf("b took the Router Advertisement:\n%s", routes)
	}
	// Honest traffic still flows, by the kernel's own Neighbor Discovery.
	nstest.Run(t, l.a, "ip", "-6", "neigh", "flush", "dev", "eth0")
	if out, err := nstest.Output(l.a, "ping", "-6", "-c1", "-W2", l.ip6B.String()); err != nil {
		t.Errorf("honest ping -6 after the forgeries: %v\n%s", err, out)
	}
	tcp6(t, l.a, l.b, l.ip6B)
	if n := nstest.Run(t, l.over, "nft", "list", "chain", "bridge", "overlaynet-guard", "port-va"); !strings.Contains(n, "icmpv6 type nd-router-advert") {
		t.Errorf("nft does not list the RA guard readably:\n%s", n)
	}
}

// waitLinkLocal waits until the container ns has its link-local address
// ll, past duplicate address detection.
func waitLinkLocal(t *testing.T, ns string, ll netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := nstest.Run(t, ns, "ip", "-6", "addr", "show", "dev", "eth0", "scope", "link")
		if strings.Contains(out, ll.String()) && !strings.Contains(out, "tentative") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no usable link-local address %s in %s:\n%s", ll, ns, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func containsFrame(frames [][]byte, f []byte) bool {
	for _, g := range frames {
		if bytes.Equal(g, f) {
			return true
		}
	}
	return false
}

// tcp6 connects from namespace a to a server in b on ip over TCP and reads
// its greeting.
func tcp6(t *testing.T, a, b string, ip netip.Addr) {
	t.Helper()
	ns, err := rtnl.OpenNetNS(nsPath(b))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp6", netip.AddrPortFrom(ip, 0).String()); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			io.WriteString(c, "hello6\n")
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := nstest.DialContext(ctx, nsPath(a), "tcp6", ln.Addr().String())
	if err != nil {
		t.Fatalf("TCP over IPv6: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(c); err != nil || string(got) != "hello6\n" {
		t.Errorf("TCP over IPv6: %q, %v", got, err)
	}
}
