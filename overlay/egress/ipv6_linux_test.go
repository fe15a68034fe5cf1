package egress

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
)

// newNode6 is newNode on a dual-stack overlay: the underlay device has an
// IPv6 address too, the bridge the IPv6 gateway.
func newNode6(t *testing.T) *node {
	t.Helper()
	nstest.RequireTools(t, "ip6tables-nft")
	n := newNode(t)
	nstest.Run(t, n.hostName, "ip", "addr", "add", "2001:db8::2/64", "dev", "ul0", "nodad")
	nstest.Run(t, n.ovName, "ip", "addr", "add", "2001:db8:42::1/64", "dev", "br0", "nodad")
	// No link-local address under duplicate address detection while the
	// test compares addresses (create leaves br0 without one).
	nstest.Run(t, n.ovName, "ip", "link", "set", "br0", "addrgenmode", "none")
	nstest.Run(t, n.ovName, "ip", "-6", "addr", "flush", "dev", "br0", "scope", "link")
	n.p.Subnet6 = netip.MustParsePrefix("2001:db8:42::/64")
	return n
}

// snapshot6 is snapshot with what Setup may change for IPv6: addresses,
// routes and every IPv6 setting of every device (/proc/sys).
func (n *node) snapshot6() string {
	var b strings.Builder
	b.WriteString(n.snapshot())
	for _, ns := range []string{n.hostName, n.ovName} {
		for _, args := range [][]string{
			{"ip", "-o", "-6", "addr"},
			{"ip", "-6", "route"},
			{"sh", "-c", "grep -s . /proc/sys/net/ipv6/conf/*/* || true"},
		} {
			b.WriteString(nstest.Run(n.t, ns, args[0], args[1:]...))
		}
	}
	return b.String()
}

// TestSetupRollback6: on a dual-stack node whose IPv4 and IPv6 FORWARD
// policies are drop, Setup's steps include the IPv6 ones (link-local
// addresses, routes, force_forwarding per device), and a failure after any
// of them leaves the node as it was, every IPv6 setting of every device
// included; Teardown does too; a second Setup changes nothing.
func TestSetupRollback6(t *testing.T) {
	n := newNode6(t)
	nstest.Run(t, n.hostName, "iptables-nft", "-P", "FORWARD", "DROP")
	nstest.Run(t, n.hostName, "ip6tables-nft", "-P", "FORWARD", "DROP")
	before := n.snapshot6()
	t.Cleanup(func() { n.p.hook = nil })
	var all []string
	n.p.hook = func(s string) error { all = append(all, s); return nil }
	st, _, err := n.setup(Config{}, nil)
	n.p.hook = nil
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"veth", "host-address", "overlay-address", "host-address6", "overlay-address6", "bridge-address6", "up",
		"default-route", "subnet-route", "default-route6", "subnet-route6",
		"forwarding br0", "forwarding egress0", "forwarding overlay0", "forwarding ul0",
		"forwarding6 br0", "forwarding6 egress0", "forwarding6 overlay0", "forwarding6 ul0",
		"table", "masquerade", "accept ip filter FORWARD", "accept ip6 filter FORWARD"}
	if !slices.Equal(all, want) {
		t.Errorf("steps %q, want %q", all, want)
	}
	if st.IPv6 == nil || st.IPv6.Mode != Mode6Masquerade || st.IPv6.Dev != "ul0" || st.IPv6.Src != netip.MustParseAddr("2001:db8::2") ||
		!st.IPv6.CreatedBridgeAddr || len(st.Forwarding) != 8 {
		t.Fatalf("state %+v, IPv6 %+v", st, st.IPv6)
	}
	made := n.snapshot6()
	for _, w := range []string{
		"default via fe80::1 dev egress0", "2001:db8:42::/64 via fe80::2 dev overlay0 proto static src 2001:db8::2",
		"br0    inet6 fe80::3/64 scope link nodad",
		"/proc/sys/net/ipv6/conf/ul0/force_forwarding:1", "/proc/sys/net/ipv6/conf/br0/force_forwarding:1",
		`ip6 saddr 2001:db8:42::/64 ip6 daddr != 2001:db8:42::/64 oifname "ul0" counter packets 0 bytes 0 masquerade comment "overlaynet-egress masquerade ipv6"`,
		`ip6 saddr 2001:db8:42::/64 counter packets 0 bytes 0 accept comment "overlaynet-egress accept from 2001:db8:42::/64"`,
	} {
		if !strings.Contains(made, w) {
			t.Errorf("after Setup, no %q in:\n%s", w, made)
		}
	}
	if strings.Contains(made, "/proc/sys/net/ipv6/conf/all/forwarding:1") || strings.Contains(made, "/proc/sys/net/ipv6/conf/ul0/forwarding:1") {
		t.Errorf("Setup turned a host's IPv6 router behaviour on:\n%s", made)
	}
	if _, _, err := n.setup(Config{}, st); err != nil {
		t.Fatal(err)
	}
	if got := n.snapshot6(); got != made {
		t.Errorf("a second Setup changed:\n%s\nbefore:\n%s", got, made)
	}
	if err := n.teardown(st); err != nil {
		t.Fatal(err)
	}
	if got := n.snapshot6(); got != before {
		t.Errorf("after teardown:\n%s\nbefore:\n%s", got, before)
	}
	n.failEach(t, all, n.snapshot6, before)
}

