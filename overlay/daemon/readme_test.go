package daemon

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/resolver"
)

// feedScheme registers, once, a registry scheme whose stores have a change
// feed (leaseRegistry), for daemons in hybrid mode.
var feedScheme sync.Once

// TestREADMEMetrics: every metric the README names is exported by a
// daemon in hybrid mode (a # TYPE line in its exposition).
func TestREADMEMetrics(t *testing.T) {
	feedScheme.Do(func() {
		registry.RegisterScheme("daemontest", func(string) (registry.Registry, error) { return &leaseRegistry{}, nil })
	})
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile("`(overlayd_[a-z_]+)`").FindAllStringSubmatch(string(readme), -1)
	if len(names) < 8 {
		t.Fatalf("README names %d metrics, want the 8 of its metrics paragraph", len(names))
	}
	d, err := open(t.Context(), Config{Node: writeState(t), Store: "daemontest:", Resolver: resolver.Tuning{Mode: resolver.ModeHybrid}}, newFakeKernel())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var b bytes.Buffer
	if err := d.Metrics().WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	for _, m := range names {
		if !strings.Contains(b.String(), "# TYPE "+m[1]+" ") {
			t.Errorf("README names %s; the daemon does not export it", m[1])
		}
	}
}
