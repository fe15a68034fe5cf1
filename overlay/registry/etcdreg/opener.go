package etcdreg

import (
	"context"
	"net/url"
	"strings"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// Opener is the registry.Opener of the etcd and etcds schemes: Open with
// the Options o asks for. Without o.Lease the records are written without
// a lease (NoLease: they persist with no daemon, as in the directory
// store); with it they are held on this registry's lease, o.Lease.VTEP
// advertised as a live node and o.Lease.Keep consulted after a lost lease.
// o.VNI applies when the URL names no vni. Opening is bounded by ctx and
// the URL's timeout (DefaultTimeout).
func Opener(ctx context.Context, url string, o registry.Options) (registry.Registry, error) {
	opts := Options{NoLease: o.Lease == nil, Logger: o.Logger}
	if o.Lease != nil {
		opts.NodeVTEP, opts.Keep = o.Lease.VTEP, o.Lease.Keep
	}
	if !namesVNI(url) {
		opts.VNI = o.VNI
	}
	r, err := Open(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// namesVNI reports whether the store URL's query has a vni (a malformed
// query is reported by Open).
func namesVNI(raw string) bool {
	_, query, _ := strings.Cut(raw, "?")
	q, err := url.ParseQuery(query)
	return err == nil && q.Has("vni")
}
