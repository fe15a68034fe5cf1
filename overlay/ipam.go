package overlay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/overlaynet/overlaynet/internal/steps"
	"github.com/overlaynet/overlaynet/overlay/ipam"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// ipamDir is where a node records its address allocations, in its state
// directory.
const ipamDir = "ipam"

// ErrNoBlocks is returned when an address is to be allocated but the
// registry cannot hold address blocks.
var ErrNoBlocks = errors.New("overlay: the registry cannot hold address blocks: give an address")

// Allocator returns the address allocator of this node's overlay: blocks of
// NodeOptions.BlockBits claimed in the registry under this node's VTEP,
// allocations in STATE_DIR/ipam. It needs Create to have run and a
// registry that holds blocks (ErrNoBlocks otherwise).
func (n *Node) Allocator() (*ipam.Allocator, error) {
	st, err := n.loadOverlayState()
	if err != nil {
		return nil, err
	}
	a, err := n.allocator(st.Overlay)
	if err == nil && a == nil {
		err = ErrNoBlocks
	}
	return a, err
}

// allocator returns the IPv4 allocator of ov, or nil if the registry
// neither holds blocks nor assigns them.
func (n *Node) allocator(ov Overlay) (*ipam.Allocator, error) { return n.allocatorOf(ov, IPv4) }

// allocatorOf returns the allocator of ov's prefix of family f, or nil if
// the registry neither holds blocks nor assigns them: blocks of
// NodeOptions.BlockBits for IPv4, of the overlay's IPv6 block size for
// IPv6, sharing one allocation directory. A registry that assigns each
// node its blocks (registry.AssignedBlocks: Kubernetes podCIDRs) is asked
// for them at each allocation, each family's allocator taking the blocks
// of its family.
func (n *Node) allocatorOf(ov Overlay, f Family) (*ipam.Allocator, error) {
	if ab, ok := n.reg.(registry.AssignedBlocks); ok && n.reg != nil {
		return ipam.New(ipam.Config{
			Dir:      filepath.Join(n.stateDir, ipamDir),
			Owner:    ov.VTEP.String(),
			Gateway:  ov.Config.GatewayOf(f),
			Assigned: ab.AssignedBlocks,
			Logger:   n.log,
		})
	}
	bs, ok := n.reg.(registry.BlockStore)
	if !ok || n.reg == nil {
		return nil, nil
	}
	gw, bits := ov.Config.Gateway, n.blockBits
	if f == IPv6 {
		gw, bits = ov.Config.Gateway6, ov.Config.EffectiveBlockBits6()
	}
	return ipam.New(ipam.Config{
		Dir:       filepath.Join(n.stateDir, ipamDir),
		Store:     bs,
		Owner:     ov.VTEP.String(),
		Gateway:   gw,
		BlockBits: bits,
		InUse: func(ctx context.Context, ip netip.Addr) (bool, error) {
			_, err := n.reg.LookupMAC(ctx, ip)
			switch {
			case err == nil:
				return true, nil
			case errors.Is(err, registry.ErrNotFound):
				return false, nil
			}
			return false, err
		},
		Logger: n.log,
	})
}

