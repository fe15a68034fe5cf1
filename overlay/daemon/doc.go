// Package daemon is the node daemon behind `overlayd run`, as a library: it
// finds the overlay a node's state directory records, opens the store
// (registry.Open with the shipped schemes, package stores, unless
// Config.Schemes says otherwise; on a store with leases, etcd, under a lease
// that holds this node's records, re-registering its endpoints and adopting
// later local attaches), discovers the vxlan device and the bridge in the
// overlay namespace, and runs the miss resolver fed by a monitor of that
// namespace, with its Prometheus metrics served over HTTP. It owns the
// wiring, not the parts: node setup is package overlay, the resolver
// package resolver (the daemon takes only its Tuning), the stores package
// registry. An error caused by one setting is a *SettingError naming it.
package daemon
