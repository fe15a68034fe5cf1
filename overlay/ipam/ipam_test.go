package ipam_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/overlaynet/overlaynet/overlay/ipam"
	"github.com/overlaynet/overlaynet/overlay/ipam/ipamtest"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

var gw = netip.MustParsePrefix("198.51.100.1/24")

func newAlloc(t *testing.T, s registry.BlockStore, dir, owner string, bits int, inUse func(context.Context, netip.Addr) (bool, error)) *ipam.Allocator {
	t.Helper()
	a, err := ipam.New(ipam.Config{Dir: dir, Store: s, Owner: owner, Gateway: gw, BlockBits: bits, InUse: inUse})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestMemConformance(t *testing.T) { ipamtest.Conformance(t, ipamtest.NewMem()) }

func TestNewRefuses(t *testing.T) {
	s := ipamtest.NewMem()
	tests := []struct {
		name string
		cfg  ipam.Config
		want string
	}{
		{"no dir", ipam.Config{Store: s, Owner: "a", Gateway: gw}, "no allocation directory"},
		{"no owner", ipam.Config{Dir: "/x", Store: s, Gateway: gw}, "owner"},
		{"owner with slash", ipam.Config{Dir: "/x", Store: s, Owner: "a/b", Gateway: gw}, "owner"},
		{"no gateway", ipam.Config{Dir: "/x", Store: s, Owner: "a"}, "gateway"},
		{"ipv6 /127", ipam.Config{Dir: "/x", Store: s, Owner: "a", Gateway: netip.MustParsePrefix("2001:db8::1/127")}, "gateway"},
		{"ipv4-mapped", ipam.Config{Dir: "/x", Store: s, Owner: "a", Gateway: netip.MustParsePrefix("::ffff:10.0.0.1/120")}, "gateway"},
		{"ipv6 block /129", ipam.Config{Dir: "/x", Store: s, Owner: "a", Gateway: netip.MustParsePrefix("2001:db8::1/64"), BlockBits: 129}, "block size"},
		{"/31", ipam.Config{Dir: "/x", Store: s, Owner: "a", Gateway: netip.MustParsePrefix("10.0.0.1/31")}, "gateway"},
		{"block /33", ipam.Config{Dir: "/x", Store: s, Owner: "a", Gateway: gw, BlockBits: 33}, "block size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ipam.New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v; want an error about %q", err, tt.want)
			}
		})
	}
}

func TestAllocateSequence(t *testing.T) {
	ctx := context.Background()
	s := ipamtest.NewMem()
	dir := t.TempDir()
	// /28 blocks: 16 addresses; the first block loses .0 (network) and .1
	// (gateway), the last .255 (broadcast).
	a := newAlloc(t, s, dir, "192.0.2.2", 28, nil)
	var got []string
	for i := range 15 {
		p, err := a.Allocate(ctx, fmt.Sprintf("c%d", i), netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.String())
	}
	if got[0] != "198.51.100.2/24" || got[13] != "198.51.100.15/24" || got[14] != "198.51.100.16/24" {
		t.Errorf("allocations: %v; want .2 … .15 from the first block, then .16 from the second", got)
	}
	usage, err := a.Usage()
	if err != nil {
		t.Fatal(err)
	}
	want := []ipam.BlockUsage{{Block: netip.MustParsePrefix("198.51.100.0/28"), Size: 14, Used: 14},
		{Block: netip.MustParsePrefix("198.51.100.16/28"), Size: 16, Used: 1}}
	if fmt.Sprint(usage) != fmt.Sprint(want) {
		t.Errorf("Usage = %v; want %v", usage, want)
	}
	// A released address is handed out again, first.
	if err := a.Release(ctx, "c3", netip.MustParseAddr("198.51.100.5")); err != nil {
		t.Fatal(err)
	}
	if p, err := a.Allocate(ctx, "again", netip.Addr{}); err != nil || p.Addr() != netip.MustParseAddr("198.51.100.5") {
		t.Errorf("after release: %v, %v; want 198.51.100.5", p, err)
	}
	// Release by someone else, or of a free address, changes nothing.
	if err := a.Release(ctx, "nobody", netip.MustParseAddr("198.51.100.5")); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, "c1", netip.MustParseAddr("198.51.100.200")); err != nil {
		t.Fatal(err)
	}
	allocs, _ := a.Allocations()
	if len(allocs) != 15 {
		t.Errorf("%d allocations, want 15: %v", len(allocs), allocs)
	}
	// Releasing the last address of a block gives the block back.
	if err := a.Release(ctx, "c14", netip.MustParseAddr("198.51.100.16")); err != nil {
		t.Fatal(err)
	}
	if blocks, _ := s.Blocks(ctx); len(blocks) != 1 {
		t.Errorf("blocks after the second block emptied: %v; want the first only", blocks)
	}
	ids, err := a.ReleaseID(ctx, "again")
	if err != nil || len(ids) != 1 || ids[0] != netip.MustParseAddr("198.51.100.5") {
		t.Errorf("ReleaseID: %v, %v", ids, err)
	}
}

