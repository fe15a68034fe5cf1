package overlay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/guard"
	"github.com/overlaynet/overlaynet/overlay/ipam"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
)

// LeakKind is a kind of leftover that Sweep (and an attach or detach of the
// name, CNI DEL and GC) removes.
type LeakKind uint8

// Kinds of leftovers.
const (
	// LeakVeth is a host veth (ve-*) in the overlay namespace.
	LeakVeth LeakKind = iota
	// LeakNetNS is a container namespace an attach made.
	LeakNetNS
	// LeakAllocation is an address allocated in the state directory.
	LeakAllocation
	// LeakBlock is an address block this node holds in the registry with
	// no address allocated in it.
	LeakBlock
	// LeakRecord is a registry record at this node's VTEP.
	LeakRecord
	// LeakEndpoint is an endpoint's state left by an operation killed
	// half-way.
	LeakEndpoint
	// LeakAntispoof is the anti-spoofing rules of a port that is gone.
	LeakAntispoof
	// LeakTemp is a temporary file of a write cut short.
	LeakTemp
	// NumLeakKinds is the number of kinds.
	NumLeakKinds
)

func (k LeakKind) String() string {
	switch k {
	case LeakVeth:
		return "veth"
	case LeakNetNS:
		return "netns"
	case LeakAllocation:
		return "allocation"
	case LeakBlock:
		return "block"
	case LeakRecord:
		return "record"
	case LeakEndpoint:
		return "endpoint"
	case LeakAntispoof:
		return "antispoof"
	case LeakTemp:
		return "temp"
	}
	return fmt.Sprintf("LeakKind(%d)", uint8(k))
}

// Leak is one leftover removed: its kind and what it was (a device or file
// name, an address with its owner, a record).
type Leak struct {
	Kind LeakKind
	What string
}

func (l Leak) String() string { return l.Kind.String() + " " + l.What }

// DefaultTempAge is SweepOptions.TempAge when zero.
const DefaultTempAge = time.Minute

// DefaultSweepWait is SweepOptions.Wait when zero.
const DefaultSweepWait = 10 * time.Second

// SweepOptions tune Sweep.
type SweepOptions struct {
	// Wait is how long Sweep waits for the node's operations under way to
	// leave it the state lock (0: DefaultSweepWait).
	Wait time.Duration
	// Records has Sweep also list the registry for records at this node's
	// VTEP that nothing holds, and remove the store's stale temporary
	// files: a listing of the whole store.
	Records bool
	// TempAge is the age from which a temporary file of the store is
	// stale (0: DefaultTempAge).
	TempAge time.Duration
}

// ErrBusy is returned by Sweep when the node's operations held the state
// lock for all of SweepOptions.Wait.
var ErrBusy = errors.New("overlay: sweep: the node's operations held the state lock throughout")

// Sweep finishes or undoes the node's operations that died half-way (every
// record of intent), then removes what nothing owns: host veths ve-* in
// the overlay namespace of no endpoint, the anti-spoofing rules of ports
// that are gone, address allocations of no endpoint and blocks with no
// allocation, temporary files of the state directory, and with
// opt.Records the registry records at this node's VTEP whose IP and MAC no
// endpoint holds (never another VTEP's) and the store's stale temporary
// files. A namespace is only ever deleted by the undo of the attach that
// recorded making it. It runs under the state lock, so never beside an
// operation of the node (ErrBusy if they held it for all of opt.Wait). It
// needs a registry and an overlay (ErrNotCreated), logs and returns what
// it removed, and goes on past failures, returned joined.
func (n *Node) Sweep(ctx context.Context, opt SweepOptions) ([]Leak, error) {
	if n.reg == nil {
		return nil, ErrNoRegistry
	}
	ost, err := n.loadOverlayState()
	if err != nil {
		return nil, err
	}
	var cands []registry.Record
	var errs []error
	if opt.Records {
		// Listed before the lock, so that a large store does not hold up
		// the node's operations; each candidate is checked under it.
		if cands, err = n.recordCandidates(ctx, ost.Overlay.VTEP); err != nil {
			errs = append(errs, err)
		}
	}
	leaks, err := n.sweepLocked(ctx, opt, cands)
	if err != nil {
		errs = append(errs, err)
	}
	if ts, ok := n.reg.(registry.TempSweeper); ok && opt.Records {
		age := opt.TempAge
		if age == 0 {
			age = DefaultTempAge
		}
		removed, err := ts.SweepTemp(age)
		if err != nil {
			errs = append(errs, err)
		}
		for _, p := range removed {
			leaks = append(leaks, Leak{LeakTemp, p})
		}
		n.logLeaks(leaks[len(leaks)-len(removed):])
	}
	return leaks, errors.Join(errs...)
}

