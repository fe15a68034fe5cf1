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
	reasons := [...]string{"too_big", `odd"name`}
	Family(&b, "x_dropped_total", "counter", "Things dropped, by reason.", "reason", len(reasons),
		func(i int) (string, uint64) { return reasons[i], uint64(10 + i) })
	Family(&b, "x_none", "gauge", "A family with no sample.", "kind", 0, nil)
	want := "# HELP x_seconds Some latency.\n# TYPE x_seconds histogram\n" +
		"# HELP x_total Things done.\n# TYPE x_total counter\nx_total 3\n" +
		"# HELP x_on Whether x is on.\n# TYPE x_on gauge\nx_on 1\n" +
		"# HELP x_dropped_total Things dropped, by reason.\n# TYPE x_dropped_total counter\n" +
		"x_dropped_total{reason=\"too_big\"} 10\nx_dropped_total{reason=\"odd\\\"name\"} 11\n" +
		"# HELP x_none A family with no sample.\n# TYPE x_none gauge\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
