package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
)

// Resolver defaults (Tuning fields left zero; DefaultTuning returns them
// all).
const (
	DefaultWorkers = 4
	// DefaultQueueLen is the misses waiting for a worker. When it is full
	// the receive loop waits (backpressure): the notifications wait in the
	// monitor's socket (32 MiB, some 80,000 misses), none is dropped.
	DefaultQueueLen = 4096
	// DefaultLookupRate and DefaultLookupBurst are the scan budget: registry
	// lookups per second (and at once) for keys the registry did not list.
	// Lookups for listed keys are not limited.
	DefaultLookupRate  = 2000
	DefaultLookupBurst = 256
	DefaultNegativeTTL = 3 * time.Second
	DefaultNegativeMax = 1 << 16
	// DefaultBatchWindow is 0: a resolution is programmed at once, batched
	// only with those that became ready while the kernel applied the
	// previous batch.
	DefaultBatchWindow       = 0
	DefaultBatchMax          = 512
	DefaultReconcileInterval = 10 * time.Second
	DefaultLookupTimeout     = 2 * time.Second
	// DefaultLogLevel is the daemon's log level: warnings, reconcile changes
	// and a summary per reconcile interval; one line per resolution is
	// debug.
	DefaultLogLevel = slog.LevelInfo
)

// DefaultTuning returns the tuning `overlayd run` gives its resolver with
// no flags: every setting at its default.
func DefaultTuning() Tuning {
	return Tuning{
		Workers:           DefaultWorkers,
		QueueLen:          DefaultQueueLen,
		LookupRate:        DefaultLookupRate,
		LookupBurst:       DefaultLookupBurst,
		NegativeTTL:       DefaultNegativeTTL,
		NegativeMax:       DefaultNegativeMax,
		BatchWindow:       DefaultBatchWindow,
		BatchMax:          DefaultBatchMax,
		ReconcileInterval: DefaultReconcileInterval,
		LookupTimeout:     DefaultLookupTimeout,
		Protocol:          ProtocolOverlayd,
	}
}

// DefaultMonitorConfig is the miss monitor `overlayd run` opens in ns with
// no flags: a 32 MiB forced receive buffer (room for the backlog of a burst
// while the workers catch up) and MissesOnly, a kernel socket filter that
// drops the echoes of the entries the resolver programs before they are
// queued.
func DefaultMonitorConfig(ns *rtnl.NetNS) rtnl.MonitorConfig {
	return rtnl.MonitorConfig{NetNS: ns, ReceiveBuffer: rtnl.DefaultMonitorReceiveBuffer, MissesOnly: true}
}

// Config is what a Resolver is given: the wiring it must be supplied (the
// kernel, the registry, the overlay's devices and subnet, where it logs
// and counts) and its Tuning. Conn, Registry, Vxlan and Subnet are
// required; the rest of the wiring is optional, and the tuning has
// defaults.
type Config struct {
	// Conn is a request socket in the overlay namespace, used to program
	// entries and to dump them.
	Conn *rtnl.Conn
	// DumpConn, if set, is a second request socket in the same namespace
	// on which reconcile passes dump the kernel's entries, while
	// programming (misses and the feed) goes on through Conn. Nil: dumps
	// use Conn and hold programming up for their duration (over a second
	// for 100,000 remote entries).
	DumpConn *rtnl.Conn
	// Registry answers IP → MAC and MAC → VTEP.
	Registry registry.Registry
	// Vxlan is the ifindex of the overlay's vxlan device (in the overlay
	// namespace): L2/L3 misses of other devices are ignored.
	Vxlan int32
	// Bridge, if non-zero, is the ifindex of the overlay's bridge: its
	// app_solicit requests (the overlay namespace's own ARP, when
	// app_probes are enabled) are resolved too, with the neighbour entry
	// programmed on the bridge.
	Bridge int32
	// VNI and Port are programmed into every FDB entry (the device's own
	// when zero: then they are not sent).
	VNI  uint32
	Port uint16
	// Subnet is the overlay subnet; misses for other addresses (IPv6
	// link-local, DAD, ...) are ignored.
	Subnet netip.Prefix
	// Subnet6 is the overlay's IPv6 prefix on a dual-stack overlay; IPv6
	// misses for other addresses, and every IPv6 miss when it is invalid,
	// are ignored.
	Subnet6 netip.Prefix
	// LocalVTEP is this node's VTEP, if known: records at it are local
	// containers, reached through the bridge, and get no FDB entry. Its
	// family is also the family every VTEP must have (IPv4 when unset).
	LocalVTEP netip.Addr
	// Checker judges every record the resolver meets (misses, the feed,
	// reconcile passes): a record it rejects is never programmed, and is
	// counted and logged by it. Nil: a checker of Subnet and of LocalVTEP's
	// family, logging to Logger.
	Checker *registry.Checker
	// Logger receives warnings, reconcile changes, a summary line per
	// reconcile interval (info) and one line per miss and per resolution
	// (debug); nil discards.
	Logger *slog.Logger
	// Metrics receives the counters; nil creates a private set (see
	// Resolver.Metrics).
	Metrics *Metrics
	// Feed is the registry's change feed (see feed.go), followed in
	// ModeProactive and ModeHybrid.
	Feed registry.ChangeFeed
	// Answerer, if set, is told of every neighbour entry the resolver
	// programmed on the vxlan device (for a miss, from the feed or by a
	// reconcile pass), once it is in the kernel: the request waiting for
	// it is answered now (package wake).
	Answerer Answerer

	// Tuning is how the resolver works; its fields are Config's too.
	Tuning
}

