package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/overlaynet/overlaynet/internal/filelock"
)

// stateLockFile is the lock that serialises changes of the state directory
// between processes (overlayd commands, CNI plugin invocations).
const stateLockFile = ".lock"

// lock serialises an operation that changes the state directory: within
// this process (n.mu) and, by flock on STATE_DIR/.lock, with other
// processes of the node. A missing state directory needs no file lock
// (there is nothing to change). It returns the release.
func (n *Node) lock() (func(), error) {
	n.mu.Lock()
	release, err := filelock.Exclusive(filepath.Join(n.stateDir, stateLockFile))
	if errors.Is(err, fs.ErrNotExist) {
		return n.mu.Unlock, nil
	}
	if err != nil {
		n.mu.Unlock()
		return nil, fmt.Errorf("overlay: state lock: %w", err)
	}
	return func() {
		release()
		n.mu.Unlock()
	}, nil
}

// removeLock deletes the lock file (Reset, once the state is gone).
func (n *Node) removeLock() {
	os.Remove(filepath.Join(n.stateDir, stateLockFile))
}
