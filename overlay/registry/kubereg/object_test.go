package kubereg

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
)

// servedNode is a Node as the API server serves it: the core API's type,
// with status, labels and managed fields beside what overlaynet reads.
func servedNode(name string) *corev1.Node {
	return &corev1.Node{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("u-" + name), ResourceVersion: "17",
			CreationTimestamp: metav1.NewTime(time.Unix(1_000_000, 0)),
			Labels:            map[string]string{"kubernetes.io/hostname": name},
			Annotations:       map[string]string{AnnotationVTEP: "192.0.2.10", AnnotationNetwork: testNetwork, "other.example/x": "y"},
			ManagedFields:     []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate}}},
		Spec: corev1.NodeSpec{PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24", "fd00::/64"}},
		Status: corev1.NodeStatus{
			Images:    []corev1.ContainerImage{{Names: []string{"busybox"}, SizeBytes: 1 << 20}},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.10"}},
		},
	}
}

// TestNodeObjectDecodes: the API server's JSON of a Node, of a NodeList
// and of a watch event decodes through the client's codecs into
// nodeObject and nodeList, holding what parseNode reads of the served
// Node (its metadata and podCIDRs), and a deep copy shares nothing.
func TestNodeObjectDecodes(t *testing.T) {
	codecs := serializer.NewCodecFactory(newScheme()).WithoutConversion()
	info, ok := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), runtime.ContentTypeJSON)
	if !ok {
		t.Fatal("the client's codecs have no JSON serializer")
	}
	dec := codecs.DecoderToVersion(info.Serializer, coreV1())
	served := servedNode("a")
	want := &nodeObject{ObjectMeta: served.ObjectMeta, // the decoder clears TypeMeta, as for the core API's types
		Spec: nodeSpec{PodCIDR: served.Spec.PodCIDR, PodCIDRs: served.Spec.PodCIDRs}}

	b, err := json.Marshal(served)
	if err != nil {
		t.Fatal(err)
	}
	obj, _, err := dec.Decode(b, nil, nil)
	if err != nil {
		t.Fatalf("decode Node: %v", err)
	}
	n, ok := obj.(*nodeObject)
	if !ok {
		t.Fatalf("Node decoded as %T, want *nodeObject", obj)
	}
	if !reflect.DeepEqual(n, want) {
		t.Errorf("Node decoded as %+v, want %+v", n, want)
	}
	if parseNode(n).state != NodeOK || parseNode(n).span.String() != "10.244.1.0/24" {
		t.Errorf("decoded Node parses as %+v", parseNode(n))
	}

	list := corev1.NodeList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "NodeList"},
		ListMeta: metav1.ListMeta{ResourceVersion: "42"}, Items: []corev1.Node{*served, *servedNode("b")}}
	b, err = json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	obj, _, err = dec.Decode(b, nil, nil)
	if err != nil {
		t.Fatalf("decode NodeList: %v", err)
	}
	l, ok := obj.(*nodeList)
	if !ok || l.ResourceVersion != "42" || len(l.Items) != 2 || l.Items[1].Name != "b" || !reflect.DeepEqual(l.Items[0].ObjectMeta, want.ObjectMeta) || !reflect.DeepEqual(l.Items[0].Spec, want.Spec) {
		t.Fatalf("NodeList decoded as %T %+v", obj, obj)
	}

	// A watch event: its object decoded by the stream's decoder, as the
	// REST client's watch does.
	ev, err := json.Marshal(map[string]any{"type": "MODIFIED", "object": served})
	if err != nil {
		t.Fatal(err)
	}
	var we metav1.WatchEvent
	if err := json.Unmarshal(ev, &we); err != nil {
		t.Fatal(err)
	}
	obj, _, err = dec.Decode(we.Object.Raw, nil, nil)
	if err != nil {
		t.Fatalf("decode watch event's object: %v", err)
	}
	if !reflect.DeepEqual(obj, want) {
		t.Errorf("watch event's Node decoded as %+v", obj)
	}

	c := l.DeepCopyObject().(*nodeList)
	c.Items[0].Annotations[AnnotationVTEP] = "192.0.2.99"
	c.Items[0].Spec.PodCIDRs[0] = "10.9.0.0/24"
	if l.Items[0].Annotations[AnnotationVTEP] != "192.0.2.10" || l.Items[0].Spec.PodCIDRs[0] != "10.244.1.0/24" || !reflect.DeepEqual(c.ListMeta, l.ListMeta) {
		t.Errorf("a deep copy shares the original's maps or slices")
	}
	if nc := n.DeepCopyObject().(*nodeObject); !reflect.DeepEqual(nc, n) {
		t.Errorf("deep copy %+v of %+v", nc, n)
	}
}