// Tuning is how a Resolver works, apart from what it is wired to: the
// settings `overlayd run`'s flags change. Zero fields take the defaults
// (DefaultTuning).
type Tuning struct {
	Workers  int // concurrent registry lookups (4)
	QueueLen int // misses waiting for a worker (4096); when full, the receive loop waits
	// LookupRate is the scan budget: registry lookups per second for keys
	// the registry did not list (2000; < 0 means unlimited). Misses for such
	// keys beyond it are dropped and counted; lookups for listed keys are
	// not limited (see knownKeys). IPv6 addresses have a budget of their
	// own, of the same size, apart from IPv4 addresses' and MACs': a scan
	// of one family does not starve the other.
	LookupRate  float64
	LookupBurst int           // scan-budget lookups allowed at once above the rate (256), per family
	NegativeTTL time.Duration // how long an unknown key is not looked up again (3 s)
	NegativeMax int           // keys the negative cache holds at most (65536), per family
	// BatchWindow, if positive, is how long a batch waits for more changes
	// before it goes to the kernel (a tuning option). 0 (the default) or
	// negative: no waiting; a batch holds what became ready while the
	// previous one was applied.
	BatchWindow time.Duration
	BatchMax    int // changes that end a batch (512)
	// ReconcileInterval is the period of the reconcile pass that brings
	// programmed entries in line with the registry (10 s): a record that
	// changes or goes away is reflected within this interval plus the
	// pass's own duration. < 0 disables periodic passes.
	ReconcileInterval time.Duration
	LookupTimeout     time.Duration // one registry call (2 s)
	// Protocol is the NDA_PROTOCOL mark of our neighbour entries
	// (ProtocolOverlayd).
	Protocol uint8
	// Mode says how entries are programmed; ModeAuto (zero) is ModeHybrid
	// with a Feed and ModeReactive without. Proactive and hybrid need Feed.
	Mode Mode
	// ProactiveMax, if positive, is a budget: at most that many remote
	// records are programmed from the feed, the rest are resolved on
	// misses (crossing it is logged once and exported as
	// overlayd_proactive_left_to_misses). Zero programs every remote
	// record: the kernel does not bound them (PERMANENT neighbours and
	// vxlan FDB entries are exempt from the neighbour table's gc_thresh3).
	ProactiveMax int
}

// Answerer answers the request waiting for an address whose neighbour
// entry was just programmed (a *wake.Waker). Neither method may wait: they
// are called on the goroutine that programmed the entry, which may be the
// receive loop.
type Answerer interface {
	// Answer is called for a miss's entry, with when the miss was read:
	// the request that raised the miss was sent before, and may not have
	// been read from the capture yet.
	Answer(ip netip.Addr, since time.Time)
	// AnswerHeld is called for an entry the feed or a reconcile pass
	// programmed (many at a time, and no miss waiting): only a request
	// already read is answered.
	AnswerHeld(ip netip.Addr)
}

