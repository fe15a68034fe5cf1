package rtnl_test

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/rtnl"
	"github.com/overlaynet/overlaynet/rtnl/rtnltest"
)

var (
	entryMAC = ethaddr.MAC{0x02, 0x42, 0xc6, 0x33, 0x64, 0x03}
	entryARP = rtnl.ARPEntry{Ifindex: 9, IP: netip.MustParseAddr("198.51.100.3"), MAC: entryMAC,
		Flags: rtnl.NeighFlagExtLearned, Protocol: 214}
	entryFDB = rtnl.FDBEntry{Ifindex: 5, MAC: entryMAC, Dst: netip.MustParseAddr("192.0.2.3"),
		VNI: 42, Port: 4789, HasVNI: true, HasPort: true, Flags: rtnl.NeighFlagExtLearned}
)

// TestBatchEntries: the Batch helpers send exactly the requests the general
// methods send for the entry's Message, with the same types and flags.
func TestBatchEntries(t *testing.T) {
	del := rtnl.FDBEntry{Ifindex: 5, MAC: entryMAC}
	for _, tt := range []struct {
		name   string
		helper func(b *rtnl.Batch) error
		plain  func(b *rtnl.Batch) error
	}{
		{"NeighReplaceARP", func(b *rtnl.Batch) error { return b.NeighReplaceARP(entryARP) },
			func(b *rtnl.Batch) error { return b.NeighReplace(entryARP.Message()) }},
		{"NeighDeleteARP", func(b *rtnl.Batch) error { return b.NeighDeleteARP(entryARP) },
			func(b *rtnl.Batch) error { return b.NeighDelete(entryARP.Message()) }},
		{"NeighReplaceFDB", func(b *rtnl.Batch) error { return b.NeighReplaceFDB(entryFDB) },
			func(b *rtnl.Batch) error { return b.NeighReplace(entryFDB.Message()) }},
		{"NeighDeleteFDB", func(b *rtnl.Batch) error { return b.NeighDeleteFDB(del) },
			func(b *rtnl.Batch) error { return b.NeighDelete(del.Message()) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var reqs [2][]rtnltest.Request
			for i, add := range []func(*rtnl.Batch) error{tt.helper, tt.plain} {
				c, tr := rtnltest.Dial(nil)
				var b rtnl.Batch
				if err := add(&b); err != nil {
					t.Fatal(err)
				}
				if err := c.ExecuteBatch(&b); err != nil {
					t.Fatal(err)
				}
				reqs[i] = tr.Requests()
			}
			h, p := reqs[0], reqs[1]
			if len(h) != 1 || len(p) != 1 {
				t.Fatalf("%d and %d requests, want 1 each", len(h), len(p))
			}
			if h[0].Type() != p[0].Type() || h[0].Flags() != p[0].Flags() || !bytes.Equal(h[0].Body, p[0].Body) {
				t.Errorf("helper sent %v % x\nthe Message path %v % x", h[0], h[0].Body, p[0], p[0].Body)
			}
		})
	}
}

// TestBatchEntriesDoNotAllocate: once a Batch has grown, the entry helpers
// encode in place, allocating nothing per entry.
func TestBatchEntriesDoNotAllocate(t *testing.T) {
	var b rtnl.Batch
	ip := entryARP.IP
	fill := func() {
		b.Reset()
		for i := range 25 {
			a, f := entryARP, entryFDB
			a.IP, a.MAC[5], f.MAC[5] = ip.Next(), byte(i), byte(i)
			if b.NeighReplaceARP(a) != nil || b.NeighReplaceFDB(f) != nil ||
				b.NeighDeleteARP(a) != nil || b.NeighDeleteFDB(f) != nil {
				t.Fatal("an entry failed to encode")
			}
		}
	}
	fill() // grow the buffers once
	if n := testing.AllocsPerRun(20, fill); n != 0 {
		t.Fatalf("%v allocations per 100 entries, want 0", n)
	}
	if b.Len() != 100 {
		t.Fatalf("Len = %d, want 100", b.Len())
	}
}

// TestIPv6Entries: an ARPEntry of an IPv6 address is an AF_INET6
// neighbour with a 16-byte NDA_DST (one encoder for both families), an
// IPv4-mapped one an AF_INET neighbour; an FDBEntry's IPv6 VTEP is a
// 16-byte NDA_DST; both encode in place without allocating.
func TestIPv6Entries(t *testing.T) {
	nd := entryARP
	nd.IP = netip.MustParseAddr("2001:db8:42::3")
	m := nd.Message()
	if m.Family != rtnl.FamilyInet6 || m.Dst != nd.IP || m.State != rtnl.NeighPermanent || m.Protocol != 214 {
		t.Fatalf("IPv6 entry: %+v", m)
	}
	mapped := entryARP
	mapped.IP = netip.MustParseAddr("::ffff:198.51.100.3")
	if m := mapped.Message(); m.Family != rtnl.FamilyInet || !m.Dst.Is4() {
		t.Fatalf("IPv4-mapped entry: %+v", m)
	}
	fdb6 := entryFDB
	fdb6.Dst = netip.MustParseAddr("2001:db8::3")
	var b rtnl.Batch
	if err := b.NeighReplaceARP(nd); err != nil {
		t.Fatal(err)
	}
	if err := b.NeighReplaceFDB(fdb6); err != nil {
		t.Fatal(err)
	}
	c, tr := rtnltest.Dial(nil)
	if err := c.ExecuteBatch(&b); err != nil {
		t.Fatal(err)
	}
	reqs := tr.Requests()
	var got [2]rtnl.NeighMessage
	for i := range got {
		if err := got[i].UnmarshalBinary(reqs[i].Body); err != nil {
			t.Fatal(err)
		}
	}
	if got[0].Family != rtnl.FamilyInet6 || got[0].Dst != nd.IP || !bytes.Contains(reqs[0].Body, nd.IP.AsSlice()) {
		t.Errorf("neighbour sent: %+v", got[0])
	}
	if got[1].Family != rtnl.FamilyBridge || got[1].Dst != fdb6.Dst || !bytes.Contains(reqs[1].Body, fdb6.Dst.AsSlice()) {
		t.Errorf("FDB entry sent: %+v", got[1])
	}
	fill := func() {
		b.Reset()
		for i := range 25 {
			a, f := nd, fdb6
			a.MAC[5], f.MAC[5] = byte(i), byte(i)
			if b.NeighReplaceARP(a) != nil || b.NeighReplaceFDB(f) != nil {
				t.Fatal("an entry failed to encode")
			}
		}
	}
	fill()
	if n := testing.AllocsPerRun(20, fill); n != 0 {
		t.Fatalf("%v allocations per 50 IPv6 entries, want 0", n)
	}
}
