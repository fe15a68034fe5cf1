package guard

import (
	"net/netip"
	"testing"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/internal/spoof"
	"github.com/overlaynet/overlaynet/overlay/nft"
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
