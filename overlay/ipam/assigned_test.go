package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
)

// TestAssigned: with blocks assigned to the node (podCIDRs), addresses come
// from those only, skipping each block's first and last address, the
// subnet's reserved ones and the node's own address; an explicit address
// outside them, or reserved, is refused; a full block is exhausted; a
// block outside the subnet is refused; another family's block is ignored;
// nothing is claimed or released in a store.
func TestAssigned(t *testing.T) {
	blocks := []netip.Prefix{netip.MustParsePrefix("fd00::/64"), netip.MustParsePrefix("10.244.0.0/29")}
	a, err := New(Config{Dir: t.TempDir(), Owner: "192.0.2.10", Gateway: netip.MustParsePrefix("10.244.0.1/16"),
		Assigned: func(context.Context) ([]netip.Prefix, error) { return blocks, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// 10.244.0.0 (subnet's network, block's first), .1 (gateway), .2 (node
	// address), .7 (block's last): .3 .. .6 are the containers'.
	node, err := NodeAddress(netip.MustParsePrefix("10.244.0.1/16"), blocks)
	if err != nil || node != netip.MustParseAddr("10.244.0.2") {
		t.Errorf("node address %s, %v; want 10.244.0.2", node, err)
	}
	if got, err := NodeAddress(netip.MustParsePrefix("10.244.0.1/16"), []netip.Prefix{netip.MustParsePrefix("10.244.5.0/24")}); err != nil || got != netip.MustParseAddr("10.244.5.1") {
		t.Errorf("NodeAddress of 10.244.5.0/24: %s, %v; want its .1", got, err)
	}
	var got []string
	for i := range 4 {
		p, err := a.Allocate(ctx, "c"+string(rune('a'+i)), netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Bits() != 16 {
			t.Errorf("%s: want the subnet's prefix length", p)
		}
		got = append(got, p.Addr().String())
	}
	if want := "[10.244.0.3 10.244.0.4 10.244.0.5 10.244.0.6]"; fmt.Sprint(got) != want {
		t.Errorf("allocated %v, want %s", got, want)
	}
	if _, err := a.Allocate(ctx, "full", netip.Addr{}); !errors.Is(err, ErrExhausted) {
		t.Errorf("a full block: %v, want ErrExhausted", err)
	}
	for _, want := range []string{"10.244.1.3", "10.244.0.2", "10.244.0.7", "10.244.0.1"} {
		if _, err := a.Allocate(ctx, "x", netip.MustParseAddr(want)); !errors.Is(err, ErrOutside) {
			t.Errorf("explicit %s: %v, want ErrOutside", want, err)
		}
	}
	if err := a.Release(ctx, "ca", netip.MustParseAddr("10.244.0.3")); err != nil {
		t.Fatal(err)
	}
	if p, err := a.Allocate(ctx, "again", netip.MustParseAddr("10.244.0.3")); err != nil || p.Addr() != netip.MustParseAddr("10.244.0.3") {
		t.Errorf("the released address asked for: %v, %v", p, err)
	}
	if u, err := a.Usage(); err != nil || len(u) != 1 || u[0].Size != 4 || u[0].Used != 4 {
		t.Errorf("usage %+v, %v; want the one block, 4 of 4 used", u, err)
	}
	if err := a.ReleaseAll(ctx); err != nil {
		t.Errorf("ReleaseAll with assigned blocks and no store: %v", err)
	}
	blocks = []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24")}
	if _, err := a.Allocate(ctx, "y", netip.Addr{}); !errors.Is(err, ErrOutside) {
		t.Errorf("a block outside the subnet: %v, want ErrOutside", err)
	}
}
