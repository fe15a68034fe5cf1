// Package resolver answers a VXLAN overlay's kernel misses from the shared
// registry: it owns the miss resolver (Resolver: filtering, coalescing,
// negative cache, backpressure, the scan budget charged to keys the registry
// did not list), the programmer that writes neighbour and FDB entries to the
// kernel at once, in batches of what accumulates meanwhile, and marks them,
// the reconcile pass that keeps them in line with the registry, the
// change-feed follower of the proactive and hybrid modes (Mode, ParseMode),
// and the resolver's Prometheus metrics (Metrics). New takes a Config: the
// wiring a caller must supply (the kernel socket, the registry, the
// overlay's devices and subnet, logger, metrics, change feed) and the
// Tuning, whose defaults `overlayd run` and the benchmarks share
// (DefaultTuning, DefaultMonitorConfig). It builds no devices: package
// overlay does, and package daemon wires both together.
package resolver
