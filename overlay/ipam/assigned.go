package ipam

import (
	"context"
	"fmt"
	"net/netip"
)

// Assigned blocks: where a node's blocks are assigned to it by someone else
// (Config.Assigned: the Kubernetes store, a Node's podCIDRs) the allocator
// claims nothing and releases nothing in a store; it hands out the
// addresses of those blocks, recording each in the allocation directory as
// usual. A block's own first and last addresses are not handed out (as
// host-local does), nor the overlay subnet's reserved ones, nor the
// node's own address (NodeAddress).

// assigned returns the node's blocks of the overlay's family, each checked
// to be inside the subnet (an error wrapping ErrOutside otherwise).
func (a *Allocator) assigned(ctx context.Context) ([]netip.Prefix, error) {
	all, err := a.cfg.Assigned(ctx)
	if err != nil {
		return nil, fmt.Errorf("ipam: this node's blocks: %w", err)
	}
	var out []netip.Prefix
	for _, b := range all {
		if b.Addr().Is4() != a.subnet.Addr().Is4() {
			continue // another family's (the other podCIDR of a dual-stack cluster)
		}
		if b.Bits() < a.subnet.Bits() || !a.subnet.Contains(b.Addr()) {
			return nil, fmt.Errorf("%w: block %s assigned to this node is outside the overlay subnet %s (the overlay's gateway prefix must hold the range the blocks are cut from)", ErrOutside, b, a.subnet)
		}
		out = append(out, b.Masked())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no %s block among those assigned to this node %v", ErrExhausted, familyName(a.subnet.Addr()), all)
	}
	return out, nil
}

// reservedIn says why ip of block b is not handed out, or "".
func (a *Allocator) reservedIn(b netip.Prefix, ip netip.Addr) string {
	switch {
	case ip == b.Addr():
		return "is its block's first address"
	case ip == lastAddr(b):
		return "is its block's last address"
	}
	return a.reserved(ip)
}

// nodeAddress is the first address of blocks that reservedIn allows.
func (a *Allocator) nodeAddress(blocks []netip.Prefix) (netip.Addr, bool) {
	for _, b := range blocks {
		for ip := b.Addr(); b.Contains(ip); ip = ip.Next() {
			if a.reservedIn(b, ip) == "" {
				return ip, true
			}
		}
	}
	return netip.Addr{}, false
}

// NodeAddress returns the node's own address on the overlay of gateway,
// whose containers take their addresses from the assigned blocks: the
// first address of its (IPv4) blocks a container could have, which no
// container gets (the node is reached there over the overlay, for the
// traffic it forwards back into it: a Service's). A block outside the
// subnet is an error wrapping ErrOutside.
func NodeAddress(gateway netip.Prefix, blocks []netip.Prefix) (netip.Addr, error) {
	a, err := New(Config{Dir: "-", Owner: "-", Gateway: gateway,
		Assigned: func(context.Context) ([]netip.Prefix, error) { return blocks, nil }})
	if err != nil {
		return netip.Addr{}, err
	}
	own, err := a.assigned(context.Background())
	if err != nil {
		return netip.Addr{}, err
	}
	ip, ok := a.nodeAddress(own)
	if !ok {
		return netip.Addr{}, fmt.Errorf("%w: blocks %v hold no address for the node", ErrExhausted, own)
	}
	return ip, nil
}

// allocateAssigned is Allocate with assigned blocks; the caller holds the
// lock and read held.
func (a *Allocator) allocateAssigned(ctx context.Context, id string, want netip.Addr, held map[netip.Addr]string) (netip.Prefix, error) {
	blocks, err := a.assigned(ctx)
	if err != nil {
		return netip.Prefix{}, err
	}
	node, _ := a.nodeAddress(blocks)
	if want.IsValid() {
		var in netip.Prefix
		for _, b := range blocks {
			if b.Contains(want) {
				in = b
			}
		}
		switch {
		case !in.IsValid():
			return netip.Prefix{}, fmt.Errorf("%w: %s is outside this node's blocks %v", ErrOutside, want, blocks)
		case want == node:
			return netip.Prefix{}, fmt.Errorf("%w: %s is the node's own address", ErrOutside, want)
		}
		if why := a.reservedIn(in, want); why != "" {
			return netip.Prefix{}, fmt.Errorf("%w: %s %s", ErrOutside, want, why)
		}
		return a.allocateWanted(id, want, held)
	}
	for _, b := range blocks {
		for ip := b.Addr(); b.Contains(ip); ip = ip.Next() {
			if _, taken := held[ip]; taken || ip == node || a.reservedIn(b, ip) != "" {
				continue
			}
			return a.record(id, ip)
		}
	}
	return netip.Prefix{}, fmt.Errorf("%w: this node's blocks %v are full", ErrExhausted, blocks)
}

// usageAssigned is Usage with assigned blocks.
func (a *Allocator) usageAssigned(held map[netip.Addr]string) ([]BlockUsage, error) {
	blocks, err := a.assigned(context.Background())
	if err != nil {
		return nil, err
	}
	node, _ := a.nodeAddress(blocks)
	var out []BlockUsage
	for _, b := range blocks {
		out = append(out, blockUsage(b, held, func(ip netip.Addr) bool { return ip == node || a.reservedIn(b, ip) != "" }))
	}
	return out, nil
}

// familyName is "IPv4" or "IPv6", a's family.
func familyName(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}
