package kubereg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/overlaynet/overlaynet/overlay/registry"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// UserAgent starts the user agent of every request overlayd makes; the
// node's name follows, so that an API server's audit log tells the nodes
// apart.
const UserAgent = "overlayd"

// newClient returns a REST client of the core API group (v1) for the
// kubeconfig file at path, or the in-cluster service account when path is
// empty: JSON decoded into nodeObject (what overlaynet reads of a Node),
// a user agent naming the node.
func newClient(path, node string) (*rest.RESTClient, error) {
	cfg, err := restConfig(path)
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = UserAgent + " (node " + node + ")"
	gv := coreV1()
	cfg.GroupVersion = &gv
	cfg.APIPath = "/api"
	cfg.ContentType = runtime.ContentTypeJSON
	cfg.AcceptContentTypes = runtime.ContentTypeJSON
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(newScheme()).WithoutConversion()
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubereg: %w", err)
	}
	return rc, nil
}

// restConfig reads the kubeconfig at path, or the in-cluster
// configuration when path is empty.
func restConfig(path string) (*rest.Config, error) {
	if path == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, registry.BadURL(fmt.Errorf("kubereg: store kube: (no kubeconfig) needs the in-cluster service account of a pod: %w; give kube:KUBECONFIG elsewhere", err))
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, registry.BadURL(fmt.Errorf("kubereg: kubeconfig %s: %w", path, err))
	}
	return cfg, nil
}

// patchStatus sends a patch of this node's Node through its status
// subresource (the one write RBAC grants: nodes/status patch).
func (r *Registry) patchStatus(ctx context.Context, pt types.PatchType, body []byte) error {
	err := r.rc.Patch(pt).Resource("nodes").Name(r.opts.NodeName).SubResource("status").
		Body(body).Do(ctx).Error()
	if err != nil {
		return fmt.Errorf("kubereg: patch Node %s status: %w", r.opts.NodeName, wrapAPI(err))
	}
	return nil
}

// wrapAPI marks an API error the server did not answer (or answered as
// overloaded) as registry.ErrUnavailable.
func wrapAPI(err error) error {
	var se apierrors.APIStatus
	if !errors.As(err, &se) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsTooManyRequests(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) {
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
	rc, err := newClient(path, node)
	if err != nil {
		return Owner{}, err
	}
	b, err := rc.Get().AbsPath("/apis/apps/v1/namespaces", namespace, "daemonsets", name).
		SetHeader("Accept", runtime.ContentTypeJSON).DoRaw(ctx)
	switch {
	case apierrors.IsNotFound(err):
		return Owner{}, fmt.Errorf("%w: %s/%s: %v", ErrGone, namespace, name, err)
	case apierrors.IsUnauthorized(err), apierrors.IsForbidden(err):
		return Owner{}, fmt.Errorf("%w: %s/%s: %v", ErrDenied, namespace, name, err)
	case err != nil:
		return Owner{}, fmt.Errorf("kubereg: read DaemonSet %s/%s: %w", namespace, name, wrapAPI(err))
	}
	var ds struct {
		Metadata struct {
			UID               string  `json:"uid"`
			DeletionTimestamp *string `json:"deletionTimestamp"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(b, &ds); err != nil {
		return Owner{}, fmt.Errorf("kubereg: DaemonSet %s/%s: %w", namespace, name, err)
	}
	return Owner{UID: ds.Metadata.UID, Deleting: ds.Metadata.DeletionTimestamp != nil}, nil
}

// Unannotate removes overlaynet's annotations from the Node node with the
// kubeconfig at path (the in-cluster service account when empty): what an
// uninstalling daemon does last, when its credentials still work.
func Unannotate(ctx context.Context, path, node string) error {
	rc, err := newClient(path, node)
	if err != nil {
		return err
	}
	r := &Registry{opts: Options{NodeName: node}, rc: rc}
	return r.patchStatus(ctx, types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+AnnotationVTEP+`":null,"`+AnnotationNetwork+`":null}}}`))
}
