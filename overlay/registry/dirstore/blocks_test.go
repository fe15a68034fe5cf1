package dirstore

import (
	"testing"

	"github.com/overlaynet/overlaynet/overlay/ipam/ipamtest"
)

// Block claims on the directory store: the shared conformance test, with
// its race of eight owners claiming the same blocks at once.
func TestDirStoreBlocks(t *testing.T) {
	ipamtest.Conformance(t, newTestStore(t))
}
