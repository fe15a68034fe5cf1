package rtnl_test

import (
	"strings"
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
