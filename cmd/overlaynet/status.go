package main

import (
	"errors"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// cmdStatus reports ready (no error) only when this node's overlay exists
// with its devices, the registry answers and the resolver daemon (`overlayd
// run`) is running; otherwise code 50 with the reasons.
func cmdStatus(args *skel.CmdArgs) error {
	cl, err := start(args)
	if err != nil {
		return err
	}
	defer cl.end()
	if err := cl.open(); err != nil {
		return types.NewError(errNotReady, "overlaynet: not ready: registry: "+err.Error(), "")
	}
	c, log, ctx, n, reg := cl.conf, cl.log, cl.ctx, cl.node, cl.reg
	var why []string
	if _, err := n.Overlay(); err != nil {
		return types.NewError(errNotReady, "overlaynet: not ready: "+err.Error(), "")
	}
	st, err := n.Status(ctx)
	if err != nil {
		why = append(why, err.Error())
	} else {
		for _, d := range st.Devices {
			if d.Missing || !d.Up {
				why = append(why, "overlay device "+d.Name+" is missing or down")
			}
		}
		for _, p := range st.Problems {
			if strings.Contains(p, "overlay netns") {
				why = append(why, p)
			}
		}
	}
	if _, err := reg.LookupMAC(ctx, st.Overlay.Config.Gateway.Addr()); err != nil && !errors.Is(err, registry.ErrNotFound) {
		why = append(why, "registry does not answer: "+err.Error())
	}
	if pid, running, err := overlay.DaemonRunning(c.StateDir); err != nil {
		why = append(why, "resolver daemon: "+err.Error())
	} else if !running {
		why = append(why, "the resolver daemon (overlayd run) is not running for state dir "+c.StateDir)
	} else {
		log.Debug("resolver daemon running", "pid", pid)
	}
	if c.IPAM.Type != "" {
		if !delegateKnows(ctx, c, "1.1.0") {
			log.Debug("IPAM plugin predates STATUS; not asked", "ipam", c.IPAM.Type)
		} else if err := invoke.DelegateStatus(ctx, c.IPAM.Type, args.StdinData, nil); err != nil {
			why = append(why, "IPAM plugin "+c.IPAM.Type+": "+err.Error())
		}
	}
	if len(why) > 0 {
		return types.NewError(errNotReady, "overlaynet: not ready: "+why[0], strings.Join(why, "; "))
	}
	return nil
}
