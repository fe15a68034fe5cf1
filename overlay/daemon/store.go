package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/registry"
	_ "github.com/overlaynet/overlaynet/overlay/registry/dirstore" // the dir: scheme
)

// IsEtcdStore reports whether store is an etcd URL.
func IsEtcdStore(store string) bool {
	return strings.HasPrefix(store, "etcd://") || strings.HasPrefix(store, "etcds://")
}

// StoreURL returns store with, for an etcd URL that names no vni, the VNI
// of the overlay recorded in stateDir added, so that every command of a node
// uses the keys of its own overlay. Other URLs, or no overlay yet, are
// returned unchanged (etcd's default VNI then applies).
func StoreURL(store, stateDir string) string {
	if !IsEtcdStore(store) {
		return store
	}
	ov, err := overlay.NewNode(overlay.NodeOptions{StateDir: stateDir}).Overlay()
	if err != nil {
		return store
	}
	return StoreURLVNI(store, ov.Config.VNI)
}

// StoreURLVNI returns store with vni added if it is an etcd URL naming no
// vni (create uses the VNI it is asked for: nothing is recorded yet).
func StoreURLVNI(store string, vniNum uint32) string {
	if !IsEtcdStore(store) {
		return store
	}
	base, query, _ := strings.Cut(store, "?")
	if q, err := url.ParseQuery(query); err != nil || q.Has("vni") {
		return store // a bad query is reported by the opener
	}
	vni := "vni=" + strconv.FormatUint(uint64(vniNum), 10)
	if query == "" {
		return base + "?" + vni
	}
	return base + "?" + query + "&" + vni
}

// Store is the daemon's registry and, for a store that holds this node's
// records on a lease (etcd), what the daemon does with the lease.
type Store struct {
	registry.Registry
	lease leaseHolder // nil for stores without leases
}

// leaseHolder is what a store that holds this node's records on a lease adds
// to the daemon: adopting later local attaches onto the lease, and metrics.
type leaseHolder interface {
	adoptLocal(ctx context.Context, n *overlay.Node, vtep netip.Addr, log *slog.Logger)
	collector() func(io.Writer)
}

// OpenStore opens the registry at url (see StoreURL) for the daemon. An etcd
// store gets a lease (kept alive until the store is closed: a node whose
// daemon dies stops being advertised one TTL later) and the node key
// nodes/<vtep>; the records of this node's endpoints (read from the state
// directory) are registered again, which moves them onto the lease. A
// record owned elsewhere is reported and skipped. Other stores are opened
// with registry.OpenRegistry.
func OpenStore(ctx context.Context, url string, n *overlay.Node, ov *overlay.Overlay, log *slog.Logger) (*Store, error) {
	if !IsEtcdStore(url) {
		reg, err := registry.OpenRegistry(url)
		if err != nil {
			return nil, err
		}
		return &Store{Registry: reg}, nil
	}
	return openEtcdStore(ctx, url, n, ov, log)
}

// registerEndpoints registers the records of n's endpoints in reg again (on
// a leased store, this moves them onto the lease). A record registered
// elsewhere (registry.ErrConflict) is logged and skipped; another failure
// is returned. It returns how many records were registered.
func registerEndpoints(ctx context.Context, reg registry.Registry, n *overlay.Node, log *slog.Logger) (int, error) {
	eps, err := n.Endpoints()
	if err != nil {
		log.Warn("reading this node's endpoints", "err", err)
	}
	moved := 0
	for _, ep := range eps {
		rec := ep.Record()
		if err := reg.Register(ctx, rec); err != nil {
			if errors.Is(err, registry.ErrConflict) {
				log.Error("endpoint's address is registered elsewhere; not advertising it", "endpoint", ep.Name, "record", rec.String(), "err", err)
				continue
			}
			return moved, fmt.Errorf("daemon: register endpoint %s: %w", ep.Name, err)
		}
		moved++
	}
	return moved, nil
}

// localEndpoints returns the records of recs that are endpoints in n's
// state directory (all of them when it cannot be read), reading it once.
func localEndpoints(n *overlay.Node, recs []registry.Record) []registry.Record {
	eps, err := n.Endpoints()
	if err != nil && len(eps) == 0 {
		return recs // cannot tell: keep advertising them
	}
	local := make(map[registry.Record]bool, len(eps))
	for _, ep := range eps {
		local[ep.Record()] = true
	}
	return slices.DeleteFunc(recs, func(rec registry.Record) bool { return !local[rec] })
}

// adoptInterval is how often the daemon looks for endpoints attached since
// it started, to move their records onto its lease.
const adoptInterval = time.Second

// adoptLocal registers in reg again the records of endpoints attached on
// this node (n, vtep) after the daemon started (attach writes them without
// a lease), which moves them onto the daemon's lease so that they vanish if
// this node dies. Every interval it compares the state directory's
// endpoints with owned (the records the lease holds), when the state
// directory's set of endpoints changed or a record was left unmoved: it
// reads the state directory, not a change feed, which would hold a second
// copy of every record of the overlay. A record that cannot be moved is
// logged once. It returns when ctx ends.
func adoptLocal(ctx context.Context, reg registry.Registry, owned func() []registry.Record, n *overlay.Node, vtep netip.Addr, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	failed := map[registry.Record]bool{}
	var seen time.Time // EndpointsChanged when last read
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed := n.EndpointsChanged()
		if changed.Equal(seen) && len(failed) == 0 {
			continue
		}
		seen = changed
		eps, err := n.Endpoints()
		if err != nil && len(eps) == 0 {
			continue
		}
		have := map[registry.Record]bool{}
		for _, rec := range owned() {
			have[rec] = true
		}
		for _, ep := range eps {
			rec := ep.Record()
			if have[rec] || rec.VTEP != vtep {
				continue
			}
			if err := reg.Register(ctx, rec); err != nil {
				if !failed[rec] && ctx.Err() == nil {
					log.Warn("cannot move a local record onto this node's lease", "record", rec.String(), "err", err)
				}
				failed[rec] = true
				continue
			}
			delete(failed, rec)
			log.Debug("local record on this node's lease", "record", rec.String())
		}
	}
}
