package registry

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering checks the package layering of overlay/ with go list: no
// cycle (go list fails on one), the registry contract and its
// implementations free of rtnl and of node setup, the shipped stores
// (package stores) linked by none of them, the resolver free of node setup
// and node setup free of the resolver, and the daemon (the wiring) used by
// none of them nor by the CNI plugin.
func TestLayering(t *testing.T) {
	const mod = "github.com/overlaynet/overlaynet/"
	tests := []struct {
		pkg    string
		forbid []string
	}{
		{"overlay/registry", []string{"rtnl", "overlay", "overlay/resolver", "overlay/registry/dirstore", "overlay/registry/etcdreg", "overlay/registry/stores"}},
		{"overlay/registry/dirstore", []string{"rtnl", "overlay", "overlay/resolver", "overlay/registry/stores"}},
		{"overlay/registry/etcdreg", []string{"rtnl", "overlay", "overlay/resolver", "overlay/registry/stores"}},
		{"overlay/registry/kubereg", []string{"rtnl", "overlay", "overlay/resolver", "overlay/registry/stores", "overlay/daemon"}},
		{"overlay/registry/kubenode", []string{"rtnl", "overlay", "overlay/resolver", "overlay/registry/stores", "overlay/registry/kubereg"}},
		{"overlay/registry/stores", []string{"rtnl", "overlay", "overlay/resolver", "overlay/daemon"}},
		{"overlay/resolver", []string{"overlay", "overlay/registry/dirstore", "overlay/registry/etcdreg", "overlay/registry/stores"}},
		{"overlay", []string{"overlay/resolver", "overlay/registry/etcdreg", "overlay/registry/stores", "overlay/daemon"}},
		{"overlay/resolver", []string{"overlay/daemon"}},
		{"overlay/registry/etcdreg", []string{"overlay/daemon"}},
		{"overlay/guard", []string{"rtnl", "overlay", "overlay/resolver", "overlay/registry/dirstore", "overlay/registry/etcdreg", "overlay/daemon"}},
		// The CNI plugin opens stores through registry.Open; the daemon is
		// overlayd's.
		{"cmd/overlaynet", []string{"overlay/daemon", "overlay/resolver"}},
	}
	for _, tt := range tests {
		out, err := exec.Command("go", "list", "-deps", mod+tt.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", tt.pkg, err, out)
		}
		deps := strings.Fields(string(out))
		for _, f := range tt.forbid {
			for _, d := range deps {
				if d == mod+f {
					t.Errorf("%s depends on %s", tt.pkg, f)
				}
			}
		}
	}
}

// TestKubernetesClientIsKuberegs: the Kubernetes client is kubereg's own
// (kubereg/internal/kubeapi): no binary links a package of the Kubernetes
// project's modules (k8s.io/..., sigs.k8s.io/...: client-go, apimachinery,
// their YAML), with the default tags or without the client (nokube), and
// neither the registry contract nor the node's view (kubenode) links
// kubereg's client. make deps-check checks the binaries too.
func TestKubernetesClientIsKuberegs(t *testing.T) {
	const mod = "github.com/overlaynet/overlaynet/"
	for _, tc := range []struct{ tags, pkg string }{
		{"", "overlay/registry"},
		{"", "overlay/registry/kubenode"},
		{"", "overlay/resolver"},
		{"", "cmd/overlaynet"},
		{"", "cmd/overlayd"},
		{"nokube", "cmd/overlaynet"},
		{"nokube", "cmd/overlayd"},
	} {
		out, err := exec.Command("go", "list", "-tags", tc.tags, "-deps", mod+tc.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", tc.pkg, err, out)
		}
		client := tc.tags == "" && strings.HasPrefix(tc.pkg, "cmd/") // the binaries with the client
		for _, d := range strings.Fields(string(out)) {
			if strings.HasPrefix(d, "k8s.io/") || strings.HasPrefix(d, "sigs.k8s.io/") || (d == mod+"overlay/registry/kubereg/internal/kubeapi" && !client) {
				t.Errorf("%s (tags %q) links %s", tc.pkg, tc.tags, d)
				break
			}
		}
	}
}
