package etcdreg

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/etcdreg/internal/etcdv3"
)

// Registry is an registry.Registry in etcd v3. It is safe for concurrent use.
// See the package documentation for the key layout and the lease.
type Registry struct {
	cli       *etcdv3.Client
	endpoints string // for error messages
	base      string // PREFIX/vni/VNI/
	opts      Options
	log       *slog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // asks the lease keeper to check the lease now

	closeOnce sync.Once
	closeErr  error

	// mu guards lease and own. Register and Unregister hold it for reading
	// while they write, the lease keeper for writing while it moves the
	// records to a new lease, so no record is written under a lease that is
	// about to be revoked.
	mu    sync.RWMutex
	lease etcdv3.LeaseID // 0 with NoLease

	ownMu sync.Mutex // guards own
	own   map[netip.Addr]registry.Record

	leaseLost    atomic.Uint64
	reregistered atomic.Uint64
	relists      atomic.Uint64
	leaseUp      atomic.Bool
	revoked      atomic.Bool

	// listedHook, set by a test before Watch, runs after each listing has
	// been delivered and before the watch from its revision starts.
	listedHook func()
	// pageKeys, set by a test, is the keys a page of a listing reads (0:
	// listPage); pageHook, if set, is told of every page of a streamed
	// listing's arp/ keys (numbered from 1) before it is read, and an error
	// it returns fails that read.
	pageKeys int
	pageHook func(page int) error
}

// The capabilities of a Registry (see package registry).
var (
	_ registry.Registry     = (*Registry)(nil)
	_ registry.ChangeFeed   = (*Registry)(nil)
	_ registry.NetworkStore = (*Registry)(nil)
	_ registry.BlockStore   = (*Registry)(nil)
	_ registry.NodeLister   = (*Registry)(nil)
	_ registry.Leaser       = (*Registry)(nil)
	_ registry.RejectLister = (*Registry)(nil)
	_ registry.VTEPLister   = (*Registry)(nil)
)

// Open connects to the etcd cluster named by url,
//
//	etcd://[USER:PASS@]HOST[:PORT][,HOST[:PORT]...][/PREFIX][?PARAMS]
//
// (etcds:// for TLS with the system's CAs; PARAMS are vni, ttl, timeout, ca,
// cert, key, servername and node, see Options), checks that it answers
// within ctx and Options.Timeout, and, unless NoLease, grants the lease that
// the registry keeps alive until Close.
func Open(ctx context.Context, url string, opts Options) (*Registry, error) {
	t, err := parseURL(url, opts)
	if err != nil {
		return nil, err
	}
	tlsc, err := t.tlsConfig()
	if err != nil {
		return nil, err
	}
	o := t.opts
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cli, err := etcdv3.New(ctx, etcdv3.Config{
		Endpoints:        t.endpoints,
		DialTimeout:      o.Timeout,
		KeepAliveTime:    o.Timeout,
		KeepAliveTimeout: o.Timeout,
		TLS:              tlsc,
		Username:         o.Username,
		Password:         o.Password,
	})
	if err != nil {
		// Refused, timed out or a failed TLS handshake: no usable etcd.
		return nil, fmt.Errorf("etcdreg: connect to %s: %w", strings.Join(t.endpoints, ","), registry.Unavailable(err))
	}
	rctx, cancel := context.WithCancel(context.Background())
	r := &Registry{
		cli:       cli,
		endpoints: strings.Join(t.endpoints, ","),
		base:      t.prefix + "/vni/" + strconv.FormatUint(uint64(o.VNI), 10) + "/",
		opts:      o,
		log:       log.With("store", "etcd", "endpoints", strings.Join(t.endpoints, ","), "prefix", t.prefix, "vni", o.VNI),
		ctx:       rctx,
		cancel:    cancel,
		kick:      make(chan struct{}, 1),
		own:       make(map[netip.Addr]registry.Record),
	}
	if err := r.start(ctx); err != nil {
		cancel()
		cli.Close()
		return nil, err
	}
	return r, nil
}

