package etcdreg

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/membertest"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// TestMembers: the member contract (membertest.Claims: one owner per
// tunnel address, of 16 racing one wins, replaced and removed by its owner
// only) on members/<vtep>, without a lease (it outlives the registry that
// wrote it); WatchMembers signals a member's change and a node's lease
// going.
func TestMembers(t *testing.T) {
	ctx := context.Background()
	s := startEtcd(t)
	r := s.open(t, "members", Options{NoLease: true})
	ch, err := r.WatchMembers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	membertest.Claims(t, r, func(registry.Member) {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("no member change signalled")
		}
	})
	// A node's lease (nodes/) granted and gone is signalled too.
	for len(ch) > 0 {
		<-ch
	}
	leased := s.open(t, "members", Options{TTL: 2 * time.Second, NodeVTEP: netip.MustParseAddr("10.99.2.7")})
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("a node's lease was not signalled")
	}
	leased.Revoke(ctx)
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("a node's lease going was not signalled")
	}
}
