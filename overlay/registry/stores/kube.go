//go:build !nokube

package stores

import (
	"context"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/kubenode"
	"github.com/overlaynet/overlaynet/overlay/registry/kubereg"
)

// openKube opens a kube: store: the node daemon's (a lease asked for) on
// the Kubernetes API (kubereg.Opener), anyone else's as the node's view of
// what its daemon recorded in the state directory (kubenode.Opener).
func openKube(ctx context.Context, url string, o registry.Options) (registry.Registry, error) {
	if o.Lease == nil {
		return kubenode.Opener(ctx, url, o)
	}
	return kubereg.Opener(ctx, url, o)
}
