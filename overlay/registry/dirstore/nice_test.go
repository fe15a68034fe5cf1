package dirstore

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// threadNice returns the calling thread's nice value.
func threadNice(t *testing.T) int {
	t.Helper()
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	return 20 - prio
}

// TestLoweredListing: what lowered runs runs on a thread at listNice (or
// lower already), and the thread's priority is back once it returns; a
// listing of the store goes through it.
func TestLoweredListing(t *testing.T) {
	runtime.LockOSThread() // the same thread before, in and after lowered
	defer runtime.UnlockOSThread()
	before := threadNice(t)
	var during int
	lowered(func() { during = threadNice(t) })
	if want := max(before, listNice); during != want {
		t.Errorf("nice inside lowered = %d; want %d (before: %d)", during, want, before)
	}
	if after := threadNice(t); after != before {
		t.Errorf("nice after lowered = %d; want it back at %d", after, before)
	}
}