// seams are what tests replace (export_test.go); the zero value is the
// real thing.
type seams struct {
	now      func() time.Time // time.Now
	kernel   neighKernel      // replaces Config.Conn
	noInline bool             // every miss goes to a worker
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Workers, DefaultWorkers)
	def(&c.QueueLen, DefaultQueueLen)
	def(&c.LookupBurst, DefaultLookupBurst)
	def(&c.NegativeMax, DefaultNegativeMax)
	def(&c.BatchMax, DefaultBatchMax)
	if c.LookupRate == 0 {
		c.LookupRate = DefaultLookupRate
	}
	if c.NegativeTTL == 0 {
		c.NegativeTTL = DefaultNegativeTTL
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = DefaultReconcileInterval
	}
	if c.LookupTimeout <= 0 {
		c.LookupTimeout = DefaultLookupTimeout
	}
	if c.Protocol == 0 {
		c.Protocol = ProtocolOverlayd
	}
	if c.ProactiveMax < 0 {
		c.ProactiveMax = 0
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = &Metrics{}
	}
}

// Resolver answers the kernel's misses for one overlay from the registry
// and programs the answers:
//
//   - HandleEvent / HandleMiss filter the miss, coalesce it with a lookup in
//     flight for the same key, drop it if the key is in the negative cache,
//     and queue it for a worker. A full queue makes them wait
//     (backpressure: the receive loop stops reading and the notifications
//     wait in the monitor's socket) instead of dropping.
//   - Scan protection: a miss for a key the registry did not list (see
//     knownKeys) needs a token of the scan budget (LookupRate,
//     LookupBurst), taken without waiting; without one it is dropped and
//     counted. Keys the registry lists are looked up at full speed.
//   - Workers look the key up in the registry. An L3 miss for an IP becomes
//     a PERMANENT neighbour entry IP → MAC and, in the same batch, the FDB
//     entry MAC → VTEP; an L2 miss for a MAC becomes the FDB entry. Unknown
//     keys and records the Checker rejects are negatively cached for
//     NegativeTTL; rejected records are counted and logged by the Checker,
//     never installed.
//   - Opportunistic batching: a worker whose resolution is ready programs
//     it at once if no batch is in flight; resolutions that become ready
//     while one is go together in the next (up to BatchMax). Nothing waits
//     on a timer for an isolated miss.
//   - Entries carry marks (ProtocolOverlayd on neighbours, extern_learn on
//     FDB entries): a restarted resolver adopts them, and a periodic
//     reconcile pass (and one after every monitor overrun) updates or
//     removes them as the registry changes, and refreshes knownKeys.
type Resolver struct {
	cfg    Config
	seams  seams
	log    *slog.Logger
	check  *registry.Checker
	m      *Metrics
	table  *missTable
	known  *knownKeys
	bucket [2]*tokenBucket // the scan budget, by missKey.family
	prog   *programmer
	feed   *feedState // nil in reactive mode
	queue  chan queuedMiss
	kick   chan struct{}

	runMu   sync.Mutex
	running bool
	stopped chan struct{}   // closed when Run is not running
	runCtx  context.Context // Run's, while it runs

	lastMiss atomic.Int64 // UnixNano when HandleMiss last finished a miss
	busy     atomic.Int32 // workers resolving a miss

	// listed is closed once the first reconcile pass has listed the
	// registry (or failed to): until then no key is known, and HandleMiss
	// waits instead of charging every miss to the scan budget.
	listed     chan struct{}
	listedOnce sync.Once

	// unproven are the FDB entries found at start that nothing showed to
	// be ours yet (see adopt); only the reconcile goroutine uses it.
	unproven map[ethaddr.MAC]netip.Addr
}

// queuedMiss is a miss waiting for a worker.
type queuedMiss struct {
	key   missKey
	start time.Time
}

// New checks cfg and returns a resolver; Run starts it.
func New(cfg Config) (*Resolver, error) { return newResolver(cfg, seams{}) }