// start checks the cluster and grants the lease.
func (r *Registry) start(ctx context.Context) error {
	octx, done := r.opCtx(ctx)
	defer done()
	if r.opts.NoLease {
		// One read proves the cluster answers (and the credentials work).
		if _, err := r.cli.Get(octx, r.base+"config"); err != nil {
			return r.wrap("open", err)
		}
		return nil
	}
	g, err := r.cli.Grant(octx, ttlSeconds(r.opts.TTL))
	if err != nil {
		return r.wrap("grant lease", err)
	}
	r.lease = g.ID
	r.leaseUp.Store(true)
	if err := r.putNode(octx, g.ID); err != nil {
		return err
	}
	r.wg.Add(1)
	go r.keepLease(g.ID)
	return nil
}

// Close stops keeping the lease alive and disconnects. It does not revoke
// the lease: this node's records stay for the TTL, so a daemon restarted
// quickly can take them over without a gap (see Revoke).
// Close may be called more than once.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		r.cancel()
		r.wg.Wait()
		r.closeErr = r.cli.Close()
	})
	return r.closeErr
}

// Revoke ends this node's presence, for a node leaving for good: it revokes
// the lease now, which deletes every record and the node key held under it,
// forgets the records and stops keeping a lease. Lookups, List and Watch go
// on working; Register fails from then on. Without a lease it does nothing.
func (r *Registry) Revoke(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := r.lease
	if id == 0 {
		return nil
	}
	r.revoked.Store(true)
	r.ownMu.Lock()
	clear(r.own)
	r.ownMu.Unlock()
	octx, done := r.opCtx(ctx)
	defer done()
	if _, err := r.cli.Revoke(octx, id); err != nil {
		return r.wrap("revoke lease", err)
	}
	return nil
}

// Prefix returns the key prefix of this registry's overlay,
// "PREFIX/vni/VNI/".
func (r *Registry) Prefix() string { return r.base }

// Client returns the underlying etcd client (for tools and tests).
func (r *Registry) Client() *etcdv3.Client { return r.cli }

// Keys of the layout (see the package documentation).
func (r *Registry) arpKey(ip netip.Addr) string { return r.base + "arp/" + ip.String() }
func (r *Registry) fdbKey(m ethaddr.MAC) string { return r.base + "fdb/" + m.String() }
func (r *Registry) nodeKey(v netip.Addr) string { return r.base + "nodes/" + v.String() }
func (r *Registry) configKey() string           { return r.base + "config" }

// opCtx bounds ctx by Options.Timeout.
func (r *Registry) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.opts.Timeout)
}

// wrap turns a client error into a registry error naming the operation; an
// unanswered request wraps registry.ErrUnavailable.
func (r *Registry) wrap(op string, err error) error {
	if etcdv3.IsUnavailable(err) {
		return fmt.Errorf("etcdreg: %s: etcd at %s unavailable: %w", op, r.endpoints, registry.Unavailable(err))
	}
	return fmt.Errorf("etcdreg: %s: %w", op, err)
}

// LookupMAC returns the MAC in arp/<ip>. Lookups are serializable reads,
// answered by the etcd member the client talks to without a round of
// consensus: a miss is not held up by etcd's write load (under 1,000
// writes/s, linearizable lookups took seconds on a loaded machine), at the
// price of a member's lag (a record registered this instant may read as
// missing, and is then resolved at the next miss or from the change feed).
func (r *Registry) LookupMAC(ctx context.Context, ip netip.Addr) (ethaddr.MAC, error) {
	kv, err := r.get(ctx, "lookup "+ip.String(), r.arpKey(ip), etcdv3.WithSerializable())
	if err != nil {
		return ethaddr.MAC{}, err
	}
	return parseMAC("arp/"+ip.String(), kv.Value)
}

// LookupVTEP returns the VTEP in fdb/<mac> (a serializable read, as
// LookupMAC).
func (r *Registry) LookupVTEP(ctx context.Context, mac ethaddr.MAC) (netip.Addr, error) {
	kv, err := r.get(ctx, "lookup "+mac.String(), r.fdbKey(mac), etcdv3.WithSerializable())
	if err != nil {
		return netip.Addr{}, err
	}
	return parseAddr("fdb/"+mac.String(), kv.Value)
}

