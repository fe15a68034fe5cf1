package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
)

// trace records what a runner calls, in order.
type trace struct{ calls []string }

func (t *trace) add(format string, args ...any) {
	t.calls = append(t.calls, fmt.Sprintf(format, args...))
}

// step returns a do and an undo that record themselves; do fails with
// doErr, undo with undoErr.
func (t *trace) step(name string, doErr, undoErr error) (do, undo func() error) {
	return func() error { t.add("do %s", name); return doErr },
		func() error { t.add("undo %s", name); return undoErr }
}

// Intend, Made, Undone and End make a trace a Journal.
func (t *trace) Intend(step string) error      { t.add("intend %s", step); return nil }
func (t *trace) Made(step string) error        { t.add("made %s", step); return nil }
func (t *trace) Undone(step string, err error) { t.add("undone %s %v", step, err) }
func (t *trace) End(err error)                 { t.add("end %v", err != nil) }

var (
	errDo   = errors.New("do failed")
	errUndo = errors.New("undo failed")
)

// run makes steps a, b, c (the one named fail fails its do, the ones in
// badUndo fail their undo) on a runner with two closers, recording the
// calls in tr (also the journal, unless opt has one), and returns the
// operation's error and what was called.
func run(opt Options, tr *trace, fail string, badUndo ...string) (error, []string) {
	if opt.Journal == nil {
		opt.Journal = tr
	}
	op := func() (err error) {
		r := New(context.Background(), opt)
		defer r.Finish(&err)
		r.CloseLater(func() error { tr.add("close first"); return nil })
		for _, name := range []string{"a", "b", "c"} {
			var doErr, undoErr error
			if name == fail {
				doErr = errDo
			}
			if slices.Contains(badUndo, name) {
				undoErr = fmt.Errorf("%w: %s", errUndo, name)
			}
			do, undo := tr.step(name, doErr, undoErr)
			if err := r.Do(name, do, undo); err != nil {
				return err
			}
			if name == "a" {
				r.CloseLater(func() error { tr.add("close second"); return nil })
			}
		}
		return nil
	}
	return op(), tr.calls
}

func TestRunner(t *testing.T) {
	tests := []struct {
		name    string
		fail    string
		badUndo []string
		want    []string
	}{
		{"all made", "", nil, []string{
			"intend a", "do a", "made a", "intend b", "do b", "made b", "intend c", "do c", "made c",
			"close second", "close first", "end false"}},
		{"third fails: second then first undone, then closed", "c", nil, []string{
			"intend a", "do a", "made a", "intend b", "do b", "made b", "intend c", "do c",
			"undo b", "undone b <nil>", "undo a", "undone a <nil>", "close second", "close first", "end true"}},
		{"first fails: nothing to undo", "a", nil, []string{
			"intend a", "do a", "close first", "end true"}},
		{"undo failures go on and are joined", "c", []string{"a", "b"}, []string{
			"intend a", "do a", "made a", "intend b", "do b", "made b", "intend c", "do c",
			"undo b", "undone b undo failed: b", "undo a", "undone a undo failed: a", "close second", "close first", "end true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logBuf bytes.Buffer
			opt := Options{Op: "pkg: op", Log: slog.New(slog.NewTextHandler(&logBuf, nil))}
			err, calls := run(opt, &trace{}, tt.fail, tt.badUndo...)
			if !slices.Equal(calls, tt.want) {
				t.Errorf("calls\n%q\nwant\n%q", calls, tt.want)
			}
			if tt.fail == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				return
			}
			if !errors.Is(err, errDo) {
				t.Errorf("error %v, want it to wrap do's", err)
			}
			for _, name := range tt.badUndo {
				if want := "pkg: op: rollback " + name + ": undo failed: " + name; !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
				if !strings.Contains(logBuf.String(), "rollback failed") || !strings.Contains(logBuf.String(), "step="+name) {
					t.Errorf("undo failure of %s not logged:\n%s", name, logBuf.String())
				}
			}
			if len(tt.badUndo) == 0 && strings.Contains(err.Error(), "rollback") {
				t.Errorf("error %q speaks of a rollback that did not fail", err)
			}
			if len(tt.badUndo) > 0 && !errors.Is(err, errUndo) {
				t.Errorf("error %v does not wrap the undo failures", err)
			}
		})
	}
}

