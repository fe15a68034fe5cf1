package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/overlaynet/overlaynet/overlay"
	daemonlib "github.com/overlaynet/overlaynet/overlay/daemon"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/resolver"
)

func init() {
	register(&command{
		name:     "run",
		summary:  "the miss resolver daemon: answer the vxlan's L2/L3 misses from the store (foreground)",
		synopsis: runSynopsis,
		run:      runRun,
	})
}

const runSynopsis = "run [--mode hybrid|proactive|reactive] [--proactive-max N] [--metrics ADDR] [--reconcile 10s] [--negative-ttl 3s] [--lookup-rate 2000] [--workers 4] [--batch-window 0s] [--rcvbuf BYTES] [--create [create's flags]] [--owner-daemonset NAMESPACE/NAME]"

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
are updated and removed ones deleted within that interval. Logs: warnings,
reconcile changes and a summary of the misses per --reconcile interval at
info; one line per miss and per resolution at debug.

A miss is programmed as soon as its lookup returns (changes that become ready
while the kernel applies a batch go in the next one). When the lookups fall
behind, the daemon stops reading notifications (they wait in the --rcvbuf
socket buffer) rather than drop any; after a buffer overrun it resyncs.
--lookup-rate bounds only lookups of addresses the store did not list (a
subnet scan); misses beyond it are dropped and counted in
overlayd_misses_dropped_total{reason="scan_budget"}.

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
from the vxlan device itself, and stops, exiting 1, when the overlay
disappears while it runs (its namespace deleted or replaced, its vxlan or its
state in --state-dir gone: a reset by hand).

At start and every --reconcile interval it sweeps the node: attaches,
detaches and CNI ADDs killed half-way are undone or finished, and what
nothing owns is removed (ve-* veths and port rules of no endpoint, addresses
and blocks allocated to none, --store records at this node's VTEP that no
endpoint holds, checked at start and every 5 minutes, temporary files),
never beside an operation under way. Each removal is logged and counted in
overlayd_leaks_removed_total{kind}.

On an etcd store the daemon holds a lease (?ttl=10s in the URL) and
registers this node's endpoints (from --state-dir) again under it, as well
as endpoints attached later: when the daemon dies, they stop being
advertised one TTL later and the other nodes remove their entries.

