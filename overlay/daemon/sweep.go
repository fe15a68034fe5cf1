package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/overlaynet/overlaynet/internal/links"
	"github.com/overlaynet/overlaynet/internal/promtext"
	"github.com/overlaynet/overlaynet/overlay"
)

// recordSweepInterval is how often a pass also lists the store for
// records at this node's VTEP that no endpoint holds (a listing of the
// whole store, which the resolver's passes avoid on a store with a change
// feed): at start, then at most this often.
const recordSweepInterval = 5 * time.Minute

// startSweepWait is how long the start-up sweep waits for the node's
// operations under way (a reset, a burst of CNI ADDs).
const startSweepWait = time.Minute

// sweepWait is how long a pass's sweep waits for the node's operations
// under way (an attach, a CNI ADD) to leave it the state lock.
const sweepWait = 2 * time.Second

// startRecordsWait bounds how long the start-up sweep of the node's
// records waits for the feed's first listing to be programmed (see
// watchNode): a store that cannot be listed does not hold it off longer.
const startRecordsWait = 30 * time.Second

// ErrOverlayGone is returned by Run when the overlay it serves disappeared
// (its namespace deleted or replaced, its vxlan gone, its state removed):
// a reset by hand or by an older overlayd. The daemon then exits.
var ErrOverlayGone = errors.New("daemon: the overlay is gone")

// leakCounts counts the leftovers the daemon's sweeps removed, by kind.
type leakCounts [overlay.NumLeakKinds]atomic.Uint64

// collector exports the counts.
func (c *leakCounts) collector() func(io.Writer) {
	return func(w io.Writer) {
		const name = "overlayd_leaks_removed_total"
		promtext.Family(w, name, "counter", "Leftovers of operations killed half-way, or of nothing, removed by the daemon's sweeps, by kind.",
			"kind", int(overlay.NumLeakKinds), func(i int) (string, uint64) { return overlay.LeakKind(i).String(), c[i].Load() })
	}
}

// total is the number of leftovers removed so far.
func (c *leakCounts) total() uint64 {
	var n uint64
	for i := range c {
		n += c[i].Load()
	}
	return n
}

// sweep runs one sweep of the node (see overlay.Node.Sweep) and counts
// what it removed; a node busy throughout is left for the next pass.
func (d *Daemon) sweep(ctx context.Context, records bool, wait time.Duration) error {
	leaks, err := d.sweeper.Sweep(ctx, overlay.SweepOptions{Records: records, Wait: wait})
	for _, l := range leaks {
		d.leaks[l.Kind].Add(1)
	}
	switch {
	case errors.Is(err, overlay.ErrNotCreated):
		return fmt.Errorf("%w: %w", ErrOverlayGone, err)
	case errors.Is(err, overlay.ErrBusy):
		d.log.Debug("sweep skipped: the node's operations held the state lock", "wait", wait)
	case err != nil && ctx.Err() == nil:
		d.log.Warn("sweep incomplete", "err", err)
	}
	if len(leaks) > 0 {
		d.log.Info("sweep removed leftovers", "removed", len(leaks))
	}
	return nil
}

// watchNode sweeps the node's store records once the resolver has
// programmed the feed's first listing (at most startRecordsWait after the
// start), then checks, every reconcile interval, that the overlay still
// exists, and sweeps the node; it returns ErrOverlayGone when the overlay
// disappeared, nil when ctx ends.
func (d *Daemon) watchNode(ctx context.Context) error {
	// The records' sweep reads the node's records from the store, which on
	// etcd means every fdb/ and arp/ key (200,000 for 100,000 endpoints):
	// beside the feed's first listing it took etcd's time from it, on the
	// 2 cores the node and etcd share, while every remote endpoint waited
	// to be programmed.
	if settled := d.res.Settled(); settled != nil {
		t := time.NewTimer(startRecordsWait)
		select {
		case <-settled:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	if err := d.sweep(ctx, true, overlay.DefaultSweepWait); err != nil {
		return err
	}
	d.log.Info("start-up sweep done", "removed", d.leaks.total())
	if d.reconcile <= 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(d.reconcile)
	defer t.Stop()
	lastRecords := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := d.overlayAlive(); err != nil {
			return err
		}
		records := time.Since(lastRecords) >= recordSweepInterval
		if records {
			lastRecords = time.Now()
		}
		if err := d.sweep(ctx, records, sweepWait); err != nil {
			return err
		}
	}
}

// overlayAlive checks that the overlay the daemon serves is still there:
// its namespace (the same one), its vxlan device, its state.
func (d *Daemon) overlayAlive() error {
	oc := d.ov.Config
	if d.k.alive != nil {
		if err := d.k.alive(); err != nil {
			return fmt.Errorf("%w: %w", ErrOverlayGone, err)
		}
	}
	switch vx, err := links.Find(d.k.conn, oc.Vxlan); {
	case err != nil:
		d.log.Warn("cannot check the vxlan device", "vxlan", oc.Vxlan, "err", err)
	case vx == nil:
		return fmt.Errorf("%w: vxlan %s is missing in netns %s", ErrOverlayGone, oc.Vxlan, oc.OverlayNetNS)
	}
	switch _, err := d.node.Overlay(); {
	case errors.Is(err, overlay.ErrNotCreated):
		return fmt.Errorf("%w: %w", ErrOverlayGone, err)
	case err != nil:
		d.log.Warn("cannot read the overlay's state", "err", err)
	}
	return nil
}
