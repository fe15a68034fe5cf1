package resolver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestResolverSymlinkedRecordNotLogged: a store entry linked to a root-only
// file is refused when a miss looks it up: nothing is programmed, and no log
// line of the resolver carries the file's contents.
// secretRecord is what a root-only file outside the store holds: it parses
// as a MAC, and carries a marker that must never reach a log line.
const secretRecord = "02:42:c6:33:64:09\nTOPSECRET-7f3a9c"

func TestResolverSymlinkedRecordNotLogged(t *testing.T) {
	lab := newResolverLab(t)
	secret := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(secret, []byte(secretRecord), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(lab.store.Root(), "arp", "198.51.100.9")); err != nil {
		t.Fatal(err)
	}
	r, stop := lab.start(t)
	lab.ping("198.51.100.9")
	eventually(t, "the lookup of the linked record to fail", func() bool {
		s := r.Metrics().Snapshot()
		n := 0
		for _, v := range s.Unresolved {
			n += int(v)
		}
		return n >= 1
	})
	r.Reconcile(t.Context())
	stop()
	if n := findNeigh(lab.neighbours(t), "198.51.100.9"); n != nil {
		t.Errorf("entry programmed from a symlinked record: %+v", n)
	}
	logs := lab.logs.String()
	if strings.Contains(logs, "TOPSECRET") || strings.Contains(logs, "02:42:c6:33:64:09") {
		t.Errorf("the link target's contents reached the log:\n%s", logs)
	}
	if !strings.Contains(logs, "key=arp/198.51.100.9 reason=unreadable") {
		t.Errorf("no log line says why the record was refused:\n%s", logs)
	}
}
