package etcdreg

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/etcdreg/internal/etcdv3"
)

// Watch returns the overlay's change feed: a registry.ChangePut for every complete
// record of an initial listing, registry.ChangeSynced, and then the changes from the
// revision of that listing on. If the watch falls behind a compaction or
// breaks, the feed lists again, delivers the difference to what it had
// delivered (Deletes and Puts) and registry.ChangeSynced. The arp/ and fdb/ keys that
// are no record come as registry.ChangeRejected, each listing's and each
// put's (see registry.Checker.Feed). etcd being unreachable only
// delays changes. The channel is closed when ctx is done or the registry
// closed; the consumer must keep reading until then.
func (r *Registry) Watch(ctx context.Context) (<-chan registry.Change, error) {
	s, rev, err := r.listFDB(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan registry.Change, 64)
	wctx, cancel := context.WithCancel(r.ctx)
	stop := context.AfterFunc(ctx, cancel)
	w := &watcher{r: r, ctx: wctx, out: out, cur: newState()}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(out)
		defer cancel()
		defer stop()
		w.run(s, rev)
	}()
	return out, nil
}

// watcher turns etcd's key events into record changes. It keeps one copy
// of the overlay's keys, cur: the records it delivered are always exactly
// cur's complete ones (every difference is sent before the next is
// computed), so no map of delivered records is kept beside it.
type watcher struct {
	r   *Registry
	ctx context.Context
	out chan<- registry.Change
	cur *state // the keys as last seen
}

// run streams the first listing (fdb holds its fdb/ keys at rev), follows
// the watch from its revision on, and lists again (resync) whenever the
// watch ends or the listing could not be read to its end.
func (w *watcher) run(fdb *state, rev int64) {
	ok, listed := w.stream(fdb, rev)
	for ok {
		if listed {
			if w.r.listedHook != nil {
				w.r.listedHook()
			}
			w.follow(rev + 1)
			if w.ctx.Err() != nil {
				return
			}
		}
		var s *state
		if s, rev, ok = w.relist(); !ok {
			return
		}
		ok, listed = w.resync(s, rev), true
	}
}

// stream delivers the first listing while it is read, so that the
// consumer programs its records while etcd serves the next keys: s holds
// the fdb/ keys at rev; the arp/ keys at rev are read page by page by a
// goroutine of its own, one page ahead, and each page's complete records
// are delivered (sorted by IP) as soon as its keys are applied; then
// registry.ChangeSynced. The records delivered are always cur's complete
// ones: a page that cannot be read leaves a part of the listing delivered,
// which relist and resync complete (listed false). ok is false once the
// watch is stopped.
func (w *watcher) stream(s *state, rev int64) (ok, listed bool) {
	w.cur = s
	if !w.sendRejected(rev) {
		return false, false
	}
	ctx, cancel := context.WithCancel(w.ctx)
	pages := make(chan *etcdv3.GetResponse, 1)
	var err error
	go func() {
		defer close(pages)
		page := 1
		if err = w.r.faultPage(page); err != nil {
			return
		}
		var fault error
		_, err = w.r.eachPage(ctx, w.r.base+"arp/", rev, streamPage, func(resp *etcdv3.GetResponse) bool {
			select {
			case pages <- resp:
			case <-ctx.Done():
				return false
			}
			if page++; resp.More {
				fault = w.r.faultPage(page)
			}
			return fault == nil
		})
		if err == nil {
			err = fault
		}
	}()
	defer func() {
		cancel()
		for range pages { // the reader has stopped when pages closes
		}
	}()
	var ips []netip.Addr
	for resp := range pages {
		ips = ips[:0]
		for _, kv := range resp.Kvs {
			if ip, _, kind := w.cur.apply(w.r.base, kv.Key, kv.Value, false); kind == 'a' {
				ips = append(ips, ip)
			}
		}
		slices.SortFunc(ips, netip.Addr.Compare)
		if !w.sendRejected(rev) {
			return false, false
		}
		for _, ip := range ips {
			if rec, ok := w.cur.complete(ip); ok && !w.send(registry.Change{Kind: registry.ChangePut, Record: rec, Revision: rev}) {
				return false, false
			}
		}
	}
	// pages is closed: the reader's err is set.
	switch {
	case w.ctx.Err() != nil:
		return false, false
	case err != nil:
		w.r.log.Warn("etcd watch: listing broken; listing again", "err", err)
		return true, false
	}
	return w.send(registry.Change{Kind: registry.ChangeSynced, Revision: rev}), true
}

