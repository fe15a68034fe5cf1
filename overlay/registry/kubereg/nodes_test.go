package kubereg

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/kubereg/internal/kubeapi"
)

const testNetwork = `{"vni":42,"port":4789,"mtu":1450,"gateway":"10.244.0.1/16"}`

func ours() registry.Network {
	return registry.Network{VNI: 42, Port: 4789, MTU: 1450, Gateway: netip.MustParsePrefix("10.244.0.1/16")}
}

// node is a Node as the API server would hand it, created at minute age.
func node(name string, age int, vtep, network string, cidrs ...string) *nodeObject {
	n := &nodeObject{ObjectMeta: kubeapi.ObjectMeta{Name: name, Annotations: map[string]string{},
		CreationTimestamp: time.Unix(1_000_000+int64(age)*60, 0)}}
	if vtep != "-" {
		n.Annotations[AnnotationVTEP] = vtep
	}
	if network != "-" {
		n.Annotations[AnnotationNetwork] = network
	}
	if len(cidrs) > 0 {
		n.Spec.PodCIDR, n.Spec.PodCIDRs = cidrs[0], cidrs
	}
	return n
}

// TestParseNode: what a Node holds on its own decides its state; hostile
// or broken annotations and podCIDRs are named, never taken.
func TestParseNode(t *testing.T) {
	for _, tc := range []struct {
		n    *nodeObject
		want NodeState
	}{
		{node("ok", 0, "192.0.2.10", testNetwork, "10.244.1.0/24"), NodeOK},
		{node("dual", 0, "192.0.2.10", testNetwork, "fd00::/64", "10.244.1.0/24"), NodeOK},
		{node("unannotated", 0, "-", "-", "10.244.1.0/24"), NodeNoVTEP},
		{node("no-cidr", 0, "192.0.2.10", testNetwork), NodeNoPodCIDR},
		{node("words", 0, "not-an-ip", testNetwork, "10.244.1.0/24"), NodeBadVTEP},
		{node("multicast", 0, "224.0.0.1", testNetwork, "10.244.1.0/24"), NodeBadVTEP},
		{node("loopback", 0, "127.0.0.1", testNetwork, "10.244.1.0/24"), NodeBadVTEP},
		{node("v6", 0, "2001:db8::1", testNetwork, "10.244.1.0/24"), NodeBadVTEP},
		{node("mapped", 0, "::ffff:192.0.2.10", testNetwork, "10.244.1.0/24"), NodeBadVTEP},
		{node("long", 0, strings.Repeat("9", 4096), testNetwork, "10.244.1.0/24"), NodeBadVTEP},
		{node("no-network", 0, "192.0.2.10", "-", "10.244.1.0/24"), NodeBadNetwork},
		{node("bad-json", 0, "192.0.2.10", `{"vni":`, "10.244.1.0/24"), NodeBadNetwork},
		{node("zero-vni", 0, "192.0.2.10", `{"vni":0,"port":4789,"gateway":"10.244.0.1/16"}`, "10.244.1.0/24"), NodeBadNetwork},
		{node("host-bits", 0, "192.0.2.10", testNetwork, "10.244.1.7/24"), NodeBadPodCIDR},
		{node("garbage-cidr", 0, "192.0.2.10", testNetwork, "ten"), NodeBadPodCIDR},
		{node("v6-only", 0, "192.0.2.10", testNetwork, "fd00::/64"), NodeBadPodCIDR},
	} {
		if got := parseNode(tc.n).state; got != tc.want {
			t.Errorf("%s: %v, want %v", tc.n.Name, got, tc.want)
		}
	}
	if ni := parseNode(node("dual", 0, "192.0.2.10", testNetwork, "fd00::/64", "10.244.1.0/24")); ni.span != netip.MustParsePrefix("10.244.1.0/24") || len(ni.podCIDRs) != 2 {
		t.Errorf("dual-stack Node: span %v, podCIDRs %v; want the IPv4 one spanned, both kept", ni.span, ni.podCIDRs)
	}
}