// TestHook: a hook fails the operation right after the step it names,
// which is undone with the others; a hook is its runner's alone.
func TestHook(t *testing.T) {
	errHook := errors.New("injected")
	var seen []string
	hook := func(step string) error {
		seen = append(seen, step)
		if step == "b" {
			return errHook
		}
		return nil
	}
	err, calls := run(Options{Op: "pkg: op", Hook: hook}, &trace{}, "")
	if !errors.Is(err, errHook) || err.Error() != "pkg: op step b: injected" {
		t.Fatalf("error %v, want the hook's at step b", err)
	}
	want := []string{"intend a", "do a", "made a", "intend b", "do b", "made b",
		"undo b", "undone b <nil>", "undo a", "undone a <nil>", "close second", "close first", "end true"}
	if !slices.Equal(calls, want) {
		t.Errorf("calls\n%q\nwant\n%q", calls, want)
	}
	if !slices.Equal(seen, []string{"a", "b"}) {
		t.Errorf("hook saw %v", seen)
	}

	// Runners of two operations at once: only the one with the hook fails.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			failing := New(context.Background(), Options{Op: "x", Hook: func(string) error { return errHook }})
			other := New(context.Background(), Options{Op: "y"})
			if err := other.Do("s", func() error { return nil }, nil); err != nil {
				t.Errorf("runner without a hook: %v", err)
			}
			if err := failing.Do("s", func() error { return nil }, nil); !errors.Is(err, errHook) {
				t.Errorf("runner with a failing hook: %v", err)
			}
		})
	}
	wg.Wait()
}

// failingJournal fails Intend or Made of one step.
type failingJournal struct {
	*trace
	intend, made string
}

func (f failingJournal) Intend(step string) error {
	f.trace.Intend(step)
	if step == f.intend {
		return errors.New("disk full")
	}
	return nil
}

func (f failingJournal) Made(step string) error {
	f.trace.Made(step)
	if step == f.made {
		return errors.New("disk full")
	}
	return nil
}

// TestJournalFailure: a step whose intent cannot be recorded is not made;
// one whose making cannot be recorded is undone; both fail the operation.
func TestJournalFailure(t *testing.T) {
	tests := []struct {
		name string
		j    func(*trace) Journal
		msg  string
		want []string
	}{
		{"intent", func(tr *trace) Journal { return failingJournal{trace: tr, intend: "b"} }, "pkg: op: record step b: disk full",
			[]string{"intend a", "do a", "made a", "intend b", "undo a", "undone a <nil>", "close second", "close first", "end true"}},
		{"made", func(tr *trace) Journal { return failingJournal{trace: tr, made: "b"} }, "pkg: op: record step b made: disk full",
			[]string{"intend a", "do a", "made a", "intend b", "do b", "made b", "undo b", "undone b <nil>", "undo a", "undone a <nil>", "close second", "close first", "end true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &trace{}
			err, calls := run(Options{Op: "pkg: op", Journal: tt.j(tr)}, tr, "")
			if err == nil || err.Error() != tt.msg {
				t.Errorf("error %v, want %q", err, tt.msg)
			}
			if !slices.Equal(calls, tt.want) {
				t.Errorf("calls\n%q\nwant\n%q", calls, tt.want)
			}
		})
	}
}

// TestNothingToUndo: a step without undo is skipped by the rollback (the
// journal still hears of it), and is not logged as rolled back.
func TestNothingToUndo(t *testing.T) {
	tr := &trace{}
	var logBuf bytes.Buffer
	r := New(context.Background(), Options{Op: "pkg: op", Journal: tr, Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
	do, undo := tr.step("a", nil, nil)
	r.Do("a", do, undo)
	r.Do("b", func() error { tr.add("do b"); return nil }, nil)
	err := errDo
	r.Finish(&err)
	want := []string{"intend a", "do a", "made a", "intend b", "do b", "made b", "undone b <nil>", "undo a", "undone a <nil>", "end true"}
	if !slices.Equal(tr.calls, want) {
		t.Errorf("calls\n%q\nwant\n%q", tr.calls, want)
	}
	if got := strings.Count(logBuf.String(), "rolled back"); got != 1 || strings.Contains(logBuf.String(), "step=b") {
		t.Errorf("log:\n%s", logBuf.String())
	}
}

// TestContextDone: a done context stops the operation before its next step.
func TestContextDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &trace{}
	err := func() (err error) {
		r := New(ctx, Options{Op: "pkg: op"})
		defer r.Finish(&err)
		do, undo := tr.step("a", nil, nil)
		if err := r.Do("a", do, undo); err != nil {
			return err
		}
		cancel()
		do, undo = tr.step("b", nil, nil)
		return r.Do("b", do, undo)
	}()
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "pkg: op interrupted before step b") {
		t.Errorf("error %v", err)
	}
	if want := []string{"do a", "undo a"}; !slices.Equal(tr.calls, want) {
		t.Errorf("calls %q, want %q", tr.calls, want)
	}
}

// TestRollbackAfterSuccess: the steps of an operation that succeeded can be
// undone later (by a caller whose own later step failed), once.
func TestRollbackAfterSuccess(t *testing.T) {
	tr := &trace{}
	var err error
	r := New(context.Background(), Options{Op: "pkg: op"})
	for _, name := range []string{"a", "b"} {
		do, undo := tr.step(name, nil, nil)
		if err := r.Do(name, do, undo); err != nil {
			t.Fatal(err)
		}
	}
	r.Finish(&err)
	if err := r.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := r.Rollback(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"do a", "do b", "undo b", "undo a"}; !slices.Equal(tr.calls, want) {
		t.Errorf("calls %q, want %q", tr.calls, want)
	}
}
