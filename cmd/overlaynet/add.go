package main

import (
	"net"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/ipam"
)

// cmdAdd attaches CNI_NETNS to the overlay as CNI_IFNAME and prints the
// result in the config's version.
func cmdAdd(args *skel.CmdArgs) error {
	var want wanted
	cl, err := begin(args, func(c *netConf) (err error) {
		want, err = c.wantedIPs(args.Args)
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
	if err := checkWanted(ov, c.only(), want); err != nil {
		undoDelegate(ctx, delegated, c, args, log)
		return err
	}
	req := overlay.AttachRequest{
		Name:        endpointName(c.Name, args.ContainerID, args.IfName),
		NetNSPath:   args.Netns,
		ContainerID: args.ContainerID,
		Network:     c.Name,
		IfName:      args.IfName,
		Addr:        want.v4, // the overlay's prefix lengths; none: allocated
		Addr6:       want.v6,
		Only:        c.only(),
	}
	ep, err := n.Attach(ctx, req)
	if err != nil {
		undoDelegate(ctx, delegated, c, args, log)
		return cniError("attach "+args.Netns, err)
	}
	log.Info("attached", "container", args.ContainerID, "netns", args.Netns, "ifname", args.IfName, "ip", ep.IP, "ip6", ep.IP6, "endpoint", ep.Name)
	return types.PrintResult(result(c, ep, ov), c.CNIVersion)
}

// checkWanted refuses the addresses asked for that no container of ov can
// have (code 102): outside its subnet or IPv6 prefix, reserved, of a family
// the overlay has not or the config does not give (only).
func checkWanted(ov *overlay.Overlay, only overlay.Family, want wanted) error {
	if only == overlay.IPv6 && !ov.Config.DualStack() {
		return newError(types.ErrInvalidNetworkConfig, "family ipv6: the overlay has no IPv6 prefix (create with an IPv6 gateway)")
	}
	for _, f := range []overlay.Family{overlay.IPv4, overlay.IPv6} {
		a := want.of(f)
		switch {
		case !a.IsValid():
		case f == overlay.IPv6 && !ov.Config.DualStack():
			return newError(errAddressOutside, "requested IP %s is IPv6 and the overlay has no IPv6 prefix", a)
		case only != 0 && only != f:
			return newError(errAddressOutside, "requested IP %s is %s and the network gives %s addresses only", a, f, only)
		default:
			if err := ipam.CheckAddress(ov.Config.GatewayOf(f), a); err != nil {
				return cniError("requested address", err)
			}
		}
	}
	return nil
}

// result is the ADD result of ep: the container interface, its addresses
// with their gateways, a default route per family, and the config's DNS;
// after a prevResult (a plugin before this one in a chain) those come
// first.
func result(c *netConf, ep *overlay.Endpoint, ov *overlay.Overlay) *current.Result {
	res := &current.Result{CNIVersion: current.ImplementedSpecVersion, DNS: c.DNS}
	if c.PrevResult != nil {
		if prev, err := current.NewResultFromResult(c.PrevResult); err == nil {
			res = prev
			res.CNIVersion = current.ImplementedSpecVersion
		}
	}
	idx := len(res.Interfaces)
	res.Interfaces = append(res.Interfaces, &current.Interface{
		Name: ep.IfName, Mac: ep.MAC.String(), Mtu: int(ov.Config.MTU), Sandbox: ep.NetNS})
	for _, p := range ep.Addrs() {
		gwa := ov.Config.GatewayOf(overlay.FamilyOf(p.Addr())).Addr()
		gw, bits := net.IP(gwa.AsSlice()), p.Addr().BitLen()
		res.IPs = append(res.IPs, &current.IPConfig{
			Interface: current.Int(idx),
			Address:   net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)},
			Gateway:   gw,
		})
		res.Routes = append(res.Routes, &types.Route{Dst: net.IPNet{IP: net.IP(make([]byte, bits/8)), Mask: net.CIDRMask(0, bits)}, GW: gw})
	}
	return res
}
