package main

import (
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/ipam"
)

// cmdAdd attaches CNI_NETNS to the overlay as CNI_IFNAME and prints the
// result in the config's version.
func cmdAdd(args *skel.CmdArgs) error {
	var want netip.Addr
	cl, err := begin(args, func(c *netConf) (err error) {
		want, err = c.wantedIP(args.Args)
		return err
	})
	if err != nil {
		return err
	}
	defer cl.end()
	c, log, ctx, n := cl.conf, cl.log, cl.ctx, cl.node
	ov, err := n.Overlay()
	if err != nil {
		return cniError("this node", err)
	}

	var delegated bool
	if c.IPAM.Type != "" {
		want, err = delegateAdd(ctx, c, args, ov)
		if err != nil {
			return err
		}
		delegated = true
	}
	if want.IsValid() {
		if err := ipam.CheckAddress(ov.Config.Gateway, want); err != nil {
			undoDelegate(ctx, delegated, c, args, log)
			return cniError("requested address", err)
		}
	}
	req := overlay.AttachRequest{
		Name:        endpointName(c.Name, args.ContainerID, args.IfName),
		NetNSPath:   args.Netns,
		ContainerID: args.ContainerID,
		Network:     c.Name,
		IfName:      args.IfName,
		Addr:        want, // the overlay's prefix length; none: allocated
	}
	ep, err := n.Attach(ctx, req)
	if err != nil {
		undoDelegate(ctx, delegated, c, args, log)
		return cniError("attach "+args.Netns, err)
	}
	log.Info("attached", "container", args.ContainerID, "netns", args.Netns, "ifname", args.IfName, "ip", ep.IP, "endpoint", ep.Name)
	return types.PrintResult(result(c, ep, ov), c.CNIVersion)
}

// result is the ADD result of ep: the container interface, its address with
// the gateway, the default route, and the config's DNS; after a prevResult
// (a plugin before this one in a chain) those come first.
func result(c *netConf, ep *overlay.Endpoint, ov *overlay.Overlay) *current.Result {
	res := &current.Result{CNIVersion: current.ImplementedSpecVersion, DNS: c.DNS}
	if c.PrevResult != nil {
		if prev, err := current.NewResultFromResult(c.PrevResult); err == nil {
			res = prev
			res.CNIVersion = current.ImplementedSpecVersion
		}
	}
	idx := len(res.Interfaces)
	gw := net.IP(ov.Config.Gateway.Addr().AsSlice())
	res.Interfaces = append(res.Interfaces, &current.Interface{
		Name: ep.IfName, Mac: ep.MAC.String(), Mtu: int(ov.Config.MTU), Sandbox: ep.NetNS})
	res.IPs = append(res.IPs, &current.IPConfig{
		Interface: current.Int(idx),
		Address:   net.IPNet{IP: ep.IP.Addr().AsSlice(), Mask: net.CIDRMask(ep.IP.Bits(), 32)},
		Gateway:   gw,
	})
	res.Routes = append(res.Routes, &types.Route{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: gw})
	return res
}