// resync replaces the keys by a listing s, delivers the difference between
// the complete records of the old keys (what was delivered) and of s, then
// registry.ChangeSynced.
func (w *watcher) resync(s *state, rev int64) bool {
	old := w.cur
	if old.tab.Len() == 0 {
		w.cur = s
		return w.sendRejected(rev) && w.deliverListing(rev) && w.send(registry.Change{Kind: registry.ChangeSynced, Revision: rev})
	}
	ips := make([]netip.Addr, 0, s.tab.Len())
	for ip := range s.tab.ARP() {
		ips = append(ips, ip)
	}
	for ip := range old.tab.ARP() {
		if _, ok := s.tab.MAC(ip); !ok {
			ips = append(ips, ip)
		}
	}
	before := make(map[netip.Addr]registry.Record, old.tab.Len())
	for _, ip := range ips {
		if rec, ok := old.complete(ip); ok {
			before[ip] = rec
		}
	}
	old = nil
	w.cur = s
	return w.sendRejected(rev) && w.deliver(ips, before, rev) && w.send(registry.Change{Kind: registry.ChangeSynced, Revision: rev})
}

// deliverListing sends a Put of every complete record of cur, sorted by IP:
// the difference to nothing delivered (a first listing). Its IPv4
// addresses are sorted as 4-byte numbers, not in netip.Addr's 24 bytes
// (100,000 of them while the listing is delivered and programmed).
func (w *watcher) deliverListing(rev int64) bool {
	var v4 []uint32
	var v6 []netip.Addr
	for ip := range w.cur.tab.ARP() {
		if ip.Is4() {
			v4 = append(v4, binary.BigEndian.Uint32(ip.AsSlice()))
		} else {
			v6 = append(v6, ip)
		}
	}
	slices.Sort(v4)
	slices.SortFunc(v6, netip.Addr.Compare)
	put := func(ip netip.Addr) bool {
		rec, ok := w.cur.complete(ip)
		return !ok || w.send(registry.Change{Kind: registry.ChangePut, Record: rec, Revision: rev})
	}
	var b [4]byte
	for _, a := range v4 {
		binary.BigEndian.PutUint32(b[:], a)
		if !put(netip.AddrFrom4(b)) {
			return false
		}
	}
	for _, ip := range v6 {
		if !put(ip) {
			return false
		}
	}
	return true
}

