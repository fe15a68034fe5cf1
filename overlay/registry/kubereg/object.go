package kubereg

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// coreV1 returns the group version of Nodes: the core API group, v1.
func coreV1() schema.GroupVersion { return schema.GroupVersion{Version: "v1"} }

// nodeObject is a Node as overlaynet decodes it: its metadata and the
// podCIDRs of its spec, nothing of its status. The API server's JSON is
// decoded into it directly, so the daemon carries no code of the core
// API's other types (k8s.io/api/core/v1 is several MiB of the binary and
// of its resident pages).
type nodeObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              nodeSpec `json:"spec,omitempty"`
}

// nodeSpec is what overlaynet reads of a Node's spec.
type nodeSpec struct {
	PodCIDR  string   `json:"podCIDR,omitempty"`
	PodCIDRs []string `json:"podCIDRs,omitempty"`
}

// nodeList is a list of Nodes, as nodeObject decodes them.
type nodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []nodeObject `json:"items"`
}

// DeepCopyObject copies n, as runtime.Object asks.
func (n *nodeObject) DeepCopyObject() runtime.Object {
	if n == nil {
		return nil
	}
	return n.deepCopy()
}

func (n *nodeObject) deepCopy() *nodeObject {
	out := &nodeObject{TypeMeta: n.TypeMeta}
	n.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Spec.PodCIDR = n.Spec.PodCIDR
	if n.Spec.PodCIDRs != nil {
		out.Spec.PodCIDRs = append([]string(nil), n.Spec.PodCIDRs...)
	}
	return out
}

// DeepCopyObject copies l, as runtime.Object asks.
func (l *nodeList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := &nodeList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]nodeObject, len(l.Items))
		for i := range l.Items {
			out.Items[i] = *l.Items[i].deepCopy()
		}
	}
	return out
}

// newScheme is the scheme of the REST client: Node and NodeList as
// nodeObject and nodeList, and the meta types of the core group (options,
// watch events, Status).
func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	gv := coreV1()
	s.AddKnownTypeWithName(gv.WithKind("Node"), &nodeObject{})
	s.AddKnownTypeWithName(gv.WithKind("NodeList"), &nodeList{})
	metav1.AddToGroupVersion(s, gv)
	return s
}
