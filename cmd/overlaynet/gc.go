package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/overlaynet/overlaynet/overlay"
)

// cmdGC detaches every attachment of this network that is not in
// cni.dev/valid-attachments (releasing its address and records), releases
// addresses the plugin allocated that no attachment holds, and sweeps the
// node (overlay.Node.Sweep): operations killed half-way are taken back, and
// what nothing owns is removed.
func cmdGC(args *skel.CmdArgs) error {
	cl, err := begin(args, nil)
	if err != nil {
		return err
	}
	defer cl.end()
	c, log, ctx, n := cl.conf, cl.log, cl.ctx, cl.node
	if _, err := n.Overlay(); errors.Is(err, overlay.ErrNotCreated) {
		return nil // nothing attached on this node
	}
	valid := map[[2]string]bool{}
	for _, a := range c.ValidAttachments {
		valid[[2]string{a.ContainerID, a.IfName}] = true
	}
	eps, err := n.Endpoints()
	if err != nil {
		return cniError("list attachments", err)
	}
	var errs []error
	for _, ep := range eps {
		if ep.Network != c.Name || ep.ContainerID == "" || !strings.HasPrefix(ep.Name, cniPrefix) {
			continue // another network's, or attached by overlayd
		}
		if valid[[2]string{ep.ContainerID, ep.IfName}] {
			continue
		}
		if err := n.Detach(ctx, ep.Name); err != nil && !errors.Is(err, overlay.ErrUnknownEndpoint) {
			errs = append(errs, err)
			continue
		}
		log.Info("GC: detached", "container", ep.ContainerID, "ifname", ep.IfName, "ip", ep.IP, "ip6", ep.IP6)
	}
	if err := n.ReleaseOrphans(ctx, cniPrefix); err != nil {
		errs = append(errs, err)
	}
	// Operations of the node killed half-way, and what nothing owns.
	leaks, err := n.Sweep(ctx, overlay.SweepOptions{Records: true})
	switch {
	case errors.Is(err, overlay.ErrBusy):
		log.Info("GC: node busy, sweep left to overlayd run", "err", err)
	case err != nil:
		errs = append(errs, err)
	}
	if len(leaks) > 0 {
		log.Info("GC: removed leftovers", "removed", len(leaks))
	}
	if c.IPAM.Type != "" {
		if !delegateKnows(ctx, c, "1.1.0") {
			log.Info("IPAM plugin predates GC; not asked", "ipam", c.IPAM.Type)
		} else if err := invoke.DelegateGC(ctx, c.IPAM.Type, args.StdinData, nil); err != nil {
			errs = append(errs, fmt.Errorf("IPAM plugin %s: GC: %w", c.IPAM.Type, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return cniError("GC", err)
	}
	return nil
}
