// Package promtext writes metric families in the Prometheus text
// exposition format (version 0.0.4): the HELP and TYPE lines of a family,
// its one unlabelled sample or its samples by one label, for the packages
// that export the node daemon's metrics.
package promtext

import (
	"fmt"
	"io"
)

// Header writes the HELP and TYPE lines of the family name, of type typ
// (counter, gauge, histogram).
func Header(w io.Writer, name, typ, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// Counter writes the counter family name with its one sample v.
func Counter(w io.Writer, name, help string, v uint64) {
	Header(w, name, "counter", help)
	fmt.Fprintf(w, "%s %d\n", name, v)
}

// Gauge writes the gauge family name with its one sample v.
func Gauge(w io.Writer, name, help string, v int64) {
	Header(w, name, "gauge", help)
	fmt.Fprintf(w, "%s %d\n", name, v)
}

// Family writes the HELP and TYPE lines of the family name, of type typ,
// and its n samples by label: sample(i) is the i-th sample's label value
// and value, written in that order.
func Family(w io.Writer, name, typ, help, label string, n int, sample func(i int) (string, uint64)) {
	Header(w, name, typ, help)
	for i := range n {
		v, x := sample(i)
		fmt.Fprintf(w, "%s{%s=%q} %d\n", name, label, v, x)
	}
}
