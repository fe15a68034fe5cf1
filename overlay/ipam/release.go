package ipam

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Release returns ip to the pool if id holds it; an address not held by id
// is left alone and not an error.
func (a *Allocator) Release(ctx context.Context, id string, ip netip.Addr) error {
	unlock, err := a.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := a.release(id, ip); err != nil {
		return err
	}
	return a.releaseIfEmpty(ctx, ip)
}

// releaseIfEmpty gives back the block of ip if this node holds it and no
// address of it is allocated any more, so that a node holds only blocks it
// uses. The caller holds the lock.
func (a *Allocator) releaseIfEmpty(ctx context.Context, ip netip.Addr) error {
	if !a.subnet.Contains(ip) || a.cfg.Assigned != nil {
		return nil
	}
	b := netip.PrefixFrom(ip, a.bits).Masked()
	held, err := a.readAll()
	if err != nil {
		return err
	}
	for h := range held {
		if b.Contains(h) {
			return nil
		}
	}
	if a.cfg.Store == nil {
		return errNoStore
	}
	blocks, err := a.cfg.Store.Blocks(ctx)
	if err != nil {
		return fmt.Errorf("ipam: list blocks: %w", err)
	}
	if blocks[b] != a.cfg.Owner {
		return nil
	}
	if err := a.cfg.Store.ReleaseBlock(ctx, b, a.cfg.Owner); err != nil {
		return fmt.Errorf("ipam: release block %s: %w", b, err)
	}
	a.unmarkBlock(b)
	a.log.Info("released empty address block", "block", b, "owner", a.cfg.Owner)
	return nil
}

func (a *Allocator) release(id string, ip netip.Addr) error {
	path := filepath.Join(a.cfg.Dir, ip.String())
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	if strings.TrimSpace(string(b)) != id {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ipam: %w", err)
	}
	a.log.Debug("released", "ip", ip, "id", id)
	return nil
}

// ReleaseID releases every address id holds and returns them.
func (a *Allocator) ReleaseID(ctx context.Context, id string) ([]netip.Addr, error) {
	unlock, err := a.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	held, err := a.readAll()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	var errs []error
	for ip, h := range held {
		if h != id {
			continue
		}
		if err := a.release(id, ip); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := a.releaseIfEmpty(ctx, ip); err != nil {
			errs = append(errs, err)
		}
		out = append(out, ip)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out, errors.Join(errs...)
}

// ReleaseEmpty gives back every block this node holds in the store with no
// address allocated in it, and forgets local marks of blocks it does not
// hold, and returns the blocks given back. A node holds only blocks it
// uses (the last release gives a block back): an empty one is what an
// allocation killed between claiming the block and recording its address
// left.
func (a *Allocator) ReleaseEmpty(ctx context.Context) ([]netip.Prefix, error) {
	if a.cfg.Assigned != nil {
		return nil, nil // nothing claimed: the blocks are assigned
	}
	if a.cfg.Store == nil {
		return nil, errNoStore
	}
	unlock, err := a.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	held, err := a.readAll()
	if err != nil {
		return nil, err
	}
	blocks, err := a.cfg.Store.Blocks(ctx)
	if err != nil && len(blocks) == 0 {
		return nil, fmt.Errorf("ipam: list blocks: %w", err)
	}
	used := func(b netip.Prefix) bool {
		for ip := range held {
			if b.Contains(ip) {
				return true
			}
		}
		return false
	}
	var out []netip.Prefix
	var errs []error
	mine := map[netip.Prefix]bool{}
	for _, b := range a.own(blocks) {
		mine[b] = true
		if used(b) {
			continue
		}
		if err := a.cfg.Store.ReleaseBlock(ctx, b, a.cfg.Owner); err != nil {
			errs = append(errs, fmt.Errorf("ipam: release block %s: %w", b, err))
			continue
		}
		a.unmarkBlock(b)
		a.log.Info("released an address block with no allocation", "block", b, "owner", a.cfg.Owner)
		out = append(out, b)
	}
	if err == nil {
		marked, _ := a.markedBlocks()
		for _, b := range marked {
			if !mine[b] && !used(b) {
				a.unmarkBlock(b)
			}
		}
	}
	return out, errors.Join(errs...)
}

// Allocations returns this node's allocations, sorted by address.
func (a *Allocator) Allocations() ([]Allocation, error) {
	held, err := a.readAll()
	if err != nil {
		return nil, err
	}
	out := make([]Allocation, 0, len(held))
	for ip, id := range held {
		out = append(out, Allocation{IP: ip, ID: id})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP.Less(out[j].IP) })
	return out, nil
}

