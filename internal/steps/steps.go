// Package steps runs one operation of a node (create an overlay, attach a
// container, set up egress) as a list of named steps, all or nothing.
//
// Each step is made with the way to take it back: when the operation fails,
// at a step or anywhere between two, the steps made so far are undone,
// newest first, and what could not be undone is logged and joined into the
// operation's error. Handles the undo steps may still need (namespaces,
// netlink connections) are closed after them.
//
// A Runner belongs to one operation. What it may be given besides:
//   - a Hook, from tests, called right after each step is made: an error
//     makes the operation fail there, so that every step's rollback can be
//     tested. The hook is the runner's (and its creator's), never shared.
//   - a Journal, told of each step before it is made and once it is made,
//     and of each undo: what a record of intent needs, so that an operation
//     killed half-way can be finished or undone by whoever comes next.
package steps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// Hook is called right after step is made; an error makes the operation
// fail there (and roll back).
type Hook func(step string) error

// Journal hears of an operation's steps as they are made and undone. Its
// methods are called from the goroutine running the operation, in order.
type Journal interface {
	// Intend is called before step is made. An error stops the operation
	// before the step (which is then not made) and rolls back the others.
	Intend(step string) error
	// Made is called once step is made and its undo recorded. An error
	// fails the operation there, and step is undone with the others.
	Made(step string) error
	// Undone is called for each step made, newest first, as the operation
	// rolls back: after its undo ran (err is its failure, nil when step is
	// undone), or at once for a step with nothing to undo.
	Undone(step string, err error)
	// End is called once, when the operation is over: err nil when every
	// step made stays, otherwise the operation's error (its steps undone as
	// far as Undone said).
	End(err error)
}

// Options configure a Runner.
type Options struct {
	// Op names the operation, with the package that runs it ("overlay:
	// attach"): it begins the errors the Runner makes and is logged.
	Op string
	// Log receives each step done (debug) and each undo (nil discards).
	Log *slog.Logger
	// Hook, if set, can make the operation fail right after any step.
	Hook Hook
	// Journal, if set, hears of every step.
	Journal Journal
}

// Runner runs the steps of one operation. It is not safe for concurrent use.
type Runner struct {
	ctx     context.Context
	opt     Options
	made    []made
	closers []func() error
	ended   bool
}

// made is a step made, with its undo (nil: nothing to undo).
type made struct {
	name string
	undo func() error
}

// New returns a Runner for one operation. A done ctx stops the operation
// before its next step.
func New(ctx context.Context, opt Options) *Runner {
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Runner{ctx: ctx, opt: opt}
}

// Do makes step name: do makes it, undo (nil: nothing to undo) takes it
// back. A do that fails must leave nothing of its own behind: its undo is
// recorded only once it succeeded. The error Do returns (do's, the
// context's, the journal's or the hook's) is the operation's: return it,
// and let Finish roll back.
func (r *Runner) Do(name string, do, undo func() error) error {
	if err := r.ctx.Err(); err != nil {
		return fmt.Errorf("%s interrupted before step %s: %w", r.opt.Op, name, err)
	}
	if j := r.opt.Journal; j != nil {
		if err := j.Intend(name); err != nil {
			return fmt.Errorf("%s: record step %s: %w", r.opt.Op, name, err)
		}
	}
	if err := do(); err != nil {
		return err
	}
	r.made = append(r.made, made{name, undo})
	r.opt.Log.Debug("step done", "op", r.opt.Op, "step", name)
	if j := r.opt.Journal; j != nil {
		if err := j.Made(name); err != nil {
			return fmt.Errorf("%s: record step %s made: %w", r.opt.Op, name, err)
		}
	}
	if r.opt.Hook != nil {
		if err := r.opt.Hook(name); err != nil {
			return fmt.Errorf("%s step %s: %w", r.opt.Op, name, err)
		}
	}
	return nil
}

// CloseLater records a handle the undo steps may still need, closed by
// Finish after them, newest first.
func (r *Runner) CloseLater(close func() error) { r.closers = append(r.closers, close) }

// Finish ends the operation; call it deferred with the operation's error.
// If *err is set, the steps made are undone (Rollback) and the undo
// failures joined into *err. Then the handles are closed and the journal
// told the outcome. After a success, Rollback can still undo the steps,
// for a caller whose own later step fails.
func (r *Runner) Finish(err *error) {
	if *err != nil {
		if uerr := r.Rollback(); uerr != nil {
			*err = errors.Join(*err, uerr)
		}
	}
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
	r.closers = nil
	if j := r.opt.Journal; j != nil && !r.ended {
		j.End(*err)
	}
	r.ended = true
}

// Rollback undoes every step made, newest first, going on past failures,
// and returns them joined. The steps are then forgotten: a second Rollback
// does nothing.
func (r *Runner) Rollback() error {
	var errs []error
	for i := len(r.made) - 1; i >= 0; i-- {
		s := r.made[i]
		var err error
		if s.undo != nil {
			err = s.undo()
		}
		if j := r.opt.Journal; j != nil {
			j.Undone(s.name, err)
		}
		switch {
		case s.undo == nil:
		case err != nil:
			r.opt.Log.Error("rollback failed", "op", r.opt.Op, "step", s.name, "err", err)
			errs = append(errs, fmt.Errorf("%s: rollback %s: %w", r.opt.Op, s.name, err))
		default:
			r.opt.Log.Info("rolled back", "op", r.opt.Op, "step", s.name)
		}
	}
	r.made = nil
	return errors.Join(errs...)
}
