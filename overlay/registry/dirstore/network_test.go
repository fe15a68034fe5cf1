package dirstore

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// TestDirStoreNetwork: the first PublishNetwork writes ROOT/config, the same
// network again is accepted, another one is refused naming each difference
// (registry.ErrConflict) and leaves the file alone; a malformed file is an error
// naming it.
func TestDirStoreNetwork(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	if _, err := s.Network(ctx); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Network before publishing: %v, want registry.ErrNotFound", err)
	}
	want := registry.Network{VNI: 42, Port: 4789, MTU: 1450, Gateway: netip.MustParsePrefix("198.51.100.1/24")}
	if err := s.PublishNetwork(ctx, want); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.Root(), "config")
	b, err := os.ReadFile(path)
	if err != nil || string(b) != `{"vni":42,"port":4789,"mtu":1450,"gateway":"198.51.100.1/24"}`+"\n" {
		t.Fatalf("config file = %q, %v", b, err)
	}
	if err := s.PublishNetwork(ctx, want); err != nil {
		t.Fatalf("the same network again: %v", err)
	}
	for _, c := range []struct {
		name  string
		n     registry.Network
		wants []string
	}{
		{"vni", registry.Network{VNI: 43, Port: 4789, MTU: 1450, Gateway: want.Gateway}, []string{"store VNI: want 43, have 42"}},
		{"all", registry.Network{VNI: 7, Port: 4790, MTU: 1400, Gateway: netip.MustParsePrefix("10.1.0.1/16")}, []string{
			"store VNI: want 7, have 42", "store port: want 4790, have 4789", "store MTU: want 1400, have 1450",
			"store gateway: want 10.1.0.1/16, have 198.51.100.1/24"}},
		{"subnet", registry.Network{VNI: 42, Port: 4789, MTU: 1450, Gateway: netip.MustParsePrefix("198.51.100.1/25")}, []string{"store gateway: want 198.51.100.1/25"}},
	} {
		err := s.PublishNetwork(ctx, c.n)
		var mm *registry.NetworkMismatchError
		if !errors.Is(err, registry.ErrConflict) || !errors.As(err, &mm) {
			t.Errorf("%s: %v, want a *registry.NetworkMismatchError wrapping registry.ErrConflict", c.name, err)
			continue
		}
		for _, w := range c.wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", c.name, err, w)
			}
		}
		if got, err := s.Network(ctx); err != nil || got != want {
			t.Errorf("%s: network now %+v, %v", c.name, got, err)
		}
	}
	if err := os.WriteFile(path, []byte("{vni"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.PublishNetwork(ctx, want); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("malformed config: %v, want an error naming %s", err, path)
	}
}

// TestDirStoreNetworkRace: of nodes publishing different networks at once,
// exactly one wins and every other is refused.
func TestDirStoreNetworkRace(t *testing.T) {
	s := newTestStore(t)
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c := registry.Network{VNI: 42, Port: 4789, MTU: uint32(1400 + i), Gateway: netip.MustParsePrefix("198.51.100.1/24")}
			errs[i] = s.PublishNetwork(context.Background(), c)
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, registry.ErrConflict):
			t.Errorf("publisher %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d publishers won, want 1: %v", won, errs)
	}
}
