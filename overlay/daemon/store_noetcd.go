//go:build noetcd

package daemon

import (
	"context"
	"errors"
	"log/slog"

	"github.com/overlaynet/overlaynet/overlay"
)

// ErrNoEtcd is what an etcd store gets from a build with -tags noetcd (a
// smaller binary without the etcd client).
var ErrNoEtcd = errors.New("daemon: built without etcd support (-tags noetcd); use a dir: store or a full build")

func openEtcdStore(context.Context, string, *overlay.Node, *overlay.Overlay, *slog.Logger) (*Store, error) {
	return nil, ErrNoEtcd
}
