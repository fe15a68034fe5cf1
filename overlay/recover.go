package overlay

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/overlaynet/overlaynet/internal/links"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// recoverIntent finishes or undoes the dead operation recorded in in, the
// caller holding the state lock (so that no operation is under way): a
// dead attach is undone, every step it intended newest first, each as far
// as it got (a step intended may not have been made: every undo here
// tolerates its absence); a dead detach is finished. ov is the recorded
// overlay (nil without one). The record is removed once done; after a
// failure it stays for the next try, and the failure is returned.
func (n *Node) recoverIntent(ctx context.Context, ov *Overlay, in *intent) ([]Leak, error) {
	name := in.Endpoint.Name
	var leaks []Leak
	var err error
	switch in.Op {
	case OpAttach:
		leaks, err = n.undoAttach(ctx, ov, in)
	case OpDetach:
		leaks, err = n.finishDetach(ctx, ov, in)
	default:
		return nil, fmt.Errorf("overlay: record of intent of %s: unknown operation %q", name, in.Op)
	}
	n.logLeaks(leaks)
	if err != nil {
		return leaks, fmt.Errorf("overlay: %s of %s (pid %d) ended half-way and could not be taken back yet: %w", in.Op, name, in.PID, err)
	}
	if err := n.removeIntent(name); err != nil {
		return leaks, err
	}
	verb := "undone"
	if in.Op == OpDetach {
		verb = "finished"
	}
	n.log.Warn("half-made operation "+verb, "op", in.Op, "endpoint", name, "pid", in.PID,
		"started", in.Started, "steps", len(in.Steps), "removed", len(leaks))
	return leaks, nil
}

// undoAttach takes back the steps of a dead attach.
func (n *Node) undoAttach(ctx context.Context, ov *Overlay, in *intent) ([]Leak, error) {
	e := in.Endpoint
	hostIf := HostIfName(e.Name)
	var leaks []Leak
	var errs []error
	for i := len(in.Steps) - 1; i >= 0; i-- {
		var err error
		switch in.Steps[i].Name {
		case stepRegister:
			var removed bool
			if removed, err = n.unregisterOwn(ctx, in); removed {
				for _, rec := range e.Records() {
					leaks = append(leaks, Leak{LeakRecord, rec.String()})
				}
			}
		case stepState:
			var removed bool
			if removed, err = n.removeEndpointStateOf(e.Name); removed {
				leaks = append(leaks, Leak{LeakEndpoint, e.Name})
			}
		case stepAntispoof:
			err = n.removeAntispoof(in.OverlayNetNS, hostIf)
		case stepVeth:
			var deleted bool
			if deleted, err = n.deleteHostVeth(in.OverlayNetNS, hostIf, false); deleted {
				leaks = append(leaks, Leak{LeakVeth, hostIf})
			}
		case stepNetNS:
			var deleted bool
			if deleted, err = n.deleteCreatedNetNS(e.Name, in.NetNSID); deleted {
				leaks = append(leaks, Leak{LeakNetNS, filepath.Join(n.netnsDir, e.Name)})
			}
		case stepAllocate:
			var l []Leak
			l, err = n.undoAllocate(ctx, ov, e.Name)
			leaks = append(leaks, l...)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("step %s: %w", in.Steps[i].Name, err))
		}
	}
	return leaks, errors.Join(errs...)
}

// undoAllocate releases the addresses of a dead attach of name, and the
// blocks of this node left with none: one claimed by its allocation, which
// was killed before recording its address, too.
func (n *Node) undoAllocate(ctx context.Context, ov *Overlay, name string) ([]Leak, error) {
	ips, err := n.releaseID(ctx, ov, name)
	var leaks []Leak
	for _, ip := range ips {
		leaks = append(leaks, Leak{LeakAllocation, ip.String() + "=" + name})
	}
	if err != nil || ov == nil {
		return leaks, err
	}
	as, err := n.allocators(*ov)
	if err != nil {
		return leaks, err
	}
	var errs []error
	for _, a := range as {
		blocks, err := a.ReleaseEmpty(ctx)
		for _, b := range blocks {
			leaks = append(leaks, Leak{LeakBlock, b.String()})
		}
		errs = append(errs, err)
	}
	return leaks, errors.Join(errs...)
}