// newResolver is New with the seams tests replace.
func newResolver(cfg Config, sm seams) (*Resolver, error) {
	if cfg.Conn == nil && sm.kernel == nil {
		return nil, errors.New("resolver: no rtnl.Conn")
	}
	if cfg.Registry == nil {
		return nil, errors.New("resolver: no registry")
	}
	if cfg.Vxlan <= 0 {
		return nil, fmt.Errorf("resolver: bad vxlan ifindex %d", cfg.Vxlan)
	}
	if !cfg.Subnet.IsValid() {
		return nil, errors.New("resolver: no overlay subnet")
	}
	cfg.Subnet = cfg.Subnet.Masked()
	if cfg.Subnet6.IsValid() {
		if !cfg.Subnet6.Addr().Is6() || cfg.Subnet6.Addr().Is4In6() {
			return nil, fmt.Errorf("resolver: IPv6 prefix %s is not IPv6", cfg.Subnet6)
		}
		cfg.Subnet6 = cfg.Subnet6.Masked()
	}
	if cfg.Mode == ModeAuto {
		cfg.Mode = ModeReactive
		if cfg.Feed != nil {
			cfg.Mode = ModeHybrid
		}
	}
	if cfg.Mode > ModeHybrid {
		return nil, fmt.Errorf("resolver: unknown mode %v", cfg.Mode)
	}
	if cfg.Mode != ModeReactive && cfg.Feed == nil {
		return nil, fmt.Errorf("resolver: mode %v needs a registry with a change feed", cfg.Mode)
	}
	cfg.setDefaults()
	if cfg.Checker == nil {
		p := registry.Policy{Subnet: cfg.Subnet, Subnet6: cfg.Subnet6}
		if cfg.LocalVTEP.IsValid() {
			p.Underlay = netip.PrefixFrom(cfg.LocalVTEP, cfg.LocalVTEP.BitLen())
		}
		cfg.Checker = registry.NewChecker(p, cfg.Logger, cfg.ReconcileInterval)
	}
	if sm.now == nil {
		sm.now = time.Now
	}
	k := sm.kernel
	if k == nil {
		k = cfg.Conn
	}
	r := &Resolver{
		cfg:   cfg,
		seams: sm,
		log:   cfg.Logger,
		check: cfg.Checker,
		m:     cfg.Metrics,
		table: newMissTable(cfg.NegativeTTL, cfg.NegativeMax, cfg.QueueLen+cfg.Workers, sm.now),
		known: newKnownKeys(),
		bucket: [2]*tokenBucket{newTokenBucket(cfg.LookupRate, cfg.LookupBurst, sm.now),
			newTokenBucket(cfg.LookupRate, cfg.LookupBurst, sm.now)},
		queue:   make(chan queuedMiss, cfg.QueueLen),
		kick:    make(chan struct{}, 1),
		stopped: closedChan(),
		listed:  make(chan struct{}),
	}
	r.prog = newProgrammer(k, &r.cfg, sm.now, r.m, r.log)
	if cfg.DumpConn != nil {
		r.prog.dump = cfg.DumpConn
	}
	if cfg.Mode != ModeReactive {
		r.feed = newFeedState(cfg.Mode, r.cfg.ProactiveMax, r.check.Policy(), r.cfg.LocalVTEP)
		r.m.AddCollector(r.feedCollector)
	}
	return r, nil
}

// Metrics returns the resolver's counters.
func (r *Resolver) Metrics() *Metrics { return r.m }

// Mode returns the resolver's effective mode (never ModeAuto).
func (r *Resolver) Mode() Mode { return r.cfg.Mode }

// Tuning returns the resolver's effective tuning: Config.Tuning with the
// defaults filled in and the mode resolved.
func (r *Resolver) Tuning() Tuning { return r.cfg.Tuning }

// Entries lists the kernel entries the resolver programmed (or adopted) and
// tracks.
func (r *Resolver) Entries() []ProgrammedEntry { return r.prog.entries() }

