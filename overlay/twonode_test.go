package overlay

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
)

// TestTwoNodes builds the lab's two-node overlay with the library: two node
// netns joined by an underlay veth (192.0.2.2/24, 192.0.2.3/24), each with
// its own netns dir and state dir and a shared registry; an overlay and one
// container on each; the neighbour and FDB entries then added by hand from
// the registry, as the lab did with `ip neigh add` and `bridge fdb add`; and
// a real ping from container 1 to container 2 and back.
func TestTwoNodes(t *testing.T) {
	ctx := context.Background()
	store := newTestStore(t)
	n1 := newTestNode(t, "n1", netip.Prefix{}, store)
	n2 := newTestNode(t, "n2", netip.Prefix{}, store)
	joinUnderlay(t, n1, n2, netip.MustParsePrefix("192.0.2.2/24"), netip.MustParsePrefix("192.0.2.3/24"))

	type side struct {
		tn   *testNode
		vtep string
		ip   string
		ep   *Endpoint
	}
	sides := []*side{{tn: n1, vtep: "192.0.2.2", ip: "198.51.100.2/24"}, {tn: n2, vtep: "192.0.2.3", ip: "198.51.100.3/24"}}
	for i, s := range sides {
		ov := s.tn.mustCreate(testConfig(s.vtep))
		if ov.VTEP.String() != s.vtep {
			t.Fatalf("node %d VTEP %s", i+1, ov.VTEP)
		}
		s.ep = s.tn.mustAttach(AttachRequest{Name: "ctn", IP: netip.MustParsePrefix(s.ip)})
	}
	// Program each node with the other's container, from the registry.
	for i, s := range sides {
		other := sides[1-i]
		ip := other.ep.IP.Addr()
		mac, err := store.LookupMAC(ctx, ip)
		if err != nil {
			t.Fatal(err)
		}
		vtep, err := store.LookupVTEP(ctx, mac)
		if err != nil {
			t.Fatal(err)
		}
		if mac != ethaddr.MAC(other.ep.MAC) || vtep.String() != other.vtep {
			t.Fatalf("registry says %s -> %s -> %s, want %s -> %s", ip, mac, vtep, other.ep.MAC, other.vtep)
		}
		c := dialPath(t, s.tn.path("overns"))
		vx, err := c.LinkByName("vxlan1")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.NeighReplace(rtnl.ARPEntry{Ifindex: vx.Index, IP: ip, MAC: ethaddr.MAC(mac)}.Message()); err != nil {
			t.Fatalf("neighbour entry: %v", err)
		}
		if err := c.NeighReplace(rtnl.FDBEntry{Ifindex: vx.Index, MAC: ethaddr.MAC(mac), Dst: vtep}.Message()); err != nil {
			t.Fatalf("fdb entry: %v", err)
		}
	}
	out := runIn(t, n1.path("ctn"), "ping", "-c1", "-W2", "198.51.100.3")
	if !strings.Contains(out, "1 received") {
		t.Fatalf("ping: %s", out)
	}
	t.Logf("%s", out)
	// The reply came back through node 2's overlay: its status shows the
	// entries with their states.
	st, err := n2.status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Problems) != 0 || len(st.Neighbors) == 0 || len(st.FDB) == 0 {
		t.Errorf("node 2 status: %+v", st)
	}
	for _, s := range sides {
		if err := s.tn.reset(); err != nil {
			t.Errorf("reset: %v", err)
		}
	}
	if files := storeFiles(t, store); len(files) != 0 {
		t.Errorf("records left after both resets: %v", files)
	}
}

// joinUnderlay connects two nodes' host netns with a veth pair "ul0" and
// gives each end an address (an IPv6 one usable at once: nodad).
func joinUnderlay(t *testing.T, a, b *testNode, pa, pb netip.Prefix) {
	t.Helper()
	ca, cb := nstest.Dial(t, a.host), nstest.Dial(t, b.host)
	m := rtnl.NewVethPair("ul0", rtnl.LinkMessage{Name: "ul0", NetNSFD: b.host.Fd(), Present: rtnl.LinkHasNetNSFD})
	if err := ca.LinkAdd(m); err != nil {
		t.Fatalf("underlay veth: %v", err)
	}
	for _, x := range []struct {
		c *rtnl.Conn
		p netip.Prefix
	}{{ca, pa}, {cb, pb}} {
		l, err := x.c.LinkByName("ul0")
		if err != nil {
			t.Fatal(err)
		}
		m := rtnl.NewAddress(l.Index, x.p)
		if x.p.Addr().Is6() {
			m.Flags |= rtnl.AddrNoDAD
		}
		if err := x.c.AddressAddMessage(m); err != nil {
			t.Fatal(err)
		}
		if err := x.c.LinkSetUp(l.Index); err != nil {
			t.Fatal(err)
		}
	}
}
