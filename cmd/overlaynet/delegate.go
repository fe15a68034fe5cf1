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

// delegateAdd asks the config's IPAM plugin for addresses and returns the
// first IPv4 one inside the overlay subnet and, on a dual-stack overlay,
// the first IPv6 one inside its IPv6 prefix (host-local with a range of
// each: two ranges); without one of each family the container is to have,
// they are released again and refused (code 106).
func delegateAdd(ctx context.Context, c *netConf, args *skel.CmdArgs, ov *overlay.Overlay) (wanted, error) {
	r, err := invoke.DelegateAdd(ctx, c.IPAM.Type, args.StdinData, nil)
	if err != nil {
		return wanted{}, newError(errDelegate, "IPAM plugin %s: %v", c.IPAM.Type, err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		undoDelegate(ctx, true, c, args, nil)
		return wanted{}, newError(errDelegate, "IPAM plugin %s: result: %v", c.IPAM.Type, err)
	}
	var w wanted
	for _, ipc := range res.IPs {
		a, ok := netip.AddrFromSlice(ipc.Address.IP)
		a = a.Unmap()
		switch {
		case !ok:
		case a.Is4() && !w.v4.IsValid() && ov.Config.Subnet().Contains(a):
			w.v4 = a
		case a.Is6() && !w.v6.IsValid() && ov.Config.DualStack() && ov.Config.Subnet6().Contains(a):
			w.v6 = a
		}
	}
	fams := ov.Config.Families()
	if only := c.only(); only != 0 {
		fams = []overlay.Family{only}
	}
	for _, f := range []overlay.Family{overlay.IPv4, overlay.IPv6} {
		if !slices.Contains(fams, f) {
			if f == overlay.IPv4 {
				w.v4 = netip.Addr{}
			} else {
				w.v6 = netip.Addr{}
			}
			continue
		}
		if !w.of(f).IsValid() {
			undoDelegate(ctx, true, c, args, nil)
			where := "the overlay subnet"
			if f == overlay.IPv6 {
				where = "the overlay's IPv6 prefix"
			}
			return wanted{}, newError(errDelegate, "IPAM plugin %s gave no %s address in %s %s (got %v)", c.IPAM.Type, f, where, ov.Config.GatewayOf(f).Masked(), res.IPs)
		}
	}
	return w, nil
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
