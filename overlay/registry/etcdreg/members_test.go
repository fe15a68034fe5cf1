package etcdreg

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

func member(vtep, owner string) registry.Member {
	return registry.Member{VTEP: netip.MustParseAddr(vtep), Owner: owner, Endpoint: netip.MustParseAddrPort("192.0.2.2:51820"),
		PublicKey: "8hsKonWxEod7rQdk4KnWxWAb0UJQpP8i3VAxdJDpjx8="}
}

// TestMembers: members/<vtep> claimed by one owner only (16 at once: one
// wins), replaced by its owner, removed by its owner only, without a lease
// (it outlives the registry that wrote it); WatchMembers signals a
// member's change and a node's lease going.
func TestMembers(t *testing.T) {
	ctx := context.Background()
	s := startEtcd(t)
	r := s.open(t, "members", Options{NoLease: true})
	ch, err := r.WatchMembers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := member("10.99.2.2", "aaa")
	if err := r.ClaimMember(ctx, a); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no member change signalled")
	}
	if err := r.ClaimMember(ctx, member("10.99.2.2", "bbb")); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("another owner's claim: %v", err)
	}
	a.NextKey = "rN823xFQfK/grcxhdgmphiK5eg4QOsgU/RgkIECjbDQ="
	if err := r.ClaimMember(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveMember(ctx, a.VTEP, "bbb"); err != nil {
		t.Fatal(err)
	}
	if mm, rej, err := r.Members(ctx); err != nil || len(mm) != 1 || mm[0] != a || len(rej) != 0 {
		t.Fatalf("members %+v %v %v", mm, rej, err)
	}
	if err := r.RemoveMember(ctx, a.VTEP, "aaa"); err != nil {
		t.Fatal(err)
	}
	var wins int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if r.ClaimMember(ctx, member("10.99.2.5", "o"+string(rune('a'+i)))) == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d owners won one tunnel address", wins)
	}
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
