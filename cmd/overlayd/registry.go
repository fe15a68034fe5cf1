package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/etcdreg"
)

// The etcd schemes of --store. One-shot commands (attach, detach, reset,
// status) open etcd without a lease: their records persist with no daemon,
// as in the directory store. `overlayd run` opens it itself (openRunStore)
// with a lease, and moves this node's records onto it.
func init() {
	for _, scheme := range []string{"etcd", "etcds"} {
		overlay.RegisterScheme(scheme, etcdreg.Opener(etcdreg.Options{NoLease: true}))
	}
}

// isEtcdStore reports whether store is an etcd URL.
func isEtcdStore(store string) bool {
	return strings.HasPrefix(store, "etcd://") || strings.HasPrefix(store, "etcds://")
}

// storeURL returns store with, for an etcd URL that names no vni, the VNI
// of the overlay recorded in stateDir added, so that every command of a node
// uses the keys of its own overlay. Other URLs, or no overlay yet, are
// returned unchanged (etcd's default VNI then applies).
func storeURL(store, stateDir string) string {
	if !isEtcdStore(store) {
		return store
	}
	base, query, _ := strings.Cut(store, "?")
	if q, err := url.ParseQuery(query); err != nil || q.Has("vni") {
		return store // a bad query is reported by the opener
	}
	ov, err := overlay.NewNode(overlay.NodeOptions{StateDir: stateDir}).Overlay()
	if err != nil {
		return store
	}
	vni := "vni=" + strconv.FormatUint(uint64(ov.Config.VNI), 10)
	if query == "" {
		return base + "?" + vni
	}
	return base + "?" + query + "&" + vni
}

// runStore is the registry of `overlayd run` and what it needs beyond
// overlay.Registry.
type runStore struct {
	overlay.Registry
	etcd *etcdreg.Registry // nil for other stores
}

// openRunStore opens --store for the daemon. An etcd store gets a lease
// (kept alive until the daemon exits: a node whose daemon dies stops being
// advertised one TTL later) and the node key nodes/<vtep>; the records of
// this node's endpoints (read from the state directory) are registered
// again, which moves them onto the lease. A record owned elsewhere is
// reported and skipped.
func openRunStore(ctx context.Context, store string, n *overlay.Node, ov *overlay.Overlay, log *slog.Logger) (*runStore, error) {
	url := storeURL(store, n.StateDir())
	if !isEtcdStore(url) {
		reg, err := overlay.OpenRegistry(url)
		if err != nil {
			return nil, err
		}
		return &runStore{Registry: reg}, nil
	}
	reg, err := etcdreg.Open(ctx, url, etcdreg.Options{
		NodeVTEP: ov.VTEP,
		Logger:   log,
		Keep:     func(rec overlay.Record) bool { return localEndpoint(n, rec) },
	})
	if err != nil {
		return nil, err
	}
	eps, err := n.Endpoints()
	if err != nil {
		log.Warn("reading this node's endpoints", "err", err)
	}
	moved := 0
	for _, ep := range eps {
		rec := ep.Record()
		if err := reg.Register(ctx, rec); err != nil {
			if errors.Is(err, overlay.ErrConflict) {
				log.Error("endpoint's address is registered elsewhere; not advertising it", "endpoint", ep.Name, "record", rec.String(), "err", err)
				continue
			}
			reg.Close()
			return nil, fmt.Errorf("register endpoint %s: %w", ep.Name, err)
		}
		moved++
	}
	st := reg.Stats()
	log.Info("etcd lease held", "lease", fmt.Sprintf("%x", st.LeaseID), "endpoints_registered", moved)
	return &runStore{Registry: reg, etcd: reg}, nil
}

// localEndpoint reports whether rec is an endpoint in n's state directory.
func localEndpoint(n *overlay.Node, rec overlay.Record) bool {
	eps, err := n.Endpoints()
	if err != nil && len(eps) == 0 {
		return true // cannot tell: keep advertising it
	}
	for _, ep := range eps {
		if ep.Record() == rec {
			return true
		}
	}
	return false
}

// adoptLocal follows the etcd feed and moves onto the daemon's lease the
// records of endpoints attached on this node after it started (attach writes
// them without a lease), so that they vanish if this node dies. It returns
// when ctx ends.
func (s *runStore) adoptLocal(ctx context.Context, n *overlay.Node, vtep netip.Addr, log *slog.Logger) {
	for ctx.Err() == nil {
		ch, err := s.etcd.Watch(ctx)
		if err != nil {
			log.Warn("etcd: cannot watch for local attaches yet", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
			continue
		}
		for c := range ch {
			if c.Kind != overlay.ChangePut || c.Record.VTEP != vtep || !localEndpoint(n, c.Record) {
				continue
			}
			if err := s.etcd.Register(ctx, c.Record); err != nil {
				log.Warn("etcd: cannot move a local record onto this node's lease", "record", c.Record.String(), "err", err)
				continue
			}
			log.Debug("local record on this node's lease", "record", c.Record.String())
		}
	}
}

// etcdCollector exports the etcd lease counters.
func (s *runStore) etcdCollector() func(io.Writer) {
	return func(w io.Writer) {
		st := s.etcd.Stats()
		up := 0
		if st.LeaseUp {
			up = 1
		}
		fmt.Fprintf(w, "# HELP overlayd_etcd_lease_up 1 while this node's records are held by a live lease.\n# TYPE overlayd_etcd_lease_up gauge\noverlayd_etcd_lease_up %d\n", up)
		fmt.Fprintf(w, "# HELP overlayd_etcd_lease_lost_total etcd leases lost (expired, or etcd unreachable for the TTL).\n# TYPE overlayd_etcd_lease_lost_total counter\noverlayd_etcd_lease_lost_total %d\n", st.LeaseLost)
		fmt.Fprintf(w, "# HELP overlayd_etcd_reregistered_total Records registered again under a new lease.\n# TYPE overlayd_etcd_reregistered_total counter\noverlayd_etcd_reregistered_total %d\n", st.Reregistered)
		fmt.Fprintf(w, "# HELP overlayd_etcd_watch_relists_total Change feed listings after the first (compaction, broken watch).\n# TYPE overlayd_etcd_watch_relists_total counter\noverlayd_etcd_watch_relists_total %d\n", st.WatchRelists)
	}
}
