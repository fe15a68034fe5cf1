package kubereg

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/kubereg/internal/kubeapi"
)

// UserAgent starts the user agent of every request overlayd makes; the
// node's name follows, so that an API server's audit log tells the nodes
// apart.
const UserAgent = "overlayd"

// newClient returns a client of the API server for the kubeconfig file at
// path, or the in-cluster service account when path is empty, with a
// user agent naming the node.
func newClient(path, node string) (*kubeapi.Client, error) {
	cfg, err := config(path)
	if err != nil {
		return nil, err
	}
	c, err := kubeapi.New(cfg, UserAgent+" (node "+node+")")
	if err != nil {
		return nil, registry.BadURL(fmt.Errorf("kubereg: %w", err))
	}
	return c, nil
}

// config reads the kubeconfig at path, or the in-cluster configuration
// when path is empty.
func config(path string) (kubeapi.Config, error) {
	if path == "" {
		cfg, err := kubeapi.InCluster()
		if err != nil {
			return cfg, registry.BadURL(fmt.Errorf("kubereg: store kube: (no kubeconfig) needs the in-cluster service account of a pod: %w; give kube:KUBECONFIG elsewhere", err))
		}
		return cfg, nil
	}
	cfg, err := kubeapi.Load(path)
	if err != nil {
		return cfg, registry.BadURL(fmt.Errorf("kubereg: %w", err))
	}
	return cfg, nil
}

// patchStatus sends a patch of this node's Node through its status
// subresource (the one write RBAC grants: nodes/status patch).
func (r *Registry) patchStatus(ctx context.Context, pt kubeapi.PatchType, body []byte) error {
	err := r.kc.Patch(ctx, kubeapi.NodesPath+"/"+url.PathEscape(r.opts.NodeName)+"/status", pt, body)
	if err != nil {
		return fmt.Errorf("kubereg: patch Node %s status: %w", r.opts.NodeName, wrapAPI(err))
	}
	return nil
}

// wrapAPI marks an API error the server did not answer (or answered as
// overloaded) as registry.ErrUnavailable.
func wrapAPI(err error) error {
	if kubeapi.Temporary(err) {
		return registry.Unavailable(err)
	}
	return err
}

// Owner says what became of the DaemonSet that runs a node's daemon: its
// UID, and whether it is being deleted.
type Owner struct {
	UID      string
	Deleting bool
}

// Errors of DaemonSet.
var (
	// ErrGone: the DaemonSet does not exist (any more).
	ErrGone = errors.New("kubereg: the DaemonSet is gone")
	// ErrDenied: the credentials are no longer accepted or allowed to read
	// it (its ServiceAccount or role binding was deleted).
	ErrDenied = errors.New("kubereg: the API server no longer lets this daemon read its DaemonSet")
)

// DaemonSet reads the DaemonSet namespace/name with the kubeconfig at path
// (the in-cluster service account when empty), as the daemon it runs does
// at start and when it stops: an error wrapping ErrGone when it does not
// exist, ErrDenied when the credentials are refused or forbidden, another
// error when the server could not answer.
func DaemonSet(ctx context.Context, path, node, namespace, name string) (Owner, error) {
	kc, err := newClient(path, node)
	if err != nil {
		return Owner{}, err
	}
	var ds struct {
		Metadata struct {
			UID               string  `json:"uid"`
			DeletionTimestamp *string `json:"deletionTimestamp"`
		} `json:"metadata"`
	}
	err = kc.Get(ctx, "/apis/apps/v1/namespaces/"+url.PathEscape(namespace)+"/daemonsets/"+url.PathEscape(name), nil, &ds)
	switch {
	case kubeapi.IsNotFound(err):
		return Owner{}, fmt.Errorf("%w: %s/%s: %v", ErrGone, namespace, name, err)
	case kubeapi.IsUnauthorized(err), kubeapi.IsForbidden(err):
		return Owner{}, fmt.Errorf("%w: %s/%s: %v", ErrDenied, namespace, name, err)
	case err != nil:
		return Owner{}, fmt.Errorf("kubereg: read DaemonSet %s/%s: %w", namespace, name, wrapAPI(err))
	}
	return Owner{UID: ds.Metadata.UID, Deleting: ds.Metadata.DeletionTimestamp != nil}, nil
}

// Unannotate removes overlaynet's annotations from the Node node with the
// kubeconfig at path (the in-cluster service account when empty): what an
// uninstalling daemon does last, when its credentials still work.
func Unannotate(ctx context.Context, path, node string) error {
	kc, err := newClient(path, node)
	if err != nil {
		return err
	}
	r := &Registry{opts: Options{NodeName: node}, kc: kc}
	return r.patchStatus(ctx, kubeapi.MergePatch, []byte(`{"metadata":{"annotations":{"`+AnnotationVTEP+`":null,"`+AnnotationNetwork+`":null}}}`))
}
