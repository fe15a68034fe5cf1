package kubereg

import (
	"context"
	"net/netip"
	"testing"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

const encNetwork = `{"vni":42,"port":4789,"mtu":1390,"gateway":"10.244.0.1/16","encrypt":true,"tunnel":"169.254.32.0/19"}`

func memberJSON(t *testing.T, vtep, owner string) string {
	t.Helper()
	v, err := registry.MarshalMember(registry.Member{VTEP: netip.MustParseAddr(vtep), Owner: owner,
		Endpoint: netip.MustParseAddrPort("192.0.2.10:51820"), PublicKey: "8hsKonWxEod7rQdk4KnWxWAb0UJQpP8i3VAxdJDpjx8="})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestKubeMembers: an encrypted overlay's Nodes carry their member records
// as an annotation: a link-local VTEP is sound inside the network's tunnel
// subnet only; Members gives each valid one, the older Node's where two
// claim one tunnel address, and names the others as rejected.
func TestKubeMembers(t *testing.T) {
	a := node("a", 0, "169.254.34.10", encNetwork, "10.244.1.0/24")
	a.Annotations[AnnotationMember] = memberJSON(t, "169.254.34.10", "aaa")
	b := node("b", 1, "169.254.34.10", encNetwork, "10.244.2.0/24")
	b.Annotations[AnnotationMember] = memberJSON(t, "169.254.34.10", "bbb")
	c := node("c", 2, "169.254.34.12", encNetwork, "10.244.3.0/24")
	c.Annotations[AnnotationMember] = `{"vtep":"169.254.34.12","public_key":"junk"}`
	d := node("d", 3, "169.254.34.13", testNetwork, "10.244.4.0/24") // link-local without encryption
	r := &Registry{nodes: map[string]nodeInfo{}}
	r.synced.Store(true)
	for _, n := range []*nodeObject{a, b, c, d} {
		ni := parseNode(n)
		r.nodes[ni.name] = ni
	}
	if st := r.nodes["a"].state; st != NodeOK {
		t.Errorf("a Node of an encrypted overlay with a link-local tunnel address: %v", st)
	}
	if st := r.nodes["d"].state; st != NodeBadVTEP {
		t.Errorf("a link-local VTEP without encryption: %v", st)
	}
	mm, rej, err := r.Members(context.Background())
	if err != nil || len(mm) != 1 || mm[0].Owner != "aaa" || len(rej) != 2 {
		t.Fatalf("members %+v rejected %v, %v", mm, rej, err)
	}
	for _, rj := range rej {
		if rj.Key != "nodes/b/wireguard" && rj.Key != "nodes/c/wireguard" {
			t.Errorf("rejected %v", rj)
		}
	}
	r.opts.NodeName = "c"
	if err := r.ClaimMember(context.Background(), mm[0]); err == nil {
		t.Error("a claim of an address another Node holds was not refused")
	}
}
