package kubereg

import (
	"context"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// subscriber is one change feed (Watch): the changes queued for it, under
// the registry's mu, moved to its channel by its own goroutine, so that
// the watch of Nodes never waits for a consumer and every feed sees the changes
// in order.
type subscriber struct {
	queue []registry.Change // guarded by the registry's mu
	wake  chan struct{}
	out   chan registry.Change
}

func (s *subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Watch returns the spans of the sound Nodes (a Put each, then
// ChangeSynced), then their changes as Nodes come, go and change: a Node
// deleted is a Delete of its span, a Node whose VTEP or podCIDR changed a
// Delete and a Put. The watch of Nodes resumes after an interruption, and
// lists them again when it must, delivering the difference: this feed never breaks. The
// channel is closed when ctx ends or the registry is closed.
func (r *Registry) Watch(ctx context.Context) (<-chan registry.Change, error) {
	if !r.synced.Load() {
		return nil, registry.Unavailable(errNotSynced)
	}
	sub := &subscriber{wake: make(chan struct{}, 1), out: make(chan registry.Change, 64)}
	r.mu.Lock()
	for _, s := range r.spans {
		sub.queue = append(sub.queue, registry.Change{Kind: registry.ChangePut, Span: s, Revision: r.rev})
	}
	sub.queue = append(sub.queue, registry.Change{Kind: registry.ChangeSynced, Revision: r.rev})
	r.subs[sub] = struct{}{}
	r.mu.Unlock()
	go r.feed(ctx, sub)
	return sub.out, nil
}

// feed moves sub's queued changes to its channel until ctx ends or the
// registry is closed.
func (r *Registry) feed(ctx context.Context, sub *subscriber) {
	defer func() {
		r.mu.Lock()
		delete(r.subs, sub)
		r.mu.Unlock()
		close(sub.out)
	}()
	for {
		r.mu.Lock()
		q := sub.queue
		sub.queue = nil
		r.mu.Unlock()
		for _, c := range q {
			select {
			case sub.out <- c:
			case <-ctx.Done():
				return
			case <-r.done.Done():
				return
			}
		}
		if len(q) > 0 {
			continue
		}
		select {
		case <-sub.wake:
		case <-ctx.Done():
			return
		case <-r.done.Done():
			return
		}
	}
}
