// Package resolver answers a VXLAN overlay's kernel misses from the shared
// registry: it owns the miss resolver (Resolver: filtering, coalescing,
// negative cache, backpressure, the scan budget charged to keys the registry
// did not list), the programmer that writes neighbour and FDB entries to the
// kernel at once, in batches of what accumulates meanwhile, and marks them,
// the defaults `overlayd run` and the benchmarks share
// (DefaultResolverConfig, DefaultMonitorConfig), the
// reconcile pass that keeps them in line with the registry, the change-feed
// follower of the proactive and hybrid modes (Mode, ParseMode), and the
// resolver's Prometheus metrics (Metrics). It builds no devices: package
// overlay does, and package daemon wires both together.
package resolver
