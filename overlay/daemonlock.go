package overlay

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/overlaynet/overlaynet/internal/filelock"
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
	release, ok, err := filelock.HoldPid(path)
	if err != nil {
		return nil, fmt.Errorf("overlay: daemon lock: %w", err)
	}
	if !ok {
		pid, _ := filelock.ReadPid(path)
		return nil, fmt.Errorf("%w (pid %d, %s)", ErrDaemonRunning, pid, path)
	}
	return release, nil
}

// DaemonRunning reports whether a resolver daemon holds the daemon lock of
// the node whose state is in stateDir, and its pid.
func DaemonRunning(stateDir string) (pid int, running bool, err error) {
	pid, running, err = filelock.PidHeld(filepath.Join(stateDir, daemonLockFile))
	if err != nil {
		return 0, false, fmt.Errorf("overlay: daemon lock: %w", err)
	}
	return pid, running, nil
}

// StopDaemon stops the resolver daemon of the node whose state is in
// stateDir, if one runs, and returns its pid (0: none ran). The daemon is
// the process that holds STATE_DIR/run.lock, as the kernel's lock table
// (/proc/locks) says, and whose pid the file holds: both must agree, so
// that no other process is ever signalled. It is sent SIGTERM and waited
// for until it released the lock, for at most wait; then it is killed
// (SIGKILL, which its crash consistency allows), and waited for as long
// again.
func StopDaemon(stateDir string, wait time.Duration) (int, error) {
	pid, err := filelock.StopHolder(filepath.Join(stateDir, daemonLockFile), wait)
	if err != nil {
		return pid, fmt.Errorf("overlay: stop the daemon: %w", err)
	}
	return pid, nil
}