// allocators returns the allocator of each of ov's families (IPv4 first),
// or none if the registry does not hold blocks.
func (n *Node) allocators(ov Overlay) ([]*ipam.Allocator, error) {
	var out []*ipam.Allocator
	for _, f := range ov.Config.Families() {
		a, err := n.allocatorOf(ov, f)
		if err != nil || a == nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// allocate gives req an address of each family it is to have (the wanted
// one, or a free one) from the node's allocators, as step stepAllocate of
// r (undone by releasing them). Without an allocator an explicit address
// is left as it is, and none is an error.
func (n *Node) allocate(ctx context.Context, r *steps.Runner, ov Overlay, req *AttachRequest) error {
	var made []netip.Prefix // released by the undo
	var as []*ipam.Allocator
	undo := func() error {
		var errs []error
		for i, p := range made {
			errs = append(errs, as[i].Release(context.WithoutCancel(ctx), req.Name, p.Addr()))
		}
		return errors.Join(errs...)
	}
	return r.Do(stepAllocate, func() error {
		for _, f := range req.families(ov.Config) {
			a, err := n.allocatorOf(ov, f)
			if err != nil {
				return errors.Join(err, undo())
			}
			p := req.ipOf(f)
			if a == nil {
				if !p.IsValid() {
					return errors.Join(ErrNoBlocks, undo())
				}
				continue
			}
			if p, err = allocateOne(ctx, a, req.Name, p); err != nil {
				return errors.Join(err, undo())
			}
			made, as = append(made, p), append(as, a)
			req.setIP(f, p)
		}
		return nil
	}, undo)
}

// allocateOne allocates want (or, invalid, a free address) to name from a.
func allocateOne(ctx context.Context, a *ipam.Allocator, name string, want netip.Prefix) (netip.Prefix, error) {
	var addr netip.Addr
	if want.IsValid() {
		addr = want.Addr()
	}
	p, err := a.Allocate(ctx, name, addr)
	if errors.Is(err, ipam.ErrInUse) {
		return p, fmt.Errorf("%w: %w", registry.ErrConflict, err)
	}
	if err != nil {
		return p, fmt.Errorf("overlay: allocate an %s address for %s: %w", FamilyOf(a.Subnet().Addr()), name, err)
	}
	return p, nil
}

// release returns e's addresses to the node's allocators, if it has them.
func (n *Node) release(ctx context.Context, ov *Overlay, e Endpoint) error {
	if ov == nil {
		return nil
	}
	var errs []error
	for _, p := range e.Addrs() {
		f := FamilyOf(p.Addr())
		if f == IPv6 && !ov.Config.DualStack() {
			continue
		}
		a, err := n.allocatorOf(*ov, f)
		if err != nil || a == nil {
			return err
		}
		errs = append(errs, a.Release(ctx, e.Name, p.Addr()))
	}
	return errors.Join(errs...)
}

// releaseAll releases every allocation and block of ov's node (Reset).
func (n *Node) releaseAll(ctx context.Context, ov Overlay) error {
	as, err := n.allocators(ov)
	if err != nil || len(as) == 0 {
		return err
	}
	for _, a := range as {
		if err := a.ReleaseAll(ctx); err != nil {
			return err
		}
	}
	return as[0].Remove()
}

// ReleaseOrphans releases, under the node's lock, every address allocated
// to an ID starting with prefix that no recorded endpoint holds (an
// attachment interrupted half-way, or removed without detach); an exact
// endpoint name as prefix releases that one name's. Without an overlay it
// returns ErrNotCreated; without blocks in the registry it does nothing.
func (n *Node) ReleaseOrphans(ctx context.Context, prefix string) error {
	unlock, err := n.lock()
	if err != nil {
		return err
	}
	defer unlock()
	ost, err := n.loadOverlayState()
	if err != nil {
		return err
	}
	as, err := n.allocators(ost.Overlay)
	if err != nil || len(as) == 0 {
		return err
	}
	eps, err := n.listEndpoints()
	if err != nil {
		return err
	}
	attached := map[string]bool{}
	for _, st := range eps {
		attached[st.Endpoint.Name] = true
	}
	var errs []error
	for _, a := range as {
		allocs, err := a.Allocations()
		if err != nil {
			return err
		}
		for _, al := range allocs {
			if !strings.HasPrefix(al.ID, prefix) || attached[al.ID] {
				continue
			}
			if err := a.Release(ctx, al.ID, al.IP); err != nil {
				errs = append(errs, err)
				continue
			}
			n.log.Info("released an address no endpoint holds", "ip", al.IP, "id", al.ID)
		}
	}
	return errors.Join(errs...)
}
