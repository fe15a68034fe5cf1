// Package ipam hands out container addresses of an overlay subnet without
// anyone picking them by hand. A node claims address blocks of the subnet
// (DefaultBlockBits wide unless configured) in the shared registry, through
// a BlockStore: the claim is atomic, so of two nodes claiming the same block
// exactly one wins. It then hands out addresses from its own blocks,
// recording each allocation in its state directory, and claims another
// block when its blocks are full. Addresses are released on detach (or a
// CNI DEL, or GC), and a block with no address allocated any more is given
// back with its last one; a node that is reset releases all its blocks.
//
// An explicit address is honoured if it is inside the subnet, not reserved
// (network, broadcast, gateway) and not allocated on this node, even in a
// block another node holds: the registry's atomic IP record, which the
// caller registers next, is what keeps containers of two nodes apart.
// Automatic allocation skips addresses the registry holds (Config.InUse).
//
// Allocations of one node are serialised by a lock file in the allocation
// directory (flock), so parallel processes on a node (a runtime calling the
// CNI plugin for many containers at once) never hand out one address twice.
package ipam

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultBlockBits is the prefix length of a block when Config.BlockBits is
// 0: 64 addresses, so a /24 subnet serves four nodes and a /16 1024.
const DefaultBlockBits = 26

// BlockStore is where a node claims blocks: the registry shared by the
// nodes (the directory store and etcd implement it). Implementations are
// safe for concurrent use by several processes and nodes.
type BlockStore interface {
	// ClaimBlock records owner as the holder of block unless someone holds
	// it already, atomically: of two owners claiming one block at once
	// exactly one wins. It returns the holder after the call: owner if the
	// claim won or owner held the block already, else the other holder.
	ClaimBlock(ctx context.Context, block netip.Prefix, owner string) (holder string, err error)
	// ReleaseBlock removes block's claim if owner holds it; a block not
	// held by owner is not an error.
	ReleaseBlock(ctx context.Context, block netip.Prefix, owner string) error
	// Blocks returns every claimed block with its holder.
	Blocks(ctx context.Context) (map[netip.Prefix]string, error)
}

// Errors of an Allocator, wrapped with the details.
var (
	// ErrExhausted: every block of the subnet is claimed and this node's
	// blocks are full.
	ErrExhausted = errors.New("ipam: no free address")
	// ErrInUse: an explicit address is allocated or registered already.
	ErrInUse = errors.New("ipam: address in use")
	// ErrOutside: an explicit address is outside the subnet or reserved.
	ErrOutside = errors.New("ipam: address not available in the subnet")
)

// Config describes one node's allocator.
type Config struct {
	// Dir is where the node records its allocations (one file per address,
	// holding the allocation's ID) and its lock; typically STATE_DIR/ipam.
	Dir string
	// Store is the shared registry the blocks are claimed in; without one
	// the allocator can only report (Usage, Allocations).
	Store BlockStore
	// Owner identifies this node in block claims (its VTEP address).
	Owner string
	// Gateway is the overlay's gateway with the subnet's prefix length
	// (198.51.100.1/24): the subnet to allocate from, minus the gateway.
	Gateway netip.Prefix
	// BlockBits is the prefix length of a block (0: DefaultBlockBits; a
	// value shorter than the subnet's makes the whole subnet one block).
	// Every node of an overlay must use the same value.
	BlockBits int
	// InUse, if set, reports whether an address is registered in the
	// registry (by a container of any node); such addresses are skipped.
	InUse func(ctx context.Context, ip netip.Addr) (bool, error)
	// Logger receives claims and releases; nil discards them.
	Logger *slog.Logger
}

// Allocator hands out the addresses of one node. It is safe for concurrent
// use, also across processes sharing Config.Dir.
type Allocator struct {
	cfg    Config
	subnet netip.Prefix
	bits   int
	log    *slog.Logger
}

// Allocation is one address handed out, and to whom.
type Allocation struct {
	IP netip.Addr `json:"ip"`
	ID string     `json:"id"`
}

