package dirstore

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// NetworkFile is the file, in a Store's root, of the overlay's network: one
// line of JSON, {"vni":42,"port":4789,"mtu":1450,"gateway":"198.51.100.1/24"}.
const NetworkFile = "config"

// PublishNetwork records n in ROOT/config if the file does not exist yet,
// atomically as every record (a hard link of a complete, fsynced file: of
// two nodes publishing at once, one wins); otherwise the recorded network
// must equal n (see registry.NetworkStore).
func (s *Store) PublishNetwork(ctx context.Context, n registry.Network) error {
	b, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("dirstore: %w", err)
	}
	path := filepath.Join(s.root, NetworkFile)
	sweepTempIn(s.root, StaleTemp) // a dead writer's, by the next one (best effort)
	created, have, err := createExclusive(path, string(b))
	if err != nil || created {
		return err
	}
	h, err := parseNetwork(path, have)
	if err != nil {
		return err
	}
	return registry.CheckNetwork(n, h)
}

// Network returns the network recorded in ROOT/config.
func (s *Store) Network(ctx context.Context) (registry.Network, error) {
	path := filepath.Join(s.root, NetworkFile)
	v, err := readValue(path)
	if err != nil {
		return registry.Network{}, err
	}
	return parseNetwork(path, v)
}

// parseNetwork decodes the network file's content.
func parseNetwork(path, v string) (registry.Network, error) {
	var n registry.Network
	if err := json.Unmarshal([]byte(v), &n); err != nil {
		return registry.Network{}, fmt.Errorf("dirstore: %s: malformed network config: %w", path, err)
	}
	return n, nil
}