// HandleEvent feeds one monitor event to the resolver; use it as (part of)
// the callback of rtnl.Monitor.Run. Misses go to HandleMiss, overruns to
// HandleOverrun; neighbour add/delete events are ignored (the reconcile pass
// reads the kernel's state itself). It waits only while the lookup queue is
// full (see HandleMiss) and never fails.
func (r *Resolver) HandleEvent(ev *rtnl.Event) error {
	switch ev.Kind {
	case rtnl.EventMiss:
		r.HandleMiss(&ev.Miss)
	case rtnl.EventOverrun:
		r.HandleOverrun()
	}
	return nil
}

// HandleOverrun records a monitor overrun and asks for a reconcile pass
// (a resync of the kernel's entries) as soon as possible. Misses lost in
// the overrun come back: the kernel raises them again on the senders'
// retries.
func (r *Resolver) HandleOverrun() {
	r.m.overruns.Add(1)
	r.log.Warn("monitor overrun: notifications lost, resyncing")
	r.Kick()
}

// Kick asks for a reconcile pass now (it coalesces with a pending one).
func (r *Resolver) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// HandleMiss takes one miss notification. It waits while the lookup queue
// is full and the resolver runs, and at start until the first reconcile
// pass has listed the registry (backpressure: called from the monitor's
// receive loop, it leaves the notifications queued in the socket); it drops
// and counts a miss only when the resolver is not running and the queue is
// full, or when the miss is for a key the registry did not list and the
// scan budget is spent. See Resolver.
func (r *Resolver) HandleMiss(m *rtnl.Miss) {
	if int(m.Kind) < len(r.m.misses) {
		r.m.misses[m.Kind].Add(1)
	}
	key, why, ok := r.classify(m)
	if r.log.Enabled(context.Background(), slog.LevelDebug) {
		r.log.Debug("miss", "kind", m.Kind.String(), "dev", m.Ifindex, "ip", m.IP, "mac", ethaddr.MAC(m.MAC), "accepted", ok)
	}
	if !ok {
		r.m.ignored[why].Add(1)
		return
	}
	if key.kind != rtnl.MissL2 {
		r.m.familyMisses[key.family()].Add(1)
	}
	if r.feed != nil && !r.feed.wantMisses() { // proactive mode: the feed programs it
		r.feed.ignored.Add(1)
		return
	}
	switch r.table.admit(key) {
	case admitCoalesced:
		r.m.coalesced.Add(1)
		return
	case admitNegative:
		r.m.negativeHits.Add(1)
		return
	}
	select {
	case <-r.listed:
	default:
		r.runMu.Lock()
		stopped := r.stopped
		r.runMu.Unlock()
		select {
		case <-r.listed:
		case <-stopped:
		}
	}
	if !r.isKnown(key) && !r.bucket[key.family()].take() {
		r.table.done(key, false)
		r.m.dropped[dropScanBudget+dropReason(key.family())].Add(1)
		return
	}
	q := queuedMiss{key: key, start: r.seams.now()}
	if r.isolated() {
		// Nothing else is pending: resolving it here saves the hand-off to
		// a worker (a thread to wake), the one wait an idle miss would see.
		r.runMu.Lock()
		ctx := r.runCtx
		r.runMu.Unlock()
		if ctx != nil {
			r.process(ctx, q)
			r.lastMiss.Store(time.Now().UnixNano())
			return
		}
	}
	r.lastMiss.Store(time.Now().UnixNano())
	select {
	case r.queue <- q:
		return
	default:
	}
	r.runMu.Lock()
	stopped := r.stopped
	r.runMu.Unlock()
	select {
	case r.queue <- q:
	case <-stopped:
		r.table.done(key, false)
		r.m.dropped[dropStopped].Add(1)
	}
}

// isolatedGap is how long the receive loop must have been idle for a miss
// to count as isolated.
const isolatedGap = time.Millisecond

// isolated says whether a miss arriving now is isolated: no miss was
// handled in the last isolatedGap, no lookup is queued or running. Such a
// miss is resolved on the receive loop's goroutine; the misses of a burst
// go to the workers.
func (r *Resolver) isolated() bool {
	return !r.seams.noInline && time.Now().UnixNano()-r.lastMiss.Load() > int64(isolatedGap) &&
		len(r.queue) == 0 && r.busy.Load() == 0
}

