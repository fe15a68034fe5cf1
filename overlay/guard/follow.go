package guard

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

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
	// registry.NodeLister, its live nodes).
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
	// Checker judges the records' VTEPs and the live nodes: a rejected one
	// is never allowed (and is counted and logged by it). The feeds are
	// expected checked (Checker.Feed); Follow applies it to Feed itself.
	// Nil: a checker of Local's family, logging to Logger.
	Checker *registry.Checker
	// Poll is how often a registry without feed is checked for changes
	// (through registry.Stamper if it is one, else listed); default
	// DefaultPoll.
	Poll time.Duration
	// Resync is the period of a full update whatever happened (with a
	// feed: the live nodes listed again); default DefaultResync.
	Resync time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
	// Stats, if set, is updated as Follow works.
	Stats *FollowStats
	// Members, if set, follows an encrypted overlay's member records
	// along: see MemberFollow.
	Members *MemberFollow
}

// MemberFollow has Follow keep an encrypted overlay's WireGuard peers in
// line with the allowlist: after each update of the allowlist (before a
// record held by Tee goes on), whenever the store says its members changed
// (a MemberWatcher; a store without feed, at each of its listings) and
// every Resync, Apply gets the member records (as the Checker accepts
// them) whose VTEP the allowlist holds, this node's own left out, and
// whether that view is complete (from an incomplete one only additions are
// safe).
type MemberFollow struct {
	// Store holds the member records.
	Store registry.MemberStore
	// Watcher, if set, says when members or live nodes changed (etcd).
	Watcher registry.MemberWatcher
	// Apply makes the peers those members. It is called from Follow's
	// goroutine, one call at a time.
	Apply func(members []registry.Member, complete bool)
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
// every record check accepts, and the live nodes of a NodeLister it
// accepts. complete is false when the registry could not be read whole
// (a record check rejects does not make it incomplete): then only additions
// are safe.
func Wanted(ctx context.Context, reg registry.Registry, check *registry.Checker, local netip.Addr) (addrs []netip.Addr, complete bool, err error) {
	recs, lerr := check.List(ctx, reg)
	vteps := make([]netip.Addr, len(recs))
	for i, r := range recs {
		vteps[i] = r.VTEP
	}
	var nodes []netip.Addr
	var nerr error
	if nl, ok := reg.(registry.NodeLister); ok {
		nodes, nerr = nl.NodeVTEPs(ctx)
		nodes = slices.DeleteFunc(nodes, func(a netip.Addr) bool { return !check.AcceptNode(a) })
	}
	err = errors.Join(lerr, nerr)
	return wantedOf(check.Policy(), local, vteps, nodes), err == nil, err
}

// wantedOf is local, the VTEPs with records and the live nodes, of local's
// address family and accepted by p, each once.
func wantedOf(p registry.Policy, local netip.Addr, vteps, nodes []netip.Addr) []netip.Addr {
	out := []netip.Addr{local}
	seen := map[netip.Addr]bool{local: true}
	for _, l := range [][]netip.Addr{vteps, nodes} {
		for _, a := range l {
			if a = a.Unmap(); a.IsValid() && a.Is4() == local.Is4() && !seen[a] {
				seen[a] = true
				if _, err := p.CheckVTEP(a); err == nil {
					out = append(out, a)
				}
			}
		}
	}
	return out
}

// Follow keeps the allowlist equal to Wanted until ctx ends. With a change
// feed (FollowConfig.VTEPs or Feed), the records' VTEPs come from the feed,
// counted per VTEP as it delivers (see FeedVTEPs: no copy of the records,
// no listing of them), and the live nodes of a NodeLister are listed at
// start, whenever a MemberWatcher says they changed, and every Resync; the
// set is updated whenever the feed's VTEPs change, and nothing is removed
// before the feed has delivered every record. Without a feed the registry
// is listed whole: at start, whenever a Notifier or Stamper says it
// changed (else every Poll), and every Resync. An update from an
// incomplete view only adds addresses. It returns ctx's error.
func Follow(ctx context.Context, cfg FollowConfig) error {
	f := newFollower(cfg)
	if f.counts == nil {
		return f.pollLoop(ctx)
	}
	defer f.counts.follow(cfg.Local)()
	return f.feedLoop(ctx)
}

// follower is one Follow: the allowlist, where its addresses come from, and
// what it last learnt of the live nodes.
type follower struct {
	cfg FollowConfig // defaults filled in
	al  *Allowlist
	log *slog.Logger
	st  *FollowStats
	// With a feed: the records' VTEPs counted from it, either shared
	// (FollowConfig.VTEPs, fed by Tee) or from the follower's own watch of
	// FollowConfig.Feed (ownFeed). Nil without a feed.
	counts  *FeedVTEPs
	ownFeed bool
	nodes   []netip.Addr // live nodes of a NodeLister, as last listed
	nodesOK bool         // the last listing of the live nodes succeeded
	// With MemberFollow: the member records as last listed, whether that
	// listing succeeded, and whether the allowlist's last commit came from
	// a complete view.
	members   []registry.Member
	membersOK bool
	complete  bool
}

func newFollower(cfg FollowConfig) *follower {
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	f := &follower{cfg: cfg, al: cfg.Allowlist, log: cfg.Logger, st: cfg.Stats, counts: cfg.VTEPs, nodesOK: true}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.cfg.Checker == nil {
		p := registry.Policy{Underlay: netip.PrefixFrom(cfg.Local, cfg.Local.BitLen())}
		f.cfg.Checker = registry.NewChecker(p, f.log, cfg.Resync)
	}
	if f.cfg.Feed != nil {
		f.cfg.Feed = f.cfg.Checker.Feed(f.cfg.Feed)
	}
	if f.st == nil {
		f.st = &FollowStats{}
	}
	if f.counts == nil && cfg.Feed != nil {
		f.counts, f.ownFeed = NewFeedVTEPs(), true
	}
	return f
}

// commit makes the allowlist hold want, or, from an incomplete view, want
// and everything it holds (only additions are safe), and counts what
// changed.
func (f *follower) commit(why string, want []netip.Addr, complete bool) {
	if !complete {
		have, err := f.held()
		if err != nil {
			f.st.Errors.Add(1)
			return
		}
		want = append(want, have...)
	}
	added, removed, err := f.al.Sync(want)
	if err != nil {
		f.st.Errors.Add(1)
		f.log.Warn("VTEP allowlist update failed", "err", err)
		return
	}
	f.complete = complete
	f.applyMembers()
	if f.counts != nil {
		f.counts.commit(f.al.cur)
	}
	if added+removed > 0 {
		f.st.Updates.Add(1)
		f.st.Added.Add(uint64(added))
		f.st.Removed.Add(uint64(removed))
		f.log.Info("VTEP allowlist updated", "added", added, "removed", removed, "why", why)
	}
	f.st.Size.Store(int64(len(f.al.cur)))
}

// held returns what the allowlist holds: what its last transaction left,
// or, when that is not known (after a failure), what the kernel lists.
func (f *follower) held() ([]netip.Addr, error) {
	if f.al.cur == nil {
		return f.al.Addrs()
	}
	have := make([]netip.Addr, 0, len(f.al.cur))
	for x := range f.al.cur {
		have = append(have, x)
	}
	return have, nil
}

// feedLoop follows a change feed: the VTEPs counted from it (Tee's, or the
// follower's own watch, watched again every Poll while it is down) and the
// live nodes, listed again when the store says they changed and every
// Resync.
func (f *follower) feedLoop(ctx context.Context) error {
	f.listNodes(ctx)
	f.listMembers(ctx)
	f.fromFeed("start")
	var changes <-chan registry.Change
	var rewatch <-chan time.Time
	if f.ownFeed {
		changes = f.watch(ctx)
		t := time.NewTicker(f.cfg.Poll)
		defer t.Stop()
		rewatch = t.C
	}
	resync := time.NewTicker(f.cfg.Resync)
	defer resync.Stop()
	counted := f.counts.Changed()
	memberChanges := f.watchMembers(ctx)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case _, ok := <-memberChanges:
			if !ok {
				memberChanges = nil
				continue
			}
			f.listNodes(ctx)
			f.listMembers(ctx)
			f.fromFeed("members or live nodes changed")
		case c, ok := <-changes:
			if !ok {
				changes = f.watch(ctx)
				continue
			}
			f.counts.Apply(c) // signals counted when the VTEPs change
		case <-counted:
			// Gather what else arrives at once into the same update. On the
			// resolver's shared feed nothing waits: Tee holds a record with
			// a new VTEP until this update has allowed it (the signal is
			// only raised when the set of VTEPs changes, which is rare, so
			// updates stay few).
			if f.ownFeed {
				for _, c := range drain(changes, 20*time.Millisecond) {
					f.counts.Apply(c)
				}
			}
			select {
			case <-counted:
			default:
			}
			f.fromFeed("registry change")
		case <-rewatch:
			if changes == nil {
				changes = f.watch(ctx)
			}
		case <-resync.C:
			f.listNodes(ctx)
			f.listMembers(ctx)
			f.fromFeed("resync")
		}
	}
}

