package daemon

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/resolver"
)

// TestREADMEMetrics: every metric the README names is exported by a
// daemon in hybrid mode or by one on the directory store, reactive (a
// # TYPE line in its exposition).
func TestREADMEMetrics(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile("`(overlayd_[a-z_]+)`").FindAllStringSubmatch(string(readme), -1)
	if len(names) < 8 {
		t.Fatalf("README names %d metrics, want the 8 of its metrics paragraph", len(names))
	}
	// A store with a change feed (leaseRegistry), for a daemon in hybrid
	// mode.
	schemes := map[string]registry.Opener{"daemontest": func(context.Context, string, registry.Options) (registry.Registry, error) {
		return &leaseRegistry{}, nil
	}}
	d, err := open(t.Context(), Config{Node: writeState(t), Store: "daemontest:", Schemes: schemes,
		Resolver: resolver.Tuning{Mode: resolver.ModeHybrid}}, newFakeKernel())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var b bytes.Buffer
	if err := d.Metrics().WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	dir, err := open(t.Context(), Config{Node: writeState(t), Store: "dir:" + t.TempDir()}, newFakeKernel())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	if err := dir.Metrics().WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	for _, m := range names {
		if !strings.Contains(b.String(), "# TYPE "+m[1]+" ") {
			t.Errorf("README names %s; the daemon does not export it", m[1])
		}
	}
}
