package resolver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// lookupMAC asks the registry for ip's MAC, timed, and checks the answer
// (arp/ip): a rejected one is errBadRecord.
func (r *Resolver) lookupMAC(ctx context.Context, ip netip.Addr) (ethaddr.MAC, error) {
	var mac ethaddr.MAC
	err := r.lookup(ctx, func(ctx context.Context) error {
		var err error
		mac, err = r.cfg.Registry.LookupMAC(ctx, ip)
		return err
	})
	if err != nil {
		return mac, r.rejected(err)
	}
	if !r.check.AcceptARP(ip, mac) {
		return mac, fmt.Errorf("%w: arp/%s", errBadRecord, ip)
	}
	return mac, nil
}

// lookupVTEP asks the registry for mac's VTEP, timed, and checks the answer
// (fdb/mac): a rejected one is errBadRecord.
func (r *Resolver) lookupVTEP(ctx context.Context, mac ethaddr.MAC) (netip.Addr, error) {
	var vtep netip.Addr
	err := r.lookup(ctx, func(ctx context.Context) error {
		var err error
		vtep, err = r.cfg.Registry.LookupVTEP(ctx, mac)
		return err
	})
	if err != nil {
		return vtep, r.rejected(err)
	}
	if !r.check.AcceptFDB(mac, vtep) {
		return vtep, fmt.Errorf("%w: fdb/%s", errBadRecord, mac)
	}
	return vtep, nil
}

// rejected turns a lookup's error that is a store's rejection of what it
// holds (a registry.Rejected: a value that does not parse, too long...)
// into errBadRecord, counted and logged by the checker; other errors are
// returned as they are.
func (r *Resolver) rejected(err error) error {
	var rj registry.Rejected
	if !errors.As(err, &rj) {
		return err
	}
	r.check.Reject(rj)
	return fmt.Errorf("%w: %s", errBadRecord, registry.LogKey(rj.Key))
}

// lookup runs one registry call with a timeout, recording its latency. It
// never waits for anything else: the scan budget is taken, without waiting,
// before a miss is queued (HandleMiss).
func (r *Resolver) lookup(ctx context.Context, call func(context.Context) error) error {
	start := time.Now()
	lc := &lookupCtx{Context: ctx, deadline: start.Add(r.cfg.LookupTimeout)}
	err := call(lc)
	lc.stop()
	r.m.lookup.observe(time.Since(start))
	return err
}

// lookupCtx is the context of one registry call: its parent with a
// deadline, as context.WithTimeout makes it, but the timer behind Done is
// only armed if the registry asks for Done: a local registry that checks
// only Err (or nothing) costs no timer and no cancel machinery. Err reports
// the deadline by the clock, so it agrees with Done.
type lookupCtx struct {
	context.Context // the parent
	deadline        time.Time

	once    sync.Once
	timed   context.Context // set by the first Done, unless stop came first
	cancel  context.CancelFunc
	stopped atomic.Bool
}

// closedChan returns a closed channel: the Done channel of a lookupCtx
// whose call is over, the stopped channel of a Resolver not running.
func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// Deadline returns the earlier of the call's and the parent's deadlines.
func (c *lookupCtx) Deadline() (time.Time, bool) {
	if d, ok := c.Context.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

// Done arms the deadline timer on first use.
func (c *lookupCtx) Done() <-chan struct{} {
	c.once.Do(func() { c.timed, c.cancel = context.WithDeadline(c.Context, c.deadline) })
	if c.timed == nil {
		return closedChan() // stop came first: the call is over, as after a cancel
	}
	return c.timed.Done()
}

// Err is the parent's error, context.Canceled once the call is over (as
// after a cancel), or context.DeadlineExceeded once the deadline has passed.
func (c *lookupCtx) Err() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	if c.stopped.Load() {
		return context.Canceled
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// stop releases the timer, if Done armed one.
func (c *lookupCtx) stop() {
	c.stopped.Store(true)
	c.once.Do(func() {})
	if c.cancel != nil {
		c.cancel()
	}
}
