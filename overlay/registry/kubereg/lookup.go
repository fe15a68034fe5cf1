package kubereg

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/kubenode"
)

// LookupMAC returns the MAC derived from ip when a span holds it, from
// memory (registry.ErrNotFound otherwise).
func (r *Registry) LookupMAC(_ context.Context, ip netip.Addr) (ethaddr.MAC, error) {
	r.mu.RLock()
	_, ok := r.index.Holding(ip)
	r.mu.RUnlock()
	if !ok {
		return ethaddr.MAC{}, fmt.Errorf("%w: no Node's podCIDR holds %s", registry.ErrNotFound, ip)
	}
	return registry.DeriveMAC(ip), nil
}

// LookupVTEP returns the VTEP of the span holding the address mac is
// derived from, from memory.
func (r *Registry) LookupVTEP(_ context.Context, mac ethaddr.MAC) (netip.Addr, error) {
	ip, ok := registry.DerivedIP(mac)
	if ok {
		r.mu.RLock()
		s, held := r.index.Holding(ip)
		r.mu.RUnlock()
		if held {
			return s.VTEP, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: %s is no MAC of a Node's podCIDR", registry.ErrNotFound, mac)
}

// own returns this node's state as kubenode records it.
func (r *Registry) own() (kubenode.State, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ni, ok := r.nodes[r.opts.NodeName]
	return kubenode.State{Node: r.opts.NodeName, VTEP: r.opts.VTEP, PodCIDRs: slices.Clone(ni.podCIDRs), Network: r.ours}, ok
}

// Register checks rec as kubenode.CheckRecord does (its IP in this node's
// podCIDR, its MAC derived, its VTEP this node's); nothing is written.
func (r *Registry) Register(_ context.Context, rec registry.Record) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	st, _ := r.own()
	return kubenode.CheckRecord(st, rec)
}

// Unregister does nothing: nothing was written.
func (r *Registry) Unregister(context.Context, registry.Record) error { return nil }

// List returns no record: containers are spans (Watch).
func (r *Registry) List(context.Context) ([]registry.Record, error) { return nil, nil }

// AssignedBlocks returns this node's podCIDRs (kubenode.NoPodCIDR when it
// has none).
func (r *Registry) AssignedBlocks(context.Context) ([]netip.Prefix, error) {
	st, _ := r.own()
	return kubenode.Blocks(st)
}
