package dirstore

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

var (
	_ registry.NodeLister     = (*Store)(nil)
	_ registry.NodeAdvertiser = (*Store)(nil)
)

// nodesDir holds the nodes advertised in the store: ROOT/nodes/<vtep>
// holds that address, one line. A node's daemon advertises its node when
// it starts; reset withdraws it.
const nodesDir = "nodes"

// maxNodeLen bounds a node file: the longest address text.
const maxNodeLen = len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255")

// AdvertiseNode makes ROOT/nodes/<vtep> hold vtep: left as it is when it
// does (a daemon's restart writes nothing), else a complete, fsynced file
// renamed into place (only this node writes it: no claim to win).
func (s *Store) AdvertiseNode(ctx context.Context, vtep netip.Addr) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path, err := s.addrPath(nodesDir, vtep)
	if err != nil {
		return err
	}
	value := vtep.String()
	if have, err := readValueMax(path, maxNodeLen); err == nil && have == value {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("dirstore: %w", err)
	}
	return replaceFile(path, value)
}

// WithdrawNode removes ROOT/nodes/<vtep>, if there.
func (s *Store) WithdrawNode(ctx context.Context, vtep netip.Addr) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path, err := s.addrPath(nodesDir, vtep)
	if err != nil {
		return err
	}
	return removeSynced(path)
}

// NodeVTEPs returns the addresses of the nodes advertised in ROOT/nodes,
// in the order of the directory's listing. A file that is no node (its
// name no canonical address, or its value not that address, too long, or
// not a regular file) is skipped.
func (s *Store) NodeVTEPs(ctx context.Context) ([]netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []netip.Addr
	err := s.eachAddrFile(nodesDir, maxNodeLen, func(vtep netip.Addr, v string) {
		if v == vtep.String() {
			out = append(out, vtep)
		}
	}, func(registry.Rejected) {})
	return out, err
}
