package dirstore

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// TestDirStoreKeys: Keys lists the registered IPs and MACs from the
// directories alone, skipping temporary files and names that are not
// canonical keys.
func TestDirStoreKeys(t *testing.T) {
	root := t.TempDir()
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	recs := []registry.Record{
		{IP: netip.MustParseAddr("198.51.100.2"), MAC: ethaddr.MAC{2, 0x42, 0xc6, 0x33, 0x64, 2}, VTEP: netip.MustParseAddr("192.0.2.2")},
		{IP: netip.MustParseAddr("198.51.100.3"), MAC: ethaddr.MAC{2, 0x42, 0xc6, 0x33, 0x64, 3}, VTEP: netip.MustParseAddr("192.0.2.3")},
	}
	for _, r := range recs {
		if err := s.Register(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, junk := range []string{"arp/.tmp-1", "arp/not-an-ip", "arp/198.051.100.9", "fdb/.tmp-2", "fdb/02-42-00-00-00-01"} {
		if err := os.WriteFile(filepath.Join(root, junk), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ips, macs, err := s.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	if want := []netip.Addr{recs[0].IP, recs[1].IP}; !slices.Equal(ips, want) {
		t.Errorf("IPs %v, want %v", ips, want)
	}
	slices.SortFunc(macs, func(a, b ethaddr.MAC) int { return slices.Compare(a[:], b[:]) })
	if want := []ethaddr.MAC{recs[0].MAC, recs[1].MAC}; !slices.Equal(macs, want) {
		t.Errorf("MACs %v, want %v", macs, want)
	}
	if _, _, err := s.Keys(canceled()); err == nil {
		t.Error("Keys with a canceled context: no error")
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
