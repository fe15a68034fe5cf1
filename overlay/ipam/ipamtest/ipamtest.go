// Package ipamtest holds what tests of ipam.BlockStore implementations
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

	"github.com/overlaynet/overlaynet/overlay/ipam"
)

// Mem is an in-memory ipam.BlockStore.
type Mem struct {
	mu     sync.Mutex
	blocks map[netip.Prefix]string
}

// NewMem returns an empty in-memory store.
func NewMem() *Mem { return &Mem{blocks: map[netip.Prefix]string{}} }

// ClaimBlock implements ipam.BlockStore.
func (m *Mem) ClaimBlock(_ context.Context, b netip.Prefix, owner string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.blocks[b]; ok {
		return h, nil
	}
	m.blocks[b] = owner
	return owner, nil
}

// ReleaseBlock implements ipam.BlockStore.
func (m *Mem) ReleaseBlock(_ context.Context, b netip.Prefix, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.blocks[b] == owner {
		delete(m.blocks, b)
	}
	return nil
}

// Blocks implements ipam.BlockStore.
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
// Blocks).
func Conformance(t *testing.T, s ipam.BlockStore) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b1 := netip.MustParsePrefix("198.51.100.0/26")
	b2 := netip.MustParsePrefix("198.51.100.64/26")

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
	got, err = s.Blocks(ctx)
	want := map[netip.Prefix]string{b1: "192.0.2.2", b2: "192.0.2.3"}
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
	}{{b1, "192.0.2.2"}, {b2, "192.0.2.3"}, {b2, "192.0.2.3"}} {
		if err := s.ReleaseBlock(ctx, c.b, c.owner); err != nil {
			t.Fatalf("ReleaseBlock(%s, %s): %v", c.b, c.owner, err)
		}
	}
	if got, err := s.Blocks(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Blocks after releasing all: %v, %v", got, err)
	}

	// The race: 8 owners claim the same 16 blocks at once; every block has
	// exactly one holder, and each owner's view agrees with the store.
	const owners, nblocks = 8, 16
	blocks := make([]netip.Prefix, nblocks)
	for i := range blocks {
		blocks[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, byte(i), 0}), 24)
	}
	won := make([]map[netip.Prefix]bool, owners)
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, owners*nblocks)
	for o := range owners {
		won[o] = map[netip.Prefix]bool{}
		owner := fmt.Sprintf("192.0.2.%d", 10+o)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for _, b := range blocks {
				h, err := s.ClaimBlock(ctx, b, owner)
				if err != nil {
					errs <- err
					return
				}
				if h == owner {
					won[o][b] = true
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent ClaimBlock: %v", err)
	}
	got, err = s.Blocks(ctx)
	if err != nil || len(got) != nblocks {
		t.Fatalf("Blocks after the race: %d blocks, %v; want %d", len(got), err, nblocks)
	}
	for _, b := range blocks {
		winners := 0
		for o := range owners {
			if won[o][b] {
				winners++
				if want := fmt.Sprintf("192.0.2.%d", 10+o); got[b] != want {
					t.Errorf("block %s: owner %s was told it won, the store says %s", b, want, got[b])
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
