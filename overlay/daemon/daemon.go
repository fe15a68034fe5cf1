package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/guard"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/stores"
	"github.com/overlaynet/overlaynet/overlay/resolver"
	"github.com/overlaynet/overlaynet/overlay/wake"
	"github.com/overlaynet/overlaynet/rtnl"
)

// Config configures a Daemon.
type Config struct {
	// Node is this node: its state directory records the overlay (Create
	// must have run), its netns directory holds the overlay namespace.
	Node *overlay.Node
	// Store is the store's URL: "dir:PATH", or "etcd://..." (see
	// registry.Open). A store that keeps several overlays apart (etcd) is
	// opened for the overlay's VNI when the URL names none, and one that
	// holds records on leases on this node's lease.
	Store string
	// Schemes are the store schemes Store may use
	// (registry.Options.Schemes); nil means stores.Schemes(), the shipped
	// ones.
	Schemes map[string]registry.Opener
	// MetricsAddr, if set, is where the Prometheus metrics are served
	// (http://MetricsAddr/metrics); port 0 picks one (Daemon.MetricsAddr).
	MetricsAddr string
	// ReceiveBuffer is the monitor's forced receive buffer in bytes
	// (DefaultReceiveBuffer when zero).
	ReceiveBuffer int
	// Resolver tunes the resolver: its mode (resolver.ModeAuto is hybrid
	// on a store with a change feed, etcd, and reactive otherwise;
	// proactive and hybrid on a store without a feed fail with ErrNoFeed),
	// its budget of proactive records, workers, rates, TTLs, reconcile
	// interval, batches. Zero fields take the resolver's defaults
	// (resolver.DefaultTuning is `overlayd run`'s). The daemon supplies the
	// wiring itself: the kernel sockets, the store and its change feed, the
	// devices, the subnet, this node's VTEP, the logger and the metrics.
	Resolver resolver.Tuning
	// Logger receives the daemon's and the resolver's logs; nil discards.
	Logger *slog.Logger
	// Create, if set, is the overlay New creates first, as `overlayd
	// create` does (idempotent: the same settings change nothing): a node
	// agent in a container runs one process that builds the overlay and
	// serves it.
	Create *overlay.Config
	// NodeName is this node's name for stores that know nodes by name
	// (the Kubernetes store's Node; empty: the host name).
	NodeName string
}

// DefaultReceiveBuffer is Config.ReceiveBuffer when zero.
const DefaultReceiveBuffer = rtnl.DefaultMonitorReceiveBuffer

// Daemon is a node daemon, opened and ready to run.
type Daemon struct {
	log      *slog.Logger
	ov       *overlay.Overlay
	store    registry.Registry
	lease    registry.Leaser // the store's lease (nil: none)
	k        kernelSide
	topo     Topology
	res      *resolver.Resolver
	metrics  *resolver.Metrics
	node     *overlay.Node
	storeURL string // the store's URL as configured
	// adopt, on a store with leases, moves the records of local attaches
	// made after the start onto the lease until ctx ends (adoptLocal).
	adopt       func(ctx context.Context)
	reconcile   time.Duration
	metricsAddr string
	stopMetrics func()
	unlock      func() // releases the daemon lock in the state dir
	// sweeper is the node with the daemon's store, for the sweeps; leaks
	// counts what they removed.
	sweeper *overlay.Node
	leaks   leakCounts
	// vteps counts the records' VTEPs from the resolver's change feed, for
	// the VTEP allowlist (nil: no feed, or no allowlist).
	vteps *guard.FeedVTEPs
	// check judges every record the resolver, the feed and the allowlist
	// meet, and counts and logs what it rejects.
	check *registry.Checker
	// running is set while Run serves (for /healthz); announced once the
	// store was told the node's network is up.
	running   atomic.Bool
	announced atomic.Bool
	// waker answers the request that raised a miss once it is resolved
	// (nil: no capture, on a fake kernel or if it could not be opened).
	waker     *wake.Waker
	closeWake func()
	// tun is an encrypted overlay's WireGuard side (nil without).
	tun *tunnel
}

// Run opens the daemon described by cfg and runs it until ctx ends (nil) or
// it fails.
func Run(ctx context.Context, cfg Config) error {
	d, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Run(ctx)
}

// New opens everything the daemon needs, in order: the overlay from the
// node's state directory, the store (with this node's lease on etcd), the
// overlay namespace with a request socket and a monitor, the vxlan device
// and the bridge, the metrics (served if cfg.MetricsAddr is set) and the
// resolver. On failure, what was opened is closed again.
func New(ctx context.Context, cfg Config) (*Daemon, error) {
	return open(ctx, cfg, systemKernel{})
}

