// Package filelock holds the exclusive flock(2) locks that serialise
// changes of on-disk state between the processes of a node (overlayd
// commands, CNI plugin invocations).
package filelock

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Exclusive opens the file at path, creating it, and waits for an
// exclusive flock on it. release closes the file, which drops the lock. An
// error opening the file is returned as os.OpenFile's (fs.ErrNotExist when
// its directory is missing).
func Exclusive(path string) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("flock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
