package overlay

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/overlaynet/overlaynet/internal/filelock"
)

// stateLockFile is the lock that serialises changes of the state directory
// between processes (overlayd commands, CNI plugin invocations, the
// daemon's sweeps). An operation holds it from before its first change to
// after its last, so that whoever holds it knows no operation of the node
// is under way: a record of intent found then is a dead operation's.
const stateLockFile = ".lock"

func (n *Node) lockPath() string { return filepath.Join(n.stateDir, stateLockFile) }

// lock serialises an operation that changes the state directory: within
// this process (n.mu) and, by flock on STATE_DIR/.lock, with other
// processes of the node. A missing state directory needs no file lock
// (there is nothing to change). It returns the release.
func (n *Node) lock() (func(), error) {
	n.mu.Lock()
	release, err := filelock.Exclusive(n.lockPath())
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

// lockCreate is lock for Create, which may make the state directory: the
// directory is made first, so that two creates of one node never run at
// once. made says the directory did not exist before.
func (n *Node) lockCreate() (unlock func(), made bool, err error) {
	if _, err := os.Stat(n.stateDir); errors.Is(err, fs.ErrNotExist) {
		made = true
	}
	n.mu.Lock()
	var release func()
	for try := 0; ; try++ {
		if err := os.MkdirAll(n.stateDir, 0o755); err != nil {
			n.mu.Unlock()
			return nil, false, fmt.Errorf("overlay: state directory: %w", err)
		}
		release, err = filelock.Exclusive(n.lockPath())
		if errors.Is(err, fs.ErrNotExist) && try < 3 {
			continue // removed by a first create that failed meanwhile
		}
		if err != nil {
			n.mu.Unlock()
			return nil, false, fmt.Errorf("overlay: state lock: %w", err)
		}
		break
	}
	return func() {
		release()
		n.mu.Unlock()
	}, made, nil
}

// lockWithin is lock for sweeps, which must not hold up the node's
// operations nor wait behind them for long: it tries the lock until wait
// passes or ctx ends; ok is false if an operation held it all along.
func (n *Node) lockWithin(ctx context.Context, wait time.Duration) (unlock func(), ok bool, err error) {
	deadline := time.Now().Add(wait)
	for {
		if n.mu.TryLock() {
			release, ok, err := filelock.TryExclusive(n.lockPath())
			if errors.Is(err, fs.ErrNotExist) {
				return n.mu.Unlock, true, nil
			}
			if err != nil {
				n.mu.Unlock()
				return nil, false, fmt.Errorf("overlay: state lock: %w", err)
			}
			if ok {
				return func() {
					release()
					n.mu.Unlock()
				}, true, nil
			}
			n.mu.Unlock()
		}
		if time.Now().After(deadline) {
			return nil, false, nil
		}
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// busy reports whether an operation of the node holds the state lock now.
func (n *Node) busy() bool {
	held, err := filelock.Held(n.lockPath())
	return err == nil && held
}

// removeLock deletes the lock file (Reset, once the state is gone; a
// failed first create). A waiter opens the path again (filelock).
func (n *Node) removeLock() {
	os.Remove(n.lockPath())
}