func open(ctx context.Context, cfg Config, sys kernelOpener) (_ *Daemon, err error) {
	if cfg.Node == nil {
		return nil, errors.New("daemon: no node")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{log: log, node: cfg.Node}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if cfg.Create != nil {
		if _, err := cfg.Node.Create(ctx, *cfg.Create); err != nil {
			return nil, err
		}
	}
	if d.ov, err = cfg.Node.Overlay(); err != nil {
		return nil, err
	}
	// Found by the CNI plugin's STATUS; a second daemon of the node is refused.
	if d.unlock, err = overlay.LockDaemon(cfg.Node.StateDir()); err != nil {
		return nil, err
	}
	feed, err := d.openRegistry(ctx, cfg)
	if err != nil {
		return nil, err
	}
	oc := d.ov.Config
	if d.k, err = sys.open(cfg.Node.NetNSDir(), oc.OverlayNetNS, cfg.ReceiveBuffer); err != nil {
		return nil, err
	}
	if d.topo, err = Discover(d.k.conn, oc, log); err != nil {
		return nil, err
	}
	if d.topo.VNI != oc.VNI || d.topo.Port != oc.Port {
		return nil, fmt.Errorf("daemon: vxlan %s in netns %s has VNI %d port %d, the state directory %s records VNI %d port %d: run create again (or reset)",
			oc.Vxlan, oc.OverlayNetNS, d.topo.VNI, d.topo.Port, cfg.Node.StateDir(), oc.VNI, oc.Port)
	}
	d.metrics = &resolver.Metrics{}
	d.metrics.AddCollector(resolver.MonitorCollector(d.k.mon.Stats))
	d.metrics.AddCollector(d.leaks.collector())
	d.sweeper = cfg.Node.WithRegistry(d.store)
	d.openWaker(cfg.Resolver.NegativeTTL)
	if d.lease != nil {
		d.metrics.AddCollector(leaseCollector(d.lease))
	}
	if ex, ok := d.store.(registry.Exporter); ok {
		d.metrics.AddCollector(ex.WriteMetrics)
	}
	if d.reconcile = cfg.Resolver.ReconcileInterval; d.reconcile == 0 {
		d.reconcile = resolver.DefaultReconcileInterval
	}
	// One judge of records for the resolver, its feed and the allowlist.
	d.check = registry.NewChecker(cfg.Node.RecordPolicy(*d.ov), log, d.reconcile)
	d.metrics.AddCollector(d.check.WriteMetrics)
	if t := d.ov.Tunnel; t != nil {
		if _, ok := d.store.(registry.MemberStore); !ok {
			return nil, &SettingError{Setting: SettingStore, Value: registry.RedactURL(cfg.Store),
				Err: fmt.Errorf("daemon: the overlay is encrypted and %s keeps no member records", registry.RedactURL(cfg.Store))}
		}
		d.tun = newTunnel(cfg.Node.WithRegistry(d.store), *t, log)
	}
	d.metrics.AddCollector(d.tun.writeMetrics) // zeros without encryption
	if feed != nil {
		feed = d.check.Feed(feed)
	}
	rc := resolver.Config{
		Tuning:   cfg.Resolver,
		Conn:     d.k.conn,
		DumpConn: d.k.dump,
		Registry: d.store,
		Vxlan:    d.topo.Vxlan, Bridge: d.topo.Bridge, VNI: d.topo.VNI, Port: d.topo.Port,
		Subnet: oc.Subnet(), Subnet6: oc.Subnet6(), LocalVTEP: d.ov.VTEP,
		Logger: log, Metrics: d.metrics, Feed: feed, Checker: d.check, Answerer: d.answerer(),
	}
	if feed != nil && d.k.guard && !oc.NoVTEPFilter {
		// One watch of the registry for the resolver and the VTEP
		// allowlist: the allowlist counts the records' VTEPs on the way.
		d.vteps = guard.NewFeedVTEPs()
		rc.Feed = guard.Tee(feed, d.vteps)
	}
	if d.res, err = resolver.New(rc); err != nil {
		return nil, err
	}
	if cfg.MetricsAddr != "" {
		if d.stopMetrics, d.metricsAddr, err = serveMetrics(cfg.MetricsAddr, d.metrics, log, defaultMetricsTimeouts(), d.healthHandlers()); err != nil {
			return nil, err
		}
		log.Info("metrics", "url", "http://"+d.metricsAddr+"/metrics", "health", "http://"+d.metricsAddr+"/healthz", "ready", "http://"+d.metricsAddr+"/readyz")
		warnExposed(cfg.MetricsAddr, d.metricsAddr, d.ov, log)
	}
	return d, nil
}

// openRegistry opens cfg.Store for the daemon (see openStore), checks the
// overlay against the network the store records, and returns the store's
// change feed (nil without one), refusing a mode the store cannot serve.
func (d *Daemon) openRegistry(ctx context.Context, cfg Config) (registry.ChangeFeed, error) {
	log := d.log
	var err error
	schemes := cfg.Schemes
	if schemes == nil {
		schemes = stores.Schemes()
	}
	d.storeURL = cfg.Store
	if d.store, err = openStore(ctx, cfg.Store, schemes, cfg.NodeName, cfg.Node, d.ov, log); err != nil {
		return nil, &SettingError{Setting: SettingStore, Err: err}
	}
	if l, ok := d.store.(registry.Leaser); ok {
		d.lease = l
		d.adopt = func(ctx context.Context) { adoptLocal(ctx, d.store, l.Owned, d.node, d.ov.VTEP, adoptInterval, d.log) }
	}
	// The state dir's overlay must be the one every node agreed on.
	if err := overlay.PublishNetwork(ctx, d.store, *d.ov); err != nil {
		return nil, &SettingError{Setting: SettingStateDir, Value: cfg.Node.StateDir(), Err: err}
	}
	feed, hasFeed := d.store.(registry.ChangeFeed)
	if err := overlay.CheckSpansFamily(d.store, *d.ov); err != nil {
		return nil, &SettingError{Setting: SettingStore, Err: err}
	}
	if _, spans := d.store.(registry.AssignedBlocks); spans && cfg.Resolver.Mode == resolver.ModeReactive {
		return nil, fmt.Errorf("%w: the containers of %s are the spans of its change feed (nodes' podCIDRs), which mode reactive does not follow: use hybrid (the default) or proactive", ErrNoFeed, registry.RedactURL(cfg.Store))
	}
	if !hasFeed {
		feed = nil
		if m := cfg.Resolver.Mode; m == resolver.ModeProactive || m == resolver.ModeHybrid {
			return nil, fmt.Errorf("%w; mode %s, and %s has none", ErrNoFeed, m, registry.RedactURL(cfg.Store))
		}
	}
	return feed, nil
}

// openWaker opens the capture of the requests sent to the vxlan device, if
// the kernel side has one, for the waker whose requests live ttl (the
// negative-cache TTL; the default when zero), and exports its counters
// (zeros without one). Without it (it could not be opened: logged) a
// container whose request raised a miss gets its answer at its retransmit.
func (d *Daemon) openWaker(ttl time.Duration) {
	defer func() { d.metrics.AddCollector(wake.Collector(d.waker)) }()
	if d.k.capture == nil {
		return
	}
	link, err := d.k.capture(d.topo.Vxlan)
	if err != nil {
		d.log.Warn("no capture of the requests that raise misses: they are answered at their retransmit", "err", err)
		return
	}
	if ttl <= 0 {
		ttl = resolver.DefaultNegativeTTL
	}
	d.waker = wake.New(link, wake.Config{TTL: ttl, Logger: d.log})
	d.closeWake = func() { link.Close() }
}

// answerer is the resolver's Answerer: the waker, or none.
func (d *Daemon) answerer() resolver.Answerer {
	if d.waker == nil {
		return nil
	}
	return d.waker
}

// Run runs the resolver, fed by the overlay namespace's monitor, the
// capture of the requests that raise misses, and on a leased store the
// adoption of later local attaches, until ctx ends (nil) or the monitor
// fails. It returns once all of them stopped.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil)
	// Operations of the node killed half-way, and what nothing owns, are
	// taken back before serving, then on every reconcile interval, when the
	// overlay is also checked to be still there. The store's records, a
	// listing of the whole store, are checked beside serving (watchNode).
	// The start-up sweep waits for the node's operations under way: a
	// reset that stopped the previous daemon holds the lock until the
	// overlay is gone, which this one then sees, before putting anything
	// in place.
	if err := d.sweep(ctx, false, startSweepWait); err != nil {
		return err
	}
	if d.tun != nil {
		// The WireGuard device, as create made it (started again if its
		// process died while no daemon ran), supervised from now on.
		wait, err := d.tun.supervise(ctx)
		if err != nil {
			return err
		}
		defer wait()
	}
	wg.Go(func() {
		if err := d.watchNode(ctx); err != nil {
			d.log.Error("the overlay disappeared: stopping (run create again, then run)", "err", err)
			cancel(err)
		}
	})
	if d.adopt != nil {
		wg.Go(func() { d.adopt(ctx) })
	}
	wg.Go(func() { d.releaseStartup(ctx) })
	if d.waker != nil {
		wg.Go(func() {
			if err := d.waker.Run(ctx); err != nil {
				d.log.Warn("capture of requests failed: they are answered at their retransmit", "err", err)
			}
		})
	}
	if d.k.guard {
		if err := d.startGuard(ctx); err != nil {
			return err
		}
	}
	if an, ok := d.store.(registry.Announcer); ok {
		wg.Go(func() { d.announce(ctx, an) })
	}
	d.running.Store(true)
	defer d.running.Store(false)
	oc := d.ov.Config
	d.log.Info("overlayd running", "mode", d.res.Mode(), "proactive_max", d.res.Tuning().ProactiveMax, "netns", oc.OverlayNetNS, "vxlan", oc.Vxlan, "ifindex", d.topo.Vxlan,
		"vni", d.topo.VNI, "port", d.topo.Port, "subnet", oc.Subnet(), "subnet6", oc.Subnet6(), "vtep", d.ov.VTEP, "store", registry.RedactURL(d.storeURL),
		"reconcile", d.reconcile, "rcvbuf", d.k.mon.ReceiveBuffer())
	err := d.res.Serve(ctx, d.k.mon)
	if cause := context.Cause(ctx); errors.Is(cause, ErrOverlayGone) {
		err = cause
	}
	st := d.metrics.Snapshot()
	d.log.Info("overlayd stopped", "misses_l3", st.Misses["l3miss"], "misses_l2", st.Misses["l2miss"],
		"resolved_l3", st.Resolutions["l3miss"], "resolved_l2", st.Resolutions["l2miss"], "overruns", st.Overruns)
	return err
}

