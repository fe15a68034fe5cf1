package kubeapi

import "time"

// ObjectMeta is what overlaynet reads of an object's metadata.
type ObjectMeta struct {
	Name              string            `json:"name"`
	UID               string            `json:"uid,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	CreationTimestamp time.Time         `json:"creationTimestamp"`
	DeletionTimestamp *time.Time        `json:"deletionTimestamp,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
}

// Node is a Node as overlaynet decodes it: its metadata and the podCIDRs
// of its spec, nothing of its status (the server's other fields are
// skipped by the decoder, not kept).
type Node struct {
	ObjectMeta `json:"metadata"`
	Spec       NodeSpec `json:"spec"`
}

// NodeSpec is what overlaynet reads of a Node's spec.
type NodeSpec struct {
	PodCIDR  string   `json:"podCIDR,omitempty"`
	PodCIDRs []string `json:"podCIDRs,omitempty"`
}

// nodeList is a page of a list of Nodes.
type nodeList struct {
	Metadata struct {
		ResourceVersion string `json:"resourceVersion"`
		Continue        string `json:"continue"`
	} `json:"metadata"`
	Items []Node `json:"items"`
}
