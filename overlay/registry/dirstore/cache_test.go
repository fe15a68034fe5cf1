package dirstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// cachedStore opens a store on a fresh directory of a local filesystem
// with its cache on (EnableCache and a first listing), and a second store
// on the same directory without one: the oracle, reading the files.
func cachedStore(t *testing.T) (cached, files *Store) {
	t.Helper()
	root := t.TempDir()
	cached, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	if cached.calls != rawCalls {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not on a local filesystem: no cache to test", root)
		}
		t.Skipf("%s is not on a local filesystem (tmpfs, ext4, xfs, btrfs, f2fs): no cache to test", root)
	}
	cached.EnableCache()
	t.Cleanup(func() { cached.Close() })
	if _, _, err := cached.ListRejected(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !cached.CacheStats().On {
		t.Fatal("the cache is not on after the first listing")
	}
	files, err = New(root)
	if err != nil {
		t.Fatal(err)
	}
	return cached, files
}

// lookupBoth looks ip up in both stores, MAC then VTEP, and fails t if
// they differ in answer or in error kind.
func lookupBoth(t *testing.T, cached, files *Store, ip netip.Addr, when string) {
	t.Helper()
	ctx := context.Background()
	m1, err1 := cached.LookupMAC(ctx, ip)
	m2, err2 := files.LookupMAC(ctx, ip)
	if m1 != m2 || errors.Is(err1, registry.ErrNotFound) != errors.Is(err2, registry.ErrNotFound) || (err1 == nil) != (err2 == nil) {
		t.Fatalf("%s: LookupMAC(%s): cached %v, %v; files %v, %v", when, ip, m1, err1, m2, err2)
	}
	if err2 != nil {
		return
	}
	v1, err1 := cached.LookupVTEP(ctx, m2)
	v2, err2 := files.LookupVTEP(ctx, m2)
	if v1 != v2 || (err1 == nil) != (err2 == nil) || errors.Is(err1, registry.ErrNotFound) != errors.Is(err2, registry.ErrNotFound) {
		t.Fatalf("%s: LookupVTEP(%s): cached %v, %v; files %v, %v", when, m2, v1, err1, v2, err2)
	}
}

