package kubeapi

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// servedNode is a Node as the API server serves it: the core API's type,
// with status, labels and managed fields beside what overlaynet reads.
func servedNode(name string) *corev1.Node {
	return &corev1.Node{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("u-" + name), ResourceVersion: "17",
			CreationTimestamp: metav1.NewTime(time.Unix(1_000_000, 0)),
			DeletionTimestamp: &metav1.Time{Time: time.Unix(1_000_100, 0)},
			Labels:            map[string]string{"kubernetes.io/hostname": name},
			Annotations:       map[string]string{"overlaynet.io/vtep": "192.0.2.10", "other.example/x": "y"},
			ManagedFields:     []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate}}},
		Spec: corev1.NodeSpec{PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24", "fd00::/64"}},
		Status: corev1.NodeStatus{
			Images:    []corev1.ContainerImage{{Names: []string{"busybox"}, SizeBytes: 1 << 20}},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.10"}},
		},
	}
}

// wantNode is servedNode as Node holds it.
func wantNode(name string) Node {
	return Node{ObjectMeta: ObjectMeta{Name: name, UID: "u-" + name, ResourceVersion: "17",
		CreationTimestamp: time.Unix(1_000_000, 0).UTC(), DeletionTimestamp: new(time.Unix(1_000_100, 0).UTC()),
		Annotations: map[string]string{"overlaynet.io/vtep": "192.0.2.10", "other.example/x": "y"}},
		Spec: NodeSpec{PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24", "fd00::/64"}}}
}

// TestServedTypesDecode: the JSON of the core API's own types (a Node, a
// NodeList, a watch event of a Node, a Status) decodes into Node, a page
// of a list and an Event, holding what overlaynet reads.
func TestServedTypesDecode(t *testing.T) {
	b, err := json.Marshal(servedNode("a"))
	if err != nil {
		t.Fatal(err)
	}
	var n Node
	if err := json.Unmarshal(b, &n); err != nil {
		t.Fatalf("decode Node: %v", err)
	}
	if want := wantNode("a"); !reflect.DeepEqual(n, want) {
		t.Errorf("Node decoded as %+v, want %+v", n, want)
	}

	list := corev1.NodeList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "NodeList"},
		ListMeta: metav1.ListMeta{ResourceVersion: "42", Continue: "next"}, Items: []corev1.Node{*servedNode("a"), *servedNode("b")}}
	if b, err = json.Marshal(list); err != nil {
		t.Fatal(err)
	}
	var page nodeList
	if err := json.Unmarshal(b, &page); err != nil {
		t.Fatalf("decode NodeList: %v", err)
	}
	if page.Metadata.ResourceVersion != "42" || page.Metadata.Continue != "next" || len(page.Items) != 2 ||
		!reflect.DeepEqual(page.Items[1], wantNode("b")) {
		t.Errorf("NodeList decoded as %+v", page)
	}

	var stream bytes.Buffer
	enc := json.NewEncoder(&stream)
	for _, ev := range []metav1.WatchEvent{
		{Type: "MODIFIED", Object: rawOf(t, servedNode("a"))},
		{Type: "BOOKMARK", Object: rawOf(t, &corev1.Node{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "99"}})},
		{Type: "ERROR", Object: rawOf(t, &metav1.Status{Status: metav1.StatusFailure, Code: 410, Reason: metav1.StatusReasonExpired, Message: "too old resource version: 1 (50)"})},
	} {
		if err := enc.Encode(ev); err != nil {
			t.Fatal(err)
		}
	}
	dec := json.NewDecoder(&stream)
	ev, err := decodeEvent(dec, NodesPath)
	if err != nil || ev.Type != Modified || !reflect.DeepEqual(ev.Node, wantNode("a")) {
		t.Errorf("MODIFIED event decoded as %+v, %v", ev, err)
	}
	ev, err = decodeEvent(dec, NodesPath)
	if err != nil || ev.Type != Bookmark || ev.Node.ResourceVersion != "99" {
		t.Errorf("BOOKMARK event decoded as %+v, %v", ev, err)
	}
	ev, err = decodeEvent(dec, NodesPath)
	if err != nil || ev.Type != Error || !IsGone(ev.Status) || ev.Status.Reason != "Expired" || ev.Status.Message != "too old resource version: 1 (50)" {
		t.Errorf("ERROR event decoded as %+v, %v", ev, err)
	}
}

func rawOf(t *testing.T, v any) runtime.RawExtension {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return runtime.RawExtension{Raw: b}
}
