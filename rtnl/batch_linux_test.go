package rtnl_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// ExecuteBatch asks for an ACK only on the last request of each sendmsg
// and learns of failures from the kernel's error replies. These cases put
// failures where that could go wrong: first, last, every one, and across
// the sendmsg boundaries of a batch larger than the send buffer.
func TestBatchNamesEveryFailureAcrossSendmsgs(t *testing.T) {
	l := newNeighLab(t, "bf")
	const n = 6000 // ~80 bytes each: more than one sendmsg of the default 208 KiB send buffer
	entry := func(i int) rtnl.FDBEntry {
		return rtnl.FDBEntry{Ifindex: l.vxlan, MAC: ethaddr.MAC{2, 0, 1, 0, byte(i >> 8), byte(i)},
			Dst: netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i%250)}), VNI: 42}
	}
	cases := []struct {
		name string
		bad  func(i int) bool
	}{
		{"none", func(int) bool { return false }},
		{"first", func(i int) bool { return i == 0 }},
		{"last", func(i int) bool { return i == n-1 }},
		{"every 7th", func(i int) bool { return i%7 == 3 }},
		{"all", func(int) bool { return true }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b rtnl.Batch
			var want []int
			for i := range n {
				e := entry(i)
				if tc.bad(i) {
					e.Dst = netip.MustParseAddr("2001:db8::1") // IPv6 VTEP on an IPv4 vxlan
					want = append(want, i)
				}
				if err := b.NeighReplace(e.Message()); err != nil {
					t.Fatal(err)
				}
			}
			err := l.c.ExecuteBatch(&b)
			var got []int
			var be *rtnl.BatchError
			switch {
			case err == nil:
			case errors.As(err, &be):
				if be.Total != n {
					t.Fatalf("BatchError.Total = %d, want %d", be.Total, n)
				}
				for _, f := range be.Failures {
					if !errors.Is(f.Err, unix.EAFNOSUPPORT) {
						t.Fatalf("failure #%d: %v, want EAFNOSUPPORT", f.Index, f.Err)
					}
					got = append(got, f.Index)
				}
			default:
				t.Fatalf("ExecuteBatch: %v", err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d failures reported, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("failure %d names request #%d, want #%d", i, got[i], want[i])
				}
			}
			if fdb := neighBridgeShow(t, l.name, "vxlan1"); len(fdb) != n-len(want) {
				t.Fatalf("bridge fdb show: %d entries, want %d", len(fdb), n-len(want))
			}
			// The connection is in step for the next request.
			b.Reset()
			for i := range n {
				if err := b.NeighDelete(entry(i).Message()); err != nil {
					t.Fatal(err)
				}
			}
			err = l.c.ExecuteBatch(&b)
			if !errors.As(err, &be) && len(want) > 0 || err != nil && len(be.Failures) != len(want) {
				t.Fatalf("deleting: %v, want %d ENOENT failures", err, len(want))
			}
			if fdb := neighBridgeShow(t, l.name, "vxlan1"); len(fdb) != 0 {
				t.Fatalf("after delete: %d entries left", len(fdb))
			}
		})
	}
}
