package main

import (
	"context"
	"errors"
	"net"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/ipam"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// opTimeout bounds one plugin invocation.
const opTimeout = 60 * time.Second

// cmdAdd attaches CNI_NETNS to the overlay as CNI_IFNAME and prints the
// result in the config's version.
func cmdAdd(args *skel.CmdArgs) error {
	c, err := loadConf(args)
	if err != nil {
		return err
	}
	log := c.logger(os.Stderr)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	want, err := c.wantedIP(args.Args)
	if err != nil {
		return err
	}
	if err := checkNetNS(args.Netns); err != nil {
		return err
	}
	n, _, done, err := c.node(log)
	if err != nil {
		return err
	}
	defer done()
	ov, err := n.Overlay()
	if err != nil {
		return cniError("this node", err)
	}
	if err := checkIfName(args.Netns, args.IfName); err != nil {
		return err
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

// checkNetNS refuses a CNI_NETNS that does not exist (code 3) or is the
// plugin's own namespace (code 8).
func checkNetNS(path string) error {
	var st, self unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return newError(types.ErrUnknownContainer, "CNI_NETNS %s: %v", path, err)
	}
	ns, err := rtnl.OpenNetNS(path)
	if err != nil {
		return newError(types.ErrUnknownContainer, "CNI_NETNS %s is not a network namespace: %v", path, err)
	}
	ns.Close()
	if err := unix.Stat("/proc/self/ns/net", &self); err == nil && st.Dev == self.Dev && st.Ino == self.Ino {
		return newError(types.ErrInvalidNetNS, "CNI_NETNS %s is the plugin's own network namespace", path)
	}
	return nil
}

// checkIfName refuses an interface name that exists in the container.
func checkIfName(path, ifname string) error {
	ns, err := rtnl.OpenNetNS(path)
	if err != nil {
		return newError(types.ErrUnknownContainer, "CNI_NETNS %s: %v", path, err)
	}
	defer ns.Close()
	c, err := rtnl.Dial(&rtnl.Config{NetNS: ns})
	if err != nil {
		return newError(types.ErrInternal, "netlink in %s: %v", path, err)
	}
	defer c.Close()
	_, err = c.LinkByName(ifname)
	switch {
	case err == nil:
		return newError(errInterfaceExists, "interface %s already exists in %s", ifname, path)
	case errors.Is(err, unix.ENODEV):
		return nil
	}
	return newError(types.ErrInternal, "interface %s in %s: %v", ifname, path, err)
}
