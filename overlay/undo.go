package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// undoStack records how to take back each thing an operation created, so
// that a failure half-way leaves nothing behind.
type undoStack struct {
	log    *slog.Logger
	steps  []undoStep
	closer []func() error
}

// closeLater records a handle the undo steps may still need, closed by
// finish after them.
func (u *undoStack) closeLater(fn func() error) { u.closer = append(u.closer, fn) }

// finish rolls back if *err is set (joining rollback failures into *err),
// then closes the recorded handles, newest first. Call it deferred.
func (u *undoStack) finish(err *error) {
	if *err != nil {
		if uerr := u.run(); uerr != nil {
			*err = errors.Join(*err, uerr)
		}
	}
	for i := len(u.closer) - 1; i >= 0; i-- {
		u.closer[i]()
	}
	u.closer = nil
}

type undoStep struct {
	what string
	fn   func() error
}

// push records fn as the way to remove what.
func (u *undoStack) push(what string, fn func() error) {
	u.steps = append(u.steps, undoStep{what, fn})
}

// run undoes every step, newest first, and returns the failures joined.
func (u *undoStack) run() error {
	var errs []error
	for i := len(u.steps) - 1; i >= 0; i-- {
		s := u.steps[i]
		if err := s.fn(); err != nil {
			u.log.Error("rollback failed", "undo", s.what, "err", err)
			errs = append(errs, fmt.Errorf("overlay: rollback %s: %w", s.what, err))
			continue
		}
		u.log.Info("rolled back", "undo", s.what)
	}
	u.steps = nil
	return errors.Join(errs...)
}

// openOrCreateNetNS opens the named namespace dir/name, creating it (with
// its loopback up) if it does not exist; created says which.
func openOrCreateNetNS(dir, name string) (ns *rtnl.NetNS, created bool, err error) {
	ns, err = rtnl.OpenNamedNetNS(dir, name)
	if err == nil {
		return ns, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("overlay: netns %s: %w", name, err)
	}
	ns, err = rtnl.CreateNetNS(dir, name)
	if err != nil {
		return nil, false, fmt.Errorf("overlay: netns %s: %w", name, err)
	}
	return ns, true, nil
}

// deleteNetNS deletes the named namespace; a missing one is not an error.
func deleteNetNS(dir, name string) error {
	err := rtnl.DeleteNetNS(dir, name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// setLoopbackUp brings "lo" up through c.
func setLoopbackUp(c *rtnl.Conn) error {
	lo, err := c.LinkByName("lo")
	if err != nil {
		return err
	}
	if lo.Flags&rtnl.LinkUp != 0 {
		return nil
	}
	return c.LinkSetUp(lo.Index)
}

// linkByName returns the link named name, or nil (and no error) if there is
// none.
func linkByName(c *rtnl.Conn, name string) (*rtnl.LinkMessage, error) {
	l, err := c.LinkByName(name)
	if errors.Is(err, unix.ENODEV) {
		return nil, nil
	}
	return l, err
}

// deleteLinkByName deletes the link named name; a missing one is not an
// error.
func deleteLinkByName(c *rtnl.Conn, name string) error {
	err := c.LinkDeleteByName(name)
	if err != nil && !errors.Is(err, unix.ENODEV) {
		return err
	}
	return nil
}
