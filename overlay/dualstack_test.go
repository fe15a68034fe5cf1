package overlay

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/rtnl"
)

// TestDualStackTwoNodes: a dual-stack overlay of two nodes, over an IPv4
// underlay and over an IPv6 one: each container has both addresses (the
// IPv6 one usable at once, no link-local address), a default route via
// each gateway, and two records of its MAC in the registry; br0 has both
// gateways and no link-local address, nor has vxlan1; on the IPv6 underlay
// the vxlan's local address is the VTEP and its MTU 1430. With the entries
// added by hand from the registry (an IPv6 neighbour, an FDB entry whose
// destination is the VTEP of the underlay's family), the containers ping
// each other over both families; reset leaves no record.
func TestDualStackTwoNodes(t *testing.T) {
	for _, u := range []struct {
		name       string
		vteps      [2]string
		underlay   [2]string
		wantMTU    uint32
		wantLocal6 bool
	}{
		{"ipv4 underlay", [2]string{"192.0.2.2", "192.0.2.3"}, [2]string{"192.0.2.2/24", "192.0.2.3/24"}, 1450, false},
		{"ipv6 underlay", [2]string{"2001:db8::2", "2001:db8::3"}, [2]string{"2001:db8::2/64", "2001:db8::3/64"}, 1430, true},
	} {
		t.Run(u.name, func(t *testing.T) {
			ctx := context.Background()
			store := newTestStore(t)
			n1 := newTestNode(t, "d1", netip.Prefix{}, store)
			n2 := newTestNode(t, "d2", netip.Prefix{}, store)
			joinUnderlay(t, n1, n2, netip.MustParsePrefix(u.underlay[0]), netip.MustParsePrefix(u.underlay[1]))
			nodes := []*testNode{n1, n2}
			var eps []*Endpoint
			for i, tn := range nodes {
				cfg := testConfig(u.vteps[i])
				cfg.Gateway6, cfg.MTU = netip.MustParsePrefix("2001:db8:42::1/64"), 0
				ov := tn.mustCreate(cfg)
				if ov.Config.MTU != u.wantMTU || ov.Network().Underlay6 != u.wantLocal6 {
					t.Fatalf("node %d: MTU %d, underlay6 %v", i+1, ov.Config.MTU, ov.Network().Underlay6)
				}
				eps = append(eps, tn.mustAttach(AttachRequest{Name: "ctn"}))
			}
			if eps[0].IP.String() != "198.51.100.2/24" || eps[0].IP6.String() != "2001:db8:42::2/64" || eps[1].IP6.String() != "2001:db8:42::100/64" {
				t.Fatalf("allocated %v %v and %v %v", eps[0].IP, eps[0].IP6, eps[1].IP, eps[1].IP6)
			}
			checkDualStackDevices(t, n1, eps[0], u.wantLocal6)
			// Program each node with the other's container, from the registry.
			for i, tn := range nodes {
				programFromRegistry(t, ctx, tn, eps[1-i])
			}
			for _, dst := range []string{eps[1].IP.Addr().String(), eps[1].IP6.Addr().String()} {
				if out, err := outputIn(n1.path("ctn"), "ping", "-c1", "-W2", dst); err != nil || !strings.Contains(out, "1 received") {
					t.Errorf("ping %s: %v\n%s", dst, err, out)
				}
			}
			for _, tn := range nodes {
				if err := tn.reset(); err != nil {
					t.Errorf("reset: %v", err)
				}
			}
			if files := storeFiles(t, store); len(files) != 0 {
				t.Errorf("records left after both resets: %v", files)
			}
		})
	}
}

