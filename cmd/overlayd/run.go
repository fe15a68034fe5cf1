package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/resolver"
	"github.com/overlaynet/overlaynet/rtnl"
)

func init() {
	register(&command{
		name:     "run",
		summary:  "the miss resolver daemon: answer the vxlan's L2/L3 misses from the store (foreground)",
		synopsis: runSynopsis,
		run:      runRun,
	})
}

const runSynopsis = "run [--mode hybrid|proactive|reactive] [--proactive-max N] [--metrics ADDR] [--reconcile 10s] [--negative-ttl 3s] [--lookup-rate 2000] [--workers 4] [--batch-window 2ms] [--rcvbuf BYTES]"

const runHelp = `
Runs this node's miss resolver in the foreground until SIGINT or SIGTERM: it
listens to the overlay namespace's neighbour notifications, answers each L3
miss (who has IP?) with a PERMANENT neighbour entry IP -> MAC plus the FDB
entry MAC -> VTEP, in one batch, and each L2 miss (where is MAC?) with the FDB
entry, looked up in --store. It needs 'overlayd create' first (the overlay is
read from --state-dir). Entries it programs are marked (neighbours with
protocol 214, FDB entries extern_learn): a restarted daemon adopts them and
flushes nothing. Every --reconcile interval (and after a notification
overrun) programmed entries are checked against the store: moved containers
are updated and removed ones deleted within that interval. Logs: one line
per resolution at info, one per miss at debug.

--mode: reactive programs entries only in answer to misses (the only mode of
the directory store); proactive programs every remote container of the
store's change feed (etcd) before any packet needs it; hybrid (the default
when the store has a change feed) does both, misses being the safety net.
Every remote record is programmed by default: PERMANENT neighbour entries and
vxlan FDB entries are not limited by the neighbour table's gc_thresh3. An
operator may set a budget, --proactive-max N: records beyond it are resolved
on misses (in proactive mode too); crossing it is logged once and exported
as overlayd_proactive_left_to_misses.

It refuses to start when the overlay in --state-dir differs from the network
recorded in --store (VNI, port, MTU, gateway; each difference is named) or
from the vxlan device itself.

On an etcd store the daemon holds a lease (?ttl=10s in the URL) and
registers this node's endpoints (from --state-dir) again under it, as well
as endpoints attached later: when the daemon dies, they stop being
advertised one TTL later and the other nodes remove their entries.`

// runOptions are the flags of overlayd run.
type runOptions struct {
	metrics     string
	reconcile   time.Duration
	negativeTTL time.Duration
	lookupRate  float64
	workers     int
	batchWindow time.Duration
	rcvbuf      int
	mode        string
	maxProact   int
}

func (o *runOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9477); empty: off")
	fs.DurationVar(&o.reconcile, "reconcile", resolver.DefaultReconcileInterval, "interval of the pass that checks programmed entries against the store")
	fs.DurationVar(&o.negativeTTL, "negative-ttl", resolver.DefaultNegativeTTL, "how long an address unknown to the store is not looked up again")
	fs.Float64Var(&o.lookupRate, "lookup-rate", resolver.DefaultLookupRate, "most store lookups per second (a subnet scan cannot flood the store)")
	fs.IntVar(&o.workers, "workers", resolver.DefaultResolverWorkers, "concurrent store lookups")
	fs.DurationVar(&o.batchWindow, "batch-window", resolver.DefaultBatchWindow, "how long to gather kernel changes into one batch")
	fs.StringVar(&o.mode, "mode", "", "reactive, proactive or hybrid (default: hybrid when --store has a change feed, as etcd does; reactive otherwise)")
	fs.IntVar(&o.maxProact, "proactive-max", 0, "budget: most records programmed from the change feed, the rest resolved on misses (0: none, every remote record is programmed)")
	fs.IntVar(&o.rcvbuf, "rcvbuf", rtnl.DefaultMonitorReceiveBuffer, "netlink receive buffer for notifications, bytes (forced; the kernel doubles it)")
}

