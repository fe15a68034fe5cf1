//go:build !noetcd

package stores

import (
	"context"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/etcdreg"
)

// openEtcd opens an etcd:// or etcds:// store (etcdreg.Opener).
func openEtcd(ctx context.Context, url string, o registry.Options) (registry.Registry, error) {
	return etcdreg.Opener(ctx, url, o)
}
