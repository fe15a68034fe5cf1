package ipam_test

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/overlaynet/overlaynet/overlay/ipam"
	"github.com/overlaynet/overlaynet/overlay/ipam/ipamtest"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/dirstore"
)

// BenchmarkAllocateRelease: one address handed out and given back, with 32
// others held, on the directory store (the default) and in memory (the
// allocator's own cost). Each op takes the node's lock twice and, when the
// block empties, claims and releases it: the worst case, measured here by
// holding none (sub-benchmark held=0).
func BenchmarkAllocateRelease(b *testing.B) {
	ctx := context.Background()
	for _, store := range []string{"dir", "mem"} {
		for _, held := range []int{32, 0} {
			b.Run(fmt.Sprintf("store=%s/held=%d", store, held), func(b *testing.B) {
				var s registry.BlockStore = ipamtest.NewMem()
				if store == "dir" {
					d, err := dirstore.New(filepath.Join(b.TempDir(), "store"))
					if err != nil {
						b.Fatal(err)
					}
					s = d
				}
				a, err := ipam.New(ipam.Config{Dir: filepath.Join(b.TempDir(), "ipam"), Store: s, Owner: "192.0.2.2",
					Gateway: netip.MustParsePrefix("198.51.100.1/24")})
				if err != nil {
					b.Fatal(err)
				}
				for i := range held {
					if _, err := a.Allocate(ctx, fmt.Sprintf("held%d", i), netip.Addr{}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					p, err := a.Allocate(ctx, "c", netip.Addr{})
					if err != nil {
						b.Fatal(err)
					}
					if err := a.Release(ctx, "c", p.Addr()); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