// watch starts the follower's own watch of the feed, counted from scratch;
// nil if it cannot yet.
func (f *follower) watch(ctx context.Context) <-chan registry.Change {
	ch, err := f.cfg.Feed.Watch(ctx)
	if err != nil {
		f.log.Warn("VTEP allowlist: cannot watch the registry yet", "err", err)
		return nil
	}
	f.counts.Restart()
	return ch
}

// listNodes lists the live nodes of a NodeLister; on failure it keeps the
// last list and marks the view incomplete.
func (f *follower) listNodes(ctx context.Context) {
	nl, ok := f.cfg.Registry.(registry.NodeLister)
	if !ok {
		return
	}
	n, err := nl.NodeVTEPs(ctx)
	if f.nodesOK = err == nil; err != nil {
		f.st.Errors.Add(1)
		f.log.Warn("VTEP allowlist: cannot list the live nodes; only adding addresses", "err", err)
		return
	}
	f.nodes = slices.DeleteFunc(n, func(a netip.Addr) bool { return !f.cfg.Checker.AcceptNode(a) })
}

// fromFeed commits the feed's VTEPs and the live nodes: complete once the
// feed has delivered every record and the nodes were listed.
func (f *follower) fromFeed(why string) {
	vteps, synced := f.counts.VTEPs()
	f.commit(why, wantedOf(f.cfg.Checker.Policy(), f.cfg.Local, vteps, f.nodes), synced && f.nodesOK)
}

