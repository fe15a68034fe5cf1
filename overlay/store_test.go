package overlay

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// TestStoreOptions: the node's store is opened for the overlay its state
// directory records, once Create recorded one; a VNI the caller gives wins.
func TestStoreOptions(t *testing.T) {
	state := t.TempDir()
	if got := StoreOptions(state, registry.Options{}); got.VNI != 0 {
		t.Errorf("before create: VNI %d, want 0 (the store's default)", got.VNI)
	}
	if err := os.WriteFile(filepath.Join(state, overlayStateFile), []byte(`{"version":1,"overlay":{"config":{"vni":77}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	lease := &registry.Lease{}
	if got := StoreOptions(state, registry.Options{Lease: lease}); got.VNI != 77 || got.Lease != lease {
		t.Errorf("after create: %+v, want VNI 77 and the lease kept", got)
	}
	if got := StoreOptions(state, registry.Options{VNI: 5}); got.VNI != 5 {
		t.Errorf("VNI 5 given: %d", got.VNI)
	}
}
