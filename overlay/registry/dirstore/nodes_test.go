package dirstore

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestDirStoreNodes: advertising a node makes NodeVTEPs list it, again
// and again with no change (a file that holds its address is not
// rewritten); a file there that does not hold its address is
// replaced; withdrawing removes it, also when it is gone already; files
// that are no node (a name that is no canonical address, a value that is
// not the name, a symbolic link, a writer's temporary file) are never
// listed; an address that names no file is refused.
func TestDirStoreNodes(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	if got, err := s.NodeVTEPs(ctx); err != nil || len(got) != 0 {
		t.Fatalf("NodeVTEPs of a store with no node = %v, %v", got, err)
	}
	a, b := netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::3")
	for _, v := range []netip.Addr{a, a, b} {
		if err := s.AdvertiseNode(ctx, v); err != nil {
			t.Fatalf("AdvertiseNode(%v): %v", v, err)
		}
	}
	dir := filepath.Join(s.Root(), nodesDir)
	// Advertised again, a file that holds its address is not rewritten.
	before, err := os.Stat(filepath.Join(dir, "192.0.2.2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AdvertiseNode(ctx, a); err != nil {
		t.Fatal(err)
	}
	if after, err := os.Stat(filepath.Join(dir, "192.0.2.2")); err != nil || !os.SameFile(before, after) {
		t.Errorf("advertising again rewrote the file (%v)", err)
	}
	for name, value := range map[string]string{
		"192.0.2.9":            "192.0.2.10\n", // not its own address
		"192.0.2.010":          "192.0.2.010\n",
		"junk":                 "junk\n",
		".192.0.2.11.tmp12345": "192.0.2.11\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(value), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.Root(), "outside"), []byte("192.0.2.12\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(s.Root(), "outside"), filepath.Join(dir, "192.0.2.12")); err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{a, b}
	got, err := s.NodeVTEPs(ctx)
	slices.SortFunc(got, netip.Addr.Compare)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("NodeVTEPs = %v, %v; want %v", got, err, want)
	}
	// The file of a node holding another value is put right.
	c := netip.MustParseAddr("192.0.2.9")
	if err := s.AdvertiseNode(ctx, c); err != nil {
		t.Fatal(err)
	}
	if v, err := os.ReadFile(filepath.Join(dir, "192.0.2.9")); err != nil || string(v) != "192.0.2.9\n" {
		t.Errorf("advertised over a wrong value: %q, %v", v, err)
	}
	for _, v := range []netip.Addr{a, a, c} {
		if err := s.WithdrawNode(ctx, v); err != nil {
			t.Fatalf("WithdrawNode(%v): %v", v, err)
		}
	}
	if got, err := s.NodeVTEPs(ctx); err != nil || !slices.Equal(got, []netip.Addr{b}) {
		t.Errorf("NodeVTEPs after withdrawals = %v, %v; want [%v]", got, err, b)
	}
	for _, bad := range []netip.Addr{{}, netip.MustParseAddr("::ffff:192.0.2.2"), netip.MustParseAddr("fe80::1%eth0")} {
		if err := s.AdvertiseNode(ctx, bad); err == nil {
			t.Errorf("AdvertiseNode(%q) succeeded", bad)
		}
	}
}

// TestNotifyNodes: a node advertised or withdrawn is noticed at once, the
// nodes' directory made by the first advertisement or there already; Stamp
// changes with it.
func TestNotifyNodes(t *testing.T) {
	for _, before := range []bool{false, true} {
		s := newTestStore(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		vtep := netip.MustParseAddr("192.0.2.7")
		if before {
			if err := s.AdvertiseNode(ctx, netip.MustParseAddr("192.0.2.8")); err != nil {
				t.Fatal(err)
			}
		}
		ch, err := s.Notify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st0, _ := s.Stamp()
		ops := []func() error{
			func() error { return s.AdvertiseNode(ctx, vtep) },
			func() error { return s.WithdrawNode(ctx, vtep) },
		}
		if !before {
			// The directory the first advertisement makes is not watched
			// yet: Notify was called before it existed, as Follow does
			// on a store no daemon advertised in; Stamp sees it.
			ops = ops[:0]
			if err := s.AdvertiseNode(ctx, vtep); err != nil {
				t.Fatal(err)
			}
			if st1, _ := s.Stamp(); st1 == st0 {
				t.Errorf("Stamp unchanged after the first advertisement: %q", st1)
			}
		}
		for _, op := range ops {
			if err := op(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-ch:
			case <-time.After(2 * time.Second):
				t.Fatalf("no notice of a node advertised or withdrawn (directory there before: %v)", before)
			}
			for len(ch) > 0 {
				<-ch
			}
		}
		if st1, _ := s.Stamp(); before && st1 == st0 {
			t.Errorf("Stamp unchanged after changes: %q", st1)
		}
	}
}
