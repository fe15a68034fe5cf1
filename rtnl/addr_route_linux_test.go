package rtnl_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// ipjAddrs returns "ifname local/prefixlen scope label" for every address
// of family ("inet", "inet6") iproute2 shows in netns.
func ipjAddrs(t *testing.T, netns, family string) []string {
	t.Helper()
	var links []struct {
		Ifname   string `json:"ifname"`
		AddrInfo []struct {
			Family    string `json:"family"`
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
			Scope     string `json:"scope"`
			Label     string `json:"label"`
		} `json:"addr_info"`
	}
	out := nstest.Run(t, netns, "ip", "-j", "addr", "show")
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		t.Fatalf("ip -j addr: %v in %s", err, out)
	}
	var addrs []string
	for _, l := range links {
		for _, a := range l.AddrInfo {
			if a.Family == family {
				addrs = append(addrs, fmt.Sprintf("%s %s/%d %s %s", l.Ifname, a.Local, a.PrefixLen, a.Scope, a.Label))
			}
		}
	}
	slices.Sort(addrs)
	return addrs
}

func rtnlAddrs(t *testing.T, c *rtnl.Conn, family uint8, index int32) []string {
	t.Helper()
	list, err := c.AddressList(family, index)
	if err != nil {
		t.Fatalf("AddressList: %v", err)
	}
	var addrs []string
	for _, a := range list {
		l, err := c.LinkGet(a.Index)
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, fmt.Sprintf("%s %s %s %s", l.Name, a.Prefix(), a.Scope, a.Label))
	}
	slices.Sort(addrs)
	return addrs
}