func TestAllocateWanted(t *testing.T) {
	ctx := context.Background()
	s := ipamtest.NewMem()
	registered := map[netip.Addr]bool{netip.MustParseAddr("198.51.100.77"): true, netip.MustParseAddr("198.51.100.50"): true}
	inUse := func(_ context.Context, ip netip.Addr) (bool, error) { return registered[ip], nil }
	a := newAlloc(t, s, t.TempDir(), "192.0.2.2", 0, inUse)
	if _, err := a.Allocate(ctx, "first", netip.MustParseAddr("198.51.100.9")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		id   string
		ip   string
		want error
	}{
		{"free, in another node's part of the subnet", "x", "198.51.100.200", nil},
		{"same again for the same ID", "x", "198.51.100.200", nil},
		{"allocated to another ID", "y", "198.51.100.9", ipam.ErrInUse},
		{"registered in the registry: the caller's to compare", "z", "198.51.100.77", nil},
		{"outside the subnet", "y", "203.0.113.5", ipam.ErrOutside},
		{"gateway", "y", "198.51.100.1", ipam.ErrOutside},
		{"network", "y", "198.51.100.0", ipam.ErrOutside},
		{"broadcast", "y", "198.51.100.255", ipam.ErrOutside},
		{"IPv6", "y", "2001:db8::5", ipam.ErrOutside},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := a.Allocate(ctx, tt.id, netip.MustParseAddr(tt.ip))
			if !errors.Is(err, tt.want) || (tt.want == nil && p.Addr().String() != tt.ip) {
				t.Fatalf("Allocate(%s) = %v, %v; want %v", tt.ip, p, err, tt.want)
			}
			if err != nil {
				t.Logf("%v", err)
			}
		})
	}
	// Automatic allocation skips the explicit ones and the registered one.
	for i := range 80 {
		p, err := a.Allocate(ctx, fmt.Sprintf("auto%d", i), netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		if registered[p.Addr()] || p.Addr() == netip.MustParseAddr("198.51.100.9") || p.Addr() == netip.MustParseAddr("198.51.100.200") {
			t.Fatalf("handed out %s, which is taken", p)
		}
	}
}