// classify filters a miss to this overlay and names its key.
func (r *Resolver) classify(m *rtnl.Miss) (missKey, ignoreReason, bool) {
	switch m.Kind {
	case rtnl.MissL2:
		// The L2 miss's NDA_VNI is 0 on current kernels: do not filter on it.
		if m.Ifindex != r.cfg.Vxlan {
			return missKey{}, ignoreOtherDevice, false
		}
		switch {
		case !m.HasMAC || ethaddr.MAC(m.MAC).IsZero():
			return missKey{}, ignoreNoise, false
		case ethaddr.MAC(m.MAC).IsMulticast():
			return missKey{}, ignoreMulticast, false
		}
		return missKey{kind: rtnl.MissL2, mac: m.MAC}, 0, true
	case rtnl.MissL3, rtnl.MissAppSolicit:
		if m.Ifindex != r.cfg.Vxlan && !(m.Kind == rtnl.MissAppSolicit && r.cfg.Bridge != 0 && m.Ifindex == r.cfg.Bridge) {
			return missKey{}, ignoreOtherDevice, false
		}
		ip := m.IP.Unmap()
		switch {
		case !ip.IsValid() || ip.IsUnspecified() || ip.IsLoopback():
			return missKey{}, ignoreNoise, false
		case ip.IsLinkLocalUnicast():
			return missKey{}, ignoreLinkLocal, false
		case ip.IsMulticast():
			return missKey{}, ignoreMulticast, false
		case ip.Is6() && !r.cfg.Subnet6.Contains(ip), ip.Is4() && !r.cfg.Subnet.Contains(ip):
			return missKey{}, ignoreOutsideSubnet, false
		}
		return missKey{kind: m.Kind, ifindex: m.Ifindex, ip: ip}, 0, true
	}
	return missKey{}, ignoreNoise, false
}

// listKeys learns the registry's keys from a KeyLister, if the registry
// is one, so that misses need not wait for the first reconcile pass's full
// listing.
func (r *Resolver) listKeys(ctx context.Context) {
	kl, ok := r.cfg.Registry.(registry.KeyLister)
	if !ok {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, r.cfg.LookupTimeout)
	defer cancel()
	ips, macs, err := kl.Keys(lctx)
	if err != nil {
		r.log.Warn("registry keys unreadable; misses wait for the first reconcile pass", "err", err)
		return
	}
	r.known.replaceKeys(ips, macs)
	r.markListed()
}

// markListed records that the first listing of the registry is over.
func (r *Resolver) markListed() { r.listedOnce.Do(func() { close(r.listed) }) }

// Run starts the workers and the reconcile loop
// (whose first pass adopts the entries a previous run programmed) and
// blocks until ctx ends. Feed it misses with HandleEvent or HandleMiss (or
// use Serve). It returns nil when ctx ends.
func (r *Resolver) Run(ctx context.Context) error {
	release, err := r.begin()
	if err != nil {
		return err
	}
	defer release()
	r.run(ctx)
	return nil
}

// begin marks the resolver running (HandleMiss waits for it from then on);
// release marks it stopped.
func (r *Resolver) begin() (release func(), err error) {
	r.runMu.Lock()
	defer r.runMu.Unlock()
	if r.running {
		return nil, errors.New("resolver: already running")
	}
	r.running = true
	stopped := make(chan struct{})
	r.stopped = stopped
	return func() {
		r.runMu.Lock()
		r.running = false
		r.stopped = closedChan()
		r.runMu.Unlock()
		close(stopped)
	}, nil
}

// run runs the workers, the reconcile loop and the feed until ctx ends.
func (r *Resolver) run(ctx context.Context) {
	r.runMu.Lock()
	r.runCtx = ctx
	r.runMu.Unlock()
	defer func() {
		r.runMu.Lock()
		r.runCtx = nil
		r.runMu.Unlock()
	}()
	r.listKeys(ctx)
	var wg sync.WaitGroup
	for range r.cfg.Workers {
		wg.Go(func() { r.worker(ctx) })
	}
	wg.Go(func() { r.reconcileLoop(ctx) })
	if r.feed != nil {
		wg.Go(func() { r.followFeed(ctx) })
	}
	wg.Wait()
}