// TestSetupModes6: route mode adds no NAT66 rule; none leaves IPv6 alone
// (nothing of IPv6 on the path, no ip6 accept rules); an IPv4 overlay
// refuses an IPv6 mode; an IPv6 route to the prefix or an IPv6 default
// route in the overlay namespace is in the way, refused before anything
// changes.
func TestSetupModes6(t *testing.T) {
	n := newNode6(t)
	nstest.Run(t, n.hostName, "ip6tables-nft", "-P", "FORWARD", "DROP")
	before := n.snapshot6()
	st, _, err := n.setup(Config{Mode6: Mode6Route}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := n.snapshot6()
	if st.IPv6 == nil || st.IPv6.Mode != Mode6Route || strings.Contains(out, "masquerade ipv6") || !strings.Contains(out, "accept to 2001:db8:42::/64") {
		t.Errorf("route mode: %+v\n%s", st.IPv6, out)
	}
	if err := n.teardown(st); err != nil {
		t.Fatal(err)
	}
	st, _, err = n.setup(Config{Mode6: Mode6None}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out = n.snapshot6()
	if st.IPv6 != nil || len(st.Forwarding) != 4 || len(st.HostAccept) != 0 || strings.Contains(out, "inet6 fe80::1/") || strings.Contains(out, "force_forwarding:1") {
		t.Errorf("mode none: %+v\n%s", st, out)
	}
	if err := n.teardown(st); err != nil {
		t.Fatal(err)
	}
	if got := n.snapshot6(); got != before {
		t.Errorf("after the teardowns:\n%s\nbefore:\n%s", got, before)
	}
	for _, c := range []struct {
		name      string
		ns        string
		add, want string
		cfg       Config
		ipv4Only  bool
	}{
		{"host route", n.hostName, "2001:db8:42::/64 via 2001:db8::9", "the host already routes 2001:db8:42::/64 (via 2001:db8::9 dev ul0)", Config{}, false},
		{"overlay default", n.ovName, "default dev br0", "has an IPv6 default route already", Config{}, false},
		{"IPv4 overlay", "", "", "IPv6 egress route asked for an overlay without an IPv6 prefix", Config{Mode6: Mode6Route}, true},
		{"bad mode", "", "", `IPv6 egress "nat": want masquerade, route or none`, Config{Mode6: "nat"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.add != "" {
				nstest.Run(t, c.ns, "sh", "-c", "ip -6 route add "+c.add)
				defer nstest.Run(t, c.ns, "sh", "-c", "ip -6 route del "+c.add)
			}
			p := n.p
			if c.ipv4Only {
				n.p.Subnet6 = netip.Prefix{}
				defer func() { n.p = p }()
			}
			if _, _, err := n.setup(c.cfg, nil); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err %v, want %q", err, c.want)
			}
		})
	}
	if got := n.snapshot6(); got != before {
		t.Errorf("refused Setups changed:\n%s\nbefore:\n%s", got, before)
	}
}

// TestPerDeviceForwarding6: a kernel that reports fewer IPv6 device
// settings than force_forwarding's index (before Linux 6.17) is refused,
// naming the setting and the way out; this machine's kernel has it.
func TestPerDeviceForwarding6(t *testing.T) {
	old := rtnl.Inet6DevConf{Values: make([]uint32, rtnl.DevConf6ForceForwarding)}
	if err := perDeviceForwarding6(old); err == nil || !strings.Contains(err.Error(), "net.ipv6.conf.DEV.force_forwarding, Linux 6.17 and later") ||
		!strings.Contains(err.Error(), "mode none") {
		t.Errorf("older kernel: %v", err)
	}
	n := newNode6(t)
	l, err := n.p.Host.LinkByName("ul0")
	if err != nil {
		t.Fatal(err)
	}
	conf, err := n.p.Host.LinkInet6Conf(l.Index)
	if err != nil || perDeviceForwarding6(conf) != nil {
		t.Errorf("this kernel: %v, %v", err, perDeviceForwarding6(conf))
	}
}
