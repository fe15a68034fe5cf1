package promtext

import (
	"strings"
	"testing"
)

func TestFamilies(t *testing.T) {
	var b strings.Builder
	Header(&b, "x_seconds", "histogram", "Some latency.")
	Counter(&b, "x_total", "Things done.", 3)
	Gauge(&b, "x_on", "Whether x is on.", 1)
	want := "# HELP x_seconds Some latency.\n# TYPE x_seconds histogram\n" +
		"# HELP x_total Things done.\n# TYPE x_total counter\nx_total 3\n" +
		"# HELP x_on Whether x is on.\n# TYPE x_on gauge\nx_on 1\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