// checkDualStackDevices checks, with iproute2, what a dual-stack overlay
// and its container ep look like on node tn.
func checkDualStackDevices(t *testing.T, tn *testNode, ep *Endpoint, local6 bool) {
	t.Helper()
	ctr, over := tn.path("ctn"), tn.path("overns")
	addrs := runIn(t, ctr, "ip", "-6", "addr", "show", "dev", "eth0")
	if !strings.Contains(addrs, ep.IP6.String()) || strings.Contains(addrs, "fe80:") || strings.Contains(addrs, "tentative") {
		t.Errorf("container's IPv6 addresses (want %s alone, not tentative):\n%s", ep.IP6, addrs)
	}
	for _, c := range [][]string{{"ip", "-4", "route", "show", "default"}, {"ip", "-6", "route", "show", "default"}} {
		if out := runIn(t, ctr, c[0], c[1:]...); !strings.Contains(out, "default via 198.51.100.1 dev eth0") && !strings.Contains(out, "default via 2001:db8:42::1 dev eth0") {
			t.Errorf("%v in the container:\n%s", c, out)
		}
	}
	if out := runIn(t, over, "ip", "-6", "addr", "show", "dev", "br0"); !strings.Contains(out, "2001:db8:42::1/64") || strings.Contains(out, "fe80:") {
		t.Errorf("br0's IPv6 addresses:\n%s", out)
	}
	for _, dev := range []string{"br0", "vxlan1", ep.HostIf} {
		if out := runIn(t, over, "ip", "-d", "link", "show", dev); !strings.Contains(out, "addrgenmode none") {
			t.Errorf("%s is not addrgenmode none:\n%s", dev, out)
		}
		if out := runIn(t, over, "ip", "-6", "addr", "show", "dev", dev); strings.Contains(out, "fe80:") {
			t.Errorf("%s has a link-local address:\n%s", dev, out)
		}
	}
	if out := runIn(t, over, "ip", "-d", "link", "show", "vxlan1"); local6 != strings.Contains(out, "local 2001:db8::") {
		t.Errorf("vxlan1 (IPv6 local %v):\n%s", local6, out)
	}
}

// programFromRegistry adds on tn's vxlan the neighbour entries of both of
// ep's addresses and the FDB entry of its MAC, as the registry gives them.
func programFromRegistry(t *testing.T, ctx context.Context, tn *testNode, ep *Endpoint) {
	t.Helper()
	c := dialPath(t, tn.path("overns"))
	vx, err := c.LinkByName("vxlan1")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ep.Addrs() {
		mac, err := tn.store.LookupMAC(ctx, p.Addr())
		if err != nil || mac != ep.MAC {
			t.Fatalf("registry: %s -> %s, %v", p.Addr(), mac, err)
		}
		if err := c.NeighReplace(rtnl.ARPEntry{Ifindex: vx.Index, IP: p.Addr(), MAC: ethaddr.MAC(mac)}.Message()); err != nil {
			t.Fatalf("neighbour entry %s: %v", p.Addr(), err)
		}
	}
	vtep, err := tn.store.LookupVTEP(ctx, ep.MAC)
	if err != nil || vtep != ep.VTEP {
		t.Fatalf("registry: %s -> %s, %v", ep.MAC, vtep, err)
	}
	if err := c.NeighReplace(rtnl.FDBEntry{Ifindex: vx.Index, MAC: ep.MAC, Dst: vtep}.Message()); err != nil {
		t.Fatalf("fdb entry: %v", err)
	}
}

// TestDualStackCreateAgain: create of a dual-stack overlay again changes
// nothing (the default IPv6 block size given or not alike); another IPv6
// gateway or none is a mismatch naming it; reset removes both gateway
// addresses of a bridge create did not make.
func TestDualStackCreateAgain(t *testing.T) {
	tn := newTestNode(t, "dca", netip.MustParsePrefix("2001:db8::2/64"), nil)
	cfg := testConfig("2001:db8::2")
	cfg.Gateway6, cfg.MTU = netip.MustParsePrefix("2001:db8:42::1/64"), 0
	tn.mustCreate(cfg)
	again := cfg
	again.BlockBits6 = DefaultBlockBits6
	if _, err := tn.create(again); err != nil {
		t.Fatalf("create again with the default block size given: %v", err)
	}
	for _, c := range []struct {
		gw6  string
		want string
	}{{"2001:db8:43::1/64", "state IPv6 gateway: want 2001:db8:43::1/64, have 2001:db8:42::1/64"}, {"", "state IPv6 gateway: want (none)"}} {
		other := cfg
		other.Gateway6 = netip.Prefix{}
		if c.gw6 != "" {
			other.Gateway6 = netip.MustParsePrefix(c.gw6)
		}
		var mm *MismatchError
		if _, err := tn.create(other); !errors.As(err, &mm) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("create with IPv6 gateway %q: %v, want a mismatch saying %q", c.gw6, err, c.want)
		}
	}
	if err := tn.reset(); err != nil {
		t.Fatal(err)
	}
}
