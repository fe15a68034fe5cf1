// Package stores links the stores overlaynet ships, for the commands and
// the node daemon: Schemes maps each URL scheme to its registry.Opener,
// for registry.Options.Schemes. A store is added here, one line in
// Schemes, and nowhere else. A build with -tags noetcd leaves the etcd
// client out: its etcd schemes answer an error wrapping ErrNoEtcd. A build
// with -tags nokube leaves the Kubernetes client out: the kube scheme
// still opens the node's view (package kubenode: the CNI plugin, one-shot
// commands), and refuses the node daemon's store with ErrNoKube.
package stores

import (
	"errors"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/dirstore"
)

// ErrNoEtcd is wrapped by the error of an etcd store URL in a build with
// -tags noetcd (a smaller binary without the etcd client).
var ErrNoEtcd = errors.New("stores: built without etcd support (-tags noetcd)")

// ErrNoKube is wrapped by the error of the node daemon's kube: store in a
// build with -tags nokube (without the Kubernetes client).
var ErrNoKube = errors.New("stores: built without the Kubernetes client (-tags nokube)")

// Schemes returns the openers of the shipped stores by URL scheme: "dir"
// (package dirstore), "etcd" and "etcds" (package etcdreg), "kube"
// (packages kubereg and kubenode).
func Schemes() map[string]registry.Opener {
	return map[string]registry.Opener{
		"dir":   dirstore.Opener,
		"etcd":  openEtcd,
		"etcds": openEtcd,
		"kube":  openKube,
	}
}
