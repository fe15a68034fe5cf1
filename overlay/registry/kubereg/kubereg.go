package kubereg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/overlaynet/overlaynet/internal/promtext"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/kubereg/internal/kubeapi"
)

// DefaultSyncTimeout bounds how long Open waits for the first complete
// list of Nodes.
const DefaultSyncTimeout = 2 * time.Minute

// Options say how to reach the API server and which node this is.
type Options struct {
	// Kubeconfig is a kubeconfig file; empty: the in-cluster service
	// account (a DaemonSet's pod).
	Kubeconfig string
	// NodeName is this node's Node (the DaemonSet passes spec.nodeName).
	NodeName string
	// VTEP is this node's underlay address, published by PublishNetwork.
	VTEP netip.Addr
	// StateDir, if set, is where this node's state is recorded for the
	// node's processes without API credentials (package kubenode).
	StateDir string
	// SyncTimeout bounds the wait for the first list of Nodes
	// (DefaultSyncTimeout when zero).
	SyncTimeout time.Duration
	// Logger receives the registry's events; nil discards.
	Logger *slog.Logger
}

// Registry is the Kubernetes store of a node daemon (see the package doc).
type Registry struct {
	opts Options
	log  *slog.Logger
	kc   *kubeapi.Client
	stop context.CancelFunc // ends the watch of Nodes and the feeds
	done context.Context    // ended by Close

	mu        sync.RWMutex
	nodes     map[string]nodeInfo         // every Node, as parsed
	states    map[string]NodeState        // every Node's final state
	spans     map[string]registry.Span    // the spans in the feed, by node
	index     *registry.Spans             // spans, for lookups by address
	subs      map[*subscriber]struct{}    // the feeds
	ours      registry.Network            // published by PublishNetwork
	published bool                        // this node's annotations sent
	announced bool                        // the node's network announced up
	rev       int64                       // bumped at each change of the spans
	recorded  string                      // the state last written for kubenode
	synced    atomic.Bool                 // the first list is in
	listed    atomic.Bool                 // the watch of Nodes delivered its first list
	lastErr   atomic.Pointer[errorHolder] // the last failed list or watch of Nodes
	stats     [nodeStates]int             // nodes by state, for metrics
	// memberSubs are the member watchers (WatchMembers).
	memberSubs map[chan struct{}]struct{}
}

type errorHolder struct{ err error }

var (
	_ registry.Registry       = (*Registry)(nil)
	_ registry.ChangeFeed     = (*Registry)(nil)
	_ registry.NetworkStore   = (*Registry)(nil)
	_ registry.AssignedBlocks = (*Registry)(nil)
	_ registry.Readier        = (*Registry)(nil)
	_ registry.Announcer      = (*Registry)(nil)
	_ registry.Exporter       = (*Registry)(nil)
)

// Opener is the registry.Opener of the kube scheme for the node daemon
// (kube:KUBECONFIG, or kube: for the in-cluster service account): Open
// with o's node name, state directory and lease VTEP. The processes of a
// node without a lease open package kubenode's view instead (package
// stores decides).
func Opener(ctx context.Context, url string, o registry.Options) (registry.Registry, error) {
	path, ok := strings.CutPrefix(url, "kube:")
	if !ok || strings.HasPrefix(path, "//") {
		return nil, registry.BadURL(fmt.Errorf("kubereg: store URL %q: want kube:KUBECONFIG, or kube: for the in-cluster service account", registry.RedactURL(url)))
	}
	opts := Options{Kubeconfig: path, NodeName: o.NodeName, StateDir: o.StateDir, Logger: o.Logger}
	if o.Lease != nil {
		opts.VTEP = o.Lease.VTEP
	}
	r, err := Open(ctx, opts)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Open connects to the API server, starts the list and watch of Nodes and
// returns once it has listed them all (bounded by ctx and SyncTimeout,
// logging its progress) and found this node's Node.
func Open(ctx context.Context, o Options) (*Registry, error) {
	if o.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("kubereg: no node name, and the host name is unknown: %w", err)
		}
		o.NodeName = h
	}
	if o.SyncTimeout <= 0 {
		o.SyncTimeout = DefaultSyncTimeout
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kc, err := newClient(o.Kubeconfig, o.NodeName)
	if err != nil {
		return nil, err
	}
	done, stop := context.WithCancel(context.Background())
	r := &Registry{opts: o, log: log.With("store", "kube"), kc: kc, stop: stop, done: done,
		nodes: map[string]nodeInfo{}, spans: map[string]registry.Span{}, index: registry.NewSpans(), subs: map[*subscriber]struct{}{}}
	if err := r.startWatch(ctx); err != nil {
		stop()
		return nil, err
	}
	r.mu.Lock()
	r.recomputeLocked(false)
	_, own := r.nodes[o.NodeName]
	n, spans := len(r.nodes), len(r.spans)
	r.mu.Unlock()
	r.log.Info("Nodes followed", "nodes", n, "spans", spans, "skipped", n-spans)
	if !own {
		stop()
		return nil, fmt.Errorf("kubereg: no Node named %q among the %d Nodes: the node name (--node-name, NODE_NAME; the DaemonSet passes spec.nodeName) must be this machine's Node", o.NodeName, n)
	}
	return r, nil
}

