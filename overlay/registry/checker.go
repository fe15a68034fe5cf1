package registry

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/promtext"
)

// DefaultLogInterval is a Checker's logging interval when none is given.
const DefaultLogInterval = 10 * time.Second

// maxLinesPerInterval bounds the rejections a Checker logs one by one in an
// interval; the rest are summed up in one line.
const maxLinesPerInterval = 10

// Checker is a node's one judge of records: its Policy, applied by every
// user of the records (resolver misses, change feed, VTEP allowlist,
// reconcile passes), and the count and log of what it rejects. A rejected
// record is skipped; it is counted by reason (WriteMetrics) each time a
// user meets it, and logged with its key, never its value, at most once
// per key per interval and at most 10 keys per interval (a line then sums
// up the others): a store full of junk costs a few lines a minute. Safe for
// concurrent use.
type Checker struct {
	policy Policy
	log    *slog.Logger
	every  time.Duration
	now    func() time.Time // time.Now; tests set their own clock
	counts [reasonEnd]atomic.Uint64

	mu         sync.Mutex
	since      time.Time           // start of the current interval
	logged     map[string]struct{} // keys logged in it (LogKey text)
	suppressed [reasonEnd]uint64   // rejections not logged in it, by reason
}

// NewChecker returns a checker of p, logging to log (nil discards) at most
// once per key per every (DefaultLogInterval when not positive).
func NewChecker(p Policy, log *slog.Logger, every time.Duration) *Checker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if every <= 0 {
		every = DefaultLogInterval
	}
	return &Checker{policy: p, log: log, every: every, now: time.Now, logged: make(map[string]struct{})}
}

// Policy returns the checker's policy.
func (c *Checker) Policy() Policy { return c.policy }

// Accept checks r (Policy.Check); a rejected record is counted and logged.
func (c *Checker) Accept(r Record) bool {
	if !c.AcceptARP(r.IP, r.MAC) {
		return false
	}
	return !r.VTEP.IsValid() || c.AcceptFDB(r.MAC, r.VTEP)
}

// AcceptARP checks the half arp/ip holding mac (Policy.CheckARP); a
// rejected one is counted and logged.
func (c *Checker) AcceptARP(ip netip.Addr, mac ethaddr.MAC) bool {
	why, err := c.policy.CheckARP(ip, mac)
	if err != nil {
		c.Reject(Rejected{Key: arpKey(ip), Reason: why})
	}
	return err == nil
}

// AcceptFDB checks the half fdb/mac holding vtep (Policy.CheckFDB); a
// rejected one is counted and logged.
func (c *Checker) AcceptFDB(mac ethaddr.MAC, vtep netip.Addr) bool {
	why, err := c.policy.CheckFDB(mac, vtep)
	if err != nil {
		c.Reject(Rejected{Key: fdbKey(mac), Reason: why})
	}
	return err == nil
}

// AcceptNode checks the VTEP of a live node a store advertises apart from
// its records (etcd's nodes/VTEP); a rejected one is counted and logged.
func (c *Checker) AcceptNode(vtep netip.Addr) bool {
	why, err := c.policy.CheckVTEP(vtep)
	if err != nil {
		c.Reject(Rejected{Key: nodeKey(vtep), Reason: why})
	}
	return err == nil
}

// AcceptSpan checks a span (Policy.CheckSpan); a rejected one is counted
// and logged (key spans/PREFIX).
func (c *Checker) AcceptSpan(s Span) bool {
	why, err := c.policy.CheckSpan(s)
	if err != nil {
		c.Reject(Rejected{Key: spanKey(s), Reason: why})
	}
	return err == nil
}

// AcceptMember checks a member record (Policy.CheckMember); a rejected one
// is counted and logged.
func (c *Checker) AcceptMember(m Member) bool {
	why, err := c.policy.CheckMember(m)
	if err != nil {
		c.Reject(Rejected{Key: memberKey(m.VTEP), Reason: why})
	}
	return err == nil
}

// Members lists the member records of ms and returns those the policy
// accepts; entries that are no member and members the policy refuses are
// counted and logged, never an error. The error is the store's failure to
// list them whole.
func (c *Checker) Members(ctx context.Context, ms MemberStore) ([]Member, error) {
	mm, rej, err := ms.Members(ctx)
	for _, r := range rej {
		c.Reject(r)
	}
	out := mm[:0]
	for _, m := range mm {
		if c.AcceptMember(m) {
			out = append(out, m)
		}
	}
	return out, err
}

