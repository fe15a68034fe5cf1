package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/overlaynet/overlaynet/internal/promtext"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// openStore opens the store at url for the daemon of node n (named node,
// for stores that know nodes by name), whose overlay is ov: registry.Open
// with schemes, for the overlay's VNI and with n's state directory, on a
// lease (a
// store that holds records on leases, etcd, keeps it alive until the store
// is closed and advertises the node: a node whose daemon dies stops being
// advertised one TTL later). On such a store (a registry.Leaser) the
// records of this node's endpoints (read from the state directory) are
// registered again, which moves them onto the lease; a record owned
// elsewhere is reported and skipped. A store where the node advertises
// itself (the directory store) gets the node's advertisement (advertise).
func openStore(ctx context.Context, url string, schemes map[string]registry.Opener, node string, n *overlay.Node, ov *overlay.Overlay, log *slog.Logger) (registry.Registry, error) {
	reg, err := registry.Open(ctx, url, registry.Options{
		Schemes:  schemes,
		VNI:      ov.Config.VNI,
		Logger:   log,
		StateDir: n.StateDir(),
		NodeName: node,
		Cache:    true,
		Lease: &registry.Lease{
			VTEP: ov.VTEP,
			Keep: func(owned []registry.Record) []registry.Record { return localEndpoints(n, owned) },
		},
	})
	if err != nil {
		return nil, err
	}
	advertise(ctx, reg, ov.VTEP, log)
	l, ok := reg.(registry.Leaser)
	if !ok {
		return reg, nil
	}
	moved, err := registerEndpoints(ctx, reg, n, log)
	if err != nil {
		reg.Close()
		return nil, err
	}
	log.Info("store lease held", "lease", fmt.Sprintf("%x", l.Stats().LeaseID), "endpoints_registered", moved)
	return reg, nil
}

// advertise advertises this node in a store where the node does so itself
// (a registry.NodeAdvertiser: the directory store), so that the other
// nodes' VTEP allowlists admit it before its first container's record
// reaches them. A store it cannot write to only delays that: logged.
func advertise(ctx context.Context, reg registry.Registry, vtep netip.Addr, log *slog.Logger) {
	na, ok := reg.(registry.NodeAdvertiser)
	if !ok || !vtep.IsValid() {
		return
	}
	if err := na.AdvertiseNode(ctx, vtep); err != nil {
		log.Warn("cannot advertise this node in the store: other nodes admit its VXLAN once they see its containers' records", "vtep", vtep, "err", err)
		return
	}
	log.Debug("node advertised in the store", "vtep", vtep)
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
		for _, rec := range ep.Records() {
			if err := reg.Register(ctx, rec); err != nil {
				if errors.Is(err, registry.ErrConflict) {
					log.Error("endpoint's address is registered elsewhere; not advertising it", "endpoint", ep.Name, "record", rec.String(), "err", err)
					continue
				}
				return moved, fmt.Errorf("daemon: register endpoint %s: %w", ep.Name, err)
			}
			moved++
		}
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
		for _, rec := range ep.Records() {
			local[rec] = true
		}
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
			for _, rec := range ep.Records() {
				adoptRecord(ctx, reg, rec, have, failed, vtep, log)
			}
		}
	}
}

// adoptRecord registers rec again unless the lease holds it (have) or it is
// another VTEP's, noting in failed whether it could not (logged once).
func adoptRecord(ctx context.Context, reg registry.Registry, rec registry.Record, have, failed map[registry.Record]bool, vtep netip.Addr, log *slog.Logger) {
	if have[rec] || rec.VTEP != vtep {
		return
	}
	if err := reg.Register(ctx, rec); err != nil {
		if !failed[rec] && ctx.Err() == nil {
			log.Warn("cannot move a local record onto this node's lease", "record", rec.String(), "err", err)
		}
		failed[rec] = true
		return
	}
	delete(failed, rec)
	log.Debug("local record on this node's lease", "record", rec.String())
}

// leaseCollector exports the counters of a store's lease.
func leaseCollector(l registry.Leaser) func(io.Writer) {
	return func(w io.Writer) {
		st := l.Stats()
		up := 0
		if st.LeaseUp {
			up = 1
		}
		promtext.Gauge(w, "overlayd_etcd_lease_up", "1 while this node's records are held by a live lease.", int64(up))
		promtext.Counter(w, "overlayd_etcd_lease_lost_total", "etcd leases lost (expired, or etcd unreachable for the TTL).", st.LeaseLost)
		promtext.Counter(w, "overlayd_etcd_reregistered_total", "Records registered again under a new lease.", st.Reregistered)
		promtext.Counter(w, "overlayd_etcd_watch_relists_total", "Change feed listings after the first (compaction, broken watch).", uint64(st.WatchRelists))
	}
}
