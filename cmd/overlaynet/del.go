package main

import (
	"errors"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/overlaynet/overlaynet/overlay"
)

// cmdDel removes the attachment: the veth, the registry records and the
// address. It succeeds when there is nothing (left) to remove: DEL twice,
// a netns already gone, an ADD that never ran or failed half-way.
func cmdDel(args *skel.CmdArgs) error {
	cl, err := begin(args, nil)
	if err != nil {
		return err
	}
	defer cl.end()
	c, log, ctx, n := cl.conf, cl.log, cl.ctx, cl.node
	name := endpointName(c.Name, args.ContainerID, args.IfName)
	err = n.Detach(ctx, name)
	switch {
	case err == nil:
		log.Info("detached", "container", args.ContainerID, "ifname", args.IfName, "endpoint", name)
	case errors.Is(err, overlay.ErrUnknownEndpoint):
		// Not attached (any more): release an address an interrupted ADD
		// may have left.
		if err := n.ReleaseOrphans(ctx, name); err != nil && !errors.Is(err, overlay.ErrNotCreated) {
			return cniError("release the address of "+name, err)
		}
	default:
		return cniError("detach "+name, err)
	}
	if c.IPAM.Type != "" {
		if err := invoke.DelegateDel(ctx, c.IPAM.Type, args.StdinData, nil); err != nil {
			return newError(errDelegate, "IPAM plugin %s: DEL: %v", c.IPAM.Type, err)
		}
	}
	return nil
}
