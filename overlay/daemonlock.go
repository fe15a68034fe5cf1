package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// daemonLockFile is held (flock) by the node's resolver daemon while it
// runs, with its pid inside: how the CNI plugin's STATUS, and a second
// daemon, find it.
const daemonLockFile = "run.lock"

// ErrDaemonRunning is returned by LockDaemon when another daemon holds the
// node's daemon lock.
var ErrDaemonRunning = errors.New("overlay: a resolver daemon is already running for this node")

// LockDaemon takes the daemon lock of the node whose state is in stateDir
// (STATE_DIR/run.lock, flock, holding the pid) for as long as the daemon
// runs; release drops it and removes the file. Another daemon holding it
// is an error wrapping ErrDaemonRunning that names its pid.
func LockDaemon(stateDir string) (release func(), err error) {
	path := filepath.Join(stateDir, daemonLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("overlay: daemon lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid, _ := readPid(path)
			return nil, fmt.Errorf("%w (pid %d, %s)", ErrDaemonRunning, pid, path)
		}
		return nil, fmt.Errorf("overlay: daemon lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() {
		os.Remove(path) // while still held: nobody takes a lock on a removed file
		f.Close()
	}, nil
}

// DaemonRunning reports whether a resolver daemon holds the daemon lock of
// the node whose state is in stateDir, and its pid.
func DaemonRunning(stateDir string) (pid int, running bool, err error) {
	path := filepath.Join(stateDir, daemonLockFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("overlay: daemon lock: %w", err)
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	if err == nil {
		return 0, false, nil // nobody holds it: a daemon that died
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		return 0, false, fmt.Errorf("overlay: daemon lock %s: %w", path, err)
	}
	pid, _ = readPid(path)
	return pid, true, nil
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
