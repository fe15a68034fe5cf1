package overlay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/overlaynet/overlaynet/internal/links"
	"github.com/overlaynet/overlaynet/overlay/egress"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// Detach removes endpoint name: its veth pair, its container namespace if
// Attach created it (a namespace that existed before Attach is kept, minus
// the interface), its registry records (those that still hold its values)
// and its state. An operation on name that died half-way is finished or
// undone first: an attach killed half-way is undone (and Detach then
// succeeds), and so is what of name nothing owns (a host veth, an address).
// A name with nothing of it anywhere is an error wrapping
// ErrUnknownEndpoint. Parts already gone are not an error; on a failure
// the state is kept, so Detach can be retried. Detach records its intent
// first: killed half-way, it is finished by whoever comes next.
func (n *Node) Detach(ctx context.Context, name string) (err error) {
	unlock, err := n.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if n.reg == nil {
		return ErrNoRegistry
	}
	if err := ValidateNetNSName(name); err != nil {
		return err
	}
	ost, err := n.loadOverlayState()
	if err != nil && !errors.Is(err, ErrNotCreated) {
		return err
	}
	var ov *Overlay
	overlayNetNS := ""
	if ost != nil {
		ov, overlayNetNS = &ost.Overlay, ost.Overlay.Config.OverlayNetNS
	}
	leaks, err := n.tidy(ctx, ov, name, true)
	if err != nil {
		return err
	}
	st, err := n.loadEndpoint(name)
	if errors.Is(err, ErrUnknownEndpoint) && len(leaks) > 0 {
		n.log.Info("detached: removed what a half-made attach left", "endpoint", name, "removed", len(leaks))
		return nil
	}
	if err != nil {
		return err
	}
	j := n.newJournal(OpDetach, st.Endpoint, overlayNetNS)
	if err := j.Intend(string(OpDetach)); err != nil {
		return err
	}
	defer func() { j.End(nil) }() // a failed detach keeps the state for a retry, not its intent
	return n.detach(ctx, ov, st)
}

