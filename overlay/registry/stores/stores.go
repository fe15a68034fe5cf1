// Package stores links the stores overlaynet ships, for the commands and
// the node daemon: Schemes maps each URL scheme to its registry.Opener,
// for registry.Options.Schemes. A store is added here, one line in
// Schemes, and nowhere else. A build with -tags noetcd leaves the etcd
// client out: its etcd schemes answer an error wrapping ErrNoEtcd.
package stores

import (
	"errors"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/dirstore"
)

// ErrNoEtcd is wrapped by the error of an etcd store URL in a build with
// -tags noetcd (a smaller binary without the etcd client).
var ErrNoEtcd = errors.New("stores: built without etcd support (-tags noetcd)")

// Schemes returns the openers of the shipped stores by URL scheme: "dir"
// (package dirstore), "etcd" and "etcds" (package etcdreg).
func Schemes() map[string]registry.Opener {
	return map[string]registry.Opener{
		"dir":   dirstore.Opener,
		"etcd":  openEtcd,
		"etcds": openEtcd,
	}
}