func (r *Registry) get(ctx context.Context, op, key string, opts ...etcdv3.OpOption) (*etcdv3.KeyValue, error) {
	octx, done := r.opCtx(ctx)
	defer done()
	resp, err := r.cli.Get(octx, key, opts...)
	if err != nil {
		return nil, r.wrap(op, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%w: %s", registry.ErrNotFound, key)
	}
	return resp.Kvs[0], nil
}

// List returns the overlay's records at one revision, sorted by IP (see
// ListRejected: keys and values that are no record are skipped).
func (r *Registry) List(ctx context.Context) ([]registry.Record, error) {
	recs, _, err := r.ListRejected(ctx)
	return recs, err
}

// ListRejected returns the overlay's records at one revision, sorted by IP:
// each arp/<ip> with the VTEP of its MAC (invalid if fdb/<mac> is missing),
// and the arp/ and fdb/ keys that are no record (a key naming no address, a
// value that does not parse or is too long). The error is etcd's: the
// overlay could not be read.
func (r *Registry) ListRejected(ctx context.Context) ([]registry.Record, []registry.Rejected, error) {
	s, _, err := r.snapshot(ctx)
	if err != nil {
		return nil, nil, err
	}
	recs := make([]registry.Record, 0, s.tab.Len())
	for ip, mac := range s.tab.ARP() {
		rec := registry.Record{IP: ip, MAC: mac}
		rec.VTEP, _, _ = s.tab.VTEP(mac)
		recs = append(recs, rec)
	}
	slices.SortFunc(recs, func(a, b registry.Record) int { return a.IP.Compare(b.IP) })
	return recs, s.rejected, nil
}

// state is the overlay's arp/ and fdb/ keys at one revision, in a
// registry.Table: the one copy of the records, which the watcher hands to
// the feed's consumer (registry.Change.Table).
type state struct {
	tab *registry.Table
	// rejected are the keys met since the state was listed (or since the
	// watcher last delivered them) that are no record, skipped.
	rejected []registry.Rejected
}

func newState() *state { return newStateSized(0) }

// newStateSized returns a state with room for n records.
func newStateSized(n int) *state { return &state{tab: registry.NewTable(n)} }

// listPage is how many keys one request of a listing reads: a listing of
// the whole overlay at once would hold every key twice (the response and
// its decoding) beside the maps it fills.
const listPage = 4096

// The listings a daemon's start-up waits for (BenchmarkStartup100k) read
// larger pages: etcd visits every key left in the range for each page of a
// listing (it counts them for the response), so a listing of n keys in
// pages of p visits about n²/2p keys.
const (
	// fdbPage is how many fdb/ keys one request of the watch's first
	// listing reads (listFDB), before anything else is held: 100,000 fdb/
	// keys took etcd 0.6 s in pages of listPage, most of it that
	// visiting, while the start-up could do nothing else.
	fdbPage = 16384

	// streamPage is how many arp/ keys one request of a streamed listing
	// reads (watcher.stream): up to three pages are held at once while the
	// consumer programs their records. 100,000 arp/ keys took etcd 2.2 s
	// in pages of 1,024, longer than the daemon takes to program them;
	// with these pages and fdbPage's, the start-up took a third less time
	// (2.05 against 3.09 s) for 1.4 MiB more RSS at its peak.
	streamPage = 4096
)

// snapshot reads the overlay's arp/ and fdb/ keys at one revision, in pages
// of listPage keys (all at the revision of the first).
func (r *Registry) snapshot(ctx context.Context) (*state, int64, error) {
	var s *state
	rev, err := r.pages(ctx, r.base, 0, func(resp *etcdv3.GetResponse) {
		if s == nil {
			// Keys are arp/ and fdb/ pairs (plus config and nodes/).
			s = newStateSized(int(resp.Count)/2 + 1)
		}
		for _, kv := range resp.Kvs {
			s.apply(r.base, kv.Key, kv.Value, false)
		}
	})
	if err != nil {
		return nil, 0, err
	}
	return s, rev, nil
}

// pages reads the keys under prefix at revision rev (0: the current one,
// then that of the first page for the others) in pages of listPage keys,
// handing each page to fn, and returns the revision read.
func (r *Registry) pages(ctx context.Context, prefix string, rev int64, fn func(*etcdv3.GetResponse)) (int64, error) {
	return r.eachPage(ctx, prefix, rev, listPage, func(resp *etcdv3.GetResponse) bool {
		fn(resp)
		return true
	})
}

// eachPage is pages with pages of limit keys, the timeout per request, not
// for the whole listing, and an fn that may stop it (false): for a listing
// with pages of its own size (listFDB) or whose pages wait for their
// consumer (watcher.stream).
func (r *Registry) eachPage(ctx context.Context, prefix string, rev int64, limit int, fn func(*etcdv3.GetResponse) bool) (int64, error) {
	end := etcdv3.GetPrefixRangeEnd(prefix)
	from := prefix
	for {
		opts := []etcdv3.OpOption{etcdv3.WithRange(end), etcdv3.WithLimit(int64(cmp.Or(r.pageKeys, limit)))}
		if rev != 0 {
			opts = append(opts, etcdv3.WithRev(rev))
		}
		octx, done := r.opCtx(ctx)
		resp, err := r.cli.Get(octx, from, opts...)
		done()
		if err != nil {
			return 0, r.wrap("list", err)
		}
		rev = resp.Header.Revision
		if !fn(resp) || !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// listFDB reads the overlay's fdb/ keys at one revision, in pages of
// fdbPage keys: the first part of a listing the watcher streams
// (watcher.stream reads the arp/ keys at that revision).
func (r *Registry) listFDB(ctx context.Context) (*state, int64, error) {
	s := newState()
	first := true
	rev, err := r.eachPage(ctx, r.base+"fdb/", 0, fdbPage, func(resp *etcdv3.GetResponse) bool {
		if first {
			// A record per MAC, as a rule.
			s, first = newStateSized(int(resp.Count)+1), false
		}
		for _, kv := range resp.Kvs {
			s.apply(r.base, kv.Key, kv.Value, false)
		}
		return true
	})
	if err != nil {
		return nil, 0, err
	}
	return s, rev, nil
}

// RecordsAt returns the complete records at vtep, sorted by IP, at one
// revision: the fdb/ keys are read page by page keeping the MACs at vtep,
// then the arp/ keys keeping the IPs of those MACs, so that memory grows
// with vtep's records, not the overlay's (a node's sweep). Keys that are
// no record are skipped (the change feed reports them).
func (r *Registry) RecordsAt(ctx context.Context, vtep netip.Addr) ([]registry.Record, error) {
	macs := make(map[ethaddr.MAC]bool)
	rev, err := r.pages(ctx, r.base+"fdb/", 0, func(resp *etcdv3.GetResponse) {
		for _, kv := range resp.Kvs {
			_, m, kind := keyOf(r.base, kv.Key)
			if v, err := parseAddr("", kv.Value); kind == 'f' && err == nil && v == vtep && string(kv.Key) == r.fdbKey(m) {
				macs[m] = true
			}
		}
	})
	if err != nil || len(macs) == 0 {
		return nil, err
	}
	var recs []registry.Record
	_, err = r.pages(ctx, r.base+"arp/", rev, func(resp *etcdv3.GetResponse) {
		for _, kv := range resp.Kvs {
			ip, _, kind := keyOf(r.base, kv.Key)
			if m, err := parseMAC("", kv.Value); kind == 'a' && err == nil && macs[m] && string(kv.Key) == r.arpKey(ip) && registry.CheckKeyIP(ip) == nil {
				recs = append(recs, registry.Record{IP: ip, MAC: m, VTEP: vtep})
			}
		}
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(recs, func(a, b registry.Record) int { return a.IP.Compare(b.IP) })
	return recs, nil
}

// apply records one put (or delete) of key in s; other keys are ignored. It
// returns the IP or MAC the key names, for the watch's diffing.
func (s *state) apply(base string, key, value []byte, del bool) (ip netip.Addr, mac ethaddr.MAC, kind byte) {
	name, ok := cutBase(key, base)
	if !ok {
		return
	}
	switch {
	case strings.HasPrefix(name, "arp/"):
		a, err := netip.ParseAddr(name[len("arp/"):])
		if err != nil || registry.CheckKeyIP(a) != nil || a.String() != name[len("arp/"):] {
			if !del {
				s.rejected = append(s.rejected, registry.Rejected{Key: strings.Clone(name), Reason: registry.ReasonMalformed})
			}
			return
		}
		if del {
			s.tab.DeleteARP(a)
		} else if m, err := parseMAC(name, value); err != nil {
			s.tab.DeleteARP(a)
			s.reject(err)
		} else {
			s.tab.SetARP(a, m)
		}
		return a, ethaddr.MAC{}, 'a'
	case strings.HasPrefix(name, "fdb/"):
		m, err := ethaddr.Parse(name[len("fdb/"):])
		if err != nil || m.String() != name[len("fdb/"):] {
			if !del {
				s.rejected = append(s.rejected, registry.Rejected{Key: strings.Clone(name), Reason: registry.ReasonMalformed})
			}
			return
		}
		if del {
			s.tab.DeleteFDB(m)
		} else if v, err := parseAddr(name, value); err != nil {
			s.tab.DeleteFDB(m)
			s.reject(err)
		} else {
			s.tab.SetFDB(m, v)
		}
		return netip.Addr{}, m, 'f'
	}
	return
}

// cutBase returns key without the prefix base, as a string that shares
// key's bytes (no copy per key of a listing: it must not outlive key), and
// whether key has the prefix.
func cutBase(key []byte, base string) (string, bool) {
	if len(key) < len(base) || string(key[:len(base)]) != base {
		return "", false
	}
	rest := key[len(base):]
	if len(rest) == 0 {
		return "", true
	}
	return unsafe.String(&rest[0], len(rest)), true
}

// keyOf returns the IP an arp/ key names (kind 'a') or the MAC an fdb/ key
// names (kind 'f'); kind 0 for other or malformed keys.
func keyOf(base string, key []byte) (ip netip.Addr, mac ethaddr.MAC, kind byte) {
	name, ok := cutBase(key, base)
	switch {
	case !ok:
	case strings.HasPrefix(name, "arp/"):
		if a, err := netip.ParseAddr(name[len("arp/"):]); err == nil {
			return a, mac, 'a'
		}
	case strings.HasPrefix(name, "fdb/"):
		if m, err := ethaddr.Parse(name[len("fdb/"):]); err == nil {
			return ip, m, 'f'
		}
	}
	return ip, mac, 0
}

// reject notes the value err refused (a registry.Rejected).
func (s *state) reject(err error) {
	var rj registry.Rejected
	if errors.As(err, &rj) {
		s.rejected = append(s.rejected, rj)
	}
}

// parseMAC parses the value of the key name (arp/<ip>); a value that is
// no MAC is a registry.Rejected, which never holds the value.
func parseMAC(name string, v []byte) (ethaddr.MAC, error) {
	if why := badValue(v); why != 0 {
		return ethaddr.MAC{}, registry.Rejected{Key: strings.Clone(name), Reason: why}
	}
	m, err := ethaddr.Parse(string(v))
	if err != nil {
		return ethaddr.MAC{}, registry.Rejected{Key: strings.Clone(name), Reason: registry.ReasonMalformed}
	}
	return m, nil
}

// parseAddr parses the value of the key name (fdb/<mac>); a value that is
// no address is a registry.Rejected, which never holds the value.
func parseAddr(name string, v []byte) (netip.Addr, error) {
	if why := badValue(v); why != 0 {
		return netip.Addr{}, registry.Rejected{Key: strings.Clone(name), Reason: why}
	}
	a, err := netip.ParseAddr(string(v))
	if err != nil {
		return netip.Addr{}, registry.Rejected{Key: strings.Clone(name), Reason: registry.ReasonMalformed}
	}
	return a, nil
}

// badValue refuses a value longer than any record's before it is parsed.
func badValue(v []byte) registry.Reason {
	if len(v) > registry.MaxValueLen {
		return registry.ReasonOversized
	}
	return 0
}

// ttlSeconds rounds d up to whole seconds, at least 1.
func ttlSeconds(d time.Duration) int64 {
	return max(1, int64((d+time.Second-1)/time.Second))
}
