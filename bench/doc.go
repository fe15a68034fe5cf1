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
//	BenchmarkResolve/registry=<dir|mem>/impl=<rtnl|vishvananda>
//	                                   10,000 distinct-IP misses resolved end
//	                                   to end (miss -> lookup -> programming ->
//	                                   entry present), resolved/s, p50, p99
//	                                   (root; one op is one round: -benchtime 1x)
//
// Run them with `make bench` (benchstat -col /impl compares the implementations).
package bench