// finishDetach detaches the endpoint of a dead detach, if its state is
// still there (detach removes it last).
func (n *Node) finishDetach(ctx context.Context, ov *Overlay, in *intent) ([]Leak, error) {
	st, err := n.loadEndpoint(in.Endpoint.Name)
	if errors.Is(err, ErrUnknownEndpoint) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := n.detach(ctx, ov, st); err != nil {
		return nil, err
	}
	return []Leak{{LeakEndpoint, in.Endpoint.Name}}, nil
}

// unregisterOwn removes the registry records a dead attach registered:
// those that did not exist before it, and only while they hold its values.
func (n *Node) unregisterOwn(ctx context.Context, in *intent) (bool, error) {
	if n.reg == nil {
		return false, ErrNoRegistry
	}
	present := false
	var errs []error
	for _, own := range in.own() {
		if own.IP.IsValid() {
			mac, err := n.reg.LookupMAC(ctx, own.IP)
			present = present || err == nil && mac == own.MAC
		}
		if own.VTEP.IsValid() {
			vtep, err := n.reg.LookupVTEP(ctx, own.MAC)
			present = present || err == nil && vtep == own.VTEP
		}
		errs = append(errs, n.reg.Unregister(ctx, own))
	}
	return present, errors.Join(errs...)
}

// removeEndpointStateOf removes name's endpoint state, reporting whether
// there was one.
func (n *Node) removeEndpointStateOf(name string) (bool, error) {
	if _, err := n.loadEndpoint(name); errors.Is(err, ErrUnknownEndpoint) {
		return false, nil
	}
	return true, n.removeEndpointState(name)
}

// releaseID releases the addresses allocated to id, if the overlay is known
// and the registry holds blocks.
func (n *Node) releaseID(ctx context.Context, ov *Overlay, id string) ([]netip.Addr, error) {
	if ov == nil || n.reg == nil {
		return nil, nil
	}
	as, err := n.allocators(*ov)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	var errs []error
	for _, a := range as {
		ips, err := a.ReleaseID(ctx, id)
		out, errs = append(out, ips...), append(errs, err)
	}
	return out, errors.Join(errs...)
}

// deleteCreatedNetNS deletes the container namespace name that a dead
// attach created: the one whose identity it recorded, or, if it was killed
// between making the namespace and recording it, a namespace that nothing
// used yet (its loopback alone, down: what the next step, the veth, would
// have changed); the file of a creation cut short before its bind mount
// (not a namespace) too. A namespace of that name made by anyone else
// since is left alone.
func (n *Node) deleteCreatedNetNS(name string, id *netnsID) (bool, error) {
	path := filepath.Join(n.netnsDir, name)
	got, isNS, err := statNetNS(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	switch {
	case !isNS:
	case id != nil && got == *id:
	case id != nil:
		n.log.Warn("not deleting a namespace attach did not make: another took its name", "netns", path)
		return false, nil
	default:
		if fresh, err := unusedNetNS(path); err != nil || !fresh {
			if err == nil {
				n.log.Warn("not deleting a namespace attach may not have made: it is in use", "netns", path)
			}
			return false, err
		}
	}
	return true, deleteNetNS(n.netnsDir, name)
}

// statNetNS returns the identity of the namespace bound at path, or isNS
// false for a file that is not a network namespace.
func statNetNS(path string) (id netnsID, isNS bool, err error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOFOLLOW, 0)
	if errors.Is(err, unix.ENOENT) {
		return netnsID{}, false, fs.ErrNotExist
	}
	if err != nil {
		return netnsID{}, false, fmt.Errorf("overlay: open %s: %w", path, err)
	}
	defer unix.Close(fd)
	if t, err := unix.IoctlRetInt(fd, nsGetNSType); err != nil || t != unix.CLONE_NEWNET {
		return netnsID{}, false, nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return netnsID{}, false, fmt.Errorf("overlay: stat %s: %w", path, err)
	}
	return netnsID{Dev: uint64(st.Dev), Ino: uint64(st.Ino)}, true, nil
}

// netnsIdentity returns the identity of the open namespace ns.
func netnsIdentity(ns *rtnl.NetNS) (*netnsID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(ns.Fd(), &st); err != nil {
		return nil, fmt.Errorf("overlay: stat netns %s: %w", ns.Path(), err)
	}
	return &netnsID{Dev: uint64(st.Dev), Ino: uint64(st.Ino)}, nil
}

