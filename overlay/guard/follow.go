package guard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// NodeLister is implemented by registries that advertise live nodes apart
// from their records (etcd's nodes/ keys, held by each node's lease): a
// node with no container yet is allowed too.
type NodeLister interface {
	NodeVTEPs(ctx context.Context) ([]netip.Addr, error)
}

// Stamper is implemented by registries without a change feed that can
// tell cheaply whether anything changed (the directory store: its
// directories' modification times), so that they can be checked often.
type Stamper interface {
	Stamp() (string, error)
}

// Notifier is implemented by registries without a change feed that can
// say at once when something changed on this machine (the directory store,
// through inotify); Follow then updates without waiting for the next poll.
type Notifier interface {
	Notify(ctx context.Context) (<-chan struct{}, error)
}

// Defaults of FollowConfig.
const (
	DefaultPoll   = 250 * time.Millisecond
	DefaultResync = 10 * time.Second
)

// FollowConfig says what Follow keeps the allowlist in line with.
type FollowConfig struct {
	// Allowlist is the node's allowlist (Ensure done).
	Allowlist *Allowlist
	// Registry is listed for the VTEPs of its records (and, if it is a
	// NodeLister, its live nodes).
	Registry registry.Registry
	// VTEPs, if set, are the records' VTEPs counted from a change feed
	// another consumer watches (Tee): the allowlist follows them, and the
	// registry's records are never listed.
	VTEPs *FeedVTEPs
	// Feed, if set and VTEPs is not, is watched by Follow itself and
	// counted the same way (etcd, with no other consumer of its feed).
	Feed registry.ChangeFeed
	// Local is this node's VTEP, always allowed.
	Local netip.Addr
	// Poll is how often a registry without feed is checked for changes
	// (through Stamper if it is one, else listed); default DefaultPoll.
	Poll time.Duration
	// Resync is the period of a full update whatever happened (with a
	// feed: the live nodes listed again); default DefaultResync.
	Resync time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
	// Stats, if set, is updated as Follow works.
	Stats *FollowStats
}

// FollowStats counts what Follow did.
type FollowStats struct {
	Updates atomic.Uint64 // set changes committed
	Added   atomic.Uint64 // addresses added
	Removed atomic.Uint64 // addresses removed
	Errors  atomic.Uint64 // failed updates (registry or kernel)
	Size    atomic.Int64  // addresses in the set after the last update
}

// Wanted returns the addresses the registry allows: this node, the VTEP of
// every record, and the live nodes of a NodeLister. complete is false when
// the registry could not be read whole: then only additions are safe.
func Wanted(ctx context.Context, reg registry.Registry, local netip.Addr) (addrs []netip.Addr, complete bool, err error) {
	seen := map[netip.Addr]bool{local: true}
	addrs = append(addrs, local)
	add := func(a netip.Addr) {
		if a = a.Unmap(); a.IsValid() && a.Is4() == local.Is4() && !seen[a] {
			seen[a] = true
			addrs = append(addrs, a)
		}
	}
	recs, lerr := reg.List(ctx)
	for _, r := range recs {
		add(r.VTEP)
	}
	var nerr error
	if nl, ok := reg.(NodeLister); ok {
		var nodes []netip.Addr
		nodes, nerr = nl.NodeVTEPs(ctx)
		for _, a := range nodes {
			add(a)
		}
	}
	err = errors.Join(lerr, nerr)
	return addrs, err == nil, err
}

