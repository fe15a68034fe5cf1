// Package bench compares overlaynet's rtnl layer and miss resolver with the
// Go netlink libraries in use today (github.com/vishvananda/netlink and
// github.com/jsimonetti/rtnetlink) and with the old lab's Python arpd, on
// the path that matters for a dynamic overlay: the kernel's miss
// notifications, from decoding them to the answer being in the kernel.
//
// It holds only benchmarks and the tests that back their claims:
//
//	BenchmarkDecodeMiss/<kind>/<impl>  one real kernel message from
//	                                   testdata/kernel decoded into the fields
//	                                   a resolver needs
//	BenchmarkMonitor/<impl>            misses raised in a throwaway namespace
//	                                   and consumed live (root)
//	BenchmarkResolveIsolated/gap=<5ms|20ms>/impl=<floor|overlayd|libnetwork|python>
//	                                   misses one at a time, each
//	                                   implementation in a process of its own
//	                                   (overlayd: the shipped binary) on a node
//	                                   made with the shipped binary, measured
//	                                   from the benchmark's: frame sent to both
//	                                   entries present, p50, p99, CPU per miss
//	                                   (root; -benchtime Nx, N misses)
//	BenchmarkResolveIsolatedFamily/gap=<5ms|20ms>/family=<ipv4|ipv6>
//	                                   the same for `overlayd run` on a
//	                                   dual-stack node: ARP requests and IPv6
//	                                   Neighbor Solicitations taking turns
//	BenchmarkResolve[Backlog]/n=<10000|50000>/registry=<dir|mem>/impl=<rtnl|vishvananda>
//	                                   bursts of distinct-IP misses, each sent
//	                                   once, resolved end to end: resolved/s,
//	                                   unresolved, p50, p99, CPU per IP (root;
//	                                   one op is one round: -benchtime 1x)
//	BenchmarkResolveScan/registry=<dir|mem>/impl=<rtnl|vishvananda>
//	                                   a 65,536-address scan beside legitimate
//	                                   misses: registry lookups the scan
//	                                   causes, legitimate p99 (-benchtime 1x)
//
// In the burst and scan benchmarks, impl=rtnl is the resolver exactly as
// `overlayd run` builds it with no flags (TestBenchmarkConfigIsTheDaemons),
// in the benchmark's process beside the libnetwork-way peer; the isolated
// benchmarks run `overlayd run` itself. rtnl's monitor drops the echoes of
// its own entries with a kernel socket filter (so does the C floor); the
// peers receive them and skip them in user space, as libnetwork and the lab
// did.
//
// Run them with `make bench` (benchstat -col /impl compares the
// implementations).
package bench