The daemon also keeps the overlay's protections (see create): it installs the
VTEP allowlist in this namespace (nftables table inet overlaynet-guard) with
the underlay address of every node the store knows, and keeps it in line with
the store (etcd: at every change of its feed, and its live nodes; directory
store: at once for changes made on this machine, through inotify, and by
checking its directories 4 times a second for other machines' changes), and
it puts back the anti-spoofing rules of this node's endpoints if they were lost. Both
stay in place while the daemon is stopped and are found unchanged by the next
start; reset removes them. Drops are counted by reason in the metrics
(overlayd_guard_drops_total).

--create builds the overlay first, as 'overlayd create' with the same flags
(--vni, --port, --mtu, --gateway, --local, ...) does: idempotent, so that one
long-lived process a container runs both builds the overlay and serves it.

In Kubernetes (--store kube:KUBECONFIG, or kube: in a pod: its service
account), the store is the cluster's Node objects (one list and watch of Nodes):
the daemon annotates its own Node (--node-name, NODE_NAME) with its VTEP and
the overlay's network (nodes/status), refuses to run when another Node runs
another overlay, answers every miss from the Nodes' podCIDRs in memory,
records this node's podCIDR in --state-dir for the CNI plugin, and once
ready (--metrics ADDR/readyz) sets to False the Node's condition saying its
network is not up. --owner-daemonset NAMESPACE/NAME names the DaemonSet that runs it: when
the daemon stops because that DaemonSet is being deleted (kubectl delete -f),
it removes what the DaemonSet installed on this node (the overlay, its rules,
the CNI plugin and conflist 'install-cni' recorded, the state) before it
exits; a restart or an update leaves everything in place.

The metrics server also answers /healthz (200 while the daemon serves) and
/readyz (200 once the overlay is up, the store's feed synced and the store
serves this node; 503 with the reason otherwise).

Memory: the daemon's garbage collector runs at GOGC=25 unless the GOGC
environment variable says otherwise (the Go default is 100): its heap is
mostly the records it follows (100,000 remote endpoints: 9-10 MB live),
in maps the collector does not scan, which this keeps at about 1.25x instead
of 2x for a small cost in CPU when records change. GOMEMLIMIT is honoured as
usual.`

// DefaultGOGC is the garbage collector's target of overlayd run when the
// GOGC environment variable is not set: the daemon's heap is mostly the
// records it follows, long-lived and pointer-free (the collector marks
// them without scanning them), so a lower target than Go's 100 costs
// little CPU and saves a third of its memory at 100,000 remote endpoints
// (BenchmarkStartup100k: the default; BenchmarkStartup100kGOGC10 and
// BenchmarkStartup100kGOGC100 beside it, BenchmarkChurn100kGOGC10 beside
// BenchmarkChurn100k for the CPU while records change: 10 saves about
// 1 MiB at 100,000 endpoints and costs a third more CPU in churn).
const DefaultGOGC = 25

// setGC applies DefaultGOGC unless GOGC is set in the environment.
func setGC(log *slog.Logger) {
	if v, ok := os.LookupEnv("GOGC"); ok {
		log.Debug("GOGC from the environment", "gogc", v)
		return
	}
	debug.SetGCPercent(DefaultGOGC)
}

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
	create      bool
	owner       string
}

// bind declares the flags, their defaults those of resolver.DefaultTuning
// and resolver.DefaultMonitorConfig: the library holds the defaults, and
// TestRunDefaultsAreTheLibrarys checks it.
func (o *runOptions) bind(fs *flag.FlagSet) {
	def := resolver.DefaultTuning()
	fs.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9477; an unspecified host such as :9477 serves every address of the node, containers included through egress, and is warned about); empty: off")
	fs.DurationVar(&o.reconcile, "reconcile", def.ReconcileInterval, "interval of the pass that checks programmed entries against the store")
	fs.DurationVar(&o.negativeTTL, "negative-ttl", def.NegativeTTL, "how long an address unknown to the store is not looked up again")
	fs.Float64Var(&o.lookupRate, "lookup-rate", def.LookupRate, "scan budget: most store lookups per second for addresses (and MACs) the store did not list at the last reconcile pass; misses for listed ones are never limited")
	fs.IntVar(&o.workers, "workers", def.Workers, "concurrent store lookups")
	fs.DurationVar(&o.batchWindow, "batch-window", def.BatchWindow, "how long a batch of kernel changes waits for more (0: none; a batch holds what became ready while the previous one was applied)")
	fs.StringVar(&o.mode, "mode", "", "reactive, proactive or hybrid (default: hybrid when --store has a change feed, as etcd does; reactive otherwise)")
	fs.IntVar(&o.maxProact, "proactive-max", 0, "budget: most records programmed from the change feed, the rest resolved on misses (0: none, every remote record is programmed)")
	fs.IntVar(&o.rcvbuf, "rcvbuf", resolver.DefaultMonitorConfig(nil).ReceiveBuffer, "netlink receive buffer for notifications, bytes (forced; the kernel doubles it)")
	fs.BoolVar(&o.create, "create", false, "build the overlay first, as create does with the same flags (idempotent): one process builds and serves it")
	fs.StringVar(&o.owner, "owner-daemonset", "", "NAMESPACE/NAME of the DaemonSet running this daemon (kube: store): when it is deleted, remove what it installed on this node as the daemon stops")
}

// tuning is the library's default tuning with the flags' values: the
// tuning of the resolver `overlayd run` starts (--mode is checked).
func (o *runOptions) tuning() resolver.Tuning {
	t := resolver.DefaultTuning()
	t.Workers, t.LookupRate, t.NegativeTTL = o.workers, o.lookupRate, o.negativeTTL
	t.BatchWindow, t.ReconcileInterval = o.batchWindow, o.reconcile
	t.Mode, _ = resolver.ParseMode(o.mode)
	t.ProactiveMax = o.maxProact
	return t
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
	var cf createFlags
	cf.bind(fs)
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
	create, err := o.createConfig(fs, &cf)
	if err != nil {
		return err
	}
	if err := encryptStore(e.global.store, create); err != nil {
		return err
	}
	log, err := e.global.logger(e.stderr)
	if err != nil {
		return err
	}
	// An encrypted create claims its tunnel address in the store.
	var so *registry.Options
	if create != nil && create.Encrypt != nil {
		so = &registry.Options{VNI: create.VNI}
	}
	n, done, err := e.openNode(ctx, so)
	if err != nil {
		return err
	}
	defer done()
	setGC(log)
	owner, err := watchOwner(ctx, e, o.owner, log)
	if err != nil {
		return err
	}
	err = daemonlib.Run(ctx, daemonlib.Config{
		Node: n, Store: e.global.store, MetricsAddr: o.metrics, ReceiveBuffer: o.rcvbuf, Logger: log,
		Resolver: o.tuning(), Create: create, NodeName: e.global.nodeName,
	})
	if owner != nil && ctx.Err() != nil && owner.deleted(log) {
		return errors.Join(runFlagError(err), uninstall(e, log))
	}
	if errors.Is(err, daemonlib.ErrNoFeed) {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return runFlagError(err)
}

// createConfig returns the overlay --create builds (nil without --create);
// create's flags without --create are a usage error.
func (o *runOptions) createConfig(fs *flag.FlagSet, cf *createFlags) (*overlay.Config, error) {
	if !o.create {
		probe := flag.NewFlagSet("", flag.ContinueOnError)
		new(createFlags).bind(probe)
		var given []string
		fs.Visit(func(f *flag.Flag) {
			if probe.Lookup(f.Name) != nil {
				given = append(given, "--"+f.Name)
			}
		})
		if len(given) > 0 {
			return nil, fmt.Errorf("%w: %s: create's flags need --create", errUsage, strings.Join(given, ", "))
		}
		return nil, nil
	}
	cfg, err := cf.config()
	if err != nil {
		return nil, err
	}
	return &cfg, nil
}

// runFlagError names the flag of the daemon setting err is about, if it
// is about one: --store, --state-dir or --metrics.
func runFlagError(err error) error {
	var se *daemonlib.SettingError
	if !errors.As(err, &se) {
		return err
	}
	var flag string
	switch se.Setting {
	case daemonlib.SettingStore:
		flag = "--store"
	case daemonlib.SettingStateDir:
		flag = "--state-dir"
	case daemonlib.SettingMetricsAddr:
		flag = "--metrics"
	default:
		return err
	}
	if se.Value != "" {
		flag += " " + se.Value
	}
	return fmt.Errorf("%s: %w", flag, se.Err)
}