func TestAddressAddListDelete(t *testing.T) {
	ns, nsName := nstest.NetNS(t, "ad")
	c := nstest.Dial(t, ns)
	if err := c.LinkAdd(rtnl.NewBridge("br0")); err != nil {
		t.Fatal(err)
	}
	br := mustLink(t, c, "br0")
	gw := netip.MustParsePrefix("198.51.100.1/24")
	extra := netip.MustParsePrefix("203.0.113.9/32")
	for _, p := range []netip.Prefix{gw, extra} {
		if err := c.AddressAdd(br.Index, p); err != nil {
			t.Fatalf("AddressAdd %v: %v", p, err)
		}
	}
	if err := c.AddressAdd(br.Index, gw); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("duplicate AddressAdd: got %v, want EEXIST", err)
	}
	if err := c.AddressReplace(br.Index, gw); err != nil {
		t.Fatalf("AddressReplace of an existing address: %v", err)
	}
	want := []string{"br0 198.51.100.1/24 global br0", "br0 203.0.113.9/32 global br0", "lo 127.0.0.1/8 host lo"}
	if got := ipjAddrs(t, nsName, "inet"); !slices.Equal(got, want) {
		t.Fatalf("ip addr = %q, want %q", got, want)
	}
	if got := rtnlAddrs(t, c, unix.AF_INET, 0); !slices.Equal(got, want) {
		t.Fatalf("AddressList(AF_INET, all) = %q, want %q", got, want)
	}
	if got := rtnlAddrs(t, c, unix.AF_INET, br.Index); !slices.Equal(got, want[:2]) {
		t.Fatalf("AddressList(AF_INET, br0) = %q, want %q", got, want[:2])
	}
	list, err := c.AddressList(unix.AF_INET, br.Index)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range list {
		// As iproute2 sends it: IFA_LOCAL == IFA_ADDRESS, no broadcast.
		check(t, "IFA_ADDRESS", a.Address, a.Local)
		check(t, "IFA_BROADCAST", a.Broadcast.IsValid(), false)
		check(t, "permanent", a.Flags&rtnl.AddrPermanent != 0, true)
	}

	// A message with a broadcast address, like `ip addr add ... brd +`.
	m := rtnl.NewAddress(br.Index, netip.MustParsePrefix("10.9.0.1/16"))
	m.Broadcast = netip.MustParseAddr("10.9.255.255")
	m.Label = "br0:x"
	if err := c.AddressAddMessage(m); err != nil {
		t.Fatalf("AddressAddMessage: %v", err)
	}
	out := nstest.Run(t, nsName, "ip", "-j", "addr", "show", "dev", "br0", "label", "br0:x")
	var brd []struct {
		AddrInfo []struct {
			Label     string `json:"label"`
			Broadcast string `json:"broadcast"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(out), &brd); err != nil || len(brd) != 1 {
		t.Fatalf("ip addr label br0:x: %v %s", err, out)
	}
	// iproute2 prints the filtered-out addresses as empty objects.
	n := 0
	for _, a := range brd[0].AddrInfo {
		if a.Label == "br0:x" {
			n++
			check(t, "broadcast", a.Broadcast, "10.9.255.255")
		}
	}
	check(t, "addresses labelled br0:x", n, 1)
	if err := c.AddressDeleteMessage(m); err != nil {
		t.Fatalf("AddressDeleteMessage: %v", err)
	}

	if err := c.AddressDelete(br.Index, extra); err != nil {
		t.Fatalf("AddressDelete: %v", err)
	}
	if err := c.AddressDelete(br.Index, extra); !errors.Is(err, unix.EADDRNOTAVAIL) {
		t.Fatalf("second AddressDelete: got %v, want EADDRNOTAVAIL", err)
	}
	want = []string{"br0 198.51.100.1/24 global br0", "lo 127.0.0.1/8 host lo"}
	if got := ipjAddrs(t, nsName, "inet"); !slices.Equal(got, want) {
		t.Fatalf("after delete ip addr = %q, want %q", got, want)
	}
	if err := c.AddressAdd(br.Index, netip.Prefix{}); err == nil {
		t.Fatal("invalid prefix accepted")
	}
}

// ipjRoutes returns "dst gateway dev protocol scope metric" for each route
// `ip -j route show` lists in netns (main table).
func ipjRoutes(t *testing.T, netns string) []string {
	t.Helper()
	var routes []struct {
		Dst      string `json:"dst"`
		Gateway  string `json:"gateway"`
		Dev      string `json:"dev"`
		Protocol string `json:"protocol"`
		Scope    string `json:"scope"`
		Metric   uint32 `json:"metric"`
	}
	out := nstest.Run(t, netns, "ip", "-j", "route", "show")
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		t.Fatalf("ip -j route: %v in %s", err, out)
	}
	var s []string
	for _, r := range routes {
		if r.Protocol == "" {
			r.Protocol = "boot" // iproute2 hides it
		}
		if r.Scope == "" {
			r.Scope = "global"
		}
		if r.Dst == "default" {
			r.Dst = "0.0.0.0/0"
		} else if !slices.Contains([]byte(r.Dst), '/') {
			r.Dst += "/32"
		}
		s = append(s, fmt.Sprintf("%s %s %s %s %s %d", r.Dst, r.Gateway, r.Dev, r.Protocol, r.Scope, r.Metric))
	}
	slices.Sort(s)
	return s
}

func rtnlRoutes(t *testing.T, c *rtnl.Conn, f rtnl.RouteFilter) []string {
	t.Helper()
	routes, err := c.RouteList(unix.AF_INET, f)
	if err != nil {
		t.Fatalf("RouteList: %v", err)
	}
	var s []string
	for _, r := range routes {
		dev := ""
		if r.OIF != 0 {
			l, err := c.LinkGet(r.OIF)
			if err != nil {
				t.Fatal(err)
			}
			dev = l.Name
		}
		gw := ""
		if r.Gateway.IsValid() {
			gw = r.Gateway.String()
		}
		s = append(s, fmt.Sprintf("%s %s %s %s %s %d", r.Destination(), gw, dev, r.Protocol, r.Scope, r.Priority))
	}
	slices.Sort(s)
	return s
}

func TestRouteAddListReplaceDelete(t *testing.T) {
	ns, nsName := nstest.NetNS(t, "rt")
	c := nstest.Dial(t, ns)
	if err := c.LinkAdd(rtnl.NewVethPair("v0", rtnl.LinkMessage{Name: "v1"})); err != nil {
		t.Fatal(err)
	}
	v0, v1 := mustLink(t, c, "v0"), mustLink(t, c, "v1")
	for _, l := range []*rtnl.LinkMessage{v0, v1} {
		if err := c.LinkSetUp(l.Index); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.AddressAdd(v0.Index, netip.MustParsePrefix("198.51.100.2/24")); err != nil {
		t.Fatal(err)
	}
	gw := netip.MustParseAddr("198.51.100.1")
	if err := c.RouteAdd(rtnl.NewDefaultRoute(gw)); err != nil {
		t.Fatalf("default route: %v", err)
	}
	if err := c.RouteAdd(rtnl.NewDefaultRoute(gw)); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("duplicate default route: got %v, want EEXIST", err)
	}
	if err := c.RouteAdd(rtnl.NewDeviceRoute(netip.MustParsePrefix("203.0.113.0/24"), v1.Index)); err != nil {
		t.Fatalf("device route: %v", err)
	}
	via := rtnl.NewRoute(netip.MustParsePrefix("10.1.0.0/16"), gw, v0.Index)
	via.Priority = 50
	via.PrefSrc = netip.MustParseAddr("198.51.100.2")
	if err := c.RouteAdd(via); err != nil {
		t.Fatalf("route via: %v", err)
	}
	want := []string{
		"0.0.0.0/0 198.51.100.1 v0 static global 0",
		"10.1.0.0/16 198.51.100.1 v0 static global 50",
		"198.51.100.0/24  v0 kernel link 0",
		"203.0.113.0/24  v1 static link 0",
	}
	if got := ipjRoutes(t, nsName); !slices.Equal(got, want) {
		t.Fatalf("ip route =\n%q\nwant\n%q", got, want)
	}
	if got := rtnlRoutes(t, c, rtnl.RouteFilter{Table: unix.RT_TABLE_MAIN}); !slices.Equal(got, want) {
		t.Fatalf("RouteList(main) =\n%q\nwant\n%q", got, want)
	}
	if got := rtnlRoutes(t, c, rtnl.RouteFilter{Table: unix.RT_TABLE_MAIN, OIF: v1.Index}); !slices.Equal(got, want[3:]) {
		t.Fatalf("RouteList(main, v1) = %q, want %q", got, want[3:])
	}
	if got := rtnlRoutes(t, c, rtnl.RouteFilter{Table: unix.RT_TABLE_MAIN, Protocol: rtnl.ProtoKernel}); !slices.Equal(got, want[2:3]) {
		t.Fatalf("RouteList(main, kernel) = %q, want %q", got, want[2:3])
	}
	all, err := c.RouteList(unix.AF_INET, rtnl.RouteFilter{})
	if err != nil {
		t.Fatal(err)
	}
	local := 0
	for _, r := range all {
		if r.Table == unix.RT_TABLE_LOCAL {
			local++
		}
	}
	if local == 0 || len(all) <= len(want) {
		t.Fatalf("unfiltered RouteList has %d routes, %d local: want the local table too", len(all), local)
	}
	for _, r := range all {
		if r.PrefSrc.IsValid() && r.Dst == netip.MustParseAddr("10.1.0.0") {
			check(t, "prefsrc", r.PrefSrc, netip.MustParseAddr("198.51.100.2"))
		}
	}

	// Replace moves the default route to another gateway.
	if err := c.RouteReplace(rtnl.NewDefaultRoute(netip.MustParseAddr("198.51.100.254"))); err != nil {
		t.Fatalf("RouteReplace: %v", err)
	}
	want[0] = "0.0.0.0/0 198.51.100.254 v0 static global 0"
	if got := ipjRoutes(t, nsName); !slices.Equal(got, want) {
		t.Fatalf("after replace ip route =\n%q\nwant\n%q", got, want)
	}
	if err := c.RouteDelete(via); err != nil {
		t.Fatalf("RouteDelete: %v", err)
	}
	if err := c.RouteDelete(via); !errors.Is(err, unix.ESRCH) {
		t.Fatalf("second RouteDelete: got %v, want ESRCH", err)
	}
	if err := c.RouteDelete(rtnl.NewDefaultRoute(netip.MustParseAddr("198.51.100.254"))); err != nil {
		t.Fatalf("RouteDelete default: %v", err)
	}
	want = []string{"198.51.100.0/24  v0 kernel link 0", "203.0.113.0/24  v1 static link 0"}
	if got := ipjRoutes(t, nsName); !slices.Equal(got, want) {
		t.Fatalf("after delete ip route = %q, want %q", got, want)
	}
}