// unusedNetNS reports whether the namespace at path holds nothing but its
// loopback, down: as CreateNetNS makes it.
func unusedNetNS(path string) (bool, error) {
	ns, err := rtnl.OpenNetNS(path)
	if err != nil {
		return false, err
	}
	defer ns.Close()
	c, err := rtnl.Dial(&rtnl.Config{NetNS: ns})
	if err != nil {
		return false, err
	}
	defer c.Close()
	ls, err := c.LinkList()
	if err != nil {
		return false, err
	}
	return len(ls) == 1 && ls[0].Name == "lo" && ls[0].Flags&rtnl.LinkUp == 0, nil
}

// tidy makes endpoint name's slate clean for an attach or detach of it,
// the caller holding the state lock: the state directory's temporary files
// are removed, a dead operation on name is finished or undone, and, name
// not being attached, what of it nothing owns is removed: its host veth in
// the overlay namespace and, with allocations, its address allocations (an
// attach leaves those to its allocation, and Sweep). It reports what it
// removed; a dead operation that cannot be taken back is an error.
func (n *Node) tidy(ctx context.Context, ov *Overlay, name string, allocations bool) ([]Leak, error) {
	in, err := n.loadIntent(name)
	if err != nil {
		return nil, err
	}
	// Under the lock, the state directory's temporary files are all dead
	// writers' (a record of intent cut short, too).
	leaks, err := n.sweepStateTemp()
	n.logLeaks(leaks)
	if err != nil {
		return leaks, err
	}
	if in != nil {
		l, err := n.recoverIntent(ctx, ov, in)
		if leaks = append(leaks, l...); err != nil {
			return leaks, err
		}
	}
	if _, err := n.loadEndpoint(name); !errors.Is(err, ErrUnknownEndpoint) || ov == nil {
		return leaks, nil // attached (or unreadable: detach's to report)
	}
	more, err := n.tidyHostVeth(ov.Config.OverlayNetNS, HostIfName(name))
	if err == nil && allocations {
		var ips []netip.Addr
		ips, err = n.releaseID(ctx, ov, name)
		for _, ip := range ips {
			more = append(more, Leak{LeakAllocation, ip.String() + "=" + name})
		}
	}
	n.logLeaks(more)
	return append(leaks, more...), err
}

// tidyHostVeth deletes the veth hostIf of the overlay namespace, and its
// port's rules, if no endpoint owns it (another name's host veth may have
// the same name: HostIfName shortens long names).
func (n *Node) tidyHostVeth(overlayNetNS, hostIf string) ([]Leak, error) {
	c, err := n.dial(overlayNetNS)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer c.Close()
	l, err := links.Find(c, hostIf)
	if err != nil || l == nil || l.Kind() != rtnl.KindVeth {
		return nil, err // none, or not a veth: not attach's to remove
	}
	own, err := n.owners()
	if err != nil || own.hostIfs[hostIf] {
		return nil, err
	}
	if err := c.LinkDelete(l.Index); err != nil && !errors.Is(err, unix.ENODEV) {
		return nil, err
	}
	return []Leak{{LeakVeth, hostIf}}, n.removeAntispoof(overlayNetNS, hostIf)
}

// owned is what the node's endpoints and operations hold: no sweep
// removes any of it.
type owned struct {
	names, hostIfs map[string]bool
	ips            map[netip.Addr]bool
	macs           map[string]bool
}

// owners lists what the recorded endpoints and the records of intent hold.
// An unreadable record is an error: nothing can then be said to be
// owned by nothing.
func (n *Node) owners() (*owned, error) {
	o := &owned{names: map[string]bool{}, hostIfs: map[string]bool{}, ips: map[netip.Addr]bool{}, macs: map[string]bool{}}
	add := func(e Endpoint) {
		o.names[e.Name] = true
		o.hostIfs[HostIfName(e.Name)] = true
		if e.HostIf != "" {
			o.hostIfs[e.HostIf] = true
		}
		for _, p := range e.Addrs() {
			o.ips[p.Addr()] = true
		}
		if !e.MAC.IsZero() {
			o.macs[e.MAC.String()] = true
		}
	}
	eps, err := n.listEndpoints()
	if err != nil {
		return nil, err
	}
	for _, st := range eps {
		add(st.Endpoint)
	}
	names, err := n.listIntents()
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		in, err := n.loadIntent(name)
		if err != nil {
			return nil, err
		}
		if in != nil {
			add(in.Endpoint)
		}
	}
	return o, nil
}

// owns reports whether r holds the IP or the MAC of something owned.
func (o *owned) owns(r registry.Record) bool {
	return r.IP.IsValid() && o.ips[r.IP] || o.macs[r.MAC.String()]
}
