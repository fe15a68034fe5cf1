//go:build !nokube

package main

import (
	"context"
	"errors"

	"github.com/overlaynet/overlaynet/overlay/registry/kubereg"
)

// kubeOwner is what readDaemonSet found.
type kubeOwner struct {
	uid      string
	deleting bool
}

// Errors of readDaemonSet.
var (
	errOwnerGone   = kubereg.ErrGone
	errOwnerDenied = kubereg.ErrDenied
)

// readDaemonSet reads the DaemonSet namespace/name (kubereg.DaemonSet).
func readDaemonSet(ctx context.Context, kubeconfig, node, namespace, name string) (kubeOwner, error) {
	o, err := kubereg.DaemonSet(ctx, kubeconfig, node, namespace, name)
	return kubeOwner{uid: o.UID, deleting: o.Deleting}, err
}

// unannotate removes overlaynet's annotations from the Node node.
func unannotate(ctx context.Context, kubeconfig, node string) error {
	if node == "" {
		return errors.New("no node name")
	}
	return kubereg.Unannotate(ctx, kubeconfig, node)
}