// Usage returns this node's blocks with their use, sorted, from the
// allocation directory alone (which mirrors the blocks this node claimed):
// it does not ask the store.
func (a *Allocator) Usage() ([]BlockUsage, error) {
	held, err := a.readAll()
	if err != nil {
		return nil, err
	}
	if a.cfg.Assigned != nil {
		return a.usageAssigned(held)
	}
	mine, err := a.markedBlocks()
	if err != nil {
		return nil, err
	}
	var out []BlockUsage
	for _, b := range mine {
		out = append(out, blockUsage(b, held, func(ip netip.Addr) bool { return a.reserved(ip) != "" }))
	}
	return out, nil
}

// blockUsage counts the addresses of b that skip does not leave out, and
// those of them held.
func blockUsage(b netip.Prefix, held map[netip.Addr]string, skip func(netip.Addr) bool) BlockUsage {
	u := BlockUsage{Block: b}
	for ip := b.Addr(); b.Contains(ip); ip = ip.Next() {
		if skip(ip) {
			continue
		}
		u.Size++
		if _, ok := held[ip]; ok {
			u.Used++
		}
	}
	return u
}

// ReleaseAll releases every allocation of this node and every block it
// holds (a node being reset). It goes on past failures and returns them.
func (a *Allocator) ReleaseAll(ctx context.Context) error {
	unlock, err := a.lock()
	if err != nil {
		return err
	}
	defer unlock()
	var errs []error
	held, err := a.readAll()
	if err != nil {
		errs = append(errs, err)
	}
	for ip, id := range held {
		if err := a.release(id, ip); err != nil {
			errs = append(errs, err)
		}
	}
	if a.cfg.Assigned != nil {
		return errors.Join(errs...) // nothing claimed
	}
	if a.cfg.Store == nil {
		return errors.Join(append(errs, errNoStore)...)
	}
	blocks, err := a.cfg.Store.Blocks(ctx)
	if err != nil {
		errs = append(errs, fmt.Errorf("ipam: list blocks: %w", err))
	}
	for _, b := range a.own(blocks) {
		if err := a.cfg.Store.ReleaseBlock(ctx, b, a.cfg.Owner); err != nil {
			errs = append(errs, fmt.Errorf("ipam: release block %s: %w", b, err))
			continue
		}
		a.unmarkBlock(b)
		a.log.Info("released address block", "block", b, "owner", a.cfg.Owner)
	}
	return errors.Join(errs...)
}

// Remove deletes the allocation directory if it holds no allocation of any
// subnet (after ReleaseAll, of every allocator sharing it), lock file and
// a killed writer's recordTemp included.
func (a *Allocator) Remove() error {
	held, err := a.readDir()
	if err != nil {
		return err
	}
	if len(held) > 0 {
		return fmt.Errorf("ipam: %s still holds %d allocations", a.cfg.Dir, len(held))
	}
	if err := os.Remove(filepath.Join(a.cfg.Dir, blocksSub)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ipam: %w (blocks still marked)", err)
	}
	if err := os.Remove(filepath.Join(a.cfg.Dir, recordTemp)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ipam: %w", err)
	}
	if err := os.Remove(filepath.Join(a.cfg.Dir, lockFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ipam: %w", err)
	}
	if err := os.Remove(a.cfg.Dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ipam: %w", err)
	}
	return nil
}
