//go:build !noetcd

package main

import (
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/etcdreg"
)

// The etcd schemes of --store. One-shot commands (attach, detach, reset,
// status) open etcd without a lease: their records persist with no daemon,
// as in the directory store. `overlayd run` opens it itself, with a lease
// (daemon.OpenStore), and moves this node's records onto it.
func init() {
	for _, scheme := range []string{"etcd", "etcds"} {
		registry.RegisterScheme(scheme, etcdreg.Opener(etcdreg.Options{NoLease: true}))
	}
}
