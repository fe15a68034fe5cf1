package kubereg

import "github.com/overlaynet/overlaynet/overlay/registry/kubereg/internal/kubeapi"

// nodeObject is a Node as overlaynet decodes it: its metadata and the
// podCIDRs of its spec, nothing of its status. The API server's JSON is
// decoded into it directly (package kubeapi), so the daemon carries no
// code of the core API's types.
type nodeObject = kubeapi.Node
