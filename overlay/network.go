package overlay

import (
	"context"
	"errors"
	"fmt"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// Network returns the overlay-wide settings of c, those every node of the
// overlay must share.
func (c Config) Network() registry.Network {
	return registry.Network{VNI: c.VNI, Port: c.Port, MTU: c.MTU, Gateway: c.Gateway}
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

// PublishNetwork records the network of c in reg if reg records networks
// (registry.NetworkStore) and none is recorded yet; a recorded network that
// differs is a *registry.NetworkMismatchError naming each difference
// (matching registry.ErrConflict). Registries without networks accept
// anything.
func PublishNetwork(ctx context.Context, reg registry.Registry, c Config) error {
	ns, ok := reg.(registry.NetworkStore)
	if !ok {
		return nil
	}
	if err := ns.PublishNetwork(ctx, c.Network()); err != nil {
		var mm *registry.NetworkMismatchError
		if errors.As(err, &mm) {
			return err
		}
		return fmt.Errorf("overlay: publish the overlay's network in the store: %w", err)
	}
	return nil
}
