package filelock

import (
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
	"time"
)

// TestExclusive: a second holder waits until the first releases; a
// missing directory is fs.ErrNotExist.
func TestExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".lock")
	release, err := Exclusive(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{})
	go func() {
		r, err := Exclusive(path) // another open file description: flock conflicts
		if err != nil {
			t.Error(err)
		} else {
			r()
		}
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("a second holder got the lock while the first held it")
	case <-time.After(100 * time.Millisecond):
	}
	release()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the second holder did not get the lock after the release")
	}
	if _, err := Exclusive(filepath.Join(t.TempDir(), "missing", ".lock")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock in a missing directory: %v, want fs.ErrNotExist", err)
	}
}
