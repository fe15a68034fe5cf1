package ipam

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
)

// Allocate hands out an address to id (an endpoint name) and returns it with
// the subnet's prefix length. With want valid, that address or an error
// wrapping ErrOutside or ErrInUse; an address id holds already is returned
// again. Otherwise the first free address of this node's blocks, claiming a
// new block when they are full, or an error wrapping ErrExhausted.
func (a *Allocator) Allocate(ctx context.Context, id string, want netip.Addr) (netip.Prefix, error) {
	if err := validID(id); err != nil {
		return netip.Prefix{}, err
	}
	if a.cfg.Store == nil && a.cfg.Assigned == nil {
		return netip.Prefix{}, errNoStore
	}
	unlock, err := a.lock()
	if err != nil {
		return netip.Prefix{}, err
	}
	defer unlock()
	held, err := a.readAll()
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.cfg.Assigned != nil {
		return a.allocateAssigned(ctx, id, want, held)
	}
	if want.IsValid() {
		return a.allocateWanted(id, want, held)
	}
	blocks, err := a.cfg.Store.Blocks(ctx)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("ipam: list blocks: %w", err)
	}
	for _, b := range a.own(blocks) {
		if err := a.markBlock(b); err != nil {
			return netip.Prefix{}, err
		}
		if ip, ok, err := a.firstFree(ctx, b, held); err != nil {
			return netip.Prefix{}, err
		} else if ok {
			return a.record(id, ip)
		}
	}
	// Our blocks are full (or we have none): claim the first free block.
	// A block another node wins meanwhile is skipped.
	for b := range a.allBlocks() {
		if _, taken := blocks[b]; taken {
			continue
		}
		if overlapsClaimed(b, blocks) {
			continue
		}
		holder, err := a.cfg.Store.ClaimBlock(ctx, b, a.cfg.Owner)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("ipam: claim block %s: %w", b, err)
		}
		if holder != a.cfg.Owner {
			a.log.Debug("block claimed by another node meanwhile", "block", b, "holder", holder)
			continue
		}
		a.log.Info("claimed address block", "block", b, "owner", a.cfg.Owner)
		if err := a.markBlock(b); err != nil {
			return netip.Prefix{}, err
		}
		ip, ok, err := a.firstFree(ctx, b, held)
		if err != nil {
			return netip.Prefix{}, err
		}
		if ok {
			return a.record(id, ip)
		}
	}
	return netip.Prefix{}, fmt.Errorf("%w: every /%d block of %s is claimed and this node's are full", ErrExhausted, a.bits, a.subnet)
}

func (a *Allocator) allocateWanted(id string, want netip.Addr, held map[netip.Addr]string) (netip.Prefix, error) {
	if why := a.reserved(want); why != "" {
		return netip.Prefix{}, fmt.Errorf("%w: %s %s", ErrOutside, want, why)
	}
	if h, ok := held[want]; ok {
		if h == id {
			return netip.PrefixFrom(want, a.subnet.Bits()), nil
		}
		return netip.Prefix{}, fmt.Errorf("%w: %s is allocated to %q on this node", ErrInUse, want, h)
	}
	return a.record(id, want)
}

// firstFree returns the first address of block b neither held locally nor
// registered.
func (a *Allocator) firstFree(ctx context.Context, b netip.Prefix, held map[netip.Addr]string) (netip.Addr, bool, error) {
	for ip := b.Addr(); b.Contains(ip); ip = ip.Next() {
		if _, ok := held[ip]; ok || a.reserved(ip) != "" {
			continue
		}
		if a.cfg.InUse != nil {
			used, err := a.cfg.InUse(ctx, ip)
			if err != nil {
				return netip.Addr{}, false, fmt.Errorf("ipam: is %s registered: %w", ip, err)
			}
			if used {
				continue
			}
		}
		return ip, true, nil
	}
	return netip.Addr{}, false, nil
}

// own returns this node's blocks, sorted.
func (a *Allocator) own(blocks map[netip.Prefix]string) []netip.Prefix {
	var out []netip.Prefix
	for b, holder := range blocks {
		if holder == a.cfg.Owner && a.subnet.Overlaps(b) {
			out = append(out, b)
		}
	}
	sortPrefixes(out)
	return out
}

// allBlocks yields the subnet's blocks in address order (an IPv6 prefix
// has more than can be counted: the caller stops early).
func (a *Allocator) allBlocks() func(yield func(netip.Prefix) bool) {
	return func(yield func(netip.Prefix) bool) {
		for b := netip.PrefixFrom(a.subnet.Addr(), a.bits); b.IsValid() && a.subnet.Contains(b.Addr()); {
			if !yield(b) {
				return
			}
			next := lastAddr(b).Next()
			if !next.IsValid() {
				return // the end of the address space
			}
			b = netip.PrefixFrom(next, a.bits)
		}
	}
}

// overlapsClaimed reports whether b overlaps a claimed block of another
// size (nodes configured with different block sizes).
func overlapsClaimed(b netip.Prefix, blocks map[netip.Prefix]string) bool {
	for c := range blocks {
		if c != b && c.Overlaps(b) {
			return true
		}
	}
	return false
}

// record writes the allocation of ip to id; the caller holds the lock.
// The allocation appears whole or not at all: its owner is written to
// recordTemp, which is then linked to the address's name (failing if the
// name is taken), so that a writer killed half-way leaves no allocation of
// no one, only recordTemp (removed by the next holder of the lock).
func (a *Allocator) record(id string, ip netip.Addr) (netip.Prefix, error) {
	path := filepath.Join(a.cfg.Dir, ip.String())
	if _, err := os.Lstat(path); err == nil {
		return netip.Prefix{}, fmt.Errorf("%w: %s is allocated on this node", ErrInUse, ip)
	}
	tmp := filepath.Join(a.cfg.Dir, recordTemp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("ipam: %w", err)
	}
	_, werr := io.WriteString(f, id+"\n")
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Link(tmp, path)
	}
	os.Remove(tmp)
	if errors.Is(werr, fs.ErrExist) {
		return netip.Prefix{}, fmt.Errorf("%w: %s is allocated on this node", ErrInUse, ip)
	}
	if werr != nil {
		return netip.Prefix{}, fmt.Errorf("ipam: record %s: %w", ip, werr)
	}
	a.log.Debug("allocated", "ip", ip, "id", id)
	return netip.PrefixFrom(ip, a.subnet.Bits()), nil
}