// sweepLocked is Sweep's part under the state lock.
func (n *Node) sweepLocked(ctx context.Context, opt SweepOptions, cands []registry.Record) ([]Leak, error) {
	wait := opt.Wait
	if wait == 0 {
		wait = DefaultSweepWait
	}
	unlock, ok, err := n.lockWithin(ctx, wait)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrBusy
	}
	defer unlock()
	ost, err := n.loadOverlayState() // again: a reset may have run
	if err != nil {
		return nil, err
	}
	ov := &ost.Overlay
	var errs []error
	leaks, err := n.recoverAll(ctx, ov)
	if err != nil {
		errs = append(errs, err)
	}
	own, err := n.owners()
	if err != nil {
		return leaks, errors.Join(append(errs, err)...)
	}
	var more []Leak
	for _, sweep := range []func() ([]Leak, error){
		func() ([]Leak, error) { return n.sweepPorts(ost, own) },
		func() ([]Leak, error) { return n.sweepAllocations(ctx, ov, own) },
		func() ([]Leak, error) { return n.sweepRecords(ctx, cands, own) },
		n.sweepStateTemp,
	} {
		l, err := sweep()
		more = append(more, l...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	n.logLeaks(more)
	return append(leaks, more...), errors.Join(errs...)
}

// recoverAll finishes or undoes every dead operation of the node (every
// record of intent), the caller holding the state lock.
func (n *Node) recoverAll(ctx context.Context, ov *Overlay) ([]Leak, error) {
	names, err := n.listIntents()
	if err != nil {
		return nil, err
	}
	var leaks []Leak
	var errs []error
	for _, name := range names {
		in, err := n.loadIntent(name)
		if err == nil && in != nil {
			var l []Leak
			l, err = n.recoverIntent(ctx, ov, in)
			leaks = append(leaks, l...)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return leaks, errors.Join(errs...)
}

// sweepPorts deletes the host veths of no endpoint in the overlay
// namespace, and the anti-spoofing rules of ports of no endpoint.
func (n *Node) sweepPorts(ost *overlayState, own *owned) ([]Leak, error) {
	cfg := ost.Overlay.Config
	c, err := n.dial(cfg.OverlayNetNS)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ls, err := c.LinkList()
	if err != nil {
		return nil, fmt.Errorf("overlay: sweep: list links in %s: %w", cfg.OverlayNetNS, err)
	}
	var leaks []Leak
	var errs []error
	for _, l := range ls {
		if l.Kind() != rtnl.KindVeth || !strings.HasPrefix(l.Name, hostIfPrefix) || own.hostIfs[l.Name] ||
			ost.Egress != nil && l.Name == ost.Egress.OverlayIf {
			continue
		}
		if err := c.LinkDelete(l.Index); err != nil {
			errs = append(errs, fmt.Errorf("overlay: sweep: delete %s: %w", l.Name, err))
			continue
		}
		leaks = append(leaks, Leak{LeakVeth, l.Name})
	}
	if cfg.NoAntispoof {
		return leaks, errors.Join(errs...)
	}
	nc, err := n.dialNft(cfg.OverlayNetNS)
	if err != nil {
		return leaks, errors.Join(append(errs, err)...)
	}
	defer nc.Close()
	ports, err := guard.Ports(nc)
	if err != nil {
		return leaks, errors.Join(append(errs, err)...)
	}
	for _, p := range ports {
		if own.hostIfs[p.HostIf] {
			continue
		}
		if err := guard.RemovePort(nc, p.HostIf); err != nil {
			errs = append(errs, fmt.Errorf("overlay: sweep: anti-spoofing rules of %s: %w", p.HostIf, err))
			continue
		}
		leaks = append(leaks, Leak{LeakAntispoof, p.HostIf})
	}
	return leaks, errors.Join(errs...)
}

// sweepAllocations releases the addresses allocated to no endpoint (an
// allocation cut short has no owner at all) and the blocks holding none.
func (n *Node) sweepAllocations(ctx context.Context, ov *Overlay, own *owned) ([]Leak, error) {
	as, err := n.allocators(*ov)
	if err != nil {
		return nil, err
	}
	var leaks []Leak
	var errs []error
	for _, a := range as {
		l, err := sweepAllocator(ctx, a, own)
		leaks, errs = append(leaks, l...), append(errs, err)
	}
	return leaks, errors.Join(errs...)
}

// sweepAllocator is sweepAllocations for the allocator of one family.
func sweepAllocator(ctx context.Context, a *ipam.Allocator, own *owned) ([]Leak, error) {
	allocs, err := a.Allocations()
	if err != nil {
		return nil, err
	}
	var leaks []Leak
	var errs []error
	for _, al := range allocs {
		if own.names[al.ID] {
			continue
		}
		if err := a.Release(ctx, al.ID, al.IP); err != nil {
			errs = append(errs, err)
			continue
		}
		leaks = append(leaks, Leak{LeakAllocation, al.IP.String() + "=" + al.ID})
	}
	blocks, err := a.ReleaseEmpty(ctx)
	for _, b := range blocks {
		leaks = append(leaks, Leak{LeakBlock, b.String()})
	}
	return leaks, errors.Join(append(errs, err)...)
}

// recordCandidates lists the registry's records at vtep: IP → MAC → VTEP
// records, and, if the store lists its keys, MAC → VTEP records with no IP
// pointing at them (an unregister cut short).
func (n *Node) recordCandidates(ctx context.Context, vtep netip.Addr) ([]registry.Record, error) {
	if vl, ok := n.reg.(registry.VTEPLister); ok {
		// Not the whole registry in memory (100,000 remote records read
		// beside the daemon's own copy, at its start).
		recs, err := vl.RecordsAt(ctx, vtep)
		if err != nil {
			return nil, fmt.Errorf("overlay: sweep: list the registry: %w", err)
		}
		return recs, nil
	}
	recs, err := n.reg.List(ctx)
	if err != nil && len(recs) == 0 {
		return nil, fmt.Errorf("overlay: sweep: list the registry: %w", err)
	}
	var out []registry.Record
	listed := map[ethaddr.MAC]bool{}
	for _, r := range recs {
		listed[r.MAC] = true
		if r.VTEP == vtep {
			out = append(out, r)
		}
	}
	kl, ok := n.reg.(registry.KeyLister)
	if !ok {
		return out, nil
	}
	_, macs, kerr := kl.Keys(ctx)
	for _, m := range macs {
		if listed[m] {
			continue
		}
		if v, lerr := n.reg.LookupVTEP(ctx, m); lerr == nil && v == vtep {
			out = append(out, registry.Record{MAC: m, VTEP: vtep})
		}
	}
	return out, errors.Join(err, kerr)
}

// sweepRecords removes the candidates whose IP and MAC nothing owns, each
// only while it still holds the values listed.
func (n *Node) sweepRecords(ctx context.Context, cands []registry.Record, own *owned) ([]Leak, error) {
	var leaks []Leak
	var errs []error
	for _, r := range cands {
		if own.owns(r) {
			continue
		}
		if err := n.reg.Unregister(ctx, r); err != nil {
			errs = append(errs, fmt.Errorf("overlay: sweep: unregister %s: %w", r, err))
			continue
		}
		what := r.String()
		if !r.IP.IsValid() {
			what = r.MAC.String() + " " + r.VTEP.String()
		}
		leaks = append(leaks, Leak{LeakRecord, what})
	}
	return leaks, errors.Join(errs...)
}

// sweepStateTemp removes the temporary files of the state directory's
// atomic writes: under the state lock, every one is a dead writer's.
func (n *Node) sweepStateTemp() ([]Leak, error) {
	var leaks []Leak
	var errs []error
	for _, dir := range []string{n.stateDir, filepath.Join(n.stateDir, endpointsDir), filepath.Join(n.stateDir, intentsDir)} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !isTempName(e.Name()) {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if err := os.Remove(p); err != nil {
				errs = append(errs, fmt.Errorf("overlay: sweep: %w", err))
				continue
			}
			leaks = append(leaks, Leak{LeakTemp, p})
		}
	}
	return leaks, errors.Join(errs...)
}

// isTempName reports whether name is a temporary file of writeFileAtomic.
func isTempName(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp")
}

// logLeaks logs each leftover removed.
func (n *Node) logLeaks(leaks []Leak) {
	for _, l := range leaks {
		n.log.Warn("removed a leftover nothing owned", "kind", l.Kind, "what", l.What)
	}
}

// WithRegistry returns a Node of the same directories, options and logger
// as n, with reg as its registry (the daemon opens its own store).
func (n *Node) WithRegistry(reg registry.Registry) *Node {
	m := NewNode(NodeOptions{NetNSDir: n.netnsDir, StateDir: n.stateDir, Registry: reg, Logger: n.log, BlockBits: n.blockBits,
		WireGuardCommand: n.wgCmd})
	m.stepHook, m.dialer = n.stepHook, n.dialer
	return m
}
