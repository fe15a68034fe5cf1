package guard

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// listRegistry is a registry without change feed whose records the test
// sets; its List fails (with the records it has) while listErr is set.
type listRegistry struct {
	registry.Registry // nil: Follow only lists
	mu                sync.Mutex
	vteps             []string
	listErr           error
	version           int // the stamp: bumped by set unless quiet
}

func (l *listRegistry) List(context.Context) ([]registry.Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var recs []registry.Record
	for i, v := range l.vteps {
		recs = append(recs, registry.Record{IP: netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}),
			MAC: ethaddr.MAC{2, 0x42, 0, 0, 0, byte(i + 1)}, VTEP: netip.MustParseAddr(v)})
	}
	return recs, l.listErr
}

// set replaces the records' VTEPs; stamped says the store's stamp shows it.
func (l *listRegistry) set(stamped bool, listErr error, vteps ...string) {
	l.mu.Lock()
	l.vteps, l.listErr = vteps, listErr
	if stamped {
		l.version++
	}
	l.mu.Unlock()
}

// stampRegistry is a listRegistry that is a Stamper.
type stampRegistry struct{ *listRegistry }

func (s stampRegistry) Stamp() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strconv.Itoa(s.version), nil
}

// notifyRegistry is a stampRegistry that is a Notifier: the test sends on
// notices.
type notifyRegistry struct {
	stampRegistry
	notices chan struct{}
}

func (n notifyRegistry) Notify(context.Context) (<-chan struct{}, error) { return n.notices, nil }

// raceRegistry is a stampRegistry that is a Notifier telling a change only
// to those who asked for notices before it (as inotify does), and whose
// first listing sees the records changed right after it was read (another
// node's change racing the follower's start).
type raceRegistry struct {
	stampRegistry
	mu     sync.Mutex
	subs   []chan struct{}
	listed bool
	change func()
}

func (r *raceRegistry) Notify(context.Context) (<-chan struct{}, error) {
	ch := make(chan struct{}, 1)
	r.mu.Lock()
	r.subs = append(r.subs, ch)
	r.mu.Unlock()
	return ch, nil
}

func (r *raceRegistry) List(ctx context.Context) ([]registry.Record, error) {
	recs, err := r.listRegistry.List(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.listed {
		r.listed = true
		r.change()
		for _, ch := range r.subs {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	return recs, err
}

// TestFollowNoticeDuringStart: a change the store notices while the
// follower's first listing is read is followed at once (with a Poll of an
// hour): the follower asks for notices before it lists.
func TestFollowNoticeDuringStart(t *testing.T) {
	nstest.RequireTools(t, "nft")
	local := netip.MustParseAddr("192.0.2.2")
	a := localAllowlist(t, "gn", local)
	lr := &listRegistry{vteps: []string{"192.0.2.3"}}
	rr := &raceRegistry{stampRegistry: stampRegistry{lr}, change: func() { lr.set(true, nil, "192.0.2.4") }}
	startFollow(t, FollowConfig{Allowlist: a, Registry: rr, Local: local, Poll: time.Hour, Resync: time.Hour})
	awaitAllowlist(t, a, "a change during the first listing", "192.0.2.2", "192.0.2.4")
}

// TestFollowPoll: without a change feed, the allowlist follows the
// registry listed whole: every Poll (plain registry), when its stamp
// changed (Stamper: a change the stamp does not show waits), or at once
// on a notice (Notifier, with a Poll of an hour); a failed listing only
// adds.
func TestFollowPoll(t *testing.T) {
	nstest.RequireTools(t, "nft")
	for _, mode := range []string{"plain", "stamper", "notifier"} {
		t.Run(mode, func(t *testing.T) { testFollowPoll(t, mode) })
	}
}

func testFollowPoll(t *testing.T, mode string) {
	a := localAllowlist(t, "gp", netip.MustParseAddr("192.0.2.2"))
	lr := &listRegistry{vteps: []string{"192.0.2.3"}}
	fc := FollowConfig{Allowlist: a, Registry: lr, Local: netip.MustParseAddr("192.0.2.2"), Poll: 20 * time.Millisecond, Resync: time.Hour}
	notices := make(chan struct{}, 1)
	switch mode {
	case "stamper":
		fc.Registry = stampRegistry{lr}
	case "notifier":
		fc.Registry, fc.Poll = notifyRegistry{stampRegistry{lr}, notices}, time.Hour
	}
	startFollow(t, fc)
	changed := func(listErr error, vteps ...string) {
		lr.set(true, listErr, vteps...)
		if mode == "notifier" {
			notices <- struct{}{}
		}
	}
	awaitAllowlist(t, a, "start", "192.0.2.2", "192.0.2.3")
	changed(nil, "192.0.2.4")
	awaitAllowlist(t, a, "changed", "192.0.2.2", "192.0.2.4")
	changed(errors.New("store half read"), "192.0.2.5")
	awaitAllowlist(t, a, "incomplete listing", "192.0.2.2", "192.0.2.4", "192.0.2.5")
	if mode != "plain" {
		// A change neither stamped nor noticed is not seen.
		lr.set(false, nil, "192.0.2.6")
		time.Sleep(200 * time.Millisecond)
		awaitAllowlist(t, a, "unstamped change", "192.0.2.2", "192.0.2.4", "192.0.2.5")
	}
	changed(nil, "192.0.2.6")
	awaitAllowlist(t, a, "complete again", "192.0.2.2", "192.0.2.6")
}

// localAllowlist opens the VTEP allowlist of a new namespace (tag) whose
// node is local, holding local alone.
func localAllowlist(t *testing.T, tag string, local netip.Addr) *Allowlist {
	t.Helper()
	ns, _ := nstest.NetNS(t, tag)
	a, err := OpenAllowlist(dial(t, ns), 4789, local)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Ensure([]netip.Addr{local}); err != nil {
		t.Fatal(err)
	}
	return a
}

// startFollow runs Follow until the test ends: it has returned before the
// cleanups registered earlier (closing its connection) run.
func startFollow(t *testing.T, fc FollowConfig) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Follow(ctx, fc)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// awaitAllowlist waits up to 3 s for the allowlist to hold exactly want.
func awaitAllowlist(t *testing.T, a *Allowlist, what string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		got, err := a.Addrs()
		var s []string
		for _, x := range got {
			s = append(s, x.String())
		}
		if err == nil && slices.Equal(s, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: allowlist %v (%v), want %v", what, s, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
