package dirstore

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestSweepTemp: the writers' temporary files older than the age given are
// removed from the store's directories, younger ones and records stay; a
// write itself leaves none.
func TestSweepTemp(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Register(t.Context(), recordOf("198.51.100.2", "02:42:c6:33:64:02", "192.0.2.2")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"", arpDir, fdbDir} {
		ents, _ := os.ReadDir(filepath.Join(s.Root(), d))
		for _, e := range ents {
			if isTemp(e.Name()) {
				t.Errorf("a write left %s in %q", e.Name(), d)
			}
		}
	}
	old := []string{filepath.Join(s.Root(), ".config.tmp123"), filepath.Join(s.Root(), arpDir, ".198.51.100.3.tmp9")}
	young := filepath.Join(s.Root(), fdbDir, ".02:42:c6:33:64:03.tmp7")
	for _, p := range append(old, young) {
		if err := os.WriteFile(p, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * StaleTemp)
	for _, p := range old {
		os.Chtimes(p, past, past)
	}
	removed, err := s.SweepTemp(StaleTemp)
	slices.Sort(removed)
	slices.Sort(old)
	if err != nil || !slices.Equal(removed, old) {
		t.Errorf("SweepTemp removed %v, %v; want %v", removed, err, old)
	}
	for _, p := range []string{young, filepath.Join(s.Root(), arpDir, "198.51.100.2")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}
