package egress

import (
	"errors"
	"fmt"
	"log/slog"
)

// undoStack records how to take back each change of a Setup.
type undoStack struct {
	log   *slog.Logger
	steps []undoStep
}

type undoStep struct {
	what string
	fn   func() error
}

func (u *undoStack) push(what string, fn func() error) { u.steps = append(u.steps, undoStep{what, fn}) }

// run undoes every step, newest first, and returns the failures joined.
func (u *undoStack) run() error {
	var errs []error
	for i := len(u.steps) - 1; i >= 0; i-- {
		s := u.steps[i]
		if err := s.fn(); err != nil {
			u.log.Error("egress rollback failed", "undo", s.what, "err", err)
			errs = append(errs, fmt.Errorf("egress: rollback %s: %w", s.what, err))
			continue
		}
		u.log.Info("egress rolled back", "undo", s.what)
	}
	u.steps = nil
	return errors.Join(errs...)
}
