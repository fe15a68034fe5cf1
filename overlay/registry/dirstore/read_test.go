package dirstore

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// TestReadValueCalls: a record file reads the same with raw calls as with
// ordinary ones: its value without the line end, a missing file as
// registry.ErrNotFound, a symbolic link, a FIFO, a directory and an
// oversized file as rejections, a path longer than the stack's room and one
// with a NUL byte as for unix.Open.
func TestReadValueCalls(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain := write("plain", "02:42:c6:33:64:01\n")
	crlf := write("crlf", "198.51.100.1\r\n")
	bare := write("bare", "198.51.100.2")
	over := write("over", strings.Repeat("x", registry.MaxValueLen+1))
	link := filepath.Join(dir, "link")
	if err := os.Symlink(plain, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(dir, strings.Repeat("d", 200), strings.Repeat("e", 100))
	if err := os.MkdirAll(filepath.Dir(long), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(long, []byte("02:42:c6:33:64:02\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []fileCalls{ordinaryCalls, rawCalls} {
		for _, tc := range []struct {
			name, path, want string
			is               error  // the error matches it
			msg              string // or contains this
		}{
			{"plain", plain, "02:42:c6:33:64:01", nil, ""},
			{"crlf", crlf, "198.51.100.1", nil, ""},
			{"bare", bare, "198.51.100.2", nil, ""},
			{"long path", long, "02:42:c6:33:64:02", nil, ""},
			{"missing", filepath.Join(dir, "missing"), "", registry.ErrNotFound, ""},
			{"symlink", link, "", registry.ErrRejected, "is a symbolic link"},
			{"fifo", fifo, "", registry.ErrRejected, "is a FIFO, not a regular file"},
			{"directory", sub, "", registry.ErrRejected, "is a directory, not a regular file"},
			{"oversized", over, "", registry.ErrRejected, "is longer than"},
			{"nul", dir + "/a\x00b", "", unix.EINVAL, ""},
		} {
			t.Run(c.String()+"/"+tc.name, func(t *testing.T) {
				v, err := readValueMaxWith(c, tc.path, registry.MaxValueLen)
				switch {
				case tc.is == nil && (err != nil || v != tc.want):
					t.Errorf("read = %q, %v; want %q", v, err, tc.want)
				case tc.is != nil && !errors.Is(err, tc.is):
					t.Errorf("read = %q, %v; want an error matching %v", v, err, tc.is)
				case tc.msg != "" && (err == nil || !strings.Contains(err.Error(), tc.msg)):
					t.Errorf("read error %v; want it to say %q", err, tc.msg)
				}
			})
		}
	}
}

// TestCallsFor: a store on tmpfs (and on the local filesystems) reads with
// raw calls; one on another filesystem (procfs stands for NFS or FUSE
// here) or whose root cannot be examined with ordinary ones.
func TestCallsFor(t *testing.T) {
	if got := callsFor("/proc"); got != ordinaryCalls {
		t.Errorf("callsFor(/proc) = %v; want ordinary", got)
	}
	if got := callsFor(filepath.Join(t.TempDir(), "missing")); got != ordinaryCalls {
		t.Errorf("callsFor(a missing directory) = %v; want ordinary", got)
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil || uint32(st.Type) != unix.TMPFS_MAGIC {
		t.Skipf("/dev/shm is not a tmpfs here (%v)", err)
	}
	dir, err := os.MkdirTemp("/dev/shm", "ovt-callsfor-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.calls != rawCalls {
		t.Errorf("a store on tmpfs reads with %v calls; want raw", s.calls)
	}
	rec := registry.Record{IP: netip.MustParseAddr("198.51.100.3"), MAC: mustMAC("02:42:c6:33:64:03"), VTEP: netip.MustParseAddr("192.0.2.3")}
	if err := s.Register(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if mac, err := s.LookupMAC(context.Background(), rec.IP); err != nil || mac != rec.MAC {
		t.Errorf("LookupMAC = %s, %v; want %s", mac, err, rec.MAC)
	}
	if vtep, err := s.LookupVTEP(context.Background(), rec.MAC); err != nil || vtep != rec.VTEP {
		t.Errorf("LookupVTEP = %s, %v; want %s", vtep, err, rec.VTEP)
	}
}

// BenchmarkLookup is a miss's two reads, warm: LookupMAC then LookupVTEP
// of one of 1,000 records.
func BenchmarkLookup(b *testing.B) {
	dir := b.TempDir()
	if d, err := os.MkdirTemp("/dev/shm", "ovt-lookup-"); err == nil { // tmpfs, as the isolated benchmark's store
		dir = d
		b.Cleanup(func() { os.RemoveAll(d) })
	}
	s, err := New(dir)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var recs []registry.Record
	for i := range 1000 {
		r := registry.Record{IP: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}),
			MAC: mustMAC(fmt.Sprintf("02:42:0a:01:%02x:%02x", i>>8, i&0xff)), VTEP: netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i%200)})}
		if err := s.Register(ctx, r); err != nil {
			b.Fatal(err)
		}
		recs = append(recs, r)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := recs[i%len(recs)]
		i++
		mac, err := s.LookupMAC(ctx, r.IP)
		if err != nil || mac != r.MAC {
			b.Fatalf("LookupMAC(%s) = %s, %v", r.IP, mac, err)
		}
		if vtep, err := s.LookupVTEP(ctx, mac); err != nil || vtep != r.VTEP {
			b.Fatalf("LookupVTEP(%s) = %s, %v", mac, vtep, err)
		}
	}
}
