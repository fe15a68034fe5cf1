// Package bench compares overlaynet's rtnl layer with the Go netlink
// libraries in use today (github.com/vishvananda/netlink and
// github.com/jsimonetti/rtnetlink) on the path that matters for a dynamic
// overlay: decoding and consuming the kernel's miss notifications.
//
// It holds only benchmarks and the tests that back their claims:
//
//	BenchmarkDecodeMiss/<kind>/<impl>  one real kernel message from
//	                                   testdata/kernel decoded into the fields
//	                                   a resolver needs
//	BenchmarkMonitor/<impl>            misses raised in a throwaway namespace
//	                                   and consumed live (root)
//
// Run them with `make bench` and compare runs with benchstat.
package bench