// detach removes one endpoint and releases its address; ov nil means the
// overlay is unknown (only the container side is cleaned up).
func (n *Node) detach(ctx context.Context, ov *Overlay, st *endpointState) error {
	e := st.Endpoint
	var errs []error
	overlayNetNS := ""
	if ov != nil {
		overlayNetNS = ov.Config.OverlayNetNS
	}
	if overlayNetNS != "" {
		if _, err := n.deleteHostVeth(overlayNetNS, e.HostIf, true); err != nil {
			errs = append(errs, fmt.Errorf("overlay: detach %s: delete %s: %w", e.Name, e.HostIf, err))
		}
		if err := n.removeAntispoof(overlayNetNS, e.HostIf); err != nil {
			errs = append(errs, fmt.Errorf("overlay: detach %s: anti-spoofing rules: %w", e.Name, err))
		}
	}
	if st.CreatedNetNS {
		if err := deleteNetNS(n.netnsDir, e.Name); err != nil {
			errs = append(errs, fmt.Errorf("overlay: detach %s: %w", e.Name, err))
		}
	} else if err := n.deletePeer(e); err != nil {
		errs = append(errs, fmt.Errorf("overlay: detach %s: delete %s: %w", e.Name, e.IfName, err))
	}
	for _, rec := range e.Records() {
		if err := n.reg.Unregister(ctx, rec); err != nil {
			errs = append(errs, fmt.Errorf("overlay: detach %s: unregister %s: %w", e.Name, rec.IP, err))
		}
	}
	if err := n.release(ctx, ov, e); err != nil {
		errs = append(errs, fmt.Errorf("overlay: detach %s: release address: %w", e.Name, err))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := n.removeEndpointState(e.Name); err != nil {
		return err
	}
	n.log.Info("detached", "endpoint", e.Name, "ip", e.IP, "ip6", e.IP6, "mac", e.MAC, "netns_deleted", st.CreatedNetNS)
	return nil
}

// deleteHostVeth deletes the veth named hostIf in the overlay namespace, if
// it is there and is a veth, reporting whether it did. A device of that
// name of another kind is an error if strict, else left alone: a sweep's
// or an undo's is not to remove what attach did not make.
func (n *Node) deleteHostVeth(overlayNetNS, hostIf string, strict bool) (bool, error) {
	c, err := n.dial(overlayNetNS)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer c.Close()
	l, err := links.Find(c, hostIf)
	if err != nil || l == nil {
		return false, err
	}
	if l.Kind() != rtnl.KindVeth {
		if !strict {
			n.log.Warn("left alone: not the veth attach makes", "device", hostIf, "kind", l.Kind())
			return false, nil
		}
		return false, fmt.Errorf("overlay: %s is a %q device, not the veth attach created", hostIf, l.Kind())
	}
	err = c.LinkDelete(l.Index)
	if errors.Is(err, unix.ENODEV) {
		return false, nil
	}
	return err == nil, err
}

// deletePeer deletes the container side of e in a namespace Attach did not
// create, if it is still there as the veth with e's MAC (normally it went
// with the host side).
func (n *Node) deletePeer(e Endpoint) error {
	c, err := n.dialEndpoint(e)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer c.Close()
	l, err := links.Find(c, e.IfName)
	if err != nil || l == nil {
		return err
	}
	if l.Kind() != rtnl.KindVeth || l.Address != e.MAC {
		return nil // not ours any more
	}
	err = c.LinkDelete(l.Index)
	if errors.Is(err, unix.ENODEV) {
		return nil
	}
	return err
}

// Reset removes everything overlayd created on this node, and only that:
// every recorded endpoint (as Detach does), then the vxlan, the bridge (or
// just the gateway address, on a bridge that existed before) and the overlay
// namespace as far as Create made them, an encrypted overlay's WireGuard
// device, member record and keys, then this node's registry records
// (every record whose VTEP is this node's) and its advertisement, then the
// state. Without a recorded overlay it only removes leftover endpoints. It
// goes on past failures and returns them all; the state of what could not
// be removed is kept for a retry.
func (n *Node) Reset(ctx context.Context) error {
	unlock, err := n.lock()
	if err != nil {
		return err
	}
	defer unlock()
	ost, err := n.loadOverlayState()
	if err != nil && !errors.Is(err, ErrNotCreated) {
		return err
	}
	var errs []error
	eps, err := n.listEndpoints()
	if err != nil {
		errs = append(errs, err)
	}
	if len(eps) > 0 && n.reg == nil {
		return ErrNoRegistry
	}
	overlayNetNS := ""
	var ov *Overlay
	if ost != nil {
		overlayNetNS = ost.Overlay.Config.OverlayNetNS
		ov = &ost.Overlay
	}
	if n.reg != nil {
		if _, err := n.recoverAll(ctx, ov); err != nil {
			errs = append(errs, err)
		}
		if eps, err = n.listEndpoints(); err != nil { // a dead detach finished, a dead attach undone
			errs = append(errs, err)
		}
	}
	for _, st := range eps {
		if err := n.detach(ctx, ov, st); err != nil {
			errs = append(errs, err)
		}
	}
	dead, err := n.loadCreateRecord()
	if err != nil {
		errs = append(errs, err)
	}
	if ost == nil {
		n.log.Info("reset: no overlay recorded", "state_dir", n.stateDir)
		if dead != nil {
			if err := n.undoDeadCreate(dead); err != nil {
				errs = append(errs, err)
			}
		}
		if err := n.removeTunnel(ctx); err != nil { // a create that died half-way
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	if dead != nil { // a create again, killed: what it made counts as overlayd's
		d := dead.created()
		ost.Created.NetNS, ost.Created.Bridge = ost.Created.NetNS || d.NetNS, ost.Created.Bridge || d.Bridge
		ost.Created.Vxlan, ost.Created.Address = ost.Created.Vxlan || d.Vxlan, ost.Created.Address || d.Address
		os.Remove(filepath.Join(n.stateDir, createFile))
	}
	if ost.Egress != nil {
		if err := n.removeEgress(ost); err != nil {
			errs = append(errs, err)
		} else {
			ost.Egress = nil
			if err := n.saveOverlayState(ost); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := n.removeGuard(ost.Overlay.Config); err != nil {
		errs = append(errs, err)
	}
	if err := n.removeOverlay(ost); err != nil {
		errs = append(errs, err)
	}
	if err := n.removeTunnel(ctx); err != nil {
		errs = append(errs, err)
	}
	if n.reg != nil && ost.Overlay.VTEP.IsValid() {
		if err := n.unregisterVTEP(ctx, ost.Overlay.VTEP); err != nil {
			errs = append(errs, err)
		}
		if err := n.releaseAll(ctx, ost.Overlay); err != nil {
			errs = append(errs, fmt.Errorf("overlay: reset: %w", err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := n.removeOverlayState(); err != nil {
		return err
	}
	os.Remove(filepath.Join(n.stateDir, endpointsDir)) // only if empty
	os.Remove(filepath.Join(n.stateDir, intentsDir))
	n.removeLock()
	n.log.Info("reset done", "netns", overlayNetNS, "vtep", ost.Overlay.VTEP)
	return nil
}

// removeEgress takes back what egress.Setup recorded.
func (n *Node) removeEgress(ost *overlayState) error {
	host, err := rtnl.Dial(nil)
	if err != nil {
		return err
	}
	defer host.Close()
	cfg := ost.Overlay.Config
	p := egress.Params{Host: host, OverlayNetNS: cfg.OverlayNetNS, Subnet: cfg.Subnet(), Subnet6: cfg.Subnet6(), Bridge: cfg.Bridge,
		VTEP: ost.Overlay.Underlay(), UnderlayDev: ost.Overlay.UnderlayDev, Log: n.log}
	oc, err := n.dial(cfg.OverlayNetNS)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err == nil {
		defer oc.Close()
		p.Overlay = oc
		ns, err := rtnl.OpenNamedNetNS(n.netnsDir, cfg.OverlayNetNS)
		if err != nil {
			return err
		}
		defer ns.Close()
		p.OverlayNS = ns
	}
	return egress.Teardown(p, ost.Egress)
}

// removeOverlay deletes what Create recorded as created.
func (n *Node) removeOverlay(ost *overlayState) error {
	cfg := ost.Overlay.Config
	c, err := n.dial(cfg.OverlayNetNS)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer c.Close()
	var errs []error
	if ost.Created.Vxlan {
		if err := links.Delete(c, cfg.Vxlan); err != nil {
			errs = append(errs, fmt.Errorf("overlay: reset: delete %s: %w", cfg.Vxlan, err))
		}
	}
	if ost.Created.Bridge {
		if err := links.Delete(c, cfg.Bridge); err != nil {
			errs = append(errs, fmt.Errorf("overlay: reset: delete %s: %w", cfg.Bridge, err))
		}
	} else if br, err := links.Find(c, cfg.Bridge); err == nil && br != nil {
		for _, gw := range []netip.Prefix{cfg.Gateway, cfg.Gateway6} {
			if made := ost.Created.Address && gw == cfg.Gateway || ost.Created.Address6 && gw == cfg.Gateway6; !made || !gw.IsValid() {
				continue
			}
			if err := links.DeleteAddress(c, br.Index, gw); err != nil {
				errs = append(errs, fmt.Errorf("overlay: reset: remove %s from %s: %w", gw, cfg.Bridge, err))
			}
		}
	}
	if ost.Created.NetNS && len(errs) == 0 {
		if err := deleteNetNS(n.netnsDir, cfg.OverlayNetNS); err != nil {
			errs = append(errs, fmt.Errorf("overlay: reset: %w", err))
		}
	}
	return errors.Join(errs...)
}

// unregisterVTEP removes every registry record pointing at vtep, and the
// node's advertisement where the node wrote it (registry.NodeAdvertiser).
func (n *Node) unregisterVTEP(ctx context.Context, vtep netip.Addr) error {
	recs, lerr := n.reg.List(ctx)
	var errs []error
	if lerr != nil {
		n.log.Warn("reset: registry has unreadable records", "err", lerr)
	}
	for _, r := range recs {
		if r.VTEP != vtep {
			continue
		}
		if err := n.reg.Unregister(ctx, r); err != nil {
			errs = append(errs, fmt.Errorf("overlay: reset: unregister %s: %w", r, err))
		}
	}
	if na, ok := n.reg.(registry.NodeAdvertiser); ok {
		if err := na.WithdrawNode(ctx, vtep); err != nil {
			errs = append(errs, fmt.Errorf("overlay: reset: withdraw node %s: %w", vtep, err))
		}
	}
	return errors.Join(errs...)
}
