package registry

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering checks the package layering of overlay/ with go list: no
// cycle (go list fails on one), the registry contract and its
// implementations free of rtnl and of node setup, the resolver free of node
// setup and node setup free of the resolver, and the daemon (the wiring)
// used by none of them.
func TestLayering(t *testing.T) {
	const mod = "github.com/overlaynet/overlaynet/"
	tests := []struct {
		pkg    string
		forbid []string
	}{
		{"overlay/registry", []string{"rtnl", "overlay", "overlay/resolver", "overlay/registry/dirstore", "overlay/registry/etcdreg"}},
		{"overlay/registry/dirstore", []string{"rtnl", "overlay", "overlay/resolver"}},
		{"overlay/registry/etcdreg", []string{"rtnl", "overlay", "overlay/resolver"}},
		{"overlay/resolver", []string{"overlay", "overlay/registry/dirstore", "overlay/registry/etcdreg"}},
		{"overlay", []string{"overlay/resolver", "overlay/registry/etcdreg", "overlay/daemon"}},
		{"overlay/resolver", []string{"overlay/daemon"}},
		{"overlay/registry/etcdreg", []string{"overlay/daemon"}},
		{"overlay/guard", []string{"rtnl", "overlay", "overlay/resolver", "overlay/registry/dirstore", "overlay/registry/etcdreg", "overlay/daemon"}},
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
