package etcdreg

import (
	"testing"

	"github.com/overlaynet/overlaynet/overlay/ipam/ipamtest"
)

// Block claims in a real etcd: the shared conformance test, with its race
// of eight owners claiming the same blocks at once.
func TestBlocks(t *testing.T) {
	s := startEtcd(t)
	ipamtest.Conformance(t, s.open(t, "blocks", Options{NoLease: true}))
}
