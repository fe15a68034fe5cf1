package rtnl_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies enforces that rtnl builds on the standard library,
// golang.org/x/sys and the leaf package ethaddr (itself standard library
// only) alone, so appliances can embed it.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/overlaynet/overlaynet/rtnl/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		first := strings.SplitN(pkg, "/", 2)[0]
		switch {
		case !strings.Contains(first, "."): // standard library
		case strings.HasPrefix(pkg, "golang.org/x/sys/"):
		case strings.HasPrefix(pkg, "github.com/overlaynet/overlaynet/rtnl"):
		case pkg == "github.com/overlaynet/overlaynet/ethaddr":
		default:
			t.Errorf("rtnl depends on %s: only the standard library, golang.org/x/sys and ethaddr are allowed", pkg)
		}
	}
}
