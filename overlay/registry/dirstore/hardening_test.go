package dirstore

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// secretRecord is what a root-only file outside the store holds in the
// tests below: it parses as a MAC, so that following the link would be
// accepted as a record, and it carries a marker that must never reach an
// error or a log line.
const secretRecord = "02:42:c6:33:64:09\nTOPSECRET-7f3a9c"

// TestDirStoreRefusesLinksAndSpecialFiles: a record that is a symbolic link
// (to a root-only file) or a FIFO is refused as not a record, without the
// target's contents in the error; only regular files are read.
func TestDirStoreRefusesLinksAndSpecialFiles(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	secret := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(secret, []byte(secretRecord), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(s.Root(), "arp", "198.51.100.9")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(s.Root(), "fdb", "02:42:c6:33:64:0a")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(s.Root(), "arp", "198.51.100.8"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(s.Root(), "arp", "198.51.100.7"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ip, want string
	}{
		{"198.51.100.9", "is a symbolic link"},
		{"198.51.100.8", "is a FIFO, not a regular file"},
		{"198.51.100.7", "is a directory, not a regular file"},
	} {
		mac, err := s.LookupMAC(ctx, netip.MustParseAddr(tc.ip))
		if err == nil || errors.Is(err, registry.ErrNotFound) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LookupMAC(%s) = %s, %v; want an error containing %q", tc.ip, mac, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "TOPSECRET") {
			t.Errorf("LookupMAC(%s) error carries the target's contents: %v", tc.ip, err)
		}
	}
	vtep, err := s.LookupVTEP(ctx, mustMAC("02:42:c6:33:64:0a"))
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("LookupVTEP through a symlink = %s, %v; want it refused", vtep, err)
	}
	for _, tc := range []string{"198.51.100.9", "198.51.100.8", "198.51.100.7"} {
		if _, err := s.LookupMAC(ctx, netip.MustParseAddr(tc)); !errors.Is(err, registry.ErrRejected) {
			t.Errorf("LookupMAC(%s) = %v; want a rejection (registry.ErrRejected)", tc, err)
		}
	}
	recs, rejected, err := s.ListRejected(ctx)
	if len(recs) != 0 || err != nil || len(rejected) != 3 {
		t.Errorf("ListRejected = %v, %v, %v; want nothing listed, three rejections, no error", recs, rejected, err)
	}
	for _, rj := range rejected {
		if rj.Reason != registry.ReasonUnreadable || strings.Contains(rj.Error(), "TOPSECRET") {
			t.Errorf("rejection %v (%s), want unreadable, no contents", rj, rj.Reason)
		}
	}
	// Registering over the link neither follows it nor replaces it.
	err = s.Register(ctx, recordOf("198.51.100.9", "02:42:c6:33:64:09", "192.0.2.2"))
	if err == nil || strings.Contains(err.Error(), "TOPSECRET") {
		t.Errorf("Register over a symlink: %v, want a refusal without contents", err)
	}
	if b, _ := os.ReadFile(secret); string(b) != secretRecord {
		t.Errorf("the link's target changed: %q", b)
	}
}

