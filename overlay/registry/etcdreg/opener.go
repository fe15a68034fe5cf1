package etcdreg

import (
	"context"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// Opener adapts Open to a function of the URL alone, for a registry of URL
// schemes in package registry (which stays free of the etcd client):
//
//	registry.RegisterScheme("etcd", etcdreg.Opener(etcdreg.Options{Logger: log}))
//	registry.RegisterScheme("etcds", etcdreg.Opener(etcdreg.Options{Logger: log}))
//
// Opening is bounded by opts.Timeout (DefaultTimeout if zero).
func Opener(opts Options) func(url string) (registry.Registry, error) {
	return func(url string) (registry.Registry, error) {
		r, err := Open(context.Background(), url, opts)
		if err != nil {
			return nil, err
		}
		return r, nil
	}
}