// startWatch runs the list and watch of Nodes and waits for its first
// list.
func (r *Registry) startWatch(ctx context.Context) error {
	go r.kc.WatchNodes(r.done, kubeapi.NodeHandler{
		Event:  r.onNode,
		Synced: func() { r.listed.Store(true) },
		Error: func(err error) {
			r.lastErr.Store(&errorHolder{err})
			r.log.Warn("listing or watching Nodes failed; retrying", "err", err)
		},
		Relist: func(err error) { r.log.Info("the watch of Nodes is too old; listing them again", "err", err) },
	})
	return r.awaitSync(ctx, r.listed.Load)
}

// awaitSync waits until synced reports the first list handled, logging
// progress every few seconds; it fails after SyncTimeout with the
// last error of the list.
func (r *Registry) awaitSync(ctx context.Context, synced func() bool) error {
	began := time.Now()
	deadline := time.NewTimer(r.opts.SyncTimeout)
	defer deadline.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	lastLog := began
	for !synced() {
		select {
		case <-ctx.Done():
			return registry.Unavailable(fmt.Errorf("kubereg: listing Nodes: %w%s", ctx.Err(), r.lastErrText()))
		case <-deadline.C:
			return registry.Unavailable(fmt.Errorf("kubereg: the Node list did not sync within %v%s", r.opts.SyncTimeout, r.lastErrText()))
		case <-poll.C:
		}
		if time.Since(lastLog) >= 5*time.Second {
			lastLog = time.Now()
			r.mu.RLock()
			n := len(r.nodes)
			r.mu.RUnlock()
			r.log.Info("waiting for the Node list", "nodes_so_far", n, "waited", time.Since(began).Round(time.Second), "last_error", r.lastErrText())
		}
	}
	r.synced.Store(true)
	r.mu.RLock()
	n := len(r.nodes)
	r.mu.RUnlock()
	r.log.Info("Node list synced", "nodes", n, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

func (r *Registry) lastErrText() string {
	if h := r.lastErr.Load(); h != nil {
		return ": " + h.err.Error()
	}
	return ""
}

// onNode takes one event of the watch of Nodes: the Node parsed, and once
// the first list is in, the spans recomputed and their changes delivered.
func (r *Registry) onNode(n *nodeObject, deleted bool) {
	ni := parseNode(n)
	r.mu.Lock()
	old, had := r.nodes[n.Name]
	r.signalMembersLocked(old, had, ni, deleted)
	switch {
	case deleted:
		delete(r.nodes, n.Name)
	case had && old.same(ni):
		r.mu.Unlock()
		return // a heartbeat: nothing overlaynet reads changed
	default:
		r.nodes[n.Name] = ni
	}
	if !r.synced.Load() {
		r.mu.Unlock()
		return
	}
	r.recomputeLocked(true)
	r.mu.Unlock()
	if n.Name == r.opts.NodeName {
		r.recordState()
	}
}

// recomputeLocked decides the spans again and queues their changes to
// every feed: the Deletes first, so that a span that moved is a Delete and
// a Put; with logEach, each change is logged (not the first time: a line
// per Node). The caller holds mu.
func (r *Registry) recomputeLocked(logEach bool) {
	states, spans := effective(r.nodes, r.ours)
	var changes []registry.Change
	for name, old := range r.spans {
		if s, ok := spans[name]; !ok || s != old {
			changes = append(changes, registry.Change{Kind: registry.ChangeDelete, Span: old})
		}
	}
	for name, s := range spans {
		if old, ok := r.spans[name]; !ok || old != s {
			changes = append(changes, registry.Change{Kind: registry.ChangePut, Span: s})
		}
	}
	r.states, r.spans = states, spans
	r.stats = [nodeStates]int{}
	for _, st := range states {
		r.stats[st]++
	}
	if len(changes) == 0 {
		return
	}
	r.rev++
	for i := range changes {
		changes[i].Revision = r.rev
	}
	r.index = registry.NewSpans()
	for _, s := range spans {
		r.index.Put(s)
	}
	for sub := range r.subs {
		sub.queue = append(sub.queue, changes...)
		sub.signal()
	}
	for _, c := range changes {
		if logEach {
			r.log.Info("node span "+c.Kind.String(), "node", c.Span.Node, "podcidr", c.Span.Prefix, "vtep", c.Span.VTEP)
		}
	}
}

// Close stops the watch of Nodes and ends the change feeds.
func (r *Registry) Close() error {
	r.stop()
	return nil
}

// WriteMetrics writes overlayd_kube_nodes: the Nodes by state (ok: their
// span is followed; else why it is skipped), in the Prometheus text format.
func (r *Registry) WriteMetrics(w io.Writer) {
	states := r.NodeStates()
	promtext.Family(w, "overlayd_kube_nodes", "gauge", "Nodes by state: ok (the node's podCIDR is followed at its VTEP) or why it is skipped.",
		"state", int(nodeStates), func(i int) (string, uint64) { st := NodeState(i).String(); return st, uint64(states[st]) })
}

// NodeStates returns how many Nodes are in each state (see NodeState), by
// its name.
func (r *Registry) NodeStates() map[string]int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string]int, nodeStates)
	for st := range nodeStates {
		out[st.String()] = r.stats[st]
	}
	return out
}

// errNotSynced is returned by calls that need the Node list before it is in.
var errNotSynced = errors.New("kubereg: the Node list has not synced yet")
