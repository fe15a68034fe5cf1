// Package daemon is the node daemon behind `overlayd run`, as a library: it
// finds the overlay a node's state directory records, opens the registry
// (on etcd, under a lease that holds this node's records, re-registering its
// endpoints and adopting later local attaches), discovers the vxlan device
// and the bridge in the overlay namespace, and runs the miss resolver fed by
// a monitor of that namespace, with its Prometheus metrics served over
// HTTP. It owns the wiring, not the parts: node setup is package overlay,
// the resolver package resolver, the registries package registry.
package daemon
