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
	// Feed, if set, triggers an update at every change (etcd).
	Feed registry.ChangeFeed
	// Local is this node's VTEP, always allowed.
	Local netip.Addr
	// Poll is how often a registry without feed is checked for changes
	// (through Stamper if it is one, else listed); default DefaultPoll.
	Poll time.Duration
	// Resync is the period of a full update whatever happened; default
	// DefaultResync.
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

// Follow keeps the allowlist equal to Wanted until ctx ends: at start, at
// every change of the feed (several changes arriving together are one
// update), whenever a Stamper's stamp changes, and every Resync. An update
// from an incomplete listing only adds addresses. It returns ctx's error.
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
	var nodes []netip.Addr // live nodes of a NodeLister, as last listed
	commit := func(why string, want []netip.Addr, complete bool) {
		if !complete {
			have, herr := cfg.Allowlist.Addrs()
			if herr != nil {
				st.Errors.Add(1)
				return
			}
			want = append(want, have...)
		}
		added, removed, err := cfg.Allowlist.Sync(want)
		if err != nil {
			st.Errors.Add(1)
			log.Warn("VTEP allowlist update failed", "err", err)
			return
		}
		if added+removed > 0 {
			st.Updates.Add(1)
			st.Added.Add(uint64(added))
			st.Removed.Add(uint64(removed))
			log.Info("VTEP allowlist updated", "added", added, "removed", removed, "why", why)
		}
		st.Size.Store(int64(len(cfg.Allowlist.cur)))
	}
	// update lists the registry (and its nodes) whole.
	update := func(why string) {
		want, complete, err := Wanted(ctx, cfg.Registry, cfg.Local)
		if err != nil {
			st.Errors.Add(1)
			log.Warn("VTEP allowlist: registry incomplete; only adding addresses", "err", err)
		}
		if nl, ok := cfg.Registry.(NodeLister); ok {
			if n, err := nl.NodeVTEPs(ctx); err == nil {
				nodes = n
			}
		}
		commit(why, want, complete)
	}
	update("start")

	// With a feed, the records' VTEPs are followed change by change (no
	// listing per change): view holds the feed's records once it has
	// delivered them all (synced).
	view := newFeedView()
	synced := false
	fromView := func(why string) {
		if !synced {
			return // a partial view would remove addresses still in use
		}
		commit(why, view.wanted(cfg.Local, nodes), true)
	}
	var changes <-chan registry.Change
	watch := func() {
		if cfg.Feed == nil {
			return
		}
		ch, err := cfg.Feed.Watch(ctx)
		if err != nil {
			log.Warn("VTEP allowlist: cannot watch the registry yet", "err", err)
			return
		}
		changes, view, synced = ch, newFeedView(), false
	}
	watch()
	stamper, _ := cfg.Registry.(Stamper)
	var stamp string
	if stamper != nil {
		stamp, _ = stamper.Stamp()
	}
	var notices <-chan struct{}
	if nt, ok := cfg.Registry.(Notifier); ok && cfg.Feed == nil {
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
			// Gather what else arrives at once into the same update.
			for _, c := range append([]registry.Change{c}, drain(changes, 20*time.Millisecond)...) {
				if c.Kind == registry.ChangeSynced {
					synced = true
				}
				view.apply(c)
			}
			fromView("registry change")
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
			case cfg.Feed != nil && changes == nil:
				watch()
			case cfg.Feed == nil && stamper != nil:
				s, err := stamper.Stamp()
				if err == nil && s != stamp {
					stamp = s
					update("store changed")
				}
			case cfg.Feed == nil:
				update("poll")
			}
		case <-resync.C:
			update("resync")
		}
	}
}

// feedView is the VTEPs of the records a change feed delivered.
type feedView struct {
	byIP  map[netip.Addr]netip.Addr // record IP -> its VTEP
	count map[netip.Addr]int        // VTEP -> records
}

func newFeedView() *feedView {
	return &feedView{byIP: map[netip.Addr]netip.Addr{}, count: map[netip.Addr]int{}}
}

func (v *feedView) apply(c registry.Change) {
	ip := c.Record.IP
	switch c.Kind {
	case registry.ChangePut:
		v.drop(ip)
		if vt := c.Record.VTEP; vt.IsValid() {
			v.byIP[ip] = vt
			v.count[vt]++
		}
	case registry.ChangeDelete:
		v.drop(ip)
	}
}

func (v *feedView) drop(ip netip.Addr) {
	if old, ok := v.byIP[ip]; ok {
		delete(v.byIP, ip)
		if v.count[old]--; v.count[old] <= 0 {
			delete(v.count, old)
		}
	}
}

// wanted is local, the VTEPs with records and the live nodes.
func (v *feedView) wanted(local netip.Addr, nodes []netip.Addr) []netip.Addr {
	out := []netip.Addr{local}
	for vt := range v.count {
		if vt = vt.Unmap(); vt != local && vt.Is4() == local.Is4() {
			out = append(out, vt)
		}
	}
	for _, n := range nodes {
		if _, ok := v.count[n]; !ok && n != local && n.Is4() == local.Is4() {
			out = append(out, n)
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
