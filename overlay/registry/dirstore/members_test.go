package dirstore

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/overlaynet/overlaynet/internal/membertest"
)

// TestDirStoreMembers: the member contract (membertest.Claims: one owner
// per tunnel address, of 16 racing one wins, replaced and removed by its
// owner only); a file that is no member is a Rejected.
func TestDirStoreMembers(t *testing.T) {
	s := newTestStore(t)
	membertest.Claims(t, s, nil)
	if err := os.WriteFile(filepath.Join(s.Root(), membersDir, "10.99.2.9"), []byte("junk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, rej, _ := s.Members(context.Background()); len(rej) != 1 || rej[0].Key != "members/10.99.2.9" {
		t.Errorf("rejected %v", rej)
	}
}
