package main

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/registry"
	_ "github.com/overlaynet/overlaynet/overlay/registry/dirstore" // the dir: scheme
)

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
	ov, err := overlay.NewNode(overlay.NodeOptions{StateDir: stateDir}).Overlay()
	if err != nil {
		return store
	}
	return storeURLVNI(store, ov.Config.VNI)
}

// storeURLVNI returns store with vni added if it is an etcd URL naming no
// vni (create uses the VNI it is asked for: nothing is recorded yet).
func storeURLVNI(store string, vniNum uint32) string {
	if !isEtcdStore(store) {
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

// runStore is the registry of `overlayd run` and, for a store with node
// leases (etcd), what the daemon does with the lease.
type runStore struct {
	registry.Registry
	lease leaseHolder // nil for stores without leases
}

// leaseHolder is what a store that holds this node's records on a lease adds
// to the daemon: adopting later local attaches onto the lease, and metrics.
type leaseHolder interface {
	adoptLocal(ctx context.Context, n *overlay.Node, vtep netip.Addr, log *slog.Logger)
	collector() func(io.Writer)
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
		reg, err := registry.OpenRegistry(url)
		if err != nil {
			return nil, err
		}
		return &runStore{Registry: reg}, nil
	}
	return openEtcdRunStore(ctx, url, n, ov, log)
}
