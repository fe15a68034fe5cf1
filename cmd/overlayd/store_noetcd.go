//go:build noetcd

package main

import (
	daemonlib "github.com/overlaynet/overlaynet/overlay/daemon"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// An overlayd built with -tags noetcd (a smaller binary without the etcd
// client) refuses etcd stores with daemonlib.ErrNoEtcd.
func init() {
	for _, scheme := range []string{"etcd", "etcds"} {
		registry.RegisterScheme(scheme, func(string) (registry.Registry, error) { return nil, daemonlib.ErrNoEtcd })
	}
}
