package rtnl_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// TestDumpInterrupted forces the kernel to flag a dump NLM_F_DUMP_INTR: an
// IPv4 address dump spanning many datagrams, during which another socket
// adds an address (the kernel compares its address generation between the
// dump's parts). Dump must still deliver every reply it got and then return
// ErrDumpInterrupted; a quiet dump of the same table returns nil.
func TestDumpInterrupted(t *testing.T) {
	ns, _ := nstest.NetNS(t, "di")
	c := nstest.Dial(t, ns)
	other := nstest.Dial(t, ns)
	if err := c.Execute(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, bridgeLink("br0")); err != nil {
		t.Fatal(err)
	}
	br, err := c.LinkByName("br0")
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000 // ~100 bytes each: well over one 32 KiB dump datagram
	var b rtnl.Batch
	for i := range n {
		a := rtnl.NewAddress(br.Index, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, byte(i >> 8), byte(i)}), 32))
		if err := b.AddMessage(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.ExecuteBatch(&b); err != nil {
		t.Fatal(err)
	}
	req, err := (&rtnl.AddressMessage{Family: unix.AF_INET}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	count := func(change bool) (int, error) {
		seen := 0
		err := c.Dump(unix.RTM_GETADDR, req, func(m rtnl.Message) error {
			if m.Header.Type == unix.RTM_NEWADDR {
				seen++
			}
			if change && seen == 1 {
				// The kernel has built only the first part so far.
				p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 78, 0, 1}), 32)
				if err := other.AddressAdd(br.Index, p); err != nil {
					return err
				}
			}
			return nil
		})
		return seen, err
	}

	seen, err := count(false)
	if err != nil || seen < n {
		t.Fatalf("quiet dump: %d addresses, %v; want at least %d and no error", seen, err, n)
	}
	seen, err = count(true)
	if !errors.Is(err, rtnl.ErrDumpInterrupted) {
		t.Fatalf("dump changed midway: %v, want ErrDumpInterrupted", err)
	}
	if seen < n {
		t.Fatalf("dump changed midway delivered %d addresses, want at least %d", seen, n)
	}
	t.Logf("interrupted dump delivered %d addresses", seen)
}
