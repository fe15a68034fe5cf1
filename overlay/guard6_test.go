package overlay

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/spoof"
	"github.com/overlaynet/overlaynet/overlay/guard"
)

// TestGuardIPv6Lifecycle: on a dual-stack node, attach installs a port's
// IPv6 guard before the port joins the bridge (status shows both families
// guarded); a container forging another's IPv6 source, a Neighbor
// Advertisement for its neighbour's address or a Router Advertisement
// reaches nothing, and status counts each by reason, while its honest IPv6
// traffic (ping, Neighbor Discovery of its own address) flows; a container
// given IPv4 alone (--only ipv4) has its IPv6 dropped as an ethertype;
// after a loss of the overlay namespace's ruleset create puts the IPv6
// rules back; detach removes a port's rules and reset leaves no rule.
func TestGuardIPv6Lifecycle(t *testing.T) {
	tn := newTestNode(t, "g6", netip.MustParsePrefix("192.0.2.2/24"), nil)
	cfg := testConfig("192.0.2.2")
	cfg.Gateway6 = netip.MustParsePrefix("2001:db8:42::1/64")
	tn.mustCreate(cfg)
	c1 := tn.mustAttach(AttachRequest{Name: "c1"})
	c2 := tn.mustAttach(AttachRequest{Name: "c2"})
	v4 := tn.mustAttach(AttachRequest{Name: "v4", Only: IPv4})
	ports := func() map[string]guard.PortRules {
		t.Helper()
		st, err := tn.status()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]guard.PortRules{}
		for _, p := range st.Guard.Ports {
			out[p.HostIf] = p
		}
		return out
	}
	p := ports()
	if x := p[c2.HostIf]; !x.IPv4 || !x.IPv6 || !x.Dispatched {
		t.Fatalf("c2's port %+v, want both families guarded", x)
	}
	if x := p[v4.HostIf]; !x.IPv4 || x.IPv6 {
		t.Fatalf("the IPv4-only container's port %+v", x)
	}
	ping6 := func(from string, dst netip.Addr) {
		t.Helper()
		if out, err := outputIn(tn.path(from), "ping", "-6", "-c1", "-W2", dst.String()); err != nil || !strings.Contains(out, "1 received") {
			t.Fatalf("ping -6 %s from %s: %v\n%s", dst, from, err, out)
		}
	}
	ping6("c2", c1.IP6.Addr())
	ping6("c1", cfg.Gateway6.Addr())
	time.Sleep(1100 * time.Millisecond) // past the neighbour entries' lock time

	sn, err := spoof.Sniff(tn.path("c1"), "eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	a2, a1, gw := c2.IP6.Addr(), c1.IP6.Addr(), cfg.Gateway6.Addr()
	allNodes := netip.MustParseAddr("ff02::1")
	from := func(mac ethaddr.MAC, dst ethaddr.MAC, pkt []byte) []byte {
		return spoof.Ether(dst, mac, spoof.EtherIPv6, pkt)
	}
	honest := from(c2.MAC, c1.MAC, spoof.UDP6(a2, a1, 5000, 7000, []byte("honest")))
	forged := map[guard.Reason][]byte{
		guard.ReasonSrcIP:        from(c2.MAC, c1.MAC, spoof.UDP6(netip.MustParseAddr("2001:db8:42::77"), a1, 5000, 7000, []byte("forged"))),
		guard.ReasonNDTarget:     from(c2.MAC, spoof.MulticastMAC(allNodes), spoof.ICMPv6(a2, allNodes, spoof.ICMPv6NA, 0, spoof.NA(spoof.NAOverride, gw, c2.MAC))),
		guard.ReasonRouterAdvert: from(c2.MAC, spoof.MulticastMAC(allNodes), spoof.ICMPv6(guard.LinkLocal(c2.MAC), allNodes, spoof.ICMPv6RA, 0, spoof.RA(1800, c2.MAC, netip.MustParsePrefix("2001:db8:77::/64")))),
	}
	for _, f := range append([][]byte{honest}, forged[guard.ReasonSrcIP], forged[guard.ReasonNDTarget], forged[guard.ReasonRouterAdvert]) {
		if err := spoof.SendFrame(tn.path("c2"), "eth0", f); err != nil {
			t.Fatal(err)
		}
	}
	// An IPv6 frame from the container without an IPv6 address.
	if err := spoof.SendFrame(tn.path("v4"), "eth0", from(v4.MAC, c1.MAC, spoof.UDP6(guard.LinkLocal(v4.MAC), a1, 5000, 7000, []byte("v4")))); err != nil {
		t.Fatal(err)
	}
	got := sn.Frames(700 * time.Millisecond)
	has := func(f []byte) bool {
		for _, g := range got {
			if bytes.Equal(g, f) {
				return true
			}
		}
		return false
	}
	if !has(honest) {
		t.Error("the honest frame did not reach c1")
	}
	p = ports()
	for r, f := range forged {
		if has(f) {
			t.Errorf("%s frame reached c1", r)
		}
		if p[c2.HostIf].Drops[r] == 0 {
			t.Errorf("status counts no %s drop on c2's port: %v", r, p[c2.HostIf].Drops)
		}
	}
	if p[v4.HostIf].Drops[guard.ReasonEtherType] == 0 {
		t.Errorf("IPv6 of the IPv4-only container not dropped as an ethertype: %v", p[v4.HostIf].Drops)
	}
	if neigh := runIn(t, tn.path("c1"), "ip", "-6", "neigh", "show", gw.String()); strings.Contains(neigh, c2.MAC.String()) {
		t.Errorf("c1's neighbour entry for the gateway poisoned: %s", neigh)
	}
	ping6("c2", c1.IP6.Addr())

	// A lost ruleset: create puts the IPv6 rules back.
	runIn(t, tn.path("overns"), "nft", "flush", "ruleset")
	tn.mustCreate(cfg)
	if x := ports()[c2.HostIf]; !x.IPv6 || !x.Dispatched {
		t.Errorf("after create on a flushed ruleset, c2's port %+v", x)
	}
	if err := tn.detach("c2"); err != nil {
		t.Fatal(err)
	}
	if out := runIn(t, tn.path("overns"), "nft", "list", "ruleset"); strings.Contains(out, c2.HostIf) || !strings.Contains(out, c1.HostIf+" src_ip ip6") {
		t.Errorf("after detach c2:\n%s", out)
	}
	if err := tn.reset(); err != nil {
		t.Fatal(err)
	}
}