// Blocks held by other nodes are skipped; when every block is held and
// ours are full, allocation fails with ErrExhausted; ReleaseAll gives back
// addresses and blocks.
func TestBlocksAndExhaustion(t *testing.T) {
	ctx := context.Background()
	s := ipamtest.NewMem()
	other := newAlloc(t, s, t.TempDir(), "192.0.2.3", 26, nil)
	if _, err := other.Allocate(ctx, "o", netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	a := newAlloc(t, s, t.TempDir(), "192.0.2.2", 26, nil)
	p, err := a.Allocate(ctx, "a0", netip.Addr{})
	if err != nil || p.Addr() != netip.MustParseAddr("198.51.100.64") {
		t.Fatalf("first allocation %v, %v; want 198.51.100.64 (the first block is the other node's)", p, err)
	}
	n := 1
	for {
		_, err := a.Allocate(ctx, fmt.Sprintf("a%d", n), netip.Addr{})
		if errors.Is(err, ipam.ErrExhausted) {
			t.Logf("%v", err)
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	// Three /26 blocks: 64 + 64 + 63 (no broadcast).
	if n != 191 {
		t.Errorf("allocated %d addresses before exhaustion, want 191", n)
	}
	blocks, _ := s.Blocks(ctx)
	if len(blocks) != 4 {
		t.Errorf("blocks: %v", blocks)
	}
	if err := a.ReleaseAll(ctx); err != nil {
		t.Fatal(err)
	}
	blocks, _ = s.Blocks(ctx)
	if len(blocks) != 1 || blocks[netip.MustParsePrefix("198.51.100.0/26")] != "192.0.2.3" {
		t.Errorf("after ReleaseAll: %v; want only the other node's block", blocks)
	}
	if allocs, _ := a.Allocations(); len(allocs) != 0 {
		t.Errorf("allocations after ReleaseAll: %v", allocs)
	}
	if err := a.Remove(); err != nil {
		t.Fatal(err)
	}
}

// 32 allocators on one directory (as 32 plugin processes of one node), all
// at once: 32 distinct addresses, in one block.
func TestParallelAllocations(t *testing.T) {
	ctx := context.Background()
	s := ipamtest.NewMem()
	dir := filepath.Join(t.TempDir(), "ipam")
	const n = 32
	got := make([]netip.Prefix, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := newAlloc(t, s, dir, "192.0.2.2", 0, nil)
			got[i], errs[i] = a.Allocate(ctx, fmt.Sprintf("c%d", i), netip.Addr{})
		}()
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("allocation %d: %v", i, errs[i])
		}
		if j, dup := seen[got[i].Addr()]; dup {
			t.Fatalf("allocations %d and %d both got %s", i, j, got[i])
		}
		seen[got[i].Addr()] = i
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != n+2 { // + the lock file and the blocks mirror
		t.Errorf("%d files in the allocation directory, want %d + lock", len(ents), n)
	}
	if blocks, _ := s.Blocks(ctx); len(blocks) != 1 {
		t.Errorf("blocks: %v; want one", blocks)
	}
}

// Two nodes allocating at once from one store end with disjoint blocks and
// distinct addresses.
func TestTwoNodesAllocating(t *testing.T) {
	ctx := context.Background()
	s := ipamtest.NewMem()
	const per = 40 // more than one /27 block each
	owners := []string{"192.0.2.2", "192.0.2.3"}
	res := make([][]netip.Prefix, len(owners))
	var wg sync.WaitGroup
	for o, owner := range owners {
		dir := t.TempDir()
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := newAlloc(t, s, dir, owner, 27, nil)
			for i := range per {
				p, err := a.Allocate(ctx, fmt.Sprintf("c%d", i), netip.Addr{})
				if err != nil {
					t.Error(err)
					return
				}
				res[o] = append(res[o], p)
			}
		}()
	}
	wg.Wait()
	blocks, _ := s.Blocks(ctx)
	seen := map[netip.Addr]string{}
	for o, ps := range res {
		for _, p := range ps {
			if prev, dup := seen[p.Addr()]; dup {
				t.Fatalf("%s handed out to %s and %s", p, prev, owners[o])
			}
			seen[p.Addr()] = owners[o]
			b := netip.PrefixFrom(p.Addr(), 27).Masked()
			if blocks[b] != owners[o] {
				t.Errorf("%s of %s is in block %s held by %q", p, owners[o], b, blocks[b])
			}
		}
	}
}

func TestBlockName(t *testing.T) {
	for _, s := range []string{"198.51.100.64/26", "10.0.0.0/8", "0.0.0.0/0", "2001:db8:42::100/120", "::/0"} {
		p := netip.MustParsePrefix(s)
		got, err := ipam.ParseBlockName(ipam.BlockName(p))
		if err != nil || got != p {
			t.Errorf("round trip of %s: %v, %v", s, got, err)
		}
	}
	for _, bad := range []string{"", "198.51.100.64", "198.51.100.65-26", "x-26", "198.51.100.64-40", "2001:db8:42::101-120", "2001:db8::-129"} {
		if _, err := ipam.ParseBlockName(bad); err == nil {
			t.Errorf("ParseBlockName(%q) accepted", bad)
		}
	}
}

func FuzzParseBlockName(f *testing.F) {
	f.Add("198.51.100.64-26")
	f.Add("::-0")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ipam.ParseBlockName(s)
		if err == nil && ipam.BlockName(p) != s {
			if q, err := ipam.ParseBlockName(ipam.BlockName(p)); err != nil || q != p {
				t.Fatalf("%q → %v does not round-trip", s, p)
			}
		}
	})
}