// EventSource delivers neighbour notifications until ctx ends or it fails:
// an *rtnl.Monitor.
type EventSource interface {
	Run(ctx context.Context, fn func(*rtnl.Event) error) error
}

// Serve runs the resolver fed by src until ctx ends, the source fails or the
// resolver cannot run (it is already running); it returns the first of
// these errors, nil when ctx ended.
func (r *Resolver) Serve(ctx context.Context, src EventSource) error {
	// Running before the source delivers its first miss: HandleMiss waits
	// for the workers and the first listing instead of dropping.
	release, err := r.begin()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		defer release()
		r.run(ctx)
	}()
	err = src.Run(ctx, r.HandleEvent)
	cancel()
	<-ran
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// worker resolves queued misses.
func (r *Resolver) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case q := <-r.queue:
			r.busy.Add(1)
			ok := r.process(ctx, q)
			r.busy.Add(-1)
			if !ok {
				return
			}
		}
	}
}

// process looks q up and programs the answer; false means ctx ended.
func (r *Resolver) process(ctx context.Context, q queuedMiss) bool {
	res, negative := r.resolve(ctx, q)
	if res == nil {
		r.table.done(q.key, negative)
		return true
	}
	res.table = r.table // the programmer ends the lookup once applied
	if err := r.prog.submit(ctx, res); err != nil {
		r.table.done(q.key, false)
		return false
	}
	return true
}

// resolve looks q up. It returns the changes to program, or nil and whether
// to cache the key negatively.
func (r *Resolver) resolve(ctx context.Context, q queuedMiss) (*resolution, bool) {
	k := q.key
	mac, vtep, ok := r.answerFromView(k)
	if !ok {
		if k.kind == rtnl.MissL2 {
			mac = k.mac
		} else {
			var err error
			mac, err = r.lookupMAC(ctx, k.ip)
			if err != nil {
				return nil, r.unresolved(ctx, k, err)
			}
		}
		var err error
		vtep, err = r.lookupVTEP(ctx, mac)
		if err != nil {
			return nil, r.unresolved(ctx, k, err)
		}
		var ip netip.Addr
		if k.kind != rtnl.MissL2 {
			ip = k.ip
		}
		r.known.found(ip, mac)
	}
	if r.cfg.LocalVTEP.IsValid() && vtep == r.cfg.LocalVTEP {
		r.m.unresolved[unresolvedLocal].Add(1)
		if r.log.Enabled(ctx, slog.LevelDebug) {
			r.log.Debug("miss for a local container: nothing to program", "key", k.String(), "mac", mac)
		}
		return nil, true
	}
	res := newMissResolution(k, q.start)
	res.ops = append(res.ops, progOp{kind: opSetFDB, mac: mac, vtep: vtep})
	if k.kind != rtnl.MissL2 {
		res.ops = append(res.ops, progOp{kind: opSetNeigh, ifindex: k.ifindex, ip: k.ip, mac: mac})
	}
	return res, false
}

// errBadRecord marks a registry answer the checker rejected: it is never
// programmed.
var errBadRecord = errors.New("resolver: record rejected")

// unresolved counts and logs a failed lookup and says whether to cache the
// key negatively (yes, unless the resolver is stopping).
func (r *Resolver) unresolved(ctx context.Context, k missKey, err error) bool {
	switch {
	case ctx.Err() != nil:
		return false
	case errors.Is(err, registry.ErrNotFound):
		r.known.missing(k)
		r.m.unresolved[unresolvedNotFound].Add(1)
		if r.log.Enabled(ctx, slog.LevelDebug) {
			r.log.Debug("miss unresolved: not in registry", "key", k.String(), "err", err)
		}
	case errors.Is(err, errBadRecord):
		// Logged (bounded) by the checker that rejected it.
		r.m.unresolved[unresolvedBadRecord].Add(1)
	default:
		r.m.unresolved[unresolvedRegistryError].Add(1)
		r.log.Warn("registry lookup failed", "key", k.String(), "err", err)
	}
	return true
}