// relist lists again, with backoff while etcd is away.
func (w *watcher) relist() (*state, int64, bool) {
	backoff := minBackoff
	for {
		s, rev, err := w.r.snapshot(w.ctx)
		if err == nil {
			w.r.relists.Add(1)
			w.r.log.Info("etcd watch: listed again", "revision", rev, "records", s.tab.Len())
			return s, rev, true
		}
		w.r.log.Warn("etcd watch: cannot list again yet", "err", err)
		select {
		case <-time.After(backoff):
		case <-w.ctx.Done():
			return nil, 0, false
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// follow applies watch events from revision from on until the watch ends
// (compaction, cancellation or a broken watch).
func (w *watcher) follow(from int64) {
	wch := w.r.cli.Watch(w.ctx, w.r.base, etcdv3.WithPrefix(), etcdv3.WithRev(from))
	for resp := range wch {
		if err := resp.Err(); err != nil {
			if resp.CompactRevision != 0 || errors.Is(err, etcdv3.ErrCompacted) {
				w.r.log.Info("etcd watch: revision compacted; listing again", "from", from, "compacted", resp.CompactRevision)
			} else if w.ctx.Err() == nil {
				w.r.log.Warn("etcd watch broken; listing again", "err", err)
			}
			return
		}
		// Apply a whole response (a transaction's events share it) before
		// comparing, so a Register shows as one Put. The records the
		// response may change are noted first, with their complete
		// record before it.
		ips, before := w.affected(resp.Events)
		for _, ev := range resp.Events {
			w.cur.apply(w.r.base, ev.Kv.Key, ev.Kv.Value, ev.Type == etcdv3.EventTypeDelete)
		}
		if !w.sendRejected(resp.Header.Revision) || !w.deliver(ips, before, resp.Header.Revision) {
			return
		}
	}
}

// affected returns the IPs whose complete record events may change, and
// their complete records before the events. An arp/<ip> event names its IP;
// an fdb/<mac> event the IPs whose arp key holds mac. Those are usually
// named by arp events of the same response too (Register, Unregister and a
// lease's expiry change both keys at once): cur is scanned, once per
// response, only for MACs some IP holds without one.
func (w *watcher) affected(events []*etcdv3.Event) ([]netip.Addr, map[netip.Addr]registry.Record) {
	before := make(map[netip.Addr]registry.Record)
	seen := make(map[netip.Addr]struct{})
	var ips []netip.Addr
	var macs []ethaddr.MAC
	covered := make(map[ethaddr.MAC]uint32) // IPs holding mac named by arp events
	note := func(ip netip.Addr) {
		if _, ok := seen[ip]; ok {
			return
		}
		seen[ip] = struct{}{}
		ips = append(ips, ip)
		if rec, ok := w.cur.complete(ip); ok {
			before[ip] = rec
		}
		if mac, ok := w.cur.tab.MAC(ip); ok {
			covered[mac]++
		}
	}
	for _, ev := range events {
		ip, mac, kind := keyOf(w.r.base, ev.Kv.Key)
		switch kind {
		case 'a':
			note(ip)
		case 'f':
			macs = append(macs, mac)
		}
	}
	var scan map[ethaddr.MAC]struct{}
	for _, mac := range macs {
		if w.cur.tab.Refs(mac) > covered[mac] {
			if scan == nil {
				scan = make(map[ethaddr.MAC]struct{})
			}
			scan[mac] = struct{}{}
		}
	}
	if scan != nil {
		var named []netip.Addr
		for ip, mac := range w.cur.tab.ARP() {
			if _, ok := scan[mac]; ok {
				named = append(named, ip)
			}
		}
		for _, ip := range named {
			note(ip)
		}
	}
	return ips, before
}

// deliver compares, for each of ips in order, the complete record now with
// the one before (what was delivered), and sends the difference.
func (w *watcher) deliver(ips []netip.Addr, before map[netip.Addr]registry.Record, rev int64) bool {
	slices.SortFunc(ips, netip.Addr.Compare)
	for _, ip := range ips {
		prev, had := before[ip]
		after, has := w.cur.complete(ip)
		if had == has && prev == after {
			continue
		}
		if had {
			if !w.send(registry.Change{Kind: registry.ChangeDelete, Record: prev, Revision: rev}) {
				return false
			}
		}
		if has {
			if !w.send(registry.Change{Kind: registry.ChangePut, Record: after, Revision: rev}) {
				return false
			}
		}
	}
	return true
}

// sendRejected delivers the keys that are no record met since the last
// delivery, as ChangeRejected (they are not logged here: the consumer
// counts them, see registry.Checker.Feed), and forgets them.
func (w *watcher) sendRejected(rev int64) bool {
	for _, rj := range w.cur.rejected {
		if !w.send(registry.Change{Kind: registry.ChangeRejected, Rejected: rj, Revision: rev}) {
			return false
		}
	}
	w.cur.rejected = nil
	return true
}

// faultPage runs the test's pageHook for page n of a streamed listing.
func (r *Registry) faultPage(n int) error {
	if r.pageHook == nil {
		return nil
	}
	return r.pageHook(n)
}

// send delivers c with the keys it comes from (registry.Change.Table).
func (w *watcher) send(c registry.Change) bool {
	c.Table = w.cur.tab
	select {
	case w.out <- c:
		return true
	case <-w.ctx.Done():
		return false
	}
}

// complete returns ip's record if its MAC has a VTEP.
func (s *state) complete(ip netip.Addr) (registry.Record, bool) { return s.tab.Record(ip) }