var gw6 = netip.MustParsePrefix("2001:db8:42::1/64")

// TestAllocateIPv6: an allocator of an IPv6 prefix claims /120 blocks by
// default and hands out their addresses in order, skipping the prefix's
// subnet-router anycast address (::) and the gateway (::1); the last
// address of a block is handed out (no broadcast). An explicit address is
// honoured unless reserved or outside the prefix.
func TestAllocateIPv6(t *testing.T) {
	ctx := context.Background()
	s := ipamtest.NewMem()
	a, err := ipam.New(ipam.Config{Dir: t.TempDir(), Store: s, Owner: "2001:db8::2", Gateway: gw6})
	if err != nil {
		t.Fatal(err)
	}
	if a.BlockBits() != ipam.DefaultBlockBits6 || a.Subnet() != netip.MustParsePrefix("2001:db8:42::/64") {
		t.Fatalf("blocks /%d of %s", a.BlockBits(), a.Subnet())
	}
	var got []netip.Prefix
	for i := range 255 {
		p, err := a.Allocate(ctx, fmt.Sprintf("c%d", i), netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	if got[0].String() != "2001:db8:42::2/64" || got[253].String() != "2001:db8:42::ff/64" || got[254].String() != "2001:db8:42::100/64" {
		t.Errorf("allocations %v ... %v %v; want ::2 ... ::ff from the first block, then ::100", got[0], got[253], got[254])
	}
	usage, err := a.Usage()
	want := []ipam.BlockUsage{{Block: netip.MustParsePrefix("2001:db8:42::/120"), Size: 254, Used: 254},
		{Block: netip.MustParsePrefix("2001:db8:42::100/120"), Size: 256, Used: 1}}
	if err != nil || fmt.Sprint(usage) != fmt.Sprint(want) {
		t.Errorf("Usage = %v, %v; want %v", usage, err, want)
	}
	for _, c := range []struct{ ip, want string }{
		{"2001:db8:42::", "subnet-router anycast"},
		{"2001:db8:42::1", "gateway"},
		{"2001:db8:43::5", "outside"},
		{"198.51.100.5", "outside"},
	} {
		if _, err := a.Allocate(ctx, "x", netip.MustParseAddr(c.ip)); !errors.Is(err, ipam.ErrOutside) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Allocate(%s) = %v, want ErrOutside (%s)", c.ip, err, c.want)
		}
	}
	if p, err := a.Allocate(ctx, "far", netip.MustParseAddr("2001:db8:42::ffff:ffff:ffff:ffff")); err != nil || p.Bits() != 64 {
		t.Errorf("the prefix's last address: %v, %v", p, err)
	}
	if err := ipam.CheckAddress(gw6, netip.MustParseAddr("2001:db8:42::")); !errors.Is(err, ipam.ErrOutside) {
		t.Errorf("CheckAddress(anycast) = %v", err)
	}
	// The last release of a block gives it back.
	if err := a.Release(ctx, "c254", got[254].Addr()); err != nil {
		t.Fatal(err)
	}
	if blocks, _ := s.Blocks(ctx); len(blocks) != 1 {
		t.Errorf("blocks after releasing the second block's only address: %v", blocks)
	}
}

// TestDualStackAllocators: an IPv4 and an IPv6 allocator sharing one
// allocation directory each see, use and give back only their own
// allocations and blocks; the directory goes once both are empty.
func TestDualStackAllocators(t *testing.T) {
	ctx := context.Background()
	s := ipamtest.NewMem()
	dir := filepath.Join(t.TempDir(), "ipam")
	a4 := newAlloc(t, s, dir, "192.0.2.2", 0, nil)
	a6, err := ipam.New(ipam.Config{Dir: dir, Store: s, Owner: "192.0.2.2", Gateway: gw6, BlockBits: 112})
	if err != nil {
		t.Fatal(err)
	}
	p4, err := a4.Allocate(ctx, "pink", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	p6, err := a6.Allocate(ctx, "pink", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if p4.String() != "198.51.100.2/24" || p6.String() != "2001:db8:42::2/64" {
		t.Fatalf("allocated %s and %s", p4, p6)
	}
	for _, c := range []struct {
		a    *ipam.Allocator
		want string
	}{{a4, "[{198.51.100.2 pink}]"}, {a6, "[{2001:db8:42::2 pink}]"}} {
		if al, err := c.a.Allocations(); err != nil || fmt.Sprint(al) != c.want {
			t.Errorf("Allocations of %s = %v, %v; want %s", c.a.Subnet(), al, err, c.want)
		}
		if u, err := c.a.Usage(); err != nil || len(u) != 1 || u[0].Used != 1 {
			t.Errorf("Usage of %s = %v, %v", c.a.Subnet(), u, err)
		}
	}
	// ReleaseEmpty of one family leaves the other's marks and blocks alone.
	if out, err := a4.ReleaseEmpty(ctx); err != nil || len(out) != 0 {
		t.Fatalf("ReleaseEmpty: %v, %v", out, err)
	}
	if u, _ := a6.Usage(); len(u) != 1 {
		t.Errorf("IPv6 blocks after the IPv4 ReleaseEmpty: %v", u)
	}
	if got, err := a4.ReleaseID(ctx, "pink"); err != nil || fmt.Sprint(got) != "[198.51.100.2]" {
		t.Errorf("IPv4 ReleaseID = %v, %v", got, err)
	}
	if err := a4.Remove(); err == nil {
		t.Errorf("Remove with an IPv6 allocation left succeeded")
	}
	if err := a6.ReleaseAll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a4.ReleaseAll(ctx); err != nil {
		t.Fatal(err)
	}
	if blocks, _ := s.Blocks(ctx); len(blocks) != 0 {
		t.Errorf("blocks left: %v", blocks)
	}
	if err := a4.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("allocation directory left: %v", err)
	}
}

// TestRecordKilledWriter: an allocation is written whole or not at all. A
// writer killed half-way leaves only its temporary file (.record.tmp), no
// allocation of no one: it is not listed, the next holder of the lock (an
// allocation, a release) removes it, every allocation file names its
// owner, and Remove leaves no directory.
func TestRecordKilledWriter(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "ipam")
	a := newAlloc(t, ipamtest.NewMem(), dir, "192.0.2.2", 0, nil)
	if _, err := a.Allocate(ctx, "pink", netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	temp := filepath.Join(dir, ".record.tmp")
	if err := os.WriteFile(temp, []byte("gho"), 0o644); err != nil { // a killed writer's
		t.Fatal(err)
	}
	if _, err := a.Allocate(ctx, "sky", netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(temp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left after an allocation: %v", err)
	}
	allocs, err := a.Allocations()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(allocs) != "[{198.51.100.2 pink} {198.51.100.3 sky}]" {
		t.Errorf("allocations %v, want pink's and sky's", allocs)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if ip, err := netip.ParseAddr(e.Name()); err == nil {
			if b, _ := os.ReadFile(filepath.Join(dir, e.Name())); strings.TrimSpace(string(b)) == "" {
				t.Errorf("allocation %s has no owner", ip)
			}
		}
	}
	if _, err := a.Allocate(ctx, "red", netip.MustParseAddr("198.51.100.3")); !errors.Is(err, ipam.ErrInUse) {
		t.Errorf("allocating sky's address to red: %v, want ErrInUse", err)
	}
	if err := os.WriteFile(temp, []byte("gho"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ReleaseID(ctx, "nobody"); err != nil { // a DEL after a killed ADD
		t.Fatal(err)
	}
	if _, err := os.Stat(temp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left after a release: %v", err)
	}
	if err := os.WriteFile(temp, []byte("gho"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.ReleaseAll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("allocation directory left: %v", err)
	}
}
