package rtnl_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies enforces that rtnl builds on the standard library and
// golang.org/x/sys alone, so appliances can embed it (its six-byte addresses
// are [6]byte, assignable to and from ethaddr.MAC without an import).
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
		default:
			t.Errorf("rtnl depends on %s: only the standard library and golang.org/x/sys are allowed", pkg)
		}
	}
}
