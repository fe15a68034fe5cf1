package dirstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

func recordOf(ip, mac, vtep string) registry.Record {
	m, err := ethaddr.Parse(mac)
	if err != nil {
		panic(err)
	}
	return registry.Record{IP: netip.MustParseAddr(ip), MAC: m, VTEP: netip.MustParseAddr(vtep)}
}

func TestDirStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	r := recordOf("198.51.100.2", "02:42:c6:33:64:02", "192.0.2.2")
	if _, err := s.LookupMAC(ctx, r.IP); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("lookup before register: %v, want registry.ErrNotFound", err)
	}
	if err := s.Register(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := s.Register(ctx, r); err != nil {
		t.Fatalf("register the same record again: %v", err)
	}
	// The lab's layout, one value per file with a newline.
	for path, want := range map[string]string{
		"arp/198.51.100.2":      "02:42:c6:33:64:02\n",
		"fdb/02:42:c6:33:64:02": "192.0.2.2\n",
	} {
		b, err := os.ReadFile(filepath.Join(s.Root(), path))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", path, b, err, want)
		}
	}
	if got := storeFiles(t, s); len(got) != 2 {
		t.Errorf("store holds %v, want exactly the two records (no temp files)", got)
	}
	mac, err := s.LookupMAC(ctx, r.IP)
	if err != nil || mac != r.MAC {
		t.Errorf("LookupMAC = %s, %v", mac, err)
	}
	vtep, err := s.LookupVTEP(ctx, r.MAC)
	if err != nil || vtep != r.VTEP {
		t.Errorf("LookupVTEP = %s, %v", vtep, err)
	}
	r2 := recordOf("198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3")
	if err := s.Register(ctx, r2); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 2 || list[0] != r || list[1] != r2 {
		t.Fatalf("List = %v, %v; want [%v %v]", list, err, r, r2)
	}
	// Unregister removes only records holding these values.
	other := r
	other.MAC = r2.MAC
	if err := s.Unregister(ctx, registry.Record{IP: r.IP, MAC: r2.MAC, VTEP: r.VTEP}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LookupMAC(ctx, r.IP); err != nil {
		t.Fatalf("unregister with another MAC removed the record: %v", err)
	}
	if err := s.Unregister(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := s.Unregister(ctx, r); err != nil {
		t.Fatalf("unregister twice: %v", err)
	}
	if _, err := s.LookupMAC(ctx, r.IP); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("after unregister: %v", err)
	}
	if _, err := s.LookupVTEP(ctx, r.MAC); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("after unregister: %v", err)
	}
	if list, _ := s.List(ctx); len(list) != 1 || list[0] != r2 {
		t.Fatalf("List = %v, want [%v]", list, r2)
	}
}

func TestDirStoreConflict(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	r := recordOf("198.51.100.2", "02:42:c6:33:64:02", "192.0.2.2")
	if err := s.Register(ctx, r); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		r    registry.Record
		want string
	}{
		{"ip to another mac", recordOf("198.51.100.2", "02:42:00:00:00:09", "192.0.2.2"), "IP 198.51.100.2 is registered to MAC 02:42:c6:33:64:02"},
		{"mac at another vtep", recordOf("198.51.100.9", "02:42:c6:33:64:02", "192.0.2.3"), "MAC 02:42:c6:33:64:02 is registered at VTEP 192.0.2.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := storeFiles(t, s)
			err := s.Register(ctx, tc.r)
			if !errors.Is(err, registry.ErrConflict) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Register = %v, want registry.ErrConflict saying %q", err, tc.want)
			}
			if after := storeFiles(t, s); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Fatalf("store changed on conflict: %v -> %v", before, after)
			}
		})
	}
	if err := s.Register(ctx, registry.Record{IP: r.IP, MAC: ethaddr.MAC{}, VTEP: r.VTEP}); err == nil {
		t.Fatal("Register with a zero MAC succeeded")
	}
}

func TestDirStoreConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	const writers = 16
	ip := netip.MustParseAddr("198.51.100.7")
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		winners   []ethaddr.MAC
		conflicts int
	)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Distinct stores on one root, as distinct nodes on one share.
			st, err := New(s.Root())
			if err != nil {
				t.Error(err)
				return
			}
			m := ethaddr.MAC{0x02, 0x42, 0, 0, 0, byte(i + 1)}
			err = st.Register(ctx, registry.Record{IP: ip, MAC: m, VTEP: netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", i+1))})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners = append(winners, m)
			case errors.Is(err, registry.ErrConflict):
				conflicts++
			default:
				t.Errorf("writer %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if len(winners) != 1 || conflicts != writers-1 {
		t.Fatalf("%d winners %v and %d conflicts, want 1 and %d", len(winners), winners, conflicts, writers-1)
	}
	got, err := s.LookupMAC(ctx, ip)
	if err != nil || got != winners[0] {
		t.Fatalf("LookupMAC = %s, %v; want the winner %s", got, err, winners[0])
	}
	// The losers' MAC records were rolled back: only the winner's remains.
	if files := storeFiles(t, s); len(files) != 2 {
		t.Fatalf("store holds %v, want the winner's two records", files)
	}

	// Writers of the same record all succeed.
	r := recordOf("198.51.100.8", "02:42:c6:33:64:08", "192.0.2.2")
	errs := make(chan error, writers)
	for range writers {
		go func() { errs <- s.Register(ctx, r) }()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Errorf("same-record writer: %v", err)
		}
	}
}

