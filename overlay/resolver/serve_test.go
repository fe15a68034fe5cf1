package resolver

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/rtnl"
)

// chanSource is an EventSource delivering the events sent on it until ctx
// ends (then ctx's error) or a send of a nil event (then errSourceBroken).
type chanSource chan *rtnl.Event

var errSourceBroken = errors.New("source broken")

func (s chanSource) Run(ctx context.Context, fn func(*rtnl.Event) error) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-s:
			if ev == nil {
				return errSourceBroken
			}
			fn(ev)
		}
	}
}

// TestServeReturns: Serve returns nil when ctx ends, the source's error when
// it fails, and the resolver's own error when it cannot run (already
// running) instead of serving a resolver that does not run.
func TestServeReturns(t *testing.T) {
	serve := func(r *Resolver, ctx context.Context, src chanSource) error {
		done := make(chan error, 1)
		go func() { done <- r.Serve(ctx, src) }()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return")
			return nil
		}
	}
	reg := newFakeRegistry()

	r, _ := newTestResolver(t, reg, &fakeKernel{}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	src := make(chanSource)
	go func() { src <- &rtnl.Event{Kind: rtnl.EventMiss, Miss: *l3("198.51.100.3")}; cancel() }()
	if err := serve(r, ctx, src); err != nil {
		t.Errorf("Serve after ctx ended: %v", err)
	}

	r, _ = newTestResolver(t, reg, &fakeKernel{}, nil)
	src = make(chanSource, 1)
	src <- nil
	if err := serve(r, t.Context(), src); !errors.Is(err, errSourceBroken) {
		t.Errorf("Serve with a failing source: %v", err)
	}

	r, _ = newTestResolver(t, reg, &fakeKernel{}, nil)
	runResolver(t, r) // already running
	if err := serve(r, t.Context(), make(chanSource)); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("Serve of a running resolver: %v, want its error", err)
	}
}
