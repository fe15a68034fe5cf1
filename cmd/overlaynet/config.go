package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/ipam"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/stores"
)

// Defaults of the plugin's keys: overlayd's.
const (
	defaultStateDir = overlay.DefaultStateDir
	defaultStore    = "dir:/var/lib/overlayd/store"
	defaultNetNSDir = "/var/run/netns"
)

// netConf is the plugin's network configuration.
type netConf struct {
	types.NetConf
	StateDir  string `json:"stateDir,omitempty"`
	Store     string `json:"store,omitempty"`
	NetNSDir  string `json:"netnsDir,omitempty"`
	BlockBits int    `json:"blockBits,omitempty"`
	LogLevel  string `json:"logLevel,omitempty"`

	RuntimeConfig struct {
		IPs []string `json:"ips,omitempty"`
	} `json:"runtimeConfig,omitzero"`
	Args struct {
		CNI struct {
			IPs []string `json:"ips,omitempty"`
		} `json:"cni,omitzero"`
	} `json:"args,omitzero"`
}

// ipArgs are the CNI_ARGS the plugin reads.
type ipArgs struct {
	types.CommonArgs
	IP net.IP `json:"ip,omitempty"`
}

// loadConf decodes and checks the config on stdin, with defaults filled in.
func loadConf(args *skel.CmdArgs) (*netConf, error) {
	c := &netConf{}
	if err := json.Unmarshal(args.StdinData, c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "overlaynet: config is not valid JSON: "+err.Error(), "")
	}
	if c.RawPrevResult != nil {
		if err := version.ParsePrevResult(&c.NetConf); err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, "overlaynet: prevResult: "+err.Error(), "")
		}
	}
	if c.StateDir == "" {
		c.StateDir = defaultStateDir
	}
	if c.Store == "" {
		c.Store = defaultStore
	}
	if c.NetNSDir == "" {
		c.NetNSDir = defaultNetNSDir
	}
	if c.LogLevel == "" {
		c.LogLevel = "warn"
	}
	var lvl slog.Level
	switch {
	case c.BlockBits < 0 || c.BlockBits > 32:
		return nil, newError(types.ErrInvalidNetworkConfig, "blockBits %d: want 1..32 (0: %d)", c.BlockBits, ipam.DefaultBlockBits)
	case lvl.UnmarshalText([]byte(c.LogLevel)) != nil:
		return nil, newError(types.ErrInvalidNetworkConfig, "logLevel %q: want debug, info, warn or error", c.LogLevel)
	}
	return c, nil
}

// logger logs to stderr at the config's level.
func (c *netConf) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(c.LogLevel))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})).With("plugin", "overlaynet", "network", c.Name)
}

// wantedIP is the address asked for, if any: CNI_ARGS IP=, args.cni.ips or
// runtimeConfig.ips (the "ips" capability); more than one IPv4 address is
// refused.
func (c *netConf) wantedIP(cniArgs string) (netip.Addr, error) {
	var asked []string
	if cniArgs != "" {
		var a ipArgs
		if err := types.LoadArgs(cniArgs, &a); err != nil {
			return netip.Addr{}, newError(types.ErrInvalidEnvironmentVariables, "CNI_ARGS %q: %v", cniArgs, err)
		}
		if a.IP != nil {
			asked = append(asked, a.IP.String())
		}
	}
	asked = append(asked, c.Args.CNI.IPs...)
	asked = append(asked, c.RuntimeConfig.IPs...)
	var want netip.Addr
	for _, s := range asked {
		var a netip.Addr
		if p, err := netip.ParsePrefix(s); err == nil {
			a = p.Addr()
		} else if a, err = netip.ParseAddr(s); err != nil {
			return netip.Addr{}, newError(types.ErrInvalidNetworkConfig, "requested IP %q is not an address", s)
		}
		a = a.Unmap()
		if !a.Is4() {
			return netip.Addr{}, newError(errAddressOutside, "requested IP %s is not IPv4 (the overlay is IPv4)", a)
		}
		if want.IsValid() && want != a {
			return netip.Addr{}, newError(types.ErrInvalidNetworkConfig, "two addresses requested (%s and %s); the overlay gives one", want, a)
		}
		want = a
	}
	return want, nil
}

// endpointName is the endpoint of attachment (network, container, ifname)
// in overlayd's state: "cni-" and 8 hex digits of its hash, so that the host
// veth is "ve-cni-XXXXXXXX" (15 bytes).
func endpointName(network, containerID, ifname string) string {
	sum := sha256.Sum256([]byte(network + "\x00" + containerID + "\x00" + ifname))
	return cniPrefix + hex.EncodeToString(sum[:4])
}

// cniPrefix starts the name of every endpoint the plugin attaches.
const cniPrefix = "cni-"

// node opens the overlay node and registry the config names: the store
// without a lease (the plugin's records persist with no daemon, as
// overlayd attach's do), for the overlay the state directory records.
// done closes the registry.
func (c *netConf) node(ctx context.Context, log *slog.Logger) (n *overlay.Node, reg registry.Registry, done func(), err error) {
	o := overlay.StoreOptions(c.StateDir, registry.Options{Schemes: stores.Schemes(), Logger: log})
	reg, err = registry.Open(ctx, c.Store, o)
	if err != nil {
		code := errRegistry
		switch {
		case errors.Is(err, registry.ErrUnknownScheme), errors.Is(err, registry.ErrBadURL):
			code = types.ErrInvalidNetworkConfig
		case errors.Is(err, registry.ErrUnavailable):
			code = types.ErrTryAgainLater
		}
		return nil, nil, nil, newError(code, "store %q: %v", registry.RedactURL(c.Store), err)
	}
	n = overlay.NewNode(overlay.NodeOptions{NetNSDir: c.NetNSDir, StateDir: c.StateDir, Registry: reg,
		Logger: log, BlockBits: c.BlockBits})
	return n, reg, func() { reg.Close() }, nil
}
