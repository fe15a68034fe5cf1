package dirstore

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/overlaynet/overlaynet/overlay/ipam"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// blocksDir holds the address blocks claimed by nodes (ipam): ROOT/blocks/
// <addr>-<bits> holds the claiming node's VTEP.
const blocksDir = "blocks"

func (s *Store) blockPath(b netip.Prefix) string {
	return filepath.Join(s.root, blocksDir, ipam.BlockName(b))
}

// ClaimBlock records owner as the holder of block with the same hard-link
// publication as the records: of two nodes claiming one block at once,
// exactly one link succeeds. It returns the holder after the call.
func (s *Store) ClaimBlock(ctx context.Context, b netip.Prefix, owner string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if b != b.Masked() || !b.IsValid() {
		return "", fmt.Errorf("dirstore: block %s is not a network prefix", b)
	}
	if owner == "" || strings.ContainsAny(owner, "\n/") {
		return "", fmt.Errorf("dirstore: block owner %q is empty or not one line", owner)
	}
	if err := os.MkdirAll(filepath.Join(s.root, blocksDir), 0o755); err != nil {
		return "", fmt.Errorf("dirstore: %w", err)
	}
	created, have, err := createExclusive(s.blockPath(b), owner)
	if err != nil {
		return "", err
	}
	if created {
		return owner, nil
	}
	return have, nil
}

// ReleaseBlock removes block's claim if owner holds it.
func (s *Store) ReleaseBlock(ctx context.Context, b netip.Prefix, owner string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return removeIfHolds(s.blockPath(b), owner)
}

// Blocks returns every claimed block with its holder. Malformed files are
// reported in the error, which comes with the blocks that could be read.
func (s *Store) Blocks(ctx context.Context) (map[netip.Prefix]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := map[netip.Prefix]string{}
	ents, err := os.ReadDir(filepath.Join(s.root, blocksDir))
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dirstore: %w", err)
	}
	var errs []error
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue // a temporary file being written
		}
		path := filepath.Join(s.root, blocksDir, e.Name())
		b, err := ipam.ParseBlockName(e.Name())
		if err != nil {
			errs = append(errs, fmt.Errorf("dirstore: %s: %w", path, err))
			continue
		}
		owner, err := readValue(path)
		if errors.Is(err, registry.ErrNotFound) {
			continue // released meanwhile
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[b] = owner
	}
	return out, errors.Join(errs...)
}
