package filelock

import (
	"errors"
	"io/fs"
	"os"
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

// TestTryExclusiveAndHeld: TryExclusive does not wait for a holder, Held
// tells whether the lock is held, and a waiter whose file was removed by
// the holder locks the file now at the path, not the removed one.
func TestTryExclusiveAndHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".lock")
	if held, err := Held(path); err != nil || held {
		t.Fatalf("Held of a missing file: %v %v", held, err)
	}
	release, err := Exclusive(path)
	if err != nil {
		t.Fatal(err)
	}
	if held, err := Held(path); err != nil || !held {
		t.Errorf("Held while held: %v %v", held, err)
	}
	if r, ok, err := TryExclusive(path); err != nil || ok {
		t.Errorf("TryExclusive while held: ok %v, %v", ok, err)
		if ok {
			r()
		}
	}
	got := make(chan func(), 1)
	go func() {
		r, err := Exclusive(path)
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	time.Sleep(50 * time.Millisecond)
	os.Remove(path) // the holder removes the file, then releases it
	release()
	var r2 func()
	select {
	case r2 = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter did not get the lock")
	}
	if r, ok, err := TryExclusive(path); err != nil || ok {
		t.Errorf("TryExclusive beside the waiter that took the new file: ok %v, %v", ok, err)
		if ok {
			r()
		}
	}
	r2()
	r, ok, err := TryExclusive(path)
	if err != nil || !ok {
		t.Fatalf("TryExclusive of a free lock: ok %v, %v", ok, err)
	}
	r()
}
