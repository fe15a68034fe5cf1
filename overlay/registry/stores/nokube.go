//go:build nokube

package stores

import (
	"context"
	"fmt"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/kubenode"
)

// openKube opens a kube: store as the node's view of what its daemon
// recorded in the state directory (kubenode.Opener: all the CNI plugin and
// one-shot commands need); the node daemon's, on the Kubernetes API, is
// refused: this build has no Kubernetes client.
func openKube(ctx context.Context, url string, o registry.Options) (registry.Registry, error) {
	if o.Lease == nil {
		return kubenode.Opener(ctx, url, o)
	}
	return nil, fmt.Errorf("%w: store URL %q needs it for the node daemon; use a full build", ErrNoKube, registry.RedactURL(url))
}
