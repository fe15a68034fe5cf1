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

// allocator returns the allocator of ov, or nil if the registry neither
// holds blocks nor assigns them. A registry that assigns each node its
// blocks (registry.AssignedBlocks: Kubernetes podCIDRs) is asked for them
// at each allocation.
func (n *Node) allocator(ov Overlay) (*ipam.Allocator, error) {
	if ab, ok := n.reg.(registry.AssignedBlocks); ok && n.reg != nil {
		return ipam.New(ipam.Config{
			Dir:      filepath.Join(n.stateDir, ipamDir),
			Owner:    ov.VTEP.String(),
			Gateway:  ov.Config.Gateway,
			Assigned: ab.AssignedBlocks,
			Logger:   n.log,
		})
	}
	bs, ok := n.reg.(registry.BlockStore)
	if !ok || n.reg == nil {
		return nil, nil
	}
	return ipam.New(ipam.Config{
		Dir:       filepath.Join(n.stateDir, ipamDir),
		Store:     bs,
		Owner:     ov.VTEP.String(),
		Gateway:   ov.Config.Gateway,
		BlockBits: n.blockBits,
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

// allocate gives req an address (the wanted one, or a free one) from the
// node's allocator, as step stepAllocate of r (undone by releasing it).
// Without an allocator an explicit address is left as it is, and none is
// an error.
func (n *Node) allocate(ctx context.Context, r *steps.Runner, ov Overlay, req *AttachRequest) error {
	a, err := n.allocator(ov)
	if err != nil {
		return err
	}
	if a == nil {
		if !req.IP.IsValid() {
			return ErrNoBlocks
		}
		return nil
	}
	var want netip.Addr
	if req.IP.IsValid() {
		want = req.IP.Addr()
	}
	return r.Do(stepAllocate, func() error {
		p, err := a.Allocate(ctx, req.Name, want)
		if errors.Is(err, ipam.ErrInUse) {
			return fmt.Errorf("%w: %w", registry.ErrConflict, err)
		}
		if err != nil {
			return fmt.Errorf("overlay: allocate an address for %s: %w", req.Name, err)
		}
		req.IP = p
		return nil
	}, func() error { return a.Release(context.WithoutCancel(ctx), req.Name, req.IP.Addr()) })
}

// release returns e's address to the node's allocator, if it has one.
func (n *Node) release(ctx context.Context, ov *Overlay, e Endpoint) error {
	if ov == nil {
		return nil
	}
	a, err := n.allocator(*ov)
	if err != nil || a == nil {
		return err
	}
	return a.Release(ctx, e.Name, e.IP.Addr())
}

// releaseAll releases every allocation and block of ov's node (Reset).
func (n *Node) releaseAll(ctx context.Context, ov Overlay) error {
	a, err := n.allocator(ov)
	if err != nil || a == nil {
		return err
	}
	if err := a.ReleaseAll(ctx); err != nil {
		return err
	}
	return a.Remove()
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
	a, err := n.allocator(ost.Overlay)
	if err != nil || a == nil {
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
	allocs, err := a.Allocations()
	if err != nil {
		return err
	}
	var errs []error
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
	return errors.Join(errs...)
}
