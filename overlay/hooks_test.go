package overlay

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

// TestStepHooksPerNode: a step hook belongs to its node: a failure injected
// into one node's create and attach steps leaves another node's steps, run
// at the same time, alone. Runs without root.
func TestStepHooksPerNode(t *testing.T) {
	failing := NewNode(NodeOptions{StateDir: t.TempDir()})
	other := NewNode(NodeOptions{StateDir: t.TempDir()})
	failing.stepHook = func(string) error { return errInjected }
	nop := func() error { return nil }
	var wg sync.WaitGroup
	for _, op := range []string{"create", "attach"} {
		for _, step := range []string{stepOverlayNetNS, stepBridge, stepVeth, stepRegister} {
			wg.Go(func() {
				if err := other.runner(t.Context(), op, nil, other.log).Do(step, nop, nil); err != nil {
					t.Errorf("other node's %s step %s: %v", op, step, err)
				}
				err := failing.runner(t.Context(), op, nil, failing.log).Do(step, nop, nil)
				if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "overlay: "+op+" step "+step) {
					t.Errorf("failing node's %s step %s: %v", op, step, err)
				}
			})
		}
	}
	wg.Wait()
}
