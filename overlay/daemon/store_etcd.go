//go:build !noetcd

package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"

	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/etcdreg"
)

// etcdLease is the leaseHolder of an etcd store.
type etcdLease struct{ reg *etcdreg.Registry }

// openEtcdStore opens an etcd store for the daemon, as OpenStore says.
func openEtcdStore(ctx context.Context, url string, n *overlay.Node, ov *overlay.Overlay, log *slog.Logger) (*Store, error) {
	reg, err := etcdreg.Open(ctx, url, etcdreg.Options{
		NodeVTEP: ov.VTEP,
		Logger:   log,
		Keep:     func(owned []registry.Record) []registry.Record { return localEndpoints(n, owned) },
	})
	if err != nil {
		return nil, err
	}
	moved, err := registerEndpoints(ctx, reg, n, log)
	if err != nil {
		reg.Close()
		return nil, err
	}
	st := reg.Stats()
	log.Info("etcd lease held", "lease", fmt.Sprintf("%x", st.LeaseID), "endpoints_registered", moved)
	return &Store{Registry: reg, lease: etcdLease{reg}}, nil
}

func (s etcdLease) adoptLocal(ctx context.Context, n *overlay.Node, vtep netip.Addr, log *slog.Logger) {
	adoptLocal(ctx, s.reg, s.reg.Owned, n, vtep, adoptInterval, log.With("store", "etcd"))
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