func (o *runOptions) check() error {
	switch {
	case o.reconcile <= 0:
		return fmt.Errorf("%w: --reconcile %v must be positive", errUsage, o.reconcile)
	case o.negativeTTL < 0:
		return fmt.Errorf("%w: --negative-ttl %v is negative", errUsage, o.negativeTTL)
	case o.lookupRate <= 0:
		return fmt.Errorf("%w: --lookup-rate %v must be positive", errUsage, o.lookupRate)
	case o.workers < 1:
		return fmt.Errorf("%w: --workers %d must be at least 1", errUsage, o.workers)
	case o.batchWindow < 0:
		return fmt.Errorf("%w: --batch-window %v is negative", errUsage, o.batchWindow)
	case o.rcvbuf < 0:
		return fmt.Errorf("%w: --rcvbuf %d is negative", errUsage, o.rcvbuf)
	case o.maxProact < 0:
		return fmt.Errorf("%w: --proactive-max %d is negative", errUsage, o.maxProact)
	}
	if _, err := resolver.ParseMode(o.mode); err != nil || o.mode == "auto" {
		return fmt.Errorf("%w: --mode %q: want reactive, proactive or hybrid", errUsage, o.mode)
	}
	return nil
}

func runRun(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	setUsage(fs, runSynopsis, runHelp)
	var o runOptions
	o.bind(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, pos)
	}
	if err := o.check(); err != nil {
		return err
	}
	log, err := e.global.logger(e.stderr)
	if err != nil {
		return err
	}
	n, done, err := e.node(false)
	if err != nil {
		return err
	}
	defer done()
	ov, err := n.Overlay()
	if err != nil {
		return err
	}
	mode, _ := resolver.ParseMode(o.mode)
	reg, err := openRunStore(ctx, e.global.store, n, ov, log)
	if err != nil {
		return fmt.Errorf("--store: %w", err)
	}
	defer reg.Close()
	// The state dir's overlay must be the one every node agreed on.
	if err := overlay.PublishNetwork(ctx, reg.Registry, ov.Config); err != nil {
		return fmt.Errorf("--state-dir %s: %w", n.StateDir(), err)
	}
	feed, hasFeed := reg.Registry.(registry.ChangeFeed)
	if !hasFeed {
		feed = nil
		if mode == resolver.ModeProactive || mode == resolver.ModeHybrid {
			return fmt.Errorf("%w: --mode %s needs a store with a change feed (etcd://...); %s has none", errUsage, mode, registry.RedactURL(e.global.store))
		}
	}

	cfg := ov.Config
	ns, err := rtnl.OpenNamedNetNS(e.global.netnsDir, cfg.OverlayNetNS)
	if err != nil {
		return fmt.Errorf("overlay netns %q: %w", cfg.OverlayNetNS, err)
	}
	defer ns.Close()
	conn, err := rtnl.Dial(&rtnl.Config{NetNS: ns})
	if err != nil {
		return err
	}
	defer conn.Close()
	vx, err := conn.LinkByName(cfg.Vxlan)
	if err != nil {
		return fmt.Errorf("vxlan %q in netns %s: %w", cfg.Vxlan, cfg.OverlayNetNS, err)
	}
	vni, port := cfg.VNI, cfg.Port
	if vx.Info != nil && vx.Info.Vxlan != nil {
		vi := vx.Info.Vxlan
		vni, port = vi.ID, vi.Port
		if vni != cfg.VNI || port != cfg.Port {
			return fmt.Errorf("vxlan %s in netns %s has VNI %d port %d, --state-dir %s records VNI %d port %d: run create again (or reset)",
				cfg.Vxlan, cfg.OverlayNetNS, vni, port, n.StateDir(), cfg.VNI, cfg.Port)
		}
		if !vi.Proxy || !vi.L3Miss || !vi.L2Miss {
			log.Warn("vxlan lacks proxy/l2miss/l3miss: some misses will never be raised",
				"vxlan", cfg.Vxlan, "proxy", vi.Proxy, "l2miss", vi.L2Miss, "l3miss", vi.L3Miss)
		}
	} else {
		return fmt.Errorf("%s in netns %s is not a vxlan device (kind %q)", cfg.Vxlan, cfg.OverlayNetNS, vx.Kind())
	}
	var bridge int32
	if br, err := conn.LinkByName(cfg.Bridge); err == nil {
		bridge = br.Index
	}
	// The resolver consumes misses only: a socket filter drops, in the kernel,
	// the echoes of the entries it programs (two per resolved address).
	mon, err := rtnl.NewMonitor(rtnl.MonitorConfig{NetNS: ns, ReceiveBuffer: o.rcvbuf, MissesOnly: true})
	if err != nil {
		return err
	}
	defer mon.Close()

	metrics := &resolver.Metrics{}
	metrics.AddCollector(resolver.MonitorCollector(mon.Stats))
	if reg.lease != nil {
		metrics.AddCollector(reg.lease.collector())
	}
	maxProact := o.maxProact
	r, err := resolver.NewResolver(resolver.ResolverConfig{
		Conn: conn, Registry: reg, Vxlan: vx.Index, Bridge: bridge, VNI: vni, Port: port,
		Subnet: cfg.Subnet(), LocalVTEP: ov.VTEP, Logger: log, Metrics: metrics,
		Workers: o.workers, LookupRate: o.lookupRate, NegativeTTL: o.negativeTTL,
		BatchWindow: batchWindowFlag(o.batchWindow), ReconcileInterval: o.reconcile,
		Feed: feed, Mode: mode, ProactiveMax: maxProact,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.metrics != "" {
		stop, addr, err := serveMetrics(ctx, o.metrics, metrics, log)
		if err != nil {
			return err
		}
		defer stop()
		log.Info("metrics", "url", "http://"+addr+"/metrics")
	}
	if reg.lease != nil {
		go reg.lease.adoptLocal(ctx, n, ov.VTEP, log)
	}
	log.Info("overlayd running", "mode", r.Mode(), "proactive_max", maxProact, "netns", cfg.OverlayNetNS, "vxlan", cfg.Vxlan, "ifindex", vx.Index,
		"vni", vni, "port", port, "subnet", cfg.Subnet(), "vtep", ov.VTEP, "store", registry.RedactURL(e.global.store),
		"reconcile", o.reconcile, "rcvbuf", mon.ReceiveBuffer())
	err = r.Serve(ctx, mon)
	st := metrics.Snapshot()
	log.Info("overlayd stopped", "misses_l3", st.Misses["l3miss"], "misses_l2", st.Misses["l2miss"],
		"resolved_l3", st.Resolutions["l3miss"], "resolved_l2", st.Resolutions["l2miss"], "overruns", st.Overruns)
	return err
}

// batchWindowFlag maps --batch-window 0 ("do not wait") to the resolver's
// "no waiting" value (its 0 means the default).
func batchWindowFlag(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// metricsTimeouts bound every connection to the metrics server: a client
// that sends slowly, reads slowly or idles cannot hold a connection (and its
// goroutine and buffers) for long. A scrape is one small request and a
// response of a few kilobytes.
var metricsTimeouts = struct{ readHeader, read, write, idle time.Duration }{
	readHeader: 5 * time.Second,
	read:       10 * time.Second,
	write:      10 * time.Second,
	idle:       30 * time.Second,
}

// serveMetrics serves m at http://addr/metrics until ctx ends or stop is
// called; it returns the address it listens on.
func serveMetrics(ctx context.Context, addr string, m *resolver.Metrics, log *slog.Logger) (stop func(), bound string, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("--metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: metricsTimeouts.readHeader,
		ReadTimeout:       metricsTimeouts.read,
		WriteTimeout:      metricsTimeouts.write,
		IdleTimeout:       metricsTimeouts.idle,
		MaxHeaderBytes:    8 << 10,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	stop = func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}
	return stop, ln.Addr().String(), nil
}
