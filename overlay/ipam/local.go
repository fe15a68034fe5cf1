package ipam

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/overlaynet/overlaynet/internal/filelock"
)

// readAll reads the allocations of this allocator's subnet from the
// allocation directory: address → ID.
func (a *Allocator) readAll() (map[netip.Addr]string, error) {
	held, err := a.readDir()
	for ip := range held {
		if !a.subnet.Contains(ip) {
			delete(held, ip)
		}
	}
	return held, err
}

// readDir reads every allocation of the allocation directory, of any
// subnet (the other family's of a dual-stack overlay): address → ID.
func (a *Allocator) readDir() (map[netip.Addr]string, error) {
	ents, err := os.ReadDir(a.cfg.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[netip.Addr]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	held := make(map[netip.Addr]string, len(ents))
	for _, e := range ents {
		ip, err := netip.ParseAddr(e.Name())
		if err != nil {
			continue // the lock file, or foreign files
		}
		b, err := os.ReadFile(filepath.Join(a.cfg.Dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ipam: %w", err)
		}
		held[ip] = strings.TrimSpace(string(b))
	}
	return held, nil
}

const lockFile = ".lock"

// recordTemp is where an allocation is written before it is linked to its
// address's name (see record); the lock serialises its writers, and the
// next holder of the lock removes a killed writer's.
const recordTemp = ".record.tmp"

// blocksSub mirrors, in the allocation directory, the blocks this node
// holds in the store: one empty file per block, named as in the store.
const blocksSub = "blocks"

var errNoStore = errors.New("ipam: no block store (the registry cannot hold address blocks)")

// markBlock records locally that this node holds b.
func (a *Allocator) markBlock(b netip.Prefix) error {
	dir := filepath.Join(a.cfg.Dir, blocksSub)
	path := filepath.Join(dir, BlockName(b))
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	return nil
}

// unmarkBlock forgets b locally.
func (a *Allocator) unmarkBlock(b netip.Prefix) {
	os.Remove(filepath.Join(a.cfg.Dir, blocksSub, BlockName(b)))
}

// markedBlocks returns the blocks of this allocator's subnet recorded
// locally, sorted.
func (a *Allocator) markedBlocks() ([]netip.Prefix, error) {
	ents, err := os.ReadDir(filepath.Join(a.cfg.Dir, blocksSub))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	var out []netip.Prefix
	for _, e := range ents {
		if b, err := ParseBlockName(e.Name()); err == nil && a.subnet.Overlaps(b) {
			out = append(out, b)
		}
	}
	sortPrefixes(out)
	return out, nil
}

// lock takes the node-wide allocation lock (flock on Dir/.lock), creating
// Dir if needed, and returns its release. A recordTemp found then is a
// killed writer's (its writer held the lock): it is removed, so that the
// next operation of any kind (a DEL after a killed ADD) leaves none.
func (a *Allocator) lock() (func(), error) {
	if err := os.MkdirAll(a.cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	release, err := filelock.Exclusive(filepath.Join(a.cfg.Dir, lockFile))
	if err != nil {
		return nil, fmt.Errorf("ipam: lock: %w", err)
	}
	if err := os.Remove(filepath.Join(a.cfg.Dir, recordTemp)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		release()
		return nil, fmt.Errorf("ipam: a killed writer's %s: %w", recordTemp, err)
	}
	return release, nil
}

// validID checks an allocation ID: one line, not empty.
func validID(id string) error {
	if id == "" || strings.ContainsAny(id, "\n\r") {
		return fmt.Errorf("ipam: allocation ID %q is empty or not one line", id)
	}
	return nil
}
