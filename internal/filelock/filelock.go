// Package filelock holds the exclusive flock(2) locks that serialise
// changes of on-disk state between the processes of a node (overlayd
// commands, CNI plugin invocations, the daemon's sweeps).
//
// A lock is held by an open file: it is released when its holder closes
// the file or dies (kill -9 included), so a lock is never left behind. A
// lock file removed while held (a reset) is not taken by a waiter: the
// waiter opens the path again.
package filelock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Exclusive opens the file at path, creating it, and waits for an
// exclusive flock on it. release closes the file, which drops the lock. An
// error opening the file is returned as os.OpenFile's (fs.ErrNotExist when
// its directory is missing).
func Exclusive(path string) (release func(), err error) {
	release, _, err = take(path, unix.LOCK_EX)
	return release, err
}

// TryExclusive is Exclusive without waiting: ok is false, with no error,
// when another open file holds the lock.
func TryExclusive(path string) (release func(), ok bool, err error) {
	return take(path, unix.LOCK_EX|unix.LOCK_NB)
}

// Held reports whether an open file holds the lock at path; a missing
// file is not held. It takes the lock for an instant to tell.
func Held(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = flock(f, unix.LOCK_SH|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("flock %s: %w", path, err)
	}
	return false, nil
}

// take opens path and flocks it with how; with LOCK_NB a lock held
// elsewhere is ok false. A file removed or replaced at path while this
// call waited is opened again.
func take(path string, how int) (release func(), ok bool, err error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, false, err
		}
		err = flock(f, how)
		if how&unix.LOCK_NB != 0 && errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, false, nil
		}
		if err != nil {
			f.Close()
			return nil, false, fmt.Errorf("flock %s: %w", path, err)
		}
		if same, err := isPath(f, path); err != nil || !same {
			f.Close()
			if err != nil {
				return nil, false, err
			}
			continue // removed by its last holder: lock the file now there
		}
		return func() { f.Close() }, true, nil
	}
}

// flock locks f, waiting through EINTR.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// isPath reports whether f is the file at path now.
func isPath(f *os.File, path string) (bool, error) {
	var held, now unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &held); err != nil {
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
	err := unix.Stat(path, &now)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
	return held.Dev == now.Dev && held.Ino == now.Ino, nil
}

// Holder returns the pid of the process holding an exclusive flock on the
// file at path, as the kernel's lock table (/proc/locks: "1: FLOCK
// ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF") says; 0 if none does.
func Holder(path string) (int, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("lock %s: %w", path, err)
	}
	id := fmt.Sprintf("%02x:%02x:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino)
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0, fmt.Errorf("lock %s: %w", path, err)
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == "FLOCK" && f[3] == "WRITE" && f[5] == id {
			return strconv.Atoi(f[4])
		}
	}
	return 0, nil
}