// pollLoop follows a registry without feed, listed whole: at start, when
// its Notifier says it changed, at each Poll when its Stamper's stamp
// changed (every Poll without a Stamper), and every Resync.
func (f *follower) pollLoop(ctx context.Context) error {
	stamper, _ := f.cfg.Registry.(registry.Stamper)
	var stamp string
	if stamper != nil {
		stamp, _ = stamper.Stamp() // before listing: a change meanwhile is seen at the next poll
	}
	// Notices from before the first listing: a change made while it is
	// read leaves a notice, and is listed at once, not at the next Poll.
	notices := f.notices(ctx)
	f.listAll(ctx, "start")
	poll := time.NewTicker(f.cfg.Poll)
	defer poll.Stop()
	resync := time.NewTicker(f.cfg.Resync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case _, ok := <-notices:
			if !ok {
				notices = nil
				continue
			}
			if stamper != nil {
				stamp, _ = stamper.Stamp()
			}
			f.listAll(ctx, "store changed")
		case <-poll.C:
			if stamper == nil {
				f.listAll(ctx, "poll")
			} else if s, err := stamper.Stamp(); err == nil && s != stamp {
				stamp = s
				f.listAll(ctx, "store changed")
			}
		case <-resync.C:
			f.listAll(ctx, "resync")
		}
	}
}

// notices returns the store's change notices if it is a Notifier (nil
// otherwise, or if it cannot give them: then it is polled).
func (f *follower) notices(ctx context.Context) <-chan struct{} {
	nt, ok := f.cfg.Registry.(registry.Notifier)
	if !ok {
		return nil
	}
	ch, err := nt.Notify(ctx)
	if err != nil {
		f.log.Warn("VTEP allowlist: no change notices from the store; polling", "err", err)
		return nil
	}
	return ch
}

// listAll lists the registry (and its live nodes, and members) whole and
// commits it.
func (f *follower) listAll(ctx context.Context, why string) {
	f.listMembers(ctx)
	want, complete, err := Wanted(ctx, f.cfg.Registry, f.cfg.Checker, f.cfg.Local)
	if err != nil {
		f.st.Errors.Add(1)
		f.log.Warn("VTEP allowlist: registry incomplete; only adding addresses", "err", err)
	}
	f.commit(why, want, complete)
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

// watchMembers returns the store's notices of changed members or live
// nodes (registry.MemberWatcher): with a MemberFollow whose store says
// them, and on any NodeLister that says them, so that a node whose daemon
// starts is admitted at once, not at the next Resync. Nil otherwise: both
// are followed at each Resync.
func (f *follower) watchMembers(ctx context.Context) <-chan struct{} {
	var w registry.MemberWatcher
	if m := f.cfg.Members; m != nil && m.Watcher != nil {
		w = m.Watcher
	} else if _, ok := f.cfg.Registry.(registry.NodeLister); ok {
		w, _ = f.cfg.Registry.(registry.MemberWatcher) // for its live nodes
	}
	if w == nil {
		return nil
	}
	ch, err := w.WatchMembers(ctx)
	if err != nil {
		f.log.Warn("VTEP allowlist: cannot watch the members and live nodes; following them at each resync", "err", err)
		return nil
	}
	return ch
}

// listMembers lists the member records, with a MemberFollow; on failure
// it keeps the last list and marks the view incomplete.
func (f *follower) listMembers(ctx context.Context) {
	m := f.cfg.Members
	if m == nil {
		return
	}
	mm, err := f.cfg.Checker.Members(ctx, m.Store)
	if f.membersOK = err == nil; err != nil {
		f.st.Errors.Add(1)
		f.log.Warn("WireGuard peers: cannot list the members; only adding peers", "err", err)
		if len(mm) == 0 {
			return // keep what was listed last
		}
	}
	f.members = mm
}

// applyMembers hands the members whose VTEP the allowlist holds to
// MemberFollow.Apply.
func (f *follower) applyMembers() {
	m := f.cfg.Members
	if m == nil {
		return
	}
	peers := make([]registry.Member, 0, len(f.members))
	for _, mb := range f.members {
		if mb.VTEP != f.cfg.Local && f.al.cur[mb.VTEP] {
			peers = append(peers, mb)
		}
	}
	m.Apply(peers, f.complete && f.membersOK)
}