// TestCacheAnswersWhatTheFilesHold: with its cache on, a store answers
// every lookup as its files do right then, through 3,000 random changes
// made the ways a directory store is changed — Register and Unregister, a
// value rewritten in place (the lab's echo > file), a file renamed into
// place, a file removed by hand, a record's file replaced by a directory —
// each followed by a lookup of the record changed and of another; and the
// lookups of records unchanged since they were last read are answered from
// memory.
func TestCacheAnswersWhatTheFilesHold(t *testing.T) {
	cached, files := cachedStore(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 40
	ip := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 9, 0, byte(i)}) }
	mac := func(i int) ethaddr.MAC { return ethaddr.MAC{0x02, 0x42, 0x0a, 0x09, 0, byte(i)} }
	vtep := func(k int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + k)}) }
	for i := range n {
		if err := cached.Register(ctx, registry.Record{IP: ip(i), MAC: mac(i), VTEP: vtep(0)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := cached.ListRejected(ctx); err != nil { // fills the cache
		t.Fatal(err)
	}
	root := cached.Root()
	for step := range 3000 {
		i := rng.IntN(n)
		arp := filepath.Join(root, arpDir, ip(i).String())
		fdb := filepath.Join(root, fdbDir, mac(i).String())
		var what string
		switch op := rng.IntN(7); op {
		case 0:
			what = "register"
			cached.Register(ctx, registry.Record{IP: ip(i), MAC: mac(i), VTEP: vtep(rng.IntN(3))}) //nolint:errcheck // a conflict is a change not made
		case 1:
			what = "unregister"
			m, _ := files.LookupMAC(ctx, ip(i))
			v, _ := files.LookupVTEP(ctx, m)
			cached.Unregister(ctx, registry.Record{IP: ip(i), MAC: m, VTEP: v}) //nolint:errcheck
		case 2:
			what = "rewrite the MAC in place"
			os.WriteFile(arp, []byte(mac(rng.IntN(n)).String()+"\n"), 0o644) //nolint:errcheck
		case 3:
			what = "rewrite the VTEP in place"
			os.WriteFile(fdb, []byte(vtep(rng.IntN(3)).String()+"\n"), 0o644) //nolint:errcheck
		case 4:
			what = "rename a new file into place"
			tmp := filepath.Join(root, arpDir, ".new")
			os.WriteFile(tmp, []byte(mac(rng.IntN(n)).String()+"\n"), 0o644) //nolint:errcheck
			os.Rename(tmp, arp)                                              //nolint:errcheck
		case 5:
			what = "remove by hand"
			os.RemoveAll(arp) //nolint:errcheck
		case 6:
			what = "replace by a directory"
			os.RemoveAll(fdb)    //nolint:errcheck
			os.Mkdir(fdb, 0o755) //nolint:errcheck
		}
		lookupBoth(t, cached, files, ip(i), fmt.Sprintf("step %d (%s of #%d)", step, what, i))
		lookupBoth(t, cached, files, ip(rng.IntN(n)), fmt.Sprintf("step %d (after %s of #%d)", step, what, i))
		if step%500 == 0 {
			if _, _, err := cached.ListRejected(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := cached.CacheStats()
	t.Logf("cache: %+v", st)
	if !st.On || st.Hits < 1000 || st.Forgotten < 500 {
		t.Errorf("want the cache on, answering lookups of records unchanged since their last read (over 1,000) and forgetting the changed ones: %+v", st)
	}
}

// TestCacheDirectoryReplaced: ROOT/arp removed and made again (a store
// emptied by hand) turns the cache off at once — no record of the old
// directory is answered — and the next listing turns it on again on the new
// directory.
func TestCacheDirectoryReplaced(t *testing.T) {
	cached, files := cachedStore(t)
	ctx := context.Background()
	r := registry.Record{IP: netip.MustParseAddr("10.9.1.1"), MAC: ethaddr.MAC{2, 0x42, 10, 9, 1, 1}, VTEP: netip.MustParseAddr("192.0.2.1")}
	if err := cached.Register(ctx, r); err != nil {
		t.Fatal(err)
	}
	lookupBoth(t, cached, files, r.IP, "registered")
	lookupBoth(t, cached, files, r.IP, "registered, again") // from the cache
	if st := cached.CacheStats(); st.Hits == 0 {
		t.Fatalf("the second lookup was not answered from the cache: %+v", st)
	}
	arp := filepath.Join(cached.Root(), arpDir)
	if err := os.RemoveAll(arp); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(arp, 0o755); err != nil {
		t.Fatal(err)
	}
	lookupBoth(t, cached, files, r.IP, "arp/ made again, empty")
	if cached.CacheStats().On {
		t.Fatal("the cache is still on after ROOT/arp was replaced")
	}
	if err := os.WriteFile(filepath.Join(arp, r.IP.String()), []byte("02:42:0a:09:01:02\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cached.ListRejected(ctx); err != nil {
		t.Fatal(err)
	}
	st := cached.CacheStats()
	if !st.On || st.Starts != 2 {
		t.Fatalf("want the cache started again by the listing: %+v", st)
	}
	lookupBoth(t, cached, files, r.IP, "a new record in the new arp/")
	lookupBoth(t, cached, files, r.IP, "a new record in the new arp/, again")
}

// TestCacheHardLink: a record file with a second hard link (an edit through
// it raises no event on ROOT/arp) is never kept: every lookup reads it.
func TestCacheHardLink(t *testing.T) {
	cached, files := cachedStore(t)
	ctx := context.Background()
	ip := netip.MustParseAddr("10.9.2.1")
	arp := filepath.Join(cached.Root(), arpDir, ip.String())
	if err := os.WriteFile(arp, []byte("02:42:0a:09:02:01\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other")
	if err := os.Link(arp, other); err != nil {
		t.Skipf("no hard link across the test's directories: %v", err)
	}
	lookupBoth(t, cached, files, ip, "linked twice")
	// Rewritten in place through the other name: the same inode.
	f, err := os.OpenFile(other, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("02:42:0a:09:02:02\n")
	f.Close()
	lookupBoth(t, cached, files, ip, "edited through the other link")
	if got, _ := cached.LookupMAC(ctx, ip); got.String() != "02:42:0a:09:02:02" {
		t.Fatalf("LookupMAC = %v after the edit through the other link", got)
	}
	if st := cached.CacheStats(); st.Hits != 0 {
		t.Errorf("a file with two links was answered from the cache: %+v", st)
	}
}

// TestCacheOverflow: more changes than the kernel queues events for between
// two lookups (fs.inotify.max_queued_events, 16,384 by default) empty the
// cache; lookups then answer from the files and keep them again.
func TestCacheOverflow(t *testing.T) {
	cached, files := cachedStore(t)
	ip := netip.MustParseAddr("10.9.3.1")
	arp := filepath.Join(cached.Root(), arpDir, ip.String())
	if err := os.WriteFile(arp, []byte("02:42:0a:09:03:00\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lookupBoth(t, cached, files, ip, "written")
	limit := 16384
	if b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events"); err == nil {
		fmt.Sscan(string(b), &limit)
	}
	if limit > 1<<17 {
		t.Skipf("max_queued_events %d: too many changes to make", limit)
	}
	for k := range limit/2 + 16 { // each rewrite queues a modify and a close
		if err := os.WriteFile(arp, []byte(fmt.Sprintf("02:42:0a:09:03:%02x\n", k%256)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lookupBoth(t, cached, files, ip, "after the overflow")
	st := cached.CacheStats()
	if st.Overflows == 0 || !st.On {
		t.Fatalf("want an overflow counted and the cache on: %+v", st)
	}
	lookupBoth(t, cached, files, ip, "after the overflow, again")
}

// TestCacheConcurrent: lookups racing with writers (run with -race) answer
// values that were in the files, and once the writers are done every
// lookup answers what the files hold.
func TestCacheConcurrent(t *testing.T) {
	cached, files := cachedStore(t)
	ctx := context.Background()
	const n = 16
	ip := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 9, 4, byte(i)}) }
	macs := func(i, k int) string { return fmt.Sprintf("02:42:0a:09:%02x:%02x", i, k) }
	for i := range n {
		os.WriteFile(filepath.Join(cached.Root(), arpDir, ip(i).String()), []byte(macs(i, 0)+"\n"), 0o644) //nolint:errcheck
	}
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for k := range 300 {
				i := (k + w) % n
				os.WriteFile(filepath.Join(cached.Root(), arpDir, ip(i).String()), []byte(macs(i, k%250)+"\n"), 0o644) //nolint:errcheck
			}
		})
	}
	for range 3 {
		wg.Go(func() {
			for k := range 1000 {
				i := k % n
				m, err := cached.LookupMAC(ctx, ip(i))
				if err == nil && (m[4] != byte(i) || m[0] != 2) {
					t.Errorf("LookupMAC(%s) = %s: never written", ip(i), m)
				}
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			cached.ListRejected(ctx) //nolint:errcheck
		}
	})
	wg.Wait()
	for i := range n {
		lookupBoth(t, cached, files, ip(i), "after the writers")
	}
}

// TestCacheOffElsewhere: a store reading with ordinary calls (not a local
// filesystem: NFS, FUSE) keeps no cache, and Close releases one for good.
func TestCacheOffElsewhere(t *testing.T) {
	s := &Store{root: t.TempDir(), calls: ordinaryCalls}
	s.EnableCache()
	if s.cache != nil {
		t.Fatal("a cache on a store that is not on a local filesystem")
	}
	cached, _ := cachedStore(t)
	cached.Close()
	if st := cached.CacheStats(); st.On {
		t.Fatalf("the cache is on after Close: %+v", st)
	}
	if _, _, err := cached.ListRejected(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := cached.CacheStats(); st.On {
		t.Fatalf("a listing after Close started the cache again: %+v", st)
	}
}

// FuzzParseEvents: any bytes parse without a panic, into names within the
// bytes.
func FuzzParseEvents(f *testing.F) {
	ev := make([]byte, 16+16)
	ev[12] = 16
	copy(ev[16:], "10.0.0.1")
	f.Add(ev)
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		total := 0
		parseEvents(b, func(_ int32, _ uint32, name []byte) { total += len(name) + 16 }) //nolint:errcheck
		if total > len(b) {
			t.Fatalf("events of %d bytes out of %d", total, len(b))
		}
	})
}

// TestCacheBound: a cache keeps at most cacheMax records of each kind, and
// full it costs at most about 80 bytes a record (the README's 10 MB; 12
// MiB allowed for the runtime's own noise).
func TestCacheBound(t *testing.T) {
	c := newCache(t.TempDir())
	for _, d := range []string{arpDir, fdbDir} {
		if err := os.Mkdir(filepath.Join(c.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	defer c.stop()
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	for i := range cacheMax + 10 {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		mac := ethaddr.MAC{2, 0x42, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		keep(c, c.macs, ip, mac)
		keep(c, c.vteps, mac, ip)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	if len(c.macs) != cacheMax || len(c.vteps) != cacheMax {
		t.Fatalf("cache holds %d and %d records, want %d of each", len(c.macs), len(c.vteps), cacheMax)
	}
	grown := int64(m1.HeapAlloc) - int64(m0.HeapAlloc)
	t.Logf("%d records of each kind: %d bytes, %d a record", cacheMax, grown, grown/(2*cacheMax))
	if grown > 12<<20 {
		t.Errorf("a full cache takes %d bytes, over 12 MiB", grown)
	}
}
