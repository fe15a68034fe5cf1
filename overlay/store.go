package overlay

import "github.com/overlaynet/overlaynet/overlay/registry"

// StoreOptions returns o for opening the store of the node whose state
// directory is stateDir (registry.Open): o.StateDir, when empty, becomes
// stateDir (the Kubernetes store reads there what the node daemon
// recorded); o.VNI, when zero, becomes the VNI
// of the overlay Create recorded there, so that every command of a node
// reads and writes the records of its own overlay in a store that keeps
// several apart (etcd). Before Create, or when the state cannot be read, o
// is returned as it is (the store's default VNI applies).
func StoreOptions(stateDir string, o registry.Options) registry.Options {
	if o.StateDir == "" {
		o.StateDir = stateDir
	}
	if o.VNI != 0 {
		return o
	}
	if ov, err := NewNode(NodeOptions{StateDir: stateDir}).Overlay(); err == nil {
		o.VNI = ov.Config.VNI
	}
	return o
}
