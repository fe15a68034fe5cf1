package filelock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// HoldPid takes the exclusive flock of the file at path without waiting
// and writes the caller's pid into it, for as long as the caller runs (a
// daemon's, a device process's lock): release drops it and removes the
// file. ok is false, with no error, when another process holds it.
func HoldPid(path string) (release func(), ok bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, err
	}
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("flock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() {
		os.Remove(path) // while still held: nobody takes a lock on a removed file
		f.Close()
	}, true, nil
}

// PidHeld reports whether a process holds the lock at path, and the pid
// the file names; a missing file is not held.
func PidHeld(path string) (pid int, held bool, err error) {
	held, err = Held(path)
	if err != nil || !held {
		return 0, false, err
	}
	pid, _ = ReadPid(path)
	return pid, true, nil
}

// ReadPid returns the pid written in the file at path.
func ReadPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// StopHolder stops the process that holds the lock at path, if one does,
// and returns its pid (0: none held it). The process is the one the
// kernel's lock table (Holder) and the pid in the file both name: if they
// disagree nothing is signalled. It is sent SIGTERM and waited for until
// the lock is released, for at most wait; then SIGKILL, and waited for as
// long again.
func StopHolder(path string, wait time.Duration) (int, error) {
	pid, held, err := PidHeld(path)
	if err != nil || !held {
		return 0, err
	}
	holder, err := Holder(path)
	for try := 0; err == nil && holder != pid && try < 10; try++ {
		time.Sleep(50 * time.Millisecond) // a holder starting: locked, its pid not yet written
		pid, _ = ReadPid(path)
		holder, err = Holder(path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil // released and removed meanwhile
	}
	if err != nil {
		return 0, err
	}
	if holder == 0 || holder != pid {
		return 0, fmt.Errorf("the lock %s is held by pid %d, and names pid %d: not stopping either; stop it, then retry", path, holder, pid)
	}
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGKILL} {
		if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			return pid, fmt.Errorf("stop pid %d: %w", pid, err)
		}
		deadline := time.Now().Add(wait)
		for time.Now().Before(deadline) {
			if _, held, err := PidHeld(path); err != nil || !held {
				return pid, err
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return pid, fmt.Errorf("pid %d still holds %s after SIGTERM and SIGKILL", pid, path)
}
