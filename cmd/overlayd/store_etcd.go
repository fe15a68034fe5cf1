//go:build !noetcd

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/etcdreg"
)

// The etcd schemes of --store. One-shot commands (attach, detach, reset,
// status) open etcd without a lease: their records persist with no daemon,
// as in the directory store. `overlayd run` opens it itself (openRunStore)
// with a lease, and moves this node's records onto it.
func init() {
	for _, scheme := range []string{"etcd", "etcds"} {
		registry.RegisterScheme(scheme, etcdreg.Opener(etcdreg.Options{NoLease: true}))
	}
}

// etcdLease is the leaseHolder of an etcd store.
type etcdLease struct{ reg *etcdreg.Registry }

// openEtcdRunStore opens an etcd store for the daemon, as openRunStore says.
func openEtcdRunStore(ctx context.Context, url string, n *overlay.Node, ov *overlay.Overlay, log *slog.Logger) (*runStore, error) {
	reg, err := etcdreg.Open(ctx, url, etcdreg.Options{
		NodeVTEP: ov.VTEP,
		Logger:   log,
		Keep:     func(rec registry.Record) bool { return localEndpoint(n, rec) },
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
			if errors.Is(err, registry.ErrConflict) {
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
	return &runStore{Registry: reg, lease: etcdLease{reg}}, nil
}

// localEndpoint reports whether rec is an endpoint in n's state directory.
func localEndpoint(n *overlay.Node, rec registry.Record) bool {
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
func (s etcdLease) adoptLocal(ctx context.Context, n *overlay.Node, vtep netip.Addr, log *slog.Logger) {
	for ctx.Err() == nil {
		ch, err := s.reg.Watch(ctx)
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
			if c.Kind != registry.ChangePut || c.Record.VTEP != vtep || !localEndpoint(n, c.Record) {
				continue
			}
			if err := s.reg.Register(ctx, c.Record); err != nil {
				log.Warn("etcd: cannot move a local record onto this node's lease", "record", c.Record.String(), "err", err)
				continue
			}
			log.Debug("local record on this node's lease", "record", c.Record.String())
		}
	}
}

// collector exports the etcd lease counters.
func (s etcdLease) collector() func(io.Writer) {
	return func(w io.Writer) {
		st := s.reg.Stats()
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