func TestDirStoreMalformed(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	good := recordOf("198.51.100.2", "02:42:c6:33:64:02", "192.0.2.2")
	if err := s.Register(ctx, good); err != nil {
		t.Fatal(err)
	}
	write := func(rel, content string) {
		if err := os.WriteFile(filepath.Join(s.Root(), rel), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Tolerated: no trailing newline, CRLF.
	write("arp/198.51.100.3", "02:42:c6:33:64:03")
	write("fdb/02:42:c6:33:64:03", "192.0.2.3\r\n")
	// Malformed.
	write("arp/198.51.100.4", "not a mac\n")
	write("arp/198.51.100.5", "02:42:c6:33:64:05\n")
	write("fdb/02:42:c6:33:64:05", "192.0.2\n")
	write("arp/garbage", "02:42:c6:33:64:06\n")

	if m, err := s.LookupMAC(ctx, netip.MustParseAddr("198.51.100.3")); err != nil || m.String() != "02:42:c6:33:64:03" {
		t.Errorf("no-newline record: %s, %v", m, err)
	}
	if v, err := s.LookupVTEP(ctx, recordOf("198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3").MAC); err != nil || v.String() != "192.0.2.3" {
		t.Errorf("CRLF record: %s, %v", v, err)
	}
	write("arp/198.51.100.7", "02:42:c6:33:64:07\n"+strings.Repeat("x", 4096))
	for _, tc := range []struct {
		ip   string
		want string
		why  registry.Reason
	}{
		{"198.51.100.7", "arp/198.51.100.7 is longer than 128 bytes: not a record", registry.ReasonOversized},
		{"198.51.100.4", "arp/198.51.100.4 holds no MAC: not a record", registry.ReasonMalformed},
	} {
		_, err := s.LookupMAC(ctx, netip.MustParseAddr(tc.ip))
		var rj registry.Rejected
		if !errors.As(err, &rj) || rj.Reason != tc.why || rj.Key != "arp/"+tc.ip || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "not a mac") {
			t.Errorf("LookupMAC(%s) = %v; want a rejection %s of arp/%s saying %q, without the value", tc.ip, err, tc.why, tc.ip, tc.want)
		}
	}
	_, err := s.LookupVTEP(ctx, recordOf("198.51.100.5", "02:42:c6:33:64:05", "192.0.2.5").MAC)
	if !errors.Is(err, registry.ErrRejected) || !strings.Contains(err.Error(), "fdb/02:42:c6:33:64:05 holds no IP address") {
		t.Errorf("malformed VTEP: %v", err)
	}
	// Registering over a malformed record fails clearly and changes nothing.
	err = s.Register(ctx, recordOf("198.51.100.4", "02:42:c6:33:64:04", "192.0.2.2"))
	if !errors.Is(err, registry.ErrRejected) || !strings.Contains(err.Error(), "holds no MAC") {
		t.Errorf("register over malformed: %v", err)
	}
	// A FIFO with no writer would block a plain open: it is no record, not
	// a hung resolver.
	if err := unix.Mkfifo(filepath.Join(s.Root(), "arp/198.51.100.8"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LookupMAC(ctx, netip.MustParseAddr("198.51.100.8")); !errors.Is(err, registry.ErrRejected) || !strings.Contains(err.Error(), "is a FIFO, not a regular file") {
		t.Errorf("FIFO record: %v", err)
	}
	// A listing skips what is no record, and says why: it is complete.
	list, rejected, err := s.ListRejected(ctx)
	if err != nil {
		t.Errorf("ListRejected error = %v, want none: files that are no record do not make a listing incomplete", err)
	}
	var ips []string
	for _, r := range list {
		ips = append(ips, r.IP.String()+"@"+r.VTEP.String())
	}
	if strings.Join(ips, " ") != "198.51.100.2@192.0.2.2 198.51.100.3@192.0.2.3 198.51.100.5@invalid IP" {
		t.Errorf("ListRejected returned %v, want the readable records (198.51.100.5 without a VTEP)", ips)
	}
	slices.SortFunc(rejected, func(a, b registry.Rejected) int { return strings.Compare(a.Key, b.Key) })
	want := []registry.Rejected{
		{Key: "arp/198.51.100.4", Reason: registry.ReasonMalformed},
		{Key: "arp/198.51.100.7", Reason: registry.ReasonOversized},
		{Key: "arp/198.51.100.8", Reason: registry.ReasonUnreadable},
		{Key: "arp/garbage", Reason: registry.ReasonMalformed},
		{Key: "fdb/02:42:c6:33:64:05", Reason: registry.ReasonMalformed},
	}
	if !slices.Equal(rejected, want) {
		t.Errorf("rejected %v, want %v", rejected, want)
	}
	if l2, err := s.List(ctx); err != nil || len(l2) != len(list) {
		t.Errorf("List = %d records, %v; want ListRejected's %d, no error", len(l2), err, len(list))
	}
	// A failure to read the store is one.
	if err := os.Rename(filepath.Join(s.Root(), "arp"), filepath.Join(s.Root(), "arp.gone")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ListRejected(ctx); err == nil || errors.Is(err, registry.ErrRejected) {
		t.Errorf("ListRejected without arp/: %v, want a failure", err)
	}
}

// TestOpener: registry.Open with the dir scheme opens the store at the
// URL's path; a URL without one wraps registry.ErrBadURL.
func TestOpener(t *testing.T) {
	dir := t.TempDir()
	o := registry.Options{Schemes: map[string]registry.Opener{"dir": Opener}}
	r, err := registry.Open(t.Context(), "dir:"+dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if ds, ok := r.(*Store); !ok || ds.Root() != dir {
		t.Fatalf("registry.Open(dir:) = %T %v", r, r)
	}
	for _, url := range []string{"dir:", "etcd://h/p"} {
		if _, err := Opener(t.Context(), url, o); !errors.Is(err, registry.ErrBadURL) || !strings.Contains(err.Error(), "dirstore: store URL") {
			t.Errorf("Opener(%q) = %v, want a bad URL", url, err)
		}
	}
}

func newTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// storeFiles lists the files of a Store (relative paths).
func storeFiles(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(s.Root(), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(s.Root(), p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// TestDirStoreDualStack: a dual-stack container is two records, one per
// address, of one MAC at one VTEP: arp/<IPv6> beside arp/<IPv4>, both
// listed and looked up; on an IPv6 underlay the VTEP is an IPv6 address.
func TestDirStoreDualStack(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	v4 := recordOf("198.51.100.2", "02:42:c6:33:64:02", "2001:db8::2")
	v6 := recordOf("2001:db8:42::2", "02:42:c6:33:64:02", "2001:db8::2")
	for _, r := range []registry.Record{v4, v6} {
		if err := s.Register(ctx, r); err != nil {
			t.Fatalf("register %v: %v", r, err)
		}
	}
	for path, want := range map[string]string{
		"arp/198.51.100.2":      "02:42:c6:33:64:02\n",
		"arp/2001:db8:42::2":    "02:42:c6:33:64:02\n",
		"fdb/02:42:c6:33:64:02": "2001:db8::2\n",
	} {
		if b, err := os.ReadFile(filepath.Join(s.Root(), path)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", path, b, err, want)
		}
	}
	if list, err := s.List(ctx); err != nil || len(list) != 2 || list[0] != v4 || list[1] != v6 {
		t.Fatalf("List = %v, %v; want [%v %v]", list, err, v4, v6)
	}
	if mac, err := s.LookupMAC(ctx, v6.IP); err != nil || mac != v6.MAC {
		t.Errorf("LookupMAC(%s) = %s, %v", v6.IP, mac, err)
	}
	// Another container's MAC for the IPv6 address is a conflict.
	if err := s.Register(ctx, recordOf("2001:db8:42::2", "02:42:c6:33:64:03", "2001:db8::3")); !errors.Is(err, registry.ErrConflict) {
		t.Errorf("IPv6 address of another MAC: %v, want ErrConflict", err)
	}
	// The non-canonical text of an IPv6 address is no record.
	if err := os.WriteFile(filepath.Join(s.Root(), "arp", "2001:0db8:42::9"), []byte("02:42:c6:33:64:09\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	recs, rejected, err := s.ListRejected(ctx)
	if err != nil || len(recs) != 2 || len(rejected) != 1 || rejected[0].Reason != registry.ReasonMalformed {
		t.Errorf("ListRejected with a non-canonical IPv6 name: %v %v %v", recs, rejected, err)
	}
}
