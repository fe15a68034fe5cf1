// Package ipamtest holds what tests of registry.BlockStore implementations
// share: an in-memory store, and the conformance test every store runs
// (claims, releases, listing, and a race of owners claiming the same blocks
// at once, in which exactly one wins each block).
package ipamtest

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// Mem is an in-memory registry.BlockStore.
type Mem struct {
	mu     sync.Mutex
	blocks map[netip.Prefix]string
}

// NewMem returns an empty in-memory store.
func NewMem() *Mem { return &Mem{blocks: map[netip.Prefix]string{}} }

// ClaimBlock implements registry.BlockStore.
func (m *Mem) ClaimBlock(_ context.Context, b netip.Prefix, owner string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.blocks[b]; ok {
		return h, nil
	}
	m.blocks[b] = owner
	return owner, nil
}

// ReleaseBlock implements registry.BlockStore.
func (m *Mem) ReleaseBlock(_ context.Context, b netip.Prefix, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.blocks[b] == owner {
		delete(m.blocks, b)
	}
	return nil
}

// Blocks implements registry.BlockStore.
func (m *Mem) Blocks(context.Context) (map[netip.Prefix]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[netip.Prefix]string, len(m.blocks))
	for b, h := range m.blocks {
		out[b] = h
	}
	return out, nil
}

// Conformance tests s, an empty store (other tests' blocks would be seen by
// Blocks): claims, releases and listing, then, if they pass, a race of
// owners for the same blocks.
func Conformance(t *testing.T, s registry.BlockStore) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if !t.Run("claim and release", func(t *testing.T) { claimRelease(ctx, t, s) }) {
		return
	}
	t.Run("race", func(t *testing.T) { race(ctx, t, s) })
}

// claimRelease: a block is held by its first claimer, whom a claim tells;
// only the holder releases it; Blocks lists the holders. It leaves s empty.
func claimRelease(ctx context.Context, t *testing.T, s registry.BlockStore) {
	b1 := netip.MustParsePrefix("198.51.100.0/26")
	b2 := netip.MustParsePrefix("198.51.100.64/26")
	b3 := netip.MustParsePrefix("2001:db8:42::100/120") // a dual-stack overlay's IPv6 block
	got, err := s.Blocks(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("Blocks of an empty store: %v, %v", got, err)
	}
	claim := func(b netip.Prefix, owner, want string) {
		t.Helper()
		h, err := s.ClaimBlock(ctx, b, owner)
		if err != nil || h != want {
			t.Fatalf("ClaimBlock(%s, %s) = %q, %v; want holder %q", b, owner, h, err, want)
		}
	}
	claim(b1, "192.0.2.2", "192.0.2.2")
	claim(b1, "192.0.2.2", "192.0.2.2") // again: still ours
	claim(b1, "192.0.2.3", "192.0.2.2") // someone else's
	claim(b2, "192.0.2.3", "192.0.2.3")
	claim(b3, "2001:db8::2", "2001:db8::2") // a node on an IPv6 underlay
	claim(b3, "2001:db8::3", "2001:db8::2")
	got, err = s.Blocks(ctx)
	want := map[netip.Prefix]string{b1: "192.0.2.2", b2: "192.0.2.3", b3: "2001:db8::2"}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Blocks = %v, %v; want %v", got, err, want)
	}
	// Releasing another owner's block does nothing.
	if err := s.ReleaseBlock(ctx, b1, "192.0.2.3"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Blocks(ctx); got[b1] != "192.0.2.2" {
		t.Fatalf("block released by a non-holder: %v", got)
	}
	for _, c := range []struct {
		b     netip.Prefix
		owner string
	}{{b1, "192.0.2.2"}, {b2, "192.0.2.3"}, {b2, "192.0.2.3"}, {b3, "2001:db8::2"}} {
		if err := s.ReleaseBlock(ctx, c.b, c.owner); err != nil {
			t.Fatalf("ReleaseBlock(%s, %s): %v", c.b, c.owner, err)
		}
	}
	if got, err := s.Blocks(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Blocks after releasing all: %v, %v", got, err)
	}
}

// Owners and blocks of the race.
const raceOwners, raceBlocks = 8, 16

func raceOwner(o int) string { return fmt.Sprintf("192.0.2.%d", 10+o) }

// race: raceOwners owners claim the same raceBlocks blocks at once; every
// block has exactly one holder, and each owner's view agrees with the
// store. The blocks are released at the end.
func race(ctx context.Context, t *testing.T, s registry.BlockStore) {
	blocks := make([]netip.Prefix, raceBlocks)
	for i := range blocks {
		blocks[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, byte(i), 0}), 24)
	}
	won := claimAtOnce(ctx, t, s, blocks)
	got, err := s.Blocks(ctx)
	if err != nil || len(got) != raceBlocks {
		t.Fatalf("Blocks after the race: %d blocks, %v; want %d", len(got), err, raceBlocks)
	}
	for _, b := range blocks {
		winners := 0
		for o := range raceOwners {
			if won[o][b] {
				winners++
				if got[b] != raceOwner(o) {
					t.Errorf("block %s: owner %s was told it won, the store says %s", b, raceOwner(o), got[b])
				}
			}
		}
		if winners != 1 {
			t.Errorf("block %s: %d owners were told they won, want exactly 1", b, winners)
		}
	}
	for b, h := range got {
		if err := s.ReleaseBlock(ctx, b, h); err != nil {
			t.Fatal(err)
		}
	}
}

// claimAtOnce has every owner claim every block, all starting at once, and
// returns, per owner, the blocks the store told it it holds.
func claimAtOnce(ctx context.Context, t *testing.T, s registry.BlockStore, blocks []netip.Prefix) []map[netip.Prefix]bool {
	won := make([]map[netip.Prefix]bool, raceOwners)
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, raceOwners*len(blocks))
	for o := range raceOwners {
		won[o] = map[netip.Prefix]bool{}
		wg.Go(func() {
			<-start
			for _, b := range blocks {
				h, err := s.ClaimBlock(ctx, b, raceOwner(o))
				if err != nil {
					errs <- err
					return
				}
				if h == raceOwner(o) {
					won[o][b] = true
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent ClaimBlock: %v", err)
	}
	return won
}
