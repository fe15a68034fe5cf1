package guard

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/dirstore"
)

// TestFollowRejects: a directory store holding hostile records (VTEPs
// loopback, unspecified, multicast, broadcast, a container's address, of
// the wrong family), a record over 128 bytes and junk files: the allowlist
// holds only the honest nodes, every rejection is counted, and the listing
// is complete, so a node that departs is removed from the allowlist.
func TestFollowRejects(t *testing.T) {
	nstest.RequireTools(t, "nft")
	ns, _ := nstest.NetNS(t, "gr")
	local := netip.MustParseAddr("192.0.2.2")
	a, err := OpenAllowlist(dial(t, ns), 4789, local)
	if err != nil {
		t.Fatal(err)
	}
	store, err := dirstore.New(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	n := 10
	put := func(vtep string) registry.Record {
		n++
		r := registry.Record{IP: netip.AddrFrom4([4]byte{198, 51, 100, byte(n)}), MAC: ethaddr.MAC{2, 0x42, 0, 0, 0, byte(n)}, VTEP: netip.MustParseAddr(vtep)}
		if err := store.Register(ctx, r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	put("192.0.2.3")
	departing := put("192.0.2.4")
	for _, v := range []string{"127.0.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "198.51.100.2", "2001:db8::9"} {
		put(v)
	}
	write := func(rel, content string) {
		if err := os.WriteFile(filepath.Join(store.Root(), rel), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("arp/198.51.100.99", strings.Repeat("x", 4096))
	for i := range 200 {
		write(fmt.Sprintf("arp/junk-%d", i), "junk")
	}
	check := registry.NewChecker(registry.Policy{Subnet: netip.MustParsePrefix("198.51.100.0/24"),
		Gateway: netip.MustParseAddr("198.51.100.1"), Underlay: netip.MustParsePrefix("192.0.2.2/24")}, nil, time.Hour)
	want, complete, err := Wanted(ctx, store, check, local)
	if err != nil || !complete {
		t.Fatalf("Wanted: complete %v, %v; want a complete view: the junk is rejected, not a failure", complete, err)
	}
	if err := a.Ensure(want); err != nil {
		t.Fatal(err)
	}
	startFollow(t, FollowConfig{Allowlist: a, Registry: store, Local: local, Poll: time.Hour, Resync: time.Hour, Checker: check})
	awaitAllowlist(t, a, "start", "192.0.2.2", "192.0.2.3", "192.0.2.4")
	for _, why := range []registry.Reason{registry.ReasonVTEPLoopback, registry.ReasonVTEPUnspecified, registry.ReasonVTEPMulticast,
		registry.ReasonVTEPBroadcast, registry.ReasonVTEPInOverlay, registry.ReasonVTEPFamily, registry.ReasonOversized, registry.ReasonMalformed} {
		if check.Rejections(why) == 0 {
			t.Errorf("no rejection counted for %s", why)
		}
	}
	if err := store.Unregister(context.Background(), departing); err != nil {
		t.Fatal(err)
	}
	awaitAllowlist(t, a, "a node departed", "192.0.2.2", "192.0.2.3")
}
