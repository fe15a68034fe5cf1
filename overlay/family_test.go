package overlay

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/dirstore"
	"github.com/overlaynet/overlaynet/overlay/registry/kubenode"
)

// TestCheckSpansFamily: on a store of spans (the Kubernetes node view) an
// IPv6 prefix or an IPv6 VTEP is refused, an IPv4 overlay is not; other
// stores are not checked.
func TestCheckSpansFamily(t *testing.T) {
	kube := kubenode.New(t.TempDir())
	dir, err := dirstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	v4 := netip.MustParseAddr("192.0.2.2")
	v6 := netip.MustParseAddr("2001:db8::2")
	gw := netip.MustParsePrefix("198.51.100.1/24")
	gw6 := netip.MustParsePrefix("2001:db8:42::1/64")
	for _, c := range []struct {
		name    string
		reg     registry.Registry
		vtep    netip.Addr
		gateway netip.Prefix
		refused bool
	}{
		{"kube ipv4", kube, v4, netip.Prefix{}, false},
		{"kube dual-stack", kube, v4, gw6, true},
		{"kube ipv6 underlay", kube, v6, netip.Prefix{}, true},
		{"dir dual-stack ipv6 underlay", dir, v6, gw6, false},
		{"no registry", nil, v6, gw6, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ov := Overlay{VTEP: c.vtep, Config: Config{Gateway: gw, Gateway6: c.gateway}}
			err := CheckSpansFamily(c.reg, ov)
			if got := errors.Is(err, ErrSpansIPv4Only); got != c.refused {
				t.Fatalf("CheckSpansFamily = %v, want refused %v", err, c.refused)
			}
		})
	}
}
