// Package membertest is the contract every registry.MemberStore keeps, as
// a test the stores' own tests run on an empty store: one owner per tunnel
// address (of 16 claiming one at once, exactly one wins), replaced by its
// owner, removed by its owner only.
package membertest

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// Member is a valid member record of tunnel address vtep owned by owner.
func Member(vtep, owner string) registry.Member {
	return registry.Member{VTEP: netip.MustParseAddr(vtep), Owner: owner, Endpoint: netip.MustParseAddrPort("192.0.2.2:51820"),
		PublicKey: "8hsKonWxEod7rQdk4KnWxWAb0UJQpP8i3VAxdJDpjx8="}
}

// Claims checks ms, an empty store, against the contract; claimed, if set,
// is called after the first claim (a store's own checks of it, such as a
// watch's signal) with the member claimed. It leaves ms empty but for the
// winner of the race, at 10.99.2.5.
func Claims(t *testing.T, ms registry.MemberStore, claimed func(registry.Member)) {
	t.Helper()
	ctx := context.Background()
	a := Member("10.99.2.2", "aaa")
	if err := ms.ClaimMember(ctx, a); err != nil {
		t.Fatal(err)
	}
	if claimed != nil {
		claimed(a)
	}
	if err := ms.ClaimMember(ctx, Member("10.99.2.2", "bbb")); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("another owner's claim: %v", err)
	}
	a.NextKey = "rN823xFQfK/grcxhdgmphiK5eg4QOsgU/RgkIECjbDQ="
	if err := ms.ClaimMember(ctx, a); err != nil {
		t.Fatalf("the owner's update: %v", err)
	}
	if err := ms.RemoveMember(ctx, a.VTEP, "bbb"); err != nil {
		t.Fatal(err)
	}
	if mm, rej, err := ms.Members(ctx); err != nil || len(mm) != 1 || mm[0] != a || len(rej) != 0 {
		t.Fatalf("members after another owner's removal: %+v %v %v; want %+v", mm, rej, err, a)
	}
	if err := ms.RemoveMember(ctx, a.VTEP, "aaa"); err != nil {
		t.Fatal(err)
	}
	if mm, _, err := ms.Members(ctx); err != nil || len(mm) != 0 {
		t.Fatalf("members after the owner's removal: %+v %v", mm, err)
	}
	var wins int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if ms.ClaimMember(ctx, Member("10.99.2.5", "o"+string(rune('a'+i)))) == nil {
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
}
