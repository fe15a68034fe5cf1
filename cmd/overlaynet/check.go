package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/overlaynet/overlaynet/overlay"
)

// cmdCheck compares the attachment (container interface, address, routes,
// registry records) with prevResult and reports every difference in one
// error (code 107, the differences in details).
func cmdCheck(args *skel.CmdArgs) error {
	var prev *current.Result
	cl, err := begin(args, func(c *netConf) (err error) {
		if c.PrevResult == nil {
			return newError(types.ErrInvalidNetworkConfig, "CHECK needs prevResult (the result of ADD)")
		}
		if prev, err = current.NewResultFromResult(c.PrevResult); err != nil {
			return newError(types.ErrDecodingFailure, "prevResult: %v", err)
		}
		if err := overlay.CheckNetNS(args.Netns); err != nil {
			return cniError("CNI_NETNS "+args.Netns, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer cl.end()
	c, ctx, n := cl.conf, cl.ctx, cl.node
	if c.IPAM.Type != "" {
		if err := invoke.DelegateCheck(ctx, c.IPAM.Type, args.StdinData, nil); err != nil {
			return newError(errDelegate, "IPAM plugin %s: CHECK: %v", c.IPAM.Type, err)
		}
	}
	ov, err := n.Overlay()
	if err != nil {
		return cniError("this node", err)
	}
	name := endpointName(c.Name, args.ContainerID, args.IfName)
	ep, problems, err := n.Check(ctx, name)
	if errors.Is(err, overlay.ErrUnknownEndpoint) {
		return newError(errCheckFailed, "container %s interface %s is not attached to the overlay", args.ContainerID, args.IfName)
	}
	if err != nil {
		return cniError("check "+name, err)
	}
	problems = append(problems, comparePrev(prev, ep, ov, args)...)
	if len(problems) > 0 {
		return types.NewError(errCheckFailed,
			fmt.Sprintf("overlaynet: CHECK of container %s interface %s: %d differences", args.ContainerID, args.IfName, len(problems)),
			strings.Join(problems, "; "))
	}
	return nil
}

// comparePrev lists how prevResult differs from the recorded endpoint.
func comparePrev(prev *current.Result, ep *overlay.Endpoint, ov *overlay.Overlay, args *skel.CmdArgs) []string {
	var problems []string
	if ep.NetNS != args.Netns {
		problems = append(problems, fmt.Sprintf("attached in netns %s, CNI_NETNS is %s", ep.NetNS, args.Netns))
	}
	idx := -1
	for i, ifc := range prev.Interfaces {
		if ifc.Name == args.IfName && ifc.Sandbox == args.Netns {
			idx = i
			if ifc.Mac != ep.MAC.String() {
				problems = append(problems, fmt.Sprintf("prevResult gives %s MAC %s, the container has %s", ifc.Name, ifc.Mac, ep.MAC))
			}
		}
	}
	if idx < 0 {
		problems = append(problems, fmt.Sprintf("prevResult has no interface %s in %s", args.IfName, args.Netns))
	}
	for _, p := range ep.Addrs() {
		problems = append(problems, comparePrevAddr(prev, idx, p, ov)...)
	}
	return problems
}

// comparePrevAddr lists how prevResult's address and default route of p's
// family (on interface idx) differ from the container's p.
func comparePrevAddr(prev *current.Result, idx int, p netip.Prefix, ov *overlay.Overlay) []string {
	var problems []string
	v6 := p.Addr().Is6()
	gw := ov.Config.GatewayOf(overlay.FamilyOf(p.Addr())).Addr()
	found := false
	for _, ipc := range prev.IPs {
		ones, _ := ipc.Address.Mask.Size()
		a, _ := netip.AddrFromSlice(ipc.Address.IP)
		q := netip.PrefixFrom(a.Unmap(), ones)
		if ipc.Interface != nil && *ipc.Interface != idx || a.Unmap().Is6() != v6 {
			continue
		}
		if q == p {
			found = true
			if g, _ := netip.AddrFromSlice(ipc.Gateway); g.Unmap() != gw {
				problems = append(problems, fmt.Sprintf("prevResult gives %s gateway %v, the overlay's is %s", q, ipc.Gateway, gw))
			}
		} else {
			problems = append(problems, fmt.Sprintf("prevResult has address %s, the container has %s", q, p))
		}
	}
	if !found {
		problems = append(problems, fmt.Sprintf("prevResult lacks the container's address %s", p))
	}
	for _, r := range prev.Routes {
		ones, _ := r.Dst.Mask.Size()
		if g, _ := netip.AddrFromSlice(r.GW); ones == 0 && (r.Dst.IP.To4() == nil) == v6 && g.Unmap() == gw {
			return problems
		}
	}
	return append(problems, fmt.Sprintf("prevResult lacks the default route via %s", gw))
}
