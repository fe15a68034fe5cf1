package registry

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
)

// TestNetworkJSON: a network recorded before dual-stack (no gateway6, no
// underlay) reads as an IPv4 overlay on an IPv4 underlay, an IPv4 network
// is written as it was, and a dual-stack one on an IPv6 underlay carries
// its IPv6 gateway, block size and underlay family.
func TestNetworkJSON(t *testing.T) {
	const old = `{"vni":42,"port":4789,"mtu":1450,"gateway":"198.51.100.1/24"}`
	var n Network
	if err := json.Unmarshal([]byte(old), &n); err != nil {
		t.Fatal(err)
	}
	want := Network{VNI: 42, Port: 4789, MTU: 1450, Gateway: netip.MustParsePrefix("198.51.100.1/24")}
	if n != want || n.Gateway6.IsValid() || n.Underlay6 || n.UnderlayFamily() != "IPv4" {
		t.Fatalf("old network reads as %+v, want %+v", n, want)
	}
	if b, err := json.Marshal(n); err != nil || string(b) != old {
		t.Fatalf("IPv4 network written as %s (%v), want %s", b, err, old)
	}
	dual := want
	dual.MTU, dual.Gateway6, dual.BlockBits6, dual.Underlay6 = 1430, netip.MustParsePrefix("2001:db8:42::1/64"), 120, true
	b, err := json.Marshal(dual)
	const wantJSON = `{"vni":42,"port":4789,"mtu":1430,"gateway":"198.51.100.1/24","gateway6":"2001:db8:42::1/64","block_bits6":120,"underlay6":true}`
	if err != nil || string(b) != wantJSON {
		t.Fatalf("dual-stack network written as %s (%v), want %s", b, err, wantJSON)
	}
	var back Network
	if err := json.Unmarshal(b, &back); err != nil || back != dual {
		t.Fatalf("read back %+v (%v), want %+v", back, err, dual)
	}
}

// TestDiffNetworkIPv6: nodes disagreeing on the IPv6 gateway, its block size
// or the underlay's family are told each difference.
func TestDiffNetworkIPv6(t *testing.T) {
	have := Network{VNI: 42, Port: 4789, MTU: 1450, Gateway: netip.MustParsePrefix("198.51.100.1/24")}
	want := have
	want.Gateway6, want.BlockBits6, want.Underlay6 = netip.MustParsePrefix("2001:db8:42::1/64"), 120, true
	err := CheckNetwork(want, have)
	for _, w := range []string{"store IPv6 gateway: want 2001:db8:42::1/64, have (none)", "store IPv6 block bits: want 120, have 0",
		"store underlay: want IPv6, have IPv4"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("CheckNetwork = %v, want it to say %q", err, w)
		}
	}
	if err := CheckNetwork(want, want); err != nil {
		t.Errorf("the same network: %v", err)
	}
}