// Reject counts and logs a rejected entry (one a store reported, or one
// a check refused).
func (c *Checker) Reject(r Rejected) {
	if r.Reason == 0 || r.Reason >= reasonEnd {
		r.Reason = ReasonMalformed
	}
	c.counts[r.Reason].Add(1)
	key := LogKey(r.Key)
	c.mu.Lock()
	now := c.now()
	if now.Sub(c.since) >= c.every {
		c.summarize(now)
	}
	_, seen := c.logged[key]
	switch {
	case seen:
	case len(c.logged) < maxLinesPerInterval:
		c.logged[key] = struct{}{}
		c.mu.Unlock()
		c.log.Warn("registry: record rejected, skipped (logged once per key per interval; the value is not logged)",
			"key", key, "reason", r.Reason.String())
		return
	default:
		c.suppressed[r.Reason]++
	}
	c.mu.Unlock()
}

// summarize logs what the interval ending at now did not log one by one,
// and starts a new interval. c.mu is held.
func (c *Checker) summarize(now time.Time) {
	var n uint64
	var attrs []any
	for r, k := range c.suppressed {
		if k > 0 {
			n += k
			attrs = append(attrs, Reason(r).String(), k)
		}
	}
	if n > 0 {
		c.log.Warn("registry: more records rejected than logged", "rejections", n,
			"interval", c.every, slog.Group("by_reason", attrs...))
	}
	c.since = now
	clear(c.logged)
	c.suppressed = [reasonEnd]uint64{}
}

// Rejections returns how many rejections of reason r the checker counted.
func (c *Checker) Rejections(r Reason) uint64 {
	if r >= reasonEnd {
		return 0
	}
	return c.counts[r].Load()
}

// WriteMetrics writes overlayd_records_rejected_total{reason} in the
// Prometheus text format (a collector of the daemon's metrics).
func (c *Checker) WriteMetrics(w io.Writer) {
	reasons := Reasons()
	promtext.Family(w, "overlayd_records_rejected_total", "counter", "Store entries skipped because they are no record this node may use, by reason, each time one is met.",
		"reason", len(reasons), func(i int) (string, uint64) { return reasons[i].String(), c.counts[reasons[i]].Load() })
}

// List lists reg and returns the records the policy accepts: the entries
// the store reports as no record (RejectLister) and the records the policy
// refuses are counted and logged, never an error. The error is the store's
// failure to list it whole (the records are then those it could read).
func (c *Checker) List(ctx context.Context, reg Registry) ([]Record, error) {
	var (
		recs []Record
		rej  []Rejected
		err  error
	)
	if rl, ok := reg.(RejectLister); ok {
		recs, rej, err = rl.ListRejected(ctx)
	} else {
		recs, err = reg.List(ctx)
	}
	for _, r := range rej {
		c.Reject(r)
	}
	out := recs[:0]
	for _, r := range recs {
		if c.Accept(r) {
			out = append(out, r)
		}
	}
	return out, err
}

// Feed returns f with the policy applied: a Put of a record (or span) the
// policy refuses is counted, logged and not passed on, nor is the Delete
// of such a record (its Put never was); a ChangeRejected is counted, logged and not
// passed on. The other changes pass unchanged and in order.
func (c *Checker) Feed(f ChangeFeed) ChangeFeed { return checkedFeed{f, c} }

type checkedFeed struct {
	feed ChangeFeed
	c    *Checker
}

func (cf checkedFeed) Watch(ctx context.Context) (<-chan Change, error) {
	in, err := cf.feed.Watch(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan Change, cap(in))
	go func() {
		defer close(out)
		for ch := range in {
			if !cf.pass(ch) {
				continue
			}
			select {
			case out <- ch:
			case <-ctx.Done():
				for range in { // the feed closes once ctx ended
				}
				return
			}
		}
	}()
	return out, nil
}

// pass says whether ch goes on, counting what does not.
func (cf checkedFeed) pass(ch Change) bool {
	switch ch.Kind {
	case ChangeRejected:
		cf.c.Reject(ch.Rejected)
		return false
	case ChangePut:
		if ch.IsSpan() {
			return cf.c.AcceptSpan(ch.Span)
		}
		return cf.c.Accept(ch.Record)
	case ChangeDelete:
		if ch.IsSpan() {
			_, err := cf.c.policy.CheckSpan(ch.Span)
			return err == nil
		}
		_, err := cf.c.policy.Check(ch.Record)
		return err == nil
	}
	return true
}
