package overlay

import (
	"context"
	"errors"
	"fmt"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// Network returns the overlay-wide settings of c, those every node of the
// overlay must share. The underlay's family is known from c only with
// Local: Overlay.Network has it from the VTEP Create chose.
func (c Config) Network() registry.Network {
	n := registry.Network{VNI: c.VNI, Port: c.Port, MTU: c.MTU, Gateway: c.Gateway}
	if c.DualStack() {
		n.Gateway6, n.BlockBits6 = c.Gateway6, c.EffectiveBlockBits6()
	}
	n.Underlay6 = c.Local.IsValid() && FamilyOf(c.Local) == IPv6
	if c.Encrypt != nil {
		n.Encrypt, n.Tunnel = true, c.Encrypt.Tunnel
	}
	return n
}

// StoreDevice is the Mismatch.Device of a difference with the network
// recorded in the registry.
const StoreDevice = "store"

// storeMismatches compares n with the network recorded in reg, if reg
// records one (registry.NetworkStore), and returns the differences.
// Nothing is written.
func storeMismatches(ctx context.Context, reg registry.Registry, n registry.Network) ([]Mismatch, error) {
	ns, ok := reg.(registry.NetworkStore)
	if !ok {
		return nil, nil
	}
	have, err := ns.Network(ctx)
	if errors.Is(err, registry.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("overlay: read the overlay's network from the store: %w", err)
	}
	var mm []Mismatch
	for _, d := range registry.DiffNetwork(n, have) {
		mm = append(mm, Mismatch{Device: StoreDevice, Field: d.Field, Want: d.Want, Have: d.Have})
	}
	return mm, nil
}

// PublishNetwork records the network of ov (Overlay.Network) in reg if reg
// records networks (registry.NetworkStore) and none is recorded yet; a
// recorded network that differs is a *registry.NetworkMismatchError naming
// each difference (matching registry.ErrConflict). Registries without
// networks accept anything.
func PublishNetwork(ctx context.Context, reg registry.Registry, ov Overlay) error {
	ns, ok := reg.(registry.NetworkStore)
	if !ok {
		return nil
	}
	if err := ns.PublishNetwork(ctx, ov.Network()); err != nil {
		var mm *registry.NetworkMismatchError
		if errors.As(err, &mm) {
			return err
		}
		return fmt.Errorf("overlay: publish the overlay's network in the store: %w", err)
	}
	return nil
}
