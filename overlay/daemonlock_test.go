package overlay

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The daemon lock: held once, found by DaemonRunning with the pid, refused
// to a second holder, gone (file included) on release.
func TestDaemonLock(t *testing.T) {
	dir := t.TempDir()
	if _, running, err := DaemonRunning(dir); running || err != nil {
		t.Fatalf("before any daemon: running %v, %v", running, err)
	}
	release, err := LockDaemon(dir)
	if err != nil {
		t.Fatal(err)
	}
	pid, running, err := DaemonRunning(dir)
	if !running || err != nil || pid != os.Getpid() {
		t.Fatalf("while held: pid %d running %v, %v; want pid %d", pid, running, err, os.Getpid())
	}
	_, err = LockDaemon(dir)
	if !errors.Is(err, ErrDaemonRunning) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second lock: %v, want ErrDaemonRunning naming the pid", err)
	}
	release()
	if _, running, err := DaemonRunning(dir); running || err != nil {
		t.Fatalf("after release: running %v, %v", running, err)
	}
	if _, err := os.Stat(filepath.Join(dir, daemonLockFile)); !os.IsNotExist(err) {
		t.Errorf("lock file after release: %v", err)
	}
	// A lock file left by a daemon that died (nobody holds it) is not a
	// running daemon, and a new daemon takes it.
	os.WriteFile(filepath.Join(dir, daemonLockFile), []byte("12345\n"), 0o644)
	if _, running, _ := DaemonRunning(dir); running {
		t.Error("a stale lock file counts as a running daemon")
	}
	release, err = LockDaemon(dir)
	if err != nil {
		t.Fatalf("lock over a stale file: %v", err)
	}
	release()
}
