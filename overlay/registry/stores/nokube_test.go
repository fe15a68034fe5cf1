//go:build nokube

package stores

import (
	"errors"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/kubenode"
)

// TestNoKube: a build without the Kubernetes client refuses the node
// daemon's kube: store with an error wrapping ErrNoKube, and still opens
// the node's view (what the CNI plugin and one-shot commands use).
func TestNoKube(t *testing.T) {
	_, err := registry.Open(t.Context(), "kube:", registry.Options{Schemes: Schemes(), Lease: &registry.Lease{}, StateDir: t.TempDir()})
	if !errors.Is(err, ErrNoKube) || !strings.Contains(err.Error(), "-tags nokube") {
		t.Errorf("the daemon's kube: store: %v, want ErrNoKube", err)
	}
	r, err := registry.Open(t.Context(), "kube:", registry.Options{Schemes: Schemes(), StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.(*kubenode.Store); !ok {
		t.Errorf("kube: without a lease opened %T, want the node's view", r)
	}
}