// TestDirStoreMalformedNeverQuoted: a malformed record's error names the
// key, never the value (whatever it holds: escapes, a long tail).
func TestDirStoreMalformedNeverQuoted(t *testing.T) {
	s := newTestStore(t)
	long := "ESC\x1b[31m" + strings.Repeat("A", 60) + "TAIL-NEVER-SHOWN"
	if err := os.WriteFile(filepath.Join(s.Root(), "arp", "198.51.100.4"), []byte(long+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := s.LookupMAC(context.Background(), netip.MustParseAddr("198.51.100.4"))
	if err == nil {
		t.Fatal("malformed record accepted")
	}
	msg := err.Error()
	if strings.Contains(msg, "TAIL-NEVER-SHOWN") || strings.Contains(msg, "ESC") || strings.Contains(msg, "\x1b") || !strings.Contains(msg, "arp/198.51.100.4 holds no MAC") {
		t.Errorf("error = %q; want the key named and nothing of the value", msg)
	}
}

// TestRegistryKeysCanonical: a zoned, IPv4-mapped or otherwise
// non-canonical address is refused as a key by Validate and by every
// DirStore operation; no file is created outside (or inside) the root.
func TestRegistryKeysCanonical(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	s, err := New(filepath.Join(parent, "store"))
	if err != nil {
		t.Fatal(err)
	}
	mac := mustMAC("02:42:c6:33:64:02")
	vtep := netip.MustParseAddr("192.0.2.2")
	for _, tc := range []struct {
		name string
		rec  registry.Record
		want string
	}{
		{"traversing zone", registry.Record{IP: netip.MustParseAddr("fe80::1%/../../x"), MAC: mac, VTEP: vtep}, "has an IPv6 zone"},
		{"zone", registry.Record{IP: netip.MustParseAddr("fe80::1%eth0"), MAC: mac, VTEP: vtep}, "has an IPv6 zone"},
		{"4in6", registry.Record{IP: netip.MustParseAddr("::ffff:198.51.100.2"), MAC: mac, VTEP: vtep}, "use the IPv4 form 198.51.100.2"},
		{"zoned VTEP", registry.Record{IP: netip.MustParseAddr("198.51.100.2"), MAC: mac, VTEP: netip.MustParseAddr("fe80::2%/../y")}, "VTEP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.rec.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want an error containing %q", err, tc.want)
			}
			if err := s.Register(ctx, tc.rec); err == nil {
				t.Error("Register accepted it")
			}
			if _, err := s.LookupMAC(ctx, tc.rec.IP); tc.rec.IP.Zone() != "" && (err == nil || errors.Is(err, registry.ErrNotFound)) {
				t.Errorf("LookupMAC = %v, want a refusal", err)
			}
			if err := s.Unregister(ctx, tc.rec); tc.rec.IP.Zone() != "" && err == nil {
				t.Error("Unregister accepted a zoned key")
			}
		})
	}
	// A planted file outside the root is not reachable through a key.
	if err := os.WriteFile(filepath.Join(parent, "x"), []byte("02:42:c6:33:64:02\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Unregister(ctx, registry.Record{IP: netip.MustParseAddr("fe80::1%/../../x"), MAC: mac}); err == nil {
		t.Error("Unregister with a traversing zone accepted")
	}
	if _, err := os.Stat(filepath.Join(parent, "x")); err != nil {
		t.Errorf("the file outside the root was removed: %v", err)
	}
	var outside []string
	filepath.Walk(parent, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && p != filepath.Join(parent, "x") && !strings.HasPrefix(p, s.Root()+"/") {
			outside = append(outside, p)
		}
		return nil
	})
	if len(outside) > 0 || len(storeFiles(t, s)) > 0 {
		t.Errorf("files written: outside the root %v, inside %v", outside, storeFiles(t, s))
	}
	// A file whose name is not an address's canonical text is not a record.
	if err := os.WriteFile(filepath.Join(s.Root(), "arp", "2001:DB8::1"), []byte("02:42:c6:33:64:02\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	recs, rejected, err := s.ListRejected(ctx)
	if len(recs) != 0 || err != nil || len(rejected) != 1 || rejected[0] != (registry.Rejected{Key: "arp/2001:DB8::1", Reason: registry.ReasonMalformed}) {
		t.Errorf("ListRejected = %v, %v, %v; want the non-canonical name rejected as malformed", recs, rejected, err)
	}
}

func mustMAC(s string) ethaddr.MAC {
	m, err := ethaddr.Parse(s)
	if err != nil {
		panic(err)
	}
	return m
}

// TestNotify: registering and unregistering a record is noticed at once;
// Stamp changes with it.
func TestNotify(t *testing.T) {
	s := newTestStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := s.Notify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st0, _ := s.Stamp()
	r := recordOf("198.51.100.2", "02:42:c6:33:64:02", "192.0.2.2")
	for _, op := range []func() error{
		func() error { return s.Register(ctx, r) },
		func() error { return s.Unregister(ctx, r) },
	} {
		if err := op(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ch:
		case <-time.After(2 * time.Second):
			t.Fatal("no notice of a change")
		}
		for len(ch) > 0 {
			<-ch
		}
	}
	if st1, _ := s.Stamp(); st1 == st0 {
		t.Errorf("Stamp unchanged after changes: %q", st1)
	}
	cancel()
	select {
	case _, ok := <-ch:
		for ok {
			_, ok = <-ch
		}
	case <-time.After(2 * time.Second):
		t.Error("the notice channel is not closed after ctx ends")
	}
}
