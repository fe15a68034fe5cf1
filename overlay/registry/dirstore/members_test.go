package dirstore

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

func member(vtep, owner string) registry.Member {
	return registry.Member{VTEP: netip.MustParseAddr(vtep), Owner: owner, Endpoint: netip.MustParseAddrPort("192.0.2.2:51820"),
		PublicKey: "8hsKonWxEod7rQdk4KnWxWAb0UJQpP8i3VAxdJDpjx8="}
}

// TestDirStoreMembers: a tunnel address claimed by one owner is refused to
// another, replaced by its owner, removed by its owner only; of 16 owners
// claiming one address at once exactly one wins; a file that is no member
// is a Rejected.
func TestDirStoreMembers(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	a := member("10.99.2.2", "aaa")
	if err := s.ClaimMember(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimMember(ctx, member("10.99.2.2", "bbb")); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("another owner's claim: %v", err)
	}
	a.NextKey = "rN823xFQfK/grcxhdgmphiK5eg4QOsgU/RgkIECjbDQ="
	if err := s.ClaimMember(ctx, a); err != nil {
		t.Fatalf("the owner's update: %v", err)
	}
	if err := s.RemoveMember(ctx, a.VTEP, "bbb"); err != nil {
		t.Fatal(err)
	}
	mm, rej, err := s.Members(ctx)
	if err != nil || len(mm) != 1 || mm[0] != a || len(rej) != 0 {
		t.Fatalf("members %+v %v %v", mm, rej, err)
	}
	if err := os.WriteFile(filepath.Join(s.Root(), membersDir, "10.99.2.9"), []byte("junk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, rej, _ := s.Members(ctx); len(rej) != 1 || rej[0].Key != "members/10.99.2.9" {
		t.Errorf("rejected %v", rej)
	}
	if err := s.RemoveMember(ctx, a.VTEP, "aaa"); err != nil {
		t.Fatal(err)
	}
	var wins int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if s.ClaimMember(ctx, member("10.99.2.5", "o"+string(rune('a'+i)))) == nil {
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
