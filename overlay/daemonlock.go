package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

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

// StopDaemon stops the resolver daemon of the node whose state is in
// stateDir, if one runs, and returns its pid (0: none ran). The daemon is
// the process that holds STATE_DIR/run.lock, as the kernel's lock table
// (/proc/locks) says, and whose pid the file holds: both must agree, so
// that no other process is ever signalled. It is sent SIGTERM and waited
// for until it released the lock, for at most wait; then it is killed
// (SIGKILL, which its crash consistency allows), and waited for as long
// again.
func StopDaemon(stateDir string, wait time.Duration) (int, error) {
	path := filepath.Join(stateDir, daemonLockFile)
	pid, running, err := DaemonRunning(stateDir)
	if err != nil || !running {
		return 0, err
	}
	holder, err := lockHolder(path)
	for try := 0; err == nil && holder != pid && try < 10; try++ {
		time.Sleep(50 * time.Millisecond) // a daemon starting: locked, its pid not yet written
		pid, _ = readPid(path)
		holder, err = lockHolder(path)
	}
	if err != nil {
		return 0, err
	}
	if holder == 0 || holder != pid {
		return 0, fmt.Errorf("overlay: the daemon lock %s is held by pid %d, and names pid %d: not stopping either; stop the daemon, then retry", path, holder, pid)
	}
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGKILL} {
		if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			return pid, fmt.Errorf("overlay: stop the daemon (pid %d): %w", pid, err)
		}
		deadline := time.Now().Add(wait)
		for time.Now().Before(deadline) {
			if _, running, err := DaemonRunning(stateDir); err != nil || !running {
				return pid, err
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return pid, fmt.Errorf("overlay: the daemon (pid %d) still holds %s after SIGTERM and SIGKILL", pid, path)
}

// lockHolder returns the pid that holds a flock on the file at path, from
// /proc/locks ("1: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF"); 0 if
// none.
func lockHolder(path string) (int, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("overlay: daemon lock: %w", err)
	}
	id := fmt.Sprintf("%02x:%02x:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino)
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0, fmt.Errorf("overlay: daemon lock: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == "FLOCK" && f[3] == "WRITE" && f[5] == id {
			return strconv.Atoi(f[4])
		}
	}
	return 0, nil
}