// TestEffective: of two Nodes claiming one podCIDR (or overlapping ones),
// or one VTEP, the older keeps it; a Node of another network or outside
// the subnet is skipped once this daemon's network is known; the others
// are spans.
func TestEffective(t *testing.T) {
	other := strings.Replace(testNetwork, "42", "43", 1)
	nodes := map[string]nodeInfo{}
	for _, n := range []*nodeObject{
		node("a", 0, "192.0.2.10", testNetwork, "10.244.1.0/24"),
		node("b", 1, "192.0.2.11", testNetwork, "10.244.2.0/24"),
		node("same-cidr", 2, "192.0.2.12", testNetwork, "10.244.1.0/24"),
		node("inside", 3, "192.0.2.13", testNetwork, "10.244.2.128/25"),
		node("holding", 4, "192.0.2.14", testNetwork, "10.244.0.0/22"),
		node("same-vtep", 5, "192.0.2.10", testNetwork, "10.244.9.0/24"),
		node("other-net", 6, "192.0.2.16", other, "10.244.10.0/24"),
		node("outside", 7, "192.0.2.17", testNetwork, "10.9.0.0/24"),
		node("unannotated", 8, "-", "-", "10.244.11.0/24"),
	} {
		nodes[n.Name] = parseNode(n)
	}
	want := map[string]NodeState{"a": NodeOK, "b": NodeOK, "same-cidr": NodeOverlap, "inside": NodeOverlap, "holding": NodeOverlap,
		"same-vtep": NodeVTEPConflict, "other-net": NodeNetworkMismatch, "outside": NodeOutsideSubnet, "unannotated": NodeNoVTEP}
	states, spans := effective(nodes, ours())
	for name, st := range want {
		if states[name] != st {
			t.Errorf("%s: %v, want %v", name, states[name], st)
		}
	}
	if len(spans) != 2 || spans["a"].Prefix != netip.MustParsePrefix("10.244.1.0/24") || spans["b"].VTEP != netip.MustParseAddr("192.0.2.11") {
		t.Errorf("spans %v, want a's and b's", spans)
	}
	// Before this daemon published its network, neither the network nor
	// the subnet can be checked.
	states, _ = effective(nodes, registry.Network{})
	if states["other-net"] != NodeOK || states["outside"] != NodeOK {
		t.Errorf("without a network of its own: other-net %v, outside %v; want both ok", states["other-net"], states["outside"])
	}
	// The older Node gone, the younger claimant of its podCIDR takes it.
	delete(nodes, "a")
	states, spans = effective(nodes, ours())
	if states["same-cidr"] != NodeOK || spans["same-cidr"].Prefix != netip.MustParsePrefix("10.244.1.0/24") {
		t.Errorf("after a's deletion: same-cidr %v, span %v; want it to hold 10.244.1.0/24", states["same-cidr"], spans["same-cidr"])
	}
}

// TestAgreed: the network to agree on is the one most other annotated
// Nodes run (between as many, the oldest Node's); this node's own
// annotation and Nodes being deleted do not count.
func TestAgreed(t *testing.T) {
	other := strings.Replace(testNetwork, "42", "43", 1)
	r := &Registry{opts: Options{NodeName: "self"}, nodes: map[string]nodeInfo{}}
	add := func(n *nodeObject) { r.nodes[n.Name] = parseNode(n) }
	if _, _, _, ok := r.agreed(); ok {
		t.Errorf("a network agreed with no Node annotated")
	}
	add(node("self", 0, "192.0.2.1", other, "10.244.0.0/24"))
	add(node("hostile", 9, "192.0.2.9", other, "10.244.9.0/24"))
	add(node("old", 1, "192.0.2.2", testNetwork, "10.244.1.0/24"))
	if n, runs, total, ok := r.agreed(); !ok || n != ours() || runs != 1 || total != 2 {
		t.Errorf("agreed %v (%d of %d, %v), want the oldest's of a tie", n, runs, total, ok)
	}
	add(node("b", 2, "192.0.2.3", testNetwork, "10.244.2.0/24"))
	gone := node("leaving", 3, "192.0.2.4", other, "10.244.3.0/24")
	gone.DeletionTimestamp = new(time.Unix(2_000_000, 0))
	add(gone)
	add(node("c", 4, "192.0.2.5", other, "10.244.4.0/24"))
	if n, runs, total, _ := r.agreed(); n != ours() || runs != 2 || total != 4 {
		t.Errorf("agreed %v (%d of %d), want 42's, 2 of 4", n, runs, total)
	}
	add(node("d", 5, "192.0.2.6", other, "10.244.5.0/24"))
	add(node("e", 6, "192.0.2.7", other, "10.244.6.0/24"))
	if n, runs, _, _ := r.agreed(); n.VNI != 43 || runs != 4 {
		t.Errorf("agreed %v (%d), want 43's, the majority's", n, runs)
	}
}

// FuzzParseNode: whatever a Node's annotations and podCIDRs hold, parsing
// them never panics, a sound Node has a unicast IPv4 VTEP, a network with
// a VNI, a port and a gateway, and an IPv4 network prefix as its span, and
// the Node sent as JSON and decoded parses the same.
func FuzzParseNode(f *testing.F) {
	f.Add("192.0.2.10", testNetwork, "10.244.1.0/24", "fd00::/64")
	f.Add("not-an-ip", `{"vni":`, "ten", "")
	f.Add("::ffff:192.0.2.1", `{"vni":42,"port":1,"mtu":0,"gateway":"::1/1"}`, "10.244.1.7/24", "10.0.0.0/8")
	f.Fuzz(func(t *testing.T, vtep, network, cidr1, cidr2 string) {
		n := node("n", 0, vtep, network, cidr1, cidr2)
		ni := parseNode(n)
		if ni.state == NodeOK {
			if !ni.vtep.Is4() || ni.vtep.IsMulticast() || ni.vtep.IsLoopback() || ni.vtep.IsUnspecified() {
				t.Errorf("sound Node with VTEP %v (%q)", ni.vtep, vtep)
			}
			if ni.network.VNI == 0 || ni.network.Port == 0 || !ni.network.Gateway.IsValid() {
				t.Errorf("sound Node with network %+v (%q)", ni.network, network)
			}
			if !ni.span.Addr().Is4() || ni.span != ni.span.Masked() {
				t.Errorf("sound Node with span %v", ni.span)
			}
		}
		b, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		var decoded nodeObject
		if err := json.Unmarshal(b, &decoded); err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		if got := parseNode(&decoded); !got.same(ni) {
			t.Errorf("decoded %+v, sent %+v", got, ni)
		}
	})
}