// Follow keeps the allowlist equal to Wanted until ctx ends. With a change
// feed (FollowConfig.VTEPs or Feed), the records' VTEPs come from the feed,
// counted per VTEP as it delivers (see FeedVTEPs: no copy of the records,
// no listing of them), and the live nodes of a NodeLister are listed at
// start and every Resync; the set is updated whenever the feed's VTEPs
// change, and nothing is removed before the feed has delivered every
// record. Without a feed the registry is listed whole: at start, whenever
// a Notifier or Stamper says it changed (else every Poll), and every
// Resync. An update from an incomplete view only adds addresses. It
// returns ctx's error.
func Follow(ctx context.Context, cfg FollowConfig) error {
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := cfg.Stats
	if st == nil {
		st = &FollowStats{}
	}
	al := cfg.Allowlist
	// With a feed: the VTEPs counted from it, and the live nodes.
	counts := cfg.VTEPs
	ownFeed := counts == nil && cfg.Feed != nil
	if ownFeed {
		counts = NewFeedVTEPs()
	}
	if counts != nil {
		defer counts.follow(cfg.Local)()
	}
	commit := func(why string, want []netip.Addr, complete bool) {
		if !complete {
			if al.cur != nil {
				for x := range al.cur {
					want = append(want, x)
				}
			} else {
				have, herr := al.Addrs()
				if herr != nil {
					st.Errors.Add(1)
					return
				}
				want = append(want, have...)
			}
		}
		added, removed, err := al.Sync(want)
		if err != nil {
			st.Errors.Add(1)
			log.Warn("VTEP allowlist update failed", "err", err)
			return
		}
		if counts != nil {
			counts.commit(al.cur)
		}
		if added+removed > 0 {
			st.Updates.Add(1)
			st.Added.Add(uint64(added))
			st.Removed.Add(uint64(removed))
			log.Info("VTEP allowlist updated", "added", added, "removed", removed, "why", why)
		}
		st.Size.Store(int64(len(al.cur)))
	}
	// update lists the registry (and its nodes) whole: stores without feed.
	update := func(why string) {
		want, complete, err := Wanted(ctx, cfg.Registry, cfg.Local)
		if err != nil {
			st.Errors.Add(1)
			log.Warn("VTEP allowlist: registry incomplete; only adding addresses", "err", err)
		}
		commit(why, want, complete)
	}

	var nodes []netip.Addr // live nodes of a NodeLister, as last listed
	nodesOK := true
	listNodes := func() {
		nl, ok := cfg.Registry.(NodeLister)
		if !ok {
			return
		}
		n, err := nl.NodeVTEPs(ctx)
		if nodesOK = err == nil; err != nil {
			st.Errors.Add(1)
			log.Warn("VTEP allowlist: cannot list the live nodes; only adding addresses", "err", err)
			return
		}
		nodes = n
	}
	fromFeed := func(why string) {
		vteps, synced := counts.VTEPs()
		commit(why, wantedOf(cfg.Local, vteps, nodes), synced && nodesOK)
	}
	var countsChanged <-chan struct{}
	if counts != nil {
		countsChanged = counts.Changed()
		listNodes()
		fromFeed("start")
	} else {
		update("start")
	}
	var changes <-chan registry.Change
	watch := func() {
		ch, err := cfg.Feed.Watch(ctx)
		if err != nil {
			log.Warn("VTEP allowlist: cannot watch the registry yet", "err", err)
			return
		}
		counts.Restart()
		changes = ch
	}
	if ownFeed {
		watch()
	}
	stamper, _ := cfg.Registry.(Stamper)
	var stamp string
	if stamper != nil {
		stamp, _ = stamper.Stamp()
	}
	var notices <-chan struct{}
	if nt, ok := cfg.Registry.(Notifier); ok && counts == nil {
		if ch, err := nt.Notify(ctx); err == nil {
			notices = ch
		} else {
			log.Warn("VTEP allowlist: no change notices from the store; polling", "err", err)
		}
	}
	poll := time.NewTicker(cfg.Poll)
	defer poll.Stop()
	resync := time.NewTicker(cfg.Resync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c, ok := <-changes:
			if !ok {
				changes = nil
				watch()
				continue
			}
			counts.Apply(c) // signals countsChanged when the VTEPs change
		case <-countsChanged:
			// Gather what else arrives at once into the same update. On the
			// resolver's shared feed nothing waits: Tee holds a record with
			// a new VTEP until this update has allowed it (the signal is
			// only raised when the set of VTEPs changes, which is rare, so
			// updates stay few).
			if ownFeed {
				for _, c := range drain(changes, 20*time.Millisecond) {
					counts.Apply(c)
				}
			}
			select {
			case <-countsChanged:
			default:
			}
			fromFeed("registry change")
		case _, ok := <-notices:
			if !ok {
				notices = nil
				continue
			}
			if stamper != nil {
				stamp, _ = stamper.Stamp()
			}
			update("store changed")
		case <-poll.C:
			switch {
			case ownFeed && changes == nil:
				watch()
			case counts != nil:
			case stamper != nil:
				s, err := stamper.Stamp()
				if err == nil && s != stamp {
					stamp = s
					update("store changed")
				}
			default:
				update("poll")
			}
		case <-resync.C:
			if counts != nil {
				listNodes()
				fromFeed("resync")
			} else {
				update("resync")
			}
		}
	}
}

// wantedOf is local, the VTEPs with records and the live nodes, of local's
// address family.
func wantedOf(local netip.Addr, vteps, nodes []netip.Addr) []netip.Addr {
	out := []netip.Addr{local}
	seen := map[netip.Addr]bool{local: true}
	for _, l := range [][]netip.Addr{vteps, nodes} {
		for _, a := range l {
			if a = a.Unmap(); a.IsValid() && a.Is4() == local.Is4() && !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// drain returns what ch delivers within d.
func drain(ch <-chan registry.Change, d time.Duration) []registry.Change {
	var out []registry.Change
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case c, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, c)
		case <-t.C:
			return out
		}
	}
}

// Collector returns a Prometheus text collector of the guard's drops by
// reason (read from the rules' counters at each scrape), the allowlist's
// size and its updates. Either allowlist or ports may be nil (off).
func Collector(allowlist *Allowlist, ports func() ([]PortRules, error), st *FollowStats) func(io.Writer) {
	return func(w io.Writer) {
		drops := map[Reason]uint64{}
		if allowlist != nil {
			if p, _, err := allowlist.Drops(); err == nil {
				drops[ReasonVTEP] = p
			}
		}
		if ports != nil {
			if ps, err := ports(); err == nil {
				for _, p := range ps {
					for r, v := range p.Drops {
						drops[r] += v
					}
				}
			}
		}
		fmt.Fprintf(w, "# HELP overlayd_guard_drops_total Packets dropped by the VTEP allowlist and the per-port anti-spoofing rules, by reason.\n# TYPE overlayd_guard_drops_total counter\n")
		for _, r := range Reasons {
			fmt.Fprintf(w, "overlayd_guard_drops_total{reason=%q} %d\n", r, drops[r])
		}
		if st != nil {
			fmt.Fprintf(w, "# HELP overlayd_guard_allowlist_addresses Underlay addresses in the VTEP allowlist.\n# TYPE overlayd_guard_allowlist_addresses gauge\noverlayd_guard_allowlist_addresses %d\n", st.Size.Load())
			fmt.Fprintf(w, "# HELP overlayd_guard_allowlist_updates_total Changes of the VTEP allowlist committed.\n# TYPE overlayd_guard_allowlist_updates_total counter\noverlayd_guard_allowlist_updates_total %d\n", st.Updates.Load())
			fmt.Fprintf(w, "# HELP overlayd_guard_allowlist_errors_total Failed VTEP allowlist updates (registry or kernel).\n# TYPE overlayd_guard_allowlist_errors_total counter\noverlayd_guard_allowlist_errors_total %d\n", st.Errors.Load())
		}
	}
}
