package main

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/overlaynet/overlaynet/overlay"
)

// delegateAdd asks the config's IPAM plugin for an address and returns the
// first IPv4 one inside the overlay subnet; anything else is released again
// and refused (code 106).
func delegateAdd(ctx context.Context, c *netConf, args *skel.CmdArgs, ov *overlay.Overlay) (netip.Addr, error) {
	r, err := invoke.DelegateAdd(ctx, c.IPAM.Type, args.StdinData, nil)
	if err != nil {
		return netip.Addr{}, newError(errDelegate, "IPAM plugin %s: %v", c.IPAM.Type, err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		undoDelegate(ctx, true, c, args, nil)
		return netip.Addr{}, newError(errDelegate, "IPAM plugin %s: result: %v", c.IPAM.Type, err)
	}
	subnet := ov.Config.Subnet()
	for _, ipc := range res.IPs {
		a, ok := netip.AddrFromSlice(ipc.Address.IP)
		if ok && a.Unmap().Is4() && subnet.Contains(a.Unmap()) {
			return a.Unmap(), nil
		}
	}
	undoDelegate(ctx, true, c, args, nil)
	return netip.Addr{}, newError(errDelegate, "IPAM plugin %s gave no IPv4 address in the overlay subnet %s (got %v)", c.IPAM.Type, subnet, res.IPs)
}

// undoDelegate releases the delegated IPAM's address after a failed ADD.
func undoDelegate(ctx context.Context, delegated bool, c *netConf, args *skel.CmdArgs, log *slog.Logger) {
	if !delegated {
		return
	}
	if err := invoke.DelegateDel(context.WithoutCancel(ctx), c.IPAM.Type, args.StdinData, nil); err != nil && log != nil {
		log.Error("IPAM plugin: releasing the address after a failed ADD", "ipam", c.IPAM.Type, "err", err)
	}
}

// delegateKnows reports whether the config's IPAM plugin implements
// version ver (1.1.0 brings STATUS and GC): an older one is not asked.
func delegateKnows(ctx context.Context, c *netConf, ver string) bool {
	path, err := invoke.FindInPath(c.IPAM.Type, filepath.SplitList(os.Getenv("CNI_PATH")))
	if err != nil {
		return true // let the call say what is wrong
	}
	info, err := invoke.GetVersionInfo(ctx, path, nil)
	if err != nil {
		return true
	}
	return slices.Contains(info.SupportedVersions(), ver)
}