// BlockUsage is one block of this node and how many of its addresses are
// allocated.
type BlockUsage struct {
	Block netip.Prefix `json:"block"`
	// Size is the number of addresses the block can hand out (without the
	// subnet's network, broadcast and gateway addresses).
	Size int `json:"size"`
	Used int `json:"used"`
}

// New checks cfg and returns its allocator. It changes nothing.
func New(cfg Config) (*Allocator, error) {
	var errs []error
	if cfg.Dir == "" {
		errs = append(errs, errors.New("ipam: no allocation directory"))
	}
	if cfg.Owner == "" || strings.ContainsAny(cfg.Owner, "\n/") {
		errs = append(errs, fmt.Errorf("ipam: owner %q is empty or contains a newline or '/'", cfg.Owner))
	}
	if !cfg.Gateway.IsValid() || !cfg.Gateway.Addr().Is4() || cfg.Gateway.Bits() > 30 {
		errs = append(errs, fmt.Errorf("ipam: gateway %s is not an IPv4 address with a prefix of /30 or shorter", cfg.Gateway))
	}
	if cfg.BlockBits < 0 || cfg.BlockBits > 32 {
		errs = append(errs, fmt.Errorf("ipam: block size /%d out of range /0../32", cfg.BlockBits))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	a := &Allocator{cfg: cfg, subnet: cfg.Gateway.Masked(), bits: cfg.BlockBits, log: cfg.Logger}
	if a.bits == 0 {
		a.bits = DefaultBlockBits
	}
	a.bits = max(a.bits, a.subnet.Bits())
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	return a, nil
}

// Subnet returns the subnet the allocator hands out addresses of.
func (a *Allocator) Subnet() netip.Prefix { return a.subnet }

// BlockBits returns the prefix length of the blocks it claims.
func (a *Allocator) BlockBits() int { return a.bits }

// Allocate hands out an address to id (an endpoint name) and returns it with
// the subnet's prefix length. With want valid, that address or an error
// wrapping ErrOutside or ErrInUse; an address id holds already is returned
// again. Otherwise the first free address of this node's blocks, claiming a
// new block when they are full, or an error wrapping ErrExhausted.
func (a *Allocator) Allocate(ctx context.Context, id string, want netip.Addr) (netip.Prefix, error) {
	if err := validID(id); err != nil {
		return netip.Prefix{}, err
	}
	if a.cfg.Store == nil {
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

// reserved says why ip cannot be handed out, or "".
func (a *Allocator) reserved(ip netip.Addr) string { return reserved(a.cfg.Gateway, ip) }

func reserved(gateway netip.Prefix, ip netip.Addr) string {
	subnet := gateway.Masked()
	switch {
	case !ip.Is4() || !subnet.Contains(ip):
		return "is outside the overlay subnet " + subnet.String()
	case ip == subnet.Addr():
		return "is the subnet's network address"
	case ip == lastAddr(subnet):
		return "is the subnet's broadcast address"
	case ip == gateway.Addr():
		return "is the gateway's address"
	}
	return ""
}

// CheckAddress refuses, with an error wrapping ErrOutside, an address that
// no container can have in the overlay of gateway (198.51.100.1/24):
// outside its subnet, or its network, broadcast or gateway address.
func CheckAddress(gateway netip.Prefix, ip netip.Addr) error {
	if why := reserved(gateway, ip); why != "" {
		return fmt.Errorf("%w: %s %s", ErrOutside, ip, why)
	}
	return nil
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

// allBlocks yields the subnet's blocks in address order.
func (a *Allocator) allBlocks() func(yield func(netip.Prefix) bool) {
	return func(yield func(netip.Prefix) bool) {
		n := uint64(1) << (a.bits - a.subnet.Bits())
		base := addrToUint(a.subnet.Addr())
		step := uint64(1) << (32 - a.bits)
		for i := range n {
			b := netip.PrefixFrom(uintToAddr(uint32(uint64(base)+i*step)), a.bits)
			if !yield(b) {
				return
			}
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
func (a *Allocator) record(id string, ip netip.Addr) (netip.Prefix, error) {
	path := filepath.Join(a.cfg.Dir, ip.String())
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return netip.Prefix{}, fmt.Errorf("%w: %s is allocated on this node", ErrInUse, ip)
	}
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
	if werr != nil {
		os.Remove(path)
		return netip.Prefix{}, fmt.Errorf("ipam: record %s: %w", ip, werr)
	}
	a.log.Debug("allocated", "ip", ip, "id", id)
	return netip.PrefixFrom(ip, a.subnet.Bits()), nil
}

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
	if !ip.Is4() || !a.subnet.Contains(ip) {
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
	mine, err := a.markedBlocks()
	if err != nil {
		return nil, err
	}
	var out []BlockUsage
	for _, b := range mine {
		u := BlockUsage{Block: b}
		for ip := b.Addr(); b.Contains(ip); ip = ip.Next() {
			if a.reserved(ip) != "" {
				continue
			}
			u.Size++
			if _, ok := held[ip]; ok {
				u.Used++
			}
		}
		out = append(out, u)
	}
	return out, nil
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

// Remove deletes the allocation directory if it holds no allocation (after
// ReleaseAll), lock file included.
func (a *Allocator) Remove() error {
	held, err := a.readAll()
	if err != nil {
		return err
	}
	if len(held) > 0 {
		return fmt.Errorf("ipam: %s still holds %d allocations", a.cfg.Dir, len(held))
	}
	if err := os.Remove(filepath.Join(a.cfg.Dir, blocksSub)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ipam: %w (blocks still marked)", err)
	}
	if err := os.Remove(filepath.Join(a.cfg.Dir, lockFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ipam: %w", err)
	}
	if err := os.Remove(a.cfg.Dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ipam: %w", err)
	}
	return nil
}

// readAll reads the allocation directory: address → ID.
func (a *Allocator) readAll() (map[netip.Addr]string, error) {
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

// markedBlocks returns the blocks recorded locally, sorted.
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
		if b, err := ParseBlockName(e.Name()); err == nil {
			out = append(out, b)
		}
	}
	sortPrefixes(out)
	return out, nil
}

// lock takes the node-wide allocation lock (flock on Dir/.lock), creating
// Dir if needed, and returns its release.
func (a *Allocator) lock() (func(), error) {
	if err := os.MkdirAll(a.cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(a.cfg.Dir, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("ipam: lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("ipam: lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil // closing drops the lock
}

// validID checks an allocation ID: one line, not empty.
func validID(id string) error {
	if id == "" || strings.ContainsAny(id, "\n\r") {
		return fmt.Errorf("ipam: allocation ID %q is empty or not one line", id)
	}
	return nil
}

func addrToUint(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func uintToAddr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func lastAddr(p netip.Prefix) netip.Addr {
	return uintToAddr(addrToUint(p.Masked().Addr()) | (uint32(1)<<(32-p.Bits()) - 1))
}

func sortPrefixes(ps []netip.Prefix) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Addr() != ps[j].Addr() {
			return ps[i].Addr().Less(ps[j].Addr())
		}
		return ps[i].Bits() < ps[j].Bits()
	})
}

// BlockName is a block's name in a store: "198.51.100.64-26" (no '/', so it
// is a file name and a single key segment).
func BlockName(b netip.Prefix) string {
	return b.Addr().String() + "-" + fmt.Sprint(b.Bits())
}

// ParseBlockName parses what BlockName made.
func ParseBlockName(s string) (netip.Prefix, error) {
	i := strings.LastIndexByte(s, '-')
	if i < 0 {
		return netip.Prefix{}, fmt.Errorf("ipam: block name %q: want ADDRESS-BITS", s)
	}
	p, err := netip.ParsePrefix(s[:i] + "/" + s[i+1:])
	if err != nil || p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("ipam: block name %q: want ADDRESS-BITS of a network", s)
	}
	return p, nil
}
