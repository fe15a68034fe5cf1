// Package ipam hands out container addresses of an overlay subnet without
// anyone picking them by hand. A node claims address blocks of the subnet
// (DefaultBlockBits wide unless configured, DefaultBlockBits6 for an IPv6
// prefix) in the shared registry, through
// a registry.BlockStore: the claim is atomic, so of two nodes claiming the same block
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
//
// An Allocator serves one prefix, IPv4 or IPv6 alike: a dual-stack overlay
// has one per family, sharing the allocation directory (allocations are
// named by address, blocks by address and length, and each allocator sees
// only those of its own prefix) and its lock. An IPv6 prefix has no
// broadcast address; its first address, the subnet-router anycast
// address, is reserved as an IPv4 subnet's network address is.
package ipam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// DefaultBlockBits is the prefix length of a block when Config.BlockBits is
// 0: 64 addresses, so a /24 subnet serves four nodes and a /16 1024.
const DefaultBlockBits = 26

// DefaultBlockBits6 is the prefix length of a block of an IPv6 prefix when
// Config.BlockBits is 0: 256 addresses.
const DefaultBlockBits6 = 120

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
	// (and without Assigned) the allocator can only report (Usage,
	// Allocations).
	Store registry.BlockStore
	// Assigned, if set, returns the blocks assigned to this node by someone
	// else (registry.AssignedBlocks: a Kubernetes Node's podCIDRs): the
	// allocator hands out their addresses only, and claims and releases
	// nothing in Store (see assigned.go).
	Assigned func(ctx context.Context) ([]netip.Prefix, error)
	// Owner identifies this node in block claims (its VTEP address).
	Owner string
	// Gateway is the overlay's gateway with the subnet's prefix length
	// (198.51.100.1/24, or 2001:db8:42::1/64 for an IPv6 prefix): the
	// subnet to allocate from, minus the gateway.
	Gateway netip.Prefix
	// BlockBits is the prefix length of a block (0: DefaultBlockBits, or
	// DefaultBlockBits6 for an IPv6 prefix; a value shorter than the
	// subnet's makes the whole subnet one block). Every node of an overlay
	// must use the same value.
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
	gw := cfg.Gateway
	switch {
	case !gw.IsValid() || gw.Addr().Is4In6() || gw.Addr().Zone() != "":
		errs = append(errs, fmt.Errorf("ipam: gateway %s is not an IPv4 or IPv6 address with a prefix", gw))
	case gw.Addr().Is4() && gw.Bits() > 30:
		errs = append(errs, fmt.Errorf("ipam: gateway %s is not an IPv4 address with a prefix of /30 or shorter", gw))
	case gw.Addr().Is6() && gw.Bits() > 126:
		errs = append(errs, fmt.Errorf("ipam: gateway %s is not an IPv6 address with a prefix of /126 or shorter", gw))
	}
	if cfg.BlockBits < 0 || cfg.BlockBits > gw.Addr().BitLen() {
		errs = append(errs, fmt.Errorf("ipam: block size /%d out of range /0../%d", cfg.BlockBits, gw.Addr().BitLen()))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	a := &Allocator{cfg: cfg, subnet: cfg.Gateway.Masked(), bits: cfg.BlockBits, log: cfg.Logger}
	if a.bits == 0 {
		a.bits = DefaultBlockBits
		if gw.Addr().Is6() {
			a.bits = DefaultBlockBits6
		}
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

// reserved says why ip cannot be handed out, or "".
func (a *Allocator) reserved(ip netip.Addr) string { return reserved(a.cfg.Gateway, ip) }

func reserved(gateway netip.Prefix, ip netip.Addr) string {
	subnet := gateway.Masked()
	switch {
	case ip.Is4() != subnet.Addr().Is4() || !subnet.Contains(ip):
		return "is outside the overlay subnet " + subnet.String()
	case ip == subnet.Addr() && ip.Is6():
		return "is the prefix's subnet-router anycast address"
	case ip == subnet.Addr():
		return "is the subnet's network address"
	case ip == lastAddr(subnet) && ip.Is4():
		return "is the subnet's broadcast address"
	case ip == gateway.Addr():
		return "is the gateway's address"
	}
	return ""
}

// CheckAddress refuses, with an error wrapping ErrOutside, an address that
// no container can have in the overlay of gateway (198.51.100.1/24, or
// 2001:db8:42::1/64): outside its subnet, or its network (subnet-router
// anycast), broadcast or gateway address.
func CheckAddress(gateway netip.Prefix, ip netip.Addr) error {
	if why := reserved(gateway, ip); why != "" {
		return fmt.Errorf("%w: %s %s", ErrOutside, ip, why)
	}
	return nil
}

// lastAddr is the last address of p, of either family.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	b := a.As16()
	host := a.BitLen() - p.Bits() // host bits, counted from the end
	for i := 15; i >= 0 && host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	if a.Is4() {
		return netip.AddrFrom4([4]byte(b[12:]))
	}
	return netip.AddrFrom16(b)
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
