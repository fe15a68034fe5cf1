//go:build noetcd

package stores

import (
	"context"
	"fmt"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// openEtcd refuses an etcd store: this build has no etcd client.
func openEtcd(_ context.Context, url string, _ registry.Options) (registry.Registry, error) {
	return nil, fmt.Errorf("%w: store URL %q needs it; use a dir: store or a full build", ErrNoEtcd, registry.RedactURL(url))
}
