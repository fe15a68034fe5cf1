//go:build noetcd

package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// errNoEtcd is what an etcd --store gets from an overlayd built with
// -tags noetcd (a smaller binary without the etcd client).
var errNoEtcd = errors.New("this overlayd was built without etcd support (-tags noetcd); use a dir: store or a full build")

func init() {
	for _, scheme := range []string{"etcd", "etcds"} {
		registry.RegisterScheme(scheme, func(string) (registry.Registry, error) { return nil, errNoEtcd })
	}
}

func openEtcdRunStore(context.Context, string, *overlay.Node, *overlay.Overlay, *slog.Logger) (*runStore, error) {
	return nil, errNoEtcd
}
