package links

import (
	"net/netip"
	"testing"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// TestGoneIsNotAnError: each helper on a device, and on one already gone.
func TestGoneIsNotAnError(t *testing.T) {
	ns, _ := nstest.NetNS(t, "lnk")
	c := nstest.Dial(t, ns)
	if l, err := Find(c, "br9"); l != nil || err != nil {
		t.Fatalf("Find of a missing device: %v, %v", l, err)
	}
	if err := c.LinkAdd(rtnl.NewBridge("br9")); err != nil {
		t.Fatal(err)
	}
	l, err := Find(c, "br9")
	if err != nil || l == nil || l.Flags&rtnl.LinkUp != 0 {
		t.Fatalf("Find: %+v, %v", l, err)
	}
	for range 2 { // the second finds it up already
		if err := Up(c, "br9"); err != nil {
			t.Fatal(err)
		}
	}
	if l, err = Find(c, "br9"); err != nil || l.Flags&rtnl.LinkUp == 0 {
		t.Fatalf("after Up: %+v, %v", l, err)
	}
	if err := Up(c, "br8"); err == nil {
		t.Error("Up of a missing device succeeded")
	}
	p := netip.MustParsePrefix("198.51.100.1/24")
	if err := c.AddressAdd(l.Index, p); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second finds it gone
		if err := DeleteAddress(c, l.Index, p); err != nil {
			t.Fatal(err)
		}
	}
	if addrs, err := c.AddressList(unix.AF_INET, l.Index); err != nil || len(addrs) != 0 {
		t.Errorf("addresses left: %v, %v", addrs, err)
	}
	for range 2 {
		if err := Delete(c, "br9"); err != nil {
			t.Fatal(err)
		}
	}
	if l, err := Find(c, "br9"); l != nil || err != nil {
		t.Errorf("after Delete: %v, %v", l, err)
	}
	if err := DeleteAddress(c, l.Index, p); err != nil {
		t.Errorf("DeleteAddress on a device gone: %v", err)
	}
}
