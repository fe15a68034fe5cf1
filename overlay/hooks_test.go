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
	failing.createHook = func(string) error { return errInjected }
	failing.attachHook = func(string) error { return errInjected }
	var wg sync.WaitGroup
	for _, step := range attachSteps {
		wg.Go(func() {
			if err := other.attachStep(t.Context(), step); err != nil {
				t.Errorf("other node's attach step %s: %v", step, err)
			}
			if err := failing.attachStep(t.Context(), step); !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "attach step "+step) {
				t.Errorf("failing node's attach step %s: %v", step, err)
			}
		})
	}
	for _, step := range createSteps {
		wg.Go(func() {
			if err := other.createStep(step); err != nil {
				t.Errorf("other node's create step %s: %v", step, err)
			}
			if err := failing.createStep(step); !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "create step "+step) {
				t.Errorf("failing node's create step %s: %v", step, err)
			}
		})
	}
	wg.Wait()
}