// Resolver returns the daemon's resolver.
func (d *Daemon) Resolver() *resolver.Resolver { return d.res }

// Metrics returns the daemon's metrics (the resolver's, the monitor's and
// the lease's).
func (d *Daemon) Metrics() *resolver.Metrics { return d.metrics }

// MetricsAddr returns the address the metrics are served at ("" if not).
func (d *Daemon) MetricsAddr() string { return d.metricsAddr }

// Topology returns the devices the daemon found in the overlay namespace.
func (d *Daemon) Topology() Topology { return d.topo }

// Close stops serving metrics and releases the monitor, the socket, the
// namespace and the store.
func (d *Daemon) Close() error {
	if d.stopMetrics != nil {
		d.stopMetrics()
		d.stopMetrics = nil
	}
	if d.closeWake != nil {
		d.closeWake()
		d.closeWake = nil
	}
	d.k.close()
	d.k = kernelSide{}
	defer func() {
		if d.unlock != nil {
			d.unlock()
			d.unlock = nil
		}
	}()
	if d.store != nil {
		err := d.store.Close()
		d.store = nil
		return err
	}
	return nil
}

// kernelSide is what the daemon holds in the overlay namespace.
type kernelSide struct {
	conn    *rtnl.Conn
	dump    *rtnl.Conn // reconcile's dumps (nil: conn)
	mon     monitor
	closeFn func()
	// capture, if set, opens the capture of the requests transmitted to
	// the vxlan device with the given ifindex (see package wake).
	capture func(vxlan int32) (wake.Link, error)
	// guard is true for the real kernel: the daemon installs the VTEP
	// allowlist and anti-spoofing rules (see startGuard).
	guard bool
	// alive, if set, reports the overlay namespace gone from its path or
	// replaced there.
	alive func() error
}

func (k kernelSide) close() {
	if k.closeFn != nil {
		k.closeFn()
	}
}

// monitor is what the daemon needs of an *rtnl.Monitor.
type monitor interface {
	resolver.EventSource
	Stats() rtnl.MonitorStats
	ReceiveBuffer() int
}

// kernelOpener opens the daemon's kernel side: the system's, or a fake one
// in unit tests.
type kernelOpener interface {
	open(netnsDir, netns string, rcvbuf int) (kernelSide, error)
}

// releaseStartup returns start-up's transient memory to the operating
// system once the resolver has programmed and checked the feed's first
// listing (resolver.Resolver.Settled): the listing's decoded pages and the
// growth of the tracking leave some megabytes of freed heap at 100,000
// endpoints, which the runtime's background scavenger would return only
// over the following tens of seconds, while the heap the daemon keeps
// (the records, pointer-free) stays far below it. Once, not periodically:
// at rest the runtime keeps the heap near its GOGC goal by itself.
func (d *Daemon) releaseStartup(ctx context.Context) {
	select {
	case <-d.res.Settled():
		debug.FreeOSMemory()
		d.log.Debug("start-up memory returned to the system")
	case <-ctx.Done():
	}
}
