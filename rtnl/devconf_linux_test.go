package rtnl_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
)

// TestLinkInetConf: forwarding set per device over netlink changes that
// device alone (read back over netlink and, as a cross-check, in /proc),
// and is put back the same way.
func TestLinkInetConf(t *testing.T) {
	ns, name := nstest.NetNS(t, "dcf")
	c := nstest.Dial(t, ns)
	if err := c.LinkAdd(rtnl.NewVethPair("dc0", rtnl.LinkMessage{Name: "dc1"})); err != nil {
		t.Fatal(err)
	}
	a, err := c.LinkByName("dc0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.LinkByName("dc1")
	if err != nil {
		t.Fatal(err)
	}
	proc := func(dev string) string {
		return strings.TrimSpace(nstest.Run(t, name, "cat", "/proc/sys/net/ipv4/conf/"+dev+"/forwarding"))
	}
	get := func(index int32) uint32 {
		t.Helper()
		conf, err := c.LinkInetConf(index)
		if err != nil {
			t.Fatal(err)
		}
		v, ok := conf.Get(rtnl.DevConfForwarding)
		if !ok {
			t.Fatalf("no forwarding setting reported for %d: %v", index, conf.Values)
		}
		return v
	}
	if get(a.Index) != 0 || get(b.Index) != 0 || proc("dc0") != "0" {
		t.Fatal("forwarding on in a fresh namespace")
	}
	if err := c.LinkSetInetConf(a.Index, rtnl.DevConfValue{Conf: rtnl.DevConfForwarding, Value: 1}); err != nil {
		t.Fatal(err)
	}
	if get(a.Index) != 1 || proc("dc0") != "1" {
		t.Errorf("dc0 forwarding not on: netlink %d, proc %s", get(a.Index), proc("dc0"))
	}
	if get(b.Index) != 0 || proc("dc1") != "0" || proc("all") != "0" || proc("default") != "0" {
		t.Errorf("setting dc0 changed others: dc1 %s, all %s, default %s", proc("dc1"), proc("all"), proc("default"))
	}
	if err := c.LinkSetInetConf(a.Index, rtnl.DevConfValue{Conf: rtnl.DevConfForwarding, Value: 0}); err != nil {
		t.Fatal(err)
	}
	if get(a.Index) != 0 || proc("dc0") != "0" {
		t.Error("dc0 forwarding not put back")
	}
	if err := c.LinkSetInetConf(a.Index+1000, rtnl.DevConfValue{Conf: rtnl.DevConfForwarding, Value: 1}); err == nil {
		t.Error("setting a missing device succeeded")
	}
	if _, err := c.LinkInetConf(a.Index + 1000); err == nil {
		t.Error("reading a missing device succeeded")
	}
}

// TestLinkSetAddrGenMode: a device set to addrgenmode none before it comes
// up gets no IPv6 link-local address (and so sends no DAD probe), as
// iproute2 reads it back; its peer, left alone, gets one.
func TestLinkSetAddrGenMode(t *testing.T) {
	ns, name := nstest.NetNS(t, "agm")
	c := nstest.Dial(t, ns)
	if err := c.LinkAdd(rtnl.NewVethPair("ag0", rtnl.LinkMessage{Name: "ag1"})); err != nil {
		t.Fatal(err)
	}
	a, err := c.LinkByName("ag0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.LinkByName("ag1")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LinkSetAddrGenMode(a.Index, rtnl.AddrGenNone); err != nil {
		t.Fatal(err)
	}
	for _, l := range []*rtnl.LinkMessage{a, b} {
		if err := c.LinkSetUp(l.Index); err != nil {
			t.Fatal(err)
		}
	}
	if out := nstest.Run(t, name, "ip", "-d", "link", "show", "ag0"); !strings.Contains(out, "addrgenmode none") {
		t.Errorf("ag0 not addrgenmode none:\n%s", out)
	}
	if out := nstest.Run(t, name, "ip", "-6", "addr", "show", "dev", "ag0"); strings.Contains(out, "fe80:") {
		t.Errorf("ag0 has a link-local address:\n%s", out)
	}
	if out := nstest.Run(t, name, "ip", "-6", "addr", "show", "dev", "ag1"); !strings.Contains(out, "fe80:") {
		t.Errorf("ag1, left alone, has no link-local address (is IPv6 on?):\n%s", out)
	}
}

// TestLinkInet6Conf: the IPv6 settings read over netlink are those /proc
// shows, setting by setting (the array's indices are the kernel's), also
// after a change made through /proc (force_forwarding, where the kernel
// has it); and the kernel takes no IPv6 setting back over netlink:
// RTM_NEWLINK with IFLA_INET6_CONF fails with EINVAL, either encoding.
func TestLinkInet6Conf(t *testing.T) {
	ns, name := nstest.NetNS(t, "dc6")
	c := nstest.Dial(t, ns)
	if err := c.LinkAdd(rtnl.NewVethPair("d60", rtnl.LinkMessage{Name: "d61"})); err != nil {
		t.Fatal(err)
	}
	l, err := c.LinkByName("d60")
	if err != nil {
		t.Fatal(err)
	}
	proc := func(key string) string {
		return strings.TrimSpace(nstest.Run(t, name, "cat", "/proc/sys/net/ipv6/conf/d60/"+key))
	}
	check := func(when string) {
		t.Helper()
		conf, err := c.LinkInet6Conf(l.Index)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []rtnl.DevConf6{rtnl.DevConf6Forwarding, rtnl.DevConf6HopLimit, rtnl.DevConf6MTU, rtnl.DevConf6AcceptRA,
			rtnl.DevConf6AcceptRedirects, rtnl.DevConf6Autoconf, rtnl.DevConf6DADTransmits, rtnl.DevConf6ProxyNDP,
			rtnl.DevConf6DisableIPv6, rtnl.DevConf6AcceptDAD, rtnl.DevConf6AddrGenMode, rtnl.DevConf6ForceForwarding} {
			v, ok := conf.Get(d)
			if !ok {
				if d == rtnl.DevConf6ForceForwarding {
					continue // before Linux 6.17
				}
				t.Fatalf("%s: %s not reported (%d settings)", when, d, len(conf.Values))
			}
			if want := proc(d.String()); fmt.Sprint(int32(v)) != want {
				t.Errorf("%s: %s = %d over netlink, %s in /proc", when, d, int32(v), want)
			}
		}
	}
	check("fresh")
	nstest.Run(t, name, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/d60/force_forwarding; echo 2 > /proc/sys/net/ipv6/conf/d60/accept_ra; echo 1 > /proc/sys/net/ipv6/conf/d60/proxy_ndp")
	check("changed through /proc")
	if _, err := c.LinkInet6Conf(l.Index + 1000); err == nil {
		t.Error("reading a missing device succeeded")
	}

	for _, nested := range []bool{false, true} {
		b := binary.NativeEndian.AppendUint32([]byte{rtnl.FamilyUnspec, 0, 0, 0}, uint32(l.Index))
		b = append(b, make([]byte, 8)...)
		ae := rtnl.NewAttributeEncoder(b)
		spec := ae.Begin(rtnl.IFLA_AF_SPEC)
		inet6 := ae.Begin(rtnl.FamilyInet6)
		if nested {
			conf := ae.Begin(rtnl.IFLA_INET6_CONF)
			ae.Uint32(uint16(rtnl.DevConf6AcceptRA)+1, 0)
			ae.End(conf)
		} else {
			ae.Raw(rtnl.IFLA_INET6_CONF, make([]byte, 4*59))
		}
		ae.End(inet6)
		ae.End(spec)
		if err := c.Execute(rtnl.MsgNewLink, 0, ae.Bytes()); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("RTM_NEWLINK with IFLA_INET6_CONF (nested %v): %v, want EINVAL", nested, err)
		}
	}
	if got := proc("accept_ra"); got != "2" {
		t.Errorf("accept_ra %s after the refused requests, want 2", got)
	}
}
